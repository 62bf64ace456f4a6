//! Per-stream receive accounting: received, lost, duplicates, reordered, bytes, first/last
//! sequence and arrival, latency histogram. Pure logic; the sink feeds it decoded headers.
//!
//! Definitions (sequence numbers start at 0 on the sender):
//! - a *duplicate* is a sequence number already received (tracked in a sliding window of
//!   [`WINDOW`] numbers below the highest one seen);
//! - a packet is *reordered* when it arrives after a higher sequence number of its stream;
//! - *lost* = highest sequence + 1 - distinct packets received (loss before the first packet
//!   counts; loss after the last received packet cannot be seen by the sink);
//! - latency = receive CLOCK_MONOTONIC - header send time (clamped at 0); the *interface
//!   latency* ends instead at the kernel's receive timestamp (the frame entering the sink's
//!   interface, converted to CLOCK_MONOTONIC by the sink), over all streams;
//! - the *gap timeline* dates losses: a sequence gap of n packets seen when a packet arrives is
//!   counted in the second (CLOCK_MONOTONIC, the clock of the header's send time) in which that
//!   packet was sent; a late packet that fills a gap takes one back from its own send second.
//!   It answers "when were packets lost?" (for example: only while a link was down).

use crate::summary::{GapSecond, LatencySummary, StreamStats, Totals};
use crate::wire::Header;
use hdrhistogram::Histogram;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

/// How many sequence numbers below the highest one are remembered for duplicate detection.
pub const WINDOW: u64 = 1 << 14;
const WINDOW_WORDS: usize = (WINDOW / 64) as usize;
/// Highest latency the histograms record exactly (larger values are clamped): 60 s.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

/// Identifies a stream at the sink: (destination group, UDP port, stream id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    pub group: Ipv4Addr,
    pub port: u16,
    pub stream: u32,
}

fn new_histogram() -> Histogram<u64> {
    // Two significant digits keep a histogram at a few tens of KB (thousands of streams).
    // Constant, valid bounds (1 <= 2 * 1 <= max, 2 significant digits): this cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 2).expect("constant histogram bounds are valid")
}

/// Percentiles of a histogram as the summary reports them.
pub fn latency_summary(hist: &Histogram<u64>) -> LatencySummary {
    if hist.is_empty() {
        return LatencySummary::default();
    }
    LatencySummary {
        p50: hist.value_at_quantile(0.50),
        p90: hist.value_at_quantile(0.90),
        p99: hist.value_at_quantile(0.99),
        p999: hist.value_at_quantile(0.999),
        max: hist.max(),
    }
}

/// Accounting of one stream.
#[derive(Debug, Clone)]
pub struct StreamAccount {
    received: u64,
    duplicates: u64,
    reordered: u64,
    bytes: u64,
    min_seq: u64,
    max_seq: u64,
    first_arrival_ns: u64,
    last_arrival_ns: u64,
    /// Bit `s % WINDOW` is set when sequence `s` (within the window below `max_seq`) arrived.
    seen: Box<[u64; WINDOW_WORDS]>,
    latency: Histogram<u64>,
}

impl StreamAccount {
    fn new(seq: u64, arrival_ns: u64) -> StreamAccount {
        StreamAccount {
            received: 0,
            duplicates: 0,
            reordered: 0,
            bytes: 0,
            min_seq: seq,
            max_seq: seq,
            first_arrival_ns: arrival_ns,
            last_arrival_ns: arrival_ns,
            seen: Box::new([0u64; WINDOW_WORDS]),
            latency: new_histogram(),
        }
    }

    fn bit(seq: u64) -> (usize, u64) {
        let slot = seq % WINDOW;
        ((slot / 64) as usize, 1u64 << (slot % 64))
    }

    fn is_seen(&self, seq: u64) -> bool {
        let (word, mask) = Self::bit(seq);
        self.seen[word] & mask != 0
    }

    fn mark(&mut self, seq: u64) {
        let (word, mask) = Self::bit(seq);
        self.seen[word] |= mask;
    }

    fn clear(&mut self, seq: u64) {
        let (word, mask) = Self::bit(seq);
        self.seen[word] &= !mask;
    }

