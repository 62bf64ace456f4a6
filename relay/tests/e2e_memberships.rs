//! End-to-end: an any-source rule and a source-specific rule on the same group and input
//! interface. The kernel refuses to mix IP_ADD_MEMBERSHIP and IP_ADD_SOURCE_MEMBERSHIP of one
//! group on one socket (EADDRINUSE or EINVAL, by order); under `pool` the relay places them on
//! two helper sockets and both rules forward, under `single` the second add is refused in plain
//! words. Root only (loud skip otherwise).

mod support;

use labctl::process::loadgen::ScratchDir;
use labctl::testing::{require_root, with_topology};
use labctl::topology::{Template, Topology};
use serde_json::json;
use std::net::Ipv4Addr;
use std::time::Duration;
use support::{RelayProcess, rule_stats, send_from, sink_spec};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
const ASM_OUT: Ipv4Addr = Ipv4Addr::new(239, 2, 0, 1);
const SSM_OUT: Ipv4Addr = Ipv4Addr::new(239, 2, 0, 2);
const COUNT: u64 = 500;

/// The two rules: (any-source, source-specific from the generator's address).
fn rules(topo: &Topology) -> (String, String) {
    let rin = &topo.relay_in().unwrap().ifname;
    let rout = &topo.relay_out()[0].ifname;
    let source = topo.generator().addr;
    (
        format!("{rin}:{GROUP}:5000 -> {rout}:{ASM_OUT}:5000"),
        format!("{rin}:{GROUP}:5000@{source} -> {rout}:{SSM_OUT}:5000"),
    )
}

/// Another source address of the lab's range, not the generator's.
fn other_source(topo: &Topology) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(topo.generator().addr) + 50)
}

#[test]
fn pool_joins_any_source_then_source_specific_and_both_forward() {
    if !require_root("pool_joins_any_source_then_source_specific_and_both_forward") {
        return;
    }
    pool_case("asm-first", true);
}

#[test]
fn pool_joins_source_specific_then_any_source_and_both_forward() {
    if !require_root("pool_joins_source_specific_then_any_source_and_both_forward") {
        return;
    }
    pool_case("ssm-first", false);
}

fn pool_case(label: &str, any_source_first: bool) {
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new(&format!("relay-e2e-mix-{label}")).unwrap();
        let relay = RelayProcess::start(
            topo,
            scratch.path("relay.sock"),
            &["--membership".into(), "pool".into()],
        );
        let (asm, ssm) = rules(topo);
        let (first, second) = if any_source_first {
            (&asm, &ssm)
        } else {
            (&ssm, &asm)
        };
        let a = relay.add(first);
        assert_eq!(a["ok"], true, "{first}: {a}");
        let b = relay.add(second);
        assert_eq!(b["ok"], true, "{second} after {first}: {b}");
        let (asm_id, ssm_id) = if any_source_first {
            (a["id"].clone(), b["id"].clone())
        } else {
            (b["id"].clone(), a["id"].clone())
        };

        let memberships = relay.ctl(json!({"cmd": "memberships"}));
        let sockets = memberships["interfaces"][0]["sockets"].as_array().unwrap();
        assert_eq!(
            sockets.len(),
            2,
            "one helper socket per kind: {memberships}"
        );
        assert!(
            memberships["interfaces"][0]["join_failures"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{memberships}"
        );

        let sink = sink_spec(topo, vec![ASM_OUT, SSM_OUT])
            .start(&scratch)
            .unwrap();
        let generator = topo.generator().addr;
        assert_eq!(
            send_from(topo, &scratch, generator, GROUP, 1000.0, COUNT),
            COUNT
        );
        assert_eq!(
            send_from(topo, &scratch, other_source(topo), GROUP, 1000.0, COUNT),
            COUNT
        );
        let summary = sink.finish(Duration::from_secs(15)).unwrap();
        assert!(
            summary.silent_groups.is_empty(),
            "{:?}",
            summary.silent_groups
        );
        assert_eq!(summary.totals.received, 2 * COUNT, "{:?}", summary.totals);
        assert_eq!(summary.totals.duplicates, 0);

        let stats = relay.ctl(json!({"cmd": "stats"}));
        for id in [&asm_id, &ssm_id] {
            let rule = rule_stats(&stats, id);
            assert_eq!(rule["rx_packets"], COUNT, "{rule}");
            assert_eq!(rule["outputs"][0]["tx_packets"], COUNT, "{rule}");
        }
        relay.stop();
    });
}

#[test]
fn single_refuses_mixing_any_source_and_source_specific_in_plain_words() {
    if !require_root("single_refuses_mixing_any_source_and_source_specific_in_plain_words") {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-mix-single").unwrap();
        let relay = RelayProcess::start(
            topo,
            scratch.path("relay.sock"),
            &["--membership".into(), "single".into()],
        );
        let (asm, ssm) = rules(topo);
        let rin = &topo.relay_in().unwrap().ifname;
        for (first, second, existing, wanted) in [
            (&asm, &ssm, "any-source", "source-specific"),
            (&ssm, &asm, "source-specific", "any-source"),
        ] {
            let added = relay.add(first);
            assert_eq!(added["ok"], true, "{first}: {added}");
            let refused = relay.add(second);
            assert_eq!(refused["ok"], false, "{second} after {first}: {refused}");
            let text = refused["error"].as_str().unwrap_or_default();
            for needle in [
                format!("group {GROUP} on {rin} is already joined {existing}"),
                "this interface's only helper socket".to_string(),
                format!("the `single` strategy cannot also join it {wanted}"),
                "use `pool`".to_string(),
            ] {
                assert!(text.contains(&needle), "{needle:?} missing in {text}");
            }
            let list = relay.ctl(json!({"cmd": "list"}));
            assert_eq!(list["rules"].as_array().unwrap().len(), 1, "{list}");
            let removed = relay.ctl(json!({"cmd": "remove", "id": added["id"]}));
            assert_eq!(removed["ok"], true, "{removed}");
        }
        relay.stop();
    });
}
