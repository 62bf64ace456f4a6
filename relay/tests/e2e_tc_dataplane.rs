//! End-to-end: `relay run --dataplane tc` forwards in the kernel. One input to three output
//! groups; the witnesses are counters the relay does not write: the sink's delivered datagrams
//! (its kernel verifies every UDP checksum: the load generator's frames arrive complete, and
//! a veth leaves them unverified, so a wrong checksum would be a Udp `InCsumErrors` there, not
//! a delivery), the relay host's `IgnoredMulti` (flat: the program consumes its input) and the
//! kernel's count of tcx programs. Root only (loud skip otherwise).

mod support;

use labctl::process::loadgen::ScratchDir;
use labctl::sweep::counters::read_udp_field;
use labctl::testing::{require_root, with_topology};
use labctl::topology::{Template, Topology};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;
use support::{RelayProcess, ignored_multi, programs_at_input, send_from, sink_spec};

const INPUT: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
const OUTPUTS: [Ipv4Addr; 3] = [
    Ipv4Addr::new(239, 2, 0, 1),
    Ipv4Addr::new(239, 2, 0, 2),
    Ipv4Addr::new(239, 2, 0, 3),
];

fn rule(topo: &Topology) -> String {
    let rin = &topo.relay_in().unwrap().ifname;
    let rout = &topo.relay_out()[0].ifname;
    let outputs: Vec<String> = OUTPUTS.iter().map(|g| format!("{rout}:{g}:5000")).collect();
    format!("{rin}:{INPUT}:5000 -> {}", outputs.join(", "))
}

fn sink_csum_errors(topo: &Topology) -> u64 {
    read_udp_field(&topo.sinks()[0].netns, "InCsumErrors").expect("the sink's UDP counters")
}

#[test]
fn the_tc_dataplane_forwards_every_datagram_to_every_output_in_the_kernel() {
    let name = "the_tc_dataplane_forwards_every_datagram_to_every_output_in_the_kernel";
    if !require_root(name) {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-tc").unwrap();
        let args = [
            "--rule".to_string(),
            rule(topo),
            "--dataplane".into(),
            "tc".into(),
        ];
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        assert_eq!(programs_at_input(topo), 1, "linked to the input interface");
        let (ignored_before, csum_before) = (ignored_multi(topo), sink_csum_errors(topo));
        let sink = sink_spec(topo, OUTPUTS.to_vec()).start(&scratch).unwrap();
        let source = topo.generator().addr;
        assert_eq!(send_from(topo, &scratch, source, INPUT, 2000.0, 2000), 2000);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        let totals = &summary.totals;
        assert_eq!(
            (totals.received, totals.duplicates, totals.reordered),
            (3 * 2000, 0, 0),
            "{totals:?}"
        );
        assert_eq!(sink_csum_errors(topo) - csum_before, 0, "checksums");
        assert_eq!(ignored_multi(topo) - ignored_before, 0, "input consumed");
        let stats = relay.ctl(json!({"cmd": "stats"}));
        let tc = &stats["tc_dataplane"];
        assert_eq!(
            (&tc["rules"], &tc["interfaces"], &tc["errors"]),
            (&json!(1), &json!(1), &json!(0)),
            "{stats}"
        );
        assert_eq!(
            (&tc["rx_packets"], &tc["sent"]),
            (&json!(2000), &json!(6000))
        );
        assert_eq!(
            stats["workers"][0]["rx_packets"], 0,
            "the workers receive nothing"
        );
        let rule = &stats["rules"][0];
        assert_eq!(
            (&rule["rx_packets"], &rule["rx_bytes"]),
            (&json!(2000), &json!(2000 * 500))
        );
        for output in rule["outputs"].as_array().unwrap() {
            assert_eq!(
                (&output["tx_packets"], &output["tx_errors"]),
                (&json!(2000), &json!(0))
            );
        }

        // The rule removed: the program is unlinked; a killed relay leaves nothing either.
        assert_eq!(relay.ctl(json!({"cmd": "remove", "id": 1}))["ok"], true);
        assert_eq!(programs_at_input(topo), 0, "unlinked with the rule");
        relay.stop();
        let relay = RelayProcess::start(topo, scratch.path("relay2.sock"), &args);
        assert_eq!(programs_at_input(topo), 1);
        let pid = nix::unistd::Pid::from_raw(relay.child.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
        assert!(relay.wait_exit(Duration::from_secs(5)).is_some(), "killed");
        assert_eq!(programs_at_input(topo), 0, "a killed relay's link is gone");
    });
}

