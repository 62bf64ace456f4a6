//! Group join delay: "rule added -> first packet of that group at the sink", measured for real,
//! with the sender already sending when each rule is added.
//!
//! Per point, before the main measurement: every rule but the last [`SAMPLE`] ones is installed;
//! a sink joins the sample's output groups (output 0) and a probe sender starts sending the
//! sample's input groups at [`PROBE_PPS`] per stream; after [`LEAD`] the sample's rules are
//! added one at a time, each stamped with CLOCK_MONOTONIC just before it is issued. The sink's
//! per-stream `first_arrival_ns` (same clock: CLOCK_MONOTONIC is shared by every network
//! namespace of the host) minus that stamp is the join delay. It includes everything a real
//! network adds: the system's own work on the add (a control request, a socat process start, an
//! smcroutectl run) and, behind the snooping bridge, the bridge learning the join before it
//! forwards the group. Resolution: one probe packet interval (1 / [`PROBE_PPS`]).
//!
//! A sample stream counts only when the sink's first sequence number is above 0, which proves
//! that packets had been sent (and not delivered) before the join took effect. The main
//! delivered-% measurement runs afterwards with fresh sinks, so packets sent before a join never
//! count as lost there.

use crate::placement::Placement;
use crate::process::loadgen::{ScratchDir, SendRate, SendSpec, SinkSpec};
use crate::systems::{Layout, RuleAdd, Running};
use anyhow::{Context, Result};
use loadgen::summary::SinkSummary;
use std::ops::Range;
use std::time::Duration;

/// How many rules (the last ones installed) are timed per point: a results constant, since the
/// report quotes it.
use crate::results::JOIN_DELAY_SAMPLE as SAMPLE;
/// Probe rate per sample stream (1 ms resolution at 1000 pps).
pub const PROBE_PPS: f64 = 2000.0;
/// How long the probe sender sends before the first timed rule add.
pub const LEAD: Duration = Duration::from_millis(300);
/// Probe sender duration: LEAD plus the time the joins may take to show.
const PROBE_DURATION: Duration = Duration::from_secs(3);
/// The probe sink stops this long after the last packet.
const SINK_IDLE: Duration = Duration::from_millis(500);
/// How long to wait for the probe sink's idle stop after the sender finished.
const SINK_DRAIN: Duration = Duration::from_secs(2);

/// Join delays of one point.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinDelays {
    /// Median over the measured sample streams, milliseconds.
    pub median_ms: f64,
    /// Largest, milliseconds.
    pub max_ms: f64,
    /// Sample streams with a valid delay.
    pub measured: u32,
    /// Rules timed.
    pub timed: u32,
}

/// The inputs whose rules are timed: the last [`SAMPLE`] of `streams`.
pub fn sample(streams: u32) -> Range<u32> {
    streams.saturating_sub(SAMPLE)..streams
}

/// Runs the join phase: installs the rules of `inputs` (not yet installed) while a probe sender
/// sends to them, and returns the delays (`None` when no rule of the sample was accepted or no
/// delay was valid) and notes. On return every rule of `inputs` has been issued.
pub fn measure(
    system: &mut Running,
    layout: &Layout,
    inputs: Range<u32>,
    placement: &Placement,
) -> Result<(Option<JoinDelays>, Vec<String>)> {
    let sink_if = layout
        .sinks
        .first()
        .context("the topology has no sink interface")?;
    let groups = inputs.clone().map(|i| layout.output_group(0, i)).collect();
    let sink_dir = ScratchDir::new("join-sink")?;
    let sink = SinkSpec {
        netns: sink_if.netns.clone(),
        interface: sink_if.ifname.clone(),
        streams: inputs.len() as u32,
        group_base: layout.output_group(0, inputs.start),
        groups: Some(groups),
        port: layout.output_port(0),
        idle: SINK_IDLE,
        duration: PROBE_DURATION + Duration::from_secs(10),
        bind_device: true,
        placement: placement.sink.clone(),
    }
    .start(&sink_dir)
    .context("starting the join-delay sink")?;
    let send_dir = ScratchDir::new("join-send")?;
    let send = SendSpec {
        netns: layout.generator.netns.clone(),
        interface: layout.generator.ifname.clone(),
        source: layout.generator.addr,
        streams: inputs.len() as u32,
        group_base: layout.input_group(inputs.start),
        port: crate::systems::BASE_PORT,
        rate: SendRate::PerStream(PROBE_PPS),
        size: 200,
        count: Some((PROBE_PPS * PROBE_DURATION.as_secs_f64()) as u64),
        duration: PROBE_DURATION,
        placement: placement.sender.clone(),
    };
    let (adds, sent) = std::thread::scope(|scope| {
        let sender = scope.spawn(|| send.run(&send_dir));
        std::thread::sleep(LEAD);
        let adds = system.install(layout, inputs.clone(), true);
        let sent = sender
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the probe sender thread panicked")));
        (adds, sent)
    });
    let summary = sink.finish(SINK_DRAIN);
    let adds = adds.context("adding the timed rules")?;
    sent.context("the join-delay probe sender")?;
    let summary = summary.context("the join-delay sink")?;

    let (delays, excluded) = delays_ms(layout, &adds, &summary);
    let mut notes = vec![format!(
        "join delay: {} of the last {} rules timed, {} with a valid first packet (probe {PROBE_PPS} pps per stream, resolution {:.1} ms; includes the system's handling of the add and, behind a snooping switch, the switch learning the join)",
        adds.len(),
        inputs.len(),
        delays.len(),
        1000.0 / PROBE_PPS
    )];
    notes.extend(excluded);
    Ok((summarize(&delays, adds.len() as u32), notes))
}

