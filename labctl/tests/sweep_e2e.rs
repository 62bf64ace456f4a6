//! End-to-end sweep tests on real lab topologies (root only; loud skip otherwise).
//! They need the `loadgen` and `relay` binaries (`cargo build -p loadgen -p relay`, or the
//! workspace's `cargo test`) and socat + smcroute installed (`./lab setup`). Each checks that no
//! namespace of its own is left behind.

use labctl::results::{PointResult, Results, Status};
use labctl::scenario::{Point, Scenario, SystemKind};
use labctl::sweep::{self, SweepOptions};
use labctl::testing::{assert_topology_gone, require_root};
use std::collections::BTreeMap;
use std::path::Path;

fn measure(scenario: &Scenario, p: &Point) -> PointResult {
    labctl::testing::measure_point(scenario, p)
}

#[test]
fn every_system_forwards_and_single_socket_relays_hit_enobufs_at_group_21() {
    if !require_root("every_system_forwards_and_single_socket_relays_hit_enobufs_at_group_21") {
        return;
    }
    let scenario = Scenario::parse(
        r#"name = "sweep-e2e"
systems = ["direct", "kernel", "socat", "relay/pool", "relay/single", "relay/single-8mb"]
streams = [30]
rate_pps = [100.0]
duration_s = 1.5
topology = "snooping"
"#,
        Path::new("sweep-e2e.toml"),
    )
    .unwrap();
    for p in scenario.points() {
        let r = measure(&scenario, &p);
        eprintln!(
            "{p}: {:?} delivered {:?} % capacity {:?} counters {:?}",
            r.status, r.delivered_pct, r.capacity, r.counters
        );
        assert_topology_gone(&r);
        assert_eq!(r.status, Status::Ok, "{p}");
        let delivered = r.delivered_pct.expect("delivered %");
        let capacity = r.capacity.clone();
        let counters = r.counters.clone().expect("kernel counters read");
        assert!(!counters.flagged(), "{p}: {counters:?}");
        assert_eq!(counters.generator_tx, Some(counters.sender_sent), "{p}");
        match p.system.kind {
            SystemKind::RelaySingle | SystemKind::RelaySingle8mb => {
                let c = capacity.expect("capacity of a relay");
                assert_eq!(c.first_refused, Some(20), "{p}: {c:?}");
                assert_eq!(c.errno, Some(libc::ENOBUFS), "{p}: {c:?}");
                // 20 of 30 streams forwarded.
                assert!((60.0..=67.0).contains(&delivered), "{p}: {delivered}");
                // The timed rules (the last 5) were refused: no join delay.
                assert_eq!(r.join_delay_ms, None, "{p}");
            }
            other => {
                assert!(delivered >= 99.0, "{p}: delivered {delivered} %");
                if other != SystemKind::Direct {
                    let c = capacity.expect("capacity");
                    assert_eq!((c.first_refused, c.accepted), (None, 30), "{p}: {c:?}");
                    let usage = r.usage.expect("usage of the system's processes");
                    let expected_processes = if p.system.is_defined("socat") { 30 } else { 1 };
                    assert_eq!(usage.processes, expected_processes, "{p}");
                    assert!(usage.peak_rss_kib > 0, "{p}");
                    // Join delay: real (behind the snooping bridge), ordered, and bounded by
                    // the probe sender's 3 s.
                    let median = r.join_delay_ms.expect("join delay");
                    let worst = r.join_delay_max_ms.expect("worst join delay");
                    assert!(
                        median > 0.0 && median <= worst && worst < 3000.0,
                        "{p}: {median} {worst}"
                    );
                } else {
                    assert_eq!(r.join_delay_ms, None, "{p}: direct has no rules");
                }
            }
        }
        assert!(r.latency_ns.is_some_and(|l| l.p50 > 0), "{p}: latency");
        // Every frame entered a sink's interface before that sink read it: the latency to the
        // interfaces (kernel timestamps) is measured and at most the end-to-end one.
        let end_to_end = r.latency_ns.expect("latency");
        let interface = r
            .interface_latency_ns
            .expect("the sinks' kernel receive timestamps");
        assert!(
            interface.p50 <= end_to_end.p50 && interface.p99 <= end_to_end.p99,
            "{p}: {interface:?} at the interfaces, {end_to_end:?} end to end"
        );
    }
}

/// Without the join-delay step (which probes the switch anyway) traffic still starts only once
/// the snooping switch forwards the joined groups: every packet the generator put on the wire
/// reached the system's ingress interface, none was charged to the system for the switch.
#[test]
fn traffic_starts_only_once_the_snooping_switch_forwards_the_groups() {
    if !require_root("traffic_starts_only_once_the_snooping_switch_forwards_the_groups") {
        return;
    }
    let scenario = Scenario::parse(
        r#"name = "sweep-e2e-switch"
systems = ["relay/pool", "kernel"]
streams = [50]
rate_pps = [40.0]
duration_s = 1.0
topology = "snooping"
join_delay = false
"#,
        Path::new("sweep-e2e-switch.toml"),
    )
    .unwrap();
    for p in scenario.points() {
        let r = measure(&scenario, &p);
        let counters = r.counters.clone().expect("kernel counters read");
        eprintln!("{p}: {:?} {counters:?} {:?}", r.status, r.notes);
        assert_eq!(r.status, Status::Ok, "{p}");
        assert!(
            !r.notes.iter().any(|n| n.starts_with("snooping switch:")),
            "{p}: {:?}",
            r.notes
        );
        let (sent, arrived) = (counters.generator_tx, counters.relay_in_rx);
        assert!(
            sent.is_some_and(|s| s >= 2000) && arrived >= sent,
            "{p}: {arrived:?} of {sent:?} reached the system"
        );
        assert!(r.delivered_pct.is_some_and(|d| d >= 99.9), "{p}");
    }
}