/// The relay's `stats` until `done` holds for it (2 s at most; the last one either way).
fn stats_when(
    relay: &RelayProcess,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        let stats = relay.ctl(json!({"cmd": "stats"}));
        if done(&stats) || std::time::Instant::now() > deadline {
            return stats;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_workers_forward_the_rules_the_program_cannot() {
    let name = "the_workers_forward_the_rules_the_program_cannot";
    if !require_root(name) {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-tc-workers").unwrap();
        let args = [
            "--rule".to_string(),
            rule(topo),
            "--dataplane".into(),
            "tc".into(),
        ];
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        let tc = relay.ctl(json!({"cmd": "stats"}))["tc_dataplane"].clone();
        assert_eq!(
            (&tc["worker_rules"], &tc["workers_receive"]),
            (&json!(0), &json!(false))
        );
        // 33 outputs: one more than the program takes; the workers forward this rule.
        let rin = &topo.relay_in().unwrap().ifname;
        let rout = &topo.relay_out()[0].ifname;
        let wide_input = Ipv4Addr::new(239, 1, 0, 2);
        let many: Vec<String> = (1..=33)
            .map(|i| format!("{rout}:239.3.0.{i}:5000"))
            .collect();
        let wide = relay.add(&format!("{rin}:{wide_input}:5000 -> {}", many.join(", ")));
        assert_eq!(wide["ok"], true, "{wide}");
        let tc = relay.ctl(json!({"cmd": "stats"}))["tc_dataplane"].clone();
        assert_eq!(
            (&tc["rules"], &tc["worker_rules"], &tc["workers_receive"]),
            (&json!(1), &json!(1), &json!(true)),
            "{tc}"
        );
        let mut groups = OUTPUTS.to_vec();
        groups.push(Ipv4Addr::new(239, 3, 0, 33));
        let sink = sink_spec(topo, groups).start(&scratch).unwrap();
        let source = topo.generator().addr;
        assert_eq!(send_from(topo, &scratch, source, INPUT, 1000.0, 500), 500);
        assert_eq!(
            send_from(topo, &scratch, source, wide_input, 1000.0, 400),
            400
        );
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        let totals = &summary.totals;
        assert_eq!(
            (totals.received, totals.duplicates),
            (3 * 500 + 400, 0),
            "each rule forwarded once, by one forwarder: {totals:?}"
        );
        // The workers saw the program's datagrams too (their tap runs first) and left them.
        let stats = stats_when(&relay, |s| s["workers"][0]["in_kernel"] == 500);
        assert_eq!(stats["workers"][0]["in_kernel"], 500, "{stats}");
        let (program_rule, worker_rule) = (&stats["rules"][0], &stats["rules"][1]);
        assert_eq!(program_rule["rx_packets"], 500, "the program's counters");
        assert_eq!(worker_rule["rx_packets"], 400, "the workers' counters");
        let outputs = worker_rule["outputs"].as_array().unwrap();
        assert_eq!(outputs.len(), 33);
        assert!(
            outputs.iter().all(|o| o["tx_packets"] == 400),
            "{worker_rule}"
        );
        assert_eq!(stats["tc_dataplane"]["rx_packets"], 500, "{stats}");
        // The workers' last rule gone: they stop receiving.
        assert_eq!(relay.ctl(json!({"cmd": "remove", "id": 2}))["ok"], true);
        let tc = relay.ctl(json!({"cmd": "stats"}))["tc_dataplane"].clone();
        assert_eq!(
            (&tc["worker_rules"], &tc["workers_receive"]),
            (&json!(0), &json!(false))
        );
        let received = relay.ctl(json!({"cmd": "stats"}))["workers"][0]["rx_packets"]
            .as_u64()
            .unwrap();
        assert_eq!(send_from(topo, &scratch, source, INPUT, 1000.0, 200), 200);
        let stats = stats_when(&relay, |s| s["tc_dataplane"]["rx_packets"] == 700);
        assert_eq!(stats["tc_dataplane"]["rx_packets"], 700, "{stats}");
        assert_eq!(
            stats["workers"][0]["rx_packets"].as_u64().unwrap(),
            received,
            "idle workers take nothing"
        );
        relay.stop();
    });
}

#[test]
fn the_default_data_plane_is_tc_unless_a_flag_needs_the_workers() {
    let name = "the_default_data_plane_is_tc_unless_a_flag_needs_the_workers";
    if !require_root(name) {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-tc-default").unwrap();
        let args = ["--rule".to_string(), rule(topo)];
        let relay = RelayProcess::start_exact(topo, scratch.path("relay.sock"), &args);
        let sink = sink_spec(topo, OUTPUTS.to_vec()).start(&scratch).unwrap();
        let source = topo.generator().addr;
        assert_eq!(send_from(topo, &scratch, source, INPUT, 1000.0, 300), 300);
        assert_eq!(
            sink.finish(Duration::from_secs(10))
                .unwrap()
                .totals
                .received,
            900
        );
        let stats = relay.ctl(json!({"cmd": "stats"}));
        assert_eq!(
            stats["tc_dataplane"]["rx_packets"], 300,
            "the program forwarded: {stats}"
        );
        assert_eq!(stats["workers"][0]["rx_packets"], 0);
        relay.stop();
        // A flag only the workers honour: they forward, nothing is refused.
        let args = [
            "--rule".to_string(),
            rule(topo),
            "--busy-poll-us".into(),
            "5".into(),
        ];
        let relay = RelayProcess::start_exact(topo, scratch.path("relay2.sock"), &args);
        let stats = relay.ctl(json!({"cmd": "stats"}));
        assert!(stats.get("tc_dataplane").is_none(), "{stats}");
        assert_eq!(programs_at_input(topo), 0, "no program linked");
        relay.stop();
    });
}

