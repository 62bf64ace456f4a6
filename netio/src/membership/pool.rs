//! [`Memberships`]: joins placed on helper sockets under one [`Strategy`], reference counted.
//!
//! - `pool`: a join goes to the first socket of its interface with room (capacity from
//!   [`Limits::capacity_per_socket`]); a join that still fails with ENOBUFS lowers that socket's
//!   capacity to what it holds and spills to the next (or a new) socket. An any-source and a
//!   source-specific join of one group never share a socket (the kernel refuses the any-source
//!   join with EADDRINUSE, or silently turns the any-source membership into a source-specific
//!   one); a join refused with EINVAL or EADDRINUSE spills too, and that socket is not asked
//!   for that group again (other groups still fill it).
//! - `single`: one socket per interface; the kernel's refusal is reported, nothing worked around,
//!   and mixing any-source and source-specific joins of one group is refused in plain words.
//! - `per-group`: a new socket for every membership.
//!
//! A membership is keyed by (interface, group, source) and reference counted: rules sharing a
//! group join it once; the last reference's removal leaves it (IP_DROP_MEMBERSHIP), and a socket
//! left without groups is closed. Every refusal is returned and remembered (the last
//! [`MAX_REMEMBERED_FAILURES`] per interface) for [`Memberships::report`].

use super::error::{JoinFailure, MembershipError};
use super::limits::Limits;
use super::socket::{JoinSocket, JoinTarget, MembershipKey, SocketFactory};
use super::strategy::Strategy;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::net::Ipv4Addr;

/// Join failures remembered per interface for the report.
pub const MAX_REMEMBERED_FAILURES: usize = 64;

pub(super) struct HelperSocket<S> {
    pub(super) id: u64,
    socket: S,
    /// Memberships on this socket with the target needed to leave them.
    pub(super) members: BTreeMap<MembershipKey, JoinTarget>,
    /// Lowered to the number of members when the kernel refuses a join (pool).
    pub(super) capacity: usize,
    /// Groups this socket refused with EINVAL or EADDRINUSE (pool): not asked again while
    /// the socket holds a membership of that group.
    refused_groups: BTreeSet<Ipv4Addr>,
}

impl<S> HelperSocket<S> {
    /// A membership on this socket the kernel cannot hold beside `key`: the same group joined
    /// the other way (any-source beside source-specific). Source-specific joins of one group
    /// from several sources share a socket (one INCLUDE source filter).
    fn mixed_with(&self, key: &MembershipKey) -> Option<&MembershipKey> {
        self.memberships_of(key.group)
            .find(|member| member.source.is_none() != key.source.is_none())
    }

    /// Every membership of `group` on this socket.
    fn memberships_of(&self, group: Ipv4Addr) -> impl Iterator<Item = &MembershipKey> {
        self.members
            .keys()
            .filter(move |member| member.group == group)
    }

    /// Whether the pool may try `key` here: room left, no mixing, not refused before.
    fn may_take(&self, key: &MembershipKey) -> bool {
        self.members.len() < self.capacity
            && !self.refused_groups.contains(&key.group)
            && self.mixed_with(key).is_none()
    }
}

pub(super) struct InterfaceSockets<S> {
    pub(super) sockets: Vec<HelperSocket<S>>,
    pub(super) failures: Vec<JoinFailure>,
}

impl<S> Default for InterfaceSockets<S> {
    fn default() -> Self {
        InterfaceSockets {
            sockets: Vec::new(),
            failures: Vec::new(),
        }
    }
}

/// The references to one membership and the helper socket holding it (0: none, detached by
/// [`Memberships::detach_interface`] or refused by [`Memberships::attach_interface`]).
pub(super) struct Reference {
    pub(super) socket: u64,
    pub(super) count: usize,
}

/// One group [`Memberships::join_groups`] could not join.
#[derive(Debug)]
pub struct RefusedGroup {
    pub group: Ipv4Addr,
    pub error: MembershipError,
}

/// What [`Memberships::join_groups`] did: the groups joined and the ones refused, in order.
#[derive(Debug, Default)]
pub struct GroupJoins {
    pub joined: Vec<Ipv4Addr>,
    pub refused: Vec<RefusedGroup>,
}

/// Memberships under one strategy, on sockets opened by `F`.
pub struct Memberships<F: SocketFactory> {
    strategy: Strategy,
    limits: Limits,
    pub(super) factory: F,
    pub(super) interfaces: BTreeMap<String, InterfaceSockets<F::Socket>>,
    pub(super) references: HashMap<MembershipKey, Reference>,
    next_socket_id: u64,
}

