//! TPACKET_V2 ring: the kernel copies each frame into the next fixed-size slot and marks it
//! ready at once (no block to fill, no block timeout, so a frame never waits for others). The
//! reader walks ready slots in order and hands each back after handling it. Frames longer than
//! a slot's room ([`FrameRingConfig::frame_size`] minus the ring headers) arrive truncated.

use super::mapping::RingMapping;
use super::{TP_STATUS_KERNEL, TP_STATUS_USER, sockaddr_offset, timestamp_ns};
use crate::packet_socket::Received;
use crate::sockopt::set_packet_option;
use std::io;
use std::mem::size_of;
use std::os::fd::AsFd;
use std::sync::atomic::{Ordering, fence};

const TPACKET_V2: i32 = 1;

/// Ring geometry.
#[derive(Debug, Clone, Copy)]
pub struct FrameRingConfig {
    /// Bytes per slot (a power of two dividing `block_size`): 2048 holds a 1500-byte-MTU frame.
    pub frame_size: u32,
    pub block_size: u32,
    pub block_count: u32,
}

impl Default for FrameRingConfig {
    fn default() -> Self {
        // 32 MiB (as the TPACKET_V3 ring): 16384 slots, ~115 ms of frames at 140k pps: a
        // reader that is not scheduled for that long loses nothing.
        FrameRingConfig {
            frame_size: 2048,
            block_size: 1 << 20,
            block_count: 32,
        }
    }
}

/// A mapped TPACKET_V2 receive ring.
pub struct FrameRing {
    mapping: RingMapping,
    frame_size: usize,
    frame_count: usize,
    next_frame: usize,
    with_timestamps: bool,
}

impl FrameRing {
    /// Switches `fd` (an AF_PACKET socket) to TPACKET_V2 and maps its receive ring. Call before
    /// bind/fanout. With `with_timestamps` each frame comes with its kernel receive time.
    pub fn new(
        fd: impl AsFd,
        config: FrameRingConfig,
        with_timestamps: bool,
    ) -> io::Result<FrameRing> {
        let FrameRingConfig {
            frame_size,
            block_size,
            block_count,
        } = config;
        if frame_size < 256 || !frame_size.is_power_of_two() || block_size % frame_size != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring frame size must be a power of two >= 256 dividing the block size",
            ));
        }
        set_packet_option(fd.as_fd(), libc::PACKET_VERSION, &TPACKET_V2)?;
        let frame_count = (block_size / frame_size) * block_count;
        let request = libc::tpacket_req {
            tp_block_size: block_size,
            tp_block_nr: block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: frame_count,
        };
        set_packet_option(fd.as_fd(), libc::PACKET_RX_RING, &request)?;
        let mapping = RingMapping::new(fd, block_size as usize * block_count as usize)?;
        Ok(FrameRing {
            mapping,
            frame_size: frame_size as usize,
            frame_count: frame_count as usize,
            next_frame: 0,
            with_timestamps,
        })
    }

    /// Number of slots.
    pub fn frame_count(&self) -> usize {
        self.frame_count
    }

    /// Returns every ready frame to the kernel unread; returns how many there were.
    pub fn discard_ready(&mut self) -> usize {
        let frames = self.frame_count;
        self.drain(frames, |_, _, _| {})
    }

    /// Hands up to `max_frames` ready frames to `handle` (bytes, metadata, kernel receive time
    /// in CLOCK_REALTIME ns if asked for), in arrival order, returning each slot to the kernel
    /// after its call; returns the number handled (less than `max_frames`: the ring is drained).
    #[inline]
    pub fn drain(
        &mut self,
        max_frames: usize,
        mut handle: impl FnMut(&[u8], Received, Option<u64>),
    ) -> usize {
        let sll_offset = sockaddr_offset(size_of::<libc::tpacket2_hdr>());
        debug_assert!(self.frame_count * self.frame_size <= self.mapping.len());
        for done in 0..max_frames {
            let slot = self
                .mapping
                .base()
                .wrapping_add(self.next_frame * self.frame_size)
                .cast::<libc::tpacket2_hdr>();
            // SAFETY: `slot` is the start of frame `next_frame` (< frame_count) inside the
            // mapping; tp_status is read volatile because the kernel writes it.
            let status = unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*slot).tp_status)) };
            if status & TP_STATUS_USER == 0 {
                return done;
            }
            fence(Ordering::Acquire);
            // SAFETY: the slot belongs to user space (TP_STATUS_USER) until it is handed back
            // below; the kernel wrote a tpacket2_hdr, a sockaddr_ll at `sll_offset` and the frame
            // at tp_mac, and the frame slice is clamped to the slot. The slice is only lent to
            // `handle` and cannot escape it.
            let (frame, meta, ts) = unsafe {
                let hdr = &*slot;
                let sll = &*slot
                    .cast::<u8>()
                    .add(sll_offset)
                    .cast::<libc::sockaddr_ll>();
                let mac = usize::from(hdr.tp_mac).min(self.frame_size);
                let snap = (hdr.tp_snaplen as usize).min(self.frame_size - mac);
                let frame = std::slice::from_raw_parts(slot.cast::<u8>().add(mac), snap);
                let meta = Received {
                    ifindex: sll.sll_ifindex as u32,
                    pkttype: sll.sll_pkttype,
                    truncated: (snap as u32) < hdr.tp_len,
                    len: snap,
                    vlan_tci: (hdr.tp_status & libc::TP_STATUS_VLAN_VALID != 0)
                        .then_some(hdr.tp_vlan_tci),
                };
                let ts = self
                    .with_timestamps
                    .then(|| timestamp_ns(hdr.tp_sec, hdr.tp_nsec));
                (frame, meta, ts)
            };
            handle(frame, meta, ts);
            fence(Ordering::Release);
            // SAFETY: returns the slot to the kernel; no reference into it outlives `handle`.
            unsafe {
                std::ptr::write_volatile(
                    std::ptr::addr_of_mut!((*slot).tp_status),
                    TP_STATUS_KERNEL,
                );
            }
            self.next_frame += 1;
            if self.next_frame == self.frame_count {
                self.next_frame = 0;
            }
        }
        max_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;

    #[test]
    fn rejects_a_bad_geometry_before_touching_the_socket() {
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let fd: OwnedFd = a.into();
        let bad = FrameRingConfig {
            frame_size: 3000,
            ..FrameRingConfig::default()
        };
        let err = FrameRing::new(&fd, bad, false)
            .err()
            .expect("bad geometry refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn maps_a_ring_on_a_packet_socket() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): TPACKET_V2 ring on an AF_PACKET socket");
            return;
        }
        // Protocol 0: the socket receives nothing, so the ring must stay empty.
        let rx = crate::packet_socket::open(0).unwrap();
        let mut ring = FrameRing::new(&rx, FrameRingConfig::default(), false).unwrap();
        assert_eq!(ring.frame_count(), 16384);
        assert_eq!(ring.discard_ready(), 0);
        assert_eq!(ring.drain(64, |_, _, _| panic!("no frame expected")), 0);
        // Dropped on another thread: the ring (and its mapping) is Send.
        std::thread::spawn(move || drop(ring)).join().unwrap();
    }
}
