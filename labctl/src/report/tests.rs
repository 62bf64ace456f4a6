//! Report tests on synthetic results. TEST FIXTURES ONLY: these numbers are invented to check the
//! report's logic; they are never written to disk or shipped as results.

use super::*;
use crate::results::{Capacity, Environment, Latency, PointResult, Status, Usage, ZeroLoss};
use crate::scenario::Scenario;
use crate::scenario::SystemKind;

/// Test fixture: a quick-like scenario.
fn fixture_scenario() -> Scenario {
    Scenario::parse(
        r#"name = "fixture"
description = "TEST FIXTURE"
systems = ["relay/pool", "relay/single", "relay/single-8mb", "socat", "kernel", "direct"]
streams = [10, 40, 200]
"#,
        Path::new("fixture.toml"),
    )
    .unwrap()
}

/// Test fixture: invented numbers per (system, streams).
fn fixture_point(p: crate::scenario::Point) -> PointResult {
    let streams = u64::from(p.streams);
    let offered = streams * 600;
    let socat = p.system.is_defined("socat");
    let (accepted, delivered_fraction, cpu) = match (p.system.kind, p.streams) {
        (SystemKind::RelaySingle | SystemKind::RelaySingle8mb, s) if s > 20 => {
            (20, 20.0 / f64::from(s), 2.0)
        }
        (_, 200) if socat => (200, 0.71, 20.0),
        _ if socat => (p.streams, 1.0, 20.0),
        _ if p.system.is_defined("kernel") => (p.streams, 1.0, 0.1),
        (_, s) => (s, 1.0, 2.0),
    };
    let mut r = PointResult::empty(p.clone(), Status::Ok);
    r.sent_pps = Some(p.total_pps());
    r.offered = offered;
    r.delivered = (offered as f64 * delivered_fraction).round() as u64;
    r.lost = offered - r.delivered;
    r.latency_ns = Some(Latency {
        p50: 20_000,
        p99: 80_000,
        p999: 150_000,
    });
    r.interface_latency_ns = Some(Latency {
        p50: 8_000,
        p99: 30_000,
        p999: 60_000,
    });
    if p.system.kind != SystemKind::Direct {
        r.usage = Some(Usage {
            cpu_s: cpu * r.delivered as f64 / 1e6,
            peak_rss_kib: if socat { 4700 * streams } else { 9000 },
            processes: if socat { p.streams } else { 1 },
            fds: 12,
        });
    }
    if p.system.kind.is_relay() {
        let refused = accepted < p.streams;
        r.capacity = Some(Capacity {
            tried: p.streams,
            accepted,
            first_refused: refused.then_some(accepted),
            refused_group: refused.then(|| "239.1.0.21".to_owned()),
            errno: refused.then_some(libc::ENOBUFS),
            error: refused.then(|| "No buffer space available".to_owned()),
        });
    }
    if p.streams == 10 && matches!(p.system.kind, SystemKind::RelayPool | SystemKind::Direct) {
        r.zero_loss = Some(zero_loss(if p.system.kind == SystemKind::Direct {
            350_000.0
        } else {
            150_000.0
        }));
    }
    if p.system.kind != SystemKind::Direct {
        r.join_delay_ms = Some(5.0);
        r.join_delay_max_ms = Some(8.0);
    }
    r.derive();
    r
}

/// Test fixture: a zero-loss result at `pps` bracketed within 3 %.
fn zero_loss(pps: f64) -> ZeroLoss {
    ZeroLoss {
        pps,
        lossy_pps: Some(pps * 1.03),
        bound: None,
        resolution: Some(0.03),
        probes: 8,
        upper: None,
    }
}

fn fixture() -> Results {
    let s = fixture_scenario();
    let mut r = Results::new(&s, Path::new("fixture.toml"), Environment::default());
    r.points = s.points().into_iter().map(fixture_point).collect();
    r.refresh_aggregates();
    r
}

fn has(findings: &[String], text: &str) -> bool {
    findings.iter().any(|f| f.contains(text))
}

