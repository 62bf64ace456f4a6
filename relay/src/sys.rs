//! The few raw system calls the relay needs that `socket2`/`nix` do not cover: AF_PACKET
//! sockets, PACKET_FANOUT, forced socket buffers, and reading a kernel receive timestamp out of
//! a control message. Every `unsafe` block of the crate's socket layer lives here.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub const ETH_P_IP: u16 = 0x0800;
/// `PACKET_IGNORE_OUTGOING` (Linux >= 4.20), not exported by every libc version.
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_FANOUT_FLAG_UNIQUEID: u32 = 0x2000;

/// Opens `socket(AF_PACKET, SOCK_RAW, htons(protocol))`. Protocol 0 receives nothing (send-only).
pub fn packet_socket(protocol: u16) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call with constant arguments; the returned fd is checked and then
    // owned exclusively by the OwnedFd.
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol.to_be()),
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// A zeroed `sockaddr_ll` for `ifindex` and `protocol`.
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

/// Binds a packet socket to `protocol` on `ifindex` (0 = every interface).
pub fn bind_packet(fd: &OwnedFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    let addr = sockaddr_ll(ifindex, protocol);
    // SAFETY: `addr` is a valid sockaddr_ll living across the call; the length matches it.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_ll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `setsockopt(SOL_PACKET, name, value)` with a structured value (ring requests, versions).
pub fn set_packet_option<T>(fd: &OwnedFd, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised `T` and its exact size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Maps the `len`-byte receive ring the kernel allocated for `fd` (after `PACKET_RX_RING`),
/// shared and pre-faulted. The caller owns the mapping and must `munmap` it exactly once.
pub fn map_rx_ring(fd: &OwnedFd, len: usize) -> io::Result<*mut u8> {
    // SAFETY: a fresh shared mapping of the socket's ring; no existing memory is touched and
    // the result is checked before use.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd.as_raw_fd(),
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(base.cast())
}

/// `setsockopt` with an integer value.
pub fn set_int_option(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (&value as *const i32).cast(),
            size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `getsockopt` returning an integer value.
pub fn get_int_option(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and `len` holds the size of `value`.
    let rc =
        unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut i32).cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Never deliver frames this host sends to this packet socket (Linux >= 4.20).
pub fn ignore_outgoing(fd: &OwnedFd) -> io::Result<()> {
    set_int_option(fd.as_raw_fd(), libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
}

/// Sends on this packet socket go straight to the driver, skipping the qdisc layer
/// (PACKET_QDISC_BYPASS, Linux >= 3.14); the relay's egress needs no queueing discipline.
pub fn qdisc_bypass(fd: &OwnedFd) -> io::Result<()> {
    set_int_option(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        libc::PACKET_QDISC_BYPASS,
        1,
    )
}

/// Joins `fd` to a PACKET_FANOUT_HASH group. With `group_id == None` the kernel picks a group id
/// unique in this namespace (PACKET_FANOUT_FLAG_UNIQUEID); the id actually used is returned so
/// the other workers can join the same group.
pub fn join_fanout(fd: &OwnedFd, group_id: Option<u16>) -> io::Result<u16> {
    let mode = libc::PACKET_FANOUT_HASH;
    let value = match group_id {
        Some(id) => u32::from(id) | (mode << 16),
        None => (mode | PACKET_FANOUT_FLAG_UNIQUEID) << 16,
    };
    set_int_option(
        fd.as_raw_fd(),
        libc::SOL_PACKET,
        libc::PACKET_FANOUT,
        value as i32,
    )?;
    let actual = get_int_option(fd.as_raw_fd(), libc::SOL_PACKET, libc::PACKET_FANOUT)?;
    Ok((actual as u32 & 0xffff) as u16)
}

/// Frames the kernel dropped on this packet socket since the last call (PACKET_STATISTICS;
/// reading resets the kernel's counters).
pub fn packet_socket_drops(fd: &OwnedFd) -> io::Result<u64> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: `stats` and `len` are live and `len` holds the size of `stats`.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
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

/// Sets SO_RCVBUFFORCE and SO_SNDBUFFORCE (root may exceed rmem_max/wmem_max).
pub fn force_buffers(fd: RawFd, bytes: i32) -> io::Result<()> {
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes)?;
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, bytes)
}

/// Drains whatever is queued on a non-blocking read of `fd` (used once at worker start so no
/// frame queued before the fanout join is handled twice).
pub fn drain(fd: &OwnedFd, scratch: &mut [u8]) -> usize {
    let mut drained = 0;
    loop {
        // SAFETY: `scratch` is a live writable buffer of the given length.
        let n = unsafe {
            libc::recv(
                fd.as_raw_fd(),
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

/// Finds an SCM_TIMESTAMPNS control message in `msg` and returns it as CLOCK_REALTIME ns.
pub fn receive_timestamp_ns(msg: &libc::msghdr) -> Option<u64> {
    if msg.msg_control.is_null() || msg.msg_controllen == 0 {
        return None;
    }
    // SAFETY: `msg` was filled in by recvmsg; its control pointer and length describe a buffer
    // owned by the caller that is still alive, and the CMSG_* helpers stay within that length.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let header = &*cmsg;
            if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SO_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            cmsg = libc::CMSG_NXTHDR(msg, cmsg);
        }
    }
    None
}

/// CLOCK_REALTIME now, in nanoseconds (comparable with [`receive_timestamp_ns`]).
pub fn realtime_ns() -> u64 {
    match std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as u64,
        Err(_) => 0,
    }
}

/// Reads an integer from a file under /proc/sys (of the caller's network namespace).
pub fn read_sysctl(path: &str) -> io::Result<u64> {
    let text = std::fs::read_to_string(path)?;
    text.trim()
        .parse()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{path}: {e}")))
}

/// Raises the soft open-file limit to the hard limit (the pool opens one helper socket per
/// `capacity` groups: 500 sockets for 10000 groups at default sysctls). Returns the new limit.
pub fn raise_open_file_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a live rlimit the call fills in.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: passes a live, initialised rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}
