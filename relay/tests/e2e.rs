//! End-to-end tests: the real `relay` binary in a labctl topology (gen -- relay -- sink), fed by
//! `loadgen send` and checked by `loadgen sink`. Root only (loud skip otherwise). `loadgen` is
//! found with `labctl::binaries::locate` (build it first: `cargo build -p loadgen`, or run the
//! workspace's tests). Every topology is torn down on pass or fail and checked to be gone.

use labctl::process::loadgen::{ScratchDir, SinkSpec};
use labctl::results::UdpCounters;
use labctl::sweep::{counters, sample};
use labctl::testing::{require_root, with_topology};
use labctl::topology::{Template, Topology};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

mod support;

use support::{RelayProcess, tx_ring_packets};

fn rule(input_if: &str, input: Ipv4Addr, outputs: &[(&str, Ipv4Addr)]) -> String {
    let outs: Vec<String> = outputs
        .iter()
        .map(|(i, g)| format!("{i}:{g}:5000"))
        .collect();
    format!("{input_if}:{input}:5000 -> {}", outs.join(", "))
}

fn nth(base: [u8; 4], n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::from(base)) + n)
}

/// The shared sink, stopping 2 s after its last packet.
fn sink_spec(topo: &Topology, groups: Vec<Ipv4Addr>) -> SinkSpec {
    SinkSpec {
        idle: Duration::from_secs(2),
        ..support::sink_spec(topo, groups)
    }
}

fn send(topo: &Topology, scratch: &ScratchDir, streams: u32, pps: f64, count: u64) -> u64 {
    let first = Ipv4Addr::new(239, 1, 0, 1);
    support::run_send(
        support::generator_send(topo, streams, first, pps, count, 1000),
        scratch,
    )
}

#[test]
fn one_stream_is_delivered_exactly_once_and_rules_change_at_runtime() {
    if !require_root("one_stream_is_delivered_exactly_once_and_rules_change_at_runtime") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-one").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let first = rule(
            rin,
            Ipv4Addr::new(239, 1, 0, 1),
            &[(rout, Ipv4Addr::new(239, 2, 0, 1))],
        );
        let relay =
            RelayProcess::start(topo, scratch.path("relay.sock"), &["--rule".into(), first]);

        // Runtime add and remove of another rule leave rule 1 alone.
        let added = relay.ctl(json!({"cmd":"add","rule": rule(rin, Ipv4Addr::new(239, 1, 0, 9), &[(rout, Ipv4Addr::new(239, 2, 0, 9))])}));
        assert_eq!(added["ok"], true, "{added}");
        assert_eq!(
            relay.ctl(json!({"cmd":"list"}))["rules"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
        let removed = relay.ctl(json!({"cmd":"remove","id": added["id"]}));
        assert_eq!(removed["ok"], true, "{removed}");
        let bad =
            relay.ctl(json!({"cmd":"add","rule":"nosuchif0:239.1.0.3:5000 -> x:239.2.0.3:5000"}));
        assert_eq!(bad["ok"], false);

        let sink = sink_spec(topo, vec![Ipv4Addr::new(239, 2, 0, 1)])
            .start(&scratch)
            .unwrap();
        let sent = send(topo, &scratch, 1, 2000.0, 4000);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(sent, 4000);
        assert_eq!(summary.totals.received, 4000, "{:?}", summary.totals);
        assert_eq!(summary.totals.lost, 0);
        assert_eq!(summary.totals.duplicates, 0);
        assert_eq!(summary.totals.reordered, 0);

        let stats = relay.ctl(json!({"cmd":"stats"}));
        assert_eq!(stats["rules"][0]["rx_packets"], 4000, "{stats}");
        assert_eq!(
            stats["rules"][0]["outputs"][0]["tx_packets"], 4000,
            "{stats}"
        );
        assert_eq!(stats["drops"]["queue_full"], 0);
        relay.stop();
    });
}

