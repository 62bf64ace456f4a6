//! [`Relay::resync`]: following interfaces that come and go.
//!
//! Rules name interfaces; the table, the compiled outputs and the memberships hold what those
//! names meant when the rule was added (index, MAC, address). A re-sync re-resolves every
//! rule against the interfaces the namespace has now ([`crate::resolve`]):
//!
//! - memberships follow their input interface: detached while it is missing (its helper
//!   sockets closed), joined again on its new index when it is back;
//! - a rule's table key follows its input's index; a rule without a usable input leaves the
//!   table, a rule without a usable output keeps forwarding to its other outputs;
//! - compiled outputs follow their interface's index, MAC and address (a UDP egress socket is
//!   opened again for a new index or address);
//! - the table is updated (incrementally, one publication per re-sync) only when some rule's
//!   key or outputs changed;
//! - each rule's change of state (`active` / `waiting`) is logged once, as is each refused
//!   re-join, so a re-sync every few seconds stays silent while nothing changes.

use super::{InstalledRule, Relay, RequestError, State};
use crate::resolve::{self, Interfaces, Resolved, Unusable};
use crate::table::{CompiledOutput, CompiledRule, FlowKey, RuleTable};
use netio::iface::{self, Interface, InterfaceError};
use netio::membership::SocketFactory;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

impl<F: SocketFactory> Relay<F> {
    /// Re-resolves every rule against the current interfaces (see the module docs). Returns
    /// whether the published table changed.
    pub fn resync(&self) -> Result<bool, InterfaceError> {
        let mut state = self.lock();
        // Listed under the lock, so an `add` never sees an older view than a re-sync applies.
        let interfaces = iface::list()?;
        follow_memberships(&mut state, &interfaces);
        let ids: Vec<u64> = state.rules.keys().copied().collect();
        let changes: Vec<TableChange> = ids
            .into_iter()
            .filter_map(|id| self.refresh_rule(&mut state, id, &interfaces))
            .collect();
        if changes.is_empty() {
            return Ok(false);
        }
        self.publisher
            .update(|table| apply_changes(table, &changes));
        for change in &changes {
            state.track_key(change.old.as_ref(), change.new.as_ref());
        }
        state.follow_table(&self.publisher.current());
        Ok(true)
    }

    /// Re-resolves one rule; returns the change of its table entry, if any.
    fn refresh_rule(
        &self,
        state: &mut State<F>,
        id: u64,
        interfaces: &Interfaces,
    ) -> Option<TableChange> {
        // The common case, nothing changed, touches nothing.
        if state
            .rules
            .get(&id)
            .is_none_or(|installed| is_current(installed, interfaces))
        {
            return None;
        }
        let mut installed = state.rules.remove(&id)?;
        let resolved = resolve::resolve(&installed.rule, interfaces);
        let mut waiting_for = resolved.waiting_for();
        let key = flow_key(&installed, &resolved);
        let outputs =
            self.recompile_outputs(state, &installed, &resolved, interfaces, &mut waiting_for);
        let mut change = None;
        if key != installed.key || !same_outputs(&installed.compiled.outputs, &outputs) {
            let compiled = Arc::new(CompiledRule {
                id,
                stats: installed.compiled.stats.clone(),
                outputs: outputs.into_boxed_slice(),
                in_kernel: installed.compiled.in_kernel,
            });
            // A rule out of the table (no input) whose outputs changed changes no table.
            if key.is_some() || installed.key.is_some() {
                change = Some(TableChange {
                    id,
                    old: installed.key,
                    new: key,
                    rule: compiled.clone(),
                });
            }
            installed.key = key;
            installed.compiled = compiled;
        }
        if waiting_for != installed.waiting_for {
            log_state_change(id, &installed, &waiting_for);
            installed.waiting_for = waiting_for;
        }
        state.rules.insert(id, installed);
        change
    }

