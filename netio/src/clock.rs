//! The two clocks the lab compares timestamps on, in nanoseconds.
//!
//! - [`monotonic_ns`]: CLOCK_MONOTONIC, one clock for every network namespace of the host. The
//!   load generator stamps its payload headers with it and the sink its arrivals; labctl reads
//!   it to line its own events up with theirs.
//! - [`realtime_ns`]: CLOCK_REALTIME, the clock of the kernel's receive timestamps
//!   (`SO_TIMESTAMPNS`, TPACKET ring headers) that the relay's `--timing` compares against.

/// CLOCK_MONOTONIC now, in nanoseconds (0 if the clock cannot be read, which Linux never does).
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// CLOCK_REALTIME now, in nanoseconds (0 before 1970).
pub fn realtime_ns() -> u64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as u64,
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monotonic_never_goes_back_and_realtime_is_after_2020() {
        let a = monotonic_ns();
        let b = monotonic_ns();
        assert!(a > 0 && b >= a);
        assert!(realtime_ns() > 1_577_836_800 * 1_000_000_000);
    }
}
