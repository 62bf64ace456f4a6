//! The two C socket addresses the lab passes to the kernel by pointer: `sockaddr_in`
//! (UDP destinations) and `sockaddr_ll` (AF_PACKET bind and send addresses).

use std::net::Ipv4Addr;

/// `sockaddr_in` for `addr:port` (address and port in network byte order, as the kernel reads
/// them).
pub fn sockaddr_in(addr: Ipv4Addr, port: u16) -> libc::sockaddr_in {
    libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: port.to_be(),
        sin_addr: libc::in_addr {
            s_addr: u32::from(addr).to_be(),
        },
        sin_zero: [0; 8],
    }
}

/// `sockaddr_ll` for interface `ifindex` (0 = any) and Ethernet `protocol` (host byte order,
/// e.g. [`crate::packet_socket::ETH_P_IP`]; 0 = none); hardware address empty.
pub fn sockaddr_ll(ifindex: u32, protocol: u16) -> libc::sockaddr_ll {
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: protocol.to_be(),
        sll_ifindex: ifindex as i32,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 0,
        sll_addr: [0; 8],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_in_is_in_network_byte_order() {
        let a = sockaddr_in(Ipv4Addr::new(239, 1, 2, 3), 5000);
        assert_eq!(a.sin_family, libc::AF_INET as libc::sa_family_t);
        assert_eq!(a.sin_port.to_ne_bytes(), 5000u16.to_be_bytes());
        assert_eq!(a.sin_addr.s_addr.to_ne_bytes(), [239, 1, 2, 3]);
        assert_eq!(a.sin_zero, [0; 8]);
    }

    #[test]
    fn sockaddr_ll_carries_index_and_protocol() {
        let a = sockaddr_ll(7, 0x0800);
        assert_eq!(a.sll_family, libc::AF_PACKET as u16);
        assert_eq!(a.sll_protocol.to_ne_bytes(), [0x08, 0x00]);
        assert_eq!(a.sll_ifindex, 7);
        assert_eq!((a.sll_halen, a.sll_pkttype, a.sll_addr), (0, 0, [0; 8]));
    }
}
