//! End-to-end: `relay run --input-filter` keeps the rules' input out of the relay host's own IP
//! stack and forwards every frame. The witness is a kernel counter the relay does not write:
//! the relay namespace's Udp `IgnoredMulti` (a multicast datagram the host stack received and
//! found no socket for), which grows with the input without the filter and stays flat with
//! it. Root only (loud skip otherwise).

mod support;

use labctl::process::loadgen::ScratchDir;
use labctl::testing::{require_root, with_topology};
use labctl::topology::{Template, Topology};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;
use support::{RelayProcess, ignored_multi, programs_at_input, send_from, sink_spec};

const INPUT: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
const OUTPUT: Ipv4Addr = Ipv4Addr::new(239, 2, 0, 1);

fn rule(topo: &Topology) -> String {
    let (rin, rout) = (
        &topo.relay_in().unwrap().ifname,
        &topo.relay_out()[0].ifname,
    );
    format!("{rin}:{INPUT}:5000 -> {rout}:{OUTPUT}:5000")
}

/// Sends `count` frames at 2000 pps through a relay started with `extra`; returns what the
/// sink received and how much `IgnoredMulti` grew meanwhile. The relay is left running.
fn forward(topo: &Topology, scratch: &ScratchDir, relay: &RelayProcess, count: u64) -> (u64, u64) {
    let before = ignored_multi(topo);
    let sink = sink_spec(topo, vec![OUTPUT]).start(scratch).unwrap();
    let source = topo.generator().addr;
    assert_eq!(
        send_from(topo, scratch, source, INPUT, 2000.0, count),
        count
    );
    let summary = sink.finish(Duration::from_secs(10)).unwrap();
    assert_eq!(summary.totals.duplicates, 0, "{:?}", summary.totals);
    let stats = relay.ctl(json!({"cmd": "stats"}));
    assert_eq!(stats["rules"][0]["rx_packets"], count, "{stats}");
    (summary.totals.received, ignored_multi(topo) - before)
}

#[test]
fn the_input_filter_keeps_the_input_out_of_the_host_stack_and_forwards_everything() {
    let name = "the_input_filter_keeps_the_input_out_of_the_host_stack_and_forwards_everything";
    if !require_root(name) {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-input-filter").unwrap();
        let args = ["--rule".to_string(), rule(topo)];

        // Without the filter the host stack takes every input frame (the witness works).
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        assert!(
            relay
                .ctl(json!({"cmd": "stats"}))
                .get("input_filter")
                .is_none()
        );
        let (received, ignored) = forward(topo, &scratch, &relay, 1000);
        assert_eq!(received, 1000);
        assert!(
            ignored >= 1000,
            "IgnoredMulti grew by {ignored} for 1000 frames"
        );
        relay.stop();

        let mut filtered = args.to_vec();
        filtered.push("--input-filter".into());
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &filtered);
        let stats = relay.ctl(json!({"cmd": "stats"}));
        let linked = json!({"interfaces": 1, "groups": 1, "errors": 0});
        assert_eq!(stats["input_filter"], linked, "{stats}");
        assert_eq!(
            programs_at_input(topo),
            1,
            "the kernel's count of linked programs"
        );
        let (received, ignored) = forward(topo, &scratch, &relay, 2000);
        assert_eq!(
            (received, ignored),
            (2000, 0),
            "delivered, IgnoredMulti growth"
        );

        // The rule removed: nothing listed, no interface linked.
        let removed = relay.ctl(json!({"cmd": "remove", "id": 1}));
        assert_eq!(removed["ok"], true, "{removed}");
        let stats = relay.ctl(json!({"cmd": "stats"}));
        let empty = json!({"interfaces": 0, "groups": 0, "errors": 0});
        assert_eq!(stats["input_filter"], empty, "{stats}");
        assert_eq!(programs_at_input(topo), 0, "unlinked with the rule");
        relay.stop();

        // A relay killed outright leaves no program behind: the links die with its fds.
        let relay = RelayProcess::start(topo, scratch.path("relay2.sock"), &filtered);
        assert_eq!(programs_at_input(topo), 1);
        let pid = nix::unistd::Pid::from_raw(relay.child.pid() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("SIGKILL");
        assert!(relay.wait_exit(Duration::from_secs(5)).is_some(), "killed");
        assert_eq!(programs_at_input(topo), 0, "a killed relay's link is gone");
    });
}
