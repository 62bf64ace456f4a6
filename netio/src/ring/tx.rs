//! TPACKET_V2 transmit ring (`PACKET_TX_RING`) of a send-only packet socket bound to one
//! interface: frames are written straight into slots shared with the kernel, and one `send`
//! (a "kick") makes the kernel transmit every slot marked ready, in ring order.
//!
//! A slot's life: `AVAILABLE` (user space may fill it) -> [`TxRing::push`] marks it
//! `SEND_REQUEST` -> [`TxRing::kick`]: the kernel copies the frame into an skb and marks the
//! slot `SENDING` -> when that skb is freed (the frame was delivered or dropped further on) the
//! kernel marks it `AVAILABLE` again.
//!
//! Every frame is preceded by a `virtio_net_hdr` (PACKET_VNET_HDR) whose `hdr_len` is the whole
//! frame: the kernel then copies the frame into the skb's linear part. Without it the kernel
//! attaches the slot's page as a fragment flagged zero-copy, and a veth (the lab's links)
//! must copy such a fragment into a freshly allocated page (`skb_copy_ubufs`): measured, that
//! cost more CPU per frame than the copy, and a zero-copy send would need a NIC to show a gain.
//!
//! A frame the kernel could not hand to the driver stays `SEND_REQUEST` and goes with the next
//! kick; a frame it refuses as malformed is marked `WRONG_FORMAT` and stops the ring ([`Confirmed::stuck`]):
//! the owner must drop the ring. [`TxRing::push`] refuses frames longer than the interface's
//! MTU allows, so a built frame is never refused.

use super::mapping::RingMapping;
use super::sockaddr_offset;
use crate::packet_socket;
use crate::sockopt::{set_int_option, set_packet_option};
use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{Ordering, fence};

const TPACKET_V2: i32 = 1;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_WRONG_FORMAT: u32 = 4;
const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
const ETH_P_8021Q: [u8; 2] = [0x81, 0x00];
const PAGE: u32 = 4096;
/// `struct virtio_net_hdr` (no GSO, no checksum offload): 10 bytes before every frame.
const VNET_HDR_LEN: usize = 10;

/// Ring geometry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxRingConfig {
    /// Bytes per slot (a power of two >= 256): 2048 holds a 1500-byte-MTU frame.
    pub frame_size: u32,
    /// Slots; the frames that can be queued or held by the kernel at once.
    pub frame_count: u32,
}

impl Default for TxRingConfig {
    fn default() -> Self {
        // 512 KiB per interface: 256 frames. A slot is free again once the receiving side
        // took the frame off the veth's backlog, so few are held at once. Measured against
        // 2048 slots (4 MiB; labctl, chain, 10 paired repeats): CPU per packet the same within
        // the noise; 64 slots dropped frames (queue_full) at 40 x 2500 pps.
        TxRingConfig {
            frame_size: 2048,
            frame_count: 256,
        }
    }
}

/// What [`TxRing::push`] did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Written and marked for the next kick.
    Queued,
    /// Every slot is queued or still held by the kernel: nothing written.
    Full,
    /// The builder produced nothing (the frame does not fit a slot): slot left free.
    NotBuilt,
    /// Longer than the interface's MTU allows: slot left free.
    TooLong,
}

/// What [`TxRing::confirm`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confirmed {
    /// Frames, oldest first, that the kernel took since the last call.
    pub sent: usize,
    /// The kernel refused the next frame as malformed and will send nothing more from this
    /// ring: drop it (its queued frames are lost) and open a new one.
    pub stuck: bool,
}

/// A mapped TPACKET_V2 transmit ring on its own socket.
pub struct TxRing {
    // Field order: the mapping is unmapped before the socket is closed.
    mapping: RingMapping,
    fd: OwnedFd,
    frame_size: usize,
    frame_count: usize,
    /// Bytes a frame may have: the interface's MTU plus the Ethernet header.
    mtu_frame_len: usize,
    /// Next slot to fill.
    head: usize,
    /// Oldest slot queued and not yet seen taken by the kernel.
    oldest: usize,
    unconfirmed: usize,
}

