//! End-to-end traffic tests on real lab topologies (root only; loud skip otherwise).
//! Each test tears its topology down on pass or fail (drop) and checks that none of its
//! namespaces is left under /run/netns. `loadgen` is found with `binaries::locate` (build it
//! first: `cargo build -p loadgen`, or run the workspace's `cargo test`).

use labctl::process::loadgen::{RunningSink, ScratchDir, SendRate, SendSpec, SinkSpec};
use labctl::testing::{require_root, with_topology};
use labctl::topology::{Endpoint, Template, Topology};
use loadgen::summary::{SendSummary, SinkSummary};
use std::io::Read;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

#[test]
fn direct_50_streams_arrive_without_loss_or_duplicates() {
    if !require_root("direct_50_streams_arrive_without_loss_or_duplicates") {
        return;
    }
    with_topology(Template::Direct, |topo| {
        let scratch = ScratchDir::new("test-direct").unwrap();
        let sink_ep = &topo.sinks()[0];
        let base = Ipv4Addr::new(239, 1, 0, 1);
        let sink = SinkSpec {
            netns: sink_ep.netns.clone(),
            interface: sink_ep.ifname.clone(),
            streams: 50,
            group_base: base,
            groups: None,
            port: 5000,
            idle: Duration::from_secs(1),
            duration: Duration::from_secs(20),
            bind_device: true,
            placement: Default::default(),
        }
        .start(&scratch)
        .unwrap();
        let g = topo.generator();
        let sent = SendSpec {
            netns: g.netns.clone(),
            interface: g.ifname.clone(),
            source: g.addr,
            streams: 50,
            group_base: base,
            port: 5000,
            rate: SendRate::PerStream(200.0),
            size: 1000,
            count: Some(400),
            // The count ends the run (2 s at this rate); the duration is only a safety bound.
            duration: Duration::from_secs(10),
            placement: Default::default(),
        }
        .run(&scratch)
        .unwrap();
        let summary = sink.finish(Duration::from_secs(5)).unwrap();
        assert_eq!(sent.sent_packets, 50 * 400);
        assert_eq!(summary.streams.len(), 50);
        assert_eq!(summary.totals.received, 50 * 400, "{:?}", summary.totals);
        assert_eq!(summary.totals.lost, 0);
        assert_eq!(summary.totals.duplicates, 0);
        assert!(summary.silent_groups.is_empty());
        for s in &summary.streams {
            assert_eq!(
                (s.received, s.lost, s.duplicates),
                (400, 0, 0),
                "stream {}",
                s.group
            );
        }
    });
}

/// Counts IPv4 frames to `a` and `b` seen by an AF_PACKET socket in namespace `netns` (on the
/// wire, before any IP-level membership filtering) until `stop` is set.
fn frame_counter(
    netns: &str,
    a: Ipv4Addr,
    b: Ipv4Addr,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, Arc<AtomicU64>, std::thread::JoinHandle<()>) {
    let socket = labctl::netns::run_in_netns(netns, move || {
        let proto = i32::from((libc::ETH_P_IP as u16).to_be());
        let socket = socket2::Socket::new(
            socket2::Domain::PACKET,
            socket2::Type::RAW,
            Some(socket2::Protocol::from(proto)),
        )?;
        socket.set_recv_buffer_size(8 << 20)?;
        socket.set_read_timeout(Some(Duration::from_millis(50)))?;
        Ok(socket)
    })
    .expect("AF_PACKET socket");
    let (ca, cb) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (ta, tb) = (ca.clone(), cb.clone());
    let handle = std::thread::spawn(move || {
        let mut frame = [0u8; 2048];
        while !stop.load(Ordering::SeqCst) {
            if let Ok(n) = (&socket).read(&mut frame)
                && n >= 38
            {
                let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
                let port = u16::from_be_bytes([frame[36], frame[37]]);
                if port == labctl::topology::PROBE_PORT {
                    continue;
                }
                if dst == a {
                    ta.fetch_add(1, Ordering::SeqCst);
                } else if dst == b {
                    tb.fetch_add(1, Ordering::SeqCst);
                }
            }
        }
    });
    (ca, cb, handle)
}

#[test]
fn snooping_switch_forwards_only_the_joined_group() {
    if !require_root("snooping_switch_forwards_only_the_joined_group") {
        return;
    }
    with_topology(Template::Snooping, |topo| {
        let scratch = ScratchDir::new("test-snoop").unwrap();
        let receiver = topo
            .relay_in()
            .expect("snooping has a relay ingress")
            .clone();
        let (group_a, group_b) = (Ipv4Addr::new(239, 1, 0, 1), Ipv4Addr::new(239, 1, 0, 2));
        let stop = Arc::new(AtomicBool::new(false));
        let (frames_a, frames_b, counter) =
            frame_counter(&receiver.netns, group_a, group_b, stop.clone());
        let sink = start_joined_sink(&receiver, group_a, &scratch);
        // The sink has joined; wait (bounded) until the bridge has learned it.
        topo.wait_group_forwarded(group_a)
            .expect("the switch learns the join");
        let g = topo.generator();
        // The count ends the run (2 s at this rate); the duration is only a safety bound.
        let sent = send_at_100pps(g, group_a, 2, 200, Duration::from_secs(10), &scratch);
        let summary = sink.finish(Duration::from_secs(5)).unwrap();
        assert_only_joined_group_arrives(&sent, &summary, group_a, &frames_a, &frames_b);

        // Control: the counter does see B once the switch stops filtering (snooping off,
        // flooding on), so the zero above is a measurement, not a blind spot.
        switch_snooping_off(topo);
        send_at_100pps(g, group_b, 1, 50, Duration::from_secs(1), &scratch);
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        while frames_b.load(Ordering::SeqCst) < 50 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::SeqCst);
        counter.join().unwrap();
        assert_eq!(
            frames_b.load(Ordering::SeqCst),
            50,
            "control: flooded B must be counted"
        );
    });
}