    /// The compiled outputs of the rule's usable outputs: unchanged ones reused, the others
    /// compiled again with their counters kept. An output that fails to compile is added to
    /// `waiting_for`.
    fn recompile_outputs(
        &self,
        state: &mut State<F>,
        installed: &InstalledRule,
        resolved: &Resolved<'_>,
        interfaces: &Interfaces,
        waiting_for: &mut Vec<Unusable>,
    ) -> Vec<CompiledOutput> {
        let mut outputs = Vec::with_capacity(installed.rule.outputs.len());
        let slots = installed
            .rule
            .outputs
            .iter()
            .zip(&resolved.outputs)
            .zip(&installed.output_stats);
        for ((endpoint, resolved), stats) in slots {
            let Ok(interface) = resolved else {
                continue;
            };
            let old = installed
                .compiled
                .outputs
                .iter()
                .find(|o| Arc::ptr_eq(&o.stats, stats));
            if let Some(old) = old.filter(|o| compiled_for(o, interface)) {
                outputs.push(old.clone());
                continue;
            }
            match self.compile_output(state, interfaces, endpoint) {
                Ok(mut output) => {
                    output.stats = stats.clone();
                    outputs.push(output);
                }
                Err(error) => {
                    let message = error
                        .into_request(|refused| {
                            RequestError::new(
                                refused.message(&installed.rule, |id| format!("rule {id}")),
                            )
                        })
                        .message;
                    waiting_for.push(Unusable::Failed(endpoint.interface.clone(), message));
                    waiting_for.sort();
                    waiting_for.dedup();
                }
            }
        }
        outputs
    }
}

/// One rule's move in the table: out from `old`, in under `new` with `rule`.
struct TableChange {
    id: u64,
    old: Option<FlowKey>,
    new: Option<FlowKey>,
    rule: Arc<CompiledRule>,
}

/// `table` with every change applied (the incremental path of the table; one publication).
fn apply_changes(table: &RuleTable, changes: &[TableChange]) -> RuleTable {
    let mut next: Option<RuleTable> = None;
    for change in changes {
        if let Some(old) = change.old.filter(|old| Some(*old) != change.new) {
            next = Some(next.as_ref().unwrap_or(table).without_rule(&old, change.id));
        }
        if let Some(new) = change.new {
            let current = next.as_ref().unwrap_or(table);
            next = Some(current.with_rule(new, change.rule.clone()));
        }
    }
    next.unwrap_or_else(|| RuleTable::new(table.iter().map(|(k, r)| (*k, r.clone()))))
}

/// Detaches the memberships of missing input interfaces and joins those of present ones on
/// their current index and address (a no-op where they are already joined there).
fn follow_memberships<F: SocketFactory>(state: &mut State<F>, interfaces: &Interfaces) {
    let inputs: BTreeSet<&str> = state
        .rules
        .values()
        .map(|r| r.membership.interface.as_str())
        .collect();
    let inputs: Vec<String> = inputs.into_iter().map(str::to_owned).collect();
    for name in inputs {
        let Some(interface) = interfaces.get(&name) else {
            let detached = state.memberships.detach_interface(&name);
            if detached > 0 {
                tracing::warn!(
                    "interface {name} is gone: {detached} membership(s) wait for it to return"
                );
            }
            continue;
        };
        let attached = state
            .memberships
            .attach_interface(&name, resolve::link_of(interface));
        if !attached.joined.is_empty() {
            tracing::info!(
                "interface {name} (index {}): {} membership(s) joined again",
                interface.index,
                attached.joined.len()
            );
        }
        for key in &attached.joined {
            state.rejoin_refused.remove(key);
        }
        for (key, error) in attached.refused {
            if state.rejoin_refused.insert(key.clone()) {
                tracing::warn!("joining {key} again failed (retried on every re-sync): {error}");
            }
        }
    }
    let memberships = &state.memberships;
    state
        .rejoin_refused
        .retain(|key| memberships.references(key) > 0);
}

/// The table key of a rule whose input resolved.
fn flow_key(installed: &InstalledRule, resolved: &Resolved<'_>) -> Option<FlowKey> {
    let input = &installed.rule.input;
    resolved.input.as_ref().ok().map(|i| FlowKey {
        ifindex: i.index,
        vlan: input.vlan.unwrap_or(0),
        group: input.endpoint.group,
        port: input.endpoint.port,
        source: input.source.unwrap_or(Ipv4Addr::UNSPECIFIED),
    })
}

