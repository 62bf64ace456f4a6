//! `relay run --dataplane tc`: the rules forwarded by a tcx program at each input interface's
//! ingress ([`netio::tc_fanout`]) instead of by the worker threads.
//!
//! [`TcDataplane`] keeps the program's map equal to the published rule table: after every
//! change it writes the rules that are new or changed (a rule's entry is replaced as a whole;
//! the old entry's counters are carried over), deletes the ones that are gone, and links the program to every
//! interface a rule reads from (unlinked with its last rule). An interface that goes away
//! takes its link with it; the re-sync moves its rules to the new index when it comes back and
//! the next sync follows. A refused map change or link is logged and counted; that rule's
//! datagrams are then not forwarded (the workers receive nothing in this mode).
//!
//! What is given up against the worker data plane: VLAN-tagged inputs (refused at `add`),
//! more than [`MAX_OUTPUTS`] outputs per rule, `--egress udp`. `relay ctl stats`
//! shows each rule's and output's counters from the program (carried over when a rule's entry
//! is rewritten), the totals under `tc_dataplane` ([`TcReport`]); the workers' stay 0. With
//! `--timing` the program times each datagram and `stats` shows two stages under `timing`
//! ([`TcDataplane::timing`]): `tc_lookup` and `tc_fanout`, with their mean only (the program
//! keeps sums, not histograms).

use crate::stats::StageSummary;
use crate::table::{CompiledRule, FlowKey, RuleTable};
use crate::ttl::{TtlMode, TtlPolicy};
use netio::bpf::TcxLink;
use netio::tc_fanout::{FanoutCounters, FanoutKey, FanoutOutput, FanoutRule, TcFanout};
use serde::Serialize;
use std::collections::HashMap;
use std::io;
use std::sync::Arc;

pub use netio::tc_fanout::MAX_OUTPUTS;

/// Where datagrams are forwarded (`relay run --dataplane`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataplaneKind {
    /// The worker threads (packet socket in, frames built per output).
    #[default]
    User,
    /// A tcx program at each input interface's ingress ([`TcDataplane`]).
    Tc,
}

impl DataplaneKind {
    /// The command-line name.
    pub fn name(self) -> &'static str {
        match self {
            DataplaneKind::User => "user",
            DataplaneKind::Tc => "tc",
        }
    }
}

/// What the data plane needs from the kernel (a fake in tests).
pub trait FanoutTable: Send {
    fn insert(&mut self, rule: &FanoutRule) -> io::Result<()>;
    fn remove(&mut self, key: &FanoutKey) -> io::Result<()>;
    fn counters(&self, key: &FanoutKey) -> io::Result<Option<FanoutCounters>>;
    fn attach(&mut self, ifindex: u32) -> io::Result<()>;
    fn detach(&mut self, ifindex: u32);
}

/// The loaded program, its map and one tcx link per input interface.
pub struct KernelFanoutTable {
    program: TcFanout,
    links: HashMap<u32, TcxLink>,
}

impl KernelFanoutTable {
    /// Loads the program with room for `max_rules` rules (the timing one with `timing`) and
    /// checks that this kernel links it (see [`crate::input_filter`]).
    pub fn load(max_rules: u32, timing: bool) -> anyhow::Result<KernelFanoutTable> {
        let program = TcFanout::load(max_rules, timing)?;
        crate::input_filter::check_tcx_links(|ifindex| program.attach(ifindex))?;
        Ok(KernelFanoutTable {
            program,
            links: HashMap::new(),
        })
    }
}

impl FanoutTable for KernelFanoutTable {
    fn insert(&mut self, rule: &FanoutRule) -> io::Result<()> {
        self.program.insert(rule)
    }

    fn remove(&mut self, key: &FanoutKey) -> io::Result<()> {
        self.program.remove(key).map(|_| ())
    }

    fn counters(&self, key: &FanoutKey) -> io::Result<Option<FanoutCounters>> {
        self.program.counters(key)
    }

