//! `relay run --dataplane tc`: the rules forwarded by a tcx program at each input interface's
//! ingress ([`netio::tc_fanout`]) instead of by the worker threads.
//!
//! [`TcDataplane`] keeps the program's map equal to the published rule table: after every
//! change it writes the rules that are new or changed (a rule's entry is replaced as a whole;
//! the old entry's counters are carried over), deletes the ones that are gone, and links the program to every
//! interface a rule reads from (unlinked with its last rule). An interface that goes away
//! takes its link with it; the re-sync moves its rules to the new index when it comes back and
//! the next sync follows. A refused map change or link is logged and counted; that rule's
//! datagrams are then not forwarded.
//!
//! The rules the program cannot forward ([`forwards_in_kernel`]: a VLAN-tagged input, more
//! than [`MAX_OUTPUTS`] outputs) are the workers': their [`CompiledRule::in_kernel`] is false,
//! and while the table has one the workers' receive sockets take frames
//! ([`TcDataplane::with_worker_switch`]; otherwise they refuse every frame and the workers
//! idle). The workers then see every frame (their tap runs before tcx ingress) and leave the
//! program's rules alone (counted as `in_kernel`). An untagged worker rule gets a pass entry in
//! the map ([`FanoutRule::pass`]), so that its datagrams never fall through to an any-source
//! rule the program forwards. `--egress udp` is not combined with this data plane.
//! `relay ctl stats` shows each program rule's and output's counters from the program (carried
//! over when a rule's entry is rewritten), the totals under `tc_dataplane` ([`TcReport`]); the
//! workers' rules count in the workers as always. With
//! `--timing` the program times each datagram and `stats` shows two stages under `timing`
//! ([`TcDataplane::timing`]): `tc_lookup` and `tc_fanout`, with their mean only (the program
//! keeps sums, not histograms).

use crate::stats::StageSummary;
use crate::table::{CompiledRule, FlowKey, RuleTable};
use crate::ttl::{TtlMode, TtlPolicy};
use netio::bpf::TcxLink;
use netio::tc_fanout::{
    FanoutCounters, FanoutKey, FanoutOutput, FanoutRule, ProgramOptions, TcFanout,
};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::Arc;

pub use netio::tc_fanout::MAX_OUTPUTS;

/// Whether the tcx program can forward `rule`: an untagged input (the program reads untagged
/// frames only) and at most [`MAX_OUTPUTS`] outputs. With `--dataplane tc` the workers forward
/// the others.
pub fn forwards_in_kernel(rule: &crate::rule::Rule) -> bool {
    rule.input.vlan.unwrap_or(0) == 0 && rule.outputs.len() <= MAX_OUTPUTS
}

/// Turns the workers' receiving on (true) or off ([`crate::dataplane::Dataplane::receive_switch`]).
pub type WorkerSwitch = Box<dyn FnMut(bool) -> io::Result<()> + Send>;

