//! `labctl soak`: a long, bounded run of this project's relay under change. Streams flow through
//! the `chain` topology for the whole run while rules are added and removed every second (rules
//! of groups nobody sends to: the table changes under the workers, the traffic must not notice)
//! and a relay link goes down and up every `flap_every` (its ingress and its egress in turn).
//! The relay's RSS and descriptors are sampled every second; the sink dates every loss (its gap
//! timeline). The verdict ([`verdict`]): memory flat within 5 %, no descriptor growth, losses
//! only inside the flap windows.

mod faults;
pub mod verdict;

use crate::placement::Placement;
use crate::process::loadgen::{ScratchDir, SendRate, SendSpec, SinkSpec};
use crate::scenario::{IsolationMode, SystemKind};
use crate::systems::{self, Layout, Running, SystemSpec};
use crate::topology::{Template, Topology, TopologyOptions};
use anyhow::{Context, Result, bail};
use faults::Faults;
use loadgen::summary::{SendSummary, SinkSummary};
use serde::Serialize;
use std::time::{Duration, Instant};
use verdict::{LostSecond, Sample, Verdict};

/// How long after a link comes back losses still count as the flap's.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What to run.
#[derive(Debug, Clone, Serialize)]
pub struct SoakOptions {
    pub duration_s: f64,
    pub streams: u32,
    pub rate_pps: f64,
    pub size: u32,
    pub churn_every_s: f64,
    pub flap_every_s: f64,
    pub flap_down_s: f64,
}

/// What a soak measured and judged.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    pub options: SoakOptions,
    pub topology: String,
    pub sent: u64,
    pub sent_pps: f64,
    pub received: u64,
    pub lost: u64,
    pub samples: Vec<Sample>,
    pub flaps: Vec<verdict::FlapWindow>,
    pub rule_changes: u32,
    /// Packets the sink's host dropped before the sink counted them (sink interface
    /// rx_dropped + the sink namespace's UDP InErrors): the lab's loss, not the relay's.
    pub sink_host_dropped: u64,
    pub lost_by_second: Vec<LostSecond>,
    pub verdict: Verdict,
}

/// Runs the soak; `progress` is told the elapsed seconds once a second.
pub fn run(opts: &SoakOptions, progress: &dyn Fn(f64)) -> Result<SoakReport> {
    validate(opts)?;
    crate::process::install_signal_cleanup()?;
    let placement = Placement::detect(IsolationMode::Auto);
    let topology = Topology::up(&TopologyOptions::new(Template::Chain))?;
    placement
        .steer(&topology)
        .context("steering receive processing (RPS)")?;
    let result = with_topology(opts, &placement, &topology, progress);
    let down = topology.down();
    let report = result?;
    down?;
    Ok(report)
}

fn validate(opts: &SoakOptions) -> Result<()> {
    let finite = [
        opts.duration_s,
        opts.rate_pps,
        opts.churn_every_s,
        opts.flap_every_s,
        opts.flap_down_s,
    ];
    if finite.iter().any(|v| !v.is_finite() || *v <= 0.0) {
        bail!("durations, periods and the rate must be positive numbers");
    }
    if !(10.0..=3600.0).contains(&opts.duration_s) {
        bail!("--seconds must be within 10..=3600");
    }
    if opts.flap_down_s >= opts.flap_every_s {
        bail!("--flap-down must be shorter than --flap-every");
    }
    if opts.streams == 0 || opts.streams > 10_000 || opts.rate_pps * f64::from(opts.streams) > 1e6 {
        bail!("choose 1..=10000 streams and at most 1,000,000 pps in all");
    }
    if !(64..=1472).contains(&opts.size) {
        bail!("--size must be within 64..=1472 bytes");
    }
    Ok(())
}

fn with_topology(
    opts: &SoakOptions,
    placement: &Placement,
    topology: &Topology,
    progress: &dyn Fn(f64),
) -> Result<SoakReport> {
    let mut layout = Layout::new(SystemKind::RelayPool, topology, opts.streams, 1);
    layout.system_placement = placement.system.clone();
    let mut relay = systems::start(&SystemSpec::of(SystemKind::RelayPool), &layout)
        .map_err(|e| anyhow::anyhow!("starting the relay: {e}"))?;
    relay.install(&layout, 0..opts.streams, false)?;
    if let Some(refused) = relay.capacity(&layout)?.and_then(|c| c.error) {
        bail!("the relay refused a rule: {refused}");
    }
    let scratch = ScratchDir::new("soak")?;
    let duration = Duration::from_secs_f64(opts.duration_s);
    let sink = sink_spec(&layout, placement, duration)?.start(&scratch)?;
    let drops_before = sink_host_drops(&layout)?;
    let traffic = traffic(opts, &layout, placement, &mut relay, &scratch, progress);
    // What the relay still holds reaches the sink before it is stopped.
    std::thread::sleep(Duration::from_secs(1));
    let summary = sink.finish(Duration::from_secs(5));
    let drops = sink_host_drops(&layout)?.saturating_sub(drops_before);
    if let Some(dead) = relay.stop() {
        bail!("the relay died during the soak: {dead}");
    }
    let (sent, mut observed) = traffic?;
    observed.sink_host_dropped = drops;
    report(opts, topology, sent, observed, &summary?)
}

