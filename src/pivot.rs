//! Records to the archive's two views: which responses are exported, how
//! they group by submission and by task, in which order, which uploads they
//! carry, and the counts.
//!
//! Sorting and grouping run on the build's rayon pool. Every sort key ends in
//! the response id, which is unique, so the order is total and the result
//! does not depend on input line order or thread count.

use std::cmp::Ordering;
use std::ops::Range;
use std::sync::Arc;

use rayon::prelude::*;

use crate::hash::HashMap;
use crate::model::file_keys::FileKeys;
use crate::model::{
    Id, Instruction, InstructionType, RawJson, Records, Response, Submission, Task, Upload,
};
use crate::naming::{safe_file_name, safe_prefix, NameRegistry};
use crate::options::Config;
use crate::pseudonym::Pseudonymiser;
use crate::timestamp::instant;

/// What an archive holds, as written to `batch.json`'s `export.counts`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExportCounts {
    /// Submissions with at least one exported response.
    pub submissions: u64,
    /// Tasks with at least one exported response.
    pub tasks: u64,
    /// Exported responses.
    pub responses: u64,
    /// Entries under `files/`.
    pub files: u64,
    /// `no_submission` responses left out.
    pub excluded_no_submission: u64,
    /// Rows of `responses.csv` (one per answer item), when the archive has tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub responses_csv_rows: Option<u64>,
    /// Rows of `codebook.csv`, when the archive has tables.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codebook_csv_rows: Option<u64>,
}

/// One exported response with what its ordering and its file keys need.
/// Kept small (48 bytes): the pivot holds two of these per exported response.
#[derive(Clone, Copy)]
pub(crate) struct Exported<'r> {
    pub(crate) response: &'r Response,
    pub(crate) submission: &'r Submission,
    created: CreatedKey,
    /// Position of the response in the records, for its decoded file keys.
    index: u32,
    task: u32,
    instruction: u32,
    /// Position of the submission's id in byte order: sorting by it is
    /// sorting by `submission_id`, without comparing strings.
    submission_rank: u32,
}

/// `created_at` as a sort key: the instant in whole seconds and the
/// nanoseconds past them (16 bytes, where an `Option<i128>` takes 32).
/// A missing time is the smallest key, so it sorts first.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct CreatedKey {
    seconds: i64,
    nanos: u32,
}

impl CreatedKey {
    const MISSING: CreatedKey = CreatedKey {
        seconds: i64::MIN,
        nanos: 0,
    };

    fn new(instant: Option<i128>) -> CreatedKey {
        // Years of four digits keep the seconds far from i64::MIN.
        instant.map_or(CreatedKey::MISSING, |nanos| CreatedKey {
            seconds: nanos.div_euclid(1_000_000_000) as i64,
            nanos: nanos.rem_euclid(1_000_000_000) as u32,
        })
    }

    /// Nanoseconds since the epoch, `None` when missing.
    fn instant(self) -> Option<i128> {
        (self != CreatedKey::MISSING)
            .then(|| i128::from(self.seconds) * 1_000_000_000 + i128::from(self.nanos))
    }
}

impl Exported<'_> {
    /// The by-submission sort key as bytes whose byte order is the view's
    /// order (submission, task, instruction, `created_at`, id): what the
    /// spilled runs of a build past its memory budget are sorted by.
    pub(crate) fn by_submission_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.submission_rank.to_be_bytes());
        out.extend_from_slice(&self.task.to_be_bytes());
        self.within_task_key(out);
    }

    /// The by-task sort key as bytes (task, submission, then as above).
    pub(crate) fn by_task_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.task.to_be_bytes());
        out.extend_from_slice(&self.submission_rank.to_be_bytes());
        self.within_task_key(out);
    }

    /// [`Exported::within_task`] as bytes: big-endian integers, the sign
    /// bit of the seconds flipped so negative instants sort first, and the
    /// id last, so a shorter id that is a prefix of a longer one sorts
    /// first, as `str` comparison does.
    fn within_task_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.instruction.to_be_bytes());
        let seconds = (self.created.seconds as u64) ^ (1 << 63);
        out.extend_from_slice(&seconds.to_be_bytes());
        out.extend_from_slice(&self.created.nanos.to_be_bytes());
        out.extend_from_slice(self.response.id.as_bytes());
    }

    /// Position of the response in the records.
    pub(crate) fn index(&self) -> usize {
        self.index as usize
    }

    /// Position of the response's submission in `submission_id` order.
    pub(crate) fn submission_rank(&self) -> usize {
        self.submission_rank as usize
    }

    /// Index of the response's task in the records.
    pub(crate) fn task(&self) -> usize {
        self.task as usize
    }

    /// Instruction order, then `created_at` (missing first), then id.
    fn within_task(&self, other: &Self) -> Ordering {
        self.instruction
            .cmp(&other.instruction)
            .then_with(|| self.created.cmp(&other.created))
            .then_with(|| self.response.id.cmp(&other.response.id))
    }
}

