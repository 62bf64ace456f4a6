//! Batched send with `sendmmsg`: [`SendBatch`] owns one buffer per message, the optional
//! per-message destinations (`sockaddr_in`, for unconnected UDP sockets), the iovecs and the
//! `mmsghdr`s pointing at them, so callers fill slots and send without any `unsafe`.

use crate::mmsghdr::{empty_headers, empty_iovecs};
use crate::sockaddr::sockaddr_in;
use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::os::fd::{AsFd, AsRawFd};

/// Preallocated messages for `sendmmsg`; every message is its whole slot buffer.
pub struct SendBatch {
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_in>,
    buffers: Vec<u8>,
    buffer_len: usize,
    with_destinations: bool,
}

impl SendBatch {
    /// `slots` (at least 1) messages of `buffer_len` bytes each. With `with_destinations` every
    /// message carries its own destination ([`set_destination`](Self::set_destination));
    /// without, the socket's binding or connection decides.
    pub fn new(slots: usize, buffer_len: usize, with_destinations: bool) -> SendBatch {
        let slots = slots.max(1);
        SendBatch {
            headers: empty_headers(slots),
            iovecs: empty_iovecs(slots),
            names: vec![sockaddr_in(Ipv4Addr::UNSPECIFIED, 0); slots],
            buffers: vec![0; slots * buffer_len],
            buffer_len,
            with_destinations,
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.headers.len()
    }

    /// The bytes of message `slot`, to fill in.
    #[inline]
    pub fn buffer_mut(&mut self, slot: usize) -> &mut [u8] {
        let start = slot * self.buffer_len;
        &mut self.buffers[start..start + self.buffer_len]
    }

    /// Sets the destination of message `slot` (used only with destinations on).
    #[inline]
    pub fn set_destination(&mut self, slot: usize, destination: libc::sockaddr_in) {
        self.names[slot] = destination;
    }

    /// Sends messages `slots` (a sub-range of `0..slots()`) with one `sendmmsg`; returns how
    /// many of them, from the first, the kernel took.
    pub fn send(&mut self, fd: impl AsFd, slots: Range<usize>) -> io::Result<usize> {
        let slots = slots.start.min(self.slots())..slots.end.min(self.slots());
        if slots.is_empty() {
            return Ok(0);
        }
        self.prepare(slots.clone());
        let headers = &mut self.headers[slots];
        let count = u32::try_from(headers.len()).unwrap_or(u32::MAX);
        // SAFETY: the headers in range point at live buffers, iovecs and names of this struct
        // (set by `prepare` just above) with their exact lengths; sendmmsg is synchronous and
        // only reads them (and writes msg_len), and `count` does not exceed the slice.
        let n = unsafe { libc::sendmmsg(fd.as_fd().as_raw_fd(), headers.as_mut_ptr(), count, 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    /// Points the headers of `slots` at their buffers (and destinations).
    fn prepare(&mut self, slots: Range<usize>) {
        let len = self.buffer_len;
        for slot in slots {
            let iov = &mut self.iovecs[slot];
            iov.iov_base = self.buffers[slot * len..].as_mut_ptr().cast();
            iov.iov_len = len;
            let header = &mut self.headers[slot];
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            if self.with_destinations {
                header.msg_hdr.msg_name = (&mut self.names[slot] as *mut libc::sockaddr_in).cast();
                header.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
            }
            header.msg_len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn sends_each_slot_to_its_destination() {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = |s: &UdpSocket| s.local_addr().unwrap().port();
        let mut batch = SendBatch::new(3, 4, true);
        for (slot, target) in [&a, &b, &a].into_iter().enumerate() {
            batch.buffer_mut(slot).copy_from_slice(&[slot as u8; 4]);
            batch.set_destination(slot, sockaddr_in(Ipv4Addr::LOCALHOST, port(target)));
        }
        assert_eq!(batch.send(&tx, 0..3).unwrap(), 3);
        let mut buf = [0u8; 16];
        assert_eq!(a.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[0; 4]);
        assert_eq!(a.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[2; 4]);
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], &[1; 4]);
        // Sub-ranges and empty ranges.
        assert_eq!(batch.send(&tx, 1..2).unwrap(), 1);
        assert_eq!(b.recv(&mut buf).unwrap(), 4);
        assert_eq!(batch.send(&tx, 2..2).unwrap(), 0);
    }

    #[test]
    fn a_connected_socket_needs_no_destinations() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        let mut batch = SendBatch::new(2, 3, false);
        batch.buffer_mut(0).copy_from_slice(b"abc");
        batch.buffer_mut(1).copy_from_slice(b"def");
        assert_eq!(batch.send(&tx, 0..2).unwrap(), 2);
        let mut buf = [0u8; 8];
        assert_eq!(rx.recv(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"abc");
    }
}
