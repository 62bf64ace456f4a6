//! The relay's control-plane state: installed rules, their memberships and compiled forms, and
//! the answers to `list`, `stats` and `memberships`.
//!
//! Every change publishes a new version of the [`RuleTable`] atomically, built incrementally
//! from the current one ([`RuleTable::with_rule`], [`RuleTable::without_rule`]: O(√n), not a
//! rebuild), so adding or removing one rule never disturbs another rule's traffic. Finding a
//! rule by its input is a hash lookup, so an add or remove costs the same with 10 or 100,000
//! rules installed. [`RelayLimits`] bound the rules and their outputs. A rule is installed only when its
//! interfaces exist and its input membership succeeded; a failed `add` changes nothing.
//! Interfaces that later vanish, come back or change are followed by [`Relay::resync`]
//! (module `resync`): such a rule is `waiting` until they are usable again.
//!
//! [`RuleTable`]: crate::table::RuleTable
//! [`RuleTable::with_rule`]: crate::table::RuleTable::with_rule
//! [`RuleTable::without_rule`]: crate::table::RuleTable::without_rule

mod resync;

use crate::dataplane::SocketDropProbe;
use crate::drop_reason::DropReason;
use crate::input_filter::{InputFilter, InputFilterReport};
use crate::resolve::{RuleState, Unusable};
use crate::rule::{Endpoint, Input, Rule};
use crate::rule_guard::{GuardError, RuleGuard};
use crate::stats::{self, OutputStats, StageSummary, StageTimings, WorkerStats};
use crate::table::{CompiledOutput, CompiledRule, FlowKey, TablePublisher};
use crate::tc_dataplane::{TcDataplane, TcReport};
use crate::ttl::TtlMode;
use crate::udp_egress::{EgressMode, UdpSockets};
use netio::iface::{self, InterfaceError};
use netio::membership::{
    JoinTarget, MembershipError, MembershipKey, MembershipReport, Memberships, SocketFactory,
};
use netio::wire::FrameHeader;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};

/// An error for one control request: a message and, when the OS gave one, its errno.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    pub message: String,
    pub errno: Option<i32>,
}

impl RequestError {
    pub fn new(message: impl Into<String>) -> Self {
        RequestError {
            message: message.into(),
            errno: None,
        }
    }
}

impl From<MembershipError> for RequestError {
    fn from(e: MembershipError) -> Self {
        RequestError {
            errno: e.errno(),
            message: e.to_string(),
        }
    }
}

impl From<InterfaceError> for RequestError {
    fn from(e: InterfaceError) -> Self {
        RequestError::new(e.to_string())
    }
}

/// The interfaces of the relay's namespace by name ([`iface::list`]).
type Interfaces = HashMap<String, iface::Interface>;

struct InstalledRule {
    rule: Rule,
    /// `None` while the input interface is unusable: the rule is not in the table.
    key: Option<FlowKey>,
    membership: MembershipKey,
    /// Its outputs are those of the rule's outputs that are usable now.
    compiled: Arc<CompiledRule>,
    /// Every output's counters in rule order (kept while an output is unusable).
    output_stats: Vec<Arc<OutputStats>>,
    /// Empty when active.
    waiting_for: Vec<Unusable>,
}

impl InstalledRule {
    fn state(&self) -> RuleState {
        RuleState::of(&self.waiting_for)
    }

    fn waiting_text(&self) -> Vec<String> {
        self.waiting_for.iter().map(|u| u.to_string()).collect()
    }
}

struct State<F: SocketFactory> {
    rules: BTreeMap<u64, InstalledRule>,
    /// The rule using each input (one rule per input).
    inputs: HashMap<Input, u64>,
    next_id: u64,
    memberships: Memberships<F>,
    udp_sockets: UdpSockets,
    /// Memberships whose re-join after an interface change was refused (logged once).
    rejoin_refused: BTreeSet<MembershipKey>,
    /// Loop and loopback checks, with their index of installed rules.
    guard: RuleGuard,
    /// `--input-filter`: follows every change of the table's keys.
    input_filter: Option<InputFilter>,
    /// `--dataplane tc`: follows every published table.
    tc: Option<TcDataplane>,
}

impl<F: SocketFactory> State<F> {
    /// A rule's key moved in the table from `old` to `new`.
    fn track_key(&mut self, old: Option<&FlowKey>, new: Option<&FlowKey>) {
        if let Some(filter) = &mut self.input_filter {
            filter.track(old, new);
        }
    }