impl<F: SocketFactory> Memberships<F> {
    pub fn new(strategy: Strategy, limits: Limits, factory: F) -> Self {
        Memberships {
            strategy,
            limits,
            factory,
            interfaces: BTreeMap::new(),
            references: HashMap::new(),
            next_socket_id: 1,
        }
    }

    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Joins `key` (or adds a reference when it is already joined).
    pub fn join(
        &mut self,
        key: &MembershipKey,
        target: &JoinTarget,
    ) -> Result<(), MembershipError> {
        if let Some(reference) = self.references.get_mut(key) {
            reference.count += 1;
            return Ok(());
        }
        let socket = match self.strategy {
            Strategy::Pool => self.join_pool(key, target)?,
            Strategy::Single => {
                let index = match self.sockets(&key.interface).first() {
                    Some(_) => 0,
                    None => self.open_socket(&key.interface)?,
                };
                self.refuse_mixing(key, index)?;
                self.join_on(key, target, index)?
            }
            Strategy::PerGroup => {
                let index = self.open_socket(&key.interface)?;
                self.join_on(key, target, index)?
            }
        };
        self.references
            .insert(key.clone(), Reference { socket, count: 1 });
        Ok(())
    }

    /// Joins every group (any source) on one interface, going on past refusals: what the
    /// load generator's sink does before it receives.
    pub fn join_groups(
        &mut self,
        interface: &str,
        ifindex: u32,
        groups: &[Ipv4Addr],
    ) -> GroupJoins {
        let mut joins = GroupJoins::default();
        for &group in groups {
            let key = MembershipKey {
                interface: interface.to_string(),
                group,
                source: None,
            };
            let target = JoinTarget {
                ifindex,
                ifaddr: None,
                group,
                source: None,
            };
            match self.join(&key, &target) {
                Ok(()) => joins.joined.push(group),
                Err(error) => joins.refused.push(RefusedGroup { group, error }),
            }
        }
        joins
    }

    /// Drops one reference to `key`; the last one leaves the group and closes an empty socket.
    pub fn leave(&mut self, key: &MembershipKey) -> Result<(), MembershipError> {
        let reference = self
            .references
            .get_mut(key)
            .ok_or_else(|| MembershipError::NotJoined(key.clone()))?;
        reference.count -= 1;
        if reference.count > 0 {
            return Ok(());
        }
        let socket_id = reference.socket;
        self.references.remove(key);
        if let Some(entry) = self.interfaces.get_mut(&key.interface) {
            if let Some(index) = entry.sockets.iter().position(|s| s.id == socket_id) {
                let helper = &mut entry.sockets[index];
                if let Some(target) = helper.members.remove(key)
                    && let Err(e) = helper.socket.leave(&target)
                {
                    tracing::warn!("leaving {key} failed: {e}");
                }
                if helper.memberships_of(key.group).next().is_none() {
                    helper.refused_groups.remove(&key.group);
                }
                if helper.members.is_empty() {
                    entry.sockets.remove(index); // closes the socket
                }
            }
            if entry.sockets.is_empty() && entry.failures.is_empty() {
                self.interfaces.remove(&key.interface);
            }
        }
        Ok(())
    }

    /// Leaves everything and closes every helper socket (shutdown).
    pub fn leave_all(&mut self) {
        let keys: Vec<MembershipKey> = self.references.keys().cloned().collect();
        for key in keys {
            while self.references.contains_key(&key) {
                if self.leave(&key).is_err() {
                    break;
                }
            }
        }
        self.interfaces.clear();
    }

    /// How many references `key` has (0 when not joined).
    pub fn references(&self, key: &MembershipKey) -> usize {
        self.references.get(key).map_or(0, |r| r.count)
    }

    /// Helper sockets open on `interface`.
    pub fn socket_count(&self, interface: &str) -> usize {
        self.sockets(interface).len()
    }

    fn sockets(&self, interface: &str) -> &[HelperSocket<F::Socket>] {
        self.interfaces
            .get(interface)
            .map_or(&[], |e| e.sockets.as_slice())
    }

    fn open_socket(&mut self, interface: &str) -> Result<usize, MembershipError> {
        let socket = self
            .factory
            .open(interface)
            .map_err(|source| MembershipError::Open {
                interface: interface.to_string(),
                source,
            })?;
        let id = self.next_socket_id;
        self.next_socket_id += 1;
        let entry = self.interfaces.entry(interface.to_string()).or_default();
        entry.sockets.push(HelperSocket {
            id,
            socket,
            members: BTreeMap::new(),
            capacity: self.limits.capacity_per_socket(),
            refused_groups: BTreeSet::new(),
        });
        Ok(entry.sockets.len() - 1)
    }

