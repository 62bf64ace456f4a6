//! Shared helpers of the e2e tests in `e2e.rs`, `e2e_memberships.rs`, `e2e_workers.rs` and
//! `e2e_links.rs`: a relay process in the topology's relay namespace, a sender with a chosen
//! source address, a sink.

#![allow(dead_code)] // each test file uses its own subset

use labctl::process::loadgen::{ScratchDir, SendRate, SendSpec, SinkSpec};
use labctl::process::{SpawnOptions, Spawned, spawn_in_netns};
use labctl::topology::Topology;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// A running relay and its control socket.
pub struct RelayProcess {
    pub child: Spawned,
    pub control: PathBuf,
}

impl RelayProcess {
    /// Starts `relay run --control CONTROL ARGS...` and waits until it answers `list`. The
    /// worker data plane unless `args` name one: these tests look at the workers (the default
    /// data plane has tests of its own, e2e_tc_dataplane.rs).
    pub fn start(topo: &Topology, control: PathBuf, args: &[String]) -> RelayProcess {
        let mut args = args.to_vec();
        if !args.iter().any(|a| a == "--dataplane") {
            args.extend(["--dataplane".to_string(), "user".to_string()]);
        }
        RelayProcess::start_exact(topo, control, &args)
    }

    /// [`RelayProcess::start`] with `args` as they are (the relay's own defaults).
    pub fn start_exact(topo: &Topology, control: PathBuf, args: &[String]) -> RelayProcess {
        let netns = &topo.relay_in().expect("relay namespace").netns;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_relay"));
        cmd.arg("run").arg("--control").arg(&control).args(args);
        let child = spawn_in_netns(
            netns,
            cmd,
            SpawnOptions::with_deadline(Duration::from_secs(120)),
        )
        .expect("spawn relay");
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(reply) =
                relay::control::request(&control, &json!({"cmd":"list"}), Duration::from_secs(2))
                && reply["ok"] == true
            {
                break;
            }
            if let Some(status) = child.wait_timeout(Duration::from_millis(20)).unwrap() {
                panic!(
                    "relay exited during startup ({status}): {}",
                    child.stderr_text()
                );
            }
            assert!(
                Instant::now() < end,
                "relay not ready: {}",
                child.stderr_text()
            );
        }
        RelayProcess { child, control }
    }

    pub fn ctl(&self, request: Value) -> Value {
        relay::control::request(&self.control, &request, Duration::from_secs(10))
            .expect("control request")
    }

    /// Adds a rule; returns the whole reply (`ok` true or false).
    pub fn add(&self, rule: &str) -> Value {
        self.ctl(json!({"cmd": "add", "rule": rule}))
    }

    /// Waits up to `wait` for the relay to exit by itself.
    pub fn wait_exit(&self, wait: Duration) -> Option<ExitStatus> {
        self.child.wait_timeout(wait).expect("wait for relay")
    }

    /// SIGTERM; the relay must exit 0 and remove its socket.
    pub fn stop(self) {
        let status = self.child.stop(Duration::from_secs(5)).expect("stop relay");
        assert!(
            status.success(),
            "relay exit {status}: {}",
            self.child.stderr_text()
        );
        assert!(
            !Path::new(&self.control).exists(),
            "control socket left behind"
        );
    }
}

/// A sink on the topology's first sink endpoint for `groups` (port 5000).
pub fn sink_spec(topo: &Topology, groups: Vec<Ipv4Addr>) -> SinkSpec {
    let sink = &topo.sinks()[0];
    SinkSpec {
        netns: sink.netns.clone(),
        interface: sink.ifname.clone(),
        streams: groups.len() as u32,
        group_base: groups[0],
        groups: Some(groups),
        port: 5000,
        idle: Duration::from_secs(4),
        duration: Duration::from_secs(60),
        bind_device: false,
        placement: Default::default(),
    }
}

/// `count` packets of `size`-byte payloads on each of `streams` streams from `group`:5000 up,
/// sent from the generator's interface and address at `pps` per stream.
pub fn generator_send(
    topo: &Topology,
    streams: u32,
    group: Ipv4Addr,
    pps: f64,
    count: u64,
    size: usize,
) -> SendSpec {
    let g = topo.generator();
    SendSpec {
        netns: g.netns.clone(),
        interface: g.ifname.clone(),
        source: g.addr,
        streams,
        group_base: group,
        port: 5000,
        rate: SendRate::PerStream(pps),
        size,
        count: Some(count),
        duration: Duration::from_secs(30),
        placement: Default::default(),
    }
}

/// Runs the send to its end; asserts it had no send errors and returns the packets sent.
pub fn run_send(spec: SendSpec, scratch: &ScratchDir) -> u64 {
    let sent = spec.run(scratch).expect("loadgen send");
    assert_eq!(sent.send_errors, 0);
    sent.sent_packets
}

/// Sends `count` packets of one stream to `group`:5000 from the generator, with `source` as the
/// IPv4 source address (the generator builds its own frames); returns the packets sent.
pub fn send_from(
    topo: &Topology,
    scratch: &ScratchDir,
    source: Ipv4Addr,
    group: Ipv4Addr,
    pps: f64,
    count: u64,
) -> u64 {
    let spec = SendSpec {
        source,
        ..generator_send(topo, 1, group, pps, count, 500)
    };
    run_send(spec, scratch)
}

/// The `stats` entry of the rule with id `id`.
pub fn rule_stats(stats: &Value, id: &Value) -> Value {
    stats["rules"]
        .as_array()
        .and_then(|rules| rules.iter().find(|r| r["id"] == *id))
        .cloned()
        .unwrap_or_else(|| panic!("rule {id} not in {stats}"))
}

/// Frames the relay's workers sent from transmit rings (`--send ring`), summed.
pub fn tx_ring_packets(relay: &RelayProcess) -> u64 {
    let stats = relay.ctl(serde_json::json!({"cmd":"stats"}));
    let workers = stats["workers"].as_array().expect("stats lists workers");
    workers
        .iter()
        .map(|w| w["tx_ring_packets"].as_u64().expect("tx_ring_packets"))
        .sum()
}

/// The relay namespace's Udp `IgnoredMulti` (/proc/net/snmp).
pub fn ignored_multi(topo: &Topology) -> u64 {
    let netns = &topo.relay_in().expect("relay namespace").netns;
    labctl::sweep::counters::read_udp_field(netns, "IgnoredMulti")
        .expect("the relay namespace's UDP counters")
}

/// Programs at the relay input interface's tcx ingress, as the kernel counts them
/// (`BPF_PROG_QUERY` in the relay's namespace).
pub fn programs_at_input(topo: &Topology) -> u32 {
    let input = topo.relay_in().unwrap().clone();
    labctl::netns::run_in_netns(&input.netns, move || {
        let ifindex = netio::iface::lookup(&input.ifname)?.index;
        Ok(netio::bpf::tcx_ingress_programs(ifindex)?)
    })
    .expect("querying the input interface's tcx programs")
}
