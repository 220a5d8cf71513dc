//! The one pass over `responses.jsonl` of a spilled build: every response
//! checked against the other records, its id sent to the id runs, and an
//! exported one encoded into the view runs, with what the counts, the
//! upload names and `generated_at` need.

use std::collections::HashMap as StdHashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use time::OffsetDateTime;

use super::codec;
use super::runs::{Merge, RunBuffer};
use crate::error::{Error, Problem, Problems, PROBLEM_CAP};
use crate::model::file_keys::decode_response;
use crate::model::origin::RecordFile;
use crate::model::{Id, Records, Response};
use crate::options::Config;
use crate::pivot::{ExportCounts, Lookup};
use crate::timestamp::latest_of_response;
use crate::validate::{duplicate, Resolved};

/// The runs of the two views, by-submission then by-task.
pub(crate) struct ViewRuns {
    pub(crate) by_submission: Vec<PathBuf>,
    pub(crate) by_task: Vec<PathBuf>,
}

/// What the pass learnt.
pub(crate) struct Streamed {
    pub(crate) runs: ViewRuns,
    /// Counts but `files` and `codebook_csv_rows`.
    pub(crate) counts: ExportCounts,
    /// Repeated response ids, in line order, capped.
    pub(crate) duplicates: Problems,
    /// The problems of responses against the other records, in line order.
    pub(crate) problems: Problems,
    /// Every upload key exported answers name, in the order the
    /// by-submission view meets them first.
    pub(crate) first_uses: Vec<Id>,
    /// The latest time a response names.
    pub(crate) latest: Option<OffsetDateTime>,
    /// About the bytes of a view, for progress.
    pub(crate) estimate: u64,
}

/// One response as the pass's parallel step leaves it.
struct Prepared {
    problems: Vec<Problem>,
    /// Length, id and line: the key of the id runs.
    id_key: Vec<u8>,
    latest: Option<OffsetDateTime>,
    scope: Scope,
}

enum Scope {
    /// Unresolved references, or left out by the filter.
    Out,
    /// A `no_submission` response the filter matched.
    Excluded,
    Exported(Box<Exported>),
}

/// An exported response, encoded for the runs.
struct Exported {
    by_submission: Vec<u8>,
    by_task: Vec<u8>,
    payload: Vec<u8>,
    submission_rank: usize,
    task: usize,
    items: u64,
    /// Upload keys of its answer, for naming.
    keys: Vec<Id>,
}

/// The state of the pass.
pub(crate) struct Pass<'a> {
    lookup: &'a Lookup<'a>,
    resolved: &'a Resolved<'a>,
    config: &'a Config,
    dir: &'a Path,
    limit: usize,
    views: RunBuffer,
    ids: RunBuffer,
    runs: ViewRuns,
    id_runs: Vec<PathBuf>,
    counts: ExportCounts,
    submissions_seen: Vec<bool>,
    tasks_seen: Vec<bool>,
    problems: Problems,
    /// Per upload key, the first use met so far: by-submission key and
    /// position in the answer.
    first_uses: StdHashMap<Id, (Vec<u8>, usize)>,
    latest: Option<OffsetDateTime>,
    estimate: u64,
}

