//! [`KernelSockets`]: the real helper sockets, unbound UDP sockets (they never receive) with
//! IP_MULTICAST_ALL off, joined with `ip_mreqn` (interface index) or, source-specific, with
//! `ip_mreq_source` (interface address). Closing a socket leaves its groups.
//!
//! The sink's helper sockets used to keep IP_MULTICAST_ALL on; it only matters for a socket
//! that receives, and helpers never do, so both programs now use the relay's setting.

use super::socket::{JoinSocket, JoinTarget, SocketFactory};
use nix::sys::socket::{setsockopt, sockopt};
use socket2::{Domain, InterfaceIndexOrAddress, Protocol, Socket, Type};
use std::io;
use std::net::Ipv4Addr;

/// Opens real helper sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelSockets {
    /// The relay's `--helper-buffer`: SO_RCVBUFFORCE / SO_SNDBUFFORCE on every helper socket
    /// (bytes; more than `i32::MAX` is clamped to it).
    pub forced_buffer: Option<usize>,
}

impl SocketFactory for KernelSockets {
    type Socket = Socket;

    fn open(&mut self, _interface: &str) -> io::Result<Socket> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))?;
        socket.set_multicast_all_v4(false)?;
        if let Some(bytes) = self.forced_buffer {
            let bytes = bytes.min(i32::MAX as usize);
            setsockopt(&socket, sockopt::RcvBufForce, &bytes)?;
            setsockopt(&socket, sockopt::SndBufForce, &bytes)?;
        }
        Ok(socket)
    }
}

/// The interface address a source-specific join needs.
fn ssm_interface(target: &JoinTarget) -> io::Result<Ipv4Addr> {
    target
        .ifaddr
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EADDRNOTAVAIL))
}

impl JoinSocket for Socket {
    fn join(&mut self, target: &JoinTarget) -> io::Result<()> {
        match target.source {
            Some(source) => self.join_ssm_v4(&source, &target.group, &ssm_interface(target)?),
            None => self.join_multicast_v4_n(
                &target.group,
                &InterfaceIndexOrAddress::Index(target.ifindex),
            ),
        }
    }

    fn leave(&mut self, target: &JoinTarget) -> io::Result<()> {
        match target.source {
            Some(source) => self.leave_ssm_v4(&source, &target.group, &ssm_interface(target)?),
            None => self.leave_multicast_v4_n(
                &target.group,
                &InterfaceIndexOrAddress::Index(target.ifindex),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Limits, Memberships, Strategy};
    use super::*;

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn kernel_helper_sockets_get_forced_buffers() {
        if !is_root() {
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

    /// Runs `body` on a thread of its own in a fresh network namespace (never the test
    /// runner's), with the index of that namespace's loopback.
    fn in_fresh_netns<T: Send + 'static>(
        body: impl FnOnce(u32) -> Result<T, String> + Send + 'static,
    ) -> T {
        let handle = std::thread::spawn(move || -> Result<T, String> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            let lo = nix::net::if_::if_nametoindex("lo").map_err(|e| e.to_string())?;
            body(lo)
        });
        handle.join().unwrap().unwrap()
    }

    fn groups(count: usize) -> Vec<Ipv4Addr> {
        (0..count as u32)
            .map(|i| Ipv4Addr::from(0xEF01_0001 + i))
            .collect()
    }

    #[test]
    fn joins_spread_over_helper_sockets() {
        if !is_root() {
            eprintln!("SKIPPED (needs root): joins_spread_over_helper_sockets");
            return;
        }
        let (joined, sockets, capacity) = in_fresh_netns(|lo| {
            let limits = Limits::from_proc().map_err(|e| e.to_string())?;
            let capacity = limits.capacity_per_socket();
            let mut pool = Memberships::new(Strategy::Pool, limits, KernelSockets::default());
            let joins = pool.join_groups("lo", lo, &groups(capacity * 3 + 5));
            if !joins.refused.is_empty() {
                return Err(format!("{:?}", joins.refused));
            }
            Ok((joins.joined.len(), pool.socket_count("lo"), capacity))
        });
        assert_eq!(joined, capacity * 3 + 5);
        assert_eq!(sockets, 4);
    }

    #[test]
    fn spills_on_enobufs_when_capacity_overstated() {
        if !is_root() {
            eprintln!("SKIPPED (needs root): spills_on_enobufs_when_capacity_overstated");
            return;
        }
        let (joined, sockets, real) = in_fresh_netns(|lo| {
            let real = Limits::from_proc()
                .map_err(|e| e.to_string())?
                .capacity_per_socket();
            // Pretend the limits are far higher than the namespace's: ENOBUFS must spill.
            let overstated = Limits {
                igmp_max_memberships: 10_000,
                optmem_max: 10_000 * 48,
            };
            let mut pool = Memberships::new(Strategy::Pool, overstated, KernelSockets::default());
            let joins = pool.join_groups("lo", lo, &groups(real * 2 + 1));
            if !joins.refused.is_empty() {
                return Err(format!("{:?}", joins.refused));
            }
            Ok((joins.joined.len(), pool.socket_count("lo"), real))
        });
        assert_eq!(joined, real * 2 + 1);
        assert_eq!(sockets, 3);
    }
}
