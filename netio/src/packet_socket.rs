//! AF_PACKET sockets: open, bind, PACKET_FANOUT, PACKET_IGNORE_OUTGOING, PACKET_QDISC_BYPASS,
//! the kernel's drop counter, and the metadata of a received frame ([`Received`]) that every
//! receive path (rings, `recvmmsg` batches) reports.

use crate::sockaddr::sockaddr_ll;
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

/// Ethernet protocol number of IPv4 (host byte order).
pub const ETH_P_IP: u16 = 0x0800;
/// Every protocol. A socket bound to it is a tap that sees frames before the kernel's VLAN
/// processing, so a tag the kernel stripped is still in the frame's metadata
/// ([`Received::vlan_tci`]); a socket bound to [`ETH_P_IP`] gets tagged frames only after that
/// tag was dropped (as untagged IPv4 frames of packet type PACKET_OTHERHOST).
pub const ETH_P_ALL: u16 = 0x0003;
/// `PACKET_IGNORE_OUTGOING` (Linux >= 4.20), not exported by every libc version.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

/// Metadata of one frame received on a packet socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Interface the frame arrived on (`sll_ifindex`).
    pub ifindex: u32,
    /// `PACKET_HOST`, `PACKET_MULTICAST`, `PACKET_OUTGOING`, ... (`sll_pkttype`).
    pub pkttype: u8,
    /// The frame was longer than the buffer or ring slot and was cut.
    pub truncated: bool,
    /// Bytes of the frame available.
    pub len: usize,
    /// The tag control information (priority and VLAN id) of a VLAN tag the kernel took out of
    /// the frame before handing it over (`TP_STATUS_VLAN_VALID` in the ring header, or the
    /// `PACKET_AUXDATA` message of `recvmsg`): Linux strips the outer 802.1Q/802.1ad tag of
    /// every received frame into the socket buffer's metadata, so on a packet socket a tagged
    /// frame looks untagged except for this field. `None`: no tag was taken out (or, for a
    /// `recvmmsg` batch, the batch does not ask for auxiliary data).
    pub vlan_tci: Option<u16>,
}

