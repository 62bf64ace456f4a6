//! Process resource limits.

use std::io;

/// Raises the soft open-file limit (RLIMIT_NOFILE) to the hard limit and returns the new soft
/// limit (a membership pool opens one helper socket per few dozen groups).
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit the call fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: passes a live, initialised rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_raised_limit_is_at_least_the_default() {
        assert!(super::raise_open_file_limit().unwrap() >= 1024);
    }
}