#[test]
fn findings_name_the_enobufs_point_and_the_8mb_verdict() {
    let f = findings::findings(&fixture());
    assert!(
        has(
            &f,
            "relay/single had a membership refused with ENOBUFS at group 21"
        ),
        "{f:#?}"
    );
    assert!(
        has(
            &f,
            "relay/single-8mb had a membership refused with ENOBUFS at group 21"
        ),
        "{f:#?}"
    );
    assert!(
        has(
            &f,
            "8 MB socket buffers did not move the refusal point: relay/single and relay/single-8mb both failed at group 21."
        ),
        "{f:#?}"
    );
    assert!(
        has(&f, "relay/pool joined every group it was given (up to 200)"),
        "{f:#?}"
    );
}

#[test]
fn findings_say_up_to_which_stream_count_each_system_delivered() {
    let f = findings::findings(&fixture());
    assert!(
        has(
            &f,
            "socat delivered >= 99.9 % of the full load up to 40 streams; at 200 streams: 71.0 %."
        ),
        "{f:#?}"
    );
    assert!(
        has(
            &f,
            "relay/pool delivered >= 99.9 % of the full load at every stream count measured (up to 200)."
        ),
        "{f:#?}"
    );
    assert!(
        has(
            &f,
            "relay/single delivered >= 99.9 % of the full load up to 10 streams; at 40 streams: 50.0 %."
        ),
        "{f:#?}"
    );
}

#[test]
fn findings_rank_cpu_and_zero_loss() {
    let f = findings::findings(&fixture());
    assert!(
        has(
            &f,
            "At 200 streams, CPU seconds per million delivered packets (= CPU cores per Mpps; the system's processes only"
        ),
        "{f:#?}"
    );
    let cpu = f
        .iter()
        .find(|s| s.starts_with("At 200 streams, CPU"))
        .unwrap();
    assert!(cpu.contains("): kernel 0.1, "), "{cpu}");
    assert!(
        cpu.find("relay/pool 2").unwrap() < cpu.find("socat 20").unwrap(),
        "{cpu}"
    );
    assert!(has(&f, "Zero-loss throughput at fan-out 1"), "{f:#?}");
    assert!(has(&f, "direct 350k pps, relay/pool 150k pps."), "{f:#?}");
    assert!(has(&f, "search resolution"), "{f:#?}");
}

#[test]
fn findings_say_what_ended_each_zero_loss_search() {
    let mut r = fixture();
    // Without recorded lossy probes (results written before they were), no such finding.
    assert!(!has(
        &findings::findings(&r),
        "What ended each zero-loss search"
    ));
    for p in r.points.iter_mut() {
        if let Some(z) = p.zero_loss.as_mut() {
            let relay = p.point.system.kind == SystemKind::RelayPool;
            z.upper = Some(crate::results::LossyProbe {
                asked_pps: z.lossy_pps.unwrap(),
                because: if relay {
                    crate::results::LossyBecause::Latency
                } else {
                    crate::results::LossyBecause::Loss
                },
                system_loss: if relay { 0.0 } else { 0.02 },
                p99_ns: Some(if relay { 24_000_000 } else { 90_000 }),
                interface_p99_ns: None,
            });
        }
    }
    r.refresh_aggregates();
    let f = findings::findings(&r);
    let line = f
        .iter()
        .find(|s| s.starts_with("What ended each zero-loss search"))
        .expect("the finding");
    assert!(
        line.contains(
            "relay/pool, fan-out 1: latency in 1 of 1 (at 154k pps, 0.00 % lost, p99 24.0 ms)"
        ),
        "{line}"
    );
    assert!(
        line.contains("direct, fan-out 1: loss in 1 of 1 (at 360k pps, 2.00 % lost, p99 0.1 ms)"),
        "{line}"
    );
}

#[test]
fn findings_report_a_skipped_system_with_its_reason() {
    let mut r = fixture();
    for p in r
        .points
        .iter_mut()
        .filter(|p| p.point.system.is_defined("socat"))
    {
        *p = PointResult::empty(
            p.point.clone(),
            Status::Skipped {
                reason: "socat is not installed (apt-get install socat)".into(),
            },
        );
    }
    r.refresh_aggregates();
    let f = findings::findings(&r);
    assert!(
        has(
            &f,
            "socat produced no measurement: socat is not installed (apt-get install socat)."
        ),
        "{f:#?}"
    );
    assert!(!has(&f, "socat delivered"), "{f:#?}");
}