#[test]
fn a_sweep_writes_results_with_repeats_and_a_report() {
    if !require_root("a_sweep_writes_results_with_repeats_and_a_report") {
        return;
    }
    let scenario = Scenario::parse(
        "name = \"sweep-e2e-run\"\nsystems = [\"direct\"]\nstreams = [5]\nrate_pps = [100.0]\nduration_s = 1.0\nrepeats = 2\n",
        Path::new("sweep-e2e-run.toml"),
    )
    .unwrap();
    let out = tempfile::tempdir().unwrap();
    let outcome = sweep::run(
        &scenario,
        Path::new("sweep-e2e-run.toml"),
        &SweepOptions {
            out_root: out.path().to_path_buf(),
            quiet: true,
            build_paths: BTreeMap::new(),
        },
    )
    .unwrap();
    let results = Results::load(&outcome.results_path).unwrap();
    assert_eq!(results.points.len(), 2);
    assert!(results.finished.is_some() && !results.interrupted);
    assert_eq!(results.aggregates.len(), 1);
    let agg = &results.aggregates[0];
    assert_eq!((agg.repeats, agg.ok), (2, 2), "{agg:?}");
    assert!(
        agg.delivered_pct.expect("delivered").mean >= 99.0,
        "{agg:?}"
    );
    assert!(results.environment.cores > 0);
    assert!(
        results
            .environment
            .namespace_sysctls
            .contains_key("net.ipv4.igmp_max_memberships")
    );
    let html = std::fs::read_to_string(&outcome.report_path).unwrap();
    assert!(html.contains("<svg"), "report has charts");
    assert!(
        html.contains("direct delivered &gt;= 99.9 %") || html.contains("direct did not deliver")
    );
    // The load generator's own ceiling was measured and recorded.
    assert_eq!(
        results.isolation.ceilings.len(),
        1,
        "{:?}",
        results.isolation
    );
    assert!(
        results.isolation.ceilings[0]
            .pps
            .is_some_and(|pps| pps > 1000.0),
        "{:?}",
        results.isolation.ceilings
    );
}

#[test]
fn kernel_fanout_is_counted_on_every_link() {
    if !require_root("kernel_fanout_is_counted_on_every_link") {
        return;
    }
    let scenario = Scenario::parse(
        "name = \"sweep-e2e-kfan\"\nsystems = [\"kernel\"]\nstreams = [6]\nfanout = [7]\nrate_pps = [100.0]\nduration_s = 1.5\njoin_delay = false\n",
        Path::new("sweep-e2e-kfan.toml"),
    )
    .unwrap();
    let p = scenario.points().remove(0);
    let r = measure(&scenario, &p);
    eprintln!(
        "{p}: {:?} {} of {} dup {} links {:?} counters {:?}",
        r.status, r.delivered, r.offered, r.duplicates, r.links, r.counters
    );
    if matches!(r.status, Status::Skipped { .. }) {
        eprintln!("SKIPPED (smcroute missing): {:?}", r.status);
        return;
    }
    assert_eq!(r.status, Status::Ok);
    // 7 links (more than the 5 outbound interfaces smcroutectl keeps per batch line), each
    // counted by its own sink: every link carries every packet once.
    assert_eq!(r.links.len(), 7, "{:?}", r.links);
    let sent = r.counters.as_ref().expect("counters").sender_sent;
    assert!(sent >= 6 * 100, "{sent}");
    for link in &r.links {
        assert_eq!(link.offered, sent, "{link:?}");
        assert!(
            link.delivered_pct.expect("per-link delivered") >= 99.0,
            "{link:?}"
        );
        assert_eq!(link.duplicates, 0, "{link:?}");
        assert_eq!(link.wire_rx, Some(link.delivered), "{link:?}");
    }
    assert_eq!(r.offered, 7 * sent);
    assert!(r.delivered_pct.expect("delivered") >= 99.0, "{r:?}");
    assert!(!r.counters.as_ref().unwrap().flagged(), "{:?}", r.counters);
    assert_topology_gone(&r);
}

#[test]
fn a_point_measuring_longer_than_the_relays_control_idle_timeout_still_ends_ok() {
    if !require_root("a_point_measuring_longer_than_the_relays_control_idle_timeout_still_ends_ok")
    {
        return;
    }
    // The relay closes control connections idle for 1 s here; the point measures for 2.5 s and
    // then reads the relay's stats over the control socket.
    let scenario = Scenario::parse(
        r#"name = "idle-e2e"
systems = ["relay/pool@idle"]
streams = [1]
rate_pps = [200.0]
duration_s = 2.5
topology = "chain"
[builds.idle]
args = ["--control-idle-timeout", "1"]
"#,
        Path::new("idle-e2e.toml"),
    )
    .unwrap();
    for p in scenario.points() {
        let r = measure(&scenario, &p);
        assert_eq!(r.status, Status::Ok, "{p}: {:?}", r.notes);
        assert_eq!(r.delivered_pct, Some(100.0), "{p}");
        assert_topology_gone(&r);
    }
}
