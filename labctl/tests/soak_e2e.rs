//! A short `labctl soak` (root only; loud skip otherwise): rules churn every second and a relay
//! link flaps every 10 s while 100 streams flow. The relay must keep its memory and descriptors
//! and lose packets only inside the flap windows - and the flaps must really have cost packets
//! (else the check of "losses only inside windows" proved nothing). Needs the `relay` and
//! `loadgen` binaries next to `labctl` (as `./lab test` builds them).

use labctl::testing::require_root;
use std::process::Command;

#[test]
fn a_short_soak_keeps_memory_and_loses_only_in_flap_windows() {
    if !require_root("a_short_soak_keeps_memory_and_loses_only_in_flap_windows") {
        return;
    }
    let out = tempfile::tempdir().expect("output directory");
    let status = Command::new(env!("CARGO_BIN_EXE_labctl"))
        .args([
            "soak",
            "--seconds",
            "30",
            "--streams",
            "100",
            "--rate",
            "50",
            "--flap-every",
            "10",
        ])
        .arg("--out")
        .arg(out.path())
        .status()
        .expect("running labctl soak");
    let text = std::fs::read_to_string(out.path().join("soak.json")).expect("soak.json");
    let report: serde_json::Value = serde_json::from_str(&text).expect("soak.json is JSON");
    let verdict = &report["verdict"];
    assert!(status.success(), "{status}: {verdict}");
    assert_eq!(verdict["failures"], serde_json::json!([]));
    assert_eq!(
        report["flaps"].as_array().map(Vec::len),
        Some(2),
        "{report}"
    );
    assert!(report["rule_changes"].as_u64() >= Some(25), "{report}");
    assert!(
        verdict["lost_in_flaps"].as_u64() > Some(0),
        "the flaps cost no packet: the window check was not exercised"
    );
    assert_eq!(verdict["lost_outside_flaps"].as_u64(), Some(0));
    assert!(report["samples"].as_array().map_or(0, Vec::len) >= 25);
}
