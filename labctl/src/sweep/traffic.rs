//! One bounded traffic run through a system: one counting sink per egress link (bound to its
//! interface, so kernel fan-out's identical copies are counted per link), kernel counters and
//! the machine's CPU read around it, the system's processes sampled during it.

use super::counters::{self, KernelCounts, LabCounts, Snapshot, Watched};
use super::cpu::CpuSnapshot;
use super::sample::Sampler;
use super::zero_loss::Probe;
use crate::placement::Placement;
use crate::process::loadgen::{RunningSink, ScratchDir, SendRate, SendSpec, SinkSpec};
use crate::results::{CrossCheck, Latency, LinkResult, MachineCpu, Usage};
use crate::systems::Layout;
use anyhow::{Context, Result, bail};
use loadgen::summary::{LatencySummary, SinkSummary};
use std::time::Duration;

/// After the sender finished, the sinks are stopped once their interfaces' rx counters have not
/// moved for this long (nothing is left in flight through the system)...
const DRAIN_STABLE: Duration = Duration::from_millis(300);
/// ... or after this long at most.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// Time the sinks get to read what is queued on their sockets before they are stopped.
const SINK_READ_MARGIN: Duration = Duration::from_millis(150);

/// What to send and where.
#[derive(Debug, Clone, Copy)]
pub struct Run<'a> {
    pub layout: &'a Layout,
    /// Processes of the system under test (sampled for CPU, RSS, fds).
    pub system_pids: &'a [u32],
    pub placement: &'a Placement,
    pub rate: SendRate,
    pub size: u32,
    pub duration: Duration,
    /// Sinks stop by themselves this long after their last packet (a fallback: labctl stops
    /// them once the links are drained).
    pub sink_idle: Duration,
    /// Links (from link 0) with a counting sink; the others are counted by their interface's
    /// rx_packets only (see the scenario's `counting_sinks`).
    pub counting_sinks: u32,
}

/// What one traffic run delivered, link by link, and what the kernel counted.
#[derive(Debug, Clone, Default)]
pub struct Traffic {
    pub sent: u64,
    pub sent_pps: f64,
    pub links: Vec<LinkResult>,
    pub duplicates: u64,
    pub reordered: u64,
    pub latency: Option<Latency>,
    /// To the sinks' interfaces (kernel receive timestamps), the worst sink's.
    pub interface_latency: Option<Latency>,
    /// The system's processes.
    pub usage: Usage,
    pub cpu: Option<MachineCpu>,
    pub counters: CrossCheck,
    /// Packets the sinks' host dropped before counting them (backlog, socket buffers).
    pub sink_lost: u64,
}

impl Traffic {
    /// Packets the sinks should have received: sent x links.
    pub fn offered(&self) -> u64 {
        self.sent * self.links.len() as u64
    }

    /// Distinct packets counted over every link.
    pub fn delivered(&self) -> u64 {
        self.links.iter().map(|l| l.delivered).sum()
    }

    /// Fraction of offered packets the system lost (sink-side drops are not its loss).
    pub fn system_loss(&self) -> f64 {
        let offered = self.offered();
        if offered == 0 {
            return 1.0;
        }
        let reached = (self.delivered() + self.sink_lost).min(offered);
        (offered - reached) as f64 / offered as f64
    }

    /// Fraction of offered packets the sinks' host dropped.
    pub fn sink_loss(&self) -> f64 {
        let offered = self.offered();
        if offered == 0 {
            0.0
        } else {
            self.sink_lost as f64 / offered as f64
        }
    }

    /// The run as a zero-loss probe of `asked` aggregate pps.
    pub fn probe(&self, asked: f64, loss_threshold: f64, min_fraction: f64) -> Probe {
        let achieved = self.sent_pps;
        let lossless = self.system_loss() <= loss_threshold;
        if achieved < min_fraction * asked {
            Probe::GeneratorShort { achieved, lossless }
        } else if self.sink_loss() > loss_threshold {
            Probe::SinkShort { achieved }
        } else if lossless {
            Probe::Pass { achieved }
        } else {
            Probe::Fail { achieved }
        }
    }
}

