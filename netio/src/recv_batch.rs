//! Batched, order-preserving receive with one `recvmmsg(MSG_DONTWAIT)`: [`RecvBatch`] owns the
//! datagram buffers, the iovecs, the source addresses, the aligned control buffers and the
//! `mmsghdr`s pointing at them, so callers receive and read frames without any `unsafe`.
//!
//! On a packet socket the source address (`sockaddr_ll`) gives the input interface and packet
//! type ([`RecvBatch::received`]); with control messages on, [`RecvBatch::timestamp_ns`] gives
//! the kernel receive time (`SO_TIMESTAMPNS`) and [`RecvBatch::destination`] the IPv4
//! destination (`IP_PKTINFO`), provided the socket has those options set.

use crate::cmsg::{ControlBuffer, ControlMessages};
use crate::mmsghdr::{empty_headers, empty_iovecs};
use crate::packet_socket::Received;
use crate::sockaddr::sockaddr_ll;
use std::io;
use std::mem::size_of;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd};

/// What a [`RecvBatch`] asks the kernel for besides the datagrams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvMetadata {
    /// The link-layer source address of each frame (packet sockets): see [`RecvBatch::received`].
    pub link_addresses: bool,
    /// The control messages of each datagram (timestamps, pktinfo).
    pub control: bool,
}

/// Preallocated buffers and headers for `recvmmsg`.
pub struct RecvBatch {
    headers: Vec<libc::mmsghdr>,
    iovecs: Vec<libc::iovec>,
    addrs: Vec<libc::sockaddr_ll>,
    controls: Vec<ControlBuffer>,
    buffers: Vec<u8>,
    buffer_size: usize,
    metadata: RecvMetadata,
}

impl RecvBatch {
    /// Room for `count` (at least 1) datagrams of up to `buffer_size` (at least 1) bytes each.
    pub fn new(count: usize, buffer_size: usize, metadata: RecvMetadata) -> RecvBatch {
        let count = count.max(1);
        let buffer_size = buffer_size.max(1);
        RecvBatch {
            headers: empty_headers(count),
            iovecs: empty_iovecs(count),
            addrs: vec![sockaddr_ll(0, 0); count],
            controls: vec![ControlBuffer::default(); count],
            buffers: vec![0; count * buffer_size],
            buffer_size,
            metadata,
        }
    }

    /// Datagrams one [`recv`](Self::recv) takes at most.
    pub fn capacity(&self) -> usize {
        self.headers.len()
    }

    /// Points every header at this batch's buffers (they never move, but the pointers are
    /// rebuilt before each call so the headers are never stale).
    fn prepare(&mut self) {
        let size = self.buffer_size;
        let metadata = self.metadata;
        let slots = self
            .headers
            .iter_mut()
            .zip(self.iovecs.iter_mut())
            .zip(self.addrs.iter_mut().zip(self.controls.iter_mut()))
            .zip(self.buffers.chunks_exact_mut(size));
        for (((header, iov), (addr, control)), buffer) in slots {
            iov.iov_base = buffer.as_mut_ptr().cast();
            iov.iov_len = buffer.len();
            let msg = &mut header.msg_hdr;
            if metadata.link_addresses {
                msg.msg_name = (addr as *mut libc::sockaddr_ll).cast();
                msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
            } else {
                msg.msg_name = std::ptr::null_mut();
                msg.msg_namelen = 0;
            }
            msg.msg_iov = iov;
            msg.msg_iovlen = 1;
            (msg.msg_control, msg.msg_controllen) = if metadata.control {
                control.as_msg_control()
            } else {
                (std::ptr::null_mut(), 0)
            };
            msg.msg_flags = 0;
            header.msg_len = 0;
        }
    }

