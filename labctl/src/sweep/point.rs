//! One point of a sweep: topology up, system up with its rules, sinks ready, bounded send,
//! summaries and /proc samples collected, optional zero-loss search, topology down.
//! Every failure becomes the point's status; nothing here aborts the sweep.

use super::join_delay;
use super::sample::Sampler;
use crate::process::loadgen::{RunningSink, ScratchDir, SendRate, SendSpec, SinkSpec};
use crate::results::{Latency, PointResult, Status, Usage};
use crate::scenario::{Point, Scenario, SystemKind, TopologyKind};
use crate::systems::{self, Layout, StartError};
use crate::topology::{Role, Template, Topology, TopologyOptions};
use anyhow::{Context, Result, bail};
use loadgen::summary::Totals;
use std::time::Duration;

/// Sinks stop after this long without packets (once traffic started).
const SINK_IDLE: Duration = Duration::from_secs(1);
/// How long to wait for the sinks' idle stop after the sender finished.
const SINK_DRAIN: Duration = Duration::from_secs(3);

/// Port the join-only sinks of kernel fan-out bind (nothing is sent to it; the topology's
/// readiness probe uses 4999).
const JOIN_ONLY_PORT: u16 = 4997;

/// Prefix of the note that names a point's topology run id.
pub const TOPOLOGY_NOTE: &str = "topology run id ";

/// The topology template of a point.
pub fn template_of(scenario: &Scenario, point: &Point) -> Result<Template> {
    if point.system == SystemKind::Direct {
        return Ok(Template::Direct);
    }
    if point.fanout > 1 {
        let k = u8::try_from(point.fanout)
            .ok()
            .filter(|k| *k <= crate::topology::MAX_FANOUT)
            .with_context(|| {
                format!(
                    "fan-out {} is above the topology's maximum {}",
                    point.fanout,
                    crate::topology::MAX_FANOUT
                )
            })?;
        return Ok(Template::Fanout(k));
    }
    Ok(match scenario.topology {
        TopologyKind::Chain => Template::Chain,
        TopologyKind::Snooping => Template::Snooping,
    })
}

/// Measures one point. Never panics on system failures: they become the status.
pub fn measure(scenario: &Scenario, point: &Point) -> PointResult {
    match measure_inner(scenario, point) {
        Ok(r) => r,
        Err(Outcome::Skipped(reason)) => {
            PointResult::empty(point.clone(), Status::Skipped { reason })
        }
        Err(Outcome::Failed(e)) => PointResult::empty(
            point.clone(),
            Status::Failed {
                reason: format!("{e:#}"),
            },
        ),
    }
}

