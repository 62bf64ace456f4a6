//! Socket options socket2 and nix do not cover: integer options by level and name, structured
//! `SOL_PACKET` options, and forced socket buffers.
//!
//! The integer helpers take a raw descriptor (the membership pool calls them with the fd of a
//! `socket2::Socket`): a wrong descriptor yields an error such as `EBADF`/`ENOTSOCK`, never
//! undefined behaviour, since the kernel only reads the `c_int` passed by pointer here.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, RawFd};

/// `setsockopt(fd, level, name, &value)` with a C `int` value.
pub fn set_int_option(fd: RawFd, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: passes a pointer to a live c_int and its exact size; the kernel only reads it.
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

/// `getsockopt(fd, level, name)` of a C `int` value.
pub fn get_int_option(fd: RawFd, level: i32, name: i32) -> io::Result<i32> {
    let mut value: i32 = 0;
    let mut len = size_of::<i32>() as libc::socklen_t;
    // SAFETY: `value` and `len` are live and `len` holds the size of `value`, so the kernel
    // writes at most that many bytes.
    let rc =
        unsafe { libc::getsockopt(fd, level, name, (&mut value as *mut i32).cast(), &mut len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(value)
}

/// Values that may be passed by pointer as a `SOL_PACKET` option: plain C structs of the
/// kernel ABI (no padding the kernel could misread, no pointers).
pub trait PacketOptionValue: Copy {}
impl PacketOptionValue for i32 {}
impl PacketOptionValue for libc::tpacket_req {}
impl PacketOptionValue for libc::tpacket_req3 {}

/// `setsockopt(SOL_PACKET, name, value)` with a structured value (ring requests, versions).
pub fn set_packet_option<T: PacketOptionValue>(
    fd: impl AsFd,
    name: i32,
    value: &T,
) -> io::Result<()> {
    // SAFETY: `value` is a live, initialised `T` (a plain C struct) and its exact size is
    // passed; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
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

/// Sets SO_RCVBUFFORCE and SO_SNDBUFFORCE to `bytes` (root may exceed rmem_max/wmem_max).
pub fn force_buffers(fd: RawFd, bytes: i32) -> io::Result<()> {
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, bytes)?;
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_options_round_trip_and_bad_descriptors_are_errors() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = socket.as_raw_fd();
        set_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap();
        assert_eq!(
            get_int_option(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR).unwrap(),
            1
        );
        let err = set_int_option(-1, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EBADF));
    }
}