    fn join_pool(
        &mut self,
        key: &MembershipKey,
        target: &JoinTarget,
    ) -> Result<u64, MembershipError> {
        let candidates: Vec<usize> = self
            .sockets(&key.interface)
            .iter()
            .enumerate()
            .filter(|(_, s)| s.may_take(key))
            .map(|(i, _)| i)
            .collect();
        for index in candidates {
            match self.try_join(key, target, index) {
                Ok(id) => return Ok(id),
                Err(e) if self.spill(key, index, &e) => {}
                Err(e) => return Err(self.refused(key, index, e)),
            }
        }
        let index = self.open_socket(&key.interface)?;
        self.join_on(key, target, index)
    }

    /// Whether the pool tries the next (or a new) socket after the socket at `index` refused
    /// `key` with `error`, noting why: ENOBUFS means the kernel's real limit is lower than
    /// computed (the socket is full); EINVAL or EADDRINUSE that this socket cannot hold this
    /// group beside what it holds (it is not asked for the group again).
    fn spill(&mut self, key: &MembershipKey, index: usize, error: &io::Error) -> bool {
        let Some(helper) = self
            .interfaces
            .get_mut(&key.interface)
            .and_then(|e| e.sockets.get_mut(index))
        else {
            return false;
        };
        match error.raw_os_error() {
            Some(libc::ENOBUFS) => helper.capacity = helper.members.len(),
            Some(libc::EINVAL | libc::EADDRINUSE) => {
                helper.refused_groups.insert(key.group);
            }
            _ => return false,
        }
        true
    }

    /// `single`: refuses `key` when the socket at `index` holds its group joined the other way
    /// (any-source beside source-specific), before the kernel is asked.
    fn refuse_mixing(&mut self, key: &MembershipKey, index: usize) -> Result<(), MembershipError> {
        let Some(entry) = self.interfaces.get_mut(&key.interface) else {
            return Ok(());
        };
        let Some(helper) = entry.sockets.get(index) else {
            return Ok(());
        };
        let Some(existing) = helper.mixed_with(key) else {
            return Ok(());
        };
        let error = MembershipError::MixedJoin {
            key: key.clone(),
            existing_source: existing.source,
            strategy: self.strategy,
            socket: helper.id,
        };
        let groups_on_socket = helper.members.len();
        remember(entry, key, 0, groups_on_socket, &error);
        Err(error)
    }

    fn try_join(
        &mut self,
        key: &MembershipKey,
        target: &JoinTarget,
        index: usize,
    ) -> io::Result<u64> {
        let helper = self
            .interfaces
            .get_mut(&key.interface)
            .and_then(|e| e.sockets.get_mut(index))
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))?;
        helper.socket.join(target)?;
        helper.members.insert(key.clone(), *target);
        Ok(helper.id)
    }

    /// Joins on the socket at `index`; on failure records it and closes the socket if empty.
    fn join_on(
        &mut self,
        key: &MembershipKey,
        target: &JoinTarget,
        index: usize,
    ) -> Result<u64, MembershipError> {
        match self.try_join(key, target, index) {
            Ok(id) => Ok(id),
            Err(e) => {
                let error = self.refused(key, index, e);
                if let Some(entry) = self.interfaces.get_mut(&key.interface)
                    && entry
                        .sockets
                        .get(index)
                        .is_some_and(|s| s.members.is_empty())
                {
                    entry.sockets.remove(index);
                }
                Err(error)
            }
        }
    }

    /// Turns a refused join into an error and remembers it for the report.
    fn refused(&mut self, key: &MembershipKey, index: usize, error: io::Error) -> MembershipError {
        let entry = self.interfaces.entry(key.interface.clone()).or_default();
        let (socket, groups_on_socket) = entry
            .sockets
            .get(index)
            .map_or((0, 0), |s| (s.id, s.members.len()));
        let error = MembershipError::JoinRefused {
            key: key.clone(),
            errno: error.raw_os_error().unwrap_or(libc::EIO),
            strategy: self.strategy,
            socket,
            groups_on_socket,
            limits: self.limits,
        };
        remember(
            entry,
            key,
            error.errno().unwrap_or(0),
            groups_on_socket,
            &error,
        );
        error
    }
}

/// Keeps a refusal for the report (the newest [`MAX_REMEMBERED_FAILURES`]).
fn remember<S>(
    entry: &mut InterfaceSockets<S>,
    key: &MembershipKey,
    errno: i32,
    groups_on_socket: usize,
    error: &MembershipError,
) {
    if entry.failures.len() >= MAX_REMEMBERED_FAILURES {
        entry.failures.remove(0);
    }
    entry.failures.push(JoinFailure {
        group: key.group,
        source: key.source,
        errno,
        groups_on_socket,
        error: error.to_string(),
    });
}