/// An upload that goes into `files/`.
pub(crate) struct FileEntry<'r> {
    pub(crate) name: String,
    pub(crate) upload: &'r Upload,
    /// The upload's line in `uploads.jsonl` (or position), for messages.
    pub(crate) index: usize,
}

/// The two views of one batch.
pub(crate) struct Pivot<'r> {
    /// Exported responses in by-submission order.
    pub(crate) by_submission: Vec<Exported<'r>>,
    /// One range of `by_submission` per submission, each split per task.
    pub(crate) submission_groups: Vec<(Range<usize>, Vec<Range<usize>>)>,
    /// Exported responses in by-task order.
    pub(crate) by_task: Vec<Exported<'r>>,
    /// One range of `by_task` per task.
    pub(crate) task_groups: Vec<Range<usize>>,
    /// Entry name of every exported upload, by `file_key`; shared by the
    /// windows of a spilled build.
    pub(crate) paths: Arc<HashMap<&'r str, String>>,
    /// Exported uploads, sorted by entry name.
    pub(crate) files: Vec<FileEntry<'r>>,
    /// The file keys of every response's answer items.
    pub(crate) file_keys: &'r FileKeys,
    pub(crate) counts: ExportCounts,
    pub(crate) tasks: &'r [Task],
    /// The pseudonym of each submission's participant, by submission rank;
    /// empty when the export is not pseudonymised.
    pseudonyms: Arc<[String]>,
    /// Rewrites pass-through `participant_id`s, when pseudonymising.
    pub(crate) pseudonymiser: Option<Pseudonymiser>,
    /// False when the archive leaves the uploads out (`"path": null`).
    pub(crate) include_files: bool,
    /// True when `responses.csv` and `codebook.csv` follow the views.
    pub(crate) tables: bool,
}

impl<'r> Pivot<'r> {
    /// The `participant_id` the archive shows for an exported response's
    /// submission: the record's own, or its pseudonym.
    pub(crate) fn participant_id<'a>(&'a self, exported: &Exported<'a>) -> &'a str {
        match self.pseudonyms.get(exported.submission_rank()) {
            Some(pseudonym) => pseudonym,
            None => &exported.submission.participant_id,
        }
    }

    /// Pass-through JSON text as the archive shows it: with any
    /// `participant_id` inside pseudonymised.
    pub(crate) fn pass_through<'t>(&self, text: &'t str) -> std::borrow::Cow<'t, str> {
        match &self.pseudonymiser {
            Some(p) => p.rewrite_json(text),
            None => std::borrow::Cow::Borrowed(text),
        }
    }
}

/// The records' ids resolved to what the views order by: instruction and
/// task positions, and each submission's rank in `submission_id` order.
pub(crate) struct Lookup<'r> {
    instructions: HashMap<&'r str, u32>,
    tasks: HashMap<&'r str, u32>,
    submissions: HashMap<&'r str, (u32, &'r Submission)>,
    /// Submissions in `submission_id` order.
    ranked: Vec<&'r Submission>,
}

