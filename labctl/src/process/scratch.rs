//! Scratch directories: `$TMPDIR/mlab-<label>-<random>`, for the files of one part of a run
//! (sink and sender summaries, the relay's control socket, smcroute's files).
//!
//! Each directory holds an exclusive `flock` on its `.owner` file for as long as it lives, so
//! `labctl clean` tells a live run's directory (locked) from a crashed run's (unlocked) without
//! guessing by age or by PID: the kernel drops the lock when the owning process dies, however it
//! dies. A directory is created under a hidden name and renamed once its lock is held, so no
//! directory with the lab's prefix is ever unlocked while its owner lives. It is removed on drop
//! and, if labctl is interrupted, by the cleanup registry ([`super::register_cleanup`]).

use anyhow::{Context, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// Prefix of every scratch directory's name.
pub const PREFIX: &str = "mlab-";
/// The file whose lock marks a live directory.
const OWNER_FILE: &str = ".owner";
/// Age after which a lab directory without an owner file (written by an older labctl) is stale.
const UNOWNED_STALE_AFTER: Duration = Duration::from_secs(600);
/// Age after which a directory still under its hidden creation name and without an owner file
/// is stale: its creator writes the owner file microseconds after creating it, so only a
/// creator killed in between leaves one.
const CREATING_STALE_AFTER: Duration = Duration::from_secs(2);

/// The hidden name prefix of a directory being created (locked, not yet renamed).
fn creating_prefix() -> String {
    format!(".{PREFIX}creating-")
}

/// A scratch directory, removed on drop.
#[derive(Debug)]
pub struct ScratchDir {
    path: PathBuf,
    _owner: Flock<File>,
}

impl ScratchDir {
    /// Creates `$TMPDIR/mlab-<label>-<random>` and takes its owner lock.
    pub fn new(label: &str) -> Result<Self> {
        let base = std::env::temp_dir();
        let suffix = format!("{label}-{:08x}", rand::random::<u32>());
        let hidden = base.join(format!("{}{suffix}", creating_prefix()));
        std::fs::create_dir(&hidden).with_context(|| format!("creating {}", hidden.display()))?;
        let owner = lock_owner_file(&hidden).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&hidden);
        })?;
        let path = base.join(format!("{PREFIX}{suffix}"));
        std::fs::rename(&hidden, &path).with_context(|| {
            let _ = std::fs::remove_dir_all(&hidden);
            format!("renaming {} to {}", hidden.display(), path.display())
        })?;
        let removal = path.clone();
        super::register_cleanup(
            cleanup_key(&path),
            Box::new(move || {
                let _ = std::fs::remove_dir_all(&removal);
            }),
        );
        Ok(ScratchDir {
            path,
            _owner: owner,
        })
    }

    /// A file inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The directory itself.
    pub fn dir(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
        super::unregister_cleanup(&cleanup_key(&self.path));
    }
}

fn cleanup_key(path: &Path) -> String {
    format!("scratch:{}", path.display())
}

fn lock_owner_file(dir: &Path) -> Result<Flock<File>> {
    let owner = dir.join(OWNER_FILE);
    let file = File::create(&owner).with_context(|| format!("creating {}", owner.display()))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock)
        .map_err(|(_, errno)| errno)
        .with_context(|| format!("locking {}", owner.display()))
}

/// Removes the scratch directories in `$TMPDIR` whose owner is gone, also those whose creator
/// died before renaming them (`.mlab-creating-*`); returns (removed, errors).
pub fn remove_stale() -> (Vec<PathBuf>, Vec<String>) {
    remove_stale_in(&std::env::temp_dir())
}

/// [`remove_stale`] in `base`.
pub fn remove_stale_in(base: &Path) -> (Vec<PathBuf>, Vec<String>) {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    let Ok(entries) = std::fs::read_dir(base) else {
        return (removed, errors);
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let unowned_after = if name.starts_with(PREFIX) {
            UNOWNED_STALE_AFTER
        } else if name.starts_with(&creating_prefix()) {
            CREATING_STALE_AFTER
        } else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_dir()) || !is_stale(&path, unowned_after) {
            continue;
        }
        match std::fs::remove_dir_all(&path) {
            Ok(()) => removed.push(path),
            Err(e) => errors.push(format!("{}: {e}", path.display())),
        }
    }
    (removed, errors)
}

/// True when nobody holds the directory's owner lock (or, for a directory without an owner file,
/// when it has not changed for `unowned_after`).
fn is_stale(dir: &Path, unowned_after: Duration) -> bool {
    match File::open(dir.join(OWNER_FILE)) {
        // The probe's lock is released when it is dropped at the end of this arm.
        Ok(file) => Flock::lock(file, FlockArg::LockExclusiveNonblock).is_ok(),
        Err(e) if e.kind() == ErrorKind::NotFound => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age >= unowned_after),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_directory_is_kept_and_a_dead_owners_directory_removed() {
        let scratch = ScratchDir::new("unit").unwrap();
        let base = scratch.dir().parent().unwrap().to_path_buf();
        assert!(scratch.dir().is_dir());
        let (removed, _) = remove_stale_in(&base);
        assert!(
            !removed.contains(&scratch.dir().to_path_buf()),
            "a live directory was removed"
        );
        assert!(scratch.dir().is_dir());

        // A crashed owner: an owner file nobody locks.
        let dead = tempfile::Builder::new()
            .prefix(PREFIX)
            .tempdir_in(&base)
            .unwrap()
            .keep();
        File::create(dead.join(OWNER_FILE)).unwrap();
        let (removed, errors) = remove_stale_in(&base);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(removed.contains(&dead), "{removed:?}");
        assert!(!dead.exists());
    }

    #[test]
    fn a_fresh_directory_without_owner_file_is_kept() {
        let base = tempfile::tempdir().unwrap();
        let legacy = base.path().join(format!("{PREFIX}legacy-1"));
        std::fs::create_dir(&legacy).unwrap();
        let (removed, _) = remove_stale_in(base.path());
        assert!(removed.is_empty());
        assert!(legacy.is_dir());
    }

    #[test]
    fn a_directory_whose_creator_died_before_renaming_it_is_removed() {
        let base = tempfile::tempdir().unwrap();
        // Killed after taking the owner lock, before the rename: the lock is free now.
        let locked = base.path().join(format!("{}a-1", creating_prefix()));
        std::fs::create_dir(&locked).unwrap();
        File::create(locked.join(OWNER_FILE)).unwrap();
        // Killed between creating it and writing the owner file, a moment ago: kept until
        // it is older than any creator could take.
        let fresh = base.path().join(format!("{}b-2", creating_prefix()));
        std::fs::create_dir(&fresh).unwrap();
        let (removed, errors) = remove_stale_in(base.path());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(removed, vec![locked.clone()]);
        assert!(fresh.is_dir());
        std::thread::sleep(CREATING_STALE_AFTER + Duration::from_millis(100));
        let (removed, _) = remove_stale_in(base.path());
        assert_eq!(removed, vec![fresh.clone()]);
        // Another program's hidden directory is never touched.
        let other = base.path().join(".other-creating-x");
        std::fs::create_dir(&other).unwrap();
        assert!(remove_stale_in(base.path()).0.is_empty());
        assert!(other.is_dir());
    }

    #[test]
    fn drop_removes_the_directory() {
        let scratch = ScratchDir::new("drop").unwrap();
        let dir = scratch.dir().to_path_buf();
        drop(scratch);
        assert!(!dir.exists());
    }
}
