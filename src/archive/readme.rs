//! The archive's `README.md`: a quick-start for the batch's researchers.
//!
//! Its Python block must run as written, with only pandas installed, in the
//! folder the archive was extracted to; CI extracts archives and runs it.
//! It also runs on an archive with no responses at all, whose JSON Lines
//! files are empty and so have no columns: hence `by_task.get(...)` rather
//! than indexing the `responses` column.

use crate::model::Records;
use crate::pivot::{ExportCounts, Pivot};

/// The quick-start guide for one archive. The sections of the options
/// appear only when the option is set, so a default archive's README is
/// what it has always been.
pub(crate) fn readme(records: &Records, pivot: &Pivot<'_>, generated_at: &str) -> String {
    let batch = &records.batch;
    let ExportCounts {
        submissions,
        tasks,
        responses,
        files,
        excluded_no_submission,
        ..
    } = pivot.counts;
    let files_section = if !pivot.include_files {
        "This export was made without the uploaded files (to keep it small), so there is no \
`files/` folder and no upload was read. Every `file_upload` answer item keeps its fields \
(`file_key`, `file_name`, `file_size_mb`, `content_type`) and has `\"path\": null`; ask for \
an export with files to get the files themselves.\n"
            .to_owned()
    } else if files > 0 {
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
{table_rows}
Each response is `{{"response_id", "instruction_id", "type", "answer", "correlation_id",
"created_at"}}`; `answer` is a list of items whose fields depend on `type`
(`value`; `value` and `explanation`; `value` and `unit`; or `file_key`, `file_name`,
`file_size_mb`, `content_type` and `path`). A field the records lack is `null`.

{files_section}{pseudonyms_section}
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
{tables_section}"#,
        name = batch.name,
        id = batch.id,
        workspace = batch.workspace_id,
        table_rows = table_rows(pivot),
        pseudonyms_section = pseudonyms_section(pivot),
        tables_section = tables_section(pivot),
    )
}

/// The rows of the file table after the two views.
fn table_rows(pivot: &Pivot<'_>) -> String {
    let mut rows = String::new();
    if pivot.tables {
        rows.push_str(
            "| `responses.csv` | one row per answer item (long format), for R, SPSS or a \
spreadsheet |\n| `codebook.csv` | one row per instruction, and per option of a choice \
instruction: what each `value` code means |\n",
        );
    }
    if pivot.include_files {
        rows.push_str("| `files/` | the uploaded files answers refer to |\n");
    } else {
        rows.push_str("| `files/` | not in this export: made without the uploaded files |\n");
    }
    rows
}

fn pseudonyms_section(pivot: &Pivot<'_>) -> &'static str {
    if pivot.pseudonymiser.is_none() {
        return "";
    }
    "\nParticipant ids are pseudonymised: every `participant_id` in this archive is `p_` \
followed by 16 hex digits, computed from the platform's id with a key the data's operator \
holds (HMAC-SHA256). The same participant has the same pseudonym in every export made with \
that key, so exports can still be joined; the platform's ids are not in this archive.\n"
}

/// How to load `responses.csv` and `codebook.csv`; runs as written, like
/// the block above (CI runs both).
fn tables_section(pivot: &Pivot<'_>) -> String {
    if !pivot.tables {
        return String::new();
    }
    let ExportCounts {
        responses_csv_rows,
        codebook_csv_rows,
        ..
    } = pivot.counts;
    format!(
        r#"
## The tables: `responses.csv` and `codebook.csv`

`responses.csv` has {rows} row(s), one per answer item: a `multiple_choice` answer with two
options chosen is two rows. Its columns are `submission_id`, `participant_id`, `study_id`,
`submission_status`, `task_id`, `group_id`, `instruction_id`, `instruction_type`,
`response_id`, `item_index` (the item's position in `answer`, from 0), `value`,
`explanation`, `unit`, `file_path` (the file under `files/`, empty without files),
`file_name`, `content_type`, `correlation_id` and `created_at`; rows come in the order of
`responses-by-submission.jsonl`. `codebook.csv` has {codes} row(s): `instruction_id`, `type`,
`description`, then `option_value` and `option_label` on the rows of a choice
instruction's options, and `unit_options` (as the batch lists them) on a
`free_text_with_unit` instruction's row.

Both files are CSV as RFC 4180 defines it (UTF-8, comma-separated, fields quoted when they
hold a comma, quote or line break). Every cell is exactly what the records hold: numbers as
they were written, `true`/`false`, text as typed; an empty cell is a missing value. Read
every column as text, as below, to keep it that way (`"NA"` typed by a participant is not a
missing value, `007` keeps its zeros).

**Spreadsheets**: no cell is altered, so a cell starting with `=`, `+`, `-` or `@` is kept
as typed, and a spreadsheet program that opens `responses.csv` directly may run it as a
formula. Import the file instead, with every column as text (Excel: Data > From Text/CSV,
then the type Text for each column; LibreOffice: the Text Import dialog, column type Text).

With pandas:

```python
import pandas as pd

responses = pd.read_csv("responses.csv", dtype=str, keep_default_na=False)
codebook = pd.read_csv("codebook.csv", dtype=str, keep_default_na=False)

# The label of each chosen option, beside its code.
options = codebook[codebook["option_value"] != ""]
labelled = responses.merge(
    options[["instruction_id", "option_value", "option_label"]],
    how="left",
    left_on=["instruction_id", "value"],
    right_on=["instruction_id", "option_value"],
)

print(len(responses), "rows in responses.csv")
print(len(codebook), "rows in codebook.csv")
```

With R:

```r
responses <- read.csv("responses.csv", colClasses = "character",
                      na.strings = character(0), fileEncoding = "UTF-8")
codebook <- read.csv("codebook.csv", colClasses = "character",
                     na.strings = character(0), fileEncoding = "UTF-8")
options <- codebook[codebook$option_value != "", c("instruction_id", "option_value", "option_label")]
labelled <- merge(responses, options, all.x = TRUE,
                  by.x = c("instruction_id", "value"), by.y = c("instruction_id", "option_value"))
```
"#,
        rows = responses_csv_rows.unwrap_or(0),
        codes = codebook_csv_rows.unwrap_or(0),
    )
}