    /// Records one packet; `first` is true for the stream's first packet. Returns the change
    /// of the stream's missing packets this packet revealed (> 0: a gap before it; -1: it filled
    /// one).
    fn record(
        &mut self,
        seq: u64,
        bytes: usize,
        arrival_ns: u64,
        send_ns: u64,
        first: bool,
    ) -> i64 {
        self.last_arrival_ns = arrival_ns;
        let mut gap = 0i64;
        if first {
            self.mark(seq);
            gap = i64::try_from(seq).unwrap_or(i64::MAX);
        } else if seq > self.max_seq {
            gap = i64::try_from(seq - self.max_seq - 1).unwrap_or(i64::MAX);
            if seq - self.max_seq >= WINDOW {
                self.seen.fill(0);
            } else {
                for s in self.max_seq + 1..seq {
                    self.clear(s);
                }
            }
            self.mark(seq);
            self.max_seq = seq;
        } else if self.max_seq - seq < WINDOW {
            if self.is_seen(seq) {
                self.duplicates += 1;
                return 0;
            }
            self.mark(seq);
            self.reordered += 1;
            gap = -1;
        } else {
            // Older than the window: cannot tell a duplicate from a late packet; count it late.
            self.reordered += 1;
        }
        self.min_seq = self.min_seq.min(seq);
        self.received += 1;
        self.bytes += bytes as u64;
        let latency = arrival_ns.saturating_sub(send_ns).clamp(1, MAX_LATENCY_NS);
        // Cannot fail: the value is clamped into the histogram's bounds.
        let _ = self.latency.record(latency);
        gap
    }

    /// Packets lost: sequence numbers up to the highest seen that never arrived.
    pub fn lost(&self) -> u64 {
        (self.max_seq + 1).saturating_sub(self.received)
    }

    fn stats(&self, key: &StreamKey) -> StreamStats {
        StreamStats {
            group: key.group,
            port: key.port,
            stream: key.stream,
            received: self.received,
            lost: self.lost(),
            duplicates: self.duplicates,
            reordered: self.reordered,
            bytes: self.bytes,
            first_seq: self.min_seq,
            last_seq: self.max_seq,
            first_arrival_ns: self.first_arrival_ns,
            last_arrival_ns: self.last_arrival_ns,
            latency_ns: latency_summary(&self.latency),
        }
    }
}

/// Accounting over all streams the sink sees.
#[derive(Debug, Default)]
pub struct Accounting {
    streams: HashMap<StreamKey, StreamAccount>,
    /// Missing packets by the CLOCK_MONOTONIC second of their revealing packet's send time.
    gaps: BTreeMap<u64, i64>,
    foreign: u64,
    received: u64,
    bytes: u64,
    /// Send time -> kernel receive timestamp, over all streams (none recorded yet: `None`).
    interface_latency: Option<Histogram<u64>>,
}

impl Accounting {
    /// Empty accounting.
    pub fn new() -> Accounting {
        Accounting::default()
    }

    /// Records a datagram with a valid header, received at `arrival_ns` (CLOCK_MONOTONIC).
    pub fn record(
        &mut self,
        group: Ipv4Addr,
        port: u16,
        header: &Header,
        bytes: usize,
        arrival_ns: u64,
    ) {
        let key = StreamKey {
            group,
            port,
            stream: header.stream,
        };
        let mut first = false;
        let account = self.streams.entry(key).or_insert_with(|| {
            first = true;
            StreamAccount::new(header.seq, arrival_ns)
        });
        let gap = account.record(header.seq, bytes, arrival_ns, header.send_ns, first);
        if gap != 0 {
            *self.gaps.entry(header.send_ns / 1_000_000_000).or_default() += gap;
        }
        self.received += 1;
        self.bytes += bytes as u64;
    }

    /// Records when a datagram sent at `send_ns` entered the sink's interface (`interface_ns`,
    /// the kernel's receive timestamp on CLOCK_MONOTONIC): the interface latency.
    pub fn record_interface_arrival(&mut self, send_ns: u64, interface_ns: u64) {
        let latency = interface_ns
            .saturating_sub(send_ns)
            .clamp(1, MAX_LATENCY_NS);
        let _ = self
            .interface_latency
            .get_or_insert_with(new_histogram)
            .record(latency);
    }

    /// The interface latency's percentiles, if any datagram carried a kernel timestamp.
    pub fn interface_latency(&self) -> Option<LatencySummary> {
        self.interface_latency.as_ref().map(latency_summary)
    }

