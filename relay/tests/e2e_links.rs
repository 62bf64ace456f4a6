//! End-to-end tests of interfaces that come and go under a running relay: a veth deleted and
//! created again under the same name (a new interface index, a new MAC) must neither need a
//! command nor leave the relay forwarding into the void. Root only (loud skip otherwise).
//!
//! The links are deleted and created again with rtnetlink (never `ip`), from the topology's
//! plan: the same names, addresses, multicast routes and bridge port settings as `labctl`
//! built them.

use labctl::names::RunId;
use labctl::netns::netlink_in;
use labctl::process::loadgen::ScratchDir;
use labctl::testing::{require_root, with_topology};
use labctl::topology::{BridgePlan, Interface, PREFIX_LEN, Plan, Template, Topology};
use rtnetlink::packet_route::link::{InfoData, InfoVeth};
use rtnetlink::{Handle, LinkBridgePort, LinkMessageBuilder, LinkUnspec, LinkVeth};
use serde_json::json;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

mod support;
use support::{RelayProcess, ignored_multi, send_from, sink_spec, tx_ring_packets};

/// How soon forwarding must resume after a link is back (the bound).
const RESUME_BOUND: Duration = Duration::from_secs(1);
const INPUT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
const OUTPUT_GROUP: Ipv4Addr = Ipv4Addr::new(239, 2, 0, 1);