#[test]
fn html_is_self_contained_with_one_svg_per_chart() {
    let html = render(&fixture());
    assert_eq!(html.matches("<svg").count(), 9, "nine charts");
    assert!(!html.contains("class=\"nodata\""));
    let lower = html.to_lowercase();
    for bad in [
        "src=\"http",
        "href=\"http",
        "src='http",
        "href='http",
        "<script",
        "<link",
        "@import",
        "url(",
    ] {
        assert!(!lower.contains(bad), "report contains {bad}");
    }
    assert!(html.contains("<h2>Findings</h2>"));
    assert!(html.find("<h2>Findings</h2>") < html.find("<h2>Charts</h2>"));
    assert!(html.contains("relay/single-8mb"));
    assert!(
        html.contains("ENOBUFS @21"),
        "ENOBUFS marked on the delivered chart"
    );
}

#[test]
fn charts_without_data_say_so() {
    let mut r = fixture();
    for p in &mut r.points {
        p.zero_loss = None;
        // Results written before the sinks took kernel timestamps.
        p.interface_latency_ns = None;
    }
    r.refresh_aggregates();
    let html = render(&r);
    assert_eq!(html.matches("<svg").count(), 7);
    assert!(html.contains("Zero-loss throughput vs fan-out: no data"));
    assert!(html.contains("Latency p99 at the sinks&#39; interfaces vs streams: no data"));
}

#[test]
fn text_is_escaped() {
    assert_eq!(
        escape("<a href=\"x\">&'"),
        "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
    );
}

#[test]
fn write_creates_index_html() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(&fixture(), &dir.path().join("out")).unwrap();
    assert!(path.ends_with("out/index.html"));
    assert!(std::fs::read_to_string(path).unwrap().contains("</html>"));
}

#[test]
fn capacity_probes_without_traffic_make_no_delivery_sentence() {
    let mut r = fixture();
    for p in &mut r.points {
        p.offered = 0;
        p.delivered = 0;
        p.derive();
    }
    r.refresh_aggregates();
    let f = findings::findings(&r);
    assert!(!has(&f, "delivered"), "{f:#?}");
    assert!(
        has(
            &f,
            "relay/single had a membership refused with ENOBUFS at group 21"
        ),
        "{f:#?}"
    );
}

#[test]
fn a_fanout_only_run_draws_its_charts_against_fanout() {
    // TEST FIXTURE: one stream count, three fan-outs.
    let s = Scenario::parse(
        "name = \"fx\"\nsystems = [\"relay/pool\", \"direct\"]\nstreams = [10]\nfanout = [1, 2, 5]\n",
        Path::new("fx.toml"),
    )
    .unwrap();
    let mut r = Results::new(&s, Path::new("fx.toml"), Environment::default());
    r.points = s
        .points()
        .into_iter()
        .map(|p| {
            let mut pr = fixture_point(p.clone());
            pr.zero_loss = Some(zero_loss(100_000.0 / f64::from(p.fanout)));
            pr
        })
        .collect();
    r.refresh_aggregates();
    let html = render(&r);
    assert!(
        html.contains("Delivered % of the asked load vs fan-out"),
        "primary axis is fan-out"
    );
    assert!(
        !html.contains("relay/pool fan-out 2"),
        "no per-fan-out series"
    );
    let f = findings::findings(&r);
    assert!(has(&f, "direct (no relay, no copies) 50k pps"), "{f:#?}");
}

#[test]
fn a_generator_bound_point_is_named_and_never_counted_as_delivered() {
    let mut r = fixture();
    for p in &mut r.points {
        // TEST FIXTURE: asked 200 x 200 = 40k pps; for socat the sender managed 10k.
        let short = p.point.streams == 200 && p.point.system.is_defined("socat");
        p.sent_pps = Some(if short { 10_000.0 } else { p.point.total_pps() });
        if short {
            p.delivered = p.offered;
            p.derive();
            p.status = Status::GeneratorBound {
                reason: "the sender reached 10000 of the 40000 pps asked".into(),
            };
        }
    }
    r.refresh_aggregates();
    let f = findings::findings(&r);
    assert!(
        has(
            &f,
            "Generator-bound points (the asked load was not offered, so they carry no verdict about it): socat at 200 streams (sender 10k of 40k pps)."
        ),
        "{f:#?}"
    );
    assert!(
        has(
            &f,
            "socat delivered >= 99.9 % of the full load up to 40 streams; no verdict at 200 streams: generator-bound (the sender reached 10k of 40k pps)."
        ),
        "{f:#?}"
    );
    assert!(
        !has(&f, "socat delivered >= 99.9 % of the full load at every"),
        "{f:#?}"
    );
    let headline = f
        .iter()
        .find(|s| s.starts_with("At 200 streams x 200 pps"))
        .unwrap();
    assert!(headline.contains("socat generator-bound"), "{headline}");
    let html = render(&r);
    assert!(html.contains("gen-bound"), "marked on the charts");
}

