//! One measurement at a time per machine. Two sweeps measuring at once distort each other's
//! numbers, and with real-time load generators on the same CPU one can starve the other's
//! sender for a whole probe. Every ceiling calibration and every turn of a sweep (the systems'
//! points at one point of one pass, back to back) holds an exclusive `flock` on
//! `/run/mlab/measure.lock` (released when the holder ends, crash included); a second
//! measurement waits, and says so.

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::{File, OpenOptions};
use std::path::Path;

/// The lock file.
pub const LOCK_FILE: &str = "/run/mlab/measure.lock";

/// Held while measuring; dropping it lets the next measurement run.
pub struct MeasureLock {
    _lock: Flock<File>,
}

impl MeasureLock {
    /// Takes the machine's measurement lock, waiting for another holder to finish.
    pub fn acquire() -> Result<MeasureLock> {
        let path = Path::new(LOCK_FILE);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let open = || {
            OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(path)
                .with_context(|| format!("opening {LOCK_FILE}"))
        };
        match Flock::lock(open()?, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => Ok(MeasureLock { _lock: lock }),
            Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                eprintln!(
                    "labctl: another measurement is running on this machine ({LOCK_FILE} is locked); waiting for it, so the two do not distort each other"
                );
                Flock::lock(open()?, FlockArg::LockExclusive)
                    .map(|lock| MeasureLock { _lock: lock })
                    .map_err(|(_, e)| anyhow::anyhow!("locking {LOCK_FILE}: {e}"))
            }
            Err((_, e)) => Err(anyhow::anyhow!("locking {LOCK_FILE}: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn a_second_measurement_waits_for_the_first() {
        if !crate::privilege::is_root() {
            eprintln!("SKIPPED (needs root): a_second_measurement_waits_for_the_first");
            return;
        }
        let first = MeasureLock::acquire().unwrap();
        let got = Arc::new(AtomicBool::new(false));
        let flag = got.clone();
        let waiter = std::thread::spawn(move || {
            let _second = MeasureLock::acquire().unwrap();
            flag.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(Duration::from_millis(200));
        assert!(!got.load(Ordering::SeqCst), "the second lock must wait");
        drop(first);
        waiter.join().unwrap();
        assert!(got.load(Ordering::SeqCst));
    }
}