/// Waits (3 s at most) until `list` and `stats` show the only rule `waiting` for
/// `interface (missing)`.
fn wait_waiting_for(relay: &RelayProcess, interface: &str) {
    let expected = json!([format!("{interface} (missing)")]);
    let end = Instant::now() + Duration::from_secs(3);
    loop {
        let list = relay.ctl(json!({"cmd":"list"}));
        let rule = &list["rules"][0];
        if rule["state"] == "waiting" && rule["waiting_for"] == expected {
            break;
        }
        assert!(
            Instant::now() < end,
            "the rule does not show `waiting` for {interface} while it is missing: {list}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = relay.ctl(json!({"cmd":"stats"}));
    assert_eq!(stats["rules"][0]["state"], "waiting", "{stats}");
    assert_eq!(stats["rules"][0]["waiting_for"], expected, "{stats}");
}

/// The only rule's `rx_packets` and its output's `tx_packets`.
fn counters(relay: &RelayProcess) -> (u64, u64) {
    let stats = relay.ctl(json!({"cmd":"stats"}));
    let rule = &stats["rules"][0];
    (
        rule["rx_packets"].as_u64().unwrap_or(0),
        rule["outputs"][0]["tx_packets"].as_u64().unwrap_or(0),
    )
}

/// How long after `since` the relay forwarded a new packet (tx past `tx_before`), polling for
/// up to 5 s.
fn wait_forwarding(relay: &RelayProcess, since: Instant, tx_before: u64) -> Duration {
    let end = since + Duration::from_secs(5);
    loop {
        let (rx, tx) = counters(relay);
        if tx > tx_before {
            return since.elapsed();
        }
        assert!(
            Instant::now() < end,
            "no packet forwarded 5 s after the link came back (rx {rx}, tx {tx}): {}",
            relay.ctl(json!({"cmd":"stats"}))
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn start_relay(topo: &Topology, scratch: &ScratchDir, extra: &[&str]) -> RelayProcess {
    let mut args: Vec<String> = extra.iter().map(|a| a.to_string()).collect();
    args.extend(["--rule".to_string(), rule(topo)]);
    RelayProcess::start(topo, scratch.path("relay.sock"), &args)
}

fn rule(topo: &Topology) -> String {
    let (rin, rout) = (
        &topo.relay_in().unwrap().ifname,
        &topo.relay_out()[0].ifname,
    );
    format!("{rin}:{INPUT_GROUP}:5000 -> {rout}:{OUTPUT_GROUP}:5000")
}

/// Sends `count` packets at `pps` to the input group from the generator's address.
fn send(topo: &Topology, scratch: &ScratchDir, pps: f64, count: u64) -> u64 {
    let source = topo.generator().addr;
    send_from(topo, scratch, source, INPUT_GROUP, pps, count)
}

/// The topology's plan: both ends of every veth, and the bridge.
fn plan(topo: &Topology) -> Plan {
    let run = RunId::parse(topo.run_id()).expect("run id");
    Plan::new(&run, topo.template()).expect("plan")
}

/// Both ends (upstream, downstream) of the veth that has an end called `name`.
fn veth_of(plan: &Plan, name: &str) -> (Interface, Interface) {
    let pair = plan
        .veths
        .iter()
        .find(|p| p.upstream.ifname == name || p.downstream.ifname == name)
        .unwrap_or_else(|| panic!("no veth {name} in the plan"));
    (pair.upstream.clone(), pair.downstream.clone())
}

async fn index_of(handle: &Handle, name: &str) -> anyhow::Result<u32> {
    use futures::TryStreamExt;
    let mut links = handle.link().get().match_name(name.to_string()).execute();
    let link = links.try_next().await?;
    link.map(|l| l.header.index)
        .ok_or_else(|| anyhow::anyhow!("no link {name}"))
}

/// Deletes the veth end `end` (its peer goes with it).
fn delete_veth(end: &Interface) {
    let name = end.ifname.clone();
    netlink_in(Some(&end.netns), move |handle| async move {
        let index = index_of(&handle, &name).await?;
        handle.link().del(index).execute().await?;
        Ok(())
    })
    .expect("deleting the veth");
}

/// Creates the veth `up` <-> `down` again, each end in its namespace, and configures both as
/// the topology had them (bridge port first, so the relay's joins reach the bridge).
fn recreate_veth(up: &Interface, down: &Interface, bridge: Option<&BridgePlan>) {
    let (up_c, down_c) = (up.clone(), down.clone());
    netlink_in(None, move |handle| async move {
        let up_ns = File::open(labctl::netns::netns_path(&up_c.netns))?;
        let down_ns = File::open(labctl::netns::netns_path(&down_c.netns))?;
        let peer = LinkMessageBuilder::<LinkUnspec>::new()
            .name(down_c.ifname.clone())
            .setns_by_fd(down_ns.as_raw_fd())
            .build();
        let message = LinkVeth::new(&up_c.ifname, &down_c.ifname)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer)))
            .setns_by_fd(up_ns.as_raw_fd())
            .build();
        handle.link().add(message).execute().await?;
        Ok(())
    })
    .expect("creating the veth again");
    let mut ends = [up.clone(), down.clone()];
    ends.sort_by_key(|end| end.addr.is_some());
    for end in ends {
        let bridge = bridge.filter(|b| b.ports.contains(&end.ifname)).cloned();
        netlink_in(Some(&end.netns.clone()), move |handle| async move {
            configure_end(&handle, &end, bridge.as_ref()).await
        })
        .expect("configuring a re-created veth end");
    }
}

/// Address, bridge port settings, up, multicast route: what labctl's topology build does.
async fn configure_end(
    handle: &Handle,
    end: &Interface,
    bridge: Option<&BridgePlan>,
) -> anyhow::Result<()> {
    let index = index_of(handle, &end.ifname).await?;
    if let Some(addr) = end.addr {
        handle
            .address()
            .add(index, IpAddr::V4(addr), PREFIX_LEN)
            .execute()
            .await?;
    }
    if let Some(bridge) = bridge {
        let bridge_index = index_of(handle, &bridge.name).await?;
        let attach = LinkUnspec::new_with_index(index)
            .controller(bridge_index)
            .build();
        handle.link().change(attach).execute().await?;
        if end.ifname == bridge.flood_off_port {
            let options = LinkBridgePort::new(index).mcast_flood(false).build();
            handle.link().set_port(options).execute().await?;
        }
    }
    let up = LinkUnspec::new_with_index(index).up().build();
    handle.link().change(up).execute().await?;
    if let Some(metric) = end.mcast_route_metric {
        let route = rtnetlink::RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(Ipv4Addr::new(224, 0, 0, 0), 4)
            .output_interface(index)
            .priority(metric)
            .build();
        handle.route().add(route).execute().await?;
    }
    Ok(())
}

/// Deletes the veth with end `name`, checks the rule waits for it, creates it again.
fn bounce_veth(topo: &Topology, relay: &RelayProcess, name: &str) {
    let plan = plan(topo);
    let (up, down) = veth_of(&plan, name);
    let relay_end = if up.ifname == name { &up } else { &down };
    delete_veth(relay_end);
    wait_waiting_for(relay, name);
    recreate_veth(&up, &down, plan.bridge.as_ref());
}

#[test]
fn rules_follow_input_and_output_veths_deleted_and_created_again() {
    links_come_back_case(
        "rules_follow_input_and_output_veths_deleted_and_created_again",
        &[],
    );
}

/// The same with `sendmmsg` egress (with the default, transmit rings, the case also checks
/// that the deleted output veth's ring is dropped and the veth created again gets a new one).
#[test]
fn sendmmsg_egress_follows_veths_deleted_and_created_again() {
    links_come_back_case(
        "sendmmsg_egress_follows_veths_deleted_and_created_again",
        &["--send", "mmsg"],
    );
}

/// The same with the kernel forwarding (`--dataplane tc`): the program is linked to the new
/// input veth and the rule's entry rewritten for the new output veth.
#[test]
fn the_tc_dataplane_follows_veths_deleted_and_created_again() {
    links_come_back_case(
        "the_tc_dataplane_follows_veths_deleted_and_created_again",
        &["--dataplane", "tc"],
    );
}

/// The input veth, then the output veth (mid-stream) deleted and created again under a relay
/// started with `extra` arguments: forwarding resumes each time, and each change of state is
/// logged once.
fn links_come_back_case(test: &str, extra: &[&str]) {
    if !require_root(test) {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-links").unwrap();
        let relay = start_relay(topo, &scratch, extra);
        let (rin, rout) = (
            topo.relay_in().unwrap().ifname.clone(),
            topo.relay_out()[0].ifname.clone(),
        );

        // Before: everything delivered.
        let sink = sink_spec(topo, vec![OUTPUT_GROUP]).start(&scratch).unwrap();
        assert_eq!(send(topo, &scratch, 2000.0, 2000), 2000);
        let before = sink.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(before.totals.received, 2000, "{:?}", before.totals);

        input_link_comes_back(topo, &scratch, &relay, &rin);

        let by_ring_before = tx_ring_packets(&relay);
        output_link_comes_back_mid_stream(topo, &scratch, &relay, &rout);
        let by_ring_after = tx_ring_packets(&relay);
        if extra.is_empty() {
            assert!(
                by_ring_after > by_ring_before + 3000,
                "a new ring took over on the new veth (about 1000 frames before the bounce, 6000 after): {by_ring_before} -> {by_ring_after}"
            );
        }
        assert_active_and_each_change_logged_once(&relay);
        relay.stop();
    });
}

/// The input veth `rin` (the generator's link) deleted and created again (a new index):
/// forwarding resumes within the bound, at most 1 s of traffic is lost, the rule is active.
fn input_link_comes_back(topo: &Topology, scratch: &ScratchDir, relay: &RelayProcess, rin: &str) {
    let sink = sink_spec(topo, vec![OUTPUT_GROUP]).start(scratch).unwrap();
    bounce_veth(topo, relay, rin);
    let back = Instant::now();
    let (_, tx_before) = counters(relay);
    let resumed = std::thread::scope(|s| {
        let sender = s.spawn(|| send(topo, scratch, 1000.0, 3000));
        let resumed = wait_forwarding(relay, back, tx_before);
        assert_eq!(sender.join().unwrap(), 3000);
        resumed
    });
    let after_input = sink.finish(Duration::from_secs(10)).unwrap();
    eprintln!(
        "input link back: forwarding resumed after {resumed:?}, {} delivered",
        after_input.totals.received
    );
    assert!(
        resumed < RESUME_BOUND,
        "forwarding resumed {resumed:?} after the input link came back"
    );
    // At 1000 pps, less than 1 s of traffic may be lost.
    assert!(
        after_input.totals.received >= 2000,
        "delivered after the input link came back: {:?}",
        after_input.totals
    );
    assert_eq!(
        relay.ctl(json!({"cmd":"list"}))["rules"][0]["state"],
        "active"
    );
}

/// The output veth `rout` (the sink's link) deleted and created again mid-stream: forwarding
/// resumes within the bound and at most 1 s of traffic is lost.
fn output_link_comes_back_mid_stream(
    topo: &Topology,
    scratch: &ScratchDir,
    relay: &RelayProcess,
    rout: &str,
) {
    std::thread::scope(|s| {
        let sender = s.spawn(|| send(topo, scratch, 1000.0, 8000));
        std::thread::sleep(Duration::from_millis(1000));
        bounce_veth(topo, relay, rout);
        let back = Instant::now();
        let (_, tx_before) = counters(relay);
        let sink = sink_spec(topo, vec![OUTPUT_GROUP]).start(scratch).unwrap();
        let resumed = wait_forwarding(relay, back, tx_before);
        assert!(
            resumed < RESUME_BOUND,
            "forwarding resumed {resumed:?} after the output link came back"
        );
        assert_eq!(sender.join().unwrap(), 8000);
        let after_output = sink.finish(Duration::from_secs(10)).unwrap();
        eprintln!(
            "output link back: forwarding resumed after {resumed:?}, {} delivered",
            after_output.totals.received
        );
        assert!(
            after_output.totals.received >= 2000,
            "delivered after the output link came back: {:?}",
            after_output.totals
        );
    });
}

/// The rule is active (waiting for nothing) and each change of state was logged once, not on
/// every event or periodic re-sync.
fn assert_active_and_each_change_logged_once(relay: &RelayProcess) {
    let list = relay.ctl(json!({"cmd":"list"}));
    assert_eq!(list["rules"][0]["state"], "active", "{list}");
    assert!(list["rules"][0].get("waiting_for").is_none(), "{list}");
    let log = relay.child.stderr_text();
    assert_eq!(log.matches("is waiting for").count(), 2, "{log}");
    assert_eq!(log.matches("is active again").count(), 2, "{log}");
}

/// `--input-filter` follows the input veth deleted and created again (a new index): the new
/// interface gets the program (the host stack's IgnoredMulti stays flat) and every frame is
/// forwarded.
#[test]
fn the_input_filter_follows_the_input_veth_deleted_and_created_again() {
    let name = "the_input_filter_follows_the_input_veth_deleted_and_created_again";
    if !require_root(name) {
        return;
    }
    with_topology(Template::Chain, |topo| {
        let scratch = ScratchDir::new("relay-e2e-links-filter").unwrap();
        let relay = start_relay(topo, &scratch, &["--input-filter"]);
        let rin = topo.relay_in().unwrap().ifname.clone();
        bounce_veth(topo, &relay, &rin);
        let linked = json!({"interfaces": 1, "groups": 1, "errors": 0});
        let end = Instant::now() + Duration::from_secs(3);
        while relay.ctl(json!({"cmd":"stats"}))["input_filter"] != linked
            || relay.ctl(json!({"cmd":"list"}))["rules"][0]["state"] != "active"
        {
            assert!(
                Instant::now() < end,
                "not active and linked again: {}",
                relay.ctl(json!({"cmd":"stats"}))
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let ignored_before = ignored_multi(topo);
        let sink = sink_spec(topo, vec![OUTPUT_GROUP]).start(&scratch).unwrap();
        assert_eq!(send(topo, &scratch, 2000.0, 2000), 2000);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(summary.totals.received, 2000, "{:?}", summary.totals);
        assert_eq!(
            ignored_multi(topo) - ignored_before,
            0,
            "the host stack received input frames on the new veth"
        );
        relay.stop();
    });
}

#[test]
fn joins_come_back_behind_a_snooping_bridge_after_the_input_veth_is_created_again() {
    let name = "joins_come_back_behind_a_snooping_bridge_after_the_input_veth_is_created_again";
    if !require_root(name) {
        return;
    }
    with_topology(Template::Snooping, |topo| {
        let scratch = ScratchDir::new("relay-e2e-links-snoop").unwrap();
        let relay = start_relay(topo, &scratch, &[]);
        topo.wait_group_forwarded(INPUT_GROUP)
            .expect("the bridge forwards the relay's group");
        let rin = topo.relay_in().unwrap().ifname.clone();

        bounce_veth(topo, &relay, &rin);
        // The new bridge port floods nothing (mcast_flood off): only a join opens it.
        topo.wait_group_forwarded(INPUT_GROUP)
            .expect("the relay's join comes back: the bridge forwards its group again");
        let memberships = relay.ctl(json!({"cmd":"memberships"}));
        assert_eq!(
            memberships["interfaces"][0]["interface"], rin,
            "{memberships}"
        );

        let sink = sink_spec(topo, vec![OUTPUT_GROUP]).start(&scratch).unwrap();
        assert_eq!(send(topo, &scratch, 1000.0, 1000), 1000);
        let summary = sink.finish(Duration::from_secs(10)).unwrap();
        assert_eq!(summary.totals.received, 1000, "{:?}", summary.totals);
        relay.stop();
    });
}