/// Runs the traffic: sinks up and ready, counters read, bounded send, sinks drained, counters
/// read again.
pub fn run(spec: Run<'_>) -> Result<Traffic> {
    let layout = spec.layout;
    let outputs = layout.outputs();
    let counted = spec.counting_sinks.clamp(1, outputs.max(1));
    let scratch = ScratchDir::new("sink")?;
    let mut sinks = Vec::new();
    for k in 0..counted {
        sinks.push(start_sink(&spec, k, &scratch)?);
    }
    let watched = watched(layout);
    let sink_ns = layout
        .sinks
        .first()
        .map(|s| s.netns.clone())
        .context("the topology has no sink")?;
    let sink_pids: Vec<u32> = sinks.iter().map(RunningSink::pid).collect();
    let before = Snapshot::take(&watched, &sink_ns);
    let cpu_before = CpuSnapshot::take();
    let sampler = Sampler::start(spec.system_pids.to_vec(), sink_pids)
        .context("starting the /proc sampler")?;
    let send_dir = ScratchDir::new("send")?;
    let send = send_spec(&spec).run(&send_dir);
    let sink_links: Vec<Watched> = watched[watched.len() - outputs as usize..].to_vec();
    drain(&sink_links, &sink_ns);
    std::thread::sleep(SINK_READ_MARGIN);
    let summaries: Vec<Result<SinkSummary>> = sinks
        .into_iter()
        .map(|s| s.finish(Duration::ZERO))
        .collect();
    let (usage, _) = sampler.finish();
    let cpu = cpu_before
        .zip(CpuSnapshot::take())
        .map(|(b, a)| a.since(&b, &spec.placement.sut_cpus, &spec.placement.loadgen_cpus));
    let after = Snapshot::take(&watched, &sink_ns);
    let send = send.context("loadgen send")?;
    let summaries = summaries
        .into_iter()
        .collect::<Result<Vec<_>>>()
        .context("loadgen sink")?;
    if send.sent_packets == 0 {
        bail!(
            "loadgen send sent nothing ({} send errors)",
            send.send_errors
        );
    }
    let kernel = kernel_counts(layout, &watched, &before, &after);
    Ok(assemble_all(
        layout,
        send.sent_packets,
        send.achieved_pps,
        &summaries,
        &kernel,
        usage,
        cpu,
    ))
}

/// Waits until the sink interfaces' rx counters stop moving for [`DRAIN_STABLE`] (at most
/// [`DRAIN_LIMIT`]): the sender has finished, and the system has sent what it still held.
fn drain(sink_links: &[Watched], sink_ns: &str) {
    let end = std::time::Instant::now() + DRAIN_LIMIT;
    let total = || {
        counters::read_links(sink_ns).ok().map(|all| {
            sink_links
                .iter()
                .filter_map(|w| all.get(&w.ifname))
                .map(|c| c.rx_packets)
                .sum::<u64>()
        })
    };
    let mut last = total();
    let mut stable_since = std::time::Instant::now();
    while std::time::Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
        let now = total();
        if now != last || now.is_none() {
            last = now;
            stable_since = std::time::Instant::now();
        } else if stable_since.elapsed() >= DRAIN_STABLE {
            return;
        }
    }
}

fn start_sink(spec: &Run<'_>, k: u32, scratch: &ScratchDir) -> Result<RunningSink> {
    let layout = spec.layout;
    let sink_if = layout
        .sinks
        .get(k as usize)
        .with_context(|| format!("the topology has no sink interface for output {k}"))?;
    SinkSpec {
        netns: sink_if.netns.clone(),
        interface: sink_if.ifname.clone(),
        streams: layout.streams,
        group_base: layout.output_base(k),
        groups: None,
        port: layout.output_port(k),
        idle: spec.sink_idle,
        duration: spec.duration + Duration::from_secs(15),
        bind_device: true,
        placement: spec.placement.sink.clone(),
    }
    .start(scratch)
    .with_context(|| format!("starting the sink of link {k}"))
}