    /// `table` was just published.
    fn follow_table(&mut self, table: &crate::table::RuleTable) {
        if let Some(tc) = &mut self.tc {
            tc.sync(table);
        }
    }
}

/// The control plane of a running relay.
pub struct Relay<F: SocketFactory> {
    state: Mutex<State<F>>,
    publisher: Arc<TablePublisher>,
    workers: Vec<Arc<WorkerStats>>,
    drop_probe: Option<SocketDropProbe>,
    egress: EgressMode,
    ttl: u8,
    ttl_mode: TtlMode,
    timing: bool,
    limits: RelayLimits,
}

/// Bounds on what the control plane accepts (`relay run --max-rules`, `--max-outputs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// Installed rules at most.
    pub max_rules: usize,
    /// Outputs per rule at most.
    pub max_outputs: usize,
}

impl Default for RelayLimits {
    fn default() -> Self {
        RelayLimits {
            max_rules: 100_000,
            max_outputs: 64,
        }
    }
}

/// One rule in `list`.
#[derive(Debug, Clone, Serialize)]
pub struct RuleEntry {
    pub id: u64,
    pub rule: String,
    pub state: RuleState,
    /// The interfaces a `waiting` rule waits for, e.g. `eth1 (missing)`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutputCounters {
    pub output: String,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    pub tx_errors: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RuleCounters {
    pub id: u64,
    pub rule: String,
    pub state: RuleState,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for: Vec<String>,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub outputs: Vec<OutputCounters>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WorkerCounters {
    pub worker: usize,
    /// `running`, `restarting` or `failed` ([`crate::stats::WorkerState`]).
    pub state: &'static str,
    /// Times the worker was restarted after a failure.
    pub restarts: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub rx_errors: u64,
    /// Frames the kernel dropped because the worker's socket queue was full.
    pub socket_drops: u64,
    pub tx_packets: u64,
    /// Of `tx_packets`, those sent from a transmit ring (`--send ring`).
    pub tx_ring_packets: u64,
    pub batches: u64,
    pub ignored_outgoing: u64,
    /// With `--dataplane tc`: frames of the program's rules, left to it.
    pub in_kernel: u64,
    pub drops: BTreeMap<&'static str, u64>,
}

/// The `stats` answer.
#[derive(Debug, Clone, Serialize)]
pub struct StatsReport {
    /// `packet` (AF_PACKET frames) or `udp` (UDP sockets).
    pub egress: crate::udp_egress::EgressMode,
    pub rules: Vec<RuleCounters>,
    pub workers: Vec<WorkerCounters>,
    pub drops: BTreeMap<&'static str, u64>,
    /// Per-stage timing percentiles (ns), only with `--timing`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<Vec<StageSummary>>,
    /// Only with `--input-filter`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_filter: Option<InputFilterReport>,
    /// Only with `--dataplane tc` (the program's rules' counters are then the program's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tc_dataplane: Option<TcReport>,
}

impl<F: SocketFactory> Relay<F> {
    pub fn new(
        memberships: Memberships<F>,
        publisher: Arc<TablePublisher>,
        workers: Vec<Arc<WorkerStats>>,
        ttl: u8,
        timing: bool,
    ) -> Self {
        Relay {
            state: Mutex::new(State {
                rules: BTreeMap::new(),
                inputs: HashMap::new(),
                next_id: 1,
                memberships,
                udp_sockets: UdpSockets::default(),
                rejoin_refused: BTreeSet::new(),
                guard: RuleGuard::new(TtlMode::default(), EgressMode::Packet),
                input_filter: None,
                tc: None,
            }),
            publisher,
            workers,
            drop_probe: None,
            egress: EgressMode::Packet,
            ttl,
            ttl_mode: TtlMode::default(),
            timing,
            limits: RelayLimits::default(),
        }
    }

    /// Replaces the default [`RelayLimits`].
    pub fn with_limits(mut self, limits: RelayLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Sends outputs through UDP sockets instead of AF_PACKET frames (`--egress udp`).
    pub fn with_egress(mut self, egress: EgressMode) -> Self {
        self.egress = egress;
        self.reset_guard();
        self
    }

    /// How forwarded TTLs are chosen (`--ttl-mode`; the workers apply it): with `set`, rules
    /// that could loop are refused.
    pub fn with_ttl_mode(mut self, ttl_mode: TtlMode) -> Self {
        self.ttl_mode = ttl_mode;
        self.reset_guard();
        self
    }

    /// Accepts outputs on loopback interfaces, which a relay refuses (their frames come straight
    /// back in). Only for benches and fuzzing that have no other interface than `lo`; `relay
    /// run` never calls it. Call it after the other builders.
    pub fn allowing_loopback_outputs(self) -> Self {
        self.lock().guard.allow_loopback_outputs = true;
        self
    }

    /// A fresh guard for the current modes (builders run before any rule is added).
    fn reset_guard(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        state.guard = RuleGuard::new(self.ttl_mode, self.egress);
    }

    /// Keeps the installed rules' input out of the host's IP stack (`--input-filter`).
    pub fn with_input_filter(self, filter: InputFilter) -> Self {
        self.lock().input_filter = Some(filter);
        self
    }

    /// Forwards in the kernel instead of in the workers (`--dataplane tc`).
    pub fn with_tc_dataplane(self, tc: TcDataplane) -> Self {
        self.lock().tc = Some(tc);
        self
    }

    /// Lets `stats` read the kernel's drop counters of the workers' sockets.
    pub fn with_drop_probe(mut self, probe: SocketDropProbe) -> Self {
        self.drop_probe = Some(probe);
        self
    }

    fn lock(&self) -> MutexGuard<'_, State<F>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Installs a rule; returns its id. On error no rule and no membership changed (a UDP
    /// egress socket opened on the way stays cached for the next rule on that interface).
    ///
    /// Phases: the input must be free, the interfaces resolve and the outputs compile, the input
    /// membership is joined, and only then is the rule installed and the table published.
    pub fn add(&self, rule: Rule) -> Result<u64, RequestError> {
        let mut state = self.lock();
        check_limits(&self.limits, &state, &rule)?;
        check_input_free(&state, &rule)?;
        let refused = |state: &State<F>, e: GuardError| refusal(state, &rule, e);
        state
            .guard
            .check_loops(&rule)
            .map_err(|e| refused(&state, e))?;
        let interfaces = iface::list()?;
        let input_if = find_interface(&interfaces, &rule.input.endpoint.interface)?;
        let outputs = rule
            .outputs
            .iter()
            .map(|output| self.compile_output(&mut state, &interfaces, output))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.into_request(|e| refused(&state, e)))?;
        let membership = join_input(&mut state.memberships, &rule.input, input_if)?;
        let id = state.next_id;
        state.next_id += 1;
        let key = FlowKey {
            ifindex: input_if.index,
            vlan: rule.input.vlan.unwrap_or(0),
            group: rule.input.endpoint.group,
            port: rule.input.endpoint.port,
            source: rule.input.source.unwrap_or(Ipv4Addr::UNSPECIFIED),
        };
        let output_stats = outputs.iter().map(|o| o.stats.clone()).collect();
        let compiled = Arc::new(CompiledRule {
            id,
            stats: Arc::default(),
            outputs: outputs.into_boxed_slice(),
            in_kernel: state.tc.is_some() && crate::tc_dataplane::forwards_in_kernel(&rule),
        });
        self.publisher
            .update(|table| table.with_rule(key, compiled.clone()));
        state.track_key(None, Some(&key));
        state.follow_table(&self.publisher.current());
        state.inputs.insert(rule.input.clone(), id);
        state.guard.insert(id, &rule);
        state.rules.insert(
            id,
            InstalledRule {
                rule,
                key: Some(key),
                membership,
                compiled,
                output_stats,
                waiting_for: Vec::new(),
            },
        );
        Ok(id)
    }

    /// The egress of one output: its interface's index, MAC and address, and with `--egress
    /// udp` the interface's UDP socket.
    fn compile_output(
        &self,
        state: &mut State<F>,
        interfaces: &Interfaces,
        output: &Endpoint,
    ) -> Result<CompiledOutput, OutputError> {
        let out_if = find_interface(interfaces, &output.interface)?;
        state
            .guard
            .check_output_interface(output, out_if)
            .map_err(OutputError::Refused)?;
        let source = out_if.require_ipv4()?;
        let udp = match self.egress {
            EgressMode::Packet => None,
            EgressMode::Udp => Some(
                state
                    .udp_sockets
                    .get(&output.interface, out_if.index, source, self.ttl)
                    .map_err(|e| {
                        OutputError::Request(RequestError {
                            message: format!(
                                "opening the UDP egress socket on {}: {e}",
                                output.interface
                            ),
                            errno: e.raw_os_error(),
                        })
                    })?,
            ),
        };
        Ok(CompiledOutput {
            ifindex: out_if.index,
            header: FrameHeader {
                source_mac: out_if.mac,
                source,
                group: output.group,
                source_port: 0,
                destination_port: output.port,
                ttl: self.ttl,
                tos: 0,
                // Atomic (DF) datagrams: the id stays 0, see `netio::wire::write_frame`.
                ident: 0,
            },
            udp,
            stats: Arc::new(OutputStats::default()),
        })
    }

    /// Removes a rule by id.
    pub fn remove(&self, id: u64) -> Result<u64, RequestError> {
        let mut state = self.lock();
        let installed = state.rules.remove(&id).ok_or_else(|| {
            RequestError::new(format!("no rule with id {id}: see `relay ctl list`"))
        })?;
        state.inputs.remove(&installed.rule.input);
        if let Some(key) = installed.key {
            self.publisher.update(|table| table.without_rule(&key, id));
            state.track_key(Some(&key), None);
            state.follow_table(&self.publisher.current());
        }
        state.guard.remove(id, &installed.rule);
        if let Err(e) = state.memberships.leave(&installed.membership) {
            tracing::warn!("rule {id} removed but its membership was not: {e}");
        }
        Ok(id)
    }

    /// Removes the rule equal to `rule` (same input and outputs).
    pub fn remove_rule(&self, rule: &Rule) -> Result<u64, RequestError> {
        let state = self.lock();
        let id = state
            .inputs
            .get(&rule.input)
            .filter(|id| state.rules.get(id).is_some_and(|r| r.rule == *rule))
            .copied()
            .ok_or_else(|| {
                RequestError::new(format!(
                    "no rule {rule} is installed: see `relay ctl list` (or remove by id)"
                ))
            })?;
        drop(state);
        self.remove(id)
    }

    pub fn list(&self) -> Vec<RuleEntry> {
        self.lock()
            .rules
            .iter()
            .map(|(id, r)| RuleEntry {
                id: *id,
                rule: r.rule.to_string(),
                state: r.state(),
                waiting_for: r.waiting_text(),
            })
            .collect()
    }

    pub fn memberships(&self) -> MembershipReport {
        self.lock().memberships.report()
    }

    /// Leaves every group and closes every helper socket (shutdown).
    pub fn leave_all(&self) {
        self.lock().memberships.leave_all();
    }

    pub fn stats(&self) -> StatsReport {
        if let Some(probe) = &self.drop_probe {
            probe.collect();
        }
        let state = self.lock();
        let input_filter = state.input_filter.as_ref().map(InputFilter::report);
        let tc_dataplane = state.tc.as_ref().map(TcDataplane::report);
        // With the tc data plane its program's stage times come first, then the workers' if
        // they have rules (otherwise they idle).
        let tc_timing = state
            .tc
            .as_ref()
            .filter(|_| self.timing)
            .map(|tc| (tc.timing(), tc.worker_rules() > 0));
        // The idle workers' histograms are not merged when the program's times stand alone.
        let workers_timed = self.timing
            && tc_timing
                .as_ref()
                .is_none_or(|(_, workers_have_rules)| *workers_have_rules);
        let rules = state
            .rules
            .iter()
            .map(|(id, r)| rule_counters(*id, r, state.tc.as_ref()))
            .collect();
        drop(state);
        let mut drops: BTreeMap<&'static str, u64> =
            DropReason::ALL.iter().map(|r| (r.name(), 0)).collect();
        let mut merged = StageTimings::new();
        let workers = self
            .workers
            .iter()
            .enumerate()
            .map(|(index, w)| {
                let worker_drops: BTreeMap<&'static str, u64> = DropReason::ALL
                    .iter()
                    .map(|r| (r.name(), stats::read(&w.drops[*r as usize])))
                    .collect();
                for (name, count) in &worker_drops {
                    *drops.entry(name).or_default() += count;
                }
                if workers_timed {
                    merged.merge(&w.timings());
                }
                WorkerCounters {
                    worker: index,
                    state: w.state().name(),
                    restarts: stats::read(&w.restarts),
                    rx_packets: stats::read(&w.rx_packets),
                    rx_bytes: stats::read(&w.rx_bytes),
                    rx_errors: stats::read(&w.rx_errors),
                    socket_drops: stats::read(&w.socket_drops),
                    tx_packets: stats::read(&w.tx_packets),
                    tx_ring_packets: stats::read(&w.tx_ring_packets),
                    batches: stats::read(&w.batches),
                    ignored_outgoing: stats::read(&w.ignored_outgoing),
                    in_kernel: stats::read(&w.in_kernel),
                    drops: worker_drops,
                }
            })
            .collect();
        StatsReport {
            egress: self.egress,
            rules,
            workers,
            drops,
            timing: self.timing.then(|| stage_times(tc_timing, &merged)),
            input_filter,
            tc_dataplane,
        }
    }
}

/// The stage times `stats` shows: the workers', or with `--dataplane tc` the program's and,
/// while the workers have rules of their own, the workers' stages that timed anything.
fn stage_times(tc: Option<(Vec<StageSummary>, bool)>, workers: &StageTimings) -> Vec<StageSummary> {
    match tc {
        None => workers.summary(),
        Some((stages, false)) => stages,
        Some((mut stages, true)) => {
            stages.extend(workers.summary().into_iter().filter(|s| s.samples > 0));
            stages
        }
    }
}

/// A rule's counters: the workers', or with `--dataplane tc` the program's for its key.
fn rule_counters(id: u64, r: &InstalledRule, tc: Option<&TcDataplane>) -> RuleCounters {
    let mut counters = RuleCounters {
        id,
        rule: r.rule.to_string(),
        state: r.state(),
        waiting_for: r.waiting_text(),
        rx_packets: stats::read(&r.compiled.stats.rx_packets),
        rx_bytes: stats::read(&r.compiled.stats.rx_bytes),
        outputs: r
            .rule
            .outputs
            .iter()
            .zip(r.output_stats.iter())
            .map(|(endpoint, out)| OutputCounters {
                output: endpoint.to_string(),
                tx_packets: stats::read(&out.tx_packets),
                tx_bytes: stats::read(&out.tx_bytes),
                tx_errors: stats::read(&out.tx_errors),
            })
            .collect(),
    };
    if let Some(kernel) = tc
        .zip(r.key.as_ref())
        .and_then(|(tc, key)| tc.rule_counters(key))
    {
        counters.rx_packets = kernel.rx_packets;
        counters.rx_bytes = kernel.rx_bytes;
        for (index, out) in counters.outputs.iter_mut().enumerate() {
            let at = |v: &Vec<u64>| v.get(index).copied().unwrap_or(0);
            out.tx_packets = at(&kernel.sent);
            out.tx_bytes = at(&kernel.sent_bytes);
            out.tx_errors = at(&kernel.failed);
        }
    }
    counters
}

/// Refuses a rule over the [`RelayLimits`], naming the limit and the flag that raises it.
fn check_limits<F: SocketFactory>(
    limits: &RelayLimits,
    state: &State<F>,
    rule: &Rule,
) -> Result<(), RequestError> {
    if rule.outputs.len() > limits.max_outputs {
        return Err(RequestError::new(format!(
            "rule has {} outputs, more than the limit of {} per rule: split it, or raise the \
             limit with `relay run --max-outputs`",
            rule.outputs.len(),
            limits.max_outputs
        )));
    }
    if state.rules.len() >= limits.max_rules {
        return Err(RequestError::new(format!(
            "the relay already has {} rules, its limit: remove rules, or raise the limit with \
             `relay run --max-rules`",
            limits.max_rules
        )));
    }
    Ok(())
}

/// Why an output did not compile: a request error, or a refusal of the [`RuleGuard`] (printed
/// with the rules' text by [`refusal`]).
pub(crate) enum OutputError {
    Request(RequestError),
    Refused(GuardError),
}

impl<E: Into<RequestError>> From<E> for OutputError {
    fn from(e: E) -> Self {
        OutputError::Request(e.into())
    }
}

impl OutputError {
    pub(crate) fn into_request(
        self,
        refused: impl FnOnce(GuardError) -> RequestError,
    ) -> RequestError {
        match self {
            OutputError::Request(e) => e,
            OutputError::Refused(e) => refused(e),
        }
    }
}

/// A guard refusal as a request error naming the new rule and the installed one.
fn refusal<F: SocketFactory>(state: &State<F>, rule: &Rule, e: GuardError) -> RequestError {
    RequestError::new(e.message(rule, |id| {
        state
            .rules
            .get(&id)
            .map_or_else(|| format!("id {id}"), |r| r.rule.to_string())
    }))
}

/// Refuses a rule whose input another rule already uses.
fn check_input_free<F: SocketFactory>(state: &State<F>, rule: &Rule) -> Result<(), RequestError> {
    match state.inputs.get(&rule.input) {
        Some(id) => Err(RequestError::new(format!(
            "input {} is already used by rule {id}: remove it first or add outputs to it",
            rule.input
        ))),
        None => Ok(()),
    }
}

fn find_interface<'a>(
    interfaces: &'a Interfaces,
    name: &str,
) -> Result<&'a iface::Interface, InterfaceError> {
    interfaces.get(name).ok_or_else(|| InterfaceError::Unknown {
        name: name.to_string(),
    })
}

