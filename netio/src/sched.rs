//! `sched_setscheduler(2)`, which nix does not wrap: the lab's real-time placement of the load
//! generator and the relay's `--worker-priority` both set their threads' class through it.

use std::io;

/// `sched_setscheduler(0, policy, priority)` for the calling thread. Async-signal-safe (one
/// system call, no allocation), so it may run between fork and exec.
pub fn set_scheduler(policy: libc::c_int, priority: i32) -> io::Result<()> {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid, initialised sched_param that outlives the call; pid 0 names
    // the calling thread; the call reads the struct and touches no other memory.
    let rc = unsafe { libc::sched_setscheduler(0, policy, &param) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
