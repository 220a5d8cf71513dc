//! The archive's `README.md`: a quick-start for the batch's researchers.
//!
//! Its Python block must run as written, with only pandas installed, in the
//! folder the archive was extracted to; CI extracts archives and runs it.
//! It also runs on an archive with no responses at all, whose JSON Lines
//! files are empty and so have no columns: hence `by_task.get(...)` rather
//! than indexing the `responses` column.

use crate::model::Records;
use crate::pivot::ExportCounts;

/// The quick-start guide for one archive.
pub(crate) fn readme(records: &Records, counts: &ExportCounts, generated_at: &str) -> String {
    let batch = &records.batch;
    let ExportCounts {
        submissions,
        tasks,
        responses,
        files,
        excluded_no_submission,
    } = *counts;
    let files_section = if files > 0 {
        format!(
            "`files/` holds the {files} uploaded file(s) that exported answers refer to. Each is \
named `files/<submission_id>_<file name>`: the submission that uploaded it, then the \
participant's file name made safe for every system (directories, control characters and \
`<>:\"|?*` removed or replaced, Windows device names prefixed with `_`, at most 200 bytes). \
When one submission uploaded two files with the same name, the later ones get `-2`, `-3`, \
... before the extension. Every `file_upload` answer item carries a `path` field with its \
file's location relative to this folder, so `open(item[\"path\"])` works as is.\n"
        )
    } else {
        "No exported answer refers to an uploaded file, so there is no `files/` folder.\n"
            .to_owned()
    };
    format!(
        r#"# Export of batch "{name}"

Batch `{id}` (workspace `{workspace}`), generated at {generated_at}.

This archive holds {responses} response(s) from {submissions} submission(s) on {tasks} task(s).
{excluded_no_submission} response(s) of type `no_submission` (tasks shown but not answered)
were left out, with anything only they referred to.

## Files

| file | what it is |
|---|---|
| `batch.json` | the batch, its `instructions` in order, and `export` (format version, generation time, counts) |
| `responses-by-submission.jsonl` | one line per submission, sorted by `submission_id`; its `tasks` in task order, each with its `responses` |
| `responses-by-task.jsonl` | one line per task, in task order, with every response to it (and who gave it) |
| `files/` | the uploaded files answers refer to |

Each response is `{{"response_id", "instruction_id", "type", "answer", "correlation_id",
"created_at"}}`; `answer` is a list of items whose fields depend on `type`
(`value`; `value` and `explanation`; `value` and `unit`; or `file_key`, `file_name`,
`file_size_mb`, `content_type` and `path`). A field the records lack is `null`.

{files_section}
## Load it with pandas

Run this in the folder where you extracted the archive:

```python
import pandas as pd

by_submission = pd.read_json("responses-by-submission.jsonl", lines=True, dtype=False)
by_task = pd.read_json("responses-by-task.jsonl", lines=True, dtype=False)

# One row per answer item, with its response's and task's identifiers.
answers = pd.json_normalize(
    by_task.to_dict("records"),
    record_path=["responses", "answer"],
    meta=[
        "task_id",
        ["responses", "response_id"],
        ["responses", "submission_id"],
        ["responses", "participant_id"],
        ["responses", "instruction_id"],
        ["responses", "type"],
    ],
    record_prefix="answer.",
)
answers.columns = [c.removeprefix("responses.") for c in answers.columns]

print(len(by_submission), "submissions")
print(len(by_task), "tasks")
print(sum(len(r) for r in by_task.get("responses", [])), "responses")
print(len(answers), "answers")
```
"#,
        name = batch.name,
        id = batch.id,
        workspace = batch.workspace_id,
    )
}
