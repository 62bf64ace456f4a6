//! CPU affinity and real-time scheduling of processes and threads: the kernel calls behind
//! `crate::placement`. `sched_setscheduler` has no safe wrapper in nix; its raw call lives in
//! [`netio::sched`].

use netio::sched::set_scheduler;
use nix::sched::CpuSet;
use nix::unistd::Pid;
use std::io;

/// Where and how one process runs: the CPUs it may use (empty = every CPU) and, optionally,
/// a SCHED_FIFO priority.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessPlacement {
    pub cpus: Vec<u32>,
    pub fifo_priority: Option<i32>,
}

impl ProcessPlacement {
    /// True when nothing is changed from the parent's placement.
    pub fn is_inherited(&self) -> bool {
        self.cpus.is_empty() && self.fifo_priority.is_none()
    }

    /// `SCHED_FIFO 20` or `SCHED_OTHER`.
    pub fn scheduling(&self) -> String {
        match self.fifo_priority {
            Some(p) => format!("SCHED_FIFO {p}"),
            None => "SCHED_OTHER".to_owned(),
        }
    }

    /// The CPU set, built before a fork (building allocates nothing, but do it outside the child
    /// anyway). `None` when every CPU is allowed.
    pub fn cpu_set(&self) -> io::Result<Option<CpuSet>> {
        if self.cpus.is_empty() {
            return Ok(None);
        }
        let mut set = CpuSet::new();
        for &cpu in &self.cpus {
            set.set(cpu as usize).map_err(io::Error::from)?;
        }
        Ok(Some(set))
    }
}

/// Applies a placement to the calling thread (pid 0). Async-signal-safe: two system calls and
/// no allocation, so it may run between fork and exec.
pub fn apply_to_current(cpus: Option<&CpuSet>, fifo_priority: Option<i32>) -> io::Result<()> {
    if let Some(set) = cpus {
        nix::sched::sched_setaffinity(Pid::from_raw(0), set).map_err(io::Error::from)?;
    }
    if let Some(priority) = fifo_priority {
        set_scheduler(libc::SCHED_FIFO, priority)?;
    }
    Ok(())
}

/// Whether this process may use SCHED_FIFO: tried on a throwaway thread (scheduling is per
/// thread), which ends right after. `Err` says why not (e.g. EPERM without CAP_SYS_NICE or in a
/// cgroup without real-time runtime).
pub fn realtime_allowed() -> Result<(), String> {
    std::thread::Builder::new()
        .name("rt-probe".into())
        .spawn(|| set_scheduler(libc::SCHED_FIFO, 1))
        .map_err(|e| format!("cannot start a probe thread: {e}"))?
        .join()
        .map_err(|_| "the real-time probe thread panicked".to_owned())?
        .map_err(|e| format!("SCHED_FIFO refused: {e}"))
}

/// The CPUs the calling thread may run on now (its affinity mask), ascending.
pub fn allowed_cpus() -> io::Result<Vec<u32>> {
    let set = nix::sched::sched_getaffinity(Pid::from_raw(0)).map_err(io::Error::from)?;
    Ok((0..CpuSet::count())
        .filter(|&i| set.is_set(i).unwrap_or(false))
        .map(|i| i as u32)
        .collect())
}

/// Sets the calling thread's affinity (threads it starts later inherit it).
pub fn pin_current_thread(cpus: &[u32]) -> io::Result<()> {
    let placement = ProcessPlacement {
        cpus: cpus.to_vec(),
        fifo_priority: None,
    };
    apply_to_current(placement.cpu_set()?.as_ref(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_sets() {
        let p = ProcessPlacement {
            cpus: vec![0, 3],
            fifo_priority: Some(20),
        };
        assert_eq!(p.scheduling(), "SCHED_FIFO 20");
        let set = p.cpu_set().unwrap().unwrap();
        assert!(set.is_set(3).unwrap() && !set.is_set(1).unwrap());
        assert!(ProcessPlacement::default().is_inherited());
        assert_eq!(ProcessPlacement::default().cpu_set().unwrap(), None);
        assert_eq!(ProcessPlacement::default().scheduling(), "SCHED_OTHER");
    }

    #[test]
    fn this_thread_can_be_pinned_and_restored() {
        let before = allowed_cpus().unwrap();
        assert!(!before.is_empty());
        let handle = std::thread::spawn(move || {
            pin_current_thread(&before[..1]).unwrap();
            let pinned = allowed_cpus().unwrap();
            pin_current_thread(&before).unwrap();
            (pinned, allowed_cpus().unwrap(), before)
        });
        let (pinned, restored, before) = handle.join().unwrap();
        assert_eq!(pinned, before[..1]);
        assert_eq!(restored, before);
    }
}
