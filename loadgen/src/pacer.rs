//! Rate pacing as pure arithmetic over an injected clock (nanoseconds).
//!
//! The pacer holds the asked aggregate rate over the whole run: packet `k` (0-based) is due at
//! `start + k / rate`, or with bursts of B, `start + floor(k / B) * B / rate` (B packets back to
//! back, then a pause: the same average rate). Each call hands out every packet already due, at
//! most one batch, so a sender that falls behind catches up in full batches and the average stays
//! on target.

/// Paces an aggregate packet rate; `None` means unpaced (`max`).
#[derive(Debug, Clone)]
pub struct Pacer {
    rate_pps: Option<f64>,
    start_ns: u64,
    sent: u64,
    batch: usize,
    burst: u64,
}

impl Pacer {
    /// A pacer for `rate_pps` packets per second (`None`: as fast as possible), starting at
    /// `start_ns`, handing out at most `batch` packets per call.
    pub fn new(rate_pps: Option<f64>, start_ns: u64, batch: usize) -> Pacer {
        Pacer {
            rate_pps,
            start_ns,
            sent: 0,
            batch: batch.max(1),
            burst: 1,
        }
    }

    /// The same pacer sending `burst` packets back to back at a time (1 = evenly spaced).
    pub fn with_burst(self, burst: usize) -> Pacer {
        Pacer {
            burst: burst.max(1) as u64,
            ..self
        }
    }

    /// Packets due at `now_ns` and not yet recorded as sent, at most one batch.
    pub fn due(&self, now_ns: u64) -> usize {
        let Some(rate) = self.rate_pps else {
            return self.batch;
        };
        let elapsed = now_ns.saturating_sub(self.start_ns) as f64;
        let bursts = (elapsed * rate / 1e9 / self.burst as f64).floor() as u64 + 1;
        let due_total = bursts * self.burst;
        let owed = due_total.saturating_sub(self.sent);
        owed.min(self.batch as u64) as usize
    }

    /// Nanoseconds from `now_ns` until the next packet is due (0 when one is due already).
    pub fn wait_ns(&self, now_ns: u64) -> u64 {
        let Some(rate) = self.rate_pps else {
            return 0;
        };
        let burst_start = (self.sent / self.burst * self.burst) as f64;
        let due_at = self.start_ns as f64 + burst_start * 1e9 / rate;
        let due_at = due_at.ceil() as u64;
        due_at.saturating_sub(now_ns)
    }

    /// Records `n` packets as sent.
    pub fn record(&mut self, n: u64) {
        self.sent += n;
    }

    /// Packets recorded so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Achieved rate between the start and `now_ns` in packets per second.
    pub fn achieved_pps(&self, now_ns: u64) -> f64 {
        let elapsed = now_ns.saturating_sub(self.start_ns);
        if elapsed == 0 {
            return 0.0;
        }
        self.sent as f64 * 1e9 / elapsed as f64
    }
}

/// Rate of `packets` sent from `first_ns` to `last_ns` (timestamps of the first and last packet):
/// `packets - 1` intervals over the span; 0 when fewer than two packets or no time passed.
pub fn rate_between(packets: u64, first_ns: u64, last_ns: u64) -> f64 {
    let span = last_ns.saturating_sub(first_ns);
    if packets < 2 || span == 0 {
        return 0.0;
    }
    (packets - 1) as f64 * 1e9 / span as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_between_counts_intervals() {
        // 11 packets 1 ms apart: 10 intervals in 10 ms = 1000 pps.
        assert_eq!(rate_between(11, 5 * MS, 15 * MS), 1000.0);
        assert_eq!(rate_between(1, 0, 10), 0.0);
        assert_eq!(rate_between(5, 7, 7), 0.0);
    }

    const MS: u64 = 1_000_000;

    #[test]
    fn first_packet_due_at_start() {
        let pacer = Pacer::new(Some(1000.0), 5 * MS, 64);
        assert_eq!(pacer.due(5 * MS), 1);
        assert_eq!(pacer.wait_ns(5 * MS), 0);
    }

    #[test]
    fn holds_rate_with_simulated_clock() {
        // 1000 pps, a sender that wakes every 3.7 ms: after 2 s exactly 2000 packets.
        let start = 1_000 * MS;
        let mut pacer = Pacer::new(Some(1000.0), start, 64);
        let mut now = start;
        while now < start + 2_000 * MS {
            let n = pacer.due(now);
            pacer.record(n as u64);
            now += 3_700_000;
        }
        // Packets due at t in [0, 2 s): floor(t * 1000) + 1 with t the last wake-up.
        let last_wake = now - 3_700_000 - start;
        assert_eq!(pacer.sent(), last_wake / MS + 1);
        let achieved = pacer.achieved_pps(start + 2_000 * MS);
        assert!((achieved - 1000.0).abs() < 2.0, "achieved {achieved}");
    }

    #[test]
    fn wait_until_next_packet() {
        let mut pacer = Pacer::new(Some(100.0), 0, 8);
        pacer.record(pacer.due(0) as u64);
        assert_eq!(pacer.sent(), 1);
        assert_eq!(pacer.due(1), 0);
        assert_eq!(pacer.wait_ns(1), 10 * MS - 1);
        assert_eq!(pacer.due(10 * MS), 1);
    }

    #[test]
    fn catch_up_is_limited_to_one_batch() {
        let mut pacer = Pacer::new(Some(1_000_000.0), 0, 64);
        // 1 ms late: 1001 packets owed, handed out one batch at a time.
        assert_eq!(pacer.due(MS), 64);
        pacer.record(64);
        assert_eq!(pacer.due(MS), 64);
        pacer.record(937);
        assert_eq!(pacer.due(MS), 0);
    }

    #[test]
    fn bursts_keep_the_average_rate() {
        // 1000 pps in bursts of 10: 10 packets at 0, 10 ms, 20 ms, ...
        let mut pacer = Pacer::new(Some(1000.0), 0, 64).with_burst(10);
        assert_eq!(pacer.due(0), 10);
        pacer.record(10);
        assert_eq!(pacer.due(9 * MS), 0);
        assert_eq!(pacer.wait_ns(MS), 9 * MS);
        assert_eq!(pacer.due(10 * MS), 10);
        // A burst larger than a batch is handed out batch by batch, without waiting.
        let mut big = Pacer::new(Some(1000.0), 0, 4).with_burst(10);
        big.record(big.due(0) as u64);
        assert_eq!(big.sent(), 4);
        assert_eq!(big.wait_ns(0), 0);
        assert_eq!(big.due(0), 4);
        // Over 2 s: 2000 packets, as without bursts.
        let mut p = Pacer::new(Some(1000.0), 0, 64).with_burst(10);
        let mut now = 0;
        while now < 2_000 * MS {
            let n = p.due(now);
            p.record(n as u64);
            now += MS / 2;
        }
        assert_eq!(p.sent(), 2000);
    }

    #[test]
    fn unpaced_always_gives_a_batch() {
        let mut pacer = Pacer::new(None, 0, 32);
        pacer.record(1_000_000);
        assert_eq!(pacer.due(0), 32);
        assert_eq!(pacer.wait_ns(0), 0);
        assert_eq!(pacer.achieved_pps(0), 0.0);
        assert!((pacer.achieved_pps(2_000 * MS) - 500_000.0).abs() < 1e-6);
    }
}
