//! The two clocks the lab compares timestamps on, in nanoseconds.
//!
//! - [`monotonic_ns`]: CLOCK_MONOTONIC, one clock for every network namespace of the host. The
//!   load generator stamps its payload headers with it and the sink its arrivals; labctl reads
//!   it to line its own events up with theirs.
//! - [`realtime_ns`]: CLOCK_REALTIME, the clock of the kernel's receive timestamps
//!   (`SO_TIMESTAMPNS`, TPACKET ring headers) that the relay's `--timing` compares against;
//!   [`realtime_offset_ns`] converts them to CLOCK_MONOTONIC.

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

/// CLOCK_REALTIME - CLOCK_MONOTONIC now, in nanoseconds: a kernel receive timestamp minus this
/// is the same instant on CLOCK_MONOTONIC. Taken from the narrowest of a few
/// monotonic-realtime-monotonic brackets (a preempted read widens its bracket and is not used),
/// so it is right to well under a microsecond. It changes when the wall clock is stepped.
pub fn realtime_offset_ns() -> i64 {
    let mut best: Option<(u64, i64)> = None;
    for _ in 0..5 {
        let before = monotonic_ns();
        let real = realtime_ns();
        let after = monotonic_ns();
        let width = after.saturating_sub(before);
        let middle = before + width / 2;
        let offset = real as i64 - middle as i64;
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, offset));
        }
    }
    best.map_or(0, |(_, offset)| offset)
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

    #[test]
    fn the_offset_converts_realtime_to_monotonic() {
        let offset = realtime_offset_ns();
        let mono = monotonic_ns();
        let converted = realtime_ns() as i64 - offset;
        let after = monotonic_ns();
        // The converted instant lies between the two monotonic reads, give or take the
        // offset's own error (a bracket of a few microseconds at worst on a busy machine).
        assert!(converted >= mono as i64 - 1_000_000, "{converted} < {mono}");
        assert!(
            converted <= after as i64 + 1_000_000,
            "{converted} > {after}"
        );
    }
}
