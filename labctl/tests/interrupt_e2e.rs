//! Interrupting `labctl run` at any moment leaves nothing behind (root only; loud skip
//! otherwise): SIGINT during topology set-up and in the middle of a sweep, and SIGKILL followed
//! by `labctl clean`. "Nothing" is checked three ways: no lab namespace that was not there
//! before, no scratch directory in the run's private `$TMPDIR`, and no process whose command line
//! names that directory (the relay's control socket lives there). They need the `relay` and
//! `loadgen` binaries next to `labctl` (the workspace's `cargo test --release`, as `./lab test`).

use labctl::results::Results;
use labctl::testing::{lab_namespaces, require_root};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The tests compare the lab's namespaces before and after: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const SCENARIO: &str = r#"name = "interrupt"
systems = ["relay/pool"]
streams = [10]
rate_pps = [200.0]
duration_s = 1.0
repeats = 8
"#;

/// A `labctl run` with its own `$TMPDIR` and output directory.
struct Run {
    child: Child,
    tmp: tempfile::TempDir,
    out: PathBuf,
    namespaces_before: BTreeSet<String>,
}

impl Run {
    fn start() -> Run {
        let tmp = tempfile::Builder::new()
            .prefix("mlt-")
            .tempdir()
            .expect("private TMPDIR");
        let scenario = tmp.path().join("interrupt.toml");
        std::fs::write(&scenario, SCENARIO).expect("scenario file");
        let out = tmp.path().join("out");
        let namespaces_before = lab_namespaces();
        let child = Command::new(env!("CARGO_BIN_EXE_labctl"))
            .arg("run")
            .arg(&scenario)
            .arg("--out")
            .arg(&out)
            .arg("--quiet")
            .env("TMPDIR", tmp.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting labctl");
        Run {
            child,
            tmp,
            out,
            namespaces_before,
        }
    }

    fn signal(&self, signal: Signal) {
        kill(Pid::from_raw(self.child.id() as i32), signal).expect("signalling labctl");
    }

    /// Waits for labctl to exit; panics (after killing it) past `limit`.
    fn wait(&mut self, limit: Duration) -> ExitStatus {
        let end = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for labctl") {
                return status;
            }
            if Instant::now() > end {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("labctl did not exit within {limit:?} of the signal");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until `ready` holds, checking every 50 ms, for at most `limit`.
    fn wait_until(&mut self, limit: Duration, what: &str, ready: impl Fn(&Run) -> bool) {
        let end = Instant::now() + limit;
        while !ready(self) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("labctl exited ({status}) before {what}");
            }
            assert!(Instant::now() < end, "no {what} within {limit:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn new_namespaces(&self) -> Vec<String> {
        lab_namespaces()
            .difference(&self.namespaces_before)
            .cloned()
            .collect()
    }

    fn results_path(&self) -> Option<PathBuf> {
        let dir = std::fs::read_dir(&self.out).ok()?.flatten().next()?.path();
        Some(dir.join("results.json"))
    }

    fn finished_points(&self) -> usize {
        self.results_path()
            .and_then(|p| Results::load(&p).ok())
            .map_or(0, |r| r.points.len())
    }

    fn scratch_dirs(&self) -> Vec<String> {
        std::fs::read_dir(self.tmp.path())
            .map(|d| {
                d.flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.contains("mlab-"))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Asserts that the run left no namespace, scratch directory or process behind.
    fn assert_nothing_left(&self) {
        assert_eq!(
            self.new_namespaces(),
            Vec::<String>::new(),
            "namespaces left"
        );
        assert_eq!(
            self.scratch_dirs(),
            Vec::<String>::new(),
            "scratch dirs left"
        );
        let labctl = self.child.id() as i32;
        let stray: Vec<(i32, String)> = processes_naming(self.tmp.path())
            .into_iter()
            .filter(|(pid, _)| *pid != labctl)
            .collect();
        assert!(stray.is_empty(), "processes left: {stray:?}");
    }
}

/// PIDs and command lines of processes whose command line contains `dir`.
fn processes_naming(dir: &Path) -> Vec<(i32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let own = std::process::id() as i32;
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| pid != own)
        .filter_map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let line = String::from_utf8_lossy(&raw).replace('\0', " ");
            line.contains(&needle).then_some((pid, line))
        })
        .collect()
}

#[test]
fn sigint_during_topology_set_up_leaves_nothing_behind() {
    if !require_root("sigint_during_topology_set_up_leaves_nothing_behind") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut run = Run::start();
    // The first namespace of the first topology: set-up is under way.
    run.wait_until(Duration::from_secs(60), "lab namespace", |r| {
        !r.new_namespaces().is_empty()
    });
    run.signal(Signal::SIGINT);
    let status = run.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{status}");
    run.assert_nothing_left();
}

#[test]
fn sigint_mid_sweep_keeps_finished_points_and_leaves_nothing_behind() {
    if !require_root("sigint_mid_sweep_keeps_finished_points_and_leaves_nothing_behind") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut run = Run::start();
    run.wait_until(Duration::from_secs(120), "finished point", |r| {
        r.finished_points() >= 1
    });
    // Into the next point: its topology and relay are up.
    run.wait_until(Duration::from_secs(30), "next topology", |r| {
        !r.new_namespaces().is_empty()
    });
    run.signal(Signal::SIGINT);
    let status = run.wait(Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "{status}");
    let results = Results::load(&run.results_path().expect("results.json"))
        .expect("results.json loads after the interrupt");
    assert!(results.interrupted, "results.json is marked interrupted");
    assert!(!results.points.is_empty(), "finished points are kept");
    run.assert_nothing_left();
}

#[test]
fn sigkill_then_clean_leaves_nothing_behind() {
    if !require_root("sigkill_then_clean_leaves_nothing_behind") {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let mut run = Run::start();
    // A point in flight: a relay running with its control socket in a scratch directory.
    run.wait_until(Duration::from_secs(120), "running relay", |r| {
        processes_naming(r.tmp.path())
            .iter()
            .any(|(_, line)| line.contains("control.sock"))
    });
    run.signal(Signal::SIGKILL);
    run.wait(Duration::from_secs(10));
    let run_ids: BTreeSet<String> = run
        .new_namespaces()
        .iter()
        .filter_map(|n| n.split('-').nth(1).map(str::to_owned))
        .collect();
    assert!(!run_ids.is_empty(), "SIGKILL left no namespace to clean");
    for id in &run_ids {
        let status = Command::new(env!("CARGO_BIN_EXE_labctl"))
            .args(["clean", "--run", id])
            .env("TMPDIR", run.tmp.path())
            .stdout(Stdio::null())
            .status()
            .expect("running labctl clean");
        assert!(status.success(), "labctl clean --run {id}: {status}");
    }
    run.assert_nothing_left();
}