#[test]
fn the_tc_dataplane_times_its_stages_under_timing() {
    let name = "the_tc_dataplane_times_its_stages_under_timing";
    if !require_root(name) {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-tc-timing").unwrap();
        let args = [
            "--rule".to_string(),
            rule(topo),
            "--dataplane".into(),
            "tc".into(),
            "--timing".into(),
        ];
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        let sink = sink_spec(topo, OUTPUTS.to_vec()).start(&scratch).unwrap();
        let source = topo.generator().addr;
        assert_eq!(send_from(topo, &scratch, source, INPUT, 1000.0, 500), 500);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(
            summary.totals.received,
            3 * 500,
            "the timing program forwards"
        );
        let stats = relay.ctl(json!({"cmd": "stats"}));
        let stages = stats["timing"].as_array().expect("timing with --timing");
        let names: Vec<&str> = stages.iter().filter_map(|s| s["stage"].as_str()).collect();
        assert_eq!(names, ["tc_lookup", "tc_fanout"], "{stats}");
        for stage in stages {
            assert_eq!(stage["samples"], 500, "every datagram timed: {stage}");
            let mean = stage["mean"].as_f64().unwrap();
            // Above 0 and below a millisecond: a softirq pass, not a stall.
            assert!(mean > 0.0 && mean < 1e6, "{stage}");
            assert!(stage.get("p50").is_none(), "sums, no percentiles: {stage}");
        }
        relay.stop();
    });
}
