//! End-to-end tests of systems from definition files (root only; loud skip otherwise): a relay
//! defined from scratch in a test definition is measured like a built-in, a relay that never
//! joins is named behind the snooping switch, one declared as not joining (`can.joins = false`)
//! counts its installed rules as capacity, and a broken definition stops `labctl run` with a
//! one-line error before anything is built. They need the release `relay` and `loadgen`
//! binaries (`./lab test` builds them) and smcroute for the second test.

use labctl::report::findings;
use labctl::results::{Environment, PointResult, Results, Status};
use labctl::scenario::Scenario;
use labctl::testing::{assert_topology_gone, lab_namespaces, require_root};
use std::path::{Path, PathBuf};

/// The tests of this file run one at a time: each checks that it leaves no namespace behind,
/// which another test's topology would confuse.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn data(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
        .display()
        .to_string()
}

/// Measures every point of `scenario` the way a sweep does (no ceiling) and returns the results
/// with their aggregates; checks that no namespace is left behind.
fn measure_all(scenario: &Scenario) -> Results {
    let mut results = Results::new(scenario, Path::new("t.toml"), Environment::default());
    for p in scenario.points() {
        let r = labctl::testing::measure_point(scenario, &p);
        eprintln!(
            "{p}: {:?} delivered {:?} % capacity {:?} notes {:?}",
            r.status, r.delivered_pct, r.capacity, r.notes
        );
        results.points.push(r);
    }
    results.refresh_aggregates();
    // A measured point names its topology; none of its namespaces may be left. (A point that
    // failed before it was measured names none: the sweep tests check that teardown.)
    for p in results.points.iter().filter(|p| p.status.is_measured()) {
        assert_topology_gone(p);
    }
    results
}

/// Measures the smcroute-based test definition `file` at 3 streams, fan-out 1 behind the
/// snooping bridge and fan-out 2 on plain links; `None` (said loudly) when smcroute is missing.
fn measure_smcroute_definition(file: &str) -> Option<Results> {
    let text = format!(
        "name = \"smcroute-e2e\"\nsystems = [\"{}\"]\nstreams = [3]\nfanout = [1, 2]\nrate_pps = [100.0]\nduration_s = 1.0\ntopology = \"snooping\"\njoin_delay = false\n",
        data(file)
    );
    let scenario = Scenario::parse(&text, Path::new("smcroute-e2e.toml")).unwrap();
    let r = measure_all(&scenario);
    if r.points
        .iter()
        .any(|p| matches!(p.status, Status::Skipped { .. }))
    {
        eprintln!("SKIPPED (smcroute is not installed: ./lab setup): {file}");
        return None;
    }
    Some(r)
}

fn point_at(r: &Results, fanout: u32) -> &PointResult {
    r.points
        .iter()
        .find(|p| p.point.fanout == fanout)
        .expect("the point")
}

#[test]
fn a_relay_defined_from_scratch_is_measured_like_a_built_in() {
    if !require_root("a_relay_defined_from_scratch_is_measured_like_a_built_in") {
        return;
    }
    let _serial = serial();
    let text = format!(
        "name = \"defined-e2e\"\nsystems = [\"{}\"]\nstreams = [6]\nfanout = [1, 3]\nrate_pps = [100.0]\nduration_s = 1.0\ntopology = \"snooping\"\n",
        data("relay-defined.toml")
    );
    let scenario = Scenario::parse(&text, Path::new("defined-e2e.toml")).unwrap();
    let r = measure_all(&scenario);
    for fanout in [1, 3] {
        let p = point_at(&r, fanout);
        assert_eq!(p.status, Status::Ok, "fan-out {fanout}: {:?}", p.notes);
        assert_eq!(p.delivered_pct, Some(100.0), "fan-out {fanout}");
        assert_eq!(p.offered, 6 * 100 * u64::from(fanout), "fan-out {fanout}");
        let capacity = p
            .capacity
            .clone()
            .expect("capacity from the namespace's joins");
        assert_eq!((capacity.accepted, capacity.first_refused), (6, None));
        let usage = p.usage.expect("the relay's processes were sampled");
        assert_eq!(
            usage.processes, 1,
            "one relay daemon (the rule commands ended)"
        );
        assert!(usage.peak_rss_kib > 0);
        let median = p.join_delay_ms.expect("rules added one by one are timed");
        assert!(median > 0.0 && median < 3000.0, "{median}");
        assert!(
            p.notes.iter().any(|n| n.contains("version: relay 0.1")),
            "{:?}",
            p.notes
        );
    }
}

