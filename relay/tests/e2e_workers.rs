//! End-to-end: workers never die silently. With the hidden test fault `--fail-worker-after N`
//! a worker panics after N frames; the supervisor must restart it with a fresh socket (traffic
//! flows again, `stats` shows the restart), and when the fault fires more often than the
//! restart budget allows, the relay must exit non-zero with a clear message instead of running
//! on without the worker. Root only (loud skip otherwise).

mod support;

use labctl::process::loadgen::ScratchDir;
use labctl::testing::{require_root, with_topology};
use labctl::topology::Template;
use serde_json::{Value, json};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::{RelayProcess, rule_stats, send_from, sink_spec};

const INPUT: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
const OUTPUT: Ipv4Addr = Ipv4Addr::new(239, 2, 0, 1);

/// Restarts summed over the workers, and whether every worker is `running`.
fn restarts_and_all_running(stats: &Value) -> (u64, bool) {
    let workers = stats["workers"].as_array().cloned().unwrap_or_default();
    let restarts = workers.iter().filter_map(|w| w["restarts"].as_u64()).sum();
    let running = !workers.is_empty() && workers.iter().all(|w| w["state"] == "running");
    (restarts, running)
}

/// Polls `stats` until the workers show `restarts` restarts in all and all run (up to 10 s).
fn wait_for_restarts(relay: &RelayProcess, restarts: u64) -> Value {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let stats = relay.ctl(json!({"cmd": "stats"}));
        if restarts_and_all_running(&stats) == (restarts, true) {
            return stats;
        }
        assert!(
            relay.child.is_running(),
            "relay died: {}",
            relay.child.stderr_text()
        );
        assert!(Instant::now() < end, "no restart seen: {stats}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `relay ctl --control PATH stats` (the table).
fn stats_table(control: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_relay"))
        .arg("ctl")
        .arg("--control")
        .arg(control)
        .arg("stats")
        .output()
        .expect("relay ctl stats");
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_failed_worker_is_restarted_and_traffic_keeps_flowing() {
    if !require_root("a_failed_worker_is_restarted_and_traffic_keeps_flowing") {
        return;
    }
    restart_case("ring", &[]);
}

#[test]
fn a_failed_worker_of_two_is_restarted_into_the_fanout_group() {
    if !require_root("a_failed_worker_of_two_is_restarted_into_the_fanout_group") {
        return;
    }
    // The restarted worker re-joins the other worker's fanout group: still exactly once.
    restart_case("uring2", &["--workers", "2", "--io", "uring"]);
}

fn restart_case(label: &str, extra: &[&str]) {
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new(&format!("relay-e2e-worker-restart-{label}")).unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let rule = format!("{rin}:{INPUT}:5000 -> {rout}:{OUTPUT}:5000");
        let mut args = vec![
            "--rule".to_string(),
            rule,
            "--fail-worker-after".into(),
            "300".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let relay = RelayProcess::start(topo, scratch.path("relay.sock"), &args);
        let source = topo.generator().addr;
        // The worker fails during this burst (after 300 frames) and is restarted.
        assert_eq!(send_from(topo, &scratch, source, INPUT, 1000.0, 1000), 1000);
        let stats = wait_for_restarts(&relay, 1);
        let before = rule_stats(&stats, &json!(1));
        let rx_before = before["rx_packets"].as_u64().unwrap();
        assert!(rx_before >= 300, "{before}");
        let table = stats_table(&relay.control);
        assert!(table.contains(": running, restarts 1; rx"), "{table}");

        // After the restart: a second burst is forwarded in full by the new worker.
        let sink = sink_spec(topo, vec![OUTPUT]).start(&scratch).unwrap();
        assert_eq!(send_from(topo, &scratch, source, INPUT, 1000.0, 1000), 1000);
        let summary = sink.finish(Duration::from_secs(15)).unwrap();
        assert_eq!(summary.totals.received, 1000, "{:?}", summary.totals);
        assert_eq!(summary.totals.duplicates, 0);
        let stats = relay.ctl(json!({"cmd": "stats"}));
        let after = rule_stats(&stats, &json!(1));
        assert_eq!(
            after["rx_packets"].as_u64().unwrap() - rx_before,
            1000,
            "{after}"
        );
        assert_eq!(restarts_and_all_running(&stats), (1, true), "{stats}");
        relay.stop();
    });
}

#[test]
fn the_relay_exits_non_zero_when_a_worker_cannot_be_kept_alive() {
    if !require_root("the_relay_exits_non_zero_when_a_worker_cannot_be_kept_alive") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-worker-budget").unwrap();
        let (rin, rout) = (
            &topo.relay_in().unwrap().ifname,
            &topo.relay_out()[0].ifname,
        );
        let rule = format!("{rin}:{INPUT}:5000 -> {rout}:{OUTPUT}:5000");
        let control = scratch.path("relay.sock");
        // The fault fires after every 50 frames, more often than the budget (5 per minute).
        let relay = RelayProcess::start(
            topo,
            control.clone(),
            &[
                "--rule".into(),
                rule,
                "--fail-worker-after".into(),
                "50".into(),
                "--fail-worker-times".into(),
                "100".into(),
            ],
        );
        let source = topo.generator().addr;
        // 6 s of traffic: six failures and five back-offs (0.1 + 0.2 + ... + 1.6 s) fit in it.
        send_from(topo, &scratch, source, INPUT, 1000.0, 6000);
        let status = relay
            .wait_exit(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("relay still running: {}", relay.child.stderr_text()));
        let stderr = relay.child.stderr_text();
        assert_eq!(status.code(), Some(1), "{status}: {stderr}");
        for needle in [
            "worker 0 cannot be kept alive",
            "after 5 restart(s) within 60 s (the restart budget)",
            "test fault --fail-worker-after 50",
            "rather than run on with fewer workers",
        ] {
            assert!(stderr.contains(needle), "{needle:?} missing in {stderr}");
        }
        assert!(!control.exists(), "control socket left behind");
    });
}