#[test]
fn rule_churn_does_not_disturb_a_running_stream() {
    if !require_root("rule_churn_does_not_disturb_a_running_stream") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-churn").unwrap();
        let (rin, rout) = (
            topo.relay_in().unwrap().ifname.clone(),
            topo.relay_out()[0].ifname.clone(),
        );
        let stable = rule(
            &rin,
            Ipv4Addr::new(239, 1, 0, 1),
            &[(&rout, Ipv4Addr::new(239, 2, 0, 1))],
        );
        let relay =
            RelayProcess::start(topo, scratch.path("relay.sock"), &["--rule".into(), stable]);
        let sink = sink_spec(topo, vec![Ipv4Addr::new(239, 2, 0, 1)])
            .start(&scratch)
            .unwrap();
        let control = relay.control.clone();
        // 200 add + remove pairs (400 table swaps) while 10000 packets flow for 2 s.
        let churn = std::thread::spawn(move || {
            let mut ok = 0;
            for n in 0..200u32 {
                let r = rule(
                    &rin,
                    nth([239, 5, 0, 1], n),
                    &[(&rout, nth([239, 6, 0, 1], n))],
                );
                let added = relay::control::request(
                    &control,
                    &json!({"cmd":"add","rule": r}),
                    Duration::from_secs(5),
                )
                .unwrap();
                let removed = relay::control::request(
                    &control,
                    &json!({"cmd":"remove","id": added["id"]}),
                    Duration::from_secs(5),
                )
                .unwrap();
                ok += usize::from(added["ok"] == true) + usize::from(removed["ok"] == true);
                std::thread::sleep(Duration::from_millis(5));
            }
            ok
        });
        send(topo, &scratch, 1, 5000.0, 10_000);
        assert_eq!(churn.join().unwrap(), 400);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(summary.totals.received, 10_000, "{:?}", summary.totals);
        assert_eq!((summary.totals.lost, summary.totals.duplicates), (0, 0));
        assert_eq!(
            relay.ctl(json!({"cmd":"list"}))["rules"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        relay.stop();
    });
}

#[test]
fn one_input_fans_out_to_five_groups() {
    if !require_root("one_input_fans_out_to_five_groups") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-fanout").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let outputs: Vec<Ipv4Addr> = (0..5).map(|k| Ipv4Addr::new(239, 2 + k, 0, 1)).collect();
        let pairs: Vec<(&str, Ipv4Addr)> = outputs.iter().map(|g| (rout.as_str(), *g)).collect();
        let r = rule(rin, Ipv4Addr::new(239, 1, 0, 1), &pairs);
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &["--rule".into(), r]);
        let sink = sink_spec(topo, outputs.clone()).start(&scratch).unwrap();
        send(topo, &scratch, 1, 2000.0, 2000);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert!(
            summary.silent_groups.is_empty(),
            "{:?}",
            summary.silent_groups
        );
        assert_eq!(summary.streams.len(), 5);
        for s in &summary.streams {
            assert_eq!(
                (s.received, s.lost, s.duplicates),
                (2000, 0, 0),
                "group {}",
                s.group
            );
        }
        relay.stop();
    });
}

#[test]
fn mmap_backend_fans_out_exactly_once() {
    two_workers_fan_out_exactly_once("mmap_backend_fans_out_exactly_once", &["--io", "mmap"]);
}

#[test]
fn recvmmsg_backend_fans_out_exactly_once() {
    two_workers_fan_out_exactly_once("recvmmsg_backend_fans_out_exactly_once", &["--io", "uring"]);
}

#[test]
fn frame_ring_backend_with_two_workers_fans_out_exactly_once() {
    two_workers_fan_out_exactly_once(
        "frame_ring_backend_with_two_workers_fans_out_exactly_once",
        &["--io", "ring"],
    );
}

#[test]
fn io_uring_egress_with_two_workers_fans_out_exactly_once() {
    two_workers_fan_out_exactly_once(
        "io_uring_egress_with_two_workers_fans_out_exactly_once",
        &["--send", "uring"],
    );
}

