//! The lines of a synthetic dump: one function per record kind, each
//! writing record `i` from nothing but the plan and `i`, so lines can be
//! generated in any order and on any thread.

use std::io::Write;

use super::content::{Kind, Rng, WORDS};
use super::SynthOptions;
use crate::model::InstructionType;

/// Generator streams, one per record kind, so record `i` of one kind never
/// shares random numbers with record `i` of another.
const TASK: u64 = 1;
const SUBMISSION: u64 = 2;
const RESPONSE: u64 = 3;
const UPLOAD: u64 = 4;

/// Every timestamp is this many seconds after 2024-05-01T00:00:00Z, and
/// stays within May 2024.
const MONTH_SECONDS: u64 = 30 * 86_400;

/// The shape of the dump, derived once from the options.
pub(crate) struct Plan<'o> {
    options: &'o SynthOptions,
    /// Position of each instruction among the `file_upload` ones, if it is one.
    upload_slot_of: Vec<Option<u64>>,
    /// `file_upload` instructions.
    file_instructions: u64,
}

impl<'o> Plan<'o> {
    pub(crate) fn new(options: &'o SynthOptions) -> Plan<'o> {
        let mut file_instructions = 0;
        let upload_slot_of = (0..options.instructions)
            .map(|i| {
                (instruction_type(i) == InstructionType::FileUpload).then(|| {
                    file_instructions += 1;
                    file_instructions - 1
                })
            })
            .collect();
        Plan {
            options,
            upload_slot_of,
            file_instructions,
        }
    }

    pub(crate) fn responses(&self) -> usize {
        self.options.submissions * self.options.tasks * self.options.instructions
    }

    /// `file_upload` responses, over which uploads are spread evenly.
    fn slots(&self) -> u64 {
        (self.options.submissions * self.options.tasks) as u64 * self.file_instructions
    }

    /// The uploads answering slot `k`: `j` such that `j * slots / uploads == k`.
    fn uploads_of_slot(&self, k: u64) -> std::ops::Range<u64> {
        let (u, s) = (self.options.uploads as u64, self.slots());
        let first = |k: u64| (u128::from(k) * u128::from(u)).div_ceil(u128::from(s)) as u64;
        first(k)..first(k + 1)
    }

    fn submission_of_upload(&self, j: usize) -> usize {
        let s = self.slots();
        if s == 0 {
            return j % self.options.submissions.max(1);
        }
        let slot = (u128::from(j as u64) * u128::from(s) / self.options.uploads as u128) as u64;
        (slot / (self.options.tasks as u64 * self.file_instructions)) as usize
    }

    /// Upload `j`'s kind and size, and the generator its bytes come from.
    pub(crate) fn upload(&self, j: usize) -> (Kind, u64, Rng) {
        let mut rng = Rng::for_record(self.options.seed, UPLOAD, j as u64);
        let kind = if rng.chance(self.options.incompressible_share) {
            *rng.pick(&Kind::INCOMPRESSIBLE)
        } else {
            *rng.pick(&Kind::COMPRESSIBLE)
        };
        let size = rng.between(self.options.upload_min_bytes, self.options.upload_max_bytes);
        (kind, size, rng)
    }

    fn upload_name(&self, j: usize) -> String {
        let (kind, _, mut rng) = self.upload(j);
        // Few distinct names, so a submission's uploads sometimes clash.
        kind.file_name(rng.below(20))
    }
}

fn instruction_type(i: usize) -> InstructionType {
    InstructionType::ALL[i % InstructionType::ALL.len()]
}

pub(crate) fn file_key(j: usize) -> String {
    format!("u-{j:07}")
}

/// RFC 3339 for `seconds` after 2024-05-01T00:00:00Z (under a month).
fn timestamp(seconds: u64) -> String {
    let seconds = seconds % MONTH_SECONDS;
    let (day, rest) = (seconds / 86_400 + 1, seconds % 86_400);
    format!(
        "2024-05-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

pub(crate) fn batch(plan: &Plan<'_>, out: &mut Vec<u8>) {
    let seed = plan.options.seed;
    let _ = writeln!(
        out,
        "{{\"id\": \"batch-synth-{seed}\", \"name\": \"Synthetic batch, seed {seed}\", \
         \"workspace_id\": \"ws-synth\", \"created_at\": \"2024-04-30T08:00:00Z\", \
         \"generator\": {{\"seed\": {seed}}}}}"
    );
}

pub(crate) fn instruction(_plan: &Plan<'_>, i: usize, out: &mut Vec<u8>) -> bool {
    let kind = instruction_type(i).as_str();
    let _ = write!(
        out,
        "{{\"id\": \"i-{i:03}\", \"type\": \"{kind}\", \"description\": \"Question {i} ({kind})\""
    );
    match instruction_type(i) {
        InstructionType::MultipleChoice | InstructionType::MultipleChoiceWithFreeText => {
            out.extend_from_slice(
                br#", "options": [{"value": "yes"}, {"value": "no"}, {"value": "unsure"}]"#,
            );
        }
        InstructionType::FreeTextWithUnit => out.extend_from_slice(br#", "units": ["m", "ft"]"#),
        _ => {}
    }
    out.extend_from_slice(b"}\n");
    false
}

pub(crate) fn task(plan: &Plan<'_>, i: usize, out: &mut Vec<u8>) -> bool {
    let mut rng = Rng::for_record(plan.options.seed, TASK, i as u64);
    let _ = writeln!(
        out,
        "{{\"id\": \"t-{i:06}\", \"group_id\": \"g-{}\", \"datapoint\": {{\"image_url\": \
         \"https://example.org/data/{i:06}.jpg\", \"camera\": \"C{}\"}}, \"metadata\": \
         {{\"night\": {}}}}}",
        rng.below(10),
        rng.below(30),
        rng.chance(0.3)
    );
    false
}

/// When submission `s` started, and how long it ran, in seconds.
fn submission_window(plan: &Plan<'_>, s: usize) -> (u64, u64, Rng) {
    let mut rng = Rng::for_record(plan.options.seed, SUBMISSION, s as u64);
    let started = rng.below(MONTH_SECONDS - 86_400);
    let duration = 600 + rng.below(3_000);
    (started, duration, rng)
}

pub(crate) fn submission(plan: &Plan<'_>, s: usize, out: &mut Vec<u8>) -> bool {
    let (started, duration, mut rng) = submission_window(plan, s);
    let status = rng.pick(&["APPROVED", "APPROVED", "AWAITING REVIEW", "RETURNED"]);
    let _ = writeln!(
        out,
        "{{\"id\": \"s-{s:06}\", \"participant_id\": \"p-{s:06}\", \"study_id\": \"study-{}\", \
         \"status\": \"{status}\", \"started_at\": \"{}\", \"completed_at\": \"{}\", \"device\": \"{}\"}}",
        s % 3,
        timestamp(started),
        timestamp(started + duration),
        rng.pick(&["desktop", "tablet", "phone"])
    );
    false
}

/// Writes response `i`; returns true when it is a `no_submission` one.
pub(crate) fn response(plan: &Plan<'_>, i: usize, out: &mut Vec<u8>) -> bool {
    let o = plan.options;
    let (instr, task, sub) = (
        i % o.instructions,
        i / o.instructions % o.tasks,
        i / (o.instructions * o.tasks),
    );
    let mut rng = Rng::for_record(o.seed, RESPONSE, i as u64);
    let no_submission = rng.chance(o.no_submission_share);
    let kind = instruction_type(instr);
    let (started, duration, _) = submission_window(plan, sub);
    let created = started + rng.below(duration);
    let _ = write!(
        out,
        "{{\"id\": \"r-{i:08}\", \"submission_id\": \"s-{sub:06}\", \"task_id\": \"t-{task:06}\", \
         \"participant_id\": \"p-{sub:06}\", \"created_at\": \"{}\", ",
        timestamp(created)
    );
    if rng.chance(0.2) {
        let _ = write!(out, "\"correlation_id\": \"c-{}\", ", rng.below(1 << 32));
    }
    let type_name = if no_submission {
        "no_submission"
    } else {
        kind.as_str()
    };
    let _ = write!(
        out,
        "\"response\": {{\"instruction_id\": \"i-{instr:03}\", \"type\": \"{type_name}\", \"answer\": ["
    );
    if !no_submission {
        match (kind, plan.upload_slot_of[instr]) {
            (InstructionType::FileUpload, Some(f)) => {
                let slot = ((sub * o.tasks + task) as u64) * plan.file_instructions + f;
                for (n, j) in plan.uploads_of_slot(slot).enumerate() {
                    if n > 0 {
                        out.push(b',');
                    }
                    upload_answer(plan, j as usize, out);
                }
            }
            _ => answer(kind, &mut rng, out),
        }
    }
    out.extend_from_slice(b"]}}\n");
    no_submission
}

fn sentence(rng: &mut Rng, out: &mut Vec<u8>) {
    for w in 0..4 + rng.below(12) {
        if w > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(rng.pick(&WORDS).as_bytes());
    }
}

fn answer(kind: InstructionType, rng: &mut Rng, out: &mut Vec<u8>) {
    let choice = |rng: &mut Rng| *rng.pick(&["yes", "no", "unsure"]);
    match kind {
        InstructionType::MultipleChoice => {
            let _ = write!(out, "{{\"value\": \"{}\"}}", choice(rng));
            if rng.chance(0.3) {
                let _ = write!(out, ",{{\"value\": \"{}\"}}", choice(rng));
            }
        }
        InstructionType::MultipleChoiceWithFreeText => {
            let _ = write!(out, "{{\"value\": \"{}\", \"explanation\": \"", choice(rng));
            sentence(rng, out);
            out.extend_from_slice(b"\"}");
        }
        InstructionType::FreeTextWithUnit => {
            let unit = rng.pick(&["m", "ft"]);
            let _ = write!(
                out,
                "{{\"value\": {}.{}, \"unit\": \"{unit}\"}}",
                rng.below(200),
                rng.below(10)
            );
        }
        _ => {
            out.extend_from_slice(b"{\"value\": \"");
            sentence(rng, out);
            out.extend_from_slice(b"\"}");
        }
    }
}

fn upload_answer(plan: &Plan<'_>, j: usize, out: &mut Vec<u8>) {
    let (kind, size, _) = plan.upload(j);
    let _ = write!(
        out,
        "{{\"file_key\": \"{}\", \"file_name\": \"{}\", \"file_size_mb\": {:.6}, \"content_type\": \"{}\"}}",
        file_key(j),
        plan.upload_name(j),
        size as f64 / 1e6,
        kind.content_type()
    );
}

pub(crate) fn upload(
    plan: &Plan<'_>,
    j: usize,
    kind: Kind,
    size: u64,
    sha256: &[u8; 32],
    out: &mut Vec<u8>,
) {
    let _ = writeln!(
        out,
        "{{\"file_key\": \"{}\", \"submission_id\": \"s-{:06}\", \"file_name\": \"{}\", \
         \"size_bytes\": {size}, \"content_type\": \"{}\", \"sha256\": \"{}\"}}",
        file_key(j),
        plan.submission_of_upload(j),
        plan.upload_name(j),
        kind.content_type(),
        crate::hash::to_hex(sha256)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_within_may() {
        assert_eq!(timestamp(0), "2024-05-01T00:00:00Z");
        assert_eq!(timestamp(86_400 + 3_723), "2024-05-02T01:02:03Z");
    }

    #[test]
    fn every_upload_has_exactly_one_slot() {
        for (uploads, submissions) in [(7, 3), (40, 2), (1, 5)] {
            let options = SynthOptions {
                uploads,
                submissions,
                tasks: 3,
                ..SynthOptions::default()
            };
            let plan = Plan::new(&options);
            let mut seen = Vec::new();
            for k in 0..plan.slots() {
                for j in plan.uploads_of_slot(k) {
                    let per_submission = options.tasks as u64 * plan.file_instructions;
                    assert_eq!(
                        plan.submission_of_upload(j as usize) as u64,
                        k / per_submission
                    );
                    seen.push(j);
                }
            }
            assert_eq!(seen, (0..uploads as u64).collect::<Vec<_>>());
        }
    }
}