#[test]
fn a_relay_that_never_joins_is_named_behind_the_snooping_switch() {
    if !require_root("a_relay_that_never_joins_is_named_behind_the_snooping_switch") {
        return;
    }
    let _serial = serial();
    let Some(r) = measure_smcroute_definition("kernel-nojoin.toml") else {
        return;
    };
    // Fan-out 1 runs behind the snooping bridge; fan-out 2 on plain veths.
    let behind = point_at(&r, 1);
    assert_eq!(behind.delivered, 0, "{:?}", behind.notes);
    assert!(behind.offered > 0);
    assert_eq!(behind.capacity.as_ref().map(|c| c.accepted), Some(0));
    let plain = point_at(&r, 2);
    assert_eq!(plain.delivered_pct, Some(100.0), "{:?}", plain.notes);
    let f = findings::findings(&r);
    let expected = format!(
        "{} delivered nothing behind the IGMP-snooping switch, while it delivered on plain links: does it join its input groups? It joined 0 of 3 input groups",
        data("kernel-nojoin.toml")
    );
    assert!(f.iter().any(|l| l.contains(&expected)), "{f:#?}");
}

#[test]
fn a_system_declared_as_not_joining_counts_its_installed_rules_and_is_not_waited_for() {
    if !require_root(
        "a_system_declared_as_not_joining_counts_its_installed_rules_and_is_not_waited_for",
    ) {
        return;
    }
    let _serial = serial();
    let Some(r) = measure_smcroute_definition("kernel-static.toml") else {
        return;
    };
    // Every installed route is capacity, with no membership behind it.
    for fanout in [1, 2] {
        let p = point_at(&r, fanout);
        assert_eq!(
            p.capacity.as_ref().map(|c| (c.accepted, c.first_refused)),
            Some((3, None)),
            "fan-out {fanout}: {:?}",
            p.notes
        );
    }
    // Behind the snooping bridge (fan-out 1) the lab says why nothing arrives instead of
    // waiting for the switch to forward groups nobody joined.
    let behind = point_at(&r, 1);
    assert_eq!(behind.delivered, 0, "{:?}", behind.notes);
    assert!(
        behind
            .notes
            .iter()
            .any(|n| n.contains("does not join its input groups (can.joins = false)")),
        "{:?}",
        behind.notes
    );
    assert!(
        !behind
            .notes
            .iter()
            .any(|n| n.starts_with("snooping switch:")),
        "{:?}",
        behind.notes
    );
    let plain = point_at(&r, 2);
    assert_eq!(plain.delivered_pct, Some(100.0), "{:?}", plain.notes);
}

fn labctl() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_labctl"))
}

#[test]
fn a_broken_definition_stops_the_run_with_one_line_before_anything_is_built() {
    if !require_root("a_broken_definition_stops_the_run_with_one_line_before_anything_is_built") {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[start]\ncommand = \"r\"\n[rules]\nadd = [\"ctl {{ input.grop }}\"]\n",
            "field `rules.add[0]`: unknown placeholder `input.grop`",
        ),
        (
            "[rules]\nadd = [\"ctl\"]\n",
            "field `start.command`: missing",
        ),
        (
            "[start]\ncommand = \"r\"\n[rules.config]\npath = \"p\"\ntemplate_file = \"missing.j2\"\napply = \"a\"\n",
            "field `rules.config.template_file`: cannot read",
        ),
    ];
    for (i, (definition, expected)) in cases.iter().enumerate() {
        let def = dir.path().join(format!("broken{i}.toml"));
        std::fs::write(&def, definition).unwrap();
        let scenario = dir.path().join(format!("s{i}.toml"));
        std::fs::write(
            &scenario,
            format!(
                "name = \"broken\"\nsystems = [\"{}\"]\nstreams = [1]\n",
                def.display()
            ),
        )
        .unwrap();
        let out = dir.path().join(format!("out{i}"));
        let before = lab_namespaces();
        let run = std::process::Command::new(labctl())
            .arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{stderr}");
        assert!(stderr.contains(expected), "{stderr}");
        assert!(
            stderr.contains(&def.display().to_string()) && stderr.contains("system "),
            "names the file and the system: {stderr}"
        );
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!out.exists(), "nothing written for a broken definition");
        assert_eq!(lab_namespaces(), before, "no namespace built");
    }
}