    /// Receives up to [`capacity`](Self::capacity) datagrams from `fd` without blocking;
    /// `Ok(0)` when none is queued. Other errors (`EINTR` included) are returned as they are.
    pub fn recv(&mut self, fd: impl AsFd) -> io::Result<usize> {
        self.prepare();
        // SAFETY: every header points at live buffers of this struct (set just above) whose
        // lengths are given in the header; recvmmsg is synchronous, so nothing is written after
        // it returns, and `vlen` equals the number of headers.
        let n = unsafe {
            libc::recvmmsg(
                fd.as_fd().as_raw_fd(),
                self.headers.as_mut_ptr(),
                self.headers.len() as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::WouldBlock {
                return Ok(0);
            }
            return Err(e);
        }
        Ok(n as usize)
    }

    /// Bytes of datagram `index` received (at most the buffer size).
    #[inline]
    fn len(&self, index: usize) -> usize {
        (self.headers[index].msg_len as usize).min(self.buffer_size)
    }

    /// Metadata of frame `index` of the last `recv` (interface and packet type are 0 unless
    /// the batch asks for link addresses; the VLAN tag is read from `PACKET_AUXDATA`, so it
    /// needs control messages and [`crate::packet_socket::receive_auxdata`] on the socket).
    #[inline]
    pub fn received(&self, index: usize) -> Received {
        let addr = &self.addrs[index];
        let vlan_tci = if self.metadata.control {
            self.control(index).find_map(|m| m.packet_vlan_tci())
        } else {
            None
        };
        Received {
            ifindex: addr.sll_ifindex as u32,
            pkttype: addr.sll_pkttype,
            truncated: self.headers[index].msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            len: self.len(index),
            vlan_tci,
        }
    }

    /// Bytes of datagram `index` of the last `recv`.
    #[inline]
    pub fn frame(&self, index: usize) -> &[u8] {
        let start = index * self.buffer_size;
        &self.buffers[start..start + self.len(index)]
    }

    /// Control messages of datagram `index` of the last `recv` (none unless asked for).
    pub fn control(&self, index: usize) -> ControlMessages<'_> {
        let len = if self.metadata.control {
            self.headers[index].msg_hdr.msg_controllen
        } else {
            0
        };
        self.controls[index].messages(len)
    }

    /// Kernel receive timestamp (CLOCK_REALTIME ns) of datagram `index`, with SO_TIMESTAMPNS
    /// on the socket and control messages asked for.
    #[inline]
    pub fn timestamp_ns(&self, index: usize) -> Option<u64> {
        if !self.metadata.control {
            return None;
        }
        self.control(index).find_map(|m| m.timestamp_ns())
    }

    /// IPv4 destination address of datagram `index`, with IP_PKTINFO on the socket and
    /// control messages asked for.
    pub fn destination(&self, index: usize) -> Option<Ipv4Addr> {
        self.control(index).find_map(|m| m.ipv4_destination())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;

    #[test]
    fn receives_a_batch_in_order_from_a_socket() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let mut batch = RecvBatch::new(4, 64, RecvMetadata::default());
        assert_eq!(batch.recv(&b).unwrap(), 0, "nothing queued");
        for i in 0..6u8 {
            a.send(&[i; 10]).unwrap();
        }
        assert_eq!(batch.recv(&b).unwrap(), 4);
        for i in 0..4 {
            assert_eq!(batch.frame(i), &[i as u8; 10]);
            assert!(!batch.received(i).truncated);
            assert_eq!(batch.timestamp_ns(i), None);
        }
        assert_eq!(batch.recv(&b).unwrap(), 2);
        assert_eq!(batch.frame(1), &[5u8; 10]);
    }

    #[test]
    fn marks_truncated_frames() {
        let (a, b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let mut batch = RecvBatch::new(2, 8, RecvMetadata::default());
        a.send(&[1; 20]).unwrap();
        assert_eq!(batch.recv(&b).unwrap(), 1);
        assert!(batch.received(0).truncated);
        assert_eq!(batch.frame(0).len(), 8);
    }

    #[test]
    fn reads_timestamp_and_destination_of_udp_datagrams() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let fd = rx.as_raw_fd();
        crate::sockopt::set_int_option(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1).unwrap();
        crate::sockopt::set_int_option(fd, libc::IPPROTO_IP, libc::IP_PKTINFO, 1).unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let before = crate::clock::realtime_ns();
        tx.send_to(b"one", rx.local_addr().unwrap()).unwrap();
        tx.send_to(b"two", rx.local_addr().unwrap()).unwrap();
        let metadata = RecvMetadata {
            link_addresses: false,
            control: true,
        };
        let mut batch = RecvBatch::new(8, 32, metadata);
        let mut n = 0;
        for _ in 0..100 {
            n = batch.recv(&rx).unwrap();
            if n == 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(n, 2);
        assert_eq!(batch.frame(1), b"two");
        for i in 0..2 {
            assert_eq!(batch.destination(i), Some(Ipv4Addr::LOCALHOST));
            let ts = batch.timestamp_ns(i).expect("SO_TIMESTAMPNS");
            assert!(ts >= before && ts <= crate::clock::realtime_ns());
            assert_eq!(batch.control(i).count(), 2);
        }
    }
}
