"""Reads an archive's responses.csv with pandas, as its README says
(`read_csv(dtype=str)`), and checks it against the archive's
responses-by-submission.jsonl read with the json module: one row per answer
item, in view order, every cell the value as written (numbers keep their
digits: they are read as text, never re-printed).

Shares no code with the library. Prints "ok ROWS", or the differences and
exits 1. Usage: python check_tables.py ARCHIVE
"""
import io
import json
import sys
import zipfile

import pandas as pd

COLUMNS = [
    "submission_id", "participant_id", "study_id", "submission_status", "task_id",
    "group_id", "instruction_id", "instruction_type", "response_id", "item_index",
    "value", "explanation", "unit", "file_path", "file_name", "content_type",
    "correlation_id", "created_at",
]


class Digits(str):
    """A JSON number kept as the text it was written with."""


def cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def load(text):
    return json.loads(text, parse_int=Digits, parse_float=Digits)


def main(archive):
    with zipfile.ZipFile(archive) as z:
        table = pd.read_csv(io.BytesIO(z.read("responses.csv")), dtype=str, keep_default_na=False)
        by_submission = [load(l) for l in z.read("responses-by-submission.jsonl").decode().splitlines()]
        by_task = [load(l) for l in z.read("responses-by-task.jsonl").decode().splitlines()]
    groups = {line["task_id"]: line["group_id"] for line in by_task}
    expected = []
    for line in by_submission:
        for task in line["tasks"]:
            for response in task["responses"]:
                upload = response["type"] == "file_upload"
                for index, item in enumerate(response["answer"]):
                    def field(key, only_upload=False):
                        if only_upload and not upload:
                            return ""
                        return cell(item.get(key))
                    expected.append([
                        cell(line["submission_id"]), cell(line["participant_id"]),
                        cell(line["study_id"]), cell(line["status"]), cell(task["task_id"]),
                        cell(groups[task["task_id"]]), cell(response["instruction_id"]),
                        cell(response["type"]), cell(response["response_id"]), str(index),
                        field("value"), field("explanation"), field("unit"),
                        field("path", True), field("file_name", True), field("content_type", True),
                        cell(response["correlation_id"]), cell(response["created_at"]),
                    ])
    problems = []
    if list(table.columns) != COLUMNS:
        problems.append(f"columns {list(table.columns)}")
    actual = table.values.tolist()
    if len(actual) != len(expected):
        problems.append(f"{len(actual)} rows, {len(expected)} answer items")
    for number, (a, e) in enumerate(zip(actual, expected), start=1):
        if a != e:
            problems.append(f"row {number}: {a!r} != {e!r}")
    if problems:
        print("\n".join(problems[:20]))
        sys.exit(1)
    print(f"ok {len(actual)}")


if __name__ == "__main__":
    main(sys.argv[1])
