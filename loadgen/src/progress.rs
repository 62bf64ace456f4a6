//! Live progress on a terminal (indicatif), silent when stderr is not a tty or with --quiet.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// How often the display is refreshed at most.
const REFRESH: Duration = Duration::from_millis(250);

/// A throttled progress line; a no-op when disabled.
pub struct Progress {
    bar: Option<ProgressBar>,
    noun: &'static str,
    last: Instant,
    last_count: u64,
}

impl Progress {
    /// Shows progress only when `quiet` is false and stderr is a terminal.
    pub fn new(quiet: bool, noun: &'static str) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}") {
                bar.set_style(style);
            }
            bar
        });
        Progress {
            bar,
            noun,
            last: Instant::now(),
            last_count: 0,
        }
    }

    /// Reports the running total `count`; cheap to call on every batch.
    pub fn update(&mut self, count: u64) {
        let Some(bar) = &self.bar else {
            return;
        };
        let elapsed = self.last.elapsed();
        if elapsed < REFRESH {
            return;
        }
        let rate = (count - self.last_count.min(count)) as f64 / elapsed.as_secs_f64();
        bar.set_message(format!("{count} packets {} ({rate:.0} pps)", self.noun));
        bar.tick();
        self.last = Instant::now();
        self.last_count = count;
    }

    /// Removes the progress line.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