/// Where datagrams are forwarded (`relay run --dataplane`).
///
/// No `Default`: without `--dataplane` the relay takes tc where the kernel links its program
/// and no flag needs the workers, else the workers (`relay run --help`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataplaneKind {
    /// The worker threads (packet socket in, frames built per output).
    User,
    /// A tcx program at each input interface's ingress ([`TcDataplane`]); the workers forward
    /// the rules it cannot.
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
    /// Loads the program variant of `options` with room for `max_rules` rules and checks that
    /// this kernel links it (see [`crate::input_filter`]).
    pub fn load(max_rules: u32, options: ProgramOptions) -> anyhow::Result<KernelFanoutTable> {
        let program = TcFanout::load(max_rules, options)?;
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
    /// Rules the workers forward (tagged input, too many outputs for the program).
    pub worker_rules: usize,
    /// Whether the workers' receive sockets take frames (while `worker_rules` > 0).
    pub workers_receive: bool,
    /// Map changes, links or worker switches the kernel refused (logged).
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
    /// The untagged workers' rules, written as pass entries.
    passes: HashSet<FlowKey>,
    worker_rules: usize,
    worker_switch: Option<WorkerSwitch>,
    workers_receive: bool,
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
            passes: HashSet::new(),
            worker_rules: 0,
            worker_switch: None,
            workers_receive: false,
            interfaces: HashMap::new(),
            carried: HashMap::new(),
            errors: 0,
        }
    }

    /// Rules of the last synced table the workers forward.
    pub fn worker_rules(&self) -> usize {
        self.worker_rules
    }

    /// Lets the data plane turn the workers' receiving on while they have a rule to forward
    /// (off at the start: the caller opens their sockets refusing every frame).
    pub fn with_worker_switch(mut self, switch: WorkerSwitch) -> TcDataplane {
        self.worker_switch = Some(switch);
        self
    }

    /// Makes the program forward exactly `table`'s rules that are [`CompiledRule::in_kernel`],
    /// pass the untagged others on, and the workers receive while there are others.
    pub fn sync(&mut self, table: &RuleTable) {
        let in_kernel = |key: &FlowKey| table.get(key).is_some_and(|rule| rule.in_kernel);
        let gone: Vec<FlowKey> = self
            .installed
            .keys()
            .filter(|key| !in_kernel(key))
            .copied()
            .collect();
        for key in gone {
            self.uninstall(&key);
        }
        let wanted_passes: HashSet<FlowKey> = table
            .iter()
            .filter(|(key, rule)| !rule.in_kernel && key.vlan == 0)
            .map(|(key, _)| *key)
            .collect();
        self.remove_passes(&wanted_passes, in_kernel);
        for (key, rule) in table.iter().filter(|(_, rule)| rule.in_kernel) {
            let same = self
                .installed
                .get(key)
                .is_some_and(|old| Arc::ptr_eq(old, rule));
            if !same {
                self.install(key, rule);
            }
        }
        self.add_passes(wanted_passes);
        let ids: HashSet<u64> = table.iter().map(|(_, r)| r.id).collect();
        self.carried.retain(|id, _| ids.contains(id));
        self.worker_rules = table.iter().filter(|(_, rule)| !rule.in_kernel).count();
        self.switch_workers(self.worker_rules > 0);
    }

    /// Removes the pass entries not `wanted`; one whose key is now a program rule's is left for
    /// that rule's entry to replace (no moment without an entry).
    fn remove_passes(&mut self, wanted: &HashSet<FlowKey>, in_kernel: impl Fn(&FlowKey) -> bool) {
        let gone: Vec<FlowKey> = self.passes.difference(wanted).copied().collect();
        for key in gone {
            self.passes.remove(&key);
            if !in_kernel(&key)
                && let Err(e) = self.table.remove(&fanout_key(&key))
            {
                self.refused(format_args!("removing the pass entry of {key:?}"), e);
            }
        }
    }

    fn add_passes(&mut self, wanted: HashSet<FlowKey>) {
        for key in wanted {
            if self.passes.contains(&key) {
                continue;
            }
            match self.table.insert(&FanoutRule::pass(fanout_key(&key))) {
                Ok(()) => {
                    self.passes.insert(key);
                }
                Err(e) => self.refused(format_args!("writing the pass entry of {key:?}"), e),
            }
        }
    }

    /// Turns the workers' receiving `on` or off if it is not so already (retried at the next
    /// sync if refused).
    fn switch_workers(&mut self, on: bool) {
        if on == self.workers_receive {
            return;
        }
        let Some(switch) = self.worker_switch.as_mut() else {
            return;
        };
        match switch(on) {
            Ok(()) => {
                self.workers_receive = on;
                tracing::info!(
                    "--dataplane tc: the workers {} ({} rule(s) of theirs)",
                    if on { "receive" } else { "idle" },
                    self.worker_rules
                );
            }
            Err(e) => self.refused(
                format_args!(
                    "turning the workers' receiving {}",
                    if on { "on" } else { "off" }
                ),
                e,
            ),
        }
    }

    /// Keeps the counters of `key`'s entry (of rule `id`) before it is replaced or removed.
    fn carry(&mut self, key: &FlowKey, id: u64) {
        if let Ok(Some(counters)) = self.table.counters(&fanout_key(key)) {
            add_counters(self.carried.entry(id).or_default(), &counters);
        }
    }

    fn install(&mut self, key: &FlowKey, rule: &Arc<CompiledRule>) {
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

    fn refused(&mut self, what: std::fmt::Arguments<'_>, error: impl std::fmt::Display) {
        self.errors += 1;
        tracing::warn!("--dataplane tc: {what}: {error}");
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
            worker_rules: self.worker_rules,
            workers_receive: self.workers_receive,
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
