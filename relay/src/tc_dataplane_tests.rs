use super::*;
use crate::table::CompiledOutput;
use netio::wire::FrameHeader;
use std::net::Ipv4Addr;
use std::sync::Mutex;

/// Records what the data plane asked of the kernel; refuses links to interface 99 and keeps
/// the rules written, with a counter per rule.
#[derive(Default, Clone)]
struct Recorder {
    log: Arc<Mutex<Vec<String>>>,
    rules: Arc<Mutex<HashMap<FanoutKey, FanoutRule>>>,
}

impl Recorder {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
    fn log(&self, entry: String) {
        self.log.lock().unwrap().push(entry);
    }
}

impl FanoutTable for Recorder {
    fn insert(&mut self, rule: &FanoutRule) -> io::Result<()> {
        self.log(format!(
            "insert {} {} x{}",
            rule.key.ifindex,
            rule.key.group,
            rule.outputs.len()
        ));
        self.rules.lock().unwrap().insert(rule.key, rule.clone());
        Ok(())
    }
    fn remove(&mut self, key: &FanoutKey) -> io::Result<()> {
        self.log(format!("remove {} {}", key.ifindex, key.group));
        self.rules.lock().unwrap().remove(key);
        Ok(())
    }
    fn counters(&self, key: &FanoutKey) -> io::Result<Option<FanoutCounters>> {
        Ok(self
            .rules
            .lock()
            .unwrap()
            .get(key)
            .map(|rule| FanoutCounters {
                rx_packets: 10,
                rx_bytes: 1000,
                ttl_expired: 1,
                sent: vec![9; rule.outputs.len()],
                sent_bytes: vec![900; rule.outputs.len()],
                failed: vec![0; rule.outputs.len()],
                timed: 10,
                lookup_ns: 1_000,
                fanout_ns: 10 * 200 * rule.outputs.len() as u64,
            }))
    }
    fn attach(&mut self, ifindex: u32) -> io::Result<()> {
        self.log(format!("attach {ifindex}"));
        if ifindex == 99 {
            return Err(io::Error::from_raw_os_error(libc::ENODEV));
        }
        Ok(())
    }
    fn detach(&mut self, ifindex: u32) {
        self.log(format!("detach {ifindex}"));
    }
}

fn key(ifindex: u32, group: [u8; 4]) -> FlowKey {
    FlowKey {
        ifindex,
        vlan: 0,
        group: Ipv4Addr::from(group),
        port: 5000,
        source: Ipv4Addr::UNSPECIFIED,
    }
}

fn rule(id: u64, outputs: usize) -> Arc<CompiledRule> {
    let output = |i: usize| CompiledOutput {
        ifindex: 20 + i as u32,
        header: FrameHeader {
            source_mac: [2, 0, 0, 0, 0, i as u8],
            source: Ipv4Addr::new(198, 18, 1, 1),
            group: Ipv4Addr::new(239, 2, 0, i as u8),
            source_port: 0,
            destination_port: 6000,
            ttl: 8,
            tos: 0,
            ident: 0,
        },
        udp: None,
        stats: Arc::default(),
    };
    Arc::new(CompiledRule {
        id,
        stats: Arc::default(),
        outputs: (0..outputs).map(output).collect(),
        in_kernel: outputs <= MAX_OUTPUTS,
    })
}

trait WorkersRule {
    /// The same rule, the workers' (as a tagged input's would be).
    fn without_kernel(self) -> Arc<CompiledRule>;
}

impl WorkersRule for Arc<CompiledRule> {
    fn without_kernel(self) -> Arc<CompiledRule> {
        Arc::new(CompiledRule {
            id: self.id,
            stats: self.stats.clone(),
            outputs: self.outputs.clone(),
            in_kernel: false,
        })
    }
}

fn dataplane(recorder: &Recorder) -> TcDataplane {
    TcDataplane::new(
        Box::new(recorder.clone()),
        TtlPolicy::new(8, TtlMode::Decrement),
    )
}