fn send_spec(spec: &Run<'_>) -> SendSpec {
    spec.layout
        .send_spec(spec.rate, spec.size, spec.duration, &spec.placement.sender)
}

/// The interfaces read around a run: generator, relay ingress, relay egress links, sink links.
fn watched(layout: &Layout) -> Vec<Watched> {
    let w = |e: &crate::topology::Endpoint| Watched {
        netns: e.netns.clone(),
        ifname: e.ifname.clone(),
    };
    let outputs = layout.outputs() as usize;
    let mut all = vec![w(&layout.generator)];
    all.extend(layout.relay_in.iter().map(w));
    all.extend(layout.relay_out.iter().take(outputs).map(w));
    all.extend(layout.sinks.iter().take(outputs).map(w));
    all
}

fn kernel_counts(
    layout: &Layout,
    watched: &[Watched],
    before: &Snapshot,
    after: &Snapshot,
) -> KernelCounts {
    let delta = |w: &Watched| after.delta(before, w);
    let relay = usize::from(layout.relay_in.is_some());
    let outputs = layout.outputs() as usize;
    let relay_outs = layout.relay_out.len().min(outputs);
    let sinks_from = 1 + relay + relay_outs;
    KernelCounts {
        generator: watched.first().and_then(delta),
        relay_in: (relay == 1).then(|| delta(&watched[1])).flatten(),
        relay_out: watched[1 + relay..sinks_from].iter().map(delta).collect(),
        sinks: watched[sinks_from..].iter().map(delta).collect(),
        sink_udp: after.udp_delta(before),
    }
}

/// Per-link results, totals and the cross-check: the links with a counting sink from their
/// summaries ([`assemble`]), the others from their interfaces' counters.
fn assemble_all(
    layout: &Layout,
    sent: u64,
    sent_pps: f64,
    summaries: &[SinkSummary],
    kernel: &KernelCounts,
    usage: Usage,
    cpu: Option<MachineCpu>,
) -> Traffic {
    let counted = summaries.len();
    // The cross-check compares what the sinks read with their own links' counters.
    let sinks_only = KernelCounts {
        sinks: kernel.sinks.iter().take(counted).copied().collect(),
        ..kernel.clone()
    };
    let mut t = assemble(layout, sent, sent_pps, summaries, &sinks_only, usage, cpu);
    add_interface_counted_links(&mut t, &kernel.sinks, counted, |k| sink_ifname(layout, k));
    t
}

/// Adds links `counted..` (those without a sink) from their interfaces' counters, and what the
/// sinks' host dropped on them (their rx_dropped: the receive backlog of the CPU the lab steers
/// those links to was full) to `sink_lost`: the lab's loss like a counting sink's, never the
/// system's. At fan-out 20 such drops were 18 % of the copies in one run, all on the sink's
/// CPU (`/proc/net/softnet_stat`), the relay's CPU dropping none.
fn add_interface_counted_links(
    t: &mut Traffic,
    sinks: &[Option<counters::LinkCounters>],
    counted: usize,
    interface: impl Fn(usize) -> String,
) {
    for (k, wire) in sinks.iter().enumerate().skip(counted) {
        t.links
            .push(interface_counted_link(interface(k), k, t.sent, *wire));
        t.sink_lost += wire.map_or(0, |w| w.rx_dropped);
    }
}

