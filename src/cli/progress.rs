//! A progress bar on standard error, drawn from the library's progress
//! events, and hidden when standard error is not a terminal.

use std::io::IsTerminal;

use batch_export::{Progress, ProgressEvent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws build progress as bytes of entry data written.
pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    /// A bar on standard error when it is a terminal, otherwise a silent one.
    pub fn new() -> BarProgress {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(ProgressDrawTarget::hidden());
        }
        let style = ProgressStyle::with_template(
            "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message("checking records");
        BarProgress { bar }
    }
}

impl Progress for BarProgress {
    fn event(&self, event: ProgressEvent) {
        match event {
            ProgressEvent::Writing { bytes, .. } => {
                self.bar.set_length(bytes);
                self.bar.set_message("writing archive");
            }
            ProgressEvent::Advanced { bytes } => self.bar.inc(bytes),
            ProgressEvent::Finished => self.bar.finish_and_clear(),
            // Printed even without a terminal: it explains the memory and
            // disk a big build uses, and where its time goes.
            ProgressEvent::Spilling {
                estimated_bytes,
                budget_bytes,
            } => self.bar.suspend(|| {
                eprintln!(
                    "the dump would take about {} in memory, past the memory budget of {}: \
                     spilling sorted runs to disk",
                    indicatif::HumanBytes(estimated_bytes),
                    indicatif::HumanBytes(budget_bytes),
                )
            }),
            _ => {}
        }
    }
}
