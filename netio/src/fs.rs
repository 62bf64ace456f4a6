//! Atomic file replacement: a reader sees the old contents or the new, never half a file.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Distinguishes the temporary files of concurrent writers within one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// Writes `contents` to `path` atomically: into a temporary file in the same directory whose
/// name is unique (process id + a per-process counter, created with `O_EXCL`), then `rename`d
/// over `path`. On any error the temporary file is removed and `path` is left as it was;
/// errors name the file they concern.
pub fn write_atomically(path: &Path, contents: &[u8]) -> io::Result<()> {
    let (tmp, mut file) = create_temp_beside(path)?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.flush())
        .map_err(|e| context(e, format!("writing {}", tmp.display())));
    drop(file);
    let result = written.and_then(|()| {
        std::fs::rename(&tmp, path).map_err(|e| {
            context(
                e,
                format!("renaming {} to {}", tmp.display(), path.display()),
            )
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates a new, uniquely named file next to `path` (`.NAME.tmp.PID.N`).
fn create_temp_beside(path: &Path) -> io::Result<(PathBuf, std::fs::File)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        )
    })?;
    loop {
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(
            ".tmp.{}.{}",
            std::process::id(),
            NEXT_TEMP.fetch_add(1, Ordering::Relaxed)
        ));
        let tmp = path.with_file_name(temp_name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
        {
            Ok(file) => return Ok((tmp, file)),
            // A stale file of an earlier process with the same id: take the next number.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(context(e, format!("creating {}", tmp.display()))),
        }
    }
}

fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("netio-fs-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn replaces_the_file_and_leaves_no_temporary_file() {
        let dir = scratch("replace");
        let path = dir.join("ready");
        write_atomically(&path, b"first\n").unwrap();
        write_atomically(&path, b"second\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second\n");
        assert_eq!(entries(&dir), vec!["ready".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn concurrent_writers_never_share_a_temporary_file() {
        let dir = scratch("concurrent");
        let path = dir.join("results.json");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let path = &path;
                s.spawn(move || {
                    for _ in 0..20 {
                        write_atomically(path, &[i; 4096]).unwrap();
                    }
                });
            }
        });
        let text = std::fs::read(&path).unwrap();
        assert_eq!(text.len(), 4096);
        assert!(
            text.iter().all(|&b| b == text[0]),
            "one writer's bytes only"
        );
        assert_eq!(entries(&dir), vec!["results.json".to_string()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_failed_write_names_the_file_and_keeps_the_old_contents() {
        let dir = scratch("fail");
        let path = dir.join("target");
        std::fs::create_dir(&path).unwrap(); // rename of a file over a directory fails
        let err = write_atomically(&path, b"x").unwrap_err();
        assert!(err.to_string().contains("target"), "{err}");
        assert_eq!(entries(&dir), vec!["target".to_string()]);
        let missing_dir = dir.join("no-such-dir").join("file");
        assert!(write_atomically(&missing_dir, b"x").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
