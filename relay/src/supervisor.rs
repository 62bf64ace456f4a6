//! Worker supervision: a worker that fails (an error or a panic) is restarted, within a
//! restart budget and with a growing back-off, or the relay is told to exit; it never runs on
//! silently with fewer workers.
//!
//! - [`RestartPolicy`] / [`RestartBudget`]: at most `max_restarts` restarts of one worker per
//!   `window`; the k-th restart in the window waits `first_backoff * 2^k` (capped at
//!   `max_backoff`). A restart that fails (the fresh socket cannot be opened, say) uses up
//!   budget like a failure.
//! - [`supervise`]: the supervisor loop. Worker threads report how they ended
//!   ([`WorkerExit`]) on a channel; the loop applies the policy, calls the restart function
//!   (the data plane's: fresh sockets, re-joined to the PACKET_FANOUT group, a new thread), and
//!   keeps each worker's [`WorkerState`] and restart count in its [`WorkerStats`]. It returns
//!   [`Fatal`] when a worker cannot be kept alive.
//!
//! The loop knows nothing of sockets, so its policy is tested here with a fake restart.

use crate::stats::{self, WorkerState, WorkerStats};
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// How often the loop looks at the stop flag while idle or backing off.
const STOP_POLL: Duration = Duration::from_millis(50);

/// How many restarts a worker gets, and how long each waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts of one worker allowed within `window`; one more failure is fatal.
    pub max_restarts: usize,
    pub window: Duration,
    /// Wait before the first restart in the window; doubled for each further one.
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    /// 5 restarts per worker per minute, waiting 100 ms, 200 ms, ... up to 5 s.
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            window: Duration::from_secs(60),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// The restarts one worker has used within the policy's window.
#[derive(Debug)]
pub struct RestartBudget {
    policy: RestartPolicy,
    recent: VecDeque<Instant>,
}

impl RestartBudget {
    pub fn new(policy: RestartPolicy) -> Self {
        RestartBudget {
            policy,
            recent: VecDeque::new(),
        }
    }

    /// Takes one restart at `now`: the back-off to wait before it, or `None` when the window
    /// already holds `max_restarts` restarts (the budget is exhausted).
    pub fn take(&mut self, now: Instant) -> Option<Duration> {
        while let Some(&oldest) = self.recent.front() {
            if now.saturating_duration_since(oldest) < self.policy.window {
                break;
            }
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts {
            return None;
        }
        let doublings = u32::try_from(self.recent.len()).unwrap_or(u32::MAX).min(16);
        let backoff = self
            .policy
            .first_backoff
            .saturating_mul(1 << doublings)
            .min(self.policy.max_backoff);
        self.recent.push_back(now);
        Some(backoff)
    }
}

/// How a worker thread ended, as it reports it to the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerExit {
    /// It saw the stop flag (shutdown).
    Stopped,
    /// An error ended its loop, or it panicked; the text says which.
    Failed(String),
}

/// A worker the supervisor could not keep alive: the relay must exit non-zero.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "worker {worker} cannot be kept alive: {reason}; last failure: {last_failure}. The relay stops rather than run on with fewer workers"
)]
pub struct Fatal {
    pub worker: usize,
    pub reason: String,
    pub last_failure: String,
}

/// Runs until `stop` is set (returns `Ok`) or a worker cannot be kept alive (returns the
/// [`Fatal`] error, that worker left in state `failed`). `exits` carries (worker index, how it
/// ended); `restart(index)` starts that worker again with fresh sockets.
pub fn supervise(
    exits: &Receiver<(usize, WorkerExit)>,
    workers: &[Arc<WorkerStats>],
    policy: RestartPolicy,
    stop: &AtomicBool,
    mut restart: impl FnMut(usize) -> anyhow::Result<()>,
) -> Result<(), Fatal> {
    let mut budgets: Vec<RestartBudget> =
        workers.iter().map(|_| RestartBudget::new(policy)).collect();
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (index, exit) = match exits.recv_timeout(STOP_POLL) {
            Ok(report) => report,
            Err(RecvTimeoutError::Timeout) => continue,
            // Every sender is gone: no worker can report any more (shutdown).
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        let (Some(worker), Some(budget)) = (workers.get(index), budgets.get_mut(index)) else {
            continue;
        };
        let failure = match exit {
            WorkerExit::Failed(text) => text,
            WorkerExit::Stopped => "it ended without being asked to".to_string(),
        };
        tracing::error!("worker {index} failed: {failure}");
        revive(index, worker, budget, failure, stop, &mut restart)?;
    }
}