enum Outcome {
    Skipped(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Outcome {
    fn from(e: anyhow::Error) -> Self {
        Outcome::Failed(e)
    }
}

fn measure_inner(scenario: &Scenario, point: &Point) -> Result<PointResult, Outcome> {
    // Skip before building anything when a tool is missing.
    match point.system {
        SystemKind::Socat => systems::find_tool("socat", "socat").map(drop),
        SystemKind::Kernel => systems::find_tool("smcrouted", "smcroute").map(drop),
        _ => Ok(()),
    }
    .map_err(|e| Outcome::Skipped(e.to_string()))?;

    let template = template_of(scenario, point)?;
    let mut opts = TopologyOptions::new(template);
    if point.system != SystemKind::Direct {
        for (k, v) in scenario
            .sysctls_for(&point.variant)
            .into_iter()
            .chain(systems::required_sysctls(point.system))
        {
            opts.sysctls.push((Role::Relay, k, v));
        }
    }
    let topology = Topology::up(&opts).context("building the topology")?;
    let result = with_topology(scenario, point, &topology);
    let down = topology.down();
    let mut result = result?;
    if let Err(e) = down {
        result.notes.push(format!("topology teardown: {e:#}"));
    }
    Ok(result)
}

fn with_topology(
    scenario: &Scenario,
    point: &Point,
    topology: &Topology,
) -> Result<PointResult, Outcome> {
    let layout = Layout::new(point.system, topology, point.streams, point.fanout);
    let mut system = match systems::start(point.system, &layout) {
        Ok(s) => s,
        Err(StartError::Skip(reason)) => return Err(Outcome::Skipped(reason)),
        Err(StartError::Failed(e)) => {
            return Err(Outcome::Failed(
                e.context(format!("starting {}", point.system)),
            ));
        }
    };
    let mut result = PointResult::empty(point.clone(), Status::Ok);
    result.notes.push(format!(
        "{TOPOLOGY_NOTE}{} ({})",
        topology.run_id(),
        topology.template()
    ));
    let probe_only = scenario.capacity.as_ref().is_some_and(|c| !c.send_traffic);
    let installed = install_rules(point, &layout, &mut system, probe_only, &mut result);
    result.notes.extend(system.notes.iter().cloned());
    if layout.same_group && point.fanout > 1 && point.system == SystemKind::Kernel {
        result.notes.push(KERNEL_FANOUT_NOTE.to_owned());
    }

    let measured = match installed {
        Err(e) => Err(e),
        Ok(()) if probe_only => Sampler::start(system.pids(), Vec::new())
            .context("starting the /proc sampler")
            .map(|sampler| {
                std::thread::sleep(Duration::from_millis(300));
                let (usage, _) = sampler.finish();
                result.usage = Some(usage);
            }),
        Ok(()) => measure_traffic(scenario, point, &layout, &system.pids(), &mut result),
    };
    let died = system.stop();
    measured?;
    if let Some(died) = died {
        result.status = Status::Failed {
            reason: format!("{} died during the point: {died}", point.system),
        };
    }
    Ok(result)
}

/// How kernel fan-out is counted (it forwards the same group and port to every link).
pub const KERNEL_FANOUT_NOTE: &str = "kernel fan-out: every link carries the same group and port, so one sink counts the copies of all links (the other links' sinks only join); delivered = copies received over all links, capped at sent x links";

/// Installs every rule of the point; unless `probe_only` or `direct`, the last ones are timed
/// for the join delay (with a probe sender already sending). Records capacity and join delay.
fn install_rules(
    point: &Point,
    layout: &Layout,
    system: &mut systems::Running,
    probe_only: bool,
    result: &mut PointResult,
) -> Result<()> {
    let timed = if probe_only || point.system == SystemKind::Direct {
        point.streams..point.streams
    } else {
        join_delay::sample(point.streams)
    };
    system
        .install(layout, 0..timed.start, false)
        .context("installing the rules")?;
    if !timed.is_empty() {
        // Let the bulk's memberships settle (socat joins asynchronously) before timing.
        system.capacity(layout).context("waiting for the joins")?;
        let (delays, notes) =
            join_delay::measure(system, layout, timed).context("measuring the join delay")?;
        result.join_delay_ms = delays.as_ref().map(|d| d.median_ms);
        result.join_delay_max_ms = delays.as_ref().map(|d| d.max_ms);
        result.notes.extend(notes);
    }
    result.capacity = system.capacity(layout).context("reading the capacity")?;
    Ok(())
}

/// What one traffic run delivered.
#[derive(Debug, Clone, Default)]
struct Traffic {
    offered: u64,
    delivered: u64,
    duplicates: u64,
    reordered: u64,
    sent_pps: f64,
    latency: Option<Latency>,
    system: Usage,
    loadgen: Usage,
}

impl Traffic {
    fn loss(&self) -> f64 {
        if self.offered == 0 {
            1.0
        } else {
            1.0 - self.delivered as f64 / self.offered as f64
        }
    }
}

fn measure_traffic(
    scenario: &Scenario,
    point: &Point,
    layout: &Layout,
    pids: &[u32],
    result: &mut PointResult,
) -> Result<()> {
    let duration = Duration::from_secs_f64(scenario.duration_s);
    let t = run_traffic(
        layout,
        pids,
        SendRate::PerStream(point.rate_pps),
        point.size,
        duration,
    )?;
    result.offered = t.offered;
    result.delivered = t.delivered;
    result.lost = t.offered.saturating_sub(t.delivered);
    result.duplicates = t.duplicates;
    result.reordered = t.reordered;
    result.sent_pps = Some(t.sent_pps);
    let asked = point.total_pps();
    if t.sent_pps < 0.9 * asked {
        result.notes.push(format!(
            "the sender reached only {:.0} of {asked:.0} pps asked (machine saturated): less load was offered",
            t.sent_pps
        ));
    }
    result.latency_ns = t.latency;
    if point.system != SystemKind::Direct {
        result.usage = Some(t.system);
    }
    result.loadgen_cpu_s_per_mpkt =
        (t.delivered > 0).then(|| t.loadgen.cpu_s * 1e6 / t.delivered as f64);
    result.derive();

    if let Some(z) = &scenario.zero_loss {
        let probe = Duration::from_secs_f64(z.duration_s.unwrap_or(scenario.duration_s));
        let run = |total: f64| -> Result<(bool, f64)> {
            let t = run_traffic(layout, pids, SendRate::Total(total), point.size, probe)?;
            Ok((t.loss() <= scenario.loss_threshold, t.sent_pps))
        };
        let (ok_max, pps_max) = run(z.max_pps)?;
        result.zero_loss_pps = if ok_max {
            Some(pps_max)
        } else {
            let (ok_min, pps_min) = run(z.min_pps)?;
            if !ok_min {
                result.notes.push(format!(
                    "zero-loss search: loss above the threshold already at {} pps",
                    z.min_pps
                ));
                None
            } else {
                let (mut lo, mut hi, mut best) = (z.min_pps, z.max_pps, pps_min);
                for _ in 0..z.iterations {
                    let mid = (lo + hi) / 2.0;
                    let (ok, pps) = run(mid)?;
                    if ok {
                        lo = mid;
                        best = pps;
                    } else {
                        hi = mid;
                    }
                }
                Some(best)
            }
        };
    }
    Ok(())
}

/// (delivered, duplicates) of one sink. A sink counts distinct packets in `received` and
/// repeats in `duplicates`; with `shared_links` (kernel fan-out: one sink receives every link's
/// copy of the same group and port, each copy arriving once) the copies are what was delivered,
/// capped at what was `offered` (sent x links).
fn delivered_and_duplicates(totals: &Totals, offered: u64, shared_links: bool) -> (u64, u64) {
    if shared_links {
        let copies = totals.received + totals.duplicates;
        (copies.min(offered), copies.saturating_sub(offered))
    } else {
        (totals.received, totals.duplicates)
    }
}

/// Starts one sink per output, samples the system while a bounded send runs, collects.
fn run_traffic(
    layout: &Layout,
    pids: &[u32],
    rate: SendRate,
    size: u32,
    duration: Duration,
) -> Result<Traffic> {
    let outputs = layout.outputs();
    // Kernel fan-out: every link carries the same group and port, and a sink's socket receives
    // a group arriving on any interface where it is joined. Sink 0 counts every link's copies;
    // the others only join (so their links' copies are accepted) on a port nothing is sent to.
    let shared_links = layout.same_group && outputs > 1;
    let mut scratch = Vec::new();
    let mut sinks: Vec<RunningSink> = Vec::new();
    let mut joiners: Vec<RunningSink> = Vec::new();
    for k in 0..outputs {
        let sink_if = layout
            .sinks
            .get(k as usize)
            .with_context(|| format!("the topology has no sink interface for output {k}"))?;
        let dir = ScratchDir::new("sink")?;
        let spec = SinkSpec {
            netns: sink_if.netns.clone(),
            interface: sink_if.ifname.clone(),
            streams: layout.streams,
            group_base: layout.output_base(k),
            groups: None,
            port: if shared_links && k > 0 {
                JOIN_ONLY_PORT
            } else {
                layout.output_port(k)
            },
            idle: SINK_IDLE,
            duration: duration + Duration::from_secs(15),
        };
        let sink = spec
            .start(&dir)
            .with_context(|| format!("starting sink {k}"))?;
        if shared_links && k > 0 {
            joiners.push(sink);
        } else {
            sinks.push(sink);
        }
        scratch.push(dir);
    }
    let sink_pids: Vec<u32> = sinks.iter().chain(&joiners).map(RunningSink::pid).collect();
    let sampler = Sampler::start(pids.to_vec(), sink_pids).context("starting the /proc sampler")?;
    let send_dir = ScratchDir::new("send")?;
    let send = SendSpec {
        netns: layout.generator.netns.clone(),
        interface: layout.generator.ifname.clone(),
        source: layout.generator.addr,
        streams: layout.streams,
        group_base: systems::INPUT_BASE,
        port: systems::BASE_PORT,
        rate,
        size: size as usize,
        count: None,
        duration,
    }
    .run(&send_dir);
    let mut summaries = Vec::new();
    let mut sink_error = None;
    for sink in sinks {
        match sink.finish(SINK_DRAIN) {
            Ok(s) => summaries.push(s),
            Err(e) => {
                sink_error.get_or_insert(e);
            }
        }
    }
    for joiner in joiners {
        // Nothing arrives on their port: stop them now (their summaries are not counted).
        if let Err(e) = joiner.finish(Duration::ZERO) {
            sink_error.get_or_insert(e);
        }
    }
    let (system, loadgen) = sampler.finish();
    let send = send.context("loadgen send")?;
    if let Some(e) = sink_error {
        return Err(e.context("loadgen sink"));
    }
    if send.sent_packets == 0 {
        bail!(
            "loadgen send sent nothing ({} send errors)",
            send.send_errors
        );
    }
    let mut t = Traffic {
        offered: send.sent_packets * u64::from(outputs),
        sent_pps: send.achieved_pps,
        system,
        loadgen,
        ..Traffic::default()
    };
    let mut latency = Latency::default();
    for s in &summaries {
        let (delivered, duplicates) = delivered_and_duplicates(&s.totals, t.offered, shared_links);
        t.delivered += delivered;
        t.duplicates += duplicates;
        t.reordered += s.totals.reordered;
        if s.totals.received > 0 {
            latency.p50 = latency.p50.max(s.latency_ns.p50);
            latency.p99 = latency.p99.max(s.latency_ns.p99);
            latency.p999 = latency.p999.max(s.latency_ns.p999);
            t.latency = Some(latency);
        }
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_fanout_counts_every_links_copy() {
        // 3 links, 100 packets sent: 300 offered. One link lost 10: 290 copies arrived, which
        // the sink sees as 100 distinct + 190 repeats.
        let t = Totals {
            received: 100,
            lost: 0,
            duplicates: 190,
            reordered: 0,
        };
        assert_eq!(delivered_and_duplicates(&t, 300, true), (290, 0));
        // Renamed outputs: repeats are real duplicates.
        assert_eq!(delivered_and_duplicates(&t, 300, false), (100, 190));
        // More copies than offered (a real duplicate somewhere): capped, the rest duplicates.
        let t = Totals {
            duplicates: 205,
            ..t
        };
        assert_eq!(delivered_and_duplicates(&t, 300, true), (300, 5));
    }
}