/// Starts a sink that joins only `group` on the receiver's interface (bound to it).
fn start_joined_sink(receiver: &Endpoint, group: Ipv4Addr, scratch: &ScratchDir) -> RunningSink {
    SinkSpec {
        netns: receiver.netns.clone(),
        interface: receiver.ifname.clone(),
        streams: 1,
        group_base: group,
        groups: Some(vec![group]),
        port: 5000,
        idle: Duration::from_secs(1),
        duration: Duration::from_secs(20),
        bind_device: true,
        placement: Default::default(),
    }
    .start(scratch)
    .unwrap()
}

/// Sends `count` packets of 200 bytes per stream at 100 pps per stream from the generator.
fn send_at_100pps(
    g: &Endpoint,
    group_base: Ipv4Addr,
    streams: u32,
    count: u64,
    duration: Duration,
    scratch: &ScratchDir,
) -> SendSummary {
    SendSpec {
        netns: g.netns.clone(),
        interface: g.ifname.clone(),
        source: g.addr,
        streams,
        group_base,
        port: 5000,
        rate: SendRate::PerStream(100.0),
        size: 200,
        count: Some(count),
        duration,
        placement: Default::default(),
    }
    .run(scratch)
    .unwrap()
}

/// The sink got all of `group_a` and nothing else; on the wire: all of A, nothing of B.
fn assert_only_joined_group_arrives(
    sent: &SendSummary,
    summary: &SinkSummary,
    group_a: Ipv4Addr,
    frames_a: &AtomicU64,
    frames_b: &AtomicU64,
) {
    assert_eq!(sent.sent_packets, 400);
    assert_eq!(summary.totals.received, 200, "{:?}", summary.streams);
    assert_eq!(summary.totals.lost, 0);
    assert!(
        summary.streams.iter().all(|s| s.group == group_a),
        "{:?}",
        summary.streams
    );
    // On the wire of the relay's port: all of A, nothing of B.
    assert_eq!(
        frames_a.load(Ordering::SeqCst),
        200,
        "frames of the joined group"
    );
    assert_eq!(
        frames_b.load(Ordering::SeqCst),
        0,
        "frames of the group nobody joined"
    );
}

/// Turns multicast snooping off on the bridge and flooding on at its relay-facing port.
fn switch_snooping_off(topo: &Topology) {
    let bridge = topo.bridge().expect("snooping has a bridge").clone();
    // The relay-facing bridge port (docs/interfaces.md: `l2a` in `sw`).
    let port = labctl::names::RunId::parse(topo.run_id())
        .unwrap()
        .ifname("l2a")
        .unwrap();
    labctl::netns::netlink_in(Some(&bridge.netns), move |handle| async move {
        use futures::TryStreamExt;
        let off = rtnetlink::LinkBridge::new(&bridge.ifname)
            .mcast_snooping(false)
            .build();
        handle.link().change(off).execute().await?;
        let link = handle
            .link()
            .get()
            .match_name(port)
            .execute()
            .try_next()
            .await?;
        let index = link.expect("relay port").header.index;
        let flood = rtnetlink::LinkBridgePort::new(index)
            .mcast_flood(true)
            .build();
        handle.link().set_port(flood).execute().await?;
        Ok(())
    })
    .expect("switch snooping off");
}

#[test]
fn one_sink_joins_1000_groups_and_receives_every_stream() {
    if !require_root("one_sink_joins_1000_groups_and_receives_every_stream") {
        return;
    }
    with_topology(Template::Direct, |topo| {
        let scratch = ScratchDir::new("test-1000").unwrap();
        let sink_ep = &topo.sinks()[0];
        let base = Ipv4Addr::new(239, 1, 0, 1);
        let sink = SinkSpec {
            netns: sink_ep.netns.clone(),
            interface: sink_ep.ifname.clone(),
            streams: 1000,
            group_base: base,
            groups: None,
            port: 5000,
            idle: Duration::from_secs(1),
            duration: Duration::from_secs(30),
            bind_device: true,
            placement: Default::default(),
        }
        .start(&scratch)
        .unwrap();
        let g = topo.generator();
        let sent = SendSpec {
            netns: g.netns.clone(),
            interface: g.ifname.clone(),
            source: g.addr,
            streams: 1000,
            group_base: base,
            port: 5000,
            rate: SendRate::PerStream(10.0),
            size: 200,
            count: Some(20),
            // 20 packets at 10 pps take 2 s: the count, not this safety bound, ends the run.
            duration: Duration::from_secs(10),
            placement: Default::default(),
        }
        .run(&scratch)
        .unwrap();
        let summary = sink.finish(Duration::from_secs(5)).unwrap();
        assert_eq!(sent.sent_packets, 20_000);
        assert_eq!(summary.joined_groups, 1000);
        assert!(
            summary.join_errors.is_empty(),
            "{:?}",
            &summary.join_errors[..summary.join_errors.len().min(3)]
        );
        assert!(
            summary.silent_groups.is_empty(),
            "{} silent groups",
            summary.silent_groups.len()
        );
        assert_eq!(summary.streams.len(), 1000);
        assert_eq!(summary.totals.received, 20_000, "{:?}", summary.totals);
        assert_eq!(summary.totals.lost, 0);
    });
}
