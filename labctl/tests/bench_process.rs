//! Process API tests (root only; loud skip otherwise): children run inside the namespace,
//! output is captured, stop escalates to SIGKILL and reaps, deadlines are enforced.

use labctl::process::{SpawnOptions, spawn_in_netns};
use labctl::testing::{namespaces_of, require_root};
use labctl::topology::{Template, Topology, TopologyOptions};
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn child_runs_in_the_namespace_and_output_is_captured() {
    if !require_root("child_runs_in_the_namespace_and_output_is_captured") {
        return;
    }
    let topo = Topology::up(&TopologyOptions::new(Template::Direct)).expect("up");
    let ns = topo.generator().netns.clone();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", "cat /proc/net/dev; echo oops >&2; exec sleep 30"]);
    let child = spawn_in_netns(&ns, cmd, SpawnOptions::default()).expect("spawn");
    let pid = child.pid();
    let ns_inode = std::fs::metadata(format!("/run/netns/{ns}")).unwrap().ino();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !(child.stdout_text().contains(&topo.generator().ifname)
        && child.stderr_text().contains("oops"))
    {
        assert!(
            Instant::now() < deadline,
            "output: {:?} {:?}",
            child.stdout_text(),
            child.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let child_inode = std::fs::metadata(format!("/proc/{pid}/ns/net"))
        .unwrap()
        .ino();
    assert_eq!(child_inode, ns_inode, "the child must live in {ns}");
    assert!(child.is_running());
    let status = child.stop(Duration::from_secs(2)).expect("stop");
    assert!(!status.success());
    assert!(!child.is_running());
    // Reaped: the PID is gone (not a zombie).
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists() || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat.contains(") Z")
        }
    );
    drop(child);
    let id = topo.run_id().to_string();
    topo.down().expect("down");
    assert!(
        namespaces_of(&id).is_empty(),
        "left behind: {:?}",
        namespaces_of(&id)
    );
}

#[test]
fn stop_escalates_to_sigkill_and_deadline_is_enforced() {
    if !require_root("stop_escalates_to_sigkill_and_deadline_is_enforced") {
        return;
    }
    let topo = Topology::up(&TopologyOptions::new(Template::Direct)).expect("up");
    let ns = topo.generator().netns.clone();
    // Ignores SIGTERM: only SIGKILL ends it.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "trap '' TERM; echo ready; while :; do sleep 0.05; done",
    ]);
    let child = spawn_in_netns(&ns, cmd, SpawnOptions::default()).expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !child.stdout_text().contains("ready") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let status = child.stop(Duration::from_millis(300)).expect("stop");
    assert!(started.elapsed() >= Duration::from_millis(300));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL));

    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let mut opts = SpawnOptions::with_deadline(Duration::from_millis(200));
    opts.grace = Duration::from_millis(200);
    let child = spawn_in_netns(&ns, cmd, opts).expect("spawn");
    let status = child
        .wait_timeout(Duration::from_secs(5))
        .expect("wait")
        .expect("deadline must stop it");
    assert!(!status.success());
    assert!(child.deadline_expired());
    let id = topo.run_id().to_string();
    topo.down().expect("down");
    assert!(
        namespaces_of(&id).is_empty(),
        "left behind: {:?}",
        namespaces_of(&id)
    );
}

#[test]
fn spawning_into_a_missing_namespace_fails_cleanly() {
    let err = spawn_in_netns(
        "mlab-nosuch-gen",
        Command::new("true"),
        SpawnOptions::default(),
    )
    .expect_err("missing namespace")
    .to_string();
    assert!(err.contains("mlab-nosuch-gen"), "{err}");
}

#[test]
fn clean_removes_a_crashed_runs_namespaces_and_processes() {
    if !require_root("clean_removes_a_crashed_runs_namespaces_and_processes") {
        return;
    }
    let topo = Topology::up(&TopologyOptions::new(Template::Chain)).expect("up");
    let id = topo.run_id().to_string();
    let relay = topo.relay_in().expect("chain has a relay").netns.clone();
    let mut cmd = Command::new("sleep");
    cmd.arg("60");
    let child = spawn_in_netns(&relay, cmd, SpawnOptions::default()).expect("spawn");
    // Simulate a crash: the topology is neither torn down nor dropped.
    topo.persist();
    let report = labctl::clean::clean_run(&id).expect("clean");
    assert_eq!(report.namespaces.len(), 3, "{report:?}");
    assert!(report.processes_stopped >= 1, "{report:?}");
    assert!(report.errors.is_empty(), "{report:?}");
    let status = child
        .wait_timeout(Duration::from_secs(3))
        .expect("wait")
        .expect("clean must stop the stray process");
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    let left: Vec<String> = std::fs::read_dir("/run/netns")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("mlab-{id}-")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        labctl::topology::Topology::attach(&id).is_err(),
        "the state file must be gone too"
    );
}
