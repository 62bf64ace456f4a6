//! Receive rings shared with the kernel on an AF_PACKET socket (`PACKET_RX_RING`):
//!
//! - [`FrameRing`]: TPACKET_V2, one fixed-size slot per frame, each handed to user space at once;
//! - [`BlockRing`]: TPACKET_V3, frames packed into blocks handed over when full or after a
//!   retire timeout;
//!
//! and the transmit ring (`PACKET_TX_RING`), [`TxRing`]: frames written into shared slots and
//! sent by one `send` per batch.
//!
//! Each lives in one owning mapping (`mapping::RingMapping`) that unmaps itself on drop, and
//! lends every frame or slot to a closure as a slice that cannot outlive the call.

mod blocks;
mod frames;
mod mapping;
mod tx;

pub use blocks::{BlockRing, BlockRingConfig};
pub use frames::{FrameRing, FrameRingConfig};
pub use tx::{Confirmed, Push, TxRing, TxRingConfig};

/// Offset of the `sockaddr_ll` the kernel writes after a ring frame header of `header_size`
/// bytes (TPACKET_ALIGN of the header).
const fn sockaddr_offset(header_size: usize) -> usize {
    const TPACKET_ALIGNMENT: usize = 16;
    (header_size + TPACKET_ALIGNMENT - 1) & !(TPACKET_ALIGNMENT - 1)
}

/// Slot/block status: owned by user space.
const TP_STATUS_USER: u32 = 1;
/// Slot/block status: owned by the kernel.
const TP_STATUS_KERNEL: u32 = 0;

/// Kernel timestamp of a ring frame header, CLOCK_REALTIME ns.
fn timestamp_ns(sec: u32, nsec: u32) -> u64 {
    u64::from(sec) * 1_000_000_000 + u64::from(nsec)
}