    fn attach(&mut self, ifindex: u32) -> io::Result<()> {
        let link = self.program.attach(ifindex)?;
        self.links.insert(ifindex, link);
        Ok(())
    }

    fn detach(&mut self, ifindex: u32) {
        self.links.remove(&ifindex);
    }
}

/// The tc data plane in `relay ctl stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TcReport {
    /// Rules in the program's map.
    pub rules: usize,
    /// Input interfaces the program is linked to (unless `errors` counts a refused link).
    pub interfaces: usize,
    /// Map changes or links the kernel refused (logged).
    pub errors: u64,
    /// Datagrams forwarded by the installed rules.
    pub rx_packets: u64,
    /// Of those, not forwarded because their TTL ran out.
    pub ttl_expired: u64,
    /// Copies handed to output interfaces.
    pub sent: u64,
    /// Copies a kernel helper refused.
    pub send_failed: u64,
}

/// The published table's rules, mirrored into a [`FanoutTable`].
pub struct TcDataplane {
    table: Box<dyn FanoutTable>,
    ttl: TtlPolicy,
    installed: HashMap<FlowKey, Arc<CompiledRule>>,
    /// Rules per input interface; an interface is linked while it has one.
    interfaces: HashMap<u32, usize>,
    /// Per rule id, the counters of its map entries that were replaced or moved (a rewritten
    /// entry starts from zero): a rule's counters never go back.
    carried: HashMap<u64, FanoutCounters>,
    errors: u64,
}

impl TcDataplane {
    pub fn new(table: Box<dyn FanoutTable>, ttl: TtlPolicy) -> TcDataplane {
        TcDataplane {
            table,
            ttl,
            installed: HashMap::new(),
            interfaces: HashMap::new(),
            carried: HashMap::new(),
            errors: 0,
        }
    }

    /// Makes the program forward exactly `table`'s rules.
    pub fn sync(&mut self, table: &RuleTable) {
        let gone: Vec<FlowKey> = self
            .installed
            .keys()
            .filter(|key| table.get(key).is_none())
            .copied()
            .collect();
        for key in gone {
            self.uninstall(&key);
        }
        for (key, rule) in table.iter() {
            let same = self
                .installed
                .get(key)
                .is_some_and(|old| Arc::ptr_eq(old, rule));
            if !same {
                self.install(key, rule);
            }
        }
        let ids: std::collections::HashSet<u64> = table.iter().map(|(_, r)| r.id).collect();
        self.carried.retain(|id, _| ids.contains(id));
    }

    /// Keeps the counters of `key`'s entry (of rule `id`) before it is replaced or removed.
    fn carry(&mut self, key: &FlowKey, id: u64) {
        if let Ok(Some(counters)) = self.table.counters(&fanout_key(key)) {
            add_counters(self.carried.entry(id).or_default(), &counters);
        }
    }

    fn install(&mut self, key: &FlowKey, rule: &Arc<CompiledRule>) {
        if key.vlan != 0 {
            self.failed(
                format_args!("rule {}", rule.id),
                "VLAN inputs are not forwarded",
            );
            return;
        }
        match self.installed.get(key).map(|old| old.id) {
            Some(old_id) => self.carry(key, old_id),
            None => self.link(key.ifindex),
        }
        if let Err(e) = self.table.insert(&self.fanout_rule(key, rule)) {
            self.failed(format_args!("writing rule {}", rule.id), e);
        }
        self.installed.insert(*key, rule.clone());
    }

    fn uninstall(&mut self, key: &FlowKey) {
        if let Some(id) = self.installed.get(key).map(|rule| rule.id) {
            self.carry(key, id);
        }
        if let Err(e) = self.table.remove(&fanout_key(key)) {
            self.failed(format_args!("removing {}:{}", key.group, key.port), e);
        }
        self.installed.remove(key);
        if let Some(rules) = self.interfaces.get_mut(&key.ifindex) {
            *rules -= 1;
            if *rules == 0 {
                self.interfaces.remove(&key.ifindex);
                self.table.detach(key.ifindex);
            }
        }
    }

