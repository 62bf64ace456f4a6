//! Busy polling (`relay run --busy-poll-us N`): after a round that received frames, a worker
//! keeps polling its receive ring (and reaping its send completions) for up to N microseconds
//! instead of going to sleep in `io_uring_enter`. A frame arriving in that window is taken
//! without a wake-up (no scheduler latency), for CPU spent spinning while nothing arrives.
//!
//! The budget is counted from the last round that received anything, so a steady stream
//! faster than one frame per budget keeps the worker spinning (its CPU is then fully used),
//! and an idle input costs at most one budget of spinning before the worker sleeps again.
//! The kernel's own busy polling (`SO_BUSY_POLL`) needs a NAPI context on the receive path,
//! which veths have only with XDP or GRO enabled, so this spins in user space.

use std::time::{Duration, Instant};

/// Whether a worker spins rather than sleeps; see the module documentation.
#[derive(Debug, Clone)]
pub(crate) struct BusyPoll {
    budget: Duration,
    last_received: Option<Instant>,
}

impl BusyPoll {
    /// A poller spinning up to `budget` after the last frame; a zero budget never spins.
    pub(crate) fn new(budget: Duration) -> BusyPoll {
        BusyPoll {
            budget,
            last_received: None,
        }
    }

    /// Called once per round: `received` says whether that round took any frame. True when a
    /// drained worker should poll again at once rather than sleep.
    /// `now` is called only when busy polling is on (a zero budget costs no clock read).
    pub(crate) fn keep_spinning(&mut self, received: bool, now: impl FnOnce() -> Instant) -> bool {
        if self.budget.is_zero() {
            return false;
        }
        let now = now();
        if received {
            self.last_received = Some(now);
        }
        match self.last_received {
            Some(at) if now.saturating_duration_since(at) < self.budget => true,
            _ => {
                self.last_received = None;
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUDGET: Duration = Duration::from_micros(50);

    #[test]
    fn a_zero_budget_never_spins() {
        let mut poll = BusyPoll::new(Duration::ZERO);
        assert!(!poll.keep_spinning(true, Instant::now));
        assert!(!poll.keep_spinning(false, Instant::now));
    }

    #[test]
    fn spins_within_the_budget_after_the_last_frame_then_sleeps() {
        let mut poll = BusyPoll::new(BUDGET);
        let start = Instant::now();
        assert!(poll.keep_spinning(true, || start));
        assert!(poll.keep_spinning(false, || start + Duration::from_micros(49)));
        assert!(!poll.keep_spinning(false, || start + BUDGET));
        // Once asleep, an empty wake-up (a send completion) does not start a new spin.
        assert!(!poll.keep_spinning(false, || start + Duration::from_micros(60)));
    }

    #[test]
    fn every_received_frame_restarts_the_budget() {
        let mut poll = BusyPoll::new(BUDGET);
        let start = Instant::now();
        assert!(poll.keep_spinning(true, || start));
        assert!(poll.keep_spinning(true, || start + Duration::from_micros(40)));
        assert!(poll.keep_spinning(false, || start + Duration::from_micros(80)));
        assert!(!poll.keep_spinning(false, || start + Duration::from_micros(90)));
    }

    #[test]
    fn an_idle_worker_never_spins() {
        let mut poll = BusyPoll::new(BUDGET);
        assert!(!poll.keep_spinning(false, Instant::now));
    }
}
