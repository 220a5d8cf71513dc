//! Streaming the two JSON Lines views into their entries: lines are
//! serialised a window of groups at a time (in parallel), cut into the same
//! fixed chunks [`deflate::deflate`] uses for a whole buffer, and written as
//! they are compressed, so a view never sits in memory whole, uncompressed
//! or compressed.
//!
//! The entry header is written before the view's size is known, so the
//! ZIP64 decision rests on an upper bound of that size computed from the
//! records: when even the bound stays under 4 GiB, no ZIP64 is needed
//! whatever the lines turn out to be. A view whose bound reaches 4 GiB is
//! built whole instead (`None` from [`view_bound`]), so ZIP64 is still used
//! only when needed. Either way the bytes depend only on the records.

use std::io::{self, Seek, Write};

use rayon::prelude::*;

use super::deflate::{self, CHUNK};
use super::zip::{Method, ZipWriter};
use crate::error::Error;
use crate::options::{Config, ProgressEvent};
use crate::pivot::{Exported, Pivot};

/// Responses serialised per window: about 10 MB of lines.
pub(crate) const WINDOW_RESPONSES: usize = 32 * 1024;
/// Compress once this many bytes of whole chunks are pending, so each step
/// gives every worker a few chunks.
const FLUSH_BYTES: usize = 8 * CHUNK;
/// Streaming is used only when the bound, deflated, stays under this: below
/// the 4 GiB where ZIP64 starts.
const STREAM_LIMIT: u64 = u32::MAX as u64 - (1 << 20);

/// Which view to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum View {
    BySubmission,
    ByTask,
    /// `responses.csv`: its rows grouped by submission, like the first view.
    ResponsesCsv,
}

impl View {
    fn groups(self, pivot: &Pivot<'_>) -> usize {
        match self {
            View::BySubmission | View::ResponsesCsv => pivot.submission_groups.len(),
            View::ByTask => pivot.task_groups.len(),
        }
    }

    /// Responses of group `g`: the weight a window is cut by.
    fn weight(self, pivot: &Pivot<'_>, g: usize) -> usize {
        match self {
            View::BySubmission | View::ResponsesCsv => pivot.submission_groups[g].0.len(),
            View::ByTask => pivot.task_groups[g].len(),
        }
    }

    pub(crate) fn line(self, pivot: &Pivot<'_>, g: usize, out: &mut Vec<u8>) {
        match self {
            View::BySubmission => super::entries::submission_line(pivot, g, out),
            View::ByTask => super::entries::task_line(pivot, g, out),
            View::ResponsesCsv => super::tables::submission_rows(pivot, g, out),
        }
    }

    /// What comes before the first group: the CSV's header.
    pub(crate) fn prefix(self) -> Vec<u8> {
        match self {
            View::ResponsesCsv => super::tables::responses_header(),
            View::BySubmission | View::ByTask => Vec::new(),
        }
    }
}

/// How [`view_size`] counts: escaping growth and the room for keys,
/// punctuation and generated paths.
struct Scale {
    /// The most a string grows when written as JSON.
    escape: u64,
    /// Keys and punctuation of one response.
    response: u64,
    /// Keys and punctuation of one line.
    group: u64,
    /// Keys and punctuation of one task inside a by-submission line.
    task: u64,
    /// A `path`'s bytes beyond the submission id: "files/", "_", the
    /// name (at most 200 bytes), a "-N" suffix, and its key.
    path: u64,
}

/// Holds for any records: every string escaped at worst, the longest name.
const BOUND: Scale = Scale {
    escape: 6,
    response: 256,
    group: 256,
    task: 64,
    path: 256,
};

/// Typical records: nothing escaped, names of a few dozen bytes.
const ESTIMATE: Scale = Scale {
    escape: 1,
    response: 130,
    group: 110,
    task: 30,
    path: 40,
};

/// An upper bound of the view's size in bytes, or `None` when it reaches
/// 4 GiB and the view must be built whole to learn whether it needs ZIP64.
pub(crate) fn view_bound(view: View, pivot: &Pivot<'_>) -> Option<u64> {
    let bound = view_size(view, pivot, &BOUND);
    (deflate::max_deflated_size(bound) < STREAM_LIMIT).then_some(bound)
}

