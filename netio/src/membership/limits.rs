//! The per-socket membership limits of the current network namespace.
//!
//! Two sysctls bound how many groups one socket can join: `net.ipv4.igmp_max_memberships`
//! (a count, default 20) and `net.core.optmem_max` (bytes of option memory per socket, each
//! membership charging about [`OPTMEM_BYTES_PER_MEMBERSHIP`]). Both are per namespace, and
//! `/proc/sys/net` shows the namespace of the process reading it.

use serde::Serialize;
use std::io;

/// Approximate option memory one membership charges against `optmem_max` (measured: 48 bytes).
pub const OPTMEM_BYTES_PER_MEMBERSHIP: u64 = 48;
/// Where `net.ipv4.igmp_max_memberships` is read.
pub const IGMP_MAX_MEMBERSHIPS_PATH: &str = "/proc/sys/net/ipv4/igmp_max_memberships";
/// Where `net.core.optmem_max` is read.
pub const OPTMEM_MAX_PATH: &str = "/proc/sys/net/core/optmem_max";

/// The namespace's limits on memberships per socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub igmp_max_memberships: u64,
    pub optmem_max: u64,
}

impl Limits {
    /// Reads the limits from /proc/sys of the current network namespace.
    pub fn from_proc() -> io::Result<Limits> {
        Ok(Limits {
            igmp_max_memberships: read_sysctl(IGMP_MAX_MEMBERSHIPS_PATH)?,
            optmem_max: read_sysctl(OPTMEM_MAX_PATH)?,
        })
    }

    /// Memberships one socket is expected to hold (at least 1): the smaller of the two limits.
    pub fn capacity_per_socket(&self) -> usize {
        let by_optmem = self.optmem_max / OPTMEM_BYTES_PER_MEMBERSHIP;
        let capacity = self.igmp_max_memberships.min(by_optmem).max(1);
        usize::try_from(capacity).unwrap_or(usize::MAX)
    }
}

/// Reads one integer sysctl; the error names the file.
fn read_sysctl(path: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {path}: {e}")))?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_the_smaller_sysctl_limit() {
        let l = Limits {
            igmp_max_memberships: 20,
            optmem_max: 131072,
        };
        assert_eq!(l.capacity_per_socket(), 20);
        let l = Limits {
            igmp_max_memberships: 100_000,
            optmem_max: 20480,
        };
        assert_eq!(l.capacity_per_socket(), 426);
    }

    #[test]
    fn capacity_is_at_least_one() {
        let l = Limits {
            igmp_max_memberships: 0,
            optmem_max: 0,
        };
        assert_eq!(l.capacity_per_socket(), 1);
    }

    #[test]
    fn the_current_namespace_has_positive_limits() {
        // Was loadgen's `capacity_is_positive`: the sysctls exist and give room for a group.
        let limits = Limits::from_proc().unwrap();
        assert!(limits.igmp_max_memberships > 0);
        assert!(limits.capacity_per_socket() > 0);
    }

    #[test]
    fn unreadable_sysctls_name_the_file() {
        let err = read_sysctl("/proc/sys/net/ipv4/no_such_sysctl").unwrap_err();
        assert!(err.to_string().contains("no_such_sysctl"), "{err}");
    }
}
