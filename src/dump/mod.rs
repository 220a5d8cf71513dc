//! Reading a dump directory: the raw records of one batch as files.
//!
//! # Format
//!
//! A dump is a directory:
//!
//! ```text
//! batch.json            one JSON object: {"id", "name", "workspace_id", ...}
//! instructions.jsonl    one instruction per line, in instruction order
//! tasks.jsonl           one task per line, in task order
//! submissions.jsonl     one submission per line
//! responses.jsonl       one response per line
//! uploads.jsonl         one upload record per line (optional)
//! uploads/<file_key>    the uploaded bytes (or at the record's `path`)
//! ```
//!
//! JSON Lines files hold one object per line; `\n` and `\r\n` both end a
//! line and blank lines are skipped. A response line looks like:
//!
//! ```json
//! {"id": "r1", "submission_id": "s1", "task_id": "t1", "participant_id": "p1",
//!  "created_at": "2024-05-01T10:00:00Z",
//!  "response": {"instruction_id": "i1", "type": "free_text", "answer": [{"value": "a cat"}]}}
//! ```
//!
//! Reading a dump only checks each line on its own (JSON syntax, required
//! fields and their types); the checks across records happen when the
//! export is built, so records handed over through the API get them too.

mod blobs;
mod confine;
mod export;
pub(crate) mod fields;
mod files;
mod lines;
mod records;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Problem, ProblemKind, Problems};
use crate::model::line::LineObject;
use crate::model::origin::{Origins, RecordFile};
use crate::model::Records;
pub use crate::model::MAX_JSON_DEPTH;
pub use blobs::DirBlobSource;
pub use confine::{DumpDir, DumpPathError};
pub use files::DumpFiles;
use lines::{read_jsonl, read_lines, shape_fault, Line, LineSink, Noted};

/// A dump directory, read into records.
#[derive(Debug, Clone)]
pub struct Dump {
    root: PathBuf,
    records: Option<Records>,
    origins: Origins,
    problems: Problems,
}

impl Dump {
    /// Reads every record file of the dump at `root`.
    ///
    /// Fails only when the directory itself cannot be read; problems with
    /// the records (a missing file, a bad line) are kept and reported when
    /// the export is checked or built, together with every other problem.
    pub fn open(root: impl AsRef<Path>) -> Result<Dump, Error> {
        let root = root.as_ref().to_path_buf();
        let meta = fs::metadata(&root).map_err(|e| Error::io(&root, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                &root,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"),
            ));
        }
        Dump::read(&DumpDir::new(&root), root)
    }

    /// Reads every record file of a dump through `files` (an object-store
    /// prefix, say), like [`Dump::open`] reads a directory. `root` names
    /// the dump in messages; [`Dump::blobs`] is only meaningful for a
    /// directory, so export such a dump with [`Dump::export_to_path_from`].
    pub fn read(files: &dyn DumpFiles, root: impl Into<PathBuf>) -> Result<Dump, Error> {
        let root = root.into();
        let mut partial = Partial::open(files)?;
        let mut responses_problems = Problems::default();
        let (responses, lines) = read_jsonl(
            files,
            RecordFile::Responses,
            records::response,
            &mut responses_problems,
            &mut partial.seen,
        )?;
        let read = partial.finish(responses, lines);
        let mut problems = read.before;
        problems.extend(responses_problems);
        problems.extend(read.after);
        let (records, origins) = (read.records, read.origins);
        Ok(Dump {
            root,
            records,
            origins,
            problems,
        })
    }

    /// The batch id in the `batch.json` of the dump at `root`, reading only
    /// that file; `None` when it is unusable (a build would list why).
    pub fn batch_id(root: impl AsRef<Path>) -> Result<Option<String>, Error> {
        let batch = read_batch(&DumpDir::new(root.as_ref()), &mut Problems::default())?;
        Ok(batch.map(|batch| batch.id))
    }

    /// The dump directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The records read, or `None` when `batch.json` itself is unusable.
    pub fn records(&self) -> Option<&Records> {
        self.records.as_ref()
    }

    /// Where the upload bytes of this dump are.
    pub fn blobs(&self) -> DirBlobSource {
        DirBlobSource::new(&self.root)
    }

    /// The problems found while reading lines, before any check across records.
    pub fn line_problems(&self) -> &Problems {
        &self.problems
    }

    pub(crate) fn parts(&self) -> (Option<&Records>, &Origins, &Problems) {
        (self.records.as_ref(), &self.origins, &self.problems)
    }
}

