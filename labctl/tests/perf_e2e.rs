//! End-to-end test of what the `perf` scenario relies on (root only; loud skip otherwise): point
//! groups with their own axes, links counted by their interfaces (`counting_sinks`), the relay's
//! stage timing from a `--timing` build (the default data plane's: the tc program's stages), and goals judged on the run's own numbers. Needs the
//! release `relay` and `loadgen` binaries (`./lab test` builds them).

use labctl::report::goals::{self, Verdict};
use labctl::results::{Environment, Results, Status};
use labctl::scenario::{Scenario, SystemKind};
use labctl::testing::require_root;
use std::path::Path;

const SCENARIO: &str = r#"
name = "perf-e2e"
systems = ["relay/pool", "relay/pool@timed"]
size = [200]
duration_s = 1.0
topology = "chain"
join_delay = false
counting_sinks = 1

[builds.timed]
args = ["--timing"]

[[groups]]
name = "fan"
streams = [1]
fanout = [3]
rate_pps = [500.0]

[[groups]]
name = "many"
streams = [20]
rate_pps = [20.0]

[[goals]]
title = "relay/pool delivers everything at 20 streams"
metric = "delivered_pct"
system = "relay/pool"
streams = 20
at_least = 99.9

[[goals]]
title = "timing costs nothing that loses packets at fan-out 3"
metric = "delivered_pct"
system = "relay/pool@timed"
versus = "relay/pool"
streams = 1
fanout = 3
at_least = 0.999
"#;

#[test]
fn groups_interface_counted_links_timing_and_goals_work_end_to_end() {
    if !require_root("groups_interface_counted_links_timing_and_goals_work_end_to_end") {
        return;
    }
    let scenario = Scenario::parse(SCENARIO, Path::new("perf-e2e.toml")).unwrap();
    let points = scenario.points();
    assert_eq!(points.len(), 4, "2 groups x 2 systems");
    let mut results = Results::new(
        &scenario,
        Path::new("perf-e2e.toml"),
        Environment::default(),
    );
    for p in points {
        let r = labctl::testing::measure_point(&scenario, &p);
        eprintln!(
            "{p}: {:?} {:?} % notes {:?}",
            r.status, r.delivered_pct, r.notes
        );
        assert_eq!(r.status, Status::Ok, "{p}: {:?}", r.notes);
        assert_eq!(r.delivered_pct, Some(100.0), "{p}");
        let timed = r.point.system.build.is_some();
        assert_eq!(
            !r.stage_timing.is_empty(),
            timed,
            "{p}: stage timing only from the --timing build"
        );
        if timed {
            let looked_up = r.stage_timing.iter().find(|s| s.stage == "tc_lookup");
            let looked_up = looked_up.unwrap_or_else(|| panic!("{p}: {:?}", r.stage_timing));
            let sent = r.offered / u64::from(r.point.fanout);
            assert!(
                looked_up.samples >= sent,
                "{p}: looked up {} of {sent}",
                looked_up.samples
            );
        }
        if r.point.fanout == 3 {
            let by_interface: Vec<bool> = r.links.iter().map(|l| l.interface_counted).collect();
            assert_eq!(
                by_interface,
                [false, true, true],
                "{p}: link 0 has the sink"
            );
            for link in &r.links {
                assert_eq!(link.delivered, link.offered, "{p}: link {}", link.link);
                assert!(link.wire_rx.is_some_and(|rx| rx >= link.offered));
            }
            assert!(
                r.latency_ns.is_some(),
                "{p}: latency from the counting sink"
            );
            assert!(r.notes.iter().any(|n| n.contains("2 of 3 links counted")));
        }
        assert_eq!(r.point.system.kind, SystemKind::RelayPool);
        results.points.push(r);
    }
    results.refresh_aggregates();
    let judged = goals::judge_all(&results);
    assert_eq!(judged.len(), 2);
    for j in &judged {
        assert_eq!(j.verdict, Verdict::Met, "{}", goals::summary_line(j));
    }
    let html = labctl::report::render(&results);
    assert!(html.contains("<h2>Goals</h2>"));
    assert!(html.contains("<h2>Where the time goes</h2>"));
}