#[test]
fn the_headline_gives_intervals_and_isolation_is_stated() {
    let mut r = fixture();
    // TEST FIXTURE: a second repeat of every point, slightly different.
    let again: Vec<PointResult> = r
        .points
        .iter()
        .map(|p| {
            let mut q = p.clone();
            q.point.repeat = 1;
            q.delivered = q.delivered.saturating_sub(q.offered / 500);
            q.derive();
            q
        })
        .collect();
    r.points.extend(again);
    r.isolation =
        crate::placement::Placement::plan(crate::scenario::IsolationMode::Auto, &[0, 1], Ok(()))
            .record();
    r.isolation.ceilings.push(crate::results::Ceiling {
        size: 1000,
        streams: 200,
        pps: Some(95_000.0),
        note: "fixture".into(),
    });
    r.refresh_aggregates();
    let f = findings::findings(&r);
    let headline = f
        .iter()
        .find(|s| s.starts_with("At 200 streams x 200 pps"))
        .unwrap();
    assert!(
        headline.contains("relay/pool 99.9 % (95 % CI"),
        "{headline}"
    );
    assert!(
        has(&f, "Isolation: the sender ran on CPU [0] (SCHED_OTHER)"),
        "{f:#?}"
    );
    assert!(has(&f, "sustains 95k pps at 1000-byte payloads"), "{f:#?}");
    let html = render(&r);
    assert!(html.contains("&plusmn;"), "intervals in the data table");
    assert!(html.contains("<h2>Method</h2>"));
}

#[test]
fn cross_check_mismatches_are_reported() {
    let mut r = fixture();
    for p in &mut r.points {
        let mut c = crate::results::CrossCheck {
            sender_sent: p.offered,
            ..Default::default()
        };
        if p.point.system.is_defined("kernel") && p.point.streams == 40 {
            c.max_mismatch = 0.02;
            c.mismatches.push("fixture mismatch".into());
        }
        p.counters = Some(c);
    }
    r.refresh_aggregates();
    let f = findings::findings(&r);
    assert!(
        has(&f, "Cross-check: at 17 of 18 measured points"),
        "{f:#?}"
    );
    assert!(has(&f, "fixture mismatch"), "{f:#?}");
}

#[test]
fn join_delay_is_a_finding_and_a_table_cell() {
    let mut r = fixture();
    for p in r.points.iter_mut() {
        p.join_delay_ms = None;
        p.join_delay_max_ms = None;
        if p.point.system.kind == SystemKind::RelayPool {
            p.join_delay_ms = Some(f64::from(p.point.streams) / 10.0);
            p.join_delay_max_ms = Some(f64::from(p.point.streams) / 5.0);
        } else if p.point.system.is_defined("socat") {
            p.join_delay_ms = Some(20.0);
            p.join_delay_max_ms = Some(30.0);
        }
    }
    r.refresh_aggregates();
    let f = findings::findings(&r);
    assert!(
        has(
            &f,
            "relay/pool median 1-20 ms (worst 40 ms, at 200 streams)"
        ),
        "{f:#?}"
    );
    assert!(has(&f, "socat median 20 ms (worst 30 ms"), "{f:#?}");
    assert!(!has(&f, "kernel median"), "{f:#?}");
    let html = render(&r);
    assert!(
        html.contains("20 / 40"),
        "the data table shows median / worst"
    );
}

#[test]
fn a_system_silent_behind_the_snooping_switch_is_asked_whether_it_joins() {
    let mut r = fixture();
    r.scenario.definition.topology = crate::scenario::TopologyKind::Snooping;
    assert!(
        !has(&findings::findings(&r), "delivered nothing behind"),
        "every system delivers in the fixture"
    );
    for p in r
        .points
        .iter_mut()
        .filter(|p| p.point.system.is_defined("kernel"))
    {
        // TEST FIXTURE: a kernel that never joined its input groups.
        p.delivered = 0;
        p.lost = p.offered;
        p.capacity = Some(Capacity {
            tried: p.point.streams,
            accepted: 0,
            first_refused: Some(0),
            refused_group: Some("239.1.0.1".into()),
            errno: None,
            error: None,
        });
        p.derive();
    }
    r.refresh_aggregates();
    let f = findings::findings(&r);
    assert!(
        has(
            &f,
            "kernel delivered nothing behind the IGMP-snooping switch: does it join its input groups? It joined 0 of 10 input groups"
        ),
        "{f:#?}"
    );
    assert!(!has(&f, "socat delivered nothing"), "{f:#?}");
    // The same silence on plain links is not this finding.
    r.scenario.definition.topology = crate::scenario::TopologyKind::Chain;
    assert!(!has(&findings::findings(&r), "delivered nothing behind"));
}