/// Delay per timed rule (ms) whose group's first packet proves the sender was already sending
/// (first sequence number above 0); the reasons the others were left out.
pub fn delays_ms(
    layout: &Layout,
    adds: &[RuleAdd],
    summary: &SinkSummary,
) -> (Vec<f64>, Vec<String>) {
    let mut delays = Vec::new();
    let mut excluded = Vec::new();
    for add in adds {
        let group = layout.output_group(0, add.input);
        let Some(stream) = summary
            .streams
            .iter()
            .filter(|s| s.group == group && s.port == layout.output_port(0))
            .min_by_key(|s| s.first_arrival_ns)
        else {
            excluded.push(format!(
                "join delay: {group} never arrived after its rule was added"
            ));
            continue;
        };
        if stream.first_seq == 0 {
            excluded.push(format!(
                "join delay: {group} left out: its first packet was the sender's first (the sender had not started before the join)"
            ));
            continue;
        }
        if stream.first_arrival_ns < add.at_ns {
            excluded.push(format!(
                "join delay: {group} left out: it arrived before its rule was added"
            ));
            continue;
        }
        delays.push((stream.first_arrival_ns - add.at_ns) as f64 / 1e6);
    }
    (delays, excluded)
}

/// Median and maximum of the delays; `None` for none.
pub fn summarize(delays: &[f64], timed: u32) -> Option<JoinDelays> {
    if delays.is_empty() {
        return None;
    }
    let mut sorted = delays.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Some(JoinDelays {
        median_ms: median,
        max_ms: sorted[n - 1],
        measured: n as u32,
        timed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Endpoint;
    use loadgen::summary::{LatencySummary, StreamStats, Totals};
    use std::net::Ipv4Addr;

    fn layout() -> Layout {
        let ep = |n: &str| Endpoint {
            netns: "ns".into(),
            ifname: n.into(),
            addr: Ipv4Addr::new(198, 18, 1, 2),
        };
        Layout {
            streams: 8,
            fanout: 1,
            relay_ns: Some("ns".into()),
            relay_in: Some(ep("in")),
            relay_out: vec![ep("o0")],
            generator: ep("g"),
            sinks: vec![ep("s0")],
            same_group: false,
            system_placement: Default::default(),
        }
    }

    fn stream(group: Ipv4Addr, first_seq: u64, first_arrival_ns: u64) -> StreamStats {
        StreamStats {
            group,
            port: 5000,
            stream: 0,
            received: 10,
            lost: 0,
            duplicates: 0,
            reordered: 0,
            bytes: 2000,
            first_seq,
            last_seq: first_seq + 9,
            first_arrival_ns,
            last_arrival_ns: first_arrival_ns + 9,
            latency_ns: LatencySummary::default(),
        }
    }

    fn summary(streams: Vec<StreamStats>) -> SinkSummary {
        SinkSummary {
            schema: loadgen::summary::SINK_SCHEMA.into(),
            joined_groups: 3,
            join_errors: vec![],
            duration_s: 1.0,
            received: 30,
            foreign: 0,
            bytes: 0,
            totals: Totals::default(),
            latency_ns: LatencySummary::default(),
            interface_latency_ns: None,
            streams,
            silent_groups: vec![],
            gap_timeline: vec![],
        }
    }

    #[test]
    fn sample_is_the_last_rules() {
        assert_eq!(sample(40), 35..40);
        assert_eq!(sample(3), 0..3);
    }

    #[test]
    fn delay_is_first_arrival_minus_add_and_needs_earlier_packets() {
        let l = layout();
        let adds = [
            RuleAdd {
                input: 5,
                at_ns: 1_000_000_000,
            },
            RuleAdd {
                input: 6,
                at_ns: 1_000_000_000,
            },
            RuleAdd {
                input: 7,
                at_ns: 1_000_000_000,
            },
            RuleAdd {
                input: 4,
                at_ns: 1_000_000_000,
            },
        ];
        let s = summary(vec![
            // 2.5 ms after its add, sequence 40: counted.
            stream(Ipv4Addr::new(239, 2, 0, 6), 40, 1_002_500_000),
            // First packet of the sender: left out.
            stream(Ipv4Addr::new(239, 2, 0, 7), 0, 1_001_000_000),
            // Arrived before the add: left out.
            stream(Ipv4Addr::new(239, 2, 0, 8), 9, 999_000_000),
            // 239.2.0.5 (input 4) never arrived.
        ]);
        let (d, excluded) = delays_ms(&l, &adds, &s);
        assert_eq!(d, vec![2.5]);
        assert_eq!(excluded.len(), 3, "{excluded:?}");
        assert!(
            excluded
                .iter()
                .any(|e| e.contains("239.2.0.5 never arrived"))
        );
    }

    #[test]
    fn median_and_max() {
        let j = summarize(&[3.0, 1.0, 10.0, 2.0], 5).unwrap();
        assert_eq!(
            (j.median_ms, j.max_ms, j.measured, j.timed),
            (2.5, 10.0, 4, 5)
        );
        assert_eq!(summarize(&[4.0], 1).unwrap().median_ms, 4.0);
        assert!(summarize(&[], 5).is_none());
    }
}