    fn link(&mut self, ifindex: u32) {
        let rules = self.interfaces.entry(ifindex).or_default();
        *rules += 1;
        if *rules == 1
            && let Err(e) = self.table.attach(ifindex)
        {
            self.failed(format_args!("linking to interface {ifindex}"), e);
        }
    }

    fn fanout_rule(&self, key: &FlowKey, rule: &CompiledRule) -> FanoutRule {
        FanoutRule {
            key: fanout_key(key),
            ttl_limit: self.ttl.limit,
            ttl_set: self.ttl.mode == TtlMode::Set,
            outputs: rule
                .outputs
                .iter()
                .map(|output| FanoutOutput {
                    ifindex: output.ifindex,
                    header: output.header,
                })
                .collect(),
        }
    }

    fn failed(&mut self, what: std::fmt::Arguments<'_>, error: impl std::fmt::Display) {
        self.errors += 1;
        tracing::warn!("--dataplane tc: {what}: {error}; its datagrams are not forwarded");
    }

    /// The program's counters of the rule under `key`, if it is installed and readable.
    pub fn rule_counters(&self, key: &FlowKey) -> Option<FanoutCounters> {
        let rule = self.installed.get(key)?;
        let mut counters = self.table.counters(&fanout_key(key)).ok().flatten()?;
        if let Some(carried) = self.carried.get(&rule.id) {
            add_counters(&mut counters, carried);
        }
        Some(counters)
    }

    /// Totals over the installed rules' counters (a rule the kernel cannot read counts 0).
    pub fn report(&self) -> TcReport {
        let total = self.totals();
        TcReport {
            rules: self.installed.len(),
            interfaces: self.interfaces.len(),
            errors: self.errors,
            rx_packets: total.rx_packets,
            ttl_expired: total.ttl_expired,
            sent: total.sent.iter().sum(),
            send_failed: total.failed.iter().sum(),
        }
    }

    /// The program's stage times over the installed rules (`--timing`): `tc_lookup` (the
    /// checks and the rule's lookup) and `tc_fanout` (every output's header and checksum, and
    /// the clones' sends; the last output's send is after the program), each over the
    /// datagrams timed, mean only. Empty stages (nothing timed yet) have 0 samples.
    pub fn timing(&self) -> Vec<StageSummary> {
        let total = self.totals();
        [
            ("tc_lookup", total.lookup_ns),
            ("tc_fanout", total.fanout_ns),
        ]
        .into_iter()
        .map(|(stage, ns)| StageSummary::mean_only(stage, total.timed, ns))
        .collect()
    }

    /// The installed rules' counters added up (output by output; a rule the kernel cannot
    /// read counts 0).
    fn totals(&self) -> FanoutCounters {
        let mut total = FanoutCounters::default();
        for key in self.installed.keys() {
            if let Some(counters) = self.rule_counters(key) {
                add_counters(&mut total, &counters);
            }
        }
        total
    }
}

/// `into += more`, output by output (outputs `into` lacks are added).
fn add_counters(into: &mut FanoutCounters, more: &FanoutCounters) {
    into.rx_packets += more.rx_packets;
    into.rx_bytes += more.rx_bytes;
    into.ttl_expired += more.ttl_expired;
    into.timed += more.timed;
    into.lookup_ns += more.lookup_ns;
    into.fanout_ns += more.fanout_ns;
    for (to, from) in [
        (&mut into.sent, &more.sent),
        (&mut into.sent_bytes, &more.sent_bytes),
        (&mut into.failed, &more.failed),
    ] {
        if to.len() < from.len() {
            to.resize(from.len(), 0);
        }
        for (t, f) in to.iter_mut().zip(from) {
            *t += f;
        }
    }
}

fn fanout_key(key: &FlowKey) -> FanoutKey {
    FanoutKey {
        ifindex: key.ifindex,
        group: key.group,
        port: key.port,
        source: key.source,
    }
}

#[cfg(test)]
#[path = "tc_dataplane_tests.rs"]
mod tests;