/// Joins the input's group (source-specific joins need the interface's address).
fn join_input<F: SocketFactory>(
    memberships: &mut Memberships<F>,
    input: &Input,
    input_if: &iface::Interface,
) -> Result<MembershipKey, RequestError> {
    if input.source.is_some() && input_if.ipv4.is_none() {
        return Err(InterfaceError::NoIpv4 {
            name: input_if.name.clone(),
        }
        .into());
    }
    let membership = membership_key(input);
    memberships.join(
        &membership,
        &JoinTarget {
            ifindex: input_if.index,
            ifaddr: input_if.ipv4,
            group: input.endpoint.group,
            source: input.source,
        },
    )?;
    Ok(membership)
}

fn membership_key(input: &Input) -> MembershipKey {
    MembershipKey {
        interface: input.endpoint.interface.clone(),
        group: input.endpoint.group,
        source: input.source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::null_kernel::NullKernel;
    use netio::membership::{Limits, Strategy};

    /// A relay whose joins always succeed. Needs an interface with an IPv4 address: `lo` has
    /// 127.0.0.1 in every namespace (and is allowed as an output here). Shared with `resync`.
    pub(super) fn relay() -> (Relay<NullKernel>, Arc<TablePublisher>) {
        let limits = Limits {
            igmp_max_memberships: 20,
            optmem_max: 131072,
        };
        let publisher = TablePublisher::new();
        let relay = Relay::new(
            Memberships::new(Strategy::Pool, limits, NullKernel),
            publisher.clone(),
            vec![Arc::new(WorkerStats::default())],
            8,
            false,
        )
        .allowing_loopback_outputs();
        (relay, publisher)
    }

    #[test]
    fn add_list_remove_publish_tables() {
        let (relay, publisher) = relay();
        let a: Rule = "lo:239.1.0.1:5000 -> lo:239.2.0.1:5000".parse().unwrap();
        let b: Rule = "lo:239.1.0.1:5001 -> lo:239.2.0.2:5000".parse().unwrap();
        let id_a = relay.add(a.clone()).unwrap();
        let id_b = relay.add(b.clone()).unwrap();
        assert_ne!(id_a, id_b);
        assert_eq!(publisher.current().len(), 2);
        assert_eq!(relay.list().len(), 2);
        // Both rules share group 239.1.0.1: one membership, two references.
        let report = relay.memberships();
        assert_eq!(report.interfaces[0].sockets[0].groups.len(), 1);
        assert_eq!(report.interfaces[0].sockets[0].groups[0].rules, 2);

        let err = relay.add(a.clone()).unwrap_err();
        assert!(err.message.contains("already used"), "{}", err.message);
        relay.remove_rule(&a).unwrap();
        assert_eq!(publisher.current().len(), 1);
        assert!(relay.remove(id_a).is_err());
        relay.remove(id_b).unwrap();
        assert!(publisher.current().is_empty());
        assert!(relay.memberships().interfaces.is_empty());
    }

    #[test]
    fn unknown_interfaces_are_rejected_without_side_effects() {
        let (relay, publisher) = relay();
        let err = relay
            .add(
                "nosuchif0:239.1.0.1:5000 -> lo:239.2.0.1:5000"
                    .parse()
                    .unwrap(),
            )
            .unwrap_err();
        assert!(err.message.contains("unknown interface"), "{}", err.message);
        let err = relay
            .add(
                "lo:239.1.0.1:5000 -> nosuchif0:239.2.0.1:5000"
                    .parse()
                    .unwrap(),
            )
            .unwrap_err();
        assert!(err.message.contains("nosuchif0"));
        assert!(relay.list().is_empty());
        assert!(publisher.current().is_empty());
        assert!(relay.memberships().interfaces.is_empty());
    }

    #[test]
    fn set_mode_refuses_loops_in_both_directions() {
        let (relay, publisher) = relay();
        let relay = relay.with_ttl_mode(TtlMode::Set);
        relay.lock().guard.allow_loopback_outputs = true;
        let hairpin: Rule = "lo:239.9.0.1:5000 -> lo:239.9.0.1:5000".parse().unwrap();
        let err = relay.add(hairpin).unwrap_err();
        assert!(err.message.contains("its own input"), "{}", err.message);
        let a: Rule = "lo:239.1.0.1:5000 -> lo:239.2.0.1:5000".parse().unwrap();
        let id_a = relay.add(a.clone()).unwrap();
        // A new output feeding rule a's input, and a new input fed by rule a's output.
        for text in [
            "lo:239.3.0.1:5000 -> lo:239.1.0.1:6000",
            "lo:239.2.0.1:5000 -> lo:239.4.0.1:5000",
        ] {
            let err = relay.add(text.parse().unwrap()).unwrap_err();
            assert!(
                err.message.contains(&format!("rule {id_a} ({a})")) && err.message.contains(text),
                "names both rules: {}",
                err.message
            );
        }
        assert_eq!(publisher.current().len(), 1, "nothing else installed");
        relay.remove(id_a).unwrap();
        relay
            .add("lo:239.2.0.1:5000 -> lo:239.4.0.1:5000".parse().unwrap())
            .unwrap();
    }

    #[test]
    fn loopback_outputs_are_refused() {
        let (relay, publisher) = relay();
        relay.lock().guard.allow_loopback_outputs = false;
        let err = relay
            .add("lo:239.1.0.1:5000 -> lo:239.2.0.1:5000".parse().unwrap())
            .unwrap_err();
        assert!(err.message.contains("loopback"), "{}", err.message);
        assert!(publisher.current().is_empty());
        assert!(relay.memberships().interfaces.is_empty());
    }

    #[test]
    fn stats_report_every_drop_reason() {
        let (relay, _) = relay();
        relay
            .add("lo:239.1.0.1:5000 -> lo:239.2.0.1:5000".parse().unwrap())
            .unwrap();
        let report = relay.stats();
        assert_eq!(report.drops.len(), DropReason::COUNT);
        assert_eq!(report.rules[0].outputs[0].output, "lo:239.2.0.1:5000");
        assert!(report.timing.is_none());
    }

    #[test]
    fn limits_name_the_limit_and_the_flag() {
        let (relay, publisher) = relay();
        let relay = relay.with_limits(RelayLimits {
            max_rules: 2,
            max_outputs: 2,
        });
        let wide: Rule =
            "lo:239.1.0.9:5000 -> lo:239.2.0.1:5000, lo:239.2.0.2:5000, lo:239.2.0.3:5000"
                .parse()
                .unwrap();
        let err = relay.add(wide).unwrap_err();
        assert!(
            err.message.contains("3 outputs") && err.message.contains("--max-outputs"),
            "{}",
            err.message
        );
        for n in 1..=2 {
            let rule = format!("lo:239.1.0.{n}:5000 -> lo:239.2.0.1:5000");
            relay.add(rule.parse().unwrap()).unwrap();
        }
        let err = relay
            .add("lo:239.1.0.3:5000 -> lo:239.2.0.1:5000".parse().unwrap())
            .unwrap_err();
        assert!(
            err.message.contains("2 rules") && err.message.contains("--max-rules"),
            "{}",
            err.message
        );
        assert_eq!((relay.list().len(), publisher.current().len()), (2, 2));
        // Removing one makes room again, and remove by text finds the rule by its input.
        relay
            .remove_rule(&"lo:239.1.0.1:5000 -> lo:239.2.0.1:5000".parse().unwrap())
            .unwrap();
        let other_outputs: Rule = "lo:239.1.0.2:5000 -> lo:239.2.0.9:5000".parse().unwrap();
        assert!(
            relay.remove_rule(&other_outputs).is_err(),
            "same input, other outputs"
        );
        relay
            .add("lo:239.1.0.3:5000 -> lo:239.2.0.1:5000".parse().unwrap())
            .unwrap();
        assert_eq!(publisher.current().len(), 2);
    }
}
