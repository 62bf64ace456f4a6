//! Topology lifecycle tests (root only; loud skip otherwise): every template comes up ready
//! and goes down without leaving a namespace behind; parallel topologies never collide; bad
//! names are refused and a name clash leaves the existing topology intact.

use labctl::testing::{namespaces_of, require_root};
use labctl::topology::{Role, Template, Topology, TopologyOptions};

fn link_exists(netns: &str, ifname: &str) -> bool {
    let path = format!("/sys/class/net/{ifname}");
    labctl::netns::run_in_netns(netns, move || {
        // /sys shows the namespace of the mounting process, so ask the kernel by index.
        Ok(nix::net::if_::if_nametoindex(path.rsplit('/').next().unwrap_or("")).is_ok())
    })
    .unwrap_or(false)
}

#[test]
fn every_template_comes_up_and_leaves_nothing_behind() {
    if !require_root("every_template_comes_up_and_leaves_nothing_behind") {
        return;
    }
    for template in [
        Template::Direct,
        Template::Chain,
        Template::Snooping,
        Template::Fanout(4),
    ] {
        let topo = Topology::up(&TopologyOptions::new(template)).expect("up");
        let id = topo.run_id().to_string();
        assert_eq!(id.len(), 6);
        let expected: Vec<String> = topo.namespaces().map(|(_, n)| n.to_string()).collect();
        let mut expected_sorted = expected.clone();
        expected_sorted.sort();
        assert_eq!(namespaces_of(&id), expected_sorted, "{template}");
        let all = topo.generator().clone();
        assert!(link_exists(&all.netns, &all.ifname), "{template}: gen link");
        for ep in topo
            .sinks()
            .iter()
            .chain(topo.relay_out())
            .chain(topo.relay_in())
        {
            assert!(ep.ifname.len() <= 15);
            assert!(ep.ifname.starts_with(&format!("ml{id}-")));
            assert!(
                link_exists(&ep.netns, &ep.ifname),
                "{template}: {}",
                ep.ifname
            );
            assert_eq!(ep.addr.octets()[0], 198);
        }
        match template {
            Template::Direct => {
                assert!(topo.relay_in().is_none() && topo.relay_out().is_empty());
                assert!(topo.namespace(Role::Relay).is_none());
            }
            Template::Fanout(k) => {
                assert_eq!(topo.relay_out().len(), usize::from(k));
                assert_eq!(topo.sinks().len(), usize::from(k));
            }
            Template::Snooping => {
                let bridge = topo.bridge().expect("bridge");
                assert!(link_exists(&bridge.netns, &bridge.ifname));
                assert_eq!(topo.namespace(Role::Sw), Some(bridge.netns.as_str()));
            }
            Template::Chain => assert_eq!(topo.relay_out().len(), 1),
        }
        topo.down().expect("down");
        assert!(
            namespaces_of(&id).is_empty(),
            "{template} left {:?}",
            namespaces_of(&id)
        );
    }
}

#[test]
fn dropping_a_topology_tears_it_down() {
    if !require_root("dropping_a_topology_tears_it_down") {
        return;
    }
    let id = {
        let topo = Topology::up(&TopologyOptions::new(Template::Chain)).expect("up");
        topo.run_id().to_string()
    };
    assert!(namespaces_of(&id).is_empty());
}

#[test]
fn parallel_topologies_do_not_collide() {
    if !require_root("parallel_topologies_do_not_collide") {
        return;
    }
    let threads: Vec<_> = (0..3)
        .map(|i| {
            std::thread::spawn(move || {
                let template = if i == 0 {
                    Template::Snooping
                } else {
                    Template::Fanout(2)
                };
                let topo = Topology::up(&TopologyOptions::new(template)).expect("up");
                let id = topo.run_id().to_string();
                (topo, id)
            })
        })
        .collect();
    let topologies: Vec<(Topology, String)> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let mut ids: Vec<&String> = topologies.iter().map(|(_, id)| id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3, "run ids must differ");
    let ids: Vec<String> = topologies.iter().map(|(_, id)| id.clone()).collect();
    for (topo, id) in topologies {
        assert!(!namespaces_of(&id).is_empty());
        topo.down().expect("down");
    }
    for id in ids {
        assert!(namespaces_of(&id).is_empty());
    }
}

#[test]
fn names_are_validated_and_clashes_refused() {
    if !require_root("names_are_validated_and_clashes_refused") {
        return;
    }
    for bad in ["", "UPPER", "toolong7", "a-b", "../x"] {
        let mut opts = TopologyOptions::new(Template::Direct);
        opts.name = Some(bad.to_string());
        let err = Topology::up(&opts).expect_err(bad).to_string();
        assert!(err.contains("1 to 6 characters"), "{bad}: {err}");
    }
    // A unique user-chosen name (z + 5 random hex) so parallel test runs do not meet.
    let name = format!("z{:05x}", rand::random::<u32>() & 0xfffff);
    let mut opts = TopologyOptions::new(Template::Direct);
    opts.name = Some(name.clone());
    let first = Topology::up(&opts).expect("first up");
    assert_eq!(first.run_id(), name);
    let before = namespaces_of(&name);
    let err = Topology::up(&opts).expect_err("clash").to_string();
    assert!(err.contains("already exists"), "{err}");
    assert_eq!(
        namespaces_of(&name),
        before,
        "the clash must not touch the existing topology"
    );
    // Attach finds it (state file), and down through it removes it.
    let attached = Topology::attach(&name).expect("attach");
    assert_eq!(attached.generator(), first.generator());
    first.persist();
    attached.down().expect("down");
    assert!(namespaces_of(&name).is_empty());
}

#[test]
fn per_namespace_sysctls_are_applied() {
    if !require_root("per_namespace_sysctls_are_applied") {
        return;
    }
    let mut opts = TopologyOptions::new(Template::Chain);
    opts.sysctls.push((
        Role::Relay,
        "net.ipv4.igmp_max_memberships".into(),
        "2000".into(),
    ));
    opts.sysctls
        .push((Role::Relay, "net.core.optmem_max".into(), "262144".into()));
    let topo = Topology::up(&opts).expect("up");
    let relay = topo.namespace(Role::Relay).expect("relay ns").to_string();
    let sink = topo.namespace(Role::Sink).expect("sink ns").to_string();
    assert_eq!(
        labctl::netns::read_sysctl(&relay, "net.ipv4.igmp_max_memberships").unwrap(),
        "2000"
    );
    assert_eq!(
        labctl::netns::read_sysctl(&relay, "net.core.optmem_max").unwrap(),
        "262144"
    );
    assert_eq!(
        labctl::netns::read_sysctl(&sink, "net.ipv4.igmp_max_memberships").unwrap(),
        "20"
    );
    topo.down().unwrap();

    let mut bad = TopologyOptions::new(Template::Direct);
    bad.sysctls.push((
        Role::Relay,
        "net.ipv4.igmp_max_memberships".into(),
        "50".into(),
    ));
    let err = Topology::up(&bad)
        .expect_err("direct has no relay")
        .to_string();
    assert!(err.contains("does not have"), "{err}");
}