/// About the size the view will have, for progress reports.
pub(crate) fn view_estimate(view: View, pivot: &Pivot<'_>) -> u64 {
    view_size(view, pivot, &ESTIMATE)
}

fn view_size(view: View, pivot: &Pivot<'_>, scale: &Scale) -> u64 {
    let responses: u64 = match view {
        View::BySubmission => &pivot.by_submission,
        View::ByTask => &pivot.by_task,
        View::ResponsesCsv => {
            return super::tables::responses_size(pivot, scale.escape > 1);
        }
    }
    .par_iter()
    .map(|e| response_size(e, scale, pivot))
    .sum();
    // Pseudonymised pass-through text at most doubles (see `growth`).
    let growth = growth(pivot);
    let groups: u64 = match view {
        View::BySubmission => pivot
            .submission_groups
            .iter()
            .map(|(range, tasks)| {
                let s = pivot.by_submission[range.start].submission;
                let raw = [&s.study_id, &s.status, &s.started_at, &s.completed_at];
                let tasks: u64 = tasks
                    .iter()
                    .map(|t| {
                        let task = &pivot.tasks[pivot.by_submission[t.start].task()];
                        scale.task + scale.escape * task.id.len() as u64
                    })
                    .sum();
                scale.group
                    + scale.escape * (s.id.len() + participant_len(s, pivot)) as u64
                    + growth * raw.iter().map(|v| raw_len(v.as_ref())).sum::<u64>()
                    + growth * extra_len(&s.extra, scale)
                    + tasks
            })
            .sum(),
        View::ByTask => pivot
            .task_groups
            .iter()
            .map(|range| {
                let t = &pivot.tasks[pivot.by_task[range.start].task()];
                let raw = [&t.group_id, &t.datapoint, &t.metadata];
                scale.group
                    + scale.escape * t.id.len() as u64
                    + growth * raw.iter().map(|v| raw_len(v.as_ref())).sum::<u64>()
                    + growth * extra_len(&t.extra, scale)
            })
            .sum(),
        View::ResponsesCsv => 0,
    };
    responses + groups
}

/// How much pass-through text can grow: pseudonymising a `participant_id`
/// inside it replaces a string of at least two bytes, behind a 17-byte key,
/// by one of 20, so the text at most doubles.
fn growth(pivot: &Pivot<'_>) -> u64 {
    if pivot.pseudonymiser.is_some() {
        2
    } else {
        1
    }
}

/// The length of the `participant_id` the archive shows: a pseudonym has 18 bytes.
fn participant_len(s: &crate::model::Submission, pivot: &Pivot<'_>) -> usize {
    if pivot.pseudonymiser.is_some() {
        s.participant_id.len().max(18)
    } else {
        s.participant_id.len()
    }
}

fn raw_len(value: Option<&crate::model::RawJson>) -> u64 {
    value.map_or(4, |v| v.get().len() as u64)
}

fn extra_len(extra: &[(String, crate::model::RawJson)], scale: &Scale) -> u64 {
    extra
        .iter()
        .map(|(k, v)| 4 + scale.escape * k.len() as u64 + v.get().len() as u64)
        .sum()
}

/// A response as either view writes it: keys, escaped strings, pass-through
/// values, and for file-upload answers the re-written item with its `path`.
fn response_size(e: &Exported<'_>, scale: &Scale, pivot: &Pivot<'_>) -> u64 {
    let r = e.response;
    let growth = growth(pivot);
    let strings = r.id.len()
        + r.instruction_id.len()
        + r.kind.len()
        + e.submission.id.len()
        + participant_len(e.submission, pivot);
    // Only file-upload items gain a path, but the bound gives every item one.
    let path = if scale.escape > 1 || r.kind == "file_upload" {
        scale.escape * (e.submission.id.len() as u64 + scale.path)
    } else {
        0
    };
    let answer: u64 = r
        .answer
        .iter()
        .map(|item| 1 + growth * scale.escape * item.get().len() as u64 + path)
        .sum();
    scale.response
        + scale.escape * strings as u64
        + answer
        + growth * raw_len(r.correlation_id.as_ref())
        + growth * raw_len(r.created_at.as_ref())
        + growth * extra_len(&r.extra, scale)
}