impl<'r> Lookup<'r> {
    /// Resolves the ids of everything but the responses (which are not
    /// read: a spilled build has none in memory).
    pub(crate) fn new(records: &'r Records) -> Lookup<'r> {
        let instructions = records
            .instructions
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i as u32))
            .collect();
        let tasks = records
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.as_str(), i as u32))
            .collect();
        let mut ranked: Vec<&Submission> = records.submissions.iter().collect();
        ranked.par_sort_unstable_by(|a, b| a.id.cmp(&b.id));
        let submissions = ranked
            .iter()
            .enumerate()
            .map(|(rank, s)| (s.id.as_str(), (rank as u32, *s)))
            .collect();
        Lookup {
            instructions,
            tasks,
            submissions,
            ranked,
        }
    }

    /// Submissions, by rank.
    pub(crate) fn submission_count(&self) -> usize {
        self.ranked.len()
    }

    /// The pseudonym of each submission's participant by rank, when
    /// pseudonymising.
    pub(crate) fn pseudonyms(&self, config: &Config) -> Arc<[String]> {
        match &config.pseudonymiser {
            Some(p) => self
                .ranked
                .par_iter()
                .map(|s| p.pseudonym(&s.participant_id))
                .collect::<Vec<_>>()
                .into(),
            None => Arc::from(Vec::new()),
        }
    }

    /// The response at `index` with its ordering, when its references
    /// resolve and it matches the filter (`no_submission` ones included).
    pub(crate) fn in_scope<'a>(
        &self,
        index: usize,
        response: &'a Response,
        config: &Config,
    ) -> Option<Exported<'a>>
    where
        'r: 'a,
    {
        let &(submission_rank, submission) =
            self.submissions.get(response.submission_id.as_str())?;
        let exported = Exported {
            response,
            submission,
            index: index as u32,
            task: *self.tasks.get(response.task_id.as_str())?,
            instruction: *self.instructions.get(response.instruction_id.as_str())?,
            submission_rank,
            created: CreatedKey::new(instant(response.created_at.as_ref())),
        };
        matches_filter(&exported, config).then_some(exported)
    }
}

/// Builds the views. The records must have passed `validate::check_records`.
pub(crate) fn pivot<'r>(
    records: &'r Records,
    file_keys: &'r FileKeys,
    config: &Config,
) -> Pivot<'r> {
    let lookup = Lookup::new(records);
    let pseudonyms = lookup.pseudonyms(config);
    let in_scope: Vec<Exported<'r>> = records
        .responses
        .par_iter()
        .enumerate()
        .filter_map(|(index, response)| lookup.in_scope(index, response, config))
        .collect();
    // Counted and dropped in place: a second list of a million entries
    // only to count them would double the pivot's memory.
    let excluded = in_scope
        .par_iter()
        .filter(|e| e.response.is_no_submission())
        .count();
    let mut by_submission = in_scope;
    by_submission.retain(|e| !e.response.is_no_submission());

    by_submission.par_sort_unstable_by(|a, b| {
        a.submission_rank
            .cmp(&b.submission_rank)
            .then(a.task.cmp(&b.task))
            .then_with(|| a.within_task(b))
    });
    let by_task = by_task_order(&by_submission, records.tasks.len());

    let (submission_groups, task_groups) = groups_of(&by_submission, &by_task);

    // Without files nothing is named: no upload is looked at at all.
    let (paths, files) = if config.include_files {
        // Naming follows view order, which decides how clashes are numbered.
        let keys = by_submission
            .iter()
            .flat_map(|e| file_keys.of(e.index()).iter().flatten());
        name_files(records, keys)
    } else {
        (HashMap::default(), Vec::new())
    };
    let (responses_csv_rows, codebook_csv_rows) = if config.tables {
        let items: usize = by_submission
            .par_iter()
            .map(|e| e.response.answer.len())
            .sum();
        (Some(items as u64), Some(codebook_rows(records)))
    } else {
        (None, None)
    };
    let counts = ExportCounts {
        submissions: submission_groups.len() as u64,
        tasks: task_groups.len() as u64,
        responses: by_submission.len() as u64,
        files: files.len() as u64,
        excluded_no_submission: excluded as u64,
        responses_csv_rows,
        codebook_csv_rows,
    };
    Pivot {
        by_submission,
        submission_groups,
        by_task,
        task_groups,
        ..Pivot::spilled(
            records,
            file_keys,
            config,
            pseudonyms,
            (paths, files),
            counts,
        )
    }
}

