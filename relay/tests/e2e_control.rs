//! End-to-end tests of the control plane's limits and of shutdown: the real `relay` binary in
//! a labctl `chain` topology. Root only (loud skip otherwise); every topology is torn down.
//!
//! Behaviour under test (relay/README.md, "Control socket"): idle clients never lock others
//! out - at the connection limit the connection idle longest is closed to make room, so a
//! normal `relay ctl list` still answers; a request must be complete within its deadline from
//! its first byte (a client trickling bytes is cut off, others are served meanwhile); SIGTERM
//! ends the relay within 2 s with status 0 even after its socket file was deleted.

use labctl::process::loadgen::ScratchDir;
use labctl::process::{SpawnOptions, Spawned, spawn_in_netns};
use labctl::testing::{require_root, with_topology};
use labctl::topology::{Template, Topology};
use serde_json::json;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Starts `relay run --control CONTROL` in the relay's namespace and waits until it answers.
fn start_relay(topo: &Topology, control: &Path) -> Spawned {
    let netns = &topo.relay_in().expect("relay namespace").netns;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relay"));
    cmd.arg("run").arg("--control").arg(control);
    let child = spawn_in_netns(
        netns,
        cmd,
        SpawnOptions::with_deadline(Duration::from_secs(120)),
    )
    .expect("spawn relay");
    let ready_by = Instant::now() + Duration::from_secs(20);
    while relay::control::request(control, &json!({"cmd":"list"}), Duration::from_secs(2))
        .map(|r| r["ok"] != true)
        .unwrap_or(true)
    {
        assert!(child.is_running(), "relay died: {}", child.stderr_text());
        assert!(
            Instant::now() < ready_by,
            "relay not ready: {}",
            child.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

/// `relay ctl --control CONTROL list`, killed after `limit`: (exit success, stdout, stderr).
fn ctl_list(control: &Path, limit: Duration) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_relay"))
        .args(["ctl", "--timeout", "5", "--control"])
        .arg(control)
        .arg("list")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn relay ctl");
    let end = Instant::now() + limit;
    while child.try_wait().expect("wait relay ctl").is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`relay ctl list` hung for {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("relay ctl output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// SIGTERM and wait: the relay must exit 0 within 2 s.
fn stop_within_2s(relay: &Spawned) {
    let started = Instant::now();
    let status = relay.stop(Duration::from_secs(6)).expect("stop relay");
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2) && status.success(),
        "relay took {took:?} to stop, exit {status}: {}",
        relay.stderr_text()
    );
}

/// 70 connections that never send anything (default limit 64), then `relay ctl list`: it
/// answers (an idle connection made room) instead of failing with a broken pipe.
#[test]
fn idle_connections_do_not_lock_out_ctl_list() {
    if !require_root("idle_connections_do_not_lock_out_ctl_list") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-idle").unwrap();
        let control = scratch.path("relay.sock");
        let relay = start_relay(topo, &control);
        let idle: Vec<UnixStream> = (0..70)
            .map(|n| UnixStream::connect(&control).unwrap_or_else(|e| panic!("connect {n}: {e}")))
            .collect();
        std::thread::sleep(Duration::from_millis(300));
        let (ok, stdout, stderr) = ctl_list(&control, Duration::from_secs(8));
        assert!(ok, "relay ctl list failed: {stderr}");
        assert!(
            stdout.contains("no rules") || stdout.contains("ID"),
            "{stdout}"
        );
        // The oldest idle connection was told why it was closed.
        idle[0]
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut notice = String::new();
        let read = BufReader::new(&idle[0]).read_line(&mut notice);
        assert!(read.is_ok(), "{read:?}: {}", relay.stderr_text());
        assert!(notice.contains("--control-max-connections"), "{notice}");
        drop(idle);
        stop_within_2s(&relay);
    });
}

/// A client sending a request one byte every 500 ms: others are served meanwhile, and the
/// relay closes it with an error once the request deadline (default 10 s) has passed, however
/// steadily bytes arrive.
#[test]
fn a_slow_partial_request_does_not_block_others_and_is_cut_off() {
    if !require_root("a_slow_partial_request_does_not_block_others_and_is_cut_off") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-slow").unwrap();
        let control = scratch.path("relay.sock");
        let relay = start_relay(topo, &control);
        let mut slow = UnixStream::connect(&control).unwrap();
        let reader = slow.try_clone().unwrap();
        let trickle = std::thread::spawn(move || {
            let started = Instant::now();
            let text = format!("{{\"cmd\":\"list\"{}}}", " ".repeat(60));
            for byte in text.bytes() {
                if slow.write_all(&[byte]).is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            started.elapsed()
        });
        std::thread::sleep(Duration::from_secs(1));
        let started = Instant::now();
        let (ok, _, stderr) = ctl_list(&control, Duration::from_secs(5));
        assert!(ok, "relay ctl list failed: {stderr}");
        assert!(started.elapsed() < Duration::from_secs(2));
        reader
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut reply = String::new();
        let _ = BufReader::new(&reader).read_line(&mut reply);
        let took = trickle.join().unwrap();
        assert!(
            reply.contains("\"ok\":false") && took < Duration::from_secs(13),
            "the trickling client was served for {took:?}; reply {reply:?}"
        );
        stop_within_2s(&relay);
    });
}

/// SIGTERM after the control socket file was deleted: exit 0 within 2 s.
#[test]
fn sigterm_after_the_socket_file_was_deleted_stops_within_2s() {
    if !require_root("sigterm_after_the_socket_file_was_deleted_stops_within_2s") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-sigterm").unwrap();
        let control: PathBuf = scratch.path("relay.sock");
        let relay = start_relay(topo, &control);
        std::fs::remove_file(&control).unwrap();
        stop_within_2s(&relay);
    });
}

/// SIGTERM after the socket file was replaced by a regular file: exit 0 within 2 s, and the
/// file that is not the relay's socket is left alone.
#[test]
fn sigterm_after_the_socket_file_was_replaced_stops_and_keeps_the_file() {
    if !require_root("sigterm_after_the_socket_file_was_replaced_stops_and_keeps_the_file") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-replaced").unwrap();
        let control: PathBuf = scratch.path("relay.sock");
        let relay = start_relay(topo, &control);
        std::fs::remove_file(&control).unwrap();
        std::fs::write(&control, b"not a socket").unwrap();
        stop_within_2s(&relay);
        assert_eq!(std::fs::read(&control).unwrap(), b"not a socket");
    });
}
