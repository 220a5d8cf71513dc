#!/usr/bin/env python3
"""The pivot alone, in DuckDB: read the dump's JSON Lines with read_json,
drop no_submission responses, group with ordered list aggregation into the
two views, and write them as JSON Lines. No ZIP, no uploads, no validation,
no `path` in file_upload answers: it does less than `build --views-only`,
which the benchmark compares it with.

Usage: duckdb_pivot.py DUMP_DIR OUT_DIR
"""
import os
import sys

import duckdb


def main(dump, out):
    os.makedirs(out, exist_ok=True)
    con = duckdb.connect()
    p = lambda name: os.path.join(dump, name).replace("'", "''")
    o = lambda name: os.path.join(out, name).replace("'", "''")
    con.execute(f"""
        CREATE TEMP TABLE instr AS
          SELECT id, row_number() OVER () AS pos
          FROM read_json('{p("instructions.jsonl")}', format='newline_delimited',
                         columns={{id: 'VARCHAR', type: 'VARCHAR'}});
        CREATE TEMP TABLE tasks AS
          SELECT id, group_id, datapoint, metadata, row_number() OVER () AS pos
          FROM read_json('{p("tasks.jsonl")}', format='newline_delimited',
                         columns={{id: 'VARCHAR', group_id: 'JSON', datapoint: 'JSON', metadata: 'JSON'}});
        CREATE TEMP TABLE subs AS
          SELECT * FROM read_json('{p("submissions.jsonl")}', format='newline_delimited',
                         columns={{id: 'VARCHAR', participant_id: 'VARCHAR', study_id: 'JSON',
                                   status: 'JSON', started_at: 'JSON', completed_at: 'JSON'}});
        CREATE TEMP TABLE r AS
          SELECT id, submission_id, task_id, created_at, correlation_id,
                 response->>'instruction_id' AS instruction_id,
                 response->>'type' AS type, response->'answer' AS answer
          FROM read_json('{p("responses.jsonl")}', format='newline_delimited',
                         columns={{id: 'VARCHAR', submission_id: 'VARCHAR', task_id: 'VARCHAR',
                                   created_at: 'VARCHAR', correlation_id: 'JSON', response: 'JSON'}})
          WHERE response->>'type' <> 'no_submission';
    """)
    con.execute(f"""
        COPY (
          WITH per_task AS (
            SELECT r.submission_id, t.pos AS tpos, r.task_id,
                   list({{response_id: r.id, instruction_id: r.instruction_id, type: r.type,
                          answer: r.answer, correlation_id: r.correlation_id, created_at: r.created_at}}
                        ORDER BY i.pos, r.created_at NULLS FIRST, r.id) AS responses
            FROM r JOIN instr i ON i.id = r.instruction_id JOIN tasks t ON t.id = r.task_id
            GROUP BY ALL)
          SELECT s.id AS submission_id, s.participant_id, s.study_id, s.status, s.started_at,
                 s.completed_at, list({{task_id: p.task_id, responses: p.responses}} ORDER BY p.tpos) AS tasks
          FROM per_task p JOIN subs s ON s.id = p.submission_id
          GROUP BY ALL ORDER BY s.id
        ) TO '{o("responses-by-submission.jsonl")}' (FORMAT JSON);
    """)
    con.execute(f"""
        COPY (
          SELECT * EXCLUDE (pos) FROM (
            SELECT t.pos, t.id AS task_id, t.group_id, t.datapoint, t.metadata,
                   list({{response_id: r.id, instruction_id: r.instruction_id, type: r.type,
                          answer: r.answer, correlation_id: r.correlation_id, created_at: r.created_at,
                          submission_id: r.submission_id, participant_id: s.participant_id}}
                        ORDER BY r.submission_id, i.pos, r.created_at NULLS FIRST, r.id) AS responses
            FROM r JOIN instr i ON i.id = r.instruction_id JOIN tasks t ON t.id = r.task_id
                   JOIN subs s ON s.id = r.submission_id
            GROUP BY ALL)
          ORDER BY pos
        ) TO '{o("responses-by-task.jsonl")}' (FORMAT JSON);
    """)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
