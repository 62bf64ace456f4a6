use super::*;
use crate::input_drop::TCX_REDIRECT;
use crate::wire::{checksum, write_frame};

const IN_IF: u32 = 1;
const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
const SOURCE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

fn input_header(ttl: u8) -> FrameHeader {
    FrameHeader {
        source_mac: [0x02, 0, 0, 0, 0, 1],
        source: SOURCE,
        group: GROUP,
        source_port: 4000,
        destination_port: 5000,
        ttl,
        tos: 0x10,
        ident: 0x1234,
    }
}

/// An input frame to `GROUP:5000` with a 64-byte payload; `udp_checksum` false sends none.
fn input_frame(ttl: u8, udp_checksum: bool) -> Vec<u8> {
    let payload: Vec<u8> = (0..64u8).collect();
    let mut frame = vec![0u8; wire::PAYLOAD_OFFSET + payload.len()];
    write_frame(
        &mut frame,
        &input_header(ttl),
        &payload,
        checksum::sum(&payload),
    )
    .unwrap();
    if !udp_checksum {
        frame[40..42].copy_from_slice(&[0, 0]);
    }
    frame
}

fn output(index: u8, port: u16) -> FanoutOutput {
    FanoutOutput {
        ifindex: 1,
        header: FrameHeader {
            source_mac: [0x02, 0, 0, 0, 1, index],
            source: Ipv4Addr::new(198, 18, 1, index),
            group: Ipv4Addr::new(239, 2, 0, index),
            source_port: 0,
            destination_port: port,
            ttl: 0,
            tos: 0,
            ident: 0,
        },
    }
}

fn rule(source: Ipv4Addr, outputs: Vec<FanoutOutput>) -> FanoutRule {
    FanoutRule {
        key: FanoutKey {
            ifindex: IN_IF,
            group: GROUP,
            port: 5000,
            source,
        },
        ttl_limit: 8,
        ttl_set: false,
        outputs,
    }
}

/// What the user-space relay builds for `output` from `input_frame(ttl, true)`.
fn expected_frame(output: &FanoutOutput, ttl: u8) -> Vec<u8> {
    let payload: Vec<u8> = (0..64u8).collect();
    let header = FrameHeader {
        source_port: 4000,
        tos: 0x10,
        ttl,
        ..output.header
    };
    let mut frame = vec![0u8; wire::PAYLOAD_OFFSET + payload.len()];
    write_frame(&mut frame, &header, &payload, checksum::sum(&payload)).unwrap();
    frame
}

#[test]
fn a_rule_value_holds_the_policy_and_a_template_per_output() {
    let mut r = rule(
        Ipv4Addr::UNSPECIFIED,
        vec![output(1, 6000), output(2, 5000)],
    );
    r.ttl_limit = 5;
    let value = r.value().unwrap();
    assert_eq!(value.len(), VALUE_BYTES);
    assert_eq!(value[RULE_OUTPUTS as usize], 2);
    assert_eq!((value[20], value[21]), (5, 0));
    let first = &value[RULE_HEADER_BYTES..RULE_HEADER_BYTES + OUTPUT_BYTES];
    let template = &first[..HEADER_BYTES];
    assert_eq!(
        &template[..6],
        &wire::multicast_mac(Ipv4Addr::new(239, 2, 0, 1))
    );
    assert_eq!(&template[30..34], &[239, 2, 0, 1]);
    assert_eq!(&template[36..38], &6000u16.to_be_bytes());
    for (at, what) in [
        (15, "TOS"),
        (16, "length"),
        (22, "TTL"),
        (24, "checksum"),
        (34, "port"),
    ] {
        assert_eq!(template[at], 0, "{what} is written per packet");
    }
    let second = &value[RULE_HEADER_BYTES + OUTPUT_BYTES..];
    assert_eq!(
        &second[OUT_PORT_DIFF as usize..][..4],
        &[0; 4],
        "same port: no port change"
    );
    let too_many = rule(Ipv4Addr::UNSPECIFIED, vec![output(1, 1); MAX_OUTPUTS + 1]);
    assert_eq!(
        too_many.value().unwrap_err(),
        RuleError::TooManyOutputs(MAX_OUTPUTS + 1)
    );
}

