//! batch-export turns the raw records of an annotation batch into one ZIP
//! archive a researcher can open anywhere and load with pandas in two lines.
//!
//! The archive is deterministic (the same records give the same bytes,
//! whatever the input order or thread count), streams uploads through a
//! small, fixed amount of memory, checks every upload's size and SHA-256,
//! and refuses bad input with every problem located by file, line and field.
//!
//! # Layout
//!
//! The layers, and what each module may import, are in `docs/architecture.md`.
//!
//! - [`model`]: the records (batch, instructions, tasks, submissions, responses,
//!   uploads), where each came from, and the borrowed line object they are read through
//! - [`dump`]: reading a dump directory into records, line by line; [`DirBlobSource`]
//! - `export`: [`export`] and [`export_to_path`], the checks then the writer
//! - `validate`: checks across records (unique ids, references, agreement)
//! - `pivot`: records to the two views: exclusion, grouping, ordering, counts
//! - `spill`: builds, checks and verifications past the memory budget: sorted runs of the responses on disk, merged into the views
//! - [`pseudonym`]: pseudonymous participant ids (HMAC-SHA256 under the operator's key)
//! - `archive::tables`: `responses.csv` and `codebook.csv`
//! - [`naming`]: safe upload names and de-duplication
//! - [`blob`]: [`BlobSource`], where upload bytes come from; [`MemoryBlobSource`]
//! - `archive`: the ZIP writer, parallel deflate, entries, the archive's README
//! - `output`: atomic output through a temporary file
//! - [`options`]: [`ExportOptions`], the build's settings
//! - [`filter`]: [`ExportFilter`], which responses an export holds, parsed and normalised in one place
//! - [`error`]: [`Error`] and the [`Problem`] list of a refusal
//! - [`verify`]: checking an archive against the contract and against its dump
//! - `jobs` (feature `service`): the export-job engine: SQLite store,
//!   fingerprints, signed links, workers
//! - `http` (feature `service`): the export-job web service on top of `jobs`
//! - `s3` (feature `s3`): S3-compatible object storage: `s3://BUCKET/PREFIX`
//!   locations, the server's configuration, the client
//! - `client` (feature `client`): the client of that service: request, poll, download
//! - `wire` (features `service` or `client`): the protocol both share: paths,
//!   query, bodies, file name
//! - [`formats`]: the dump read and the archive written, in prose with examples
//! - [`synth`]: synthetic dumps of any size, for benchmarks and scale tests
//!
//! # Embedding
//!
//! An export backend depends on the engine alone, which leaves out the
//! service, its client and the binary (features `service`, `postgres`, `s3`,
//! `client` and `cli`, all on by default):
//!
//! ```toml
//! batch-export = { version = "0.1", default-features = false }
//! ```
//!
//! and hands over its own records and its own blob source:
//!
//! ```
//! use std::io::Cursor;
//! use batch_export::model::*;
//! use batch_export::{export, ExportOptions, MemoryBlobSource};
//!
//! let mut records = Records::new(Batch::new("b1", "Cats", "w1"));
//! let mut instruction = RawObject::default();
//! instruction.insert("id", RawJson::string("i1"));
//! instruction.insert("type", RawJson::string("free_text"));
//! instruction.insert("description", RawJson::string("What is this?"));
//! records.instructions.push(Instruction { id: "i1".into(), kind: InstructionType::FreeText, fields: instruction });
//! records.tasks.push(Task { id: "t1".into(), ..Task::default() });
//! records.submissions.push(Submission { id: "s1".into(), participant_id: "p1".into(), ..Submission::default() });
//! records.responses.push(Response {
//!     id: "r1".into(),
//!     submission_id: "s1".into(),
//!     task_id: "t1".into(),
//!     instruction_id: "i1".into(),
//!     kind: "free_text".into(),
//!     answer: vec![RawJson::parse(r#"{"value": "a cat"}"#)?],
//!     ..Response::default()
//! });
//!
//! let options = ExportOptions::new().generated_at("2024-05-01T12:00:00Z");
//! let mut archive = Cursor::new(Vec::new());
//! let summary = export(&records, &MemoryBlobSource::new(), &mut archive, &options)?;
//! assert_eq!(summary.counts.responses, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A dump directory is read with [`Dump::open`] and exported with
//! [`Dump::export_to_path`]; [`Dump::build`] does both within
//! [`ExportOptions::memory_budget`], spilling sorted runs to disk for a dump
//! too big for it, which is what the `batch-export build` command does;
//! [`Dump::check_within`] and [`Dump::verify_archive`] check a dump and
//! verify an archive against one within the same budget.

#![deny(missing_docs)]

mod archive;
#[doc(hidden)]
pub mod bench_support;
pub mod blob;
#[cfg(feature = "client")]
pub mod client;
#[doc = include_str!("../docs/FORMAT.md")]
pub mod formats {}
pub mod dump;
pub mod error;
mod export;
pub mod filter;
mod hash;
#[cfg(feature = "service")]
pub mod http;
#[cfg(feature = "service")]
pub mod jobs;
pub mod model;
pub mod naming;
pub mod options;
mod output;
mod pivot;
pub mod pseudonym;
#[cfg(feature = "s3")]
pub mod s3;
mod spill;
pub mod synth;
pub mod timestamp;
mod validate;
pub mod verify;
#[cfg(any(feature = "service", feature = "client"))]
pub mod wire;

pub use archive::{ExportSummary, FORMAT_VERSION};
pub use blob::{BlobSource, MemoryBlobSource, RefusedBlob};
pub use dump::{DirBlobSource, Dump, DumpDir, DumpPathError};
pub use error::{Error, Problem, ProblemKind, Problems};
pub use export::{export, export_to_path};
pub use options::{ExportFilter, ExportOptions, Progress, ProgressEvent};
pub use output::{remove_stale_partials, PARTIAL_SUFFIX};
pub use pivot::ExportCounts;