/// The options of a choice instruction (`multiple_choice` or
/// `multiple_choice_with_free_text`) as the batch lists them; none for
/// any other instruction, or when `options` is not a list.
pub(crate) fn choice_options(instruction: &Instruction) -> Vec<RawJson> {
    let choice = matches!(
        instruction.kind,
        InstructionType::MultipleChoice | InstructionType::MultipleChoiceWithFreeText
    );
    let Some(list) = instruction.fields.get("options").filter(|_| choice) else {
        return Vec::new();
    };
    serde_json::from_str::<Vec<Box<serde_json::value::RawValue>>>(list.get())
        .map(|items| items.iter().map(|item| RawJson::from_raw(item)).collect())
        .unwrap_or_default()
}

/// Rows of `codebook.csv` (header excluded): one per instruction, one per
/// option of a choice instruction.
pub(crate) fn codebook_rows(records: &Records) -> u64 {
    records
        .instructions
        .iter()
        .map(|i| 1 + choice_options(i).len() as u64)
        .sum()
}

/// The groups of both views: submissions (each split per task) in the
/// by-submission order, tasks in the by-task one.
#[allow(clippy::type_complexity)]
fn groups_of(
    by_submission: &[Exported<'_>],
    by_task: &[Exported<'_>],
) -> (Vec<(Range<usize>, Vec<Range<usize>>)>, Vec<Range<usize>>) {
    let submission_groups = runs(by_submission, |a, b| a.submission_rank == b.submission_rank)
        .into_iter()
        .map(|range| {
            let tasks = runs(&by_submission[range.clone()], |a, b| a.task == b.task)
                .into_iter()
                .map(|r| r.start + range.start..r.end + range.start)
                .collect();
            (range, tasks)
        })
        .collect::<Vec<_>>();
    (submission_groups, runs(by_task, |a, b| a.task == b.task))
}

impl<'r> Pivot<'r> {
    /// The pivot of a build past its memory budget, before any response is
    /// in memory: its counts, names and files, with empty views that
    /// [`Pivot::window`] fills a window at a time.
    pub(crate) fn spilled(
        records: &'r Records,
        file_keys: &'r FileKeys,
        config: &Config,
        pseudonyms: Arc<[String]>,
        (paths, files): (HashMap<&'r str, String>, Vec<FileEntry<'r>>),
        counts: ExportCounts,
    ) -> Pivot<'r> {
        Pivot {
            by_submission: Vec::new(),
            submission_groups: Vec::new(),
            by_task: Vec::new(),
            task_groups: Vec::new(),
            paths: Arc::new(paths),
            files,
            file_keys,
            counts,
            tasks: &records.tasks,
            pseudonyms,
            pseudonymiser: config.pseudonymiser.clone(),
            include_files: config.include_files,
            tables: config.tables,
        }
    }

    /// A pivot over one window of responses merged from spilled runs,
    /// already in view order (`by_submission` or `by_task`, the other
    /// left empty): what the line writers of that view read. Names,
    /// pseudonyms and counts are shared with `self`.
    pub(crate) fn window<'w>(
        &'w self,
        by_submission: Vec<Exported<'w>>,
        by_task: Vec<Exported<'w>>,
        file_keys: &'w FileKeys,
    ) -> Pivot<'w> {
        let (submission_groups, task_groups) = groups_of(&by_submission, &by_task);
        Pivot {
            by_submission,
            submission_groups,
            by_task,
            task_groups,
            paths: Arc::clone(&self.paths),
            files: Vec::new(),
            file_keys,
            counts: self.counts,
            tasks: self.tasks,
            pseudonyms: Arc::clone(&self.pseudonyms),
            pseudonymiser: self.pseudonymiser.clone(),
            include_files: self.include_files,
            tables: self.tables,
        }
    }
}

