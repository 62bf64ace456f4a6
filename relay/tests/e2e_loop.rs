//! End-to-end: a relay whose rules send out of their own input interface must not re-ingest its
//! egress. Two rules form a ping-pong pair on the ingress interface (A: 239.1.0.1 -> 239.5.0.1 on
//! the same interface; B: 239.5.0.1 -> back to 239.1.0.1 on the same interface): a relay that
//! read its own output would forward forever. Root only (loud skip otherwise).

use labctl::process::loadgen::{RunningSink, ScratchDir, SendRate, SendSpec, SinkSpec};
use labctl::process::{SpawnOptions, Spawned, spawn_in_netns};
use labctl::testing::{require_root, with_topology};
use labctl::topology::{Endpoint, Template, Topology};
use loadgen::summary::SinkSummary;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const COUNT: u64 = 2000;
/// The generator's group: rule A's input.
const G_IN: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
/// Rule A's output on the input interface, rule B's input.
const G_PONG: Ipv4Addr = Ipv4Addr::new(239, 5, 0, 1);
/// Rule A's output on the output interface.
const G_OUT: Ipv4Addr = Ipv4Addr::new(239, 2, 0, 1);
/// Rule B's output on the output interface (must stay silent).
const G_B_OUT: Ipv4Addr = Ipv4Addr::new(239, 6, 0, 1);

#[test]
fn output_on_the_input_interface_does_not_loop() {
    if !require_root("output_on_the_input_interface_does_not_loop") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-loop").unwrap();
        let control = scratch.path("relay.sock");
        let relay = start_ping_pong_relay(topo, &control);

        // Downstream sink: rule A's output must arrive exactly once, rule B's never.
        let sink = start_sink(&topo.sinks()[0], vec![G_OUT, G_B_OUT], &scratch);
        // Upstream sink in the generator's namespace: proves the relay really sent out of its
        // input interface (otherwise "no loop" would hold trivially).
        let gen_ep = topo.generator();
        let upstream = start_sink(gen_ep, vec![G_PONG], &scratch);

        let sent = SendSpec {
            netns: gen_ep.netns.clone(),
            interface: gen_ep.ifname.clone(),
            source: gen_ep.addr,
            streams: 1,
            group_base: G_IN,
            port: 5000,
            rate: SendRate::PerStream(2000.0),
            size: 1000,
            count: Some(COUNT),
            duration: Duration::from_secs(20),
            placement: Default::default(),
        }
        .run(&scratch)
        .expect("loadgen send");
        assert_eq!(sent.sent_packets, COUNT);

        let down = sink.finish(Duration::from_secs(10)).unwrap();
        let up = upstream.finish(Duration::from_secs(10)).unwrap();
        let stats =
            relay::control::request(&control, &json!({"cmd":"stats"}), Duration::from_secs(5))
                .expect("stats");
        relay.stop(Duration::from_secs(5)).expect("stop relay");
        assert_no_loop(&up, &down, &stats);
    });
}

/// Starts the relay with the ping-pong rules A and B and waits (20 s at most) until it answers.
fn start_ping_pong_relay(topo: &Topology, control: &Path) -> Spawned {
    let rin = &topo.relay_in().unwrap().ifname;
    let rout = &topo.relay_out()[0].ifname;
    let rule_a = format!("{rin}:{G_IN}:5000 -> {rin}:{G_PONG}:5000, {rout}:{G_OUT}:5000");
    let rule_b = format!("{rin}:{G_PONG}:5000 -> {rin}:{G_IN}:5000, {rout}:{G_B_OUT}:5000");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relay"));
    cmd.arg("run")
        .arg("--control")
        .arg(control)
        .args(["--rule", &rule_a, "--rule", &rule_b]);
    let relay = spawn_in_netns(
        &topo.relay_in().unwrap().netns,
        cmd,
        SpawnOptions::with_deadline(Duration::from_secs(60)),
    )
    .expect("spawn relay");
    let ready_by = Instant::now() + Duration::from_secs(20);
    while relay::control::request(control, &json!({"cmd":"list"}), Duration::from_secs(2))
        .map(|r| r["ok"] != true)
        .unwrap_or(true)
    {
        assert!(relay.is_running(), "relay died: {}", relay.stderr_text());
        assert!(Instant::now() < ready_by, "relay not ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    relay
}

/// Starts a sink of `groups` (port 5000, 2 s idle, 30 s at most) on the endpoint's interface.
fn start_sink(ep: &Endpoint, groups: Vec<Ipv4Addr>, scratch: &ScratchDir) -> RunningSink {
    SinkSpec {
        netns: ep.netns.clone(),
        interface: ep.ifname.clone(),
        streams: groups.len() as u32,
        group_base: groups[0],
        groups: Some(groups),
        port: 5000,
        idle: Duration::from_secs(2),
        duration: Duration::from_secs(30),
        bind_device: false,
        placement: Default::default(),
    }
    .start(scratch)
    .unwrap()
}

/// Rule A's outputs arrived exactly once up- and downstream, rule B's never; one rule saw
/// nothing.
fn assert_no_loop(up: &SinkSummary, down: &SinkSummary, stats: &Value) {
    assert_eq!(
        up.totals.received, COUNT,
        "relay did not send on its input interface: {up:?}"
    );
    let a_out: Vec<_> = down.streams.iter().filter(|s| s.group == G_OUT).collect();
    assert_eq!(a_out.len(), 1, "{down:?}");
    assert_eq!(
        (a_out[0].received, a_out[0].duplicates, a_out[0].lost),
        (COUNT, 0, 0),
        "rule A's output"
    );
    assert!(
        down.streams.iter().all(|s| s.group != G_B_OUT),
        "rule B forwarded the relay's own egress: {down:?}"
    );
    assert_eq!(down.silent_groups, vec![G_B_OUT]);
    let rules = stats["rules"].as_array().expect("stats.rules");
    let rx: Vec<u64> = rules
        .iter()
        .map(|r| r["rx_packets"].as_u64().unwrap_or(u64::MAX))
        .collect();
    assert_eq!(rx.iter().copied().max(), Some(COUNT), "{stats}");
    assert!(rx.contains(&0), "one rule must have seen nothing: {stats}");
}