/// Whether the rule's key, compiled outputs and state match the interfaces as they are now.
fn is_current(installed: &InstalledRule, interfaces: &Interfaces) -> bool {
    let resolved = resolve::resolve(&installed.rule, interfaces);
    let outputs_current =
        resolved
            .outputs
            .iter()
            .zip(&installed.output_stats)
            .all(|(resolved, stats)| {
                let old = installed
                    .compiled
                    .outputs
                    .iter()
                    .find(|o| Arc::ptr_eq(&o.stats, stats));
                match (resolved, old) {
                    (Ok(interface), Some(old)) => compiled_for(old, interface),
                    (Err(_), None) => true,
                    _ => false,
                }
            });
    outputs_current
        && flow_key(installed, &resolved) == installed.key
        && resolved.waiting_for() == installed.waiting_for
}

/// Whether `output` was compiled for `interface` as it is now.
fn compiled_for(output: &CompiledOutput, interface: &Interface) -> bool {
    output.ifindex == interface.index
        && output.header.source_mac == interface.mac
        && Some(output.header.source) == interface.ipv4
}

fn same_outputs(old: &[CompiledOutput], new: &[CompiledOutput]) -> bool {
    old.len() == new.len()
        && old.iter().zip(new).all(|(a, b)| {
            a.ifindex == b.ifindex
                && a.header == b.header
                && Arc::ptr_eq(&a.stats, &b.stats)
                && match (&a.udp, &b.udp) {
                    (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                    (None, None) => true,
                    _ => false,
                }
        })
}

fn log_state_change(id: u64, installed: &InstalledRule, waiting_for: &[Unusable]) {
    let rule = &installed.rule;
    if waiting_for.is_empty() {
        tracing::info!("rule {id} ({rule}) is active again");
    } else {
        let names: Vec<String> = waiting_for.iter().map(|u| u.to_string()).collect();
        tracing::warn!(
            "rule {id} ({rule}) is waiting for {}; it resumes by itself",
            names.join(", ")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::relay;
    use super::Relay;
    use crate::null_kernel::NullKernel;
    use crate::resolve::RuleState;
    use crate::table::TablePublisher;
    use futures::TryStreamExt;
    use std::net::{IpAddr, Ipv4Addr};
    use std::sync::Arc;

    #[test]
    fn a_resync_without_changes_is_silent() {
        let (relay, publisher) = relay();
        relay
            .add("lo:239.1.0.1:5000 -> lo:239.2.0.1:5000".parse().unwrap())
            .unwrap();
        let before = publisher.current();
        assert!(!relay.resync().unwrap());
        assert!(
            Arc::ptr_eq(&before, &publisher.current()),
            "not republished"
        );
        assert_eq!(relay.list()[0].state, RuleState::Active);
        assert!(relay.list()[0].waiting_for.is_empty());
    }

    /// Runs `body` on a thread in a fresh network namespace with a netlink handle.
    fn in_fresh_netns(body: impl AsyncFnOnce(rtnetlink::Handle) + Send + 'static) {
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let (connection, handle, _) = rtnetlink::new_connection().unwrap();
                tokio::spawn(connection);
                body(handle).await;
            });
        })
        .join()
        .expect("namespace thread");
    }

    async fn index_of(handle: &rtnetlink::Handle, name: &str) -> u32 {
        let mut links = handle.link().get().match_name(name.to_string()).execute();
        links.try_next().await.unwrap().unwrap().header.index
    }

    /// A veth `name` (peer `{name}p`) with `addr`/24, up; returns its index.
    async fn create(handle: &rtnetlink::Handle, name: &str, addr: Ipv4Addr) -> u32 {
        let message = rtnetlink::LinkVeth::new(name, &format!("{name}p"))
            .up()
            .build();
        handle.link().add(message).execute().await.unwrap();
        let index = index_of(handle, name).await;
        handle
            .address()
            .add(index, IpAddr::V4(addr), 24)
            .execute()
            .await
            .unwrap();
        index
    }

    /// Renames `from` to `to` (down first: the kernel renames only a down interface), then up.
    async fn rename(handle: &rtnetlink::Handle, from: &str, to: &str) {
        let index = index_of(handle, from).await;
        let link = |b: rtnetlink::LinkMessageBuilder<rtnetlink::LinkUnspec>| b.build();
        let down = link(rtnetlink::LinkUnspec::new_with_index(index).down());
        handle.link().change(down).execute().await.unwrap();
        let renamed = link(rtnetlink::LinkUnspec::new_with_index(index).name(to));
        handle.link().change(renamed).execute().await.unwrap();
        let up = link(rtnetlink::LinkUnspec::new_with_index(index).up());
        handle.link().change(up).execute().await.unwrap();
    }

    async fn set_mac(handle: &rtnetlink::Handle, name: &str, mac: [u8; 6]) {
        let index = index_of(handle, name).await;
        let message = rtnetlink::LinkUnspec::new_with_index(index)
            .address(mac.to_vec())
            .build();
        handle.link().change(message).execute().await.unwrap();
    }

    /// Replaces every address of `name` with `addr`/24.
    async fn readdress(handle: &rtnetlink::Handle, name: &str, addr: Ipv4Addr) {
        let index = index_of(handle, name).await;
        let addresses: Vec<_> = handle
            .address()
            .get()
            .set_link_index_filter(index)
            .execute()
            .try_collect()
            .await
            .unwrap();
        for address in addresses {
            handle.address().del(address).execute().await.unwrap();
        }
        let new = IpAddr::V4(addr);
        handle
            .address()
            .add(index, new, 24)
            .execute()
            .await
            .unwrap();
    }

    async fn delete(handle: &rtnetlink::Handle, name: &str) {
        let index = index_of(handle, name).await;
        handle.link().del(index).execute().await.unwrap();
    }

    /// The group of the rule on `in0` (`in0:239.1.0.1:5000 -> out0:239.2.0.1:5000`).
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
    /// The source address of the rule's table key (any source).
    const ANY: Ipv4Addr = Ipv4Addr::UNSPECIFIED;

    #[test]
    fn rules_follow_interfaces_deleted_created_renamed_and_readdressed() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "SKIPPED (needs root for a network namespace): \
                 rules_follow_interfaces_deleted_created_renamed_and_readdressed"
            );
            return;
        }
        in_fresh_netns(async |handle| {
            let (relay, publisher, old_in) = relay_from_in0_to_out0(&handle).await;
            let new_in = input_deleted_and_created_again(&handle, &relay, &publisher, old_in).await;
            output_deleted_and_created_again(&handle, &relay, &publisher, new_in).await;
            output_mac_and_address_changed(&handle, &relay, &publisher, new_in).await;
            input_renamed_away_and_back(&handle, &relay, &publisher, new_in).await;

            // Removing a rule while it waits leaves its detached membership without error.
            delete(&handle, "in0").await;
            relay.resync().unwrap();
            relay.remove(1).unwrap();
            assert!(relay.memberships().interfaces.is_empty());
        });
    }

    /// Creates `in0` and `out0`, a relay with the rule between them; returns `in0`'s index.
    async fn relay_from_in0_to_out0(
        handle: &rtnetlink::Handle,
    ) -> (Relay<NullKernel>, Arc<TablePublisher>, u32) {
        let old_in = create(handle, "in0", Ipv4Addr::new(198, 18, 1, 2)).await;
        create(handle, "out0", Ipv4Addr::new(198, 18, 2, 1)).await;
        let (relay, publisher) = relay();
        relay
            .add("in0:239.1.0.1:5000 -> out0:239.2.0.1:5000".parse().unwrap())
            .unwrap();
        assert!(
            publisher
                .current()
                .lookup(old_in, 0, GROUP, 5000, ANY)
                .is_some()
        );
        (relay, publisher, old_in)
    }

    /// `in0` deleted (the rule waits, detached) then created again; returns its new index.
    async fn input_deleted_and_created_again(
        handle: &rtnetlink::Handle,
        relay: &Relay<NullKernel>,
        publisher: &TablePublisher,
        old_in: u32,
    ) -> u32 {
        delete(handle, "in0").await;
        assert!(relay.resync().unwrap());
        let list = relay.list();
        assert_eq!(list[0].state, RuleState::Waiting);
        assert_eq!(list[0].waiting_for, vec!["in0 (missing)".to_string()]);
        assert!(publisher.current().is_empty());
        assert!(relay.memberships().interfaces.is_empty(), "detached");
        let stats = relay.stats();
        assert_eq!(stats.rules[0].state, RuleState::Waiting);
        assert_eq!(stats.rules[0].outputs.len(), 1, "outputs still counted");
        assert!(!relay.resync().unwrap(), "nothing more changed");

        // Created again: a new index (the kernel never reuses one at once).
        let new_in = create(handle, "in0", Ipv4Addr::new(198, 18, 1, 2)).await;
        assert_ne!(old_in, new_in);
        assert!(relay.resync().unwrap());
        assert_eq!(relay.list()[0].state, RuleState::Active);
        let table = publisher.current();
        assert!(table.lookup(new_in, 0, GROUP, 5000, ANY).is_some());
        assert!(table.lookup(old_in, 0, GROUP, 5000, ANY).is_none());
        assert_eq!(relay.memberships().interfaces[0].sockets[0].groups.len(), 1);
        new_in
    }

    /// `out0` deleted: the rule waits, stays in the table, and its output comes back with the
    /// new index and MAC.
    async fn output_deleted_and_created_again(
        handle: &rtnetlink::Handle,
        relay: &Relay<NullKernel>,
        publisher: &TablePublisher,
        new_in: u32,
    ) {
        delete(handle, "out0").await;
        relay.resync().unwrap();
        assert_eq!(
            relay.list()[0].waiting_for,
            vec!["out0 (missing)".to_string()]
        );
        let rule = publisher.current();
        let compiled = rule.lookup(new_in, 0, GROUP, 5000, ANY).unwrap();
        assert!(compiled.outputs.is_empty());
        let new_out = create(handle, "out0", Ipv4Addr::new(198, 18, 2, 1)).await;
        relay.resync().unwrap();
        let table = publisher.current();
        let compiled = table.lookup(new_in, 0, GROUP, 5000, ANY).unwrap();
        assert_eq!(compiled.outputs[0].ifindex, new_out);
        assert_eq!(relay.list()[0].state, RuleState::Active);
    }

    /// A MAC or address change of `out0` reaches the output's frames.
    async fn output_mac_and_address_changed(
        handle: &rtnetlink::Handle,
        relay: &Relay<NullKernel>,
        publisher: &TablePublisher,
        new_in: u32,
    ) {
        let mac = [2, 0, 0x5e, 1, 2, 3];
        set_mac(handle, "out0", mac).await;
        assert!(relay.resync().unwrap());
        let table = publisher.current();
        let compiled = table.lookup(new_in, 0, GROUP, 5000, ANY).unwrap();
        assert_eq!(compiled.outputs[0].header.source_mac, mac);
        let moved = Ipv4Addr::new(198, 18, 2, 9);
        readdress(handle, "out0", moved).await;
        assert!(relay.resync().unwrap());
        let table = publisher.current();
        let compiled = table.lookup(new_in, 0, GROUP, 5000, ANY).unwrap();
        assert_eq!(compiled.outputs[0].header.source, moved);
    }

    /// `in0` renamed away and back: the rule waits, then resumes on the same index.
    async fn input_renamed_away_and_back(
        handle: &rtnetlink::Handle,
        relay: &Relay<NullKernel>,
        publisher: &TablePublisher,
        new_in: u32,
    ) {
        rename(handle, "in0", "in9").await;
        relay.resync().unwrap();
        assert_eq!(
            relay.list()[0].waiting_for,
            vec!["in0 (missing)".to_string()]
        );
        assert!(publisher.current().is_empty());
        rename(handle, "in9", "in0").await;
        relay.resync().unwrap();
        assert_eq!(relay.list()[0].state, RuleState::Active);
        assert!(
            publisher
                .current()
                .lookup(new_in, 0, GROUP, 5000, ANY)
                .is_some()
        );
        assert_eq!(relay.memberships().interfaces[0].sockets[0].groups.len(), 1);
    }
}
