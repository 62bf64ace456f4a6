//! What one point measured, besides the packet counts: latency, membership capacity, process
//! usage, per-link counts, the kernel-counter cross-check, whole-machine CPU and the zero-loss
//! search.

use serde::{Deserialize, Serialize};

/// Forwarding latency percentiles, nanoseconds (sender's send time to the sink's receive time).
/// With several egress links: the worst link's percentile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    pub p50: u64,
    pub p99: u64,
    pub p999: u64,
}

/// Membership capacity seen while installing rules one at a time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Capacity {
    /// Groups (rules) tried.
    pub tried: u32,
    /// Groups accepted before the first refusal (all of them when none was refused).
    pub accepted: u32,
    /// 0-based index of the first refused group, if any.
    pub first_refused: Option<u32>,
    /// The refused group's address.
    pub refused_group: Option<String>,
    /// errno of the refusal (105 = ENOBUFS).
    pub errno: Option<i32>,
    /// The refusal's message.
    pub error: Option<String>,
}

/// What the system's processes used, from `/proc/PID/{stat,status,fd}` sampled during the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    /// utime + stime of every process of the system (children included), seconds. The kernel
    /// scales these to the scheduler's exact run time, so the total is precise.
    pub cpu_s: f64,
    /// Highest sum of VmRSS over the processes, KiB.
    pub peak_rss_kib: u64,
    /// Most processes seen at once.
    pub processes: u32,
    /// Most open file descriptors seen at once (summed over processes).
    pub fds: u32,
}

/// One egress link, counted by its own sink (bound to the link's interface).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkResult {
    /// 0-based output index.
    pub link: u32,
    /// The sink-side interface.
    pub interface: String,
    /// Packets this link should have carried (= packets sent).
    pub offered: u64,
    /// Distinct packets its sink counted.
    pub delivered: u64,
    pub duplicates: u64,
    /// Packets the kernel counted arriving on the interface (rtnetlink rx_packets).
    pub wire_rx: Option<u64>,
    /// Packets the sink's host dropped on this interface before its socket (rx_dropped).
    pub rx_dropped: Option<u64>,
    /// delivered / offered x 100.
    pub delivered_pct: Option<f64>,
    /// True when the link had no counting sink (`counting_sinks`): `delivered` is then the
    /// interface's rx_packets (at most `offered`), and it has no duplicates, order or latency.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub interface_counted: bool,
}

/// UDP counters of a namespace (`/proc/net/snmp`, `Udp:` line), as deltas over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct UdpCounters {
    /// Datagrams read by sockets.
    pub in_datagrams: u64,
    /// Datagrams dropped on receive (socket buffer full, bad checksum, ...).
    pub in_errors: u64,
    /// Of those, dropped because a socket's receive buffer was full.
    pub rcvbuf_errors: u64,
    /// Datagrams for a port nobody listened on (e.g. arriving after the sink stopped).
    pub no_ports: u64,
}

/// Every count of the lab checked against kernel counters nobody in the lab wrote.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CrossCheck {
    /// Packets `loadgen send` says it sent.
    pub sender_sent: u64,
    /// tx_packets of the generator's interface.
    pub generator_tx: Option<u64>,
    /// rx_packets of the relay namespace's ingress interface.
    pub relay_in_rx: Option<u64>,
    /// tx_packets summed over the relay namespace's egress interfaces.
    pub relay_out_tx: Option<u64>,
    /// rx_packets summed over the sink interfaces.
    pub sink_wire_rx: Option<u64>,
    /// rx_dropped summed over the sink interfaces (the sink host's backlog).
    pub sink_rx_dropped: Option<u64>,
    /// The sink namespace's UDP counters.
    pub sink_udp: Option<UdpCounters>,
    /// Datagrams the sinks read (valid + foreign, duplicates included).
    pub sink_counted: u64,
    /// Largest relative disagreement of the checks (0.002 = 0.2 %).
    pub max_mismatch: f64,
    /// One sentence per disagreement beyond the tolerance.
    pub mismatches: Vec<String>,
}

impl CrossCheck {
    /// True when a count disagreed with the kernel's beyond the tolerance.
    pub fn flagged(&self) -> bool {
        !self.mismatches.is_empty()
    }
}

