//! TPACKET_V3 ring: the kernel writes frames into fixed-size blocks and hands a whole block to
//! user space when it is full or `retire_ms` after its first frame (so at low rates a frame can
//! wait up to that long). The reader walks every ready block in order, then returns it to the
//! kernel. No system call per batch, no copy into user buffers.

use super::mapping::RingMapping;
use super::{TP_STATUS_KERNEL, TP_STATUS_USER, sockaddr_offset, timestamp_ns};
use crate::packet_socket::Received;
use crate::sockopt::set_packet_option;
use std::io;
use std::mem::size_of;
use std::os::fd::AsFd;
use std::sync::atomic::{Ordering, fence};

const TPACKET_V3: i32 = 2;
const FRAME_SIZE: u32 = 2048;

/// Ring geometry.
#[derive(Debug, Clone, Copy)]
pub struct BlockRingConfig {
    pub block_size: u32,
    pub block_count: u32,
    /// Longest time a block with frames in it waits before it is handed over, milliseconds.
    pub retire_ms: u32,
}

impl Default for BlockRingConfig {
    fn default() -> Self {
        BlockRingConfig {
            block_size: 1 << 20,
            block_count: 32,
            retire_ms: 1,
        }
    }
}

/// A mapped TPACKET_V3 receive ring.
pub struct BlockRing {
    mapping: RingMapping,
    block_size: usize,
    block_count: usize,
    next_block: usize,
    with_timestamps: bool,
}

