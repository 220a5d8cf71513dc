//! The views of a spilled build: each view's runs merged, a window of
//! responses at a time, into the same lines the pivot in memory gives.
//!
//! A by-submission window ends after a whole submission (a submission's
//! line is written whole, as in memory); a by-task window may end inside a
//! task, whose line then continues in the next window between the line's
//! two ends ([`entries::task_line_ends`]), so one popular task never has to
//! fit in memory. The compressed view is spooled into the run directory,
//! then copied into the archive with its exact sizes, so ZIP64 is used
//! exactly when a build in memory uses it.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, SyncSender};

use rayon::prelude::*;

use super::codec;
use super::pass::ViewRuns;
use super::runs::Merge;
use crate::archive::entries::{task_line_ends, write_responses};
use crate::archive::text::{compress_stream, View, WINDOW_RESPONSES};
use crate::archive::zip::{EntryData, Method, ZipWriter};
use crate::archive::{Views, WriteSeek};
use crate::error::Error;
use crate::model::file_keys::FileKeys;
use crate::model::Response;
use crate::options::Config;
use crate::pivot::{Exported, Lookup, Pivot};

/// The views of a spilled build, from their runs.
pub(crate) struct MergedViews<'a, 'r> {
    /// The pivot with the counts, names and pseudonyms (and no responses).
    pub(crate) pivot: &'a Pivot<'r>,
    pub(crate) lookup: &'a Lookup<'r>,
    pub(crate) runs: ViewRuns,
    /// The run directory, where views are spooled too.
    pub(crate) dir: &'a Path,
    pub(crate) estimate: u64,
}

impl Views for MergedViews<'_, '_> {
    fn estimate(&self, _view: View) -> u64 {
        self.estimate
    }

    fn write(
        &mut self,
        zip: &mut ZipWriter<&mut dyn WriteSeek>,
        name: &'static str,
        view: View,
        config: &Config,
    ) -> Result<u64, Error> {
        let path = self.dir.join("view");
        let io_error = |e| Error::io(&path, e);
        // Read back once written: opened for both.
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(io_error)?;
        let mut spool = BufWriter::with_capacity(1 << 20, file);
        let mut compressed = 0u64;
        let (crc32, uncompressed) = compress_stream(
            view.prefix(),
            config,
            &mut |sink| self.for_each_window(view, config, sink),
            &mut |piece| {
                compressed += piece.len() as u64;
                spool.write_all(piece).map_err(io_error)
            },
        )?;
        let mut file = spool.into_inner().map_err(|e| io_error(e.into_error()))?;
        file.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let method = if config.level == 0 {
            Method::Stored
        } else {
            Method::Deflated
        };
        let data = EntryData {
            crc32,
            compressed,
            uncompressed,
        };
        zip.add_copied(
            name,
            method,
            data,
            &mut BufReader::with_capacity(1 << 20, file),
        )
        .map_err(Error::Write)?;
        std::fs::remove_file(&path).map_err(io_error)?;
        Ok(uncompressed)
    }
}

