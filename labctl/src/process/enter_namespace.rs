//! Entering a network namespace between fork and exec: the `pre_exec` hook of
//! [`super::spawn_in_netns`], fenced here because `pre_exec` is the one `unsafe` API labctl
//! needs for it (the calls inside are nix's safe wrappers).

use super::sched;
use nix::sched::{CloneFlags, CpuSet};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child of `cmd`, after the fork and before the exec, enter the network namespace
/// open at `namespace`, then apply the CPU set and SCHED_FIFO priority (both built before the
/// fork). The hook owns the descriptor, so it stays open until `cmd` is dropped; opened
/// close-on-exec, it does not reach the program.
pub fn enter_before_exec(
    cmd: &mut Command,
    namespace: OwnedFd,
    cpus: Option<CpuSet>,
    fifo_priority: Option<i32>,
) {
    // SAFETY: `pre_exec` requires the closure to be async-signal-safe, since it runs in the
    // forked child of a possibly multi-threaded parent. It only makes system calls: setns(2) on
    // a descriptor it owns, then sched_setaffinity(2) and sched_setscheduler(2) on values moved
    // in before the fork (`sched::apply_to_current`). It takes no lock and allocates nothing
    // (errors are errno values carried in `io::Error`'s integer form).
    unsafe {
        cmd.pre_exec(move || {
            nix::sched::setns(&namespace, CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            sched::apply_to_current(cpus.as_ref(), fifo_priority)
        });
    }
}
