//! The few raw system calls loadgen needs that nix/socket2 do not wrap conveniently:
//! batched `sendmmsg`/`recvmmsg`, an AF_PACKET socket bound to an interface, and the
//! interface MAC/MTU ioctls. Every `unsafe` block of the crate lives here.

use std::ffi::CString;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// CLOCK_MONOTONIC in nanoseconds (the clock of the payload header's send time).
pub fn monotonic_ns() -> u64 {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(ts) => ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64,
        Err(_) => 0,
    }
}

/// Sends `msgs` with one `sendmmsg` call; returns how many were sent.
pub fn sendmmsg(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let len = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
    // SAFETY: `msgs` is a valid, exclusively borrowed array of `len` mmsghdr whose iovec and
    // name pointers the caller set to live buffers; the kernel only reads them and writes msg_len.
    let n = unsafe { libc::sendmmsg(fd, msgs.as_mut_ptr(), len, 0) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Receives into `msgs` with one non-blocking `recvmmsg`; returns how many arrived.
pub fn recvmmsg(fd: RawFd, msgs: &mut [libc::mmsghdr]) -> io::Result<usize> {
    let len = u32::try_from(msgs.len()).unwrap_or(u32::MAX);
    // SAFETY: `msgs` is a valid, exclusively borrowed array of `len` mmsghdr whose iovec,
    // name and control pointers the caller set to live, writable buffers of the stated sizes.
    let n = unsafe {
        libc::recvmmsg(
            fd,
            msgs.as_mut_ptr(),
            len,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// The destination address from the `IP_PKTINFO` control message of a received `hdr`, if any.
pub fn pktinfo_dst(hdr: &libc::msghdr) -> Option<Ipv4Addr> {
    // SAFETY: `hdr` was filled by recvmmsg; msg_control/msg_controllen describe a buffer the
    // caller owns, and the CMSG_* macros stay within msg_controllen. The pktinfo payload is
    // read unaligned because control buffers carry no alignment guarantee for it.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(hdr);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::IPPROTO_IP && (*cmsg).cmsg_type == libc::IP_PKTINFO {
                let info =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg) as *const libc::in_pktinfo);
                return Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
            }
            cmsg = libc::CMSG_NXTHDR(hdr, cmsg);
        }
    }
    None
}

/// Bytes of control buffer needed for one `IP_PKTINFO` message.
pub fn pktinfo_space() -> usize {
    // SAFETY: CMSG_SPACE is pure arithmetic on its argument.
    unsafe { libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize }
}

/// An AF_PACKET/SOCK_RAW socket bound to interface `ifindex` for sending whole frames.
/// Protocol 0: the socket receives nothing.
pub fn packet_socket(ifindex: u32) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the returned descriptor is owned by the OwnedFd at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid starting value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = 0;
    addr.sll_ifindex = ifindex as i32;
    // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            owned.as_raw_fd(),
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(owned)
}

fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let cname = CString::new(name).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let bytes = cname.as_bytes_with_nul();
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    if bytes.len() > req.ifr_name.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok(req)
}

fn ioctl_ifreq(request: libc::Ioctl, name: &str) -> io::Result<libc::ifreq> {
    let mut req = ifreq_for(name)?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    // SAFETY: `req` is a valid ifreq with a NUL-terminated name; the SIOCGIF* requests used
    // here only write into it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), request, &mut req as *mut libc::ifreq) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req)
}

/// The interface's hardware address, asked of the current network namespace (SIOCGIFHWADDR).
pub fn interface_mac(name: &str) -> io::Result<[u8; 6]> {
    let req = ioctl_ifreq(libc::SIOCGIFHWADDR, name)?;
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member of the union.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let mut mac = [0u8; 6];
    for (dst, src) in mac.iter_mut().zip(data.iter()) {
        *dst = *src as u8;
    }
    Ok(mac)
}

/// The interface's MTU in the current network namespace (SIOCGIFMTU).
pub fn interface_mtu(name: &str) -> io::Result<u32> {
    let req = ioctl_ifreq(libc::SIOCGIFMTU, name)?;
    // SAFETY: SIOCGIFMTU filled the ifru_mtu member of the union.
    let mtu = unsafe { req.ifr_ifru.ifru_mtu };
    Ok(mtu.max(0) as u32)
}

/// An all-zero `mmsghdr` (no buffers yet) to be filled by the caller.
pub fn zeroed_mmsghdr() -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain data (pointers, lengths, flags); all-zero is a valid value.
    unsafe { std::mem::zeroed() }
}

/// A `sockaddr_in` for `addr:port`.
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

/// Sets IFF_UP on an interface of the current namespace (tests bring up the loopback of a
/// fresh namespace with it).
#[cfg(test)]
pub fn set_interface_up(name: &str) -> io::Result<()> {
    let mut req = ioctl_ifreq(libc::SIOCGIFFLAGS, name)?;
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None)?;
    // SAFETY: SIOCGIFFLAGS filled ifru_flags; SIOCSIFFLAGS reads the same valid ifreq.
    let rc = unsafe {
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCSIFFLAGS,
            &mut req as *mut libc::ifreq,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