    /// The gap timeline: (CLOCK_MONOTONIC second, packets missing), seconds with losses only.
    pub fn gap_timeline(&self) -> Vec<GapSecond> {
        self.gaps
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(&second, &n)| GapSecond {
                second,
                lost: n.unsigned_abs(),
            })
            .collect()
    }

    /// Records a datagram that is not a loadgen payload.
    pub fn record_foreign(&mut self) {
        self.foreign += 1;
    }

    /// Datagrams with a valid header (duplicates included).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Datagrams without a valid header.
    pub fn foreign(&self) -> u64 {
        self.foreign
    }

    /// Payload bytes of valid datagrams.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The account of one stream, if any packet of it arrived.
    pub fn stream(&self, key: &StreamKey) -> Option<&StreamAccount> {
        self.streams.get(key)
    }

    /// Groups for which at least one valid packet arrived.
    pub fn groups_seen(&self) -> std::collections::HashSet<Ipv4Addr> {
        self.streams.keys().map(|k| k.group).collect()
    }

    /// Per-stream statistics sorted by key, the totals, and the latency over all streams.
    pub fn finish(&self) -> (Vec<StreamStats>, Totals, LatencySummary) {
        let mut keys: Vec<&StreamKey> = self.streams.keys().collect();
        keys.sort();
        let mut totals = Totals::default();
        let mut all = new_histogram();
        let mut stats = Vec::with_capacity(keys.len());
        for key in keys {
            let account = &self.streams[key];
            let s = account.stats(key);
            totals.received += s.received;
            totals.lost += s.lost;
            totals.duplicates += s.duplicates;
            totals.reordered += s.reordered;
            // Same bounds on both sides, so adding cannot fail.
            let _ = all.add(&account.latency);
            stats.push(s);
        }
        (stats, totals, latency_summary(&all))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: Ipv4Addr = Ipv4Addr::new(239, 2, 0, 1);

    #[test]
    fn gaps_are_dated_by_the_send_second_of_the_packet_that_revealed_them() {
        let mut a = Accounting::new();
        let header = |seq: u64, send_s: u64| Header {
            stream: 0,
            seq,
            send_ns: send_s * 1_000_000_000 + 5,
        };
        for seq in 0..10 {
            a.record(G, 5000, &header(seq, 100), 100, 100_000_000_000);
        }
        // Packets 10..=14 lost while second 101 was sent; 20 lost in second 103.
        a.record(G, 5000, &header(15, 101), 100, 101_000_000_000);
        a.record(G, 5000, &header(16, 102), 100, 102_000_000_000);
        a.record(G, 5000, &header(18, 103), 100, 103_000_000_000);
        a.record(G, 5000, &header(21, 103), 100, 103_000_000_000);
        // 19 arrives late: one of second 103's gaps is filled.
        a.record(G, 5000, &header(19, 103), 100, 103_000_000_000);
        assert_eq!(
            a.gap_timeline(),
            vec![
                GapSecond {
                    second: 101,
                    lost: 5
                },
                GapSecond {
                    second: 103,
                    lost: 2
                },
            ]
        );
        let (_, totals, _) = a.finish();
        assert_eq!(totals.lost, 7);
    }

    fn feed(acc: &mut Accounting, stream: u32, seqs: &[u64]) {
        for (i, &seq) in seqs.iter().enumerate() {
            let header = Header {
                stream,
                seq,
                send_ns: 1_000 + seq * 10,
            };
            acc.record(G, 5000, &header, 100, 2_000 + i as u64 * 10);
        }
    }

    fn stats_of(acc: &Accounting, stream: u32) -> StreamStats {
        let (stats, _, _) = acc.finish();
        stats.into_iter().find(|s| s.stream == stream).unwrap()
    }

    #[test]
    fn clean_stream() {
        let mut acc = Accounting::new();
        let seqs: Vec<u64> = (0..1000).collect();
        feed(&mut acc, 0, &seqs);
        let s = stats_of(&acc, 0);
        assert_eq!(
            (s.received, s.lost, s.duplicates, s.reordered),
            (1000, 0, 0, 0)
        );
        assert_eq!((s.first_seq, s.last_seq, s.bytes), (0, 999, 100_000));
        assert_eq!(s.first_arrival_ns, 2_000);
        assert_eq!(s.last_arrival_ns, 2_000 + 999 * 10);
    }

    #[test]
    fn injected_loss() {
        let mut acc = Accounting::new();
        // Drop 0, every 10th, and a burst 500..600.
        let seqs: Vec<u64> = (1..1000)
            .filter(|s| s % 10 != 0 && !(500..600).contains(s))
            .collect();
        feed(&mut acc, 1, &seqs);
        let s = stats_of(&acc, 1);
        let expected_lost = 1000 - seqs.len() as u64;
        assert_eq!(s.lost, expected_lost);
        assert_eq!(s.received, seqs.len() as u64);
        assert_eq!((s.duplicates, s.reordered), (0, 0));
    }

    #[test]
    fn injected_duplicates() {
        let mut acc = Accounting::new();
        feed(&mut acc, 2, &[0, 1, 1, 2, 3, 3, 3, 4, 2, 0]);
        let s = stats_of(&acc, 2);
        assert_eq!(
            (s.received, s.duplicates, s.lost, s.reordered),
            (5, 5, 0, 0)
        );
    }

    #[test]
    fn injected_reordering() {
        let mut acc = Accounting::new();
        feed(&mut acc, 3, &[0, 2, 1, 3, 5, 4, 6, 9, 7, 8]);
        let s = stats_of(&acc, 3);
        assert_eq!(
            (s.received, s.reordered, s.duplicates, s.lost),
            (10, 4, 0, 0)
        );
        assert_eq!((s.first_seq, s.last_seq), (0, 9));
    }

    #[test]
    fn the_interface_latency_is_kept_apart_from_the_end_to_end_one() {
        let mut acc = Accounting::new();
        assert_eq!(acc.interface_latency(), None, "no kernel timestamp seen");
        for i in 0..100u64 {
            let header = Header {
                stream: 0,
                seq: i,
                send_ns: 1_000_000 + i,
            };
            // 10 us to the interface, 500 us more to the sink process.
            acc.record(G, 5000, &header, 10, header.send_ns + 510_000);
            acc.record_interface_arrival(header.send_ns, header.send_ns + 10_000);
        }
        let interface = acc.interface_latency().expect("recorded");
        assert!(interface.p99.abs_diff(10_000) <= 100, "{interface:?}");
        let (_, _, end_to_end) = acc.finish();
        assert!(end_to_end.p99.abs_diff(510_000) <= 5_100, "{end_to_end:?}");
        // A timestamp before the send time (a stepped clock) is clamped, never negative.
        acc.record_interface_arrival(2_000_000, 1_000_000);
        assert_eq!(acc.interface_latency().map(|l| l.p50 > 0), Some(true));
    }

    #[test]
    fn mixed_and_large_jumps() {
        let mut acc = Accounting::new();
        // A jump beyond the window, then a duplicate of the new max and a late old packet.
        feed(&mut acc, 4, &[0, 1, WINDOW * 3, WINDOW * 3, 2]);
        let s = stats_of(&acc, 4);
        assert_eq!(s.duplicates, 1);
        assert_eq!(s.reordered, 1);
        assert_eq!(s.received, 4);
        assert_eq!(s.lost, WINDOW * 3 + 1 - 4);
    }

    #[test]
    fn streams_keyed_by_group_port_and_id() {
        let mut acc = Accounting::new();
        let header = Header {
            stream: 0,
            seq: 0,
            send_ns: 0,
        };
        acc.record(G, 5000, &header, 10, 1);
        acc.record(G, 5001, &header, 10, 1);
        acc.record(Ipv4Addr::new(239, 2, 0, 2), 5000, &header, 10, 1);
        acc.record(
            G,
            5000,
            &Header {
                stream: 1,
                ..header
            },
            10,
            1,
        );
        acc.record_foreign();
        let (stats, totals, _) = acc.finish();
        assert_eq!(stats.len(), 4);
        assert_eq!(totals.received, 4);
        assert_eq!(totals.duplicates, 0);
        assert_eq!(acc.foreign(), 1);
        assert_eq!(acc.groups_seen().len(), 2);
    }

    #[test]
    fn latency_percentiles() {
        let mut acc = Accounting::new();
        for seq in 0..100u64 {
            let header = Header {
                stream: 0,
                seq,
                send_ns: 1_000_000,
            };
            acc.record(G, 5000, &header, 10, 1_000_000 + (seq + 1) * 1000);
        }
        let (stats, _, all) = acc.finish();
        let lat = stats[0].latency_ns;
        assert_eq!(lat, all);
        // Two significant digits: within 1 %.
        assert!(
            (lat.p50 as f64 - 50_000.0).abs() <= 1000.0,
            "p50 {}",
            lat.p50
        );
        assert!(
            (lat.max as f64 - 100_000.0).abs() <= 1000.0,
            "max {}",
            lat.max
        );
        assert!(lat.p90 >= lat.p50 && lat.p99 >= lat.p90 && lat.max >= lat.p999);
    }
}