/// A dump with every file read but `responses.jsonl`: the start of
/// reading one whole ([`Dump::open`]) or of streaming its responses (a
/// build past its memory budget, which never holds them all).
pub(crate) struct Partial {
    batch: Option<crate::model::Batch>,
    instructions: Vec<crate::model::Instruction>,
    tasks: Vec<crate::model::Task>,
    submissions: Vec<crate::model::Submission>,
    uploads: Vec<crate::model::Upload>,
    /// Line numbers of the records of each file; none yet for responses.
    lines: [Vec<u64>; 5],
    /// Problems of `batch.json` and the files before `responses.jsonl`.
    before: Problems,
    /// Problems of `uploads.jsonl`, which comes after it.
    after: Problems,
    seen: Seen,
}

impl Partial {
    /// Reads every file of a dump but `responses.jsonl`.
    pub(crate) fn open(dir: &dyn DumpFiles) -> Result<Partial, Error> {
        let mut before = Problems::default();
        let mut after = Problems::default();
        let mut seen = Seen::default();
        let batch = read_batch(dir, &mut before)?;
        let (instructions, l0) = read_jsonl(
            dir,
            RecordFile::Instructions,
            records::instruction,
            &mut before,
            &mut seen,
        )?;
        let (tasks, l1) = read_jsonl(
            dir,
            RecordFile::Tasks,
            records::task,
            &mut before,
            &mut seen,
        )?;
        let (submissions, l2) = read_jsonl(
            dir,
            RecordFile::Submissions,
            records::submission,
            &mut before,
            &mut seen,
        )?;
        let (uploads, l4) = read_jsonl(
            dir,
            RecordFile::Uploads,
            records::upload,
            &mut after,
            &mut seen,
        )?;
        Ok(Partial {
            batch,
            instructions,
            tasks,
            submissions,
            uploads,
            lines: [l0, l1, l2, Vec::new(), l4],
            before,
            after,
            seen,
        })
    }

    /// The records (with `responses`, which were read apart) and their
    /// origins.
    pub(crate) fn finish(
        self,
        responses: Vec<crate::model::Response>,
        response_lines: Vec<u64>,
    ) -> ReadDump {
        let [l0, l1, l2, _, l4] = self.lines;
        let mut origins = Origins::from_lines([l0, l1, l2, response_lines, l4]);
        for (kind, id) in self.seen.unusable {
            origins.add_unusable(kind, id);
        }
        for kind in self.seen.missing {
            origins.set_missing(kind);
        }
        let records = self.batch.map(|batch| Records {
            batch,
            instructions: self.instructions,
            tasks: self.tasks,
            submissions: self.submissions,
            responses,
            uploads: self.uploads,
        });
        ReadDump {
            records,
            origins,
            before: self.before,
            after: self.after,
        }
    }
}

/// A dump read, its line problems in two parts: those of the files before
/// `responses.jsonl`, and of `uploads.jsonl` after it.
pub(crate) struct ReadDump {
    /// `None` when `batch.json` is unusable.
    pub(crate) records: Option<Records>,
    pub(crate) origins: Origins,
    pub(crate) before: Problems,
    pub(crate) after: Problems,
}

