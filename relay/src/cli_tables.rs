//! Human-readable tables for `relay ctl` replies (the `--json` flag prints the raw reply).

use serde_json::Value;
use std::fmt::Write;

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], |a| a.as_slice())
}

/// A rule's state: `active`, or `waiting: eth1 (missing), ...`.
fn state(rule: &Value) -> String {
    let state = rule["state"].as_str().unwrap_or("?");
    let waiting: Vec<&str> = items(&rule["waiting_for"])
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if waiting.is_empty() {
        state.to_string()
    } else {
        format!("{state}: {}", waiting.join(", "))
    }
}

pub fn rules(reply: &Value) -> String {
    let mut out = String::new();
    let rules = items(&reply["rules"]);
    if rules.is_empty() {
        out.push_str("no rules\n");
    }
    let _ = writeln!(out, "{:>5}  {:<8} RULE", "ID", "STATE");
    for rule in rules {
        let _ = writeln!(
            out,
            "{:>5}  {:<8} {}",
            u(&rule["id"]),
            rule["state"].as_str().unwrap_or("?"),
            rule["rule"].as_str().unwrap_or("")
        );
        if !items(&rule["waiting_for"]).is_empty() {
            let _ = writeln!(out, "{:>5}  {:<8} {}", "", "", state(rule));
        }
    }
    out
}

pub fn stats(reply: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>5}  {:<44} {:>12} {:>14} {:>12}  STATE",
        "ID", "INPUT / OUTPUT", "PACKETS", "BYTES", "TX_ERRORS"
    );
    for rule in items(&reply["rules"]) {
        let text = rule["rule"].as_str().unwrap_or("");
        let input = text.split("->").next().unwrap_or("").trim();
        let _ = writeln!(
            out,
            "{:>5}  {:<44} {:>12} {:>14} {:>12}  {}",
            u(&rule["id"]),
            input,
            u(&rule["rx_packets"]),
            u(&rule["rx_bytes"]),
            "",
            state(rule)
        );
        for output in items(&rule["outputs"]) {
            let _ = writeln!(
                out,
                "{:>5}  -> {:<41} {:>12} {:>14} {:>12}",
                "",
                output["output"].as_str().unwrap_or(""),
                u(&output["tx_packets"]),
                u(&output["tx_bytes"]),
                u(&output["tx_errors"])
            );
        }
    }
    push_workers(&mut out, reply);
    push_drops(&mut out, reply);
    push_input_filter(&mut out, reply);
    push_tc_dataplane(&mut out, reply);
    push_timing(&mut out, reply);
    out
}

fn push_workers(out: &mut String, reply: &Value) {
    out.push_str("\nworkers:\n");
    for worker in items(&reply["workers"]) {
        let _ = writeln!(
            out,
            "  #{}: {}, restarts {}; rx {} packets ({} bytes), tx {} ({} by transmit ring), batches {}, ignored own egress {}, rx errors {}, kernel socket drops {}",
            u(&worker["worker"]),
            worker["state"].as_str().unwrap_or("?"),
            u(&worker["restarts"]),
            u(&worker["rx_packets"]),
            u(&worker["rx_bytes"]),
            u(&worker["tx_packets"]),
            u(&worker["tx_ring_packets"]),
            u(&worker["batches"]),
            u(&worker["ignored_outgoing"]),
            u(&worker["rx_errors"]),
            u(&worker["socket_drops"])
        );
    }
}

fn push_drops(out: &mut String, reply: &Value) {
    out.push_str("\ndrops:\n");
    if let Some(drops) = reply["drops"].as_object() {
        for (reason, count) in drops {
            let _ = writeln!(out, "  {reason:<20} {}", u(count));
        }
    }
}

/// `--input-filter`'s line, if the relay runs with it.
fn push_input_filter(out: &mut String, reply: &Value) {
    let filter = &reply["input_filter"];
    if filter.is_object() {
        let _ = writeln!(
            out,
            "\ninput filter: {} groups kept out of the host stack on {} interfaces, {} kernel refusals",
            u(&filter["groups"]),
            u(&filter["interfaces"]),
            u(&filter["errors"])
        );
    }
}

fn push_tc_dataplane(out: &mut String, reply: &Value) {
    let tc = &reply["tc_dataplane"];
    if tc.is_object() {
        let _ = writeln!(
            out,
            "\ntc dataplane: {} rules on {} interfaces and {} by the workers ({}); {} datagrams \
             in, {} TTL expired, {} copies sent, {} refused; {} kernel refusals",
            u(&tc["rules"]),
            u(&tc["interfaces"]),
            u(&tc["worker_rules"]),
            if tc["workers_receive"] == Value::Bool(true) {
                "receiving"
            } else {
                "idle"
            },
            u(&tc["rx_packets"]),
            u(&tc["ttl_expired"]),
            u(&tc["sent"]),
            u(&tc["send_failed"]),
            u(&tc["errors"])
        );
    }
}

fn push_timing(out: &mut String, reply: &Value) {
    if let Some(stages) = reply["timing"].as_array() {
        let _ = writeln!(
            out,
            "\ntiming (ns): {:<12} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
            "STAGE", "SAMPLES", "P50", "P90", "P99", "P99.9", "MAX"
        );
        for stage in stages {
            let _ = writeln!(
                out,
                "             {:<12} {:>10} {:>8} {:>8} {:>8} {:>8} {:>10}",
                stage["stage"].as_str().unwrap_or(""),
                u(&stage["samples"]),
                ns_or_mean(stage, "p50"),
                percentile(&stage["p90"]),
                percentile(&stage["p99"]),
                percentile(&stage["p999"]),
                percentile(&stage["max"])
            );
        }
    }
}

