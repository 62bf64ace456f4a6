//! Moving an interface's memberships when the interface changes under them.
//!
//! A membership is joined on an interface index (any-source) or an interface address
//! (source-specific). When an interface is deleted, the kernel forgets its groups, but each
//! helper socket keeps its now stale entries (they count against the socket's limits, and a
//! source-specific one can no longer be left: the kernel finds no interface for the address).
//! When an interface of the same name is created again it has a new index, and nothing is
//! joined on it.
//!
//! - [`Memberships::detach_interface`]: the interface is gone. Its helper sockets are closed,
//!   which drops every membership on them, stale ones included, without a leave that could
//!   fail; the memberships stay known with their references (rules still use them), detached.
//! - [`Memberships::attach_interface`]: the interface exists as `link`. Helper sockets holding a
//!   membership joined on another index (or, source-specific, another address) are closed, and
//!   every detached membership is joined again on `link`. Nothing happens when all are already
//!   joined there, so calling it on every re-sync is cheap and silent.
//!
//! A detached membership can be left as usual (the last reference's leave just forgets it).

use super::error::MembershipError;
use super::pool::{Memberships, Reference};
use super::socket::{JoinTarget, MembershipKey, SocketFactory};
use std::collections::HashSet;
use std::net::Ipv4Addr;

/// The socket id of a membership joined on no helper socket (ids start at 1).
const DETACHED: u64 = 0;

/// Where an interface's memberships are joined now: its index and first IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    pub ifindex: u32,
    pub ifaddr: Option<Ipv4Addr>,
}

impl Link {
    /// Whether a membership joined with `target` is joined on this link: same index and, for
    /// a source-specific membership (joined by address), same address.
    fn holds(&self, key: &MembershipKey, target: &JoinTarget) -> bool {
        target.ifindex == self.ifindex && (key.source.is_none() || target.ifaddr == self.ifaddr)
    }

    fn target(&self, key: &MembershipKey) -> JoinTarget {
        JoinTarget {
            ifindex: self.ifindex,
            ifaddr: self.ifaddr,
            group: key.group,
            source: key.source,
        }
    }
}

/// What [`Memberships::attach_interface`] did: memberships joined again and those the kernel
/// refused (they stay detached and are tried again on the next attach).
#[derive(Debug, Default)]
pub struct Attached {
    pub joined: Vec<MembershipKey>,
    pub refused: Vec<(MembershipKey, MembershipError)>,
}

impl<F: SocketFactory> Memberships<F> {
    /// Closes every helper socket of `interface` (the interface is gone); its memberships stay
    /// referenced, detached. Returns how many memberships were detached.
    pub fn detach_interface(&mut self, interface: &str) -> usize {
        let Some(entry) = self.interfaces.get_mut(interface) else {
            return 0;
        };
        let detached = entry.sockets.iter().map(|s| s.members.len()).sum();
        entry.sockets.clear(); // closes the sockets
        if entry.failures.is_empty() {
            self.interfaces.remove(interface);
        }
        for (key, reference) in self.references.iter_mut() {
            if key.interface == interface {
                reference.socket = DETACHED;
            }
        }
        detached
    }

    /// Makes every membership of `interface` joined on `link`: sockets with stale joins are
    /// closed, detached memberships joined again (keeping their references).
    pub fn attach_interface(&mut self, interface: &str, link: Link) -> Attached {
        let mut live = HashSet::new();
        if let Some(entry) = self.interfaces.get_mut(interface) {
            entry
                .sockets
                .retain(|s| s.members.iter().all(|(k, t)| link.holds(k, t)));
            live.extend(entry.sockets.iter().map(|s| s.id));
            if entry.sockets.is_empty() && entry.failures.is_empty() {
                self.interfaces.remove(interface);
            }
        }
        let mut waiting: Vec<(MembershipKey, usize)> = self
            .references
            .iter()
            .filter(|(k, r)| k.interface == interface && !live.contains(&r.socket))
            .map(|(k, r)| (k.clone(), r.count))
            .collect();
        waiting.sort();
        let mut attached = Attached::default();
        for (key, count) in waiting {
            self.references.remove(&key);
            match self.join(&key, &link.target(&key)) {
                Ok(()) => {
                    if let Some(reference) = self.references.get_mut(&key) {
                        reference.count = count;
                    }
                    attached.joined.push(key);
                }
                Err(error) => {
                    let detached = Reference {
                        socket: DETACHED,
                        count,
                    };
                    self.references.insert(key.clone(), detached);
                    attached.refused.push((key, error));
                }
            }
        }
        attached
    }