/// Opens `socket(AF_PACKET, SOCK_RAW, htons(protocol))`, close-on-exec. Protocol 0 receives
/// nothing (a send-only socket).
pub fn open(protocol: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol.to_be()),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns; the OwnedFd closes it exactly once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Binds a packet socket to `protocol` on `ifindex` (0 = every interface).
pub fn bind(fd: impl AsFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    let addr = sockaddr_ll(ifindex, protocol);
    // SAFETY: `addr` is a valid sockaddr_ll living across the call; the length matches it.
    let rc = unsafe {
        libc::bind(
            fd.as_fd().as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A send-only packet socket (protocol 0) bound to interface `ifindex`: whole frames written
/// to it leave on that interface.
pub fn open_sender(ifindex: u32) -> io::Result<OwnedFd> {
    let fd = open(0)?;
    bind(&fd, ifindex, 0)?;
    Ok(fd)
}

fn set_flag(fd: impl AsFd, name: i32) -> io::Result<()> {
    crate::sockopt::set_int_option(fd.as_fd().as_raw_fd(), libc::SOL_PACKET, name, 1)
}

/// Never deliver frames this host sends to this packet socket (Linux >= 4.20).
pub fn ignore_outgoing(fd: impl AsFd) -> io::Result<()> {
    set_flag(fd, PACKET_IGNORE_OUTGOING)
}

/// `recvmsg` on this packet socket returns a `PACKET_AUXDATA` control message per frame, which
/// carries the VLAN tag the kernel took out of it ([`Received::vlan_tci`]).
pub fn receive_auxdata(fd: impl AsFd) -> io::Result<()> {
    set_flag(fd, libc::PACKET_AUXDATA)
}

/// Attaches a classic socket filter that accepts no frame (`ret #0`): the socket stays bound
/// (a fanout group member, say) but every frame is refused before it is queued or copied.
pub fn receive_nothing(fd: impl AsFd) -> io::Result<()> {
    let mut reject = [libc::sock_filter {
        code: (libc::BPF_RET | libc::BPF_K) as u16,
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let program = libc::sock_fprog {
        len: reject.len() as u16,
        filter: reject.as_mut_ptr(),
    };
    // SAFETY: `program` points to `reject`, one instruction, both live across the call; the
    // kernel copies the program and keeps no pointer; the option length is `program`'s size.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&program as *const libc::sock_fprog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Detaches the socket filter ([`receive_nothing`]'s): every frame is received again. A socket
/// without a filter is left as it is.
pub fn receive_all(fd: impl AsFd) -> io::Result<()> {
    match crate::sockopt::set_int_option(
        fd.as_fd().as_raw_fd(),
        libc::SOL_SOCKET,
        libc::SO_DETACH_FILTER,
        0,
    ) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

/// Sends on this packet socket go straight to the driver, skipping the qdisc layer
/// (PACKET_QDISC_BYPASS, Linux >= 3.14).
pub fn qdisc_bypass(fd: impl AsFd) -> io::Result<()> {
    set_flag(fd, libc::PACKET_QDISC_BYPASS)
}

/// Joins `fd` to a PACKET_FANOUT_HASH group. With `group_id == None` the kernel picks a group id
/// unique in this namespace (PACKET_FANOUT_FLAG_UNIQUEID); the id actually used is returned so
/// other sockets can join the same group.
pub fn join_fanout(fd: impl AsFd, group_id: Option<u16>) -> io::Result<u16> {
    let raw = fd.as_fd().as_raw_fd();
    let mode = libc::PACKET_FANOUT_HASH;
    let value = match group_id {
        Some(id) => u32::from(id) | (mode << 16),
        None => (mode | PACKET_FANOUT_FLAG_UNIQUEID) << 16,
    };
    crate::sockopt::set_int_option(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, value as i32)?;
    let actual = crate::sockopt::get_int_option(raw, libc::SOL_PACKET, libc::PACKET_FANOUT)?;
    Ok((actual as u32 & 0xffff) as u16)
}

/// Frames the kernel dropped on this packet socket since the last call (PACKET_STATISTICS;
/// reading resets the kernel's counters).
pub fn take_drops(fd: impl AsFd) -> io::Result<u64> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are live and `len` holds the size of `stats`, so the kernel
    // writes at most that many bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&mut stats as *mut libc::tpacket_stats).cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(u64::from(stats.tp_drops))
}

/// Discards whatever is queued on `fd` with non-blocking reads into `scratch`; returns the
/// number of frames discarded.
pub fn drain(fd: impl AsFd, scratch: &mut [u8]) -> usize {
    let raw = fd.as_fd().as_raw_fd();
    let mut drained = 0;
    loop {
        // SAFETY: `scratch` is a live writable buffer of the given length.
        let n = unsafe {
            libc::recv(
                raw,
                scratch.as_mut_ptr().cast(),
                scratch.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        if n < 0 {
            return drained;
        }
        drained += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_empties_a_queue_without_blocking() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        for _ in 0..3 {
            a.send(&[1; 100]).unwrap();
        }
        let mut scratch = [0u8; 16];
        assert_eq!(drain(&b, &mut scratch), 3);
        assert_eq!(drain(&b, &mut scratch), 0);
    }

    #[test]
    fn the_receive_nothing_filter_comes_off_again() {
        // Socket filters apply to Unix datagram sockets alike (no root needed).
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let mut scratch = [0u8; 16];
        receive_nothing(&b).unwrap();
        a.send(&[1; 10]).unwrap();
        assert_eq!(drain(&b, &mut scratch), 0, "refused by the filter");
        receive_all(&b).unwrap();
        receive_all(&b).unwrap(); // no filter left: still fine
        a.send(&[1; 10]).unwrap();
        assert_eq!(drain(&b, &mut scratch), 1);
    }

    #[test]
    fn packet_socket_options_need_root() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): AF_PACKET socket options");
            return;
        }
        let rx = open(ETH_P_IP).unwrap();
        // lo exists in every namespace; binding to it receives only lo traffic.
        let lo = nix::net::if_::if_nametoindex("lo").unwrap();
        bind(&rx, lo, ETH_P_IP).unwrap();
        let group = join_fanout(&rx, None).unwrap();
        let second = open(ETH_P_IP).unwrap();
        bind(&second, lo, ETH_P_IP).unwrap();
        assert_eq!(join_fanout(&second, Some(group)).unwrap(), group);
        let _ = ignore_outgoing(&rx);
        assert_eq!(take_drops(&rx).unwrap(), 0);
        let tx = open_sender(lo).unwrap();
        qdisc_bypass(&tx).unwrap();
    }
}