/// Restarts worker `index` until a restart succeeds, the budget runs out (fatal) or the relay
/// stops.
fn revive(
    index: usize,
    worker: &WorkerStats,
    budget: &mut RestartBudget,
    mut last_failure: String,
    stop: &AtomicBool,
    restart: &mut impl FnMut(usize) -> anyhow::Result<()>,
) -> Result<(), Fatal> {
    worker.set_state(WorkerState::Restarting);
    loop {
        let Some(backoff) = budget.take(Instant::now()) else {
            worker.set_state(WorkerState::Failed);
            return Err(Fatal {
                worker: index,
                reason: format!(
                    "it failed again after {} restart(s) within {} s (the restart budget)",
                    budget.policy.max_restarts,
                    budget.policy.window.as_secs()
                ),
                last_failure,
            });
        };
        if !sleep_unless_stopped(backoff, stop) {
            return Ok(());
        }
        match restart(index) {
            Ok(()) => {
                stats::bump(&worker.restarts, 1);
                worker.set_state(WorkerState::Running);
                tracing::warn!("worker {index} restarted after {backoff:?} with fresh sockets");
                return Ok(());
            }
            Err(e) => {
                last_failure = format!("restarting it failed: {e:#}");
                tracing::error!("worker {index}: {last_failure}");
            }
        }
    }
}

/// Sleeps `duration` in short steps; false if `stop` was set meanwhile.
fn sleep_unless_stopped(duration: Duration, stop: &AtomicBool) -> bool {
    let until = Instant::now() + duration;
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(STOP_POLL));
    }
}

/// Runs a worker's body, catching a panic: how it ended, for the supervisor.
pub fn run_caught(body: impl FnOnce() -> anyhow::Result<()>) -> WorkerExit {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)) {
        Ok(Ok(())) => WorkerExit::Stopped,
        Ok(Err(e)) => WorkerExit::Failed(format!("{e:#}")),
        Err(payload) => {
            let text = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a panic without a message");
            WorkerExit::Failed(format!("panicked: {text}"))
        }
    }
}

/// Test-only fault (`relay run --fail-worker-after N [--fail-worker-times K]`): a worker
/// panics once it has received `after_frames` frames since it (re)started, `times` times in
/// all over every worker, so tests can prove that a failed worker is restarted (or that the
/// relay exits when the budget runs out).
#[derive(Debug)]
pub struct FailHook {
    pub after_frames: u64,
    remaining: AtomicU32,
}

impl FailHook {
    pub fn new(after_frames: u64, times: u32) -> FailHook {
        FailHook {
            after_frames,
            remaining: AtomicU32::new(times),
        }
    }

