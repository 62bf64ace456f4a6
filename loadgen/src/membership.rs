//! IGMP joins spread over helper UDP sockets.
//!
//! One socket holds at most `net.ipv4.igmp_max_memberships` groups (per namespace, default 20),
//! so the pool opens a new helper socket when the current one is full or the kernel answers
//! ENOBUFS. Helper sockets are never bound: they hold memberships and receive nothing.

use crate::summary::JoinError;
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use std::io;
use std::net::Ipv4Addr;

/// Where the per-socket membership limit of the current namespace is read from.
pub const IGMP_MAX_MEMBERSHIPS: &str = "/proc/sys/net/ipv4/igmp_max_memberships";
/// Used when the sysctl cannot be read (the kernel default).
pub const DEFAULT_CAPACITY: usize = 20;

/// Reads the per-socket membership limit of the current namespace.
pub fn read_capacity() -> usize {
    std::fs::read_to_string(IGMP_MAX_MEMBERSHIPS)
        .ok()
        .and_then(|s| s.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_CAPACITY)
}

struct Helper {
    socket: Socket,
    groups: usize,
}

/// Memberships on interface `ifindex`, spread over helper sockets.
pub struct MembershipPool {
    ifindex: u32,
    capacity: usize,
    helpers: Vec<Helper>,
    joined: Vec<Ipv4Addr>,
}

fn helper_socket() -> io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))
}

impl MembershipPool {
    /// A pool joining on `ifindex` with `capacity` groups per helper socket.
    pub fn new(ifindex: u32, capacity: usize) -> MembershipPool {
        MembershipPool {
            ifindex,
            capacity: capacity.max(1),
            helpers: Vec::new(),
            joined: Vec::new(),
        }
    }

    /// Joins `group` (ip_mreqn with the interface index), opening helper sockets as needed.
    pub fn join(&mut self, group: Ipv4Addr) -> io::Result<()> {
        let iface = InterfaceIndexOrAddress::Index(self.ifindex);
        let mut fresh_socket_tried = false;
        loop {
            let needs_new = self
                .helpers
                .last()
                .is_none_or(|h| h.groups >= self.capacity);
            if needs_new {
                self.helpers.push(Helper {
                    socket: helper_socket()?,
                    groups: 0,
                });
                fresh_socket_tried = true;
            }
            let Some(helper) = self.helpers.last_mut() else {
                return Err(io::Error::from_raw_os_error(libc::ENOBUFS));
            };
            match helper.socket.join_multicast_v4_n(&group, &iface) {
                Ok(()) => {
                    helper.groups += 1;
                    self.joined.push(group);
                    return Ok(());
                }
                // The socket is full earlier than the sysctl said: spill to a new one, once.
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) && !fresh_socket_tried => {
                    helper.groups = self.capacity;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Joins every group; refused joins are returned, not fatal.
    pub fn join_all(&mut self, groups: &[Ipv4Addr]) -> Vec<JoinError> {
        let mut errors = Vec::new();
        for &group in groups {
            if let Err(e) = self.join(group) {
                errors.push(JoinError {
                    group,
                    errno: e.raw_os_error().unwrap_or(0),
                    message: e.to_string(),
                });
            }
        }
        errors
    }

    /// Groups joined so far.
    pub fn joined(&self) -> &[Ipv4Addr] {
        &self.joined
    }

    /// Helper sockets open.
    pub fn sockets(&self) -> usize {
        self.helpers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capacity_is_positive() {
        assert!(read_capacity() > 0);
    }

    #[test]
    fn joins_spread_over_helper_sockets() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): joins_spread_over_helper_sockets");
            return;
        }
        // Joins on loopback of a fresh namespace of this test thread only, never the root one.
        let handle = std::thread::spawn(|| -> Result<(usize, usize, usize), String> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            let lo = nix::net::if_::if_nametoindex("lo").map_err(|e| e.to_string())?;
            let capacity = read_capacity();
            let mut pool = MembershipPool::new(lo, capacity);
            let groups: Vec<Ipv4Addr> = (0..(capacity * 3 + 5) as u32)
                .map(|i| Ipv4Addr::from(0xEF01_0001 + i))
                .collect();
            let errors = pool.join_all(&groups);
            if !errors.is_empty() {
                return Err(format!("{errors:?}"));
            }
            Ok((pool.joined().len(), pool.sockets(), capacity))
        });
        let (joined, sockets, capacity) = handle.join().unwrap().unwrap();
        assert_eq!(joined, capacity * 3 + 5);
        assert_eq!(sockets, 4);
    }

    #[test]
    fn spills_on_enobufs_when_capacity_overstated() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): spills_on_enobufs_when_capacity_overstated");
            return;
        }
        let handle = std::thread::spawn(|| -> Result<(usize, usize, usize), String> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            let lo = nix::net::if_::if_nametoindex("lo").map_err(|e| e.to_string())?;
            let real = read_capacity();
            // Pretend the limit is far higher than the namespace's: ENOBUFS must spill.
            let mut pool = MembershipPool::new(lo, 10_000);
            let groups: Vec<Ipv4Addr> = (0..(real * 2 + 1) as u32)
                .map(|i| Ipv4Addr::from(0xEF01_0001 + i))
                .collect();
            let errors = pool.join_all(&groups);
            if !errors.is_empty() {
                return Err(format!("{errors:?}"));
            }
            Ok((pool.joined().len(), pool.sockets(), real))
        });
        let (joined, sockets, real) = handle.join().unwrap().unwrap();
        assert_eq!(joined, real * 2 + 1);
        assert_eq!(sockets, 3);
    }
}