/// CPU time of one CPU over a point's measurement window, seconds (`/proc/stat`).
///
/// `busy` is the window minus idle, iowait and steal: idle is measured exactly by the kernel's
/// tickless idle accounting. The other columns are sampled at every timer tick, and a tick that
/// is stopped while the CPU idles only ever samples busy moments: with many short wake-ups they
/// overstate work several-fold (measured: 1.74 s "user+system+softirq" in a 3 s window where the
/// CPU idled 2.39 s). They show the kind of work, `busy` how much.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTimes {
    pub cpu: u32,
    /// Window - idle - iowait - steal.
    pub busy: f64,
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub irq: f64,
    pub softirq: f64,
    pub steal: f64,
    pub idle: f64,
    pub iowait: f64,
}

impl CpuTimes {
    /// The tick-sampled work columns: user + nice + system + irq + softirq.
    pub fn sampled_work(&self) -> f64 {
        self.user + self.nice + self.system + self.irq + self.softirq
    }
}

/// The whole machine's CPU over a point's measurement window.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MachineCpu {
    /// Length of the window, seconds.
    pub window_s: f64,
    pub cpus: Vec<CpuTimes>,
    /// CPUs the system under test ran on (empty without isolation).
    pub sut_cpus: Vec<u32>,
    /// CPUs of the load generator (empty without isolation).
    pub loadgen_cpus: Vec<u32>,
}

impl MachineCpu {
    /// Busy time of every CPU.
    pub fn total_busy(&self) -> f64 {
        self.cpus.iter().map(|c| c.busy).sum()
    }

    /// Busy time of the system under test's CPUs; `None` without isolation.
    pub fn sut_busy(&self) -> Option<f64> {
        self.busy_of(&self.sut_cpus)
    }

    /// Busy time of the load generator's CPUs; `None` without isolation.
    pub fn loadgen_busy(&self) -> Option<f64> {
        self.busy_of(&self.loadgen_cpus)
    }

    fn busy_of(&self, set: &[u32]) -> Option<f64> {
        (!set.is_empty()).then(|| {
            self.cpus
                .iter()
                .filter(|c| set.contains(&c.cpu))
                .map(|c| c.busy)
                .sum()
        })
    }
}

/// Where the CPU figure of a point comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CpuBasis {
    /// Busy time of the CPUs given to the system under test (isolation on): its processes and
    /// the kernel's receive, forwarding and transmit work steered there.
    SutCpus,
    /// The system's processes only (isolation off): kernel work in softirq is not included.
    Processes,
}

/// Why a zero-loss result is a bound rather than the system's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchBound {
    /// The sender could not go faster: the system is at least this fast.
    Generator,
    /// The sink's host dropped packets: the system is at least this fast.
    Sink,
    /// Lossless at the top of the search range.
    RangeTop,
}

/// Result of the zero-loss search.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZeroLoss {
    /// Highest aggregate rate (input packets per second) measured lossless.
    pub pps: f64,
    /// Lowest rate measured with loss above the threshold, if any.
    pub lossy_pps: Option<f64>,
    /// Set when `pps` is a lower bound (the search could not push the system to loss).
    pub bound: Option<SearchBound>,
    /// lossy_pps / pps - 1: how close the bracket came (`None` without a lossy probe).
    pub resolution: Option<f64>,
    /// Probes run.
    pub probes: u32,
    /// What made the probe at `lossy_pps` lossy (absent in results written before it was
    /// recorded, and when no probe was lossy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upper: Option<LossyProbe>,
}

/// Why a zero-loss probe counted as lossy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossyBecause {
    /// The system lost more than the threshold.
    Loss,
    /// The system's loss stayed under the threshold, but its p99 latency exceeded the search's
    /// bound (`max_p99_ms`): the traffic queued up instead of flowing through.
    Latency,
    /// The sink's host dropped more than the threshold (the lab's limit, not the system's).
    Sink,
}

/// The zero-loss search's lowest lossy probe: what a reader needs to tell a system that drops
/// from one that stalls.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossyProbe {
    /// Aggregate rate asked for (input packets per second).
    pub asked_pps: f64,
    pub because: LossyBecause,
    /// Fraction of the offered packets the system lost.
    pub system_loss: f64,
    /// p99 latency of the probe (send -> sink process), when the sinks measured it.
    pub p99_ns: Option<u64>,
    /// p99 latency to the sinks' interfaces (kernel timestamps), which the search judges when
    /// the sinks measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_p99_ns: Option<u64>,
}
