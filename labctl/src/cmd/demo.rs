//! `labctl demo`: a short end-to-end run. Builds a topology (`direct`, or `snooping` to show
//! that the switch forwards only joined groups), starts `loadgen sink` in the receiving
//! namespace and `loadgen send` in the gen namespace, prints what arrived per stream, tears
//! everything down.

use anyhow::{Result, bail};
use labctl::privilege::require_root;
use labctl::process::loadgen::{ScratchDir, SendRate, SendSpec, SinkSpec};
use labctl::systems::{BASE_PORT, INPUT_BASE};
use labctl::topology::{Endpoint, Template, Topology, TopologyOptions};
use loadgen::summary::SinkSummary;
use std::net::Ipv4Addr;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// Number of multicast streams (groups from 239.1.0.1).
    #[arg(long, default_value_t = 20)]
    streams: u32,
    /// Packets per second per stream.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Seconds of traffic.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// UDP payload size in bytes (64..=8972).
    #[arg(long, default_value_t = 1000)]
    size: usize,
    /// `direct` (gen -- sink) or `snooping` (gen -- snooping bridge -- receiver in the relay
    /// namespace, behind the port that floods no multicast).
    #[arg(long, default_value = "direct")]
    template: String,
}

pub fn exec(args: Args) -> Result<()> {
    let template = checked_template(&args)?;
    require_root()?;
    labctl::binaries::locate("loadgen")?;
    labctl::process::install_signal_cleanup()?;

    let progress = super::bench::Progress::new("building topology");
    let topology = Topology::up(&TopologyOptions::new(template))?;
    let receiver = receiver_of(&topology, template)?;
    let scratch = ScratchDir::new(&format!("{}-demo", topology.run_id()))?;
    let duration = Duration::from_secs_f64(args.seconds);
    progress.set_message("starting sink (joining groups)");
    let sink = sink_spec(&args, &receiver, duration).start(&scratch)?;
    // On snooping, wait until the switch has learned every join (probes, bounded).
    for k in 0..args.streams {
        topology.wait_group_forwarded(offset(INPUT_BASE, k))?;
    }
    progress.set_message(format!(
        "sending {} streams x {} pps for {:.1} s",
        args.streams, args.rate, args.seconds
    ));
    let gen_ep = topology.generator();
    let sent = send_spec(&args, gen_ep, duration).run(&scratch)?;
    progress.set_message("collecting sink summary");
    let summary = sink.finish(Duration::from_secs(5))?;
    progress.finish();
    println!(
        "topology {} ({template}): sent {} packets at {:.0} pps from {} to {} in {}",
        topology.run_id(),
        sent.sent_packets,
        sent.achieved_pps,
        gen_ep.ifname,
        receiver.ifname,
        receiver.netns
    );
    print_table(&summary);
    topology.down()?;
    Ok(())
}

/// The template of `args`, once the numbers are checked to be in range.
fn checked_template(args: &Args) -> Result<Template> {
    let template: Template = args.template.parse()?;
    if !matches!(template, Template::Direct | Template::Snooping) {
        bail!("demo runs on `direct` or `snooping`, not {template}");
    }
    if args.streams == 0
        || args.streams > 10_000
        || args.rate == 0
        || !(0.1..=600.0).contains(&args.seconds)
    {
        bail!("choose --streams 1..=10000, --rate >= 1 and --seconds 0.1..=600");
    }
    Ok(template)
}

/// The receiving interface: on snooping the receiver sits in the relay namespace, behind the
/// mcast_flood-off port; otherwise the first sink.
fn receiver_of(topology: &Topology, template: Template) -> Result<Endpoint> {
    let receiver = match template {
        Template::Snooping => topology.relay_in().cloned(),
        _ => topology.sinks().first().cloned(),
    };
    match receiver {
        Some(receiver) => Ok(receiver),
        None => bail!("topology {} has no receiving interface", topology.run_id()),
    }
}

/// The sink on `receiver`: every stream's group, stopping 1 s after the last packet.
fn sink_spec(args: &Args, receiver: &Endpoint, duration: Duration) -> SinkSpec {
    SinkSpec {
        netns: receiver.netns.clone(),
        interface: receiver.ifname.clone(),
        streams: args.streams,
        group_base: INPUT_BASE,
        groups: None,
        port: BASE_PORT,
        idle: Duration::from_secs(1),
        duration: duration + Duration::from_secs(15),
        bind_device: true,
        placement: Default::default(),
    }
}

/// The sender on the generator: `--rate` per stream for `--seconds`.
fn send_spec(args: &Args, gen_ep: &Endpoint, duration: Duration) -> SendSpec {
    SendSpec {
        netns: gen_ep.netns.clone(),
        interface: gen_ep.ifname.clone(),
        source: gen_ep.addr,
        streams: args.streams,
        group_base: INPUT_BASE,
        port: BASE_PORT,
        rate: SendRate::PerStream(f64::from(args.rate)),
        size: args.size,
        count: Some((f64::from(args.rate) * args.seconds).ceil() as u64),
        duration,
        placement: Default::default(),
    }
}

/// Group `k` counted from `base`.
fn offset(base: Ipv4Addr, k: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(k))
}

/// Per-stream table plus totals.
pub fn print_table(summary: &SinkSummary) {
    println!(
        "{:<12} {:>6} {:>9} {:>7} {:>5} {:>9} {:>10} {:>10}",
        "group", "stream", "received", "lost", "dup", "reordered", "p50 us", "p99 us"
    );
    for s in &summary.streams {
        println!(
            "{:<12} {:>6} {:>9} {:>7} {:>5} {:>9} {:>10.1} {:>10.1}",
            s.group.to_string(),
            s.stream,
            s.received,
            s.lost,
            s.duplicates,
            s.reordered,
            s.latency_ns.p50 as f64 / 1e3,
            s.latency_ns.p99 as f64 / 1e3
        );
    }
    let t = &summary.totals;
    println!(
        "{:<12} {:>6} {:>9} {:>7} {:>5} {:>9} {:>10.1} {:>10.1}",
        "total",
        summary.streams.len(),
        t.received,
        t.lost,
        t.duplicates,
        t.reordered,
        summary.latency_ns.p50 as f64 / 1e3,
        summary.latency_ns.p99 as f64 / 1e3
    );
    if !summary.silent_groups.is_empty() {
        println!(
            "silent groups (joined, nothing received): {}",
            summary.silent_groups.len()
        );
    }
    if !summary.join_errors.is_empty() {
        println!("join errors: {}", summary.join_errors.len());
    }
}