#[test]
fn a_sync_writes_new_and_changed_rules_only_and_links_their_interfaces() {
    let recorder = Recorder::default();
    let mut tc = dataplane(&recorder);
    let (a, b) = (key(3, [239, 1, 0, 1]), key(3, [239, 1, 0, 2]));
    let (rule_a, rule_b) = (rule(1, 2), rule(2, 1));
    let table = RuleTable::new([(a, rule_a.clone()), (b, rule_b.clone())]);
    tc.sync(&table);
    let mut log = recorder.take();
    log.sort();
    assert_eq!(
        log,
        ["attach 3", "insert 3 239.1.0.1 x2", "insert 3 239.1.0.2 x1"]
    );
    tc.sync(&table);
    assert!(
        recorder.take().is_empty(),
        "nothing changed, nothing written"
    );
    // Rule 2 recompiled (an output interface came back): rewritten, its counters carried
    // over (the fake counts 10 in, 9 out per output for every entry it holds).
    let changed = table.with_rule(b, rule(2, 4));
    tc.sync(&changed);
    assert_eq!(recorder.take(), ["insert 3 239.1.0.2 x4"]);
    let counters_b = tc.rule_counters(&b).unwrap();
    assert_eq!(
        (counters_b.rx_packets, counters_b.sent),
        (20, vec![18, 9, 9, 9])
    );
    let report = tc.report();
    assert_eq!((report.rules, report.interfaces, report.errors), (2, 1, 0));
    assert_eq!((report.rx_packets, report.ttl_expired), (30, 3));
    assert_eq!((report.sent, report.send_failed), (9 * 2 + 18 + 27, 0));
    assert_eq!(tc.rule_counters(&a).unwrap().sent_bytes, vec![900; 2]);
    assert!(
        tc.rule_counters(&key(4, [239, 9, 9, 9])).is_none(),
        "not installed"
    );
    let written = recorder.rules.lock().unwrap()[&fanout_key(&a)].clone();
    assert_eq!((written.ttl_limit, written.ttl_set), (8, false));
    assert_eq!(written.outputs[1].ifindex, 21);
    assert_eq!(written.outputs[1].header, rule_a.outputs[1].header);
}

#[test]
fn the_last_rule_of_an_interface_unlinks_it_and_a_moved_rule_follows_its_index() {
    let recorder = Recorder::default();
    let mut tc = dataplane(&recorder);
    let (a, b) = (key(3, [239, 1, 0, 1]), key(3, [239, 1, 0, 2]));
    let table = RuleTable::new([(a, rule(1, 1)), (b, rule(2, 1))]);
    tc.sync(&table);
    recorder.take();
    let one_left = table.without_rule(&a, 1);
    tc.sync(&one_left);
    assert_eq!(recorder.take(), ["remove 3 239.1.0.1"]);
    // The input interface came back with index 8: the rule moves, the link follows.
    let moved = one_left
        .without_rule(&b, 2)
        .with_rule(key(8, [239, 1, 0, 2]), rule(2, 1));
    tc.sync(&moved);
    assert_eq!(
        recorder.take(),
        [
            "remove 3 239.1.0.2",
            "detach 3",
            "attach 8",
            "insert 8 239.1.0.2 x1"
        ]
    );
    tc.sync(&RuleTable::new([]));
    assert_eq!(recorder.take(), ["remove 8 239.1.0.2", "detach 8"]);
    assert_eq!(tc.report(), TcReport::default());
}

#[test]
fn refusals_are_counted() {
    let recorder = Recorder::default();
    let mut tc = dataplane(&recorder);
    tc.sync(&RuleTable::new([(key(99, [239, 1, 0, 2]), rule(2, 1))]));
    assert_eq!(tc.report().errors, 1, "the refused link");
    assert_eq!(
        recorder.take(),
        ["attach 99", "insert 99 239.1.0.2 x1"],
        "the rule is written anyway: a later link would forward it"
    );
}

/// A tc data plane whose worker switch is logged by `recorder` (refused while `refuse` is set).
fn with_switch(recorder: &Recorder, refuse: Arc<Mutex<bool>>) -> TcDataplane {
    let log = recorder.clone();
    dataplane(recorder).with_worker_switch(Box::new(move |on| {
        log.log(format!("workers {on}"));
        match *refuse.lock().unwrap() {
            true => Err(io::Error::from_raw_os_error(libc::ENOMEM)),
            false => Ok(()),
        }
    }))
}