/// The sink-side interface of link `k` (empty if the layout has none).
/// The worst sink's percentiles (each the largest over the sinks), `None` when no sink has a
/// measurement.
fn worst_latency(sinks: impl Iterator<Item = Option<LatencySummary>>) -> Option<Latency> {
    sinks.flatten().fold(None, |worst: Option<Latency>, s| {
        let w = worst.unwrap_or_default();
        Some(Latency {
            p50: w.p50.max(s.p50),
            p99: w.p99.max(s.p99),
            p999: w.p999.max(s.p999),
        })
    })
}

fn sink_ifname(layout: &Layout, k: usize) -> String {
    layout
        .sinks
        .get(k)
        .map_or_else(String::new, |e| e.ifname.clone())
}

/// A link without a sink: delivered is what its interface received (rx_packets, at most what
/// was sent: the few non-data packets a link may carry cannot hide loss beyond them).
fn interface_counted_link(
    interface: String,
    k: usize,
    sent: u64,
    wire: Option<counters::LinkCounters>,
) -> LinkResult {
    let delivered = wire.map_or(0, |w| w.rx_packets.min(sent));
    LinkResult {
        link: k as u32,
        interface,
        offered: sent,
        delivered,
        duplicates: 0,
        wire_rx: wire.map(|w| w.rx_packets),
        rx_dropped: wire.map(|w| w.rx_dropped),
        delivered_pct: (sent > 0).then(|| delivered as f64 * 100.0 / sent as f64),
        interface_counted: true,
    }
}

