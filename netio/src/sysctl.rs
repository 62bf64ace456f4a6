//! Reading one integer sysctl under /proc/sys (the values of the caller's network namespace
//! for the `net.*` ones).

use std::io;
use std::path::Path;

/// Reads the unsigned integer in `path` (e.g. `/proc/sys/net/ipv4/igmp_max_memberships`).
/// Errors name the path.
pub fn read_u64(path: impl AsRef<Path>) -> io::Result<u64> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))?;
    text.trim().parse().map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{}: {text:?} is not an unsigned integer: {e}",
                path.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_real_sysctl_and_refuses_text() {
        assert!(read_u64("/proc/sys/net/core/optmem_max").unwrap() > 0);
        let dir = tempfile_dir();
        let path = dir.join("value");
        std::fs::write(&path, "abc\n").unwrap();
        let err = read_u64(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
        assert!(err.to_string().contains("value"), "{err}");
        std::fs::write(&path, " 42\n").unwrap();
        assert_eq!(read_u64(&path).unwrap(), 42);
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = read_u64(dir.join("missing")).unwrap_err();
        assert!(missing.to_string().contains("missing"), "{missing}");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("netio-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
