//! IGMP memberships on helper sockets.
//!
//! The data plane receives with AF_PACKET and needs no membership to see frames, but snooping
//! switches and NIC filters forward a group only after a host joined it, so the relay joins
//! every input group on a "helper" UDP socket that never receives anything.
//!
//! Strategies ([`Strategy`]):
//! - `pool` (default): joins spread over as many helper sockets per interface as needed. A
//!   socket's capacity is `min(net.ipv4.igmp_max_memberships, net.core.optmem_max / 48)` read
//!   from the relay's namespace; a join that still fails with ENOBUFS lowers that socket's
//!   capacity and spills to the next (or a new) socket.
//! - `single`: the legacy design, one helper socket per interface; the kernel's refusal is
//!   reported, nothing is worked around.
//! - `per-group`: one helper socket per group (what one socat per stream does).
//!
//! A membership is keyed by (interface, group, source) and reference counted: rules sharing a
//! group join it once; the last rule's removal leaves it (IP_DROP_MEMBERSHIP), and a socket
//! left without groups is closed. The logic runs against [`SocketFactory`]/[`JoinSocket`] so
//! tests can use a fake socket layer; [`KernelSockets`] is the real one.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::str::FromStr;

/// Approximate option memory one membership charges against `optmem_max` (measured: 48 bytes).
pub const OPTMEM_BYTES_PER_MEMBERSHIP: u64 = 48;
/// Join failures remembered per interface for `relay ctl memberships`.
const MAX_REMEMBERED_FAILURES: usize = 64;

/// How joins are placed on helper sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    #[default]
    Pool,
    Single,
    PerGroup,
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "pool" => Ok(Strategy::Pool),
            "single" => Ok(Strategy::Single),
            "per-group" => Ok(Strategy::PerGroup),
            other => Err(format!(
                "unknown membership strategy {other:?}: use pool, single or per-group"
            )),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Pool => "pool",
            Strategy::Single => "single",
            Strategy::PerGroup => "per-group",
        })
    }
}

/// The namespace's limits on memberships per socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Limits {
    pub igmp_max_memberships: u64,
    pub optmem_max: u64,
}

impl Limits {
    /// Reads the limits from /proc/sys of the current network namespace.
    pub fn from_proc() -> io::Result<Limits> {
        Ok(Limits {
            igmp_max_memberships: crate::sys::read_sysctl(
                "/proc/sys/net/ipv4/igmp_max_memberships",
            )?,
            optmem_max: crate::sys::read_sysctl("/proc/sys/net/core/optmem_max")?,
        })
    }

    /// Memberships one socket is expected to hold (at least 1).
    pub fn capacity_per_socket(&self) -> usize {
        let by_optmem = self.optmem_max / OPTMEM_BYTES_PER_MEMBERSHIP;
        self.igmp_max_memberships.min(by_optmem).max(1) as usize
    }
}

/// One membership: (interface, group, optional source).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MembershipKey {
    pub interface: String,
    pub group: Ipv4Addr,
    pub source: Option<Ipv4Addr>,
}

impl fmt::Display for MembershipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.group)?;
        if let Some(source) = self.source {
            write!(f, "@{source}")?;
        }
        write!(f, " on {}", self.interface)
    }
}

/// Everything a socket needs to join or leave one membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinTarget {
    pub ifindex: u32,
    /// Interface address; required for source-specific joins.
    pub ifaddr: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub source: Option<Ipv4Addr>,
}

/// A helper socket that can hold memberships.
pub trait JoinSocket {
    fn join(&mut self, target: &JoinTarget) -> io::Result<()>;
    fn leave(&mut self, target: &JoinTarget) -> io::Result<()>;
}

/// Opens helper sockets.
pub trait SocketFactory {
    type Socket: JoinSocket;
    fn open(&mut self, interface: &str) -> io::Result<Self::Socket>;
}