impl MergedViews<'_, '_> {
    /// Hands the pieces of `view`'s text to `sink`, a window at a time.
    /// A thread of its own merges the runs into the next window while the
    /// pool decodes, serialises and compresses the one before, so the
    /// merge, serial by nature, is not on the way of the parallel work.
    pub(super) fn for_each_window(
        &self,
        view: View,
        config: &Config,
        sink: &mut dyn FnMut(Vec<Vec<u8>>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        let runs = match view {
            View::BySubmission | View::ResponsesCsv => &self.runs.by_submission,
            View::ByTask => &self.runs.by_task,
        };
        let io_error = |e| Error::io(self.dir, e);
        std::thread::scope(|scope| {
            // One window waits while the next is merged: three in memory at most.
            let (windows, merged) = mpsc::sync_channel(1);
            scope.spawn(move || merge_windows(runs, view, &windows));
            // The task whose by-task line is open: its head is written, its tail not.
            let mut open_task: Option<usize> = None;
            for window in merged {
                let pieces =
                    self.window_pieces(&window.map_err(io_error)?, view, config, &mut open_task)?;
                sink(pieces)?;
            }
            if let Some(task) = open_task {
                sink(vec![task_line_ends(self.pivot, task).1])?;
            }
            Ok(())
        })
    }

    /// The text of one window of `view`: its responses decoded, looked up
    /// and serialised, in parallel.
    fn window_pieces(
        &self,
        window: &Window,
        view: View,
        config: &Config,
        open_task: &mut Option<usize>,
    ) -> Result<Vec<Vec<u8>>, Error> {
        let responses: Vec<Response> = (0..window.ends.len())
            .into_par_iter()
            .map(|i| codec::decode(window.payload(i)))
            .collect::<Option<_>>()
            .ok_or_else(|| Error::io(self.dir, io::Error::other("a spilled run is damaged")))?;
        let file_keys = FileKeys::of_responses(&responses);
        let exported: Vec<Exported<'_>> = responses
            .par_iter()
            .enumerate()
            .map(|(i, r)| {
                self.lookup
                    .in_scope(i, r, config)
                    .expect("only exported responses are spilled")
            })
            .collect();
        let pieces = match view {
            View::ByTask => {
                let pivot = self.pivot.window(Vec::new(), exported, &file_keys);
                self.task_pieces(&pivot, open_task)
            }
            View::BySubmission | View::ResponsesCsv => {
                let pivot = self.pivot.window(exported, Vec::new(), &file_keys);
                (0..pivot.submission_groups.len())
                    .into_par_iter()
                    .map(|g| {
                        let mut line = Vec::with_capacity(256 * pivot.submission_groups[g].0.len());
                        view.line(&pivot, g, &mut line);
                        line
                    })
                    .collect()
            }
        };
        // Freed by the pool, not one by one on this thread.
        responses.into_par_iter().for_each(drop);
        Ok(pieces)
    }

    /// The by-task text of one window: its tasks' responses, with the ends
    /// of the lines the window opens or closes.
    fn task_pieces(&self, window: &Pivot<'_>, open_task: &mut Option<usize>) -> Vec<Vec<u8>> {
        let bodies: Vec<Vec<u8>> = window
            .task_groups
            .par_iter()
            .map(|range| {
                let mut body = Vec::with_capacity(320 * range.len());
                write_responses(&mut body, &window.by_task[range.clone()], window);
                body
            })
            .collect();
        let mut pieces = Vec::with_capacity(3 * bodies.len());
        for (range, body) in window.task_groups.iter().zip(bodies) {
            let task = window.by_task[range.start].task();
            if *open_task == Some(task) {
                // The task's line goes on from the window before.
                pieces.push(b",".to_vec());
            } else {
                let (head, _) = task_line_ends(self.pivot, task);
                if let Some(done) = open_task.replace(task) {
                    pieces.push(task_line_ends(self.pivot, done).1);
                }
                pieces.push(head);
            }
            pieces.push(body);
        }
        pieces
    }
}

/// The payloads of a window of a view's records, back to back.
struct Window {
    bytes: Vec<u8>,
    /// Where each record's payload ends in `bytes`.
    ends: Vec<usize>,
}

impl Window {
    fn payload(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.bytes[start..self.ends[i]]
    }
}

/// Merges `runs` and sends their records to `windows` a window at a time,
/// until they are all sent, a read fails (its error is sent), or nobody
/// takes them any more (the view failed).
fn merge_windows(runs: &[PathBuf], view: View, windows: &SyncSender<io::Result<Window>>) {
    let mut merge = match Merge::open(runs) {
        Ok(merge) => merge,
        Err(err) => {
            let _ = windows.send(Err(err));
            return;
        }
    };
    // Sized from the window before: no growing after the first.
    let mut bytes_hint = 0;
    loop {
        match next_window(&mut merge, view, bytes_hint) {
            Ok(window) if window.ends.is_empty() => return,
            Ok(window) => {
                bytes_hint = window.bytes.len();
                if windows.send(Ok(window)).is_err() {
                    return;
                }
            }
            Err(err) => {
                let _ = windows.send(Err(err));
                return;
            }
        }
    }
}

/// The next records of a view: about [`WINDOW_RESPONSES`], and for the
/// views grouped by submission, up to the end of a submission (the first
/// four bytes of the key are the submission's rank).
fn next_window(merge: &mut Merge, view: View, bytes_hint: usize) -> io::Result<Window> {
    let mut window = Window {
        bytes: Vec::with_capacity(bytes_hint + bytes_hint / 8),
        ends: Vec::with_capacity(WINDOW_RESPONSES + 128),
    };
    let by_submission = view != View::ByTask;
    let mut submission = [0u8; 4];
    while let Some(next) = merge.peek_key() {
        if window.ends.len() >= WINDOW_RESPONSES && (!by_submission || next[..4] != submission) {
            break;
        }
        merge.pop_with(|key, payload| {
            if by_submission {
                submission.copy_from_slice(&key[..4]);
            }
            window.bytes.extend_from_slice(payload);
            window.ends.push(window.bytes.len());
        })?;
    }
    Ok(window)
}
