//! UDP-socket egress (`--egress udp`): one UDP socket per output interface sends the payload
//! through the kernel's IP output path (IP_MULTICAST_IF = that interface, IP_MULTICAST_TTL =
//! `--ttl`, loopback off, bound to the interface address). It exists to compare with the default
//! AF_PACKET egress: the kernel path creates one neighbour entry per (interface, group), which
//! ARCHITECTURE.md measured to hurt past the global `gc_thresh3` (1024) output groups.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;

/// How output packets leave the relay (`--egress`).
///
/// The command-line and serde names are the variant names in kebab-case (`packet`, `udp`),
/// derived by [`clap::ValueEnum`] and serde alike (no list of names is written out).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum EgressMode {
    /// Own Ethernet/IPv4/UDP frames on AF_PACKET (default).
    #[default]
    Packet,
    /// Payload on a UDP socket per output interface.
    Udp,
}

/// Opens (once per interface) the UDP sockets outputs send on.
#[derive(Debug, Default)]
pub struct UdpSockets {
    /// By interface name: the index and address the socket was set up for, and the socket.
    by_interface: HashMap<String, (u32, Ipv4Addr, Arc<OwnedFd>)>,
}

impl UdpSockets {
    /// The socket for interface `name` (index `ifindex`) with address `addr`, opened on first
    /// use and again when the interface has a new index or address (it was created again or
    /// re-addressed: the kernel resolved IP_MULTICAST_IF to the old index).
    pub fn get(
        &mut self,
        name: &str,
        ifindex: u32,
        addr: Ipv4Addr,
        ttl: u8,
    ) -> io::Result<Arc<OwnedFd>> {
        if let Some((index, address, fd)) = self.by_interface.get(name)
            && (*index, *address) == (ifindex, addr)
        {
            return Ok(fd.clone());
        }
        let socket = socket2::Socket::new(
            socket2::Domain::IPV4,
            socket2::Type::DGRAM.cloexec(),
            Some(socket2::Protocol::UDP),
        )?;
        socket.bind(&SocketAddrV4::new(addr, 0).into())?;
        socket.set_multicast_if_v4(&addr)?;
        socket.set_multicast_ttl_v4(u32::from(ttl))?;
        socket.set_multicast_loop_v4(false)?;
        netio::sockopt::set_int_option(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_MULTICAST_ALL,
            0,
        )?;
        let fd: Arc<OwnedFd> = Arc::new(socket.into());
        self.by_interface
            .insert(name.to_string(), (ifindex, addr, fd.clone()));
        Ok(fd)
    }
}

/// The destination address of a UDP egress send (netio's builder).
pub use netio::sockaddr::sockaddr_in;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_parse_and_addresses_are_network_order() {
        use clap::ValueEnum;
        assert_eq!(EgressMode::from_str("udp", false), Ok(EgressMode::Udp));
        assert_eq!(
            EgressMode::from_str("packet", false),
            Ok(EgressMode::Packet)
        );
        assert!(EgressMode::from_str("raw", false).is_err());
        for mode in EgressMode::value_variants() {
            let name = mode.to_possible_value().unwrap();
            let json = serde_json::to_string(mode).unwrap();
            assert_eq!(
                json,
                format!("\"{}\"", name.get_name()),
                "serde and clap agree"
            );
        }
        let a = sockaddr_in(Ipv4Addr::new(239, 2, 0, 1), 5000);
        assert_eq!(u16::from_be(a.sin_port), 5000);
        assert_eq!(a.sin_addr.s_addr.to_ne_bytes(), [239, 2, 0, 1]);
    }

    #[test]
    fn one_socket_per_interface_until_its_index_changes() {
        let lo = netio::iface::lookup("lo").unwrap().index;
        let mut sockets = UdpSockets::default();
        let a = sockets.get("lo", lo, Ipv4Addr::LOCALHOST, 4).unwrap();
        let b = sockets.get("lo", lo, Ipv4Addr::LOCALHOST, 4).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        // The same name with another index (deleted and created again): a new socket.
        let c = sockets
            .get("lo", lo + 1000, Ipv4Addr::LOCALHOST, 4)
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
    }
}