#[test]
fn a_build_that_is_not_an_executable_stops_the_run_with_one_line() {
    if !require_root("a_build_that_is_not_an_executable_stops_the_run_with_one_line") {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let not_executable = dir.path().join("relay");
    std::fs::write(&not_executable, "not a program").unwrap();
    let scenario = dir.path().join("b.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"b\"\nsystems = [\"relay/pool@x\"]\nstreams = [1]\n[builds.x]\nrelay = \"{}\"\n",
            not_executable.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    for extra in [None, Some(format!("x={}", not_executable.display()))] {
        let mut cmd = std::process::Command::new(labctl());
        cmd.arg("run").arg(&scenario).arg("--out").arg(&out);
        if let Some(build) = &extra {
            cmd.arg("--build").arg(build);
        }
        let run = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(!run.status.success(), "{stderr}");
        assert!(stderr.contains("not an executable file"), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(!out.exists(), "nothing written");
    }
}

#[test]
fn a_system_that_dies_at_start_or_is_never_ready_fails_its_point_with_the_reason() {
    if !require_root(
        "a_system_that_dies_at_start_or_is_never_ready_fails_its_point_with_the_reason",
    ) {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[start]\ncommand = \"sh -c 'echo cannot bind the control socket >&2; exit 3'\"\n[rules]\nadd = [\"true\"]\n",
            "exited at start (exit status: 3): cannot bind the control socket",
        ),
        (
            "[start]\ncommand = \"sleep 30\"\n[ready]\ncommand = \"sh -c 'echo still starting; exit 1'\"\ndeadline_s = 1\n[rules]\nadd = [\"true\"]\n",
            "field `ready`: not ready within 1s (last check said: still starting)",
        ),
    ];
    for (i, (definition, expected)) in cases.iter().enumerate() {
        let def = dir.path().join(format!("failing{i}.toml"));
        std::fs::write(&def, definition).unwrap();
        let text = format!(
            "name = \"failing\"\nsystems = [\"{}\"]\nstreams = [1]\nrate_pps = [100.0]\nduration_s = 0.5\njoin_delay = false\n",
            def.display()
        );
        let scenario = Scenario::parse(&text, Path::new("failing.toml")).unwrap();
        let r = measure_all(&scenario);
        let reason = match &r.points[0].status {
            Status::Failed { reason } => reason.clone(),
            other => panic!("{other:?}"),
        };
        assert!(reason.contains(expected), "{reason}");
    }
}

#[test]
fn a_defined_relay_removes_and_re_adds_a_rule_at_run_time() {
    if !require_root("a_defined_relay_removes_and_re_adds_a_rule_at_run_time") {
        return;
    }
    let _serial = serial();
    use labctl::definition::Definition;
    use labctl::scenario::{System, SystemKind};
    use labctl::systems::{self, Layout, SystemSpec};
    let name = data("relay-defined.toml");
    let definition = std::sync::Arc::new(Definition::find(&name).expect("the test definition"));
    labctl::testing::with_topology(labctl::topology::Template::Chain, |topology| {
        let layout = Layout::new(SystemKind::Defined, topology, 3, 1);
        let mut spec = SystemSpec::of(System::defined(&name).kind);
        spec.definition = Some(definition.clone());
        let mut system = systems::start(&spec, &layout).expect("the relay starts");
        system.install(&layout, 0..3, false).expect("rules added");
        let joined = |system: &mut systems::Running| {
            system
                .capacity(&layout)
                .expect("capacity")
                .expect("a system with rules has a capacity")
                .accepted
        };
        assert_eq!(joined(&mut system), 3);
        // Removing the last rule leaves its group (the relay's `remove` by exact rule text).
        system.change_rule(&layout, 2, false).expect("rule removed");
        assert_eq!(joined(&mut system), 2, "group 3 left after its rule went");
        system
            .change_rule(&layout, 2, true)
            .expect("rule added again");
        assert_eq!(joined(&mut system), 3);
        assert_eq!(system.stop(), None, "no process died");
    });
}

#[test]
fn labctl_run_exits_4_when_a_point_failed_and_keeps_its_reason() {
    if !require_root("labctl_run_exits_4_when_a_point_failed_and_keeps_its_reason") {
        return;
    }
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let def = dir.path().join("dies.toml");
    std::fs::write(
        &def,
        "[start]\ncommand = \"sh -c 'echo no such device >&2; exit 2'\"\n[rules]\nadd = [\"true\"]\n",
    )
    .unwrap();
    let scenario = dir.path().join("dies-run.toml");
    std::fs::write(
        &scenario,
        format!(
            "name = \"dies-run\"\nsystems = [\"{}\"]\nstreams = [1]\nrate_pps = [100.0]\nduration_s = 0.5\njoin_delay = false\n",
            def.display()
        ),
    )
    .unwrap();
    let out = dir.path().join("out");
    let run = std::process::Command::new(labctl())
        .args(["run", "--quiet", "--out"])
        .arg(&out)
        .arg(&scenario)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("exited at start (exit status: 2): no such device"),
        "{stderr}"
    );
    let results = std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .map(|e| e.path().join("results.json"))
        .find(|p| p.is_file())
        .expect("results.json written");
    let r = Results::load(&results).unwrap();
    assert!(matches!(r.points[0].status, Status::Failed { .. }));
}
