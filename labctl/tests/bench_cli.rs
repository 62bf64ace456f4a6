//! `labctl` command-line behaviour on bad input: one-line error, non-zero exit, nothing left
//! behind. The topology-free cases run as any user; the rest need root (loud skip otherwise).

use labctl::testing::lab_namespaces;
use std::process::Command;

fn labctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(args)
        .env_remove("MCAST_LAB_LOADGEN")
        .output()
        .expect("run labctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn unknown_template_lists_the_valid_ones() {
    for bad in [
        &["topo", "up", "star"][..],
        &["topo", "up", "fanout", "99"][..],
    ] {
        let (code, stdout, stderr) = labctl(bad);
        assert_eq!(code, 1, "{bad:?}");
        assert!(stdout.is_empty());
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(
            stderr.contains("direct, chain, snooping, fanout K"),
            "{stderr}"
        );
    }
}

#[test]
fn repeats_out_of_range_are_refused_before_anything_runs() {
    for bad in ["0", "101", "many"] {
        let (code, _, stderr) = labctl(&["run", "quick", "--repeats", bad]);
        assert_eq!(code, 2, "--repeats {bad}: {stderr}");
        assert!(stderr.contains("--repeats"), "{stderr}");
    }
}

#[test]
fn bad_run_name_is_refused_in_one_line() {
    let (code, _, stderr) = labctl(&["topo", "up", "direct", "--name", "Bad_Name"]);
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("1 to 6 characters"), "{stderr}");
}

#[test]
fn missing_loadgen_fails_before_building_anything() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED (needs root): missing_loadgen_fails_before_building_anything");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args(["demo", "--seconds", "0.5"])
        .env("MCAST_LAB_LOADGEN", "/nonexistent/loadgen")
        .output()
        .expect("run labctl");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("MCAST_LAB_LOADGEN"), "{stderr}");
}

#[test]
fn topo_up_list_down_by_name() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("SKIPPED (needs root): topo_up_list_down_by_name");
        return;
    }
    let name = format!("y{:05x}", rand::random::<u32>() & 0xfffff);
    let (code, stdout, stderr) = labctl(&["topo", "up", "fanout", "2", "--name", &name]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains(&format!("mlab-{name}-relay")), "{stdout}");
    assert!(stdout.contains("198.19.1.2"), "{stdout}");
    let (code, _, stderr) = labctl(&["topo", "up", "direct", "--name", &name]);
    assert_eq!(code, 1);
    assert!(stderr.contains("already exists"), "{stderr}");
    let (_, list, _) = labctl(&["topo", "list"]);
    assert!(
        list.lines()
            .any(|l| l.starts_with(&name) && l.contains("fanout:2")),
        "{list}"
    );
    // Listing must not disturb it (it reads the state file, it does not own the topology).
    assert_eq!(
        lab_namespaces()
            .iter()
            .filter(|n| n.starts_with(&format!("mlab-{name}-")))
            .count(),
        3
    );
    let (code, _, stderr) = labctl(&["topo", "down", &name]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        !lab_namespaces()
            .iter()
            .any(|n| n.starts_with(&format!("mlab-{name}-")))
    );
    let (code, _, stderr) = labctl(&["topo", "down", &name]);
    assert_eq!(code, 1, "a second down must fail: {stderr}");
}
