//! Preallocated message slots for io_uring `SendMsg` (or one `sendmmsg`) on packet sockets.
//!
//! A [`SlotArena`] owns `count` fixed-size frame buffers plus, for each, a `msghdr`, an `iovec`
//! and a `sockaddr_ll`. Everything is allocated once; the
//! kernel writes into (or reads from) a slot between the submission that names it and the
//! completion that returns it, and the caller must not touch a slot in that window (the data
//! plane tracks this with its free lists). The arena must outlive the ring that uses it: the
//! worker declares the ring before the arenas so it is dropped (and its requests cancelled)
//! first.

use io_uring::{opcode, squeue, types};
use std::mem::size_of;
use std::os::fd::RawFd;

#[repr(C)]
struct MsgSlot {
    msg: libc::msghdr,
    iov: libc::iovec,
    addr: libc::sockaddr_ll,
    addr_in: libc::sockaddr_in,
}

/// Fixed message slots and their frame buffers.
pub struct SlotArena {
    slots: Vec<MsgSlot>,
    buffers: Vec<u8>,
    slot_base: *mut MsgSlot,
    buffer_base: *mut u8,
    count: usize,
    buffer_size: usize,
    /// Scratch headers for [`SlotArena::send_mmsg`].
    batch: Vec<libc::mmsghdr>,
}

impl SlotArena {
    pub fn new(count: usize, buffer_size: usize) -> SlotArena {
        let mut slots: Vec<MsgSlot> = (0..count)
            .map(|_| {
                // SAFETY: msghdr, iovec and sockaddr_ll are plain C structs for which all-zero
                // bytes is a valid (empty) value.
                unsafe { std::mem::zeroed() }
            })
            .collect();
        let mut buffers = vec![0u8; count * buffer_size];
        let slot_base = slots.as_mut_ptr();
        let buffer_base = buffers.as_mut_ptr();
        let mut arena = SlotArena {
            slots,
            buffers,
            slot_base,
            buffer_base,
            count,
            buffer_size,
            batch: Vec::with_capacity(count),
        };
        for i in 0..count {
            let buffer = arena.buffer_ptr(i);
            let slot = arena.slot_mut(i);
            slot.iov.iov_base = buffer.cast();
            slot.iov.iov_len = buffer_size;
            slot.msg.msg_iov = &mut slot.iov;
            slot.msg.msg_iovlen = 1;
            slot.msg.msg_name = (&mut slot.addr as *mut libc::sockaddr_ll).cast();
            slot.msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        }
        arena
    }

    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    fn buffer_ptr(&self, index: usize) -> *mut u8 {
        self.buffer_base.wrapping_add(index * self.buffer_size)
    }

    fn slot_mut(&mut self, index: usize) -> &mut MsgSlot {
        assert!(index < self.count, "slot index out of range");
        debug_assert_eq!(self.slots.len(), self.count);
        // SAFETY: index < count, slot_base points to `count` initialised slots owned by
        // `self.slots` (never resized), and the caller does not use a slot while it is in
        // flight, so no other reference to this slot exists.
        unsafe { &mut *self.slot_base.add(index) }
    }

    /// The first `len` bytes of slot `index`'s buffer.
    pub fn frame(&self, index: usize, len: usize) -> &[u8] {
        assert!(index < self.count, "slot index out of range");
        debug_assert_eq!(self.buffers.len(), self.count * self.buffer_size);
        // SAFETY: the range lies inside `self.buffers` (index < count, len clamped to the
        // buffer size) and the slot is not in flight, so the kernel does not write it now.
        unsafe { std::slice::from_raw_parts(self.buffer_ptr(index), len.min(self.buffer_size)) }
    }

    /// Slot `index`'s whole buffer, to build a frame in.
    pub fn frame_mut(&mut self, index: usize) -> &mut [u8] {
        assert!(index < self.count, "slot index out of range");
        // SAFETY: as in `frame`, and `&mut self` guarantees no other Rust reference to it.
        unsafe { std::slice::from_raw_parts_mut(self.buffer_ptr(index), self.buffer_size) }
    }

    /// Prepares slot `index`'s message: the first `len` bytes of its buffer out of interface
    /// `ifindex` (for [`SlotArena::send_mmsg`], or [`SlotArena::entry`] on a packet socket).
    pub fn prepare_packet(
        &mut self,
        index: usize,
        len: usize,
        ifindex: u32,
        destination_mac: [u8; 6],
    ) {
        let size = self.buffer_size;
        let slot = self.slot_mut(index);
        slot.iov.iov_len = len.min(size);
        slot.addr = netio::sockaddr::sockaddr_ll(ifindex, netio::packet_socket::ETH_P_IP);
        slot.addr.sll_halen = 6;
        slot.addr.sll_addr[..6].copy_from_slice(&destination_mac);
        slot.msg.msg_namelen = size_of::<libc::sockaddr_ll>() as u32;
        slot.msg.msg_control = std::ptr::null_mut();
        slot.msg.msg_controllen = 0;
        slot.msg.msg_flags = 0;
        slot.msg.msg_name = (&mut slot.addr as *mut libc::sockaddr_ll).cast();
    }