    /// Whether a worker that received `frames` frames since it started fails now (each
    /// firing uses one of the `times`).
    pub fn fires(&self, frames: u64) -> bool {
        frames >= self.after_frames
            && self
                .remaining
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn quick(max_restarts: usize) -> RestartPolicy {
        RestartPolicy {
            max_restarts,
            window: Duration::from_secs(60),
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
        }
    }

    #[test]
    fn budget_backs_off_doubling_and_runs_out() {
        let policy = RestartPolicy {
            max_restarts: 4,
            window: Duration::from_secs(60),
            first_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(300),
        };
        let mut budget = RestartBudget::new(policy);
        let t0 = Instant::now();
        let waits: Vec<Option<Duration>> = (0..5).map(|_| budget.take(t0)).collect();
        let ms = |n| Some(Duration::from_millis(n));
        assert_eq!(waits, vec![ms(100), ms(200), ms(300), ms(300), None]);
        // Restarts older than the window no longer count.
        assert_eq!(budget.take(t0 + Duration::from_secs(61)), ms(100));
    }

    #[test]
    fn a_failed_worker_is_restarted_and_counted() {
        let workers = vec![
            Arc::new(WorkerStats::default()),
            Arc::new(WorkerStats::default()),
        ];
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        tx.send((1, WorkerExit::Failed("panicked: boom".into())))
            .unwrap();
        let mut restarted = Vec::new();
        let stopper = stop.clone();
        let result = supervise(&rx, &workers, quick(3), &stop, |index| {
            restarted.push(index);
            stopper.store(true, Ordering::Relaxed);
            Ok(())
        });
        assert_eq!(result, Ok(()));
        assert_eq!(restarted, vec![1]);
        assert_eq!(stats::read(&workers[1].restarts), 1);
        assert_eq!(workers[1].state(), WorkerState::Running);
        assert_eq!(stats::read(&workers[0].restarts), 0);
    }

    #[test]
    fn an_exhausted_budget_is_fatal_and_marks_the_worker_failed() {
        let workers = vec![Arc::new(WorkerStats::default())];
        let (tx, rx) = mpsc::channel();
        let stop = AtomicBool::new(false);
        for n in 0..3 {
            tx.send((0, WorkerExit::Failed(format!("failure {n}"))))
                .unwrap();
        }
        let mut restarts = 0;
        let result = supervise(&rx, &workers, quick(2), &stop, |_| {
            restarts += 1;
            Ok(())
        });
        let fatal = result.unwrap_err();
        assert_eq!(
            restarts, 2,
            "two restarts allowed, the third failure is fatal"
        );
        assert_eq!(fatal.worker, 0);
        assert_eq!(fatal.last_failure, "failure 2");
        let text = fatal.to_string();
        assert!(text.contains("worker 0 cannot be kept alive"), "{text}");
        assert!(text.contains("2 restart(s) within 60 s"), "{text}");
        assert_eq!(workers[0].state(), WorkerState::Failed);
        assert_eq!(stats::read(&workers[0].restarts), 2);
    }

    #[test]
    fn failing_restarts_use_up_the_budget_too() {
        let workers = vec![Arc::new(WorkerStats::default())];
        let (tx, rx) = mpsc::channel();
        let stop = AtomicBool::new(false);
        tx.send((0, WorkerExit::Failed("io_uring submit failed".into())))
            .unwrap();
        let mut attempts = 0;
        let fatal = supervise(&rx, &workers, quick(3), &stop, |_| {
            attempts += 1;
            anyhow::bail!("opening the AF_PACKET receive socket: EMFILE")
        })
        .unwrap_err();
        assert_eq!(attempts, 3);
        assert!(fatal.last_failure.contains("EMFILE"), "{fatal}");
        assert_eq!(workers[0].state(), WorkerState::Failed);
        assert_eq!(stats::read(&workers[0].restarts), 0);
    }

    #[test]
    fn a_worker_that_ends_unasked_counts_as_failed() {
        let workers = vec![Arc::new(WorkerStats::default())];
        let (tx, rx) = mpsc::channel();
        let stop = AtomicBool::new(false);
        tx.send((0, WorkerExit::Stopped)).unwrap();
        drop(tx);
        let fatal = supervise(&rx, &workers, quick(0), &stop, |_| Ok(())).unwrap_err();
        assert!(
            fatal.last_failure.contains("without being asked"),
            "{fatal}"
        );
    }

    #[test]
    fn panics_and_errors_of_a_worker_body_are_caught_as_failures() {
        assert_eq!(run_caught(|| Ok(())), WorkerExit::Stopped);
        assert_eq!(
            run_caught(|| anyhow::bail!("io_uring submit failed")),
            WorkerExit::Failed("io_uring submit failed".into())
        );
        let exit = run_caught(|| panic!("worker {} lost its ring", 3));
        assert_eq!(
            exit,
            WorkerExit::Failed("panicked: worker 3 lost its ring".into())
        );
        assert_eq!(
            run_caught(|| panic!("static text")),
            WorkerExit::Failed("panicked: static text".into())
        );
    }

    #[test]
    fn fail_hook_fires_after_n_frames_the_given_number_of_times() {
        let hook = FailHook::new(100, 2);
        assert!(!hook.fires(99));
        assert!(hook.fires(100));
        assert!(hook.fires(250));
        assert!(!hook.fires(1000), "used up");
    }

    #[test]
    fn stop_ends_the_loop_and_the_back_off() {
        let workers = vec![Arc::new(WorkerStats::default())];
        let (tx, rx) = mpsc::channel();
        let stop = AtomicBool::new(true);
        tx.send((0, WorkerExit::Stopped)).unwrap();
        assert_eq!(
            supervise(&rx, &workers, quick(0), &stop, |_| Ok(())),
            Ok(())
        );
        assert!(!sleep_unless_stopped(Duration::from_secs(10), &stop));
    }
}