#[test]
fn sendmmsg_egress_with_two_workers_fans_out_exactly_once() {
    two_workers_fan_out_exactly_once(
        "sendmmsg_egress_with_two_workers_fans_out_exactly_once",
        &["--send", "mmsg"],
    );
}

/// `RELAY_ARGS --workers 2` (a receive or send backend), one stream fanned out to two groups:
/// each copy exactly once, in order.
fn two_workers_fan_out_exactly_once(test: &str, relay_args: &[&str]) {
    if !require_root(test) {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new(&format!("relay-e2e-{}", relay_args.join(""))).unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let outputs = [Ipv4Addr::new(239, 2, 0, 1), Ipv4Addr::new(239, 3, 0, 1)];
        let r = rule(
            rin,
            Ipv4Addr::new(239, 1, 0, 1),
            &[(rout, outputs[0]), (rout, outputs[1])],
        );
        let mut args: Vec<String> = relay_args.iter().map(|a| a.to_string()).collect();
        args.extend(["--workers".into(), "2".into(), "--rule".into(), r]);
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        let sink = sink_spec(topo, outputs.to_vec()).start(&scratch).unwrap();
        send(topo, &scratch, 1, 2000.0, 3000);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        let by_ring = tx_ring_packets(&relay);
        if relay_args.contains(&"--send") {
            assert_eq!(by_ring, 0, "no transmit ring with {relay_args:?}");
        } else {
            // Transmit rings (the default): the first frames go by sendmmsg while the rings
            // open, then the rings take over.
            assert!(
                by_ring > 3000,
                "{by_ring} of 6000 frames sent from the rings"
            );
        }
        assert_eq!(summary.streams.len(), 2);
        for s in &summary.streams {
            assert_eq!(
                (s.received, s.lost, s.duplicates, s.reordered),
                (3000, 0, 0, 0),
                "group {}",
                s.group
            );
        }
        relay.stop();
    });
}

/// The relay process's CPU seconds so far (user + system, all threads).
fn cpu_seconds(relay: &RelayProcess) -> f64 {
    let pid = relay.child.pid();
    let reading = sample::read_process(pid).expect("relay's /proc/PID/stat");
    reading.cpu_ticks as f64 / sample::clock_ticks_per_second()
}

/// `--busy-poll-us 20000`: while frames arrive (one per ms, well inside the budget) the
/// worker spins instead of sleeping, so the relay uses most of a CPU; once the input is idle
/// it sleeps again within the budget. Every frame is still forwarded exactly once.
#[test]
fn busy_polling_worker_spins_while_frames_arrive_and_sleeps_when_idle() {
    if !require_root("busy_polling_worker_spins_while_frames_arrive_and_sleeps_when_idle") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-busy-poll").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let output = Ipv4Addr::new(239, 2, 0, 1);
        let r = rule(rin, Ipv4Addr::new(239, 1, 0, 1), &[(rout, output)]);
        let args = ["--busy-poll-us".into(), "20000".into(), "--rule".into(), r];
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        let sink = sink_spec(topo, vec![output]).start(&scratch).unwrap();
        let (cpu_before, started) = (cpu_seconds(&relay), Instant::now());
        send(topo, &scratch, 1, 1000.0, 2000);
        let busy = (cpu_seconds(&relay) - cpu_before) / started.elapsed().as_secs_f64();
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        // Idle: any frame (an IGMP report too) buys at most one budget (20 ms) of spinning.
        let (cpu_before, started) = (cpu_seconds(&relay), Instant::now());
        std::thread::sleep(Duration::from_secs(2));
        let idle = (cpu_seconds(&relay) - cpu_before) / started.elapsed().as_secs_f64();
        assert!(
            busy > 0.25,
            "relay CPU {busy:.2} of a CPU while frames arrived"
        );
        assert!(idle < 0.15, "relay CPU {idle:.2} of a CPU while idle");
        let stream = &summary.streams[0];
        assert_eq!(
            (
                summary.streams.len(),
                stream.received,
                stream.lost,
                stream.duplicates
            ),
            (1, 2000, 0, 0)
        );
        relay.stop();
    });
}