fn matches_filter(exported: &Exported<'_>, config: &Config) -> bool {
    let filter = &config.filter;
    if let Some(study) = &filter.study_id {
        let study_of_submission = exported
            .submission
            .study_id
            .as_ref()
            .and_then(|s| s.as_string());
        if study_of_submission.as_deref() != Some(study.as_str()) {
            return false;
        }
    }
    if filter.has_time_bounds() {
        let Some(created) = exported.created.instant() else {
            return false;
        };
        if filter.from.is_some_and(|from| created < from)
            || filter.to.is_some_and(|to| created >= to)
        {
            return false;
        }
    }
    true
}

/// The by-task order (task, then submission, then within the task) from the
/// by-submission one (submission, then task, then within the task): a
/// stable bucket pass by task keeps the rest of the order, in linear time.
fn by_task_order<'r>(by_submission: &[Exported<'r>], tasks: usize) -> Vec<Exported<'r>> {
    let mut starts = vec![0usize; tasks + 1];
    for e in by_submission {
        starts[e.task() + 1] += 1;
    }
    for t in 0..tasks {
        starts[t + 1] += starts[t];
    }
    // Every slot is overwritten below; the copy only gives the list its length.
    let mut by_task = by_submission.to_vec();
    for e in by_submission {
        by_task[starts[e.task()]] = *e;
        starts[e.task()] += 1;
    }
    by_task
}

/// Splits a sorted slice into runs of equal neighbours.
fn runs<T>(items: &[T], same: impl Fn(&T, &T) -> bool) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    for i in 1..=items.len() {
        if i == items.len() || !same(&items[start], &items[i]) {
            if i > start {
                ranges.push(start..i);
            }
            start = i;
        }
    }
    ranges
}

/// Names every upload the `keys` name, in their order: the order the
/// by-submission view meets them (submission, task, instruction, answer
/// position), so clashes are numbered in that order. A key met again, or
/// with no upload record, is skipped.
pub(crate) fn name_files<'r, 'k>(
    records: &'r Records,
    keys: impl Iterator<Item = &'k Id>,
) -> (HashMap<&'r str, String>, Vec<FileEntry<'r>>) {
    let uploads: HashMap<&str, usize> = records
        .uploads
        .iter()
        .enumerate()
        .map(|(i, u)| (u.file_key.as_str(), i))
        .collect();
    let mut registry = NameRegistry::new();
    let mut paths: HashMap<&'r str, String> = HashMap::default();
    let mut files = Vec::new();
    for key in keys {
        let Some(&index) = uploads.get(key.as_str()) else {
            continue;
        };
        let upload = &records.uploads[index];
        if paths.contains_key(upload.file_key.as_str()) {
            continue;
        }
        let name = registry.claim(
            &safe_prefix(&upload.submission_id),
            &safe_file_name(&upload.file_name),
        );
        paths.insert(upload.file_key.as_str(), name.clone());
        files.push(FileEntry {
            name,
            upload,
            index,
        });
    }
    // Names are unique, so an unstable sort gives the one order.
    files.par_sort_unstable_by(|a, b| a.name.cmp(&b.name));
    (paths, files)
}

#[cfg(test)]
mod tests {
    use super::{runs, CreatedKey, Exported};

    #[test]
    fn exported_stays_small() {
        assert!(std::mem::size_of::<Exported<'_>>() <= 48);
    }

    #[test]
    fn created_key_orders_as_the_instant_with_missing_first() {
        let instants = [
            None,
            Some(-1_500_000_000),
            Some(-1),
            Some(0),
            Some(1),
            Some(2_000_000_001),
        ];
        let keys: Vec<CreatedKey> = instants.iter().map(|&i| CreatedKey::new(i)).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let back: Vec<Option<i128>> = keys.iter().map(|k| k.instant()).collect();
        assert_eq!(back, instants);
    }

    #[test]
    fn runs_split_equal_neighbours() {
        assert_eq!(
            runs(&[1, 1, 2, 3, 3, 3], |a, b| a == b),
            vec![0..2, 2..3, 3..6]
        );
        assert!(runs::<u8>(&[], |a, b| a == b).is_empty());
    }
}
