//! Process resource limits.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::io;

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard limit and returns the new soft
/// limit (a membership pool opens one helper socket per few dozen groups).
pub fn raise_open_file_limit() -> io::Result<u64> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok(hard.max(soft))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_raised_limit_is_at_least_the_default() {
        assert!(super::raise_open_file_limit().unwrap() >= 1024);
    }
}