#[test]
fn keys_are_four_host_order_words() {
    let key = FanoutKey {
        ifindex: 7,
        group: GROUP,
        port: 5000,
        source: SOURCE,
    }
    .bytes();
    let word = |i: usize| u32::from_ne_bytes([key[i], key[i + 1], key[i + 2], key[i + 3]]);
    assert_eq!(
        (word(0), word(4), word(8), word(12)),
        (7, 0xef01_0001, 5000, 0xc612_0001)
    );
}

/// Transmitted packets of the loopback interface of the calling thread's namespace.
fn loopback_tx_packets() -> u64 {
    let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap();
    let line = dev
        .lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .unwrap();
    let fields: Vec<&str> = line.split(':').nth(1).unwrap().split_whitespace().collect();
    fields[9].parse().unwrap()
}

/// Runs `check` on a thread in a network namespace of its own with its loopback up (the
/// outputs' interface, index 1): the program's clones go there, never to the machine's.
fn in_own_namespace(check: impl FnOnce() + Send) {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
                crate::iface::set_up("lo").unwrap();
                check();
            })
            .join()
            .expect("the test thread");
    });
}

fn root_or_skip(test: &str) -> bool {
    let root = nix::unistd::geteuid().is_root();
    if !root {
        eprintln!("SKIPPED {test}: needs root (bpf, a network namespace)");
    }
    root
}

#[test]
fn each_output_gets_the_frame_the_user_space_builder_would_send() {
    if !root_or_skip("each_output_gets_the_frame_the_user_space_builder_would_send") {
        return;
    }
    in_own_namespace(|| {
        let fanout = TcFanout::load(8, ProgramOptions::default()).expect("map and program load");
        let outputs = vec![output(1, 6000), output(2, 5000), output(3, 7000)];
        let r = rule(Ipv4Addr::UNSPECIFIED, outputs.clone());
        fanout.insert(&r).unwrap();
        let before = loopback_tx_packets();
        let (verdict, frame) = fanout.run(&input_frame(8, true), IN_IF).unwrap();
        assert_eq!(
            verdict, TCX_REDIRECT,
            "the input itself goes to the last output"
        );
        assert_eq!(
            loopback_tx_packets() - before,
            2,
            "a clone per output but the last (a test run does not act on the verdict)"
        );
        // The frame is left as the last output's copy: byte for byte the builder's.
        assert_eq!(frame, expected_frame(&outputs[2], 7));
        let counters = fanout.counters(&r.key).unwrap().unwrap();
        assert_eq!((counters.rx_packets, counters.rx_bytes), (1, 64));
        assert_eq!((counters.sent, counters.failed), (vec![1; 3], vec![0; 3]));
        assert_eq!(counters.sent_bytes, vec![64; 3]);
        assert_eq!(
            (counters.timed, counters.lookup_ns, counters.fanout_ns),
            (0, 0, 0),
            "no clock readings without timing"
        );
        // Every output's copy, each alone.
        for out in &outputs {
            fanout
                .insert(&rule(Ipv4Addr::UNSPECIFIED, vec![*out]))
                .unwrap();
            let (_, frame) = fanout.run(&input_frame(8, true), IN_IF).unwrap();
            assert_eq!(frame, expected_frame(out, 7), "output {out:?}");
        }
    });
}