/// The links with a counting sink, totals and the cross-check, from the summaries and the
/// kernel's counts.
fn assemble(
    layout: &Layout,
    sent: u64,
    sent_pps: f64,
    summaries: &[SinkSummary],
    kernel: &KernelCounts,
    usage: Usage,
    cpu: Option<MachineCpu>,
) -> Traffic {
    let mut t = Traffic {
        sent,
        sent_pps,
        usage,
        cpu,
        ..Traffic::default()
    };
    let receiving = || summaries.iter().filter(|s| s.totals.received > 0);
    t.latency = worst_latency(receiving().map(|s| Some(s.latency_ns)));
    t.interface_latency = worst_latency(receiving().map(|s| s.interface_latency_ns));
    for (k, s) in summaries.iter().enumerate() {
        let wire = kernel.sinks.get(k).copied().flatten();
        t.links.push(LinkResult {
            link: k as u32,
            interface: sink_ifname(layout, k),
            offered: sent,
            delivered: s.totals.received,
            duplicates: s.totals.duplicates,
            wire_rx: wire.map(|w| w.rx_packets),
            rx_dropped: wire.map(|w| w.rx_dropped),
            delivered_pct: (sent > 0).then(|| s.totals.received as f64 * 100.0 / sent as f64),
            interface_counted: false,
        });
        t.duplicates += s.totals.duplicates;
        t.reordered += s.totals.reordered;
    }
    let lab = LabCounts {
        sent,
        sink_read: summaries.iter().map(|s| s.received + s.foreign).collect(),
    };
    t.counters = counters::cross_check(&lab, kernel);
    t.sink_lost = counters::sink_host_drops(&t.counters).unwrap_or(0);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn traffic(sent: u64, delivered: &[u64], sink_lost: u64, sent_pps: f64) -> Traffic {
        Traffic {
            sent,
            sent_pps,
            sink_lost,
            links: delivered
                .iter()
                .enumerate()
                .map(|(k, &d)| LinkResult {
                    link: k as u32,
                    interface: format!("l{k}"),
                    offered: sent,
                    delivered: d,
                    duplicates: 0,
                    wire_rx: None,
                    rx_dropped: None,
                    delivered_pct: None,
                    interface_counted: false,
                })
                .collect(),
            ..Traffic::default()
        }
    }

    #[test]
    fn every_link_counts_and_sink_drops_are_not_the_systems() {
        let t = traffic(1000, &[1000, 990, 1000], 10, 500.0);
        assert_eq!((t.offered(), t.delivered()), (3000, 2990));
        assert_eq!(t.system_loss(), 0.0);
        assert!((t.sink_loss() - 10.0 / 3000.0).abs() < 1e-12);
        let t = traffic(1000, &[1000, 900], 0, 500.0);
        assert!((t.system_loss() - 0.05).abs() < 1e-12);
    }

    #[test]
    fn probes_say_what_limited_them() {
        let ok = traffic(1000, &[1000], 0, 500.0);
        assert_eq!(
            ok.probe(500.0, 0.001, 0.99),
            Probe::Pass { achieved: 500.0 }
        );
        let short = traffic(1000, &[1000], 0, 300.0);
        assert_eq!(
            short.probe(500.0, 0.001, 0.99),
            Probe::GeneratorShort {
                achieved: 300.0,
                lossless: true
            }
        );
        let lossy = traffic(1000, &[900], 0, 500.0);
        assert_eq!(
            lossy.probe(500.0, 0.001, 0.99),
            Probe::Fail { achieved: 500.0 }
        );
        let sink = traffic(1000, &[900], 100, 500.0);
        assert_eq!(
            sink.probe(500.0, 0.001, 0.99),
            Probe::SinkShort { achieved: 500.0 }
        );
    }

    #[test]
    fn links_without_a_sink_are_counted_by_their_interfaces_and_left_out_of_the_sink_check() {
        let wire = |rx| {
            Some(counters::LinkCounters {
                rx_packets: rx,
                tx_packets: 0,
                rx_dropped: 0,
                tx_dropped: 0,
            })
        };
        // Three links, one counting sink that read all 1000; link 1's interface saw 1002
        // packets (two non-data packets: capped at what was sent), link 2's 990.
        let kernel = KernelCounts {
            sinks: vec![wire(1000), wire(1002), wire(990)],
            ..KernelCounts::default()
        };
        let link = |k: usize| interface_counted_link(format!("l{k}"), k, 1000, kernel.sinks[k]);
        let l1 = link(1);
        assert!(l1.interface_counted);
        assert_eq!((l1.delivered, l1.wire_rx), (1000, Some(1002)));
        let l2 = link(2);
        assert_eq!(l2.delivered, 990);
        assert_eq!(l2.delivered_pct, Some(99.0));
        let unread = interface_counted_link("l3".into(), 3, 1000, None);
        assert_eq!(
            unread.delivered, 0,
            "an unreadable counter counts as nothing delivered"
        );
    }

    #[test]
    fn the_sink_hosts_drops_on_links_without_a_sink_are_the_labs_loss() {
        let wire = |rx, dropped| {
            Some(counters::LinkCounters {
                rx_packets: rx,
                rx_dropped: dropped,
                ..counters::LinkCounters::default()
            })
        };
        // Three links of 1000 sent: link 0's sink read all; links 1 and 2 have no sink, their
        // interfaces took 900 and 950, the host dropped 100 and 50 in its backlog.
        let mut t = traffic(1000, &[1000], 0, 1000.0);
        let sinks = [wire(1000, 0), wire(900, 100), wire(950, 50)];
        add_interface_counted_links(&mut t, &sinks, 1, |k| format!("l{k}"));
        assert_eq!(t.links.len(), 3);
        assert_eq!(t.sink_lost, 150);
        assert_eq!(t.delivered(), 2850);
        assert!(
            matches!(t.probe(1000.0, 0.001, 0.99), Probe::SinkShort { .. }),
            "the host's drops make the probe sink-bound, not the system's failure"
        );
        // Without those drops the same shortfall is the system's.
        let mut lossy = traffic(1000, &[1000], 0, 1000.0);
        add_interface_counted_links(&mut lossy, &[wire(1000, 0), wire(900, 0)], 1, |k| {
            format!("l{k}")
        });
        assert_eq!(lossy.sink_lost, 0);
        assert!(matches!(
            lossy.probe(1000.0, 0.001, 0.99),
            Probe::Fail { .. }
        ));
    }
}