impl BlockRing {
    /// Switches `fd` (an AF_PACKET socket) to TPACKET_V3 and maps its receive ring. Call before
    /// bind/fanout. With `with_timestamps` each frame comes with its kernel receive time.
    pub fn new(
        fd: impl AsFd,
        config: BlockRingConfig,
        with_timestamps: bool,
    ) -> io::Result<BlockRing> {
        if config.block_size < FRAME_SIZE || config.block_count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "ring blocks must hold at least one 2048-byte frame and there must be one",
            ));
        }
        set_packet_option(fd.as_fd(), libc::PACKET_VERSION, &TPACKET_V3)?;
        let request = libc::tpacket_req3 {
            tp_block_size: config.block_size,
            tp_block_nr: config.block_count,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: config.block_size / FRAME_SIZE * config.block_count,
            tp_retire_blk_tov: config.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_packet_option(fd.as_fd(), libc::PACKET_RX_RING, &request)?;
        let len = config.block_size as usize * config.block_count as usize;
        Ok(BlockRing {
            mapping: RingMapping::new(fd, len)?,
            block_size: config.block_size as usize,
            block_count: config.block_count as usize,
            next_block: 0,
            with_timestamps,
        })
    }

    /// Returns every ready block to the kernel unread; returns how many there were.
    pub fn discard_ready(&mut self) -> usize {
        let blocks = self.block_count;
        self.drain(blocks, |_, _, _| {})
    }

    fn block(&self, index: usize) -> *mut libc::tpacket_block_desc {
        self.mapping
            .base()
            .wrapping_add(index * self.block_size)
            .cast()
    }

    /// Hands every frame of up to `max_blocks` ready blocks to `handle` (bytes, metadata,
    /// kernel receive time in CLOCK_REALTIME ns if asked for), in order, and returns the blocks
    /// to the kernel; returns the number of blocks processed (less than `max_blocks`: the ring
    /// is drained).
    #[inline]
    pub fn drain(
        &mut self,
        max_blocks: usize,
        mut handle: impl FnMut(&[u8], Received, Option<u64>),
    ) -> usize {
        debug_assert!(self.block_count * self.block_size <= self.mapping.len());
        for done in 0..max_blocks {
            let block = self.block(self.next_block);
            // SAFETY: `block` points at the descriptor at the start of block `next_block` inside
            // the mapping (index < block_count). block_status is read volatile because the
            // kernel writes it; the Acquire fence orders the frame reads after it.
            let (status, count, first) = unsafe {
                let header = std::ptr::addr_of!((*block).hdr.bh1);
                let status = std::ptr::read_volatile(std::ptr::addr_of!((*header).block_status));
                (
                    status,
                    (*header).num_pkts as usize,
                    (*header).offset_to_first_pkt as usize,
                )
            };
            if status & TP_STATUS_USER == 0 {
                return done;
            }
            fence(Ordering::Acquire);
            self.walk_block(block.cast::<u8>(), first, count, &mut handle);
            fence(Ordering::Release);
            // SAFETY: returns the block to the kernel; no reference into it outlives `handle`.
            unsafe {
                let header = std::ptr::addr_of_mut!((*block).hdr.bh1);
                std::ptr::write_volatile(
                    std::ptr::addr_of_mut!((*header).block_status),
                    TP_STATUS_KERNEL,
                );
            }
            self.next_block = (self.next_block + 1) % self.block_count;
        }
        max_blocks
    }

    /// Hands the `count` frames of a user-owned block, starting at offset `first`, to `handle`.
    #[inline]
    fn walk_block(
        &self,
        block_start: *mut u8,
        first: usize,
        count: usize,
        handle: &mut impl FnMut(&[u8], Received, Option<u64>),
    ) {
        let sll_offset = sockaddr_offset(size_of::<libc::tpacket3_hdr>());
        let mut offset = first;
        for _ in 0..count {
            if offset + sll_offset + size_of::<libc::sockaddr_ll>() > self.block_size {
                break; // corrupt offsets: never read past the block
            }
            // SAFETY: the block belongs to user space (TP_STATUS_USER, checked by the caller)
            // until the caller hands it back, offsets were checked to stay inside the block, and
            // the kernel wrote a tpacket3_hdr followed by a sockaddr_ll and the frame at these
            // offsets. The frame slice is clamped to the block and only lent to `handle`.
            let (frame, meta, ts, next) = unsafe {
                let hdr = &*block_start.add(offset).cast::<libc::tpacket3_hdr>();
                let sll = &*block_start
                    .add(offset + sll_offset)
                    .cast::<libc::sockaddr_ll>();
                let mac = (offset + usize::from(hdr.tp_mac)).min(self.block_size);
                let snap = (hdr.tp_snaplen as usize).min(self.block_size - mac);
                let frame = std::slice::from_raw_parts(block_start.add(mac), snap);
                let meta = Received {
                    ifindex: sll.sll_ifindex as u32,
                    pkttype: sll.sll_pkttype,
                    truncated: hdr.tp_snaplen < hdr.tp_len,
                    len: snap,
                    vlan_tci: (hdr.tp_status & libc::TP_STATUS_VLAN_VALID != 0)
                        .then_some(hdr.hv1.tp_vlan_tci as u16),
                };
                let ts = self
                    .with_timestamps
                    .then(|| timestamp_ns(hdr.tp_sec, hdr.tp_nsec));
                (frame, meta, ts, hdr.tp_next_offset as usize)
            };
            handle(frame, meta, ts);
            if next == 0 {
                break;
            }
            offset += next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_a_block_ring_on_a_packet_socket() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): TPACKET_V3 ring on an AF_PACKET socket");
            return;
        }
        let rx = crate::packet_socket::open(0).unwrap();
        let mut ring = BlockRing::new(&rx, BlockRingConfig::default(), true).unwrap();
        assert_eq!(ring.discard_ready(), 0);
        assert_eq!(ring.drain(4, |_, _, _| panic!("no frame expected")), 0);
    }

    #[test]
    fn rejects_an_empty_geometry() {
        let (a, _b) = std::os::unix::net::UnixDatagram::pair().unwrap();
        let bad = BlockRingConfig {
            block_count: 0,
            ..BlockRingConfig::default()
        };
        let err = BlockRing::new(&a, bad, false).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