impl<'a> Pass<'a> {
    pub(crate) fn new(
        lookup: &'a Lookup<'a>,
        resolved: &'a Resolved<'a>,
        records: &Records,
        config: &'a Config,
        dir: &'a Path,
        limit: usize,
    ) -> Pass<'a> {
        Pass {
            lookup,
            resolved,
            config,
            dir,
            limit,
            views: RunBuffer::new(2),
            ids: RunBuffer::new(1),
            runs: ViewRuns {
                by_submission: Vec::new(),
                by_task: Vec::new(),
            },
            id_runs: Vec::new(),
            counts: ExportCounts {
                responses_csv_rows: config.tables.then_some(0),
                ..ExportCounts::default()
            },
            submissions_seen: vec![false; lookup.submission_count()],
            tasks_seen: vec![false; records.tasks.len()],
            problems: Problems::default(),
            first_uses: StdHashMap::new(),
            latest: None,
            estimate: 0,
        }
    }

    /// Takes one slice of responses with their lines, in line order.
    pub(crate) fn take(&mut self, slice: Vec<(u64, Response)>) -> Result<(), Error> {
        self.config.check_cancelled()?;
        // Once a problem is found the build is refused: only the checks go on.
        let refused = !self.problems.is_empty();
        // Each response is freed by the worker that prepared it.
        let mut prepared: Vec<Prepared> = slice
            .into_par_iter()
            .map(|(line, response)| self.prepare(line, &response, refused))
            .collect();
        for one in &mut prepared {
            for problem in std::mem::take(&mut one.problems) {
                self.problems.push(problem);
            }
            self.ids.push(&[&one.id_key], &[]);
            self.latest = self.latest.max(one.latest);
            match &one.scope {
                Scope::Out => {}
                Scope::Excluded => self.counts.excluded_no_submission += 1,
                Scope::Exported(exported) => self.keep(exported),
            }
        }
        // Freed by the pool too, not one by one on this thread.
        prepared.into_par_iter().for_each(drop);
        if self.views.held() + self.ids.held() >= self.limit {
            self.flush()?;
        }
        Ok(())
    }

    fn prepare(&self, line: u64, response: &Response, refused: bool) -> Prepared {
        let keys: Vec<Option<Id>> = decode_response(response).collect();
        let problems = self.resolved.check_response(line, response, &keys);
        let mut id_key = Vec::with_capacity(response.id.len() + 12);
        id_key.extend_from_slice(&(response.id.len() as u32).to_be_bytes());
        id_key.extend_from_slice(response.id.as_bytes());
        id_key.extend_from_slice(&line.to_be_bytes());
        let scope = match self.lookup.in_scope(0, response, self.config) {
            None => Scope::Out,
            Some(e) if e.response.is_no_submission() => Scope::Excluded,
            Some(_) if refused || !problems.is_empty() => Scope::Out,
            Some(e) => {
                let mut by_submission = Vec::with_capacity(28 + response.id.len());
                e.by_submission_key(&mut by_submission);
                let mut by_task = Vec::with_capacity(by_submission.len());
                e.by_task_key(&mut by_task);
                let mut payload = Vec::with_capacity(512);
                codec::encode(response, &mut payload);
                Scope::Exported(Box::new(Exported {
                    by_submission,
                    by_task,
                    payload,
                    submission_rank: e.submission_rank(),
                    task: e.task(),
                    items: response.answer.len() as u64,
                    keys: keys.into_iter().flatten().collect(),
                }))
            }
        };
        Prepared {
            problems,
            id_key,
            latest: latest_of_response(response),
            scope,
        }
    }

    fn keep(&mut self, e: &Exported) {
        self.counts.responses += 1;
        if let Some(rows) = &mut self.counts.responses_csv_rows {
            *rows += e.items;
        }
        self.submissions_seen[e.submission_rank] = true;
        self.tasks_seen[e.task] = true;
        self.estimate += e.payload.len() as u64;
        if self.config.include_files {
            for (position, key) in e.keys.iter().enumerate() {
                let first = (e.by_submission.as_slice(), position);
                match self.first_uses.get_mut(key) {
                    Some(known) if (known.0.as_slice(), known.1) <= first => {}
                    Some(known) => *known = (e.by_submission.clone(), position),
                    None => {
                        self.first_uses
                            .insert(key.clone(), (e.by_submission.clone(), position));
                    }
                }
            }
        }
        self.views.push(&[&e.by_submission, &e.by_task], &e.payload);
    }

    /// Sorts what the buffers hold into runs.
    fn flush(&mut self) -> Result<(), Error> {
        let serial = self.id_runs.len();
        let write_error = |e| Error::io(self.dir, e);
        if !self.views.is_empty() {
            let name = format!("views-{serial:05}");
            let paths = self
                .views
                .flush(self.dir, &name, &[true, true])
                .map_err(write_error)?;
            self.runs.by_submission.push(paths[0].clone());
            self.runs.by_task.push(paths[1].clone());
        }
        let name = format!("ids-{serial:05}");
        let ids = self
            .ids
            .flush(self.dir, &name, &[false])
            .map_err(write_error)?;
        self.id_runs.extend(ids);
        Ok(())
    }

    /// Ends the pass: the last runs written, the ids merged.
    pub(crate) fn finish(mut self) -> Result<Streamed, Error> {
        self.flush()?;
        let duplicates = self.duplicates()?;
        for run in &self.id_runs {
            // Only disk space: the directory goes at the end anyway.
            let _ = std::fs::remove_file(run);
        }
        let mut first_uses: Vec<(Vec<u8>, usize, Id)> = self
            .first_uses
            .into_iter()
            .map(|(key, (order, position))| (order, position, key))
            .collect();
        first_uses.sort_unstable();
        let count = |seen: &[bool]| seen.iter().filter(|&&s| s).count() as u64;
        Ok(Streamed {
            runs: self.runs,
            counts: ExportCounts {
                submissions: count(&self.submissions_seen),
                tasks: count(&self.tasks_seen),
                ..self.counts
            },
            duplicates,
            problems: self.problems,
            first_uses: first_uses.into_iter().map(|(_, _, key)| key).collect(),
            latest: self.latest,
            estimate: self.estimate,
        })
    }

    /// Every repeat of a response id, found by merging the id runs (each
    /// id's records meet in line order), as a build in memory lists them:
    /// in line order, the first [`PROBLEM_CAP`] kept and the rest counted.
    fn duplicates(&self) -> Result<Problems, Error> {
        let mut merge = Merge::open(&self.id_runs).map_err(|e| Error::io(self.dir, e))?;
        let mut found: Vec<(u64, Problem)> = Vec::new();
        let mut total = 0usize;
        // The first line of the id last met (empty before the first id:
        // every key holds its id's length, so none is empty).
        let (mut first_id, mut first_line) = (Vec::new(), 0);
        let mut take = |key: &[u8], _: &[u8]| {
            let (id, line) = key.split_at(key.len() - 8);
            let line = u64::from_be_bytes(line.try_into().expect("8 bytes"));
            if first_id == id {
                total += 1;
                let text = String::from_utf8_lossy(&id[4..]);
                let problem = duplicate(RecordFile::Responses, "id", &text, line, first_line);
                found.push((line, problem));
                if found.len() >= 2 * PROBLEM_CAP {
                    keep_first_lines(&mut found);
                }
            } else {
                first_id.clear();
                first_id.extend_from_slice(id);
                first_line = line;
            }
        };
        while merge
            .pop_with(&mut take)
            .map_err(|e| Error::io(self.dir, e))?
            .is_some()
        {}
        keep_first_lines(&mut found);
        let mut problems = Problems::default();
        let listed = found.len();
        for (_, problem) in found {
            problems.push(problem);
        }
        problems.count_unlisted(total - listed);
        Ok(problems)
    }
}

/// Keeps the [`PROBLEM_CAP`] problems of the smallest lines, in line order.
fn keep_first_lines(found: &mut Vec<(u64, Problem)>) {
    found.sort_by_key(|(line, _)| *line);
    found.truncate(PROBLEM_CAP);
}
