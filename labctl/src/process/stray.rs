//! Processes found inside a lab namespace that are not labctl's tracked children (a crashed
//! run's relay, a daemon a system left behind): stopped at teardown and by `labctl clean`.
//!
//! Each one is held by a pidfd before it is signalled, and the pidfd is checked to name a
//! process of the namespace: a signal then reaches that process or none, never a later process
//! that reused its PID (pidfd_open(2), pidfd_send_signal(2)).

use anyhow::Result;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rustix::process::{Pid, PidfdFlags, Signal, pidfd_open, pidfd_send_signal};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::time::{Duration, Instant};

/// A process of a lab namespace, held by its pidfd.
struct Held {
    pidfd: OwnedFd,
}

impl Held {
    /// Holds `pid` if it is (still) a process of the namespace whose inode is `ns_inode`.
    fn open(pid: i32, ns_inode: u64) -> Option<Held> {
        let pidfd = pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()).ok()?;
        // Read after the pidfd is open: while the process it names exists (even as a zombie)
        // its PID is not reused, so /proc/PID is that process. If it died meanwhile, signals
        // through the pidfd reach nobody.
        let ino = std::fs::metadata(format!("/proc/{pid}/ns/net")).ok()?.ino();
        (ino == ns_inode).then_some(Held { pidfd })
    }

    fn signal(&self, signal: Signal) {
        let _ = pidfd_send_signal(&self.pidfd, signal);
    }

    /// True once the process has exited (its pidfd is readable).
    fn exited(&self) -> bool {
        let mut fds = [PollFd::new(self.pidfd.as_fd(), PollFlags::POLLIN)];
        matches!(poll(&mut fds, PollTimeout::ZERO), Ok(n) if n > 0)
    }
}

/// Stops the processes found in namespace `netns`: `signal`, then SIGKILL after `grace`.
/// Returns how many were found.
pub fn stop_in_netns(netns: &str, signal: Signal, grace: Duration) -> Result<usize> {
    if !crate::netns::exists(netns) {
        return Ok(0);
    }
    let ns_inode = crate::netns::inode(netns)?;
    let held: Vec<Held> = crate::netns::pids_in(netns)?
        .into_iter()
        .filter_map(|pid| Held::open(pid, ns_inode))
        .collect();
    for process in &held {
        process.signal(signal);
    }
    let end = Instant::now() + grace;
    while Instant::now() < end && held.iter().any(|p| !p.exited()) {
        std::thread::sleep(Duration::from_millis(10));
    }
    for process in held.iter().filter(|p| !p.exited()) {
        process.signal(Signal::KILL);
    }
    Ok(held.len())
}