#[test]
fn ttl_checksumless_input_source_rules_and_strangers() {
    if !root_or_skip("ttl_checksumless_input_source_rules_and_strangers") {
        return;
    }
    in_own_namespace(|| {
        let fanout = TcFanout::load(8, ProgramOptions::default()).expect("map and program load");
        let any = rule(Ipv4Addr::UNSPECIFIED, vec![output(1, 6000)]);
        fanout.insert(&any).unwrap();
        // TTL: min(limit 8, arriving - 1); 1 is expired; `set` always gives the limit.
        let (_, frame) = fanout.run(&input_frame(4, true), IN_IF).unwrap();
        assert_eq!(frame, expected_frame(&any.outputs[0], 3));
        let (verdict, _) = fanout.run(&input_frame(1, true), IN_IF).unwrap();
        assert_eq!(verdict, TCX_DROP, "expired");
        let counters = fanout.counters(&any.key).unwrap().unwrap();
        assert_eq!(
            (counters.rx_packets, counters.ttl_expired),
            (1, 1),
            "forwarded, expired"
        );
        assert_eq!(counters.sent, vec![1], "nothing sent for the expired one");
        let set = FanoutRule {
            ttl_set: true,
            ..any.clone()
        };
        fanout.insert(&set).unwrap();
        let (_, frame) = fanout.run(&input_frame(1, true), IN_IF).unwrap();
        assert_eq!(frame, expected_frame(&any.outputs[0], 8));
        fanout.insert(&any).unwrap();
        // No UDP checksum in, none out.
        let (_, frame) = fanout.run(&input_frame(8, false), IN_IF).unwrap();
        let mut expected = expected_frame(&any.outputs[0], 7);
        expected[40..42].copy_from_slice(&[0, 0]);
        assert_eq!(frame, expected);
        // A rule for this source is taken before the any-source one.
        let specific = rule(SOURCE, vec![output(9, 6000)]);
        fanout.insert(&specific).unwrap();
        let (_, frame) = fanout.run(&input_frame(8, true), IN_IF).unwrap();
        assert_eq!(frame, expected_frame(&specific.outputs[0], 7));
        // A pass entry for this source: on to the stack, not to the any-source rule.
        fanout.insert(&FanoutRule::pass(specific.key)).unwrap();
        let before = fanout.counters(&any.key).unwrap().unwrap();
        assert_eq!(
            fanout.run(&input_frame(8, true), IN_IF).unwrap().0,
            TCX_NEXT
        );
        let after = fanout.counters(&any.key).unwrap().unwrap();
        assert_eq!(after.rx_packets, before.rx_packets, "uncounted");
        let pass = fanout.counters(&specific.key).unwrap().unwrap();
        assert_eq!((pass.rx_packets, pass.sent.len()), (0, 0));
        assert!(fanout.remove(&specific.key).unwrap());
        assert!(!fanout.remove(&specific.key).unwrap(), "removed once");
        // Not a rule's: another interface, another port, not UDP, a fragment.
        let input = input_frame(8, true);
        assert_eq!(fanout.run(&input, IN_IF + 1).unwrap().0, TCX_NEXT);
        let mut other_port = input.clone();
        other_port[36..38].copy_from_slice(&5001u16.to_be_bytes());
        assert_eq!(fanout.run(&other_port, IN_IF).unwrap().0, TCX_NEXT);
        let mut tcp = input.clone();
        tcp[23] = 6;
        assert_eq!(fanout.run(&tcp, IN_IF).unwrap().0, TCX_NEXT);
        let mut fragment = input.clone();
        fragment[20] |= 0x20; // more fragments
        assert_eq!(fanout.run(&fragment, IN_IF).unwrap().0, TCX_NEXT);
        let mut options = input;
        options[14] = 0x46;
        assert_eq!(fanout.run(&options, IN_IF).unwrap().0, TCX_NEXT);
    });
}

