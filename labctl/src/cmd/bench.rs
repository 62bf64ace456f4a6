//! `labctl bench`: the machine's ceiling on the `direct` topology. For 64- and 1000-byte
//! payloads an unpaced `loadgen send` (`--total-rate max`) runs for `--seconds`; the sender's
//! achieved rate and the sink's receive rate (packets over its first-to-last arrival time)
//! are reported as a table, or as JSON with `--json`.

use anyhow::{Result, bail};
use labctl::privilege::require_root;
use labctl::process::loadgen::{ScratchDir, SendRate, SendSpec, SinkSpec};
use labctl::topology::{Template, Topology, TopologyOptions};
use loadgen::summary::SinkSummary;
use serde::Serialize;
use std::io::IsTerminal;
use std::net::Ipv4Addr;
use std::time::Duration;

const SIZES: [usize; 2] = [64, 1000];
const STREAMS: u32 = 8;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of unpaced sending per payload size.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// One measured payload size.
#[derive(Debug, Serialize)]
pub struct BenchRow {
    pub size: usize,
    pub sent: u64,
    pub sender_pps: f64,
    pub received: u64,
    pub lost: u64,
    pub sink_pps: f64,
}

#[derive(Debug, Serialize)]
struct BenchReport {
    schema: &'static str,
    template: String,
    streams: u32,
    seconds: f64,
    results: Vec<BenchRow>,
}

pub fn exec(args: Args) -> Result<()> {
    if !(0.2..=120.0).contains(&args.seconds) {
        bail!("--seconds must be between 0.2 and 120");
    }
    require_root()?;
    labctl::binaries::locate("loadgen")?;
    labctl::process::install_signal_cleanup()?;
    let progress = Progress::new("building the direct topology");
    let topology = Topology::up(&TopologyOptions::new(Template::Direct))?;
    let mut results = Vec::new();
    for size in SIZES {
        progress.set_message(format!(
            "{size}-byte payloads, unpaced, {:.1} s",
            args.seconds
        ));
        results.push(measure(
            &topology,
            size,
            Duration::from_secs_f64(args.seconds),
        )?);
    }
    progress.finish();
    let run_id = topology.run_id().to_string();
    topology.down()?;
    let report = BenchReport {
        schema: "labctl.bench/1",
        template: "direct".into(),
        streams: STREAMS,
        seconds: args.seconds,
        results,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "direct topology {run_id}, {STREAMS} streams, {:.1} s per size, sender unpaced",
            args.seconds
        );
        println!(
            "{:>6} {:>12} {:>14} {:>12} {:>14} {:>8}",
            "size", "sent", "sender pps", "received", "sink pps", "lost %"
        );
        for r in &report.results {
            let lost_pct = if r.sent > 0 {
                100.0 * (r.sent.saturating_sub(r.received)) as f64 / r.sent as f64
            } else {
                0.0
            };
            println!(
                "{:>6} {:>12} {:>14.0} {:>12} {:>14.0} {:>8.2}",
                r.size, r.sent, r.sender_pps, r.received, r.sink_pps, lost_pct
            );
        }
    }
    Ok(())
}

fn measure(topology: &Topology, size: usize, duration: Duration) -> Result<BenchRow> {
    let scratch = ScratchDir::new(&format!("{}-bench{size}", topology.run_id()))?;
    let Some(sink_ep) = topology.sinks().first() else {
        bail!("the direct topology has no sink")
    };
    let group_base = Ipv4Addr::new(239, 1, 0, 1);
    let sink = SinkSpec {
        netns: sink_ep.netns.clone(),
        interface: sink_ep.ifname.clone(),
        streams: STREAMS,
        group_base,
        groups: None,
        port: 5000,
        idle: Duration::from_secs(1),
        duration: duration + Duration::from_secs(15),
        bind_device: true,
        placement: Default::default(),
    }
    .start(&scratch)?;
    let gen_ep = topology.generator();
    let sent = SendSpec {
        netns: gen_ep.netns.clone(),
        interface: gen_ep.ifname.clone(),
        source: gen_ep.addr,
        streams: STREAMS,
        group_base,
        port: 5000,
        rate: SendRate::Max,
        size,
        count: None,
        duration,
        placement: Default::default(),
    }
    .run(&scratch)?;
    let summary = sink.finish(Duration::from_secs(5))?;
    Ok(BenchRow {
        size,
        sent: sent.sent_packets,
        sender_pps: sent.achieved_pps,
        received: summary.totals.received,
        lost: summary.totals.lost,
        sink_pps: receive_rate(&summary),
    })
}

/// Packets per second over the sink's first-to-last arrival window.
pub fn receive_rate(summary: &SinkSummary) -> f64 {
    let first = summary.streams.iter().map(|s| s.first_arrival_ns).min();
    let last = summary.streams.iter().map(|s| s.last_arrival_ns).max();
    match (first, last) {
        (Some(first), Some(last)) if last > first => {
            summary.totals.received as f64 / ((last - first) as f64 / 1e9)
        }
        _ => 0.0,
    }
}

/// A spinner on a terminal, plain lines on stderr otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub fn new(message: &str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.enable_steady_tick(Duration::from_millis(100));
            bar
        });
        let progress = Progress { bar };
        progress.set_message(message.to_string());
        progress
    }

    pub fn set_message(&self, message: impl Into<String>) {
        let message = message.into();
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => eprintln!("labctl: {message}"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