/// Packets the sink's host has dropped so far: its link's rx_dropped and its UDP InErrors.
fn sink_host_drops(layout: &Layout) -> Result<u64> {
    let sink = layout.sinks.first().context("the topology has no sink")?;
    let links = crate::sweep::counters::read_links(&sink.netns)?;
    let udp = crate::sweep::counters::read_udp(&sink.netns)?;
    let link = links.get(&sink.ifname).map_or(0, |c| c.rx_dropped);
    Ok(link + udp.in_errors)
}

/// What happened while the traffic ran.
struct Observed {
    samples: Vec<Sample>,
    faults: Faults,
    sink_host_dropped: u64,
}

/// Sends for the whole run on another thread while this one samples and injects the faults.
fn traffic(
    opts: &SoakOptions,
    layout: &Layout,
    placement: &Placement,
    relay: &mut Running,
    scratch: &ScratchDir,
    progress: &dyn Fn(f64),
) -> Result<(SendSummary, Observed)> {
    let send = send_spec(opts, layout, placement);
    let pids = relay.pids();
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| send.run(scratch));
        let start = Instant::now();
        let mut faults = Faults::new(opts, layout);
        let mut samples = Vec::new();
        while !sender.is_finished() {
            let t = start.elapsed().as_secs_f64();
            if let Some(reading) = pids
                .first()
                .and_then(|&p| crate::sweep::sample::read_process(p))
            {
                samples.push(Sample {
                    t_s: t,
                    rss_kib: reading.rss_kib,
                    fds: reading.fds,
                });
            }
            faults.tick(t, relay)?;
            progress(t);
            let next = Duration::from_secs_f64(t.floor() + 1.0);
            std::thread::sleep(next.saturating_sub(start.elapsed()));
        }
        faults.restore();
        let sent = sender
            .join()
            .map_err(|_| anyhow::anyhow!("the sender thread panicked"))??;
        Ok((
            sent,
            Observed {
                samples,
                faults,
                sink_host_dropped: 0,
            },
        ))
    })
}

fn sink_spec(layout: &Layout, placement: &Placement, duration: Duration) -> Result<SinkSpec> {
    let sink = layout.sinks.first().context("the topology has no sink")?;
    Ok(SinkSpec {
        netns: sink.netns.clone(),
        interface: sink.ifname.clone(),
        streams: layout.streams,
        group_base: layout.output_base(0),
        groups: None,
        port: layout.output_port(0),
        idle: duration + Duration::from_secs(30),
        duration: duration + Duration::from_secs(30),
        bind_device: true,
        placement: placement.sink.clone(),
    })
}

fn send_spec(opts: &SoakOptions, layout: &Layout, placement: &Placement) -> SendSpec {
    SendSpec {
        count: Some((opts.rate_pps * opts.duration_s).ceil() as u64),
        ..layout.send_spec(
            SendRate::PerStream(opts.rate_pps),
            opts.size,
            Duration::from_secs_f64(opts.duration_s),
            &placement.sender,
        )
    }
}

fn report(
    opts: &SoakOptions,
    topology: &Topology,
    sent: SendSummary,
    observed: Observed,
    sink: &SinkSummary,
) -> Result<SoakReport> {
    let lost_by_second: Vec<LostSecond> = sink
        .gap_timeline
        .iter()
        .map(|g| LostSecond {
            second: g.second,
            lost: g.lost,
        })
        .collect();
    let unique = sink.totals.received.saturating_sub(sink.totals.duplicates);
    let tail_lost = sent.sent_packets.saturating_sub(unique + sink.totals.lost);
    let mut verdict = verdict::judge(
        opts.duration_s,
        &observed.samples,
        &observed.faults.flaps,
        &lost_by_second,
        SETTLE.as_secs_f64(),
        tail_lost,
    );
    if observed.sink_host_dropped > 0 && verdict.lost_outside_flaps > 0 {
        verdict.failures.push(format!(
            "the sink's host dropped {} packets before counting them: the losses outside the \
             windows may be the lab's, not the relay's (no verdict)",
            observed.sink_host_dropped
        ));
    }
    Ok(SoakReport {
        options: opts.clone(),
        topology: topology.run_id().to_owned(),
        sent: sent.sent_packets,
        sent_pps: sent.achieved_pps,
        received: unique,
        lost: sink.totals.lost + tail_lost,
        samples: observed.samples,
        flaps: observed.faults.flaps,
        rule_changes: observed.faults.rule_changes,
        sink_host_dropped: observed.sink_host_dropped,
        lost_by_second,
        verdict,
    })
}