/// Packet sockets open in the relay's network namespace (`/proc/PID/net/packet`): its receive
/// socket and one per transmit ring.
fn packet_sockets(relay: &RelayProcess) -> usize {
    let path = format!("/proc/{}/net/packet", relay.child.pid());
    let table = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count()
}

/// The kernel's counts on the path from the relay's output to the first sink, none of them
/// written by the relay or the sink: what the relay's output interface sent and dropped, what
/// the sink's interface received and dropped, and what the sink's UDP layer delivered and
/// dropped (InErrors, which includes its sockets' full receive buffers).
#[derive(Debug, Clone, Copy)]
struct SinkPath {
    relay_out: counters::LinkCounters,
    sink: counters::LinkCounters,
    sink_udp: UdpCounters,
}

impl SinkPath {
    fn read(topo: &Topology) -> SinkPath {
        let sink = &topo.sinks()[0];
        let out = &topo.relay_out()[0];
        let sink_links = counters::read_links(&sink.netns).expect("the sink's link counters");
        let relay_links = counters::read_links(&out.netns).expect("the relay's link counters");
        SinkPath {
            relay_out: relay_links[&out.ifname],
            sink: sink_links[&sink.ifname],
            sink_udp: counters::read_udp(&sink.netns).expect("the sink's UDP counters"),
        }
    }

    /// Each count since `earlier`.
    fn since(&self, earlier: &SinkPath) -> SinkPath {
        SinkPath {
            relay_out: self.relay_out.since(&earlier.relay_out),
            sink: self.sink.since(&earlier.sink),
            sink_udp: self.sink_udp.since(&earlier.sink_udp),
        }
    }

    /// Frames the sink's own host dropped: at its interface's receive backlog or at its
    /// socket (the lab's `sink_host_drops` counts the same two).
    fn sink_host_dropped(&self) -> u64 {
        self.sink.rx_dropped + self.sink_udp.in_errors
    }
}

