//! The `--io mmap` receive backend: a TPACKET_V3 ring shared with the kernel.
//!
//! The kernel writes frames into fixed-size blocks of an mmap'd ring and hands a whole block to
//! user space when it is full or `retire_ms` after its first frame (so at low rates a frame can
//! wait up to that long: a latency cost the lab can measure). The worker walks every ready
//! block in order, then returns it to the kernel. No system call per batch, no copy into user
//! buffers. Every raw-pointer access lives in this module.

use crate::rx_batch::Received;
use std::io;
use std::mem::size_of;
use std::os::fd::OwnedFd;
use std::sync::atomic::{Ordering, fence};

const TPACKET_V3: i32 = 2;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_KERNEL: u32 = 0;
const FRAME_SIZE: u32 = 2048;

/// Ring geometry.
#[derive(Debug, Clone, Copy)]
pub struct RingConfig {
    pub block_size: u32,
    pub block_count: u32,
    pub retire_ms: u32,
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            block_size: 1 << 20,
            block_count: 32,
            retire_ms: 1,
        }
    }
}

/// A mapped TPACKET_V3 receive ring.
pub struct RxRing {
    base: *mut u8,
    len: usize,
    block_size: usize,
    block_count: usize,
    next_block: usize,
    with_timestamps: bool,
}

// SAFETY: the mapping is owned by this value alone (no aliases are handed out beyond a
// `drain` call), so moving it to the worker thread that uses it is sound.
unsafe impl Send for RxRing {}

impl RxRing {
    /// Switches `fd` to TPACKET_V3 and maps its receive ring. Call before bind/fanout.
    pub fn new(fd: &OwnedFd, config: RingConfig, with_timestamps: bool) -> io::Result<RxRing> {
        crate::sys::set_packet_option(fd, libc::PACKET_VERSION, &TPACKET_V3)?;
        let request = libc::tpacket_req3 {
            tp_block_size: config.block_size,
            tp_block_nr: config.block_count,
            tp_frame_size: FRAME_SIZE,
            tp_frame_nr: config.block_size / FRAME_SIZE * config.block_count,
            tp_retire_blk_tov: config.retire_ms,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        crate::sys::set_packet_option(fd, libc::PACKET_RX_RING, &request)?;
        let len = config.block_size as usize * config.block_count as usize;
        // Unmapped exactly once, in Drop.
        let base = crate::sys::map_rx_ring(fd, len)?;
        Ok(RxRing {
            base,
            len,
            block_size: config.block_size as usize,
            block_count: config.block_count as usize,
            next_block: 0,
            with_timestamps,
        })
    }

    /// Returns every ready block to the kernel unread (startup: see `dataplane`).
    pub fn discard_ready(&mut self) -> usize {
        let blocks = self.block_count;
        self.drain(blocks, |_, _, _| {})
    }

    fn block(&self, index: usize) -> *mut libc::tpacket_block_desc {
        self.base.wrapping_add(index * self.block_size).cast()
    }

    /// Hands every frame of up to `max_blocks` ready blocks to `handle`, in order, and returns
    /// the blocks to the kernel; returns the number of blocks processed (less than `max_blocks`
    /// means the ring is drained).
    pub fn drain(
        &mut self,
        max_blocks: usize,
        mut handle: impl FnMut(&[u8], Received, Option<u64>),
    ) -> usize {
        let sll_offset = (size_of::<libc::tpacket3_hdr>() + 15) & !15;
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
            let block_start = self.block(self.next_block).cast::<u8>();
            let mut offset = first;
            for _ in 0..count {
                if offset + sll_offset + size_of::<libc::sockaddr_ll>() > self.block_size {
                    break; // corrupt offsets: never read past the block
                }
                // SAFETY: the block belongs to user space (TP_STATUS_USER) until it is handed
                // back below, offsets were checked to stay inside the block, and the kernel
                // wrote a tpacket3_hdr followed by a sockaddr_ll and the frame at these offsets.
                let (frame, meta, ts, next) = unsafe {
                    let hdr = &*block_start.add(offset).cast::<libc::tpacket3_hdr>();
                    let sll = &*block_start
                        .add(offset + sll_offset)
                        .cast::<libc::sockaddr_ll>();
                    let mac = offset + usize::from(hdr.tp_mac);
                    let snap = (hdr.tp_snaplen as usize).min(self.block_size.saturating_sub(mac));
                    let frame = std::slice::from_raw_parts(block_start.add(mac), snap);
                    let meta = Received {
                        ifindex: sll.sll_ifindex as u32,
                        pkttype: sll.sll_pkttype,
                        truncated: hdr.tp_snaplen < hdr.tp_len,
                        len: snap,
                    };
                    let ts = self
                        .with_timestamps
                        .then(|| u64::from(hdr.tp_sec) * 1_000_000_000 + u64::from(hdr.tp_nsec));
                    (frame, meta, ts, hdr.tp_next_offset as usize)
                };
                handle(frame, meta, ts);
                if next == 0 {
                    break;
                }
                offset += next;
            }
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
}

impl Drop for RxRing {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region mapped in `new`; no slice into it outlives `drain`.
        unsafe {
            libc::munmap(self.base.cast(), self.len);
        }
    }
}