/// Serialises the view a window of groups at a time, the window's lines in
/// parallel, and hands each window's lines, in order, to `sink`.
fn for_each_window<E>(
    view: View,
    pivot: &Pivot<'_>,
    mut sink: impl FnMut(Vec<Vec<u8>>) -> Result<(), E>,
) -> Result<(), E> {
    let groups = view.groups(pivot);
    let mut start = 0;
    while start < groups {
        let mut end = start;
        let mut weight = 0;
        while end < groups && (end == start || weight < WINDOW_RESPONSES) {
            weight += view.weight(pivot, end);
            end += 1;
        }
        let lines: Vec<Vec<u8>> = (start..end)
            .into_par_iter()
            .map(|g| {
                let mut line = Vec::with_capacity(256 * view.weight(pivot, g));
                view.line(pivot, g, &mut line);
                line
            })
            .collect();
        sink(lines)?;
        start = end;
    }
    Ok(())
}

/// Writes one view as plain JSON Lines to `out`, streaming; returns its size.
pub(crate) fn write_plain(view: View, pivot: &Pivot<'_>, out: &mut dyn Write) -> io::Result<u64> {
    let prefix = view.prefix();
    out.write_all(&prefix)?;
    let mut total = prefix.len() as u64;
    for_each_window(view, pivot, |lines| {
        lines.iter().try_for_each(|line| {
            total += line.len() as u64;
            out.write_all(line)
        })
    })?;
    Ok(total)
}

/// Writes one view as an entry whose size is at most `bound`, streaming;
/// returns the view's size.
pub(crate) fn write_view<W: Write + Seek>(
    zip: &mut ZipWriter<W>,
    name: &str,
    view: View,
    pivot: &Pivot<'_>,
    bound: u64,
    config: &Config,
) -> Result<u64, Error> {
    let (method, max_compressed) = if config.level == 0 {
        (Method::Stored, bound)
    } else {
        (Method::Deflated, deflate::max_deflated_size(bound))
    };
    let entry = zip
        .begin_streamed(name, method, bound, max_compressed)
        .map_err(Error::Write)?;
    let (crc, total) = compress_stream(
        view.prefix(),
        config,
        &mut |sink| for_each_window(view, pivot, sink),
        &mut |piece| zip.write_raw(piece).map_err(Error::Write),
    )?;
    zip.end_streamed(entry, crc, total).map_err(Error::Write)?;
    Ok(total)
}

/// Hands the pieces of a view's text, a window at a time, to a sink.
pub(crate) type Pieces<'p> =
    dyn FnMut(&mut dyn FnMut(Vec<Vec<u8>>) -> Result<(), Error>) -> Result<(), Error> + 'p;

/// The text `prefix` and then what `pieces` produces, compressed (or
/// stored, at level 0) in the same chunks [`deflate::deflate`] cuts a whole
/// buffer into, each compressed piece handed to `out` in order. Returns the
/// CRC-32 and the size of the text.
pub(crate) fn compress_stream(
    prefix: Vec<u8>,
    config: &Config,
    pieces: &mut Pieces<'_>,
    out: &mut dyn FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(u32, u64), Error> {
    let stored = config.level == 0;
    let mut crc = crc32fast::Hasher::new();
    let mut total = 0u64;
    let mut emit = |data: &[u8], last: bool| -> Result<(), Error> {
        if stored {
            crc.update(data);
            out(data)?;
        } else {
            let deflated = deflate::deflate(data, config.level, last);
            crc.combine(&deflated.crc);
            for piece in &deflated.pieces {
                out(piece)?;
            }
        }
        total += data.len() as u64;
        config.report(ProgressEvent::Advanced {
            bytes: data.len() as u64,
        });
        Ok(())
    };

    let mut pending: Vec<u8> = prefix;
    pieces(&mut |lines| {
        config.check_cancelled()?;
        lines
            .iter()
            .for_each(|line| pending.extend_from_slice(line));
        // Whole chunks only, and never the last byte: the final chunk, and
        // only it, must carry the end of the stream, exactly as when the
        // view is deflated in one piece.
        let ready = (pending.len().saturating_sub(1) / CHUNK) * CHUNK;
        if ready >= FLUSH_BYTES {
            emit(&pending[..ready], false)?;
            pending.drain(..ready);
        }
        Ok(())
    })?;
    emit(&pending, true)?;
    Ok((crc.finalize(), total))
}