/// Waits up to `limit` for `packet_sockets` to be `want`; returns what it last saw.
fn wait_packet_sockets(relay: &RelayProcess, want: usize, limit: Duration) -> usize {
    let end = Instant::now() + limit;
    loop {
        let now = packet_sockets(relay);
        if now == want || Instant::now() >= end {
            return now;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `--tx-ring-idle-s 1`: the output's transmit ring opens with the traffic, is closed once the
/// interface has sent nothing for a second or two, and the next frames open a new one; every
/// frame is forwarded exactly once across it.
#[test]
fn an_idle_transmit_ring_is_closed_and_the_next_frame_opens_a_new_one() {
    if !require_root("an_idle_transmit_ring_is_closed_and_the_next_frame_opens_a_new_one") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-ring-idle").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let output = Ipv4Addr::new(239, 2, 0, 1);
        let r = rule(rin, Ipv4Addr::new(239, 1, 0, 1), &[(rout, output)]);
        let args = ["--tx-ring-idle-s".into(), "1".into(), "--rule".into(), r];
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        let without_ring = packet_sockets(&relay);
        // One sink per burst: a sink ends after 2 s without traffic.
        let burst = |sent_from_ring_before: u64| {
            let path_before = SinkPath::read(topo);
            let sink = sink_spec(topo, vec![output]).start(&scratch).unwrap();
            send(topo, &scratch, 1, 1000.0, 1000);
            let by_ring = tx_ring_packets(&relay) - sent_from_ring_before;
            assert!(by_ring > 500, "{by_ring} of 1000 frames sent from a ring");
            // The ring is open while frames flow.
            assert_eq!(packet_sockets(&relay), without_ring + 1, "the ring is open");
            let summary = sink.finish(Duration::from_secs(10)).unwrap();
            let stream = &summary.streams[0];
            // Every frame was read by the sink, or dropped by the sink's own host (its
            // interface's receive backlog or its socket, shared with the tests running
            // alongside). The kernel's counts along the way say where a missing frame went.
            let path = SinkPath::read(topo).since(&path_before);
            assert_eq!(
                (
                    stream.received + path.sink_host_dropped(),
                    stream.duplicates
                ),
                (1000, 0),
                "{stream:?}, kernel counts on the way: {path:?}, relay stats: {}",
                relay.ctl(json!({"cmd":"stats"}))
            );
            by_ring + sent_from_ring_before
        };
        let first = burst(0);
        // Closed within two idle periods after the traffic stopped.
        let after_idle = wait_packet_sockets(&relay, without_ring, Duration::from_secs(5));
        assert_eq!(after_idle, without_ring, "the idle ring was not closed");
        burst(first);
        relay.stop();
    });
}

#[test]
fn pool_joins_make_a_snooping_switch_forward_30_groups() {
    if !require_root("pool_joins_make_a_snooping_switch_forward_30_groups") {
        return;
    }
    with_topology(Template::Snooping, |topo| {
        let scratch = ScratchDir::new("relay-e2e-snoop").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let mut args = Vec::new();
        for n in 0..30 {
            args.push("--rule".to_string());
            args.push(rule(
                rin,
                nth([239, 1, 0, 1], n),
                &[(rout, nth([239, 2, 0, 1], n))],
            ));
        }
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        // The switch forwards a group to the relay only after the relay's join (on helper
        // socket 1 for the first group, socket 2 for the 30th).
        topo.wait_group_forwarded(nth([239, 1, 0, 1], 0))
            .expect("first group forwarded");
        topo.wait_group_forwarded(nth([239, 1, 0, 1], 29))
            .expect("30th group forwarded");
        let groups: Vec<Ipv4Addr> = (0..30).map(|n| nth([239, 2, 0, 1], n)).collect();
        let sink = sink_spec(topo, groups).start(&scratch).unwrap();
        send(topo, &scratch, 30, 200.0, 200);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert!(
            summary.silent_groups.is_empty(),
            "{:?}",
            summary.silent_groups
        );
        assert_eq!(summary.totals.received, 30 * 200, "{:?}", summary.totals);
        assert_eq!(summary.totals.duplicates, 0);
        relay.stop();
    });
}

#[test]
fn udp_egress_fans_out_exactly_once() {
    if !require_root("udp_egress_fans_out_exactly_once") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-udp").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let outputs = [Ipv4Addr::new(239, 2, 0, 1), Ipv4Addr::new(239, 3, 0, 1)];
        let r = rule(
            rin,
            Ipv4Addr::new(239, 1, 0, 1),
            &[(rout, outputs[0]), (rout, outputs[1])],
        );
        let args = ["--egress".to_string(), "udp".into(), "--rule".into(), r];
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        assert_eq!(relay.ctl(json!({"cmd": "stats"}))["egress"], "udp");
        let sink = sink_spec(topo, outputs.to_vec()).start(&scratch).unwrap();
        send(topo, &scratch, 1, 2000.0, 3000);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(summary.streams.len(), 2);
        for s in &summary.streams {
            assert_eq!(
                (s.received, s.lost, s.duplicates),
                (3000, 0, 0),
                "group {}",
                s.group
            );
        }
        relay.stop();
    });
}

#[test]
fn single_refuses_the_21st_group_while_the_others_keep_forwarding() {
    if !require_root("single_refuses_the_21st_group_while_the_others_keep_forwarding") {
        return;
    }
    single_socket_limit_case(&[]);
}

/// The proposed fix of the legacy design - 8 MB forced helper buffers - does not move the limit.
#[test]
fn single_with_8mb_buffers_still_refuses_the_21st_group() {
    if !require_root("single_with_8mb_buffers_still_refuses_the_21st_group") {
        return;
    }
    single_socket_limit_case(&["--helper-buffer", "8M"]);
}