#[test]
fn the_workers_get_the_rules_the_program_cannot_forward_and_receive_while_they_have_one() {
    let recorder = Recorder::default();
    let refuse = Arc::new(Mutex::new(false));
    let mut tc = with_switch(&recorder, refuse.clone());
    let tagged = FlowKey {
        vlan: 100,
        ..key(3, [239, 1, 0, 1])
    };
    let wide = key(3, [239, 1, 0, 2]);
    let plain = key(3, [239, 1, 0, 3]);
    let table = RuleTable::new([(plain, rule(1, 2))]);
    tc.sync(&table);
    assert_eq!(
        recorder.take(),
        ["attach 3", "insert 3 239.1.0.3 x2"],
        "workers stay off"
    );
    // A tagged rule: nothing written (the program passes tagged frames on); a rule of 33
    // outputs: a pass entry, so that its datagrams never reach an any-source rule.
    let mixed = table
        .with_rule(tagged, rule(2, 1).without_kernel())
        .with_rule(wide, rule(3, MAX_OUTPUTS + 1));
    tc.sync(&mixed);
    assert_eq!(recorder.take(), ["insert 3 239.1.0.2 x0", "workers true"]);
    let report = tc.report();
    assert_eq!(
        (report.rules, report.worker_rules, report.workers_receive),
        (1, 2, true)
    );
    assert!(tc.rule_counters(&wide).is_none(), "the workers count it");
    tc.sync(&mixed);
    assert!(recorder.take().is_empty(), "nothing changed");
    // The wide rule replaced by one the program takes: its entry replaces the pass entry.
    let narrowed = mixed.with_rule(wide, rule(3, 2));
    tc.sync(&narrowed);
    assert_eq!(recorder.take(), ["insert 3 239.1.0.2 x2"]);
    // A refused switch is counted and tried again at the next sync.
    *refuse.lock().unwrap() = true;
    let program_only = narrowed.without_rule(&tagged, 2);
    tc.sync(&program_only);
    assert_eq!(recorder.take(), ["workers false"]);
    assert_eq!((tc.report().errors, tc.report().workers_receive), (1, true));
    *refuse.lock().unwrap() = false;
    tc.sync(&program_only);
    assert_eq!(recorder.take(), ["workers false"]);
    assert!(!tc.report().workers_receive);
    // A pass entry goes with its rule.
    tc.sync(&program_only.with_rule(plain, rule(1, 40)));
    assert_eq!(
        recorder.take(),
        [
            "remove 3 239.1.0.3",
            "insert 3 239.1.0.3 x0",
            "workers true"
        ]
    );
    tc.sync(&RuleTable::new([]));
    let mut log = recorder.take();
    log.sort();
    assert_eq!(
        log,
        [
            "detach 3",
            "remove 3 239.1.0.2",
            "remove 3 239.1.0.3",
            "workers false"
        ]
    );
}

#[test]
fn timing_is_the_program_sums_over_the_timed_datagrams_mean_only() {
    let recorder = Recorder::default();
    let mut tc = dataplane(&recorder);
    assert_eq!(
        tc.timing(),
        [
            StageSummary::mean_only("tc_lookup", 0, 0),
            StageSummary::mean_only("tc_fanout", 0, 0)
        ],
        "nothing installed: no samples"
    );
    // Two rules of 2 and 4 outputs; the fake's entries each timed 10 datagrams, 100 ns per
    // lookup and 200 ns per output. Rule 2's entry rewritten once: its first entry carried.
    let (a, b) = (key(3, [239, 1, 0, 1]), key(3, [239, 1, 0, 2]));
    let table = RuleTable::new([(a, rule(1, 2)), (b, rule(2, 1))]);
    tc.sync(&table);
    tc.sync(&table.with_rule(b, rule(2, 4)));
    let stages = tc.timing();
    assert_eq!(stages.len(), 2);
    let (lookup, fanout) = (&stages[0], &stages[1]);
    assert_eq!((lookup.stage, lookup.samples), ("tc_lookup", 30));
    assert!((lookup.mean - 100.0).abs() < 1e-9, "{lookup:?}");
    assert_eq!((fanout.stage, fanout.samples), ("tc_fanout", 30));
    // (10 x 2 outputs + 10 x 1 + 10 x 4) x 200 ns over 30 datagrams.
    assert!(
        (fanout.mean - 1400.0 * 10.0 / 30.0).abs() < 1e-9,
        "{fanout:?}"
    );
    assert_eq!((lookup.p50, lookup.p99, lookup.max), (None, None, None));
    let json = serde_json::to_value(lookup).unwrap();
    assert!(json.get("p50").is_none(), "absent, not 0: {json}");
}