/// Why a membership could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(
        "joining {key} failed: {}: the {strategy} helper socket #{socket} already holds {groups_on_socket} groups; net.ipv4.igmp_max_memberships = {}, net.core.optmem_max = {} (~{OPTMEM_BYTES_PER_MEMBERSHIP} bytes per membership){}",
        describe_errno(*errno),
        limits.igmp_max_memberships,
        limits.optmem_max,
        advice(*strategy, *errno)
    )]
    JoinRefused {
        key: MembershipKey,
        errno: i32,
        strategy: Strategy,
        socket: u64,
        groups_on_socket: usize,
        limits: Limits,
    },
    #[error("opening a helper socket for {interface} failed: {source}")]
    Open {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("{0} is not joined")]
    NotJoined(MembershipKey),
}

impl MembershipError {
    /// The OS error number behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            MembershipError::JoinRefused { errno, .. } => Some(*errno),
            MembershipError::Open { source, .. } => source.raw_os_error(),
            MembershipError::NotJoined(_) => None,
        }
    }
}

fn describe_errno(errno: i32) -> String {
    let name = match errno {
        libc::ENOBUFS => "ENOBUFS",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EINVAL => "EINVAL",
        libc::ENODEV => "ENODEV",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        _ => "error",
    };
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string();
    format!("{name} (errno {errno}, {text})")
}

fn advice(strategy: Strategy, errno: i32) -> &'static str {
    match (strategy, errno) {
        (Strategy::Pool, _) | (_, libc::EADDRINUSE) => "",
        (_, libc::ENOBUFS) => {
            "; the kernel limits memberships per socket: use --membership pool (spreads joins over several sockets) or raise these sysctls in the relay's namespace"
        }
        _ => "",
    }
}

/// One join the kernel refused, kept for `relay ctl memberships`.
#[derive(Debug, Clone, Serialize)]
pub struct JoinFailure {
    pub group: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    pub errno: i32,
    pub groups_on_socket: usize,
    pub error: String,
}

struct HelperSocket<S> {
    id: u64,
    socket: S,
    /// Memberships on this socket with the target needed to leave them.
    members: BTreeMap<MembershipKey, JoinTarget>,
    /// Lowered to the number of members when the kernel refuses a join (pool).
    capacity: usize,
}

struct InterfaceSockets<S> {
    sockets: Vec<HelperSocket<S>>,
    failures: Vec<JoinFailure>,
}

impl<S> Default for InterfaceSockets<S> {
    fn default() -> Self {
        InterfaceSockets {
            sockets: Vec::new(),
            failures: Vec::new(),
        }
    }
}

struct Reference {
    socket: u64,
    count: usize,
}

/// The relay's memberships under one strategy.
pub struct Memberships<F: SocketFactory> {
    strategy: Strategy,
    limits: Limits,
    factory: F,
    interfaces: BTreeMap<String, InterfaceSockets<F::Socket>>,
    references: HashMap<MembershipKey, Reference>,
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