/// `--membership single` (plus `extra` arguments) at default sysctls: rules 1-20 are joined on
/// one helper socket, rule 21 is refused with ENOBUFS, and rules 1-20 forward without loss.
fn single_socket_limit_case(extra: &[&str]) {
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-single").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let mut args = vec!["--membership".to_string(), "single".into()];
        args.extend(extra.iter().map(|a| a.to_string()));
        for n in 0..20 {
            args.push("--rule".into());
            args.push(rule(
                rin,
                nth([239, 1, 0, 1], n),
                &[(rout, nth([239, 2, 0, 1], n))],
            ));
        }
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        let refused = relay.ctl(json!({"cmd":"add","rule": rule(rin, nth([239, 1, 0, 1], 20), &[(rout, nth([239, 2, 0, 1], 20))])}));
        assert_eq!(refused["ok"], false, "{refused}");
        assert_eq!(refused["errno"], 105, "{refused}");
        let message = refused["error"].as_str().unwrap();
        assert!(
            message.contains("ENOBUFS")
                && message.contains(rin.as_str())
                && message.contains("20 groups"),
            "{message}"
        );

        let groups: Vec<Ipv4Addr> = (0..21).map(|n| nth([239, 2, 0, 1], n)).collect();
        let sink = sink_spec(topo, groups).start(&scratch).unwrap();
        send(topo, &scratch, 21, 500.0, 500);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(summary.silent_groups, vec![nth([239, 2, 0, 1], 20)]);
        assert_eq!(summary.streams.len(), 20);
        for s in &summary.streams {
            assert_eq!(
                (s.received, s.lost, s.duplicates),
                (500, 0, 0),
                "group {}",
                s.group
            );
        }
        let memberships = relay.ctl(json!({"cmd":"memberships"}));
        assert_eq!(
            memberships["interfaces"][0]["sockets"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            memberships["interfaces"][0]["join_failures"][0]["errno"],
            105
        );
        relay.stop();
    });
}

#[test]
fn pool_forwards_1000_groups_behind_a_snooping_switch_at_default_sysctls() {
    if !require_root("pool_forwards_1000_groups_behind_a_snooping_switch_at_default_sysctls") {
        return;
    }
    // Behind the snooping bridge a group reaches the relay only if the relay really joined it.
    with_topology(Template::Snooping, |topo| {
        let scratch = ScratchDir::new("relay-e2e-pool").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let rules: Vec<String> = (0..1000)
            .map(|n| {
                rule(
                    rin,
                    nth([239, 1, 0, 1], n),
                    &[(rout, nth([239, 2, 0, 1], n))],
                )
            })
            .collect();
        let config = scratch.path("rules.json");
        std::fs::write(&config, json!({ "rules": rules }).to_string()).unwrap();
        let relay = RelayProcess::start(
            topo,
            scratch.path("relay.sock"),
            &["--config".into(), config.display().to_string()],
        );
        let memberships = relay.ctl(json!({"cmd":"memberships"}));
        let sockets = memberships["interfaces"][0]["sockets"].as_array().unwrap();
        let capacity = memberships["capacity_per_socket"].as_u64().unwrap() as usize;
        let joined: usize = sockets
            .iter()
            .map(|s| s["groups"].as_array().unwrap().len())
            .sum();
        assert_eq!(joined, 1000);
        assert_eq!(
            sockets.len(),
            1000usize.div_ceil(capacity),
            "{capacity} per socket"
        );

        // The switch must have learned the joins (first and last) before traffic starts.
        for n in [0, 999] {
            topo.wait_group_forwarded(nth([239, 1, 0, 1], n))
                .expect("snooping switch forwards the relay's joined group");
        }
        let groups: Vec<Ipv4Addr> = (0..1000).map(|n| nth([239, 2, 0, 1], n)).collect();
        let sink = sink_spec(topo, groups).start(&scratch).unwrap();
        send(topo, &scratch, 1000, 10.0, 20);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert!(
            summary.silent_groups.is_empty(),
            "{} silent",
            summary.silent_groups.len()
        );
        assert_eq!(summary.totals.received, 20_000, "{:?}", summary.totals);
        assert_eq!(summary.totals.duplicates, 0);
        relay.stop();
    });
}