/// Streams the `responses.jsonl` of the dump of `files`: `each` gets its
/// usable responses with their line numbers, a slice at a time, in line
/// order; the problems of its lines go to `problems`. The ids of refused
/// lines are not kept: no record refers to a response.
pub(crate) fn stream_responses(
    files: &dyn DumpFiles,
    problems: &mut Problems,
    each: &mut (dyn FnMut(Vec<(u64, crate::model::Response)>) -> Result<(), Error> + Send),
) -> Result<(), Error> {
    let mut sink = Streamed { each };
    read_lines(
        files,
        RecordFile::Responses,
        records::response,
        problems,
        &mut Seen::default(),
        &mut sink,
    )
}

/// Streamed lines: each slice's records handed on, problems noted.
struct Streamed<'e, T> {
    each: &'e mut (dyn FnMut(Vec<(u64, T)>) -> Result<(), Error> + Send),
}

impl<T: Send> LineSink<T> for Streamed<'_, T> {
    fn append(
        &mut self,
        parsed: Vec<(u64, Line<T>)>,
        _bytes: usize,
        noted: &mut Noted<'_>,
    ) -> Result<(), Error> {
        let mut records = Vec::with_capacity(parsed.len());
        noted.keep(parsed, |line, record| records.push((line, record)));
        (self.each)(records)
    }
}

fn whole_file_problem(file: &str, message: String) -> Problem {
    Problem {
        kind: ProblemKind::Syntax,
        file: file.to_owned(),
        line: None,
        field: None,
        message,
    }
}

/// An open record file and its size, when known.
type Opened<'d> = (Box<dyn Read + Send + 'd>, Option<u64>);

/// Opens a record file of the dump, turning "not found", "outside the
/// dump" and "not a regular file" into problems rather than errors.
fn open_file<'d>(
    dir: &'d dyn DumpFiles,
    file: &str,
    problems: &mut Problems,
) -> Result<Option<Opened<'d>>, Error> {
    match dir.open_file(file) {
        Ok(opened) => Ok(Some(opened)),
        Err(DumpPathError::Missing) => {
            problems.push(missing_file(file));
            Ok(None)
        }
        Err(DumpPathError::Io(err)) => Err(Error::io(dir.location_of(file), err)),
        Err(refused) => {
            problems.push(whole_file_problem(file, refused.to_string()));
            Ok(None)
        }
    }
}

fn missing_file(file: &str) -> Problem {
    Problem {
        kind: ProblemKind::MissingField,
        file: file.to_owned(),
        line: None,
        field: None,
        message: "file is missing from the dump".to_owned(),
    }
}

fn read_file(
    dir: &dyn DumpFiles,
    file: &str,
    problems: &mut Problems,
) -> Result<Option<Vec<u8>>, Error> {
    let Some((mut source, _)) = open_file(dir, file, problems)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    source
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(dir.location_of(file), e))?;
    Ok(Some(bytes))
}

fn read_batch(
    dir: &dyn DumpFiles,
    problems: &mut Problems,
) -> Result<Option<crate::model::Batch>, Error> {
    let file = "batch.json";
    let Some(bytes) = read_file(dir, file, problems)? else {
        return Ok(None);
    };
    if let Some(message) = std::str::from_utf8(&bytes).ok().and_then(shape_fault) {
        problems.push(whole_file_problem(file, message));
        return Ok(None);
    }
    let object = match serde_json::from_slice::<LineObject>(&bytes) {
        Ok(object) => object,
        Err(err) => {
            problems.push(whole_file_problem(
                file,
                format!("not a JSON object: {err}"),
            ));
            return Ok(None);
        }
    };
    let (batch, found) = records::batch(object, file);
    for problem in found {
        problems.push(problem);
    }
    Ok(batch)
}

/// What reading the files learnt beyond their records: ids of refused lines
/// and missing files, so later checks do not report them twice.
#[derive(Default)]
struct Seen {
    unusable: Vec<(RecordFile, String)>,
    missing: Vec<RecordFile>,
}