    /// How many rules reference `key` (0 when not joined).
    pub fn references(&self, key: &MembershipKey) -> usize {
        self.references.get(key).map_or(0, |r| r.count)
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
            .filter(|(_, s)| s.members.len() < s.capacity)
            .map(|(i, _)| i)
            .collect();
        for index in candidates {
            match self.try_join(key, target, index) {
                Ok(id) => return Ok(id),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    // The kernel's real limit is lower than computed: this socket is full.
                    if let Some(helper) = self
                        .interfaces
                        .get_mut(&key.interface)
                        .and_then(|e| e.sockets.get_mut(index))
                    {
                        helper.capacity = helper.members.len();
                    }
                }
                Err(e) => return Err(self.refused(key, index, e)),
            }
        }
        let index = self.open_socket(&key.interface)?;
        self.join_on(key, target, index)
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
        if entry.failures.len() >= MAX_REMEMBERED_FAILURES {
            entry.failures.remove(0);
        }
        entry.failures.push(JoinFailure {
            group: key.group,
            source: key.source,
            errno: error.errno().unwrap_or(0),
            groups_on_socket,
            error: error.to_string(),
        });
        error
    }

    /// What `relay ctl memberships` shows.
    pub fn report(&self) -> MembershipReport {
        MembershipReport {
            strategy: self.strategy,
            limits: self.limits,
            capacity_per_socket: self.limits.capacity_per_socket(),
            interfaces: self
                .interfaces
                .iter()
                .map(|(name, entry)| InterfaceReport {
                    interface: name.clone(),
                    sockets: entry
                        .sockets
                        .iter()
                        .map(|s| SocketReport {
                            socket: s.id,
                            capacity: s.capacity,
                            groups: s
                                .members
                                .keys()
                                .map(|k| GroupReport {
                                    group: k.group,
                                    source: k.source,
                                    rules: self.references(k),
                                })
                                .collect(),
                        })
                        .collect(),
                    join_failures: entry.failures.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MembershipReport {
    pub strategy: Strategy,
    pub limits: Limits,
    pub capacity_per_socket: usize,
    pub interfaces: Vec<InterfaceReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InterfaceReport {
    pub interface: String,
    pub sockets: Vec<SocketReport>,
    pub join_failures: Vec<JoinFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SocketReport {
    pub socket: u64,
    pub capacity: usize,
    pub groups: Vec<GroupReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    /// Rules using this membership.
    pub rules: usize,
}

/// Real helper sockets: unbound UDP sockets (they never receive) with IP_MULTICAST_ALL off.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelSockets {
    /// `--helper-buffer`: SO_RCVBUFFORCE / SO_SNDBUFFORCE on every helper socket.
    pub forced_buffer: Option<usize>,
}

impl SocketFactory for KernelSockets {
    type Socket = socket2::Socket;

    fn open(&mut self, _interface: &str) -> io::Result<socket2::Socket> {
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM.cloexec(),
            Some(socket2::Protocol::UDP),
        )?;
        crate::sys::set_int_option(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_ALL,
            0,
        )?;
        if let Some(bytes) = self.forced_buffer {
            let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
            crate::sys::force_buffers(socket.as_raw_fd(), bytes)?;
        }
        Ok(socket)
    }
}

impl JoinSocket for socket2::Socket {
    fn join(&mut self, target: &JoinTarget) -> io::Result<()> {
        match target.source {
            Some(source) => {
                let ifaddr = target
                    .ifaddr
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))?;
                self.join_ssm_v4(&source, &target.group, &ifaddr)
            }
            None => self.join_multicast_v4_n(
                &target.group,
                &socket2::InterfaceIndexOrAddress::Index(target.ifindex),
            ),
        }
    }

    fn leave(&mut self, target: &JoinTarget) -> io::Result<()> {
        match target.source {
            Some(source) => {
                let ifaddr = target
                    .ifaddr
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))?;
                self.leave_ssm_v4(&source, &target.group, &ifaddr)
            }
            None => self.leave_multicast_v4_n(
                &target.group,
                &socket2::InterfaceIndexOrAddress::Index(target.ifindex),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// Kernel model: a socket refuses the join past `limit` memberships with ENOBUFS.
    #[derive(Default)]
    struct FakeKernel {
        opened: usize,
        open_sockets: usize,
        joins: Vec<(usize, Ipv4Addr)>,
        leaves: Vec<(usize, Ipv4Addr)>,
    }

    struct FakeSocket {
        id: usize,
        limit: usize,
        members: Vec<Ipv4Addr>,
        kernel: Rc<RefCell<FakeKernel>>,
    }

    impl Drop for FakeSocket {
        fn drop(&mut self) {
            self.kernel.borrow_mut().open_sockets -= 1;
        }
    }

    impl JoinSocket for FakeSocket {
        fn join(&mut self, target: &JoinTarget) -> io::Result<()> {
            if self.members.contains(&target.group) {
                return Err(io::Error::from_raw_os_error(libc::EADDRINUSE));
            }
            if self.members.len() >= self.limit {
                return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
            }
            self.members.push(target.group);
            self.kernel.borrow_mut().joins.push((self.id, target.group));
            Ok(())
        }
        fn leave(&mut self, target: &JoinTarget) -> io::Result<()> {
            self.members.retain(|g| *g != target.group);
            self.kernel
                .borrow_mut()
                .leaves
                .push((self.id, target.group));
            Ok(())
        }
    }

    struct FakeFactory {
        limit: usize,
        kernel: Rc<RefCell<FakeKernel>>,
    }

    impl SocketFactory for FakeFactory {
        type Socket = FakeSocket;
        fn open(&mut self, _interface: &str) -> io::Result<FakeSocket> {
            let mut k = self.kernel.borrow_mut();
            k.opened += 1;
            k.open_sockets += 1;
            Ok(FakeSocket {
                id: k.opened,
                limit: self.limit,
                members: Vec::new(),
                kernel: self.kernel.clone(),
            })
        }
    }

    fn setup(
        strategy: Strategy,
        kernel_limit: usize,
        igmp_max: u64,
    ) -> (Memberships<FakeFactory>, Rc<RefCell<FakeKernel>>) {
        let kernel = Rc::new(RefCell::new(FakeKernel::default()));
        let factory = FakeFactory {
            limit: kernel_limit,
            kernel: kernel.clone(),
        };
        let limits = Limits {
            igmp_max_memberships: igmp_max,
            optmem_max: 131072,
        };
        (Memberships::new(strategy, limits, factory), kernel)
    }

    fn group(n: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(Ipv4Addr::new(239, 1, 0, 0)) + n)
    }

    fn key(interface: &str, n: u32) -> (MembershipKey, JoinTarget) {
        (
            MembershipKey {
                interface: interface.into(),
                group: group(n),
                source: None,
            },
            JoinTarget {
                ifindex: 2,
                ifaddr: None,
                group: group(n),
                source: None,
            },
        )
    }

    fn join(
        m: &mut Memberships<FakeFactory>,
        interface: &str,
        n: u32,
    ) -> Result<(), MembershipError> {
        let (k, t) = key(interface, n);
        m.join(&k, &t)
    }

    fn leave(m: &mut Memberships<FakeFactory>, interface: &str, n: u32) {
        m.leave(&key(interface, n).0).unwrap();
    }

    #[test]
    fn capacity_is_the_smaller_sysctl_limit() {
        let l = Limits {
            igmp_max_memberships: 20,
            optmem_max: 131072,
        };
        assert_eq!(l.capacity_per_socket(), 20);
        let l = Limits {
            igmp_max_memberships: 100_000,
            optmem_max: 20480,
        };
        assert_eq!(l.capacity_per_socket(), 426);
    }

    #[test]
    fn pool_places_by_capacity_on_new_sockets() {
        let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
        for n in 1..=45 {
            join(&mut m, "a", n).unwrap();
        }
        let report = m.report();
        let sockets = &report.interfaces[0].sockets;
        let sizes: Vec<usize> = sockets.iter().map(|s| s.groups.len()).collect();
        assert_eq!(sizes, vec![20, 20, 5]);
        assert_eq!(kernel.borrow().open_sockets, 3);
        assert!(report.interfaces[0].join_failures.is_empty());
    }

    #[test]
    fn pool_spills_to_a_new_socket_on_enobufs() {
        // The kernel refuses at 7 although the sysctls promise 20.
        let (mut m, kernel) = setup(Strategy::Pool, 7, 20);
        for n in 1..=15 {
            join(&mut m, "a", n).unwrap();
        }
        let report = m.report();
        let sizes: Vec<usize> = report.interfaces[0]
            .sockets
            .iter()
            .map(|s| s.groups.len())
            .collect();
        assert_eq!(sizes, vec![7, 7, 1]);
        assert_eq!(report.interfaces[0].sockets[0].capacity, 7);
        assert_eq!(kernel.borrow().joins.len(), 15);
    }

    #[test]
    fn pool_fails_cleanly_when_even_a_new_socket_refuses() {
        let (mut m, kernel) = setup(Strategy::Pool, 0, 20);
        let err = join(&mut m, "a", 1).unwrap_err();
        assert_eq!(err.errno(), Some(libc::ENOBUFS));
        assert_eq!(kernel.borrow().open_sockets, 0, "empty socket closed");
        assert_eq!(m.report().interfaces[0].join_failures.len(), 1);
    }

    #[test]
    fn shared_groups_are_reference_counted() {
        let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
        join(&mut m, "a", 1).unwrap();
        join(&mut m, "a", 1).unwrap();
        join(&mut m, "b", 1).unwrap(); // other interface: separate membership
        assert_eq!(kernel.borrow().joins.len(), 2);
        assert_eq!(m.references(&key("a", 1).0), 2);
        leave(&mut m, "a", 1);
        assert!(kernel.borrow().leaves.is_empty(), "still used by one rule");
        leave(&mut m, "a", 1);
        assert_eq!(kernel.borrow().leaves, vec![(1, group(1))]);
        assert_eq!(m.references(&key("a", 1).0), 0);
        assert!(matches!(
            m.leave(&key("a", 1).0),
            Err(MembershipError::NotJoined(_))
        ));
        assert_eq!(kernel.borrow().open_sockets, 1, "only b's socket is left");
    }

    #[test]
    fn empty_sockets_are_closed_and_holes_reused() {
        let (mut m, kernel) = setup(Strategy::Pool, 20, 20);
        for n in 1..=25 {
            join(&mut m, "a", n).unwrap();
        }
        assert_eq!(kernel.borrow().open_sockets, 2);
        for n in 21..=25 {
            leave(&mut m, "a", n);
        }
        assert_eq!(kernel.borrow().open_sockets, 1);
        leave(&mut m, "a", 3);
        join(&mut m, "a", 99).unwrap();
        assert_eq!(kernel.borrow().open_sockets, 1, "hole on socket 1 reused");
        m.leave_all();
        assert_eq!(kernel.borrow().open_sockets, 0);
        assert!(m.report().interfaces.is_empty());
    }

    #[test]
    fn single_refuses_the_21st_group_with_a_clear_error() {
        let (mut m, kernel) = setup(Strategy::Single, 20, 20);
        for n in 1..=20 {
            join(&mut m, "in0", n).unwrap();
        }
        let err = join(&mut m, "in0", 21).unwrap_err();
        let text = err.to_string();
        assert_eq!(err.errno(), Some(105));
        for needle in [
            "ENOBUFS",
            "errno 105",
            "in0",
            "20 groups",
            "igmp_max_memberships = 20",
            "optmem_max = 131072",
        ] {
            assert!(text.contains(needle), "{needle:?} missing in {text}");
        }
        assert_eq!(kernel.borrow().open_sockets, 1);
        assert_eq!(m.references(&key("in0", 21).0), 0);
        assert_eq!(m.references(&key("in0", 20).0), 1);
        let report = m.report();
        assert_eq!(report.interfaces[0].sockets[0].groups.len(), 20);
        assert_eq!(report.interfaces[0].join_failures[0].errno, 105);
    }

    #[test]
    fn per_group_opens_one_socket_per_group() {
        let (mut m, kernel) = setup(Strategy::PerGroup, 20, 20);
        for n in 1..=30 {
            join(&mut m, "a", n).unwrap();
        }
        assert_eq!(kernel.borrow().open_sockets, 30);
        leave(&mut m, "a", 5);
        assert_eq!(kernel.borrow().open_sockets, 29);
    }

    #[test]
    fn kernel_helper_sockets_get_forced_buffers() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): kernel_helper_sockets_get_forced_buffers");
            return;
        }
        // Opens an unbound UDP socket only: no membership, no address, no traffic.
        let mut factory = KernelSockets {
            forced_buffer: Some(8 << 20),
        };
        let socket = factory.open("unused").unwrap();
        // The kernel doubles the requested value for bookkeeping.
        assert!(socket.recv_buffer_size().unwrap() >= 8 << 20);
        assert!(socket.send_buffer_size().unwrap() >= 8 << 20);
        let plain = KernelSockets::default().open("unused").unwrap();
        assert!(plain.recv_buffer_size().unwrap() < 8 << 20);
    }

    #[test]
    fn strategy_names_parse() {
        assert_eq!("pool".parse::<Strategy>().unwrap(), Strategy::Pool);
        assert_eq!("per-group".parse::<Strategy>().unwrap(), Strategy::PerGroup);
        assert!("many".parse::<Strategy>().is_err());
        assert_eq!(Strategy::Single.to_string(), "single");
    }
}