/// Test fixture: the fixture run with goals on its own (invented) numbers.
fn fixture_with_goals(goals: &str) -> Results {
    let text = format!(
        "name = \"fixture\"\nsystems = [\"relay/pool\", \"socat\", \"kernel\", \"direct\"]\n\
         streams = [10, 40, 200]\n{goals}"
    );
    let s = Scenario::parse(&text, Path::new("fixture.toml")).unwrap();
    let mut r = Results::new(&s, Path::new("fixture.toml"), Environment::default());
    r.points = s.points().into_iter().map(fixture_point).collect();
    r.refresh_aggregates();
    r
}

#[test]
fn goals_are_judged_on_the_runs_own_ratios_and_bounds() {
    // Fixture zero-loss at 10 streams: relay/pool 150k, direct 350k -> ratio 0.43.
    let r = fixture_with_goals(
        r#"
[[goals]]
title = "zero-loss at least 0.4 x direct"
metric = "zero_loss_pps"
system = "relay/pool"
versus = "direct"
streams = 10
at_least = 0.4
[[goals]]
title = "zero-loss at least 0.9 x direct"
metric = "zero_loss_pps"
system = "relay/pool"
versus = "direct"
streams = 10
at_least = 0.9
[[goals]]
title = "delivers everything at 200"
metric = "delivered_pct"
system = "socat"
streams = 200
at_least = 99.9
[[goals]]
title = "CPU at most the kernel's"
metric = "cpu_per_mpkt"
system = "relay/pool"
versus = "kernel"
streams = 40
at_most = 1.0
"#,
    );
    let judged = goals::judge_all(&r);
    let verdicts: Vec<_> = judged.iter().map(|j| j.verdict.label()).collect();
    assert_eq!(verdicts, ["met", "not met", "not met", "not met"]);
    let ratio = judged[0].value.unwrap();
    assert!((ratio - 150.0 / 350.0).abs() < 1e-9, "{ratio}");
    let html = render(&r);
    assert!(html.contains("<h2>Goals</h2>"));
    assert!(html.contains("zero-loss at least 0.9 x direct"));
}

#[test]
fn a_goal_whose_interval_holds_the_target_has_no_verdict() {
    // Fixture CPU per packet: relay/pool 2.0, kernel 0.1 s/Mpkt -> ratio 20. Three repeats.
    let goal = "repeats = 3\n[[goals]]\ntitle = \"CPU at most 25 x the kernel's\"\n\
                metric = \"cpu_per_mpkt\"\nsystem = \"relay/pool\"\nversus = \"kernel\"\n\
                streams = 40\nat_most = 25.0\n";
    let mut r = fixture_with_goals(goal);
    let judged = goals::judge_all(&r);
    assert_eq!(judged[0].verdict, goals::Verdict::Met, "{judged:?}");
    // The same mean spread over the repeats (x 0.7, 1.0, 1.3): 25 is inside its interval.
    for p in r.points.iter_mut() {
        if p.point.system.kind == SystemKind::RelayPool {
            let spread = [0.7, 1.0, 1.3][p.point.repeat as usize];
            p.cpu_s_per_mpkt = p.cpu_s_per_mpkt.map(|c| c * spread);
        }
    }
    r.refresh_aggregates();
    let judged = goals::judge_all(&r);
    assert!(
        matches!(&judged[0].verdict, goals::Verdict::NoVerdict(why) if why.contains("noise")),
        "{judged:?}"
    );
    let (lo, hi) = judged[0].interval.unwrap();
    assert!(lo < 25.0 && hi > 25.0, "{lo} {hi}");
    assert!(goals::summary_line(&judged[0]).contains("95 % interval"));
    assert!(render(&r).contains("95 % CI"));
}

