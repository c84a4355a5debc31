//! Progress bars on stderr when it is a terminal.

use std::io::IsTerminal;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};

use crate::drill::{NoProgress, Progress};
use crate::kinds::CopyProgress;

/// Progress bars on stderr when it is a terminal; nothing otherwise.
pub(super) struct TerminalProgress {
    bar: ProgressBar,
}

impl TerminalProgress {
    pub(super) fn shared() -> Arc<dyn Progress> {
        if std::io::stderr().is_terminal() {
            Arc::new(TerminalProgress {
                bar: ProgressBar::hidden(),
            })
        } else {
            Arc::new(NoProgress)
        }
    }
}

impl CopyProgress for TerminalProgress {
    fn start(&self, files: usize, bytes: u64) {
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.bar.set_length(bytes);
        self.bar.set_position(0);
        self.bar.set_style(
            ProgressStyle::with_template(
                "restoring {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        self.bar.set_message(format!("{files} files"));
    }
    fn copied(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Progress for TerminalProgress {
    fn scan_started(&self, what: &str) {
        self.bar.reset();
        self.bar
            .set_draw_target(indicatif::ProgressDrawTarget::stderr());
        self.bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}").expect("valid template"),
        );
        self.bar.set_message(what.to_string());
        self.bar
            .enable_steady_tick(std::time::Duration::from_millis(120));
    }
    fn scan_finished(&self) {
        self.bar.finish_and_clear();
    }
}