    /// The target `key` is joined with, `None` when it is detached (tests).
    #[cfg(test)]
    pub(super) fn joined_target(&self, key: &MembershipKey) -> Option<JoinTarget> {
        let socket = self.references.get(key)?.socket;
        self.interfaces
            .get(&key.interface)?
            .sockets
            .iter()
            .find(|s| s.id == socket)?
            .members
            .get(key)
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::super::fake::{FakeFactory, FakeKernel};
    use super::super::{Limits, Strategy};
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    fn pool(kernel_limit: usize) -> (Memberships<FakeFactory>, Rc<RefCell<FakeKernel>>) {
        let (factory, kernel) = FakeFactory::new(kernel_limit);
        let limits = Limits {
            igmp_max_memberships: 20,
            optmem_max: 131072,
        };
        (Memberships::new(Strategy::Pool, limits, factory), kernel)
    }

    const OLD: Link = Link {
        ifindex: 7,
        ifaddr: Some(Ipv4Addr::new(198, 18, 1, 2)),
    };
    const NEW: Link = Link {
        ifindex: 9,
        ifaddr: Some(Ipv4Addr::new(198, 18, 1, 2)),
    };

    fn key(n: u8, source: Option<Ipv4Addr>) -> MembershipKey {
        MembershipKey {
            interface: "in0".into(),
            group: Ipv4Addr::new(239, 1, 0, n),
            source,
        }
    }

    /// 30 any-source memberships on `OLD` (two sockets), the first with two references.
    fn joined_pool() -> (Memberships<FakeFactory>, Rc<RefCell<FakeKernel>>) {
        let (mut m, kernel) = pool(20);
        for n in 1..=30 {
            m.join(&key(n, None), &OLD.target(&key(n, None))).unwrap();
        }
        m.join(&key(1, None), &OLD.target(&key(1, None))).unwrap();
        assert_eq!(kernel.borrow().open_sockets, 2);
        (m, kernel)
    }

    #[test]
    fn a_recreated_interface_gets_every_membership_back_on_its_new_index() {
        let (mut m, kernel) = joined_pool();
        assert_eq!(m.detach_interface("in0"), 30);
        assert_eq!(kernel.borrow().open_sockets, 0, "stale sockets closed");
        assert!(
            kernel.borrow().leaves.is_empty(),
            "no leave on a gone interface"
        );
        assert!(m.report().interfaces.is_empty());
        assert_eq!(m.references(&key(1, None)), 2, "references kept");
        assert_eq!(m.joined_target(&key(1, None)), None);

        let joins_before = kernel.borrow().joins.len();
        let attached = m.attach_interface("in0", NEW);
        assert_eq!(attached.joined.len(), 30);
        assert!(attached.refused.is_empty());
        assert_eq!(kernel.borrow().joins.len(), joins_before + 30);
        assert_eq!(kernel.borrow().open_sockets, 2);
        for n in 1..=30 {
            assert_eq!(m.joined_target(&key(n, None)).unwrap().ifindex, 9);
        }
        assert_eq!(m.references(&key(1, None)), 2);
        // Both references leave as usual: the group is left once, on the new socket.
        m.leave(&key(1, None)).unwrap();
        m.leave(&key(1, None)).unwrap();
        assert_eq!(m.references(&key(1, None)), 0);
        assert_eq!(kernel.borrow().leaves.len(), 1);
    }

    #[test]
    fn attaching_where_everything_is_joined_changes_nothing() {
        let (mut m, kernel) = joined_pool();
        let joins = kernel.borrow().joins.len();
        let attached = m.attach_interface("in0", OLD);
        assert!(attached.joined.is_empty() && attached.refused.is_empty());
        assert_eq!(kernel.borrow().joins.len(), joins);
        assert_eq!(kernel.borrow().opened, 2, "no socket reopened");
        // An address change does not move any-source joins (they are joined by index).
        let readdressed = Link {
            ifaddr: Some(Ipv4Addr::new(198, 18, 1, 9)),
            ..OLD
        };
        assert!(m.attach_interface("in0", readdressed).joined.is_empty());
    }

    #[test]
    fn a_missed_deletion_is_repaired_by_attaching_to_the_new_index() {
        let (mut m, kernel) = joined_pool();
        let attached = m.attach_interface("in0", NEW);
        assert_eq!(attached.joined.len(), 30);
        assert_eq!(
            kernel.borrow().opened,
            4,
            "two stale sockets closed, two new"
        );
        assert_eq!(kernel.borrow().open_sockets, 2);
        assert_eq!(m.joined_target(&key(30, None)).unwrap().ifindex, 9);
    }

    #[test]
    fn source_specific_joins_follow_an_address_change() {
        let (mut m, _) = pool(20);
        let source = Some(Ipv4Addr::new(198, 18, 1, 1));
        m.join(&key(1, source), &OLD.target(&key(1, source)))
            .unwrap();
        m.join(&key(2, None), &OLD.target(&key(2, None))).unwrap();
        let readdressed = Link {
            ifaddr: Some(Ipv4Addr::new(198, 18, 1, 9)),
            ..OLD
        };
        let attached = m.attach_interface("in0", readdressed);
        // The SSM join's socket is closed: both its memberships are joined again.
        assert_eq!(attached.joined.len(), 2);
        assert_eq!(
            m.joined_target(&key(1, source)).unwrap().ifaddr,
            readdressed.ifaddr
        );
    }

    #[test]
    fn refused_rejoins_stay_detached_and_are_retried() {
        let (mut m, kernel) = joined_pool();
        m.detach_interface("in0");
        m.factory.open_errno = Some(libc::EMFILE);
        let attached = m.attach_interface("in0", NEW);
        assert_eq!(attached.refused.len(), 30);
        assert!(attached.joined.is_empty());
        assert_eq!(kernel.borrow().open_sockets, 0);
        assert_eq!(
            m.references(&key(1, None)),
            2,
            "references survive a refusal"
        );
        // A detached membership leaves without error.
        m.leave(&key(2, None)).unwrap();
        assert_eq!(m.references(&key(2, None)), 0);

        m.factory.open_errno = None;
        let attached = m.attach_interface("in0", NEW);
        assert_eq!(attached.joined.len(), 29);
        assert_eq!(m.references(&key(1, None)), 2);
        assert_eq!(m.joined_target(&key(3, None)).unwrap().ifindex, 9);
    }

    #[test]
    fn other_interfaces_are_left_alone() {
        let (mut m, kernel) = joined_pool();
        let other = MembershipKey {
            interface: "in1".into(),
            ..key(1, None)
        };
        m.join(&other, &OLD.target(&other)).unwrap();
        m.detach_interface("in0");
        assert_eq!(kernel.borrow().open_sockets, 1);
        assert_eq!(m.joined_target(&other).unwrap().ifindex, 7);
        assert!(m.attach_interface("in1", OLD).joined.is_empty());
    }
}