#[test]
fn a_goal_on_a_lower_bound_has_no_verdict_when_the_bound_could_change_it() {
    let goal = r#"
[[goals]]
title = "at least 0.9 x direct"
metric = "zero_loss_output_pps"
system = "relay/pool"
versus = "direct"
streams = 10
at_least = 0.9
"#;
    // relay/pool's figure is a lower bound (the generator's limit) and below the goal: it might
    // still reach it, so no verdict.
    let mut r = fixture_with_goals(goal);
    for p in r.points.iter_mut() {
        if let Some(z) = p.zero_loss.as_mut()
            && p.point.system.kind == SystemKind::RelayPool
        {
            z.bound = Some(crate::results::SearchBound::Generator);
        }
    }
    r.refresh_aggregates();
    let judged = goals::judge_all(&r);
    assert!(
        matches!(judged[0].verdict, goals::Verdict::NoVerdict(_)),
        "{:?}",
        judged[0].verdict
    );
    assert!(goals::summary_line(&judged[0]).contains("no verdict"));
    // A goal on a point the run did not measure is refused when the scenario loads.
    let text = format!(
        "name = \"x\"\nsystems = [\"relay/pool\", \"direct\"]\nstreams = [10]\n{}",
        goal.replace("streams = 10", "streams = 11")
    );
    let err = Scenario::parse(&text, Path::new("x.toml"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("measures no point with streams=11"), "{err}");
}

#[test]
fn stage_timing_is_drawn_per_input_frame() {
    let mut r = fixture();
    for p in r.points.iter_mut() {
        if p.point.system.kind == SystemKind::RelayPool {
            let stage = |name: &str, samples: u64, mean: f64| crate::results::StageTime {
                stage: name.to_owned(),
                samples,
                mean,
                p50: Some(mean as u64),
                p99: Some(mean as u64 * 2),
            };
            // 1000 frames; submit timed once per 10-frame round at 5000 ns: 500 ns per frame.
            p.stage_timing = vec![
                stage("parse", 1000, 40.0),
                stage("lookup", 1000, 20.0),
                stage("fanout_copy", 1000, 300.0),
                stage("submit", 100, 5000.0),
                stage("completion", 1000, 9000.0),
            ];
        }
    }
    let html = render(&r);
    assert!(html.contains("<h2>Where the time goes</h2>"));
    assert!(html.contains("time goes: CPU ns per input frame, by stage"));
    assert!(
        html.contains("<td>submit</td><td>100</td><td>500</td>"),
        "submit per frame"
    );
    assert!(html.contains("<td>completion</td><td>1000</td><td>(delay)</td>"));
    assert!(html.contains("10 x fo1"), "x categories are named");
    // Without timing there is no section.
    assert!(!render(&fixture()).contains("Where the time goes"));
}

#[test]
fn tc_stage_timing_is_drawn_per_datagram_with_its_mean_only() {
    let mut r = fixture();
    let stage = |name: &str, mean: f64| crate::results::StageTime {
        stage: name.to_owned(),
        samples: 2000,
        mean,
        p50: None,
        p99: None,
    };
    for p in r.points.iter_mut() {
        match p.point.system.kind {
            SystemKind::RelayPool => {
                p.stage_timing = vec![stage("tc_lookup", 150.0), stage("tc_fanout", 2400.0)];
            }
            SystemKind::Direct => p.stage_timing = vec![stage("parse", 50.0)],
            _ => {}
        }
    }
    let html = render(&r);
    assert!(html.contains("<h2>Where the time goes</h2>"));
    // Two timed systems taking turns at several points: one chart each.
    for system in ["relay/pool", "direct"] {
        let title = format!("Where {system}&apos;s time goes");
        assert_eq!(html.matches(&title).count(), 1, "{system}");
    }
    assert!(
        html.contains("<td>tc_fanout</td><td>2000</td><td>2400</td><td>-</td><td>-</td>"),
        "per datagram, no percentiles: {html}"
    );
    assert!(html.contains("<td>tc_lookup</td><td>2000</td><td>150</td>"));
    // Results written before the stages were optional still read.
    let old: crate::results::StageTime =
        serde_json::from_str(r#"{"stage":"parse","samples":5,"mean":40.0,"p50":39,"p99":80}"#)
            .unwrap();
    assert_eq!((old.p50, old.p99), (Some(39), Some(80)));
}