/// Offset of a frame's bytes in its slot (no PACKET_TX_HAS_OFF): TPACKET_ALIGN of the header.
const fn data_offset() -> usize {
    sockaddr_offset(size_of::<libc::tpacket2_hdr>())
}

impl TxRing {
    /// Opens a send-only packet socket (protocol 0: it receives nothing) bound to interface
    /// `ifindex`, with qdisc bypass, a send buffer the whole ring fits in, and a transmit ring
    /// of `config`'s geometry mapped into this process.
    pub fn open(ifindex: u32, config: TxRingConfig) -> io::Result<TxRing> {
        let TxRingConfig {
            frame_size,
            frame_count,
        } = config;
        if frame_size < 256 || !frame_size.is_power_of_two() || frame_count == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "transmit ring: frame size must be a power of two >= 256, frame count >= 1",
            ));
        }
        let mtu = crate::iface::mtu_by_index(ifindex)? as usize;
        let fd = packet_socket::open(0)?;
        set_packet_option(fd.as_fd(), libc::PACKET_VERSION, &TPACKET_V2)?;
        set_packet_option(fd.as_fd(), libc::PACKET_VNET_HDR, &1)?;
        packet_socket::qdisc_bypass(&fd)?;
        reserve_send_buffer(&fd, frame_count as usize * (frame_size as usize + 1024));
        let block_size = frame_size.max(PAGE);
        let frames_per_block = block_size / frame_size;
        let block_count = frame_count.div_ceil(frames_per_block);
        let request = libc::tpacket_req {
            tp_block_size: block_size,
            tp_block_nr: block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: block_count * frames_per_block,
        };
        set_packet_option(fd.as_fd(), libc::PACKET_TX_RING, &request)?;
        let mapping = RingMapping::new(&fd, block_size as usize * block_count as usize)?;
        packet_socket::bind(&fd, ifindex, 0)?;
        Ok(TxRing {
            mapping,
            fd,
            frame_size: frame_size as usize,
            frame_count: request.tp_frame_nr as usize,
            mtu_frame_len: mtu + ETH_HLEN,
            head: 0,
            oldest: 0,
            unconfirmed: 0,
        })
    }

    /// The ring's socket: a `send` of no data on it (`MSG_DONTWAIT`), from any context (an
    /// io_uring `Send` too), is a [`kick`](Self::kick); call [`confirm`](Self::confirm) after it
    /// completed.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Number of slots.
    pub fn frame_count(&self) -> usize {
        self.frame_count
    }

    /// Frames queued and not yet confirmed taken by the kernel.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed
    }

    fn slot(&self, index: usize) -> *mut libc::tpacket2_hdr {
        debug_assert!(index < self.frame_count);
        debug_assert!(self.frame_count * self.frame_size <= self.mapping.len());
        self.mapping
            .base()
            .wrapping_add(index * self.frame_size)
            .cast::<libc::tpacket2_hdr>()
    }

    fn status(&self, index: usize) -> u32 {
        let slot = self.slot(index);
        // SAFETY: `slot` is the start of slot `index` (< frame_count) inside the live mapping;
        // tp_status is read volatile because the kernel writes it from other contexts.
        let status = unsafe { std::ptr::read_volatile(std::ptr::addr_of!((*slot).tp_status)) };
        fence(Ordering::Acquire);
        status
    }

    /// True if the next slot is free to fill ([`push`](Self::push) would not say `Full`).
    pub fn has_room(&self) -> bool {
        self.unconfirmed < self.frame_count && self.status(self.head) == TP_STATUS_AVAILABLE
    }

    /// Lets `build` write one frame into the next free slot (it returns the frame's length,
    /// or `None` to give up) and marks it for the next [`kick`](Self::kick).
    #[inline]
    pub fn push(&mut self, build: impl FnOnce(&mut [u8]) -> Option<usize>) -> Push {
        if !self.has_room() {
            return Push::Full;
        }
        let slot = self.slot(self.head);
        let room = self.frame_size - data_offset();
        // SAFETY: the slot is AVAILABLE, so the kernel neither reads nor writes it until it is
        // marked SEND_REQUEST below; the slice covers the slot's data area only (inside the
        // mapping) and does not outlive this call.
        let data =
            unsafe { std::slice::from_raw_parts_mut(slot.cast::<u8>().add(data_offset()), room) };
        let (vnet_hdr, buffer) = data.split_at_mut(VNET_HDR_LEN);
        let Some(len) = build(buffer).filter(|len| *len <= buffer.len()) else {
            return Push::NotBuilt;
        };
        let tagged = buffer.get(12..14) == Some(&ETH_P_8021Q[..]);
        if len > self.mtu_frame_len + if tagged { VLAN_HLEN } else { 0 } {
            return Push::TooLong;
        }
        write_vnet_hdr(vnet_hdr, len);
        // SAFETY: the slot is still ours (AVAILABLE); its length is written before the status
        // hands it to the kernel, with a release fence between the two.
        unsafe {
            let tp_len = (VNET_HDR_LEN + len) as u32;
            std::ptr::write_volatile(std::ptr::addr_of_mut!((*slot).tp_len), tp_len);
            fence(Ordering::Release);
            std::ptr::write_volatile(
                std::ptr::addr_of_mut!((*slot).tp_status),
                TP_STATUS_SEND_REQUEST,
            );
        }
        self.head = (self.head + 1) % self.frame_count;
        self.unconfirmed += 1;
        Push::Queued
    }

    /// Has the kernel send every queued frame (one `send`, never blocking); returns the bytes
    /// it took. Then call [`confirm`](Self::confirm). Errors: `ENXIO` (the interface is
    /// gone), `ENETDOWN` (it is down: the frames stay queued), `EAGAIN`/`ENOBUFS` (try again
    /// with the next kick).
    pub fn kick(&mut self) -> io::Result<usize> {
        if self.unconfirmed == 0 {
            return Ok(0);
        }
        // SAFETY: a send of no user data; the kernel reads the frames from the ring it owns
        // through the mapping, only those marked SEND_REQUEST.
        let rc =
            unsafe { libc::send(self.fd.as_raw_fd(), std::ptr::null(), 0, libc::MSG_DONTWAIT) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(rc as usize)
    }

    /// Counts the frames, oldest first, the kernel took (`SENDING`, or already `AVAILABLE`)
    /// since the last call.
    pub fn confirm(&mut self) -> Confirmed {
        let mut confirmed = Confirmed::default();
        while self.unconfirmed > 0 {
            match self.status(self.oldest) {
                TP_STATUS_SEND_REQUEST => break,
                TP_STATUS_WRONG_FORMAT => {
                    confirmed.stuck = true;
                    break;
                }
                _ => {}
            }
            confirmed.sent += 1;
            self.unconfirmed -= 1;
            self.oldest = (self.oldest + 1) % self.frame_count;
        }
        confirmed
    }

    /// Waits up to `timeout_ms` for the next slot to be free again (the kernel freed the skb
    /// that held it); true if it is ([`has_room`](Self::has_room)).
    pub fn wait_free(&self, timeout_ms: i32) -> io::Result<bool> {
        let mut poll_fd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd, living across the call, and its count.
        let rc = unsafe { libc::poll(&mut poll_fd, 1, timeout_ms) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(self.has_room())
    }
}

/// A `virtio_net_hdr` (little-endian fields) asking for no offload, with the whole `frame_len`
/// frame as its header length: the kernel copies all of it into the skb's linear part.
fn write_vnet_hdr(out: &mut [u8], frame_len: usize) {
    out.fill(0);
    // flags (u8), gso_type (u8) = 0; hdr_len (u16) at byte 2; gso_size, csum_start and
    // csum_offset stay 0.
    out[2..4].copy_from_slice(&(frame_len as u16).to_le_bytes());
}

/// Sets the socket's send buffer to `bytes` (SO_SNDBUFFORCE as root, else as far as
/// `wmem_max` allows): the kernel charges every frame it holds to it, and a full buffer would
/// stop a kick early.
fn reserve_send_buffer(fd: &OwnedFd, bytes: usize) {
    let bytes = i32::try_from(bytes).unwrap_or(i32::MAX);
    let raw = fd.as_raw_fd();
    if set_int_option(raw, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, bytes).is_err() {
        let _ = set_int_option(raw, libc::SOL_SOCKET, libc::SO_SNDBUF, bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, FrameHeader};
    use std::net::Ipv4Addr;

    #[test]
    fn rejects_a_bad_geometry_before_opening_anything() {
        for config in [
            TxRingConfig {
                frame_size: 3000,
                frame_count: 8,
            },
            TxRingConfig {
                frame_size: 2048,
                frame_count: 0,
            },
        ] {
            let err = TxRing::open(1, config).err().expect("bad geometry refused");
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        }
    }

    fn header() -> FrameHeader {
        FrameHeader {
            source_mac: [2, 0, 0, 0, 0, 1],
            source: Ipv4Addr::new(198, 18, 0, 1),
            group: Ipv4Addr::new(239, 9, 0, 1),
            source_port: 4000,
            destination_port: 5000,
            ttl: 8,
            tos: 0,
            ident: 0,
        }
    }

    /// In a fresh namespace: 8 frames queued on its loopback fill a ring of 8; one kick sends
    /// them all to a UDP socket joined there, each once and intact.
    #[test]
    fn queued_frames_leave_with_one_kick_and_a_full_ring_refuses_more() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): PACKET_TX_RING send in a fresh namespace");
            return;
        }
        let received = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            crate::iface::set_up("lo").unwrap();
            let lo = crate::iface::lookup("lo").unwrap().index;
            // The kernel's own UDP receive checks every header and the checksum.
            let udp = std::net::UdpSocket::bind("0.0.0.0:5000").unwrap();
            udp.join_multicast_v4(&Ipv4Addr::new(239, 9, 0, 1), &Ipv4Addr::LOCALHOST)
                .unwrap();
            udp.set_nonblocking(true).unwrap();
            let config = TxRingConfig {
                frame_size: 2048,
                frame_count: 8,
            };
            let mut ring = TxRing::open(lo, config).unwrap();
            assert_eq!(ring.frame_count(), 8);
            let payload = [7u8; 100];
            let sum = wire::checksum::sum(&payload);
            let build =
                |buffer: &mut [u8]| wire::write_frame(buffer, &header(), &payload, sum).ok();
            for _ in 0..8 {
                assert_eq!(ring.push(build), Push::Queued);
            }
            assert_eq!(ring.push(build), Push::Full, "8 of 8 slots queued");
            assert_eq!(
                ring.confirm(),
                Confirmed::default(),
                "nothing sent before the kick"
            );
            assert_eq!(ring.kick().unwrap(), 8 * 142, "8 frames of 142 bytes");
            assert_eq!(
                ring.confirm(),
                Confirmed {
                    sent: 8,
                    stuck: false
                }
            );
            assert_eq!(ring.unconfirmed(), 0);
            assert_eq!(ring.push(|_| None), Push::NotBuilt);
            assert_eq!(
                ring.push(|_| Some(4000)),
                Push::NotBuilt,
                "longer than a slot"
            );
            ring.mtu_frame_len = 14 + 100;
            assert_eq!(ring.push(build), Push::TooLong, "142 bytes > MTU 100 + 14");
            assert_eq!(ring.unconfirmed(), 0, "refused frames take no slot");
            let mut scratch = [0u8; 2048];
            let datagrams: Vec<Vec<u8>> =
                std::iter::from_fn(|| udp.recv(&mut scratch).ok().map(|n| scratch[..n].to_vec()))
                    .collect();
            datagrams
        });
        let datagrams = received.join().unwrap();
        assert_eq!(
            datagrams,
            vec![vec![7u8; 100]; 8],
            "each once, intact, checksum valid"
        );
    }
}