/// A percentile in ns, or `-` for a stage timed as a sum (the tc data plane's: mean only).
fn percentile(v: &Value) -> String {
    v.as_u64()
        .map_or_else(|| "-".to_owned(), |ns| ns.to_string())
}

/// The p50 column: the percentile, or for a stage with its mean only `mean N`.
fn ns_or_mean(stage: &Value, key: &str) -> String {
    match (stage[key].as_u64(), stage["mean"].as_f64()) {
        (Some(ns), _) => ns.to_string(),
        (None, Some(mean)) => format!("mean {mean:.0}"),
        (None, None) => "-".to_owned(),
    }
}

pub fn memberships(reply: &Value) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "strategy {}; per socket: net.ipv4.igmp_max_memberships = {}, net.core.optmem_max = {} -> capacity {}",
        reply["strategy"].as_str().unwrap_or("?"),
        u(&reply["limits"]["igmp_max_memberships"]),
        u(&reply["limits"]["optmem_max"]),
        u(&reply["capacity_per_socket"])
    );
    let interfaces = items(&reply["interfaces"]);
    if interfaces.is_empty() {
        out.push_str("no memberships\n");
    }
    for interface in interfaces {
        let sockets = items(&interface["sockets"]);
        let total: usize = sockets.iter().map(|s| items(&s["groups"]).len()).sum();
        let _ = writeln!(
            out,
            "{}: {} helper socket(s), {} group(s)",
            interface["interface"].as_str().unwrap_or("?"),
            sockets.len(),
            total
        );
        for socket in sockets {
            let groups: Vec<String> = items(&socket["groups"])
                .iter()
                .map(|g| {
                    let mut text = g["group"].as_str().unwrap_or("?").to_string();
                    if let Some(source) = g["source"].as_str() {
                        text.push('@');
                        text.push_str(source);
                    }
                    if u(&g["rules"]) > 1 {
                        let _ = write!(text, "(x{})", u(&g["rules"]));
                    }
                    text
                })
                .collect();
            let _ = writeln!(
                out,
                "  socket #{} ({}/{}): {}",
                u(&socket["socket"]),
                groups.len(),
                u(&socket["capacity"]),
                groups.join(" ")
            );
        }
        for failure in items(&interface["join_failures"]) {
            let _ = writeln!(
                out,
                "  join failed: {}",
                failure["error"].as_str().unwrap_or("?")
            );
        }
    }
    out
}

#[cfg(test)]
mod worker_table_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_lines_lead_with_state_and_restarts() {
        let reply = json!({"rules": [], "workers": [
            {"worker": 0, "state": "running", "restarts": 1, "rx_packets": 5},
            {"worker": 1, "state": "failed", "restarts": 5},
        ]});
        let table = stats(&reply);
        assert!(
            table.contains("#0: running, restarts 1; rx 5 packets"),
            "{table}"
        );
        assert!(
            table.contains("#1: failed, restarts 5; rx 0 packets"),
            "{table}"
        );
        assert!(!table.contains("input filter"), "only with --input-filter");
    }

    #[test]
    fn the_tc_dataplane_has_its_line() {
        let text = stats(&serde_json::json!({"rules": [], "workers": [], "drops": {},
            "tc_dataplane": {"rules": 3, "interfaces": 1, "errors": 0, "rx_packets": 10,
            "ttl_expired": 1, "sent": 27, "send_failed": 2, "worker_rules": 1,
            "workers_receive": true}}));
        assert!(
            text.contains("tc dataplane: 3 rules on 1 interfaces and 1 by the workers (receiving); 10 datagrams in, 1 TTL expired, 27 copies sent, 2 refused; 0 kernel refusals"),
            "{text}"
        );
    }

    #[test]
    fn timing_shows_percentiles_or_a_stage_s_mean_only() {
        let text = stats(&json!({"rules": [], "workers": [], "timing": [
            {"stage": "parse", "samples": 10, "p50": 40, "p90": 50, "p99": 90, "p999": 99,
             "max": 120, "mean": 42.0},
            {"stage": "tc_fanout", "samples": 7, "mean": 2400.4},
        ]}));
        let line = |stage: &str| {
            text.lines()
                .find(|l| l.contains(stage))
                .unwrap_or_default()
                .split_whitespace()
                .collect::<Vec<_>>()
        };
        assert_eq!(
            line("parse"),
            ["parse", "10", "40", "50", "90", "99", "120"]
        );
        assert_eq!(
            line("tc_fanout"),
            ["tc_fanout", "7", "mean", "2400", "-", "-", "-", "-"],
            "{text}"
        );
    }

    #[test]
    fn the_input_filter_has_its_line() {
        let reply = json!({"rules": [], "workers": [],
            "input_filter": {"interfaces": 2, "groups": 30, "errors": 1}});
        let table = stats(&reply);
        assert!(
            table.contains("input filter: 30 groups kept out of the host stack on 2 interfaces, 1 kernel refusals"),
            "{table}"
        );
    }
}

#[cfg(test)]
mod state_column_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn waiting_rules_show_what_they_wait_for() {
        let reply = json!({"rules": [
            {"id": 1, "rule": "a:239.1.0.1:1 -> b:239.2.0.1:1", "state": "active"},
            {"id": 2, "rule": "c:239.1.0.2:1 -> b:239.2.0.2:1", "state": "waiting",
             "waiting_for": ["c (missing)"]},
        ]});
        let text = rules(&reply);
        assert!(text.contains("STATE"), "{text}");
        assert!(text.contains("active   a:239.1.0.1:1"), "{text}");
        assert!(text.contains("waiting: c (missing)"), "{text}");
        let text = stats(&reply);
        assert!(
            text.lines()
                .nth(2)
                .unwrap()
                .ends_with("waiting: c (missing)"),
            "{text}"
        );
    }
}