    /// Prepares slot `index`'s message: the first `len` bytes of its buffer to `destination`
    /// (for [`SlotArena::send_mmsg`], or [`SlotArena::entry`] on a UDP socket).
    pub fn prepare_udp(&mut self, index: usize, len: usize, destination: libc::sockaddr_in) {
        let size = self.buffer_size;
        let slot = self.slot_mut(index);
        slot.iov.iov_len = len.min(size);
        slot.addr_in = destination;
        slot.msg.msg_name = (&mut slot.addr_in as *mut libc::sockaddr_in).cast();
        slot.msg.msg_namelen = size_of::<libc::sockaddr_in>() as u32;
        slot.msg.msg_control = std::ptr::null_mut();
        slot.msg.msg_controllen = 0;
        slot.msg.msg_flags = 0;
    }

    /// An io_uring `SendMsg` on `fd` of slot `index`'s message as last prepared.
    pub fn entry(&mut self, index: usize, fd: RawFd) -> squeue::Entry {
        let slot = self.slot_mut(index);
        opcode::SendMsg::new(types::Fd(fd), &slot.msg).build()
    }
}

impl SlotArena {
    /// Sends the messages of `slots`, as the last [`SlotArena::prepare_packet`] or
    /// [`SlotArena::prepare_udp`] of each prepared them, with as few `sendmmsg` calls as the
    /// kernel allows. `results` gets, per slot, the bytes sent or the negated errno: a message
    /// the kernel refuses is skipped and the ones after it are still sent.
    pub fn send_mmsg(&mut self, fd: RawFd, slots: &[u32], results: &mut Vec<i32>) {
        let mut batch = std::mem::take(&mut self.batch);
        batch.clear();
        for &index in slots {
            let msg_hdr = self.slot_mut(index as usize).msg;
            batch.push(libc::mmsghdr {
                msg_hdr,
                msg_len: 0,
            });
        }
        results.clear();
        results.resize(slots.len(), 0);
        let mut start = 0;
        while start < batch.len() {
            let rest = &mut batch[start..];
            // SAFETY: `rest` is a valid array of `rest.len()` headers. Every header is a copy of
            // a slot's msghdr, whose iovec, address and buffer pointers point into this arena's
            // own allocations (set in `new`, lengths clamped to the buffer size, never moved or
            // freed while `self` is borrowed here); the kernel only reads them and writes
            // `msg_len` into `rest`.
            let sent = unsafe { libc::sendmmsg(fd, rest.as_mut_ptr(), rest.len() as u32, 0) };
            if sent > 0 {
                for (i, message) in rest.iter().take(sent as usize).enumerate() {
                    results[start + i] = message.msg_len as i32;
                }
                start += sent as usize;
                continue;
            }
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            if sent < 0 && errno == libc::EINTR {
                continue;
            }
            // The first message failed (or, never expected, none was sent): skip it.
            results[start] = -errno;
            start += 1;
        }
        self.batch = batch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn slots_have_separate_buffers() {
        let mut arena = SlotArena::new(4, 128);
        arena.frame_mut(1)[..3].copy_from_slice(b"abc");
        arena.frame_mut(2)[..3].copy_from_slice(b"xyz");
        assert_eq!(arena.frame(1, 3), b"abc");
        assert_eq!(arena.frame(2, 3), b"xyz");
        assert_eq!(
            arena.frame(0, 1000).len(),
            128,
            "length clamped to the buffer"
        );
        arena.prepare_packet(3, 60, 7, [1, 0, 0x5e, 1, 2, 3]);
        let _ = arena.entry(3, 0);
    }

    fn loopback(port: u16) -> libc::sockaddr_in {
        netio::sockaddr::sockaddr_in(std::net::Ipv4Addr::LOCALHOST, port)
    }

    #[test]
    fn send_mmsg_sends_every_prepared_slot_in_order() {
        let receiver = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = receiver.local_addr().unwrap().port();
        let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut arena = SlotArena::new(4, 64);
        for (slot, text) in [(2usize, b"two"), (0, b"one"), (3, b"thr")] {
            arena.frame_mut(slot)[..3].copy_from_slice(text);
            arena.prepare_udp(slot, 3, loopback(port));
        }
        let mut results = Vec::new();
        arena.send_mmsg(sender.as_raw_fd(), &[2, 0, 3], &mut results);
        assert_eq!(results, vec![3, 3, 3]);
        let mut buffer = [0u8; 16];
        for expected in [b"two", b"one", b"thr"] {
            let n = receiver.recv(&mut buffer).unwrap();
            assert_eq!(&buffer[..n], expected);
        }
    }

    #[test]
    fn send_mmsg_reports_each_failed_message_and_goes_on() {
        let mut arena = SlotArena::new(2, 64);
        let mut results = vec![7; 5];
        arena.send_mmsg(-1, &[0, 1], &mut results);
        assert_eq!(results, vec![-libc::EBADF, -libc::EBADF]);
        arena.send_mmsg(-1, &[], &mut results);
        assert!(results.is_empty());
    }
}