#[test]
fn the_timing_program_forwards_alike_and_times_each_datagram() {
    if !root_or_skip("the_timing_program_forwards_alike_and_times_each_datagram") {
        return;
    }
    in_own_namespace(|| {
        let fanout = TcFanout::load(
            8,
            ProgramOptions {
                timing: true,
                ..Default::default()
            },
        )
        .expect("map and program load");
        let outputs = vec![output(1, 6000), output(2, 5000), output(3, 7000)];
        let r = rule(Ipv4Addr::UNSPECIFIED, outputs.clone());
        fanout.insert(&r).unwrap();
        let before = loopback_tx_packets();
        for _ in 0..10 {
            let (verdict, frame) = fanout.run(&input_frame(8, true), IN_IF).unwrap();
            assert_eq!(verdict, TCX_REDIRECT);
            assert_eq!(frame, expected_frame(&outputs[2], 7));
        }
        assert_eq!(loopback_tx_packets() - before, 20, "2 clones per datagram");
        let timed = fanout.counters(&r.key).unwrap().unwrap();
        assert_eq!((timed.rx_packets, timed.timed), (10, 10));
        assert!(timed.lookup_ns > 0, "{timed:?}");
        // Two clones sent through the namespace's loopback per datagram take well over the
        // checks and the lookup.
        assert!(timed.fanout_ns > timed.lookup_ns, "{timed:?}");
        // An expired datagram is timed up to its rule and has no fan-out.
        fanout.run(&input_frame(1, true), IN_IF).unwrap();
        let expired = fanout.counters(&r.key).unwrap().unwrap();
        assert_eq!((expired.timed, expired.ttl_expired), (11, 1));
        assert_eq!(expired.fanout_ns, timed.fanout_ns);
        // Strangers are not timed.
        assert_eq!(
            fanout.run(&input_frame(8, true), IN_IF + 1).unwrap().0,
            TCX_NEXT
        );
        assert_eq!(fanout.counters(&r.key).unwrap().unwrap().timed, 11);
    });
}

#[test]
fn the_handicapped_program_forwards_alike_and_takes_its_time() {
    if !root_or_skip("the_handicapped_program_forwards_alike_and_takes_its_time") {
        return;
    }
    in_own_namespace(|| {
        // 20 us: reached within the spin bound even at 5 ns per clock reading.
        let handicap_ns = 20_000;
        let options = ProgramOptions {
            handicap_ns,
            ..Default::default()
        };
        let outputs = vec![output(1, 6000), output(2, 5000)];
        let r = rule(Ipv4Addr::UNSPECIFIED, outputs.clone());
        // The kernel's clock around the program alone (no system call in it); the shortest
        // of 5 runs, against the same program without the handicap.
        let shortest = |options: ProgramOptions| {
            let fanout = TcFanout::load(8, options).expect("map and program load");
            fanout.insert(&r).unwrap();
            let runs: Vec<_> = (0..5)
                .map(|_| fanout.run_measured(&input_frame(8, true), IN_IF).unwrap())
                .collect();
            for run in &runs {
                assert_eq!(run.verdict, TCX_REDIRECT);
                assert_eq!(run.output, expected_frame(&outputs[1], 7));
            }
            runs.iter().map(|run| run.duration_ns).min().unwrap()
        };
        let (plain, handicapped) = (shortest(ProgramOptions::default()), shortest(options));
        eprintln!("program run: {plain} ns, handicapped {handicapped} ns");
        // (Run-to-run noise is a few hundred ns; the handicap adds 20000.)
        assert!(
            handicapped >= plain + handicap_ns * 9 / 10,
            "a forwarded datagram waits the handicap out: {plain} ns plain, {handicapped} ns"
        );
        let fanout = TcFanout::load(8, options).expect("map and program load");
        fanout.insert(&r).unwrap();
        // A stranger is not a rule's: no wait, straight on.
        let mut other_port = input_frame(8, true);
        other_port[36..38].copy_from_slice(&5001u16.to_be_bytes());
        assert_eq!(fanout.run(&other_port, IN_IF).unwrap().0, TCX_NEXT);
    });
}
