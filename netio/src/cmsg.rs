//! Control messages of a received datagram: a correctly aligned buffer for the kernel to
//! write them into ([`ControlBuffer`]) and one bounds-checked iterator over what it wrote
//! ([`ControlMessages`]), with readers for the two the lab uses: the kernel receive timestamp
//! (`SO_TIMESTAMPNS`) and the IPv4 destination address (`IP_PKTINFO`).

use std::mem::{align_of, size_of};
use std::net::Ipv4Addr;

/// Bytes of control space per datagram: room for a timestamp and a pktinfo message together
/// (32 bytes each on 64-bit Linux) with plenty to spare.
pub const CONTROL_LEN: usize = 128;

/// Alignment of control message headers and payloads (CMSG_ALIGN: `sizeof(long)` on Linux).
const CMSG_ALIGNMENT: usize = size_of::<libc::c_long>();

/// A control buffer aligned for `cmsghdr`, as `CMSG_FIRSTHDR` and the kernel expect.
#[derive(Clone, Copy)]
#[repr(C, align(8))]
pub struct ControlBuffer {
    bytes: [u8; CONTROL_LEN],
}

const _: () = assert!(align_of::<ControlBuffer>() >= align_of::<libc::cmsghdr>());
const _: () = assert!(CONTROL_LEN % CMSG_ALIGNMENT == 0);

impl Default for ControlBuffer {
    fn default() -> Self {
        ControlBuffer {
            bytes: [0; CONTROL_LEN],
        }
    }
}

impl ControlBuffer {
    /// Pointer and length to put in a `msghdr` (`msg_control`, `msg_controllen`).
    pub(crate) fn as_msg_control(&mut self) -> (*mut libc::c_void, usize) {
        (self.bytes.as_mut_ptr().cast(), CONTROL_LEN)
    }

    /// The messages in the first `len` bytes (the `msg_controllen` the kernel returned).
    pub fn messages(&self, len: usize) -> ControlMessages<'_> {
        ControlMessages::new(&self.bytes[..len.min(CONTROL_LEN)])
    }
}

/// One control message: its level, type and payload bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlMessage<'a> {
    pub level: i32,
    pub kind: i32,
    pub data: &'a [u8],
}

impl ControlMessage<'_> {
    /// The kernel receive timestamp of an `SO_TIMESTAMPNS` message, CLOCK_REALTIME ns.
    pub fn timestamp_ns(&self) -> Option<u64> {
        if self.level != libc::SOL_SOCKET || self.kind != libc::SO_TIMESTAMPNS {
            return None;
        }
        let ts: libc::timespec = read_payload(self.data)?;
        Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
    }

    /// The destination address of the IP header (`ipi_addr`) of an `IP_PKTINFO` message.
    pub fn ipv4_destination(&self) -> Option<Ipv4Addr> {
        if self.level != libc::IPPROTO_IP || self.kind != libc::IP_PKTINFO {
            return None;
        }
        let info: libc::in_pktinfo = read_payload(self.data)?;
        Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)))
    }

    /// The tag control information of a VLAN tag the kernel took out of the frame, from a
    /// `PACKET_AUXDATA` message (packet sockets with that option set); `None` for other
    /// messages and for frames that carried no tag.
    pub fn packet_vlan_tci(&self) -> Option<u16> {
        if self.level != libc::SOL_PACKET || self.kind != libc::PACKET_AUXDATA {
            return None;
        }
        let aux: libc::tpacket_auxdata = read_payload(self.data)?;
        (aux.tp_status & libc::TP_STATUS_VLAN_VALID != 0).then_some(aux.tp_vlan_tci)
    }
}

/// Types whose every bit pattern is a valid value (plain C structs of integers).
trait Payload: Copy {}
impl Payload for libc::timespec {}
impl Payload for libc::in_pktinfo {}
impl Payload for libc::tpacket_auxdata {}

/// Reads a `T` from the start of `data` if it is long enough.
fn read_payload<T: Payload>(data: &[u8]) -> Option<T> {
    if data.len() < size_of::<T>() {
        return None;
    }
    // SAFETY: `data` holds at least size_of::<T>() bytes, the read is unaligned-tolerant, and
    // every bit pattern is a valid `T` (integers only, see `Payload`).
    Some(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}

/// Iterator over the control messages in a byte buffer. Stops at the first header whose
/// length is impossible (shorter than a header or past the buffer's end), so corrupt input
/// never makes it read out of bounds.
#[derive(Debug, Clone)]
pub struct ControlMessages<'a> {
    bytes: &'a [u8],
    offset: usize,
}

impl<'a> ControlMessages<'a> {
    /// The messages in `bytes` (which start with a `cmsghdr`).
    pub fn new(bytes: &'a [u8]) -> ControlMessages<'a> {
        ControlMessages { bytes, offset: 0 }
    }
}

/// Bytes of a `cmsghdr` including the padding before the payload (`CMSG_LEN(0)`).
const fn header_len() -> usize {
    (size_of::<libc::cmsghdr>() + CMSG_ALIGNMENT - 1) & !(CMSG_ALIGNMENT - 1)
}

impl<'a> Iterator for ControlMessages<'a> {
    type Item = ControlMessage<'a>;

    fn next(&mut self) -> Option<ControlMessage<'a>> {
        let rest = self.bytes.get(self.offset..)?;
        if rest.len() < size_of::<libc::cmsghdr>() {
            return None;
        }
        // SAFETY: `rest` holds at least one cmsghdr; it is read unaligned-tolerant and a
        // cmsghdr is integers only, so any bytes form a valid value.
        let header: libc::cmsghdr = unsafe { std::ptr::read_unaligned(rest.as_ptr().cast()) };
        let len = header.cmsg_len as usize;
        if len < header_len() || len > rest.len() {
            self.offset = self.bytes.len();
            return None;
        }
        let data = &rest[header_len()..len];
        let aligned = (len + CMSG_ALIGNMENT - 1) & !(CMSG_ALIGNMENT - 1);
        self.offset = self.offset.saturating_add(aligned);
        Some(ControlMessage {
            level: header.cmsg_level,
            kind: header.cmsg_type,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends one control message to `buf` at `offset` the way the kernel lays it out;
    /// returns the next offset.
    fn put(buf: &mut ControlBuffer, offset: usize, level: i32, kind: i32, data: &[u8]) -> usize {
        let len = header_len() + data.len();
        // SAFETY: cmsghdr is integers (and, on some libcs, padding) only: all-zero is valid.
        let mut header: libc::cmsghdr = unsafe { std::mem::zeroed() };
        header.cmsg_len = len as _;
        header.cmsg_level = level;
        header.cmsg_type = kind;
        let target = &mut buf.bytes[offset..offset + len];
        // SAFETY: `target` has room for a cmsghdr (len >= header_len()), written unaligned.
        unsafe { std::ptr::write_unaligned(target.as_mut_ptr().cast(), header) };
        target[header_len()..].copy_from_slice(data);
        offset + ((len + CMSG_ALIGNMENT - 1) & !(CMSG_ALIGNMENT - 1))
    }

    fn timespec_bytes(sec: i64, nsec: i64) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(sec as libc::time_t).to_ne_bytes());
        bytes.extend_from_slice(&(nsec as libc::c_long).to_ne_bytes());
        bytes
    }

    fn pktinfo_bytes(ifindex: i32, spec_dst: [u8; 4], addr: [u8; 4]) -> Vec<u8> {
        let mut bytes = ifindex.to_ne_bytes().to_vec();
        bytes.extend_from_slice(&spec_dst);
        bytes.extend_from_slice(&addr);
        bytes
    }

    /// A `tpacket_auxdata` as the kernel writes it: status, len, snaplen, mac, net, vlan_tci,
    /// vlan_tpid.
    fn auxdata_bytes(status: u32, tci: u16) -> Vec<u8> {
        let mut bytes = Vec::new();
        for word in [status, 60, 60] {
            bytes.extend_from_slice(&word.to_ne_bytes());
        }
        for half in [0u16, 14, tci, 0x8100] {
            bytes.extend_from_slice(&half.to_ne_bytes());
        }
        bytes
    }

    #[test]
    fn reads_the_vlan_tag_of_packet_auxdata() {
        assert_eq!(
            auxdata_bytes(0, 0).len(),
            size_of::<libc::tpacket_auxdata>()
        );
        let mut buf = ControlBuffer::default();
        let valid = libc::TP_STATUS_USER | libc::TP_STATUS_VLAN_VALID;
        let mut end = put(
            &mut buf,
            0,
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            &auxdata_bytes(valid, 0x2064),
        );
        end = put(
            &mut buf,
            end,
            libc::SOL_PACKET,
            libc::PACKET_AUXDATA,
            &auxdata_bytes(libc::TP_STATUS_USER, 0),
        );
        let tags: Vec<_> = buf.messages(end).map(|m| m.packet_vlan_tci()).collect();
        assert_eq!(tags, vec![Some(0x2064), None], "no VLAN_VALID: no tag");
        let other = ControlMessage {
            level: libc::SOL_SOCKET,
            kind: libc::PACKET_AUXDATA,
            data: &[0; 20],
        };
        assert_eq!(other.packet_vlan_tci(), None);
        let short = ControlMessage {
            level: libc::SOL_PACKET,
            kind: libc::PACKET_AUXDATA,
            data: &[0xff; 8],
        };
        assert_eq!(short.packet_vlan_tci(), None, "too short to be an auxdata");
    }

    #[test]
    fn control_buffers_are_aligned_for_cmsghdr() {
        let buffers = vec![ControlBuffer::default(); 3];
        for b in &buffers {
            assert_eq!(b.bytes.as_ptr() as usize % align_of::<libc::cmsghdr>(), 0);
        }
        assert_eq!(header_len(), libc_header_len());
    }

    fn libc_header_len() -> usize {
        // SAFETY: CMSG_LEN is pure arithmetic on its argument.
        unsafe { libc::CMSG_LEN(0) as usize }
    }

    #[test]
    fn iterates_a_hand_built_buffer_and_reads_timestamp_and_destination() {
        let mut buf = ControlBuffer::default();
        let mut end = put(
            &mut buf,
            0,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &timespec_bytes(1_700_000_000, 123),
        );
        end = put(
            &mut buf,
            end,
            libc::IPPROTO_IP,
            libc::IP_PKTINFO,
            &pktinfo_bytes(3, [10, 0, 0, 1], [239, 1, 2, 3]),
        );
        let messages: Vec<_> = buf.messages(end).collect();
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[0].timestamp_ns(),
            Some(1_700_000_000 * 1_000_000_000 + 123)
        );
        assert_eq!(messages[0].ipv4_destination(), None);
        assert_eq!(
            messages[1].ipv4_destination(),
            Some(Ipv4Addr::new(239, 1, 2, 3))
        );
        assert_eq!(messages[1].timestamp_ns(), None);
        // Only what the kernel said it wrote is read.
        assert_eq!(buf.messages(0).count(), 0);
        assert_eq!(
            buf.messages(end - 8).count(),
            1,
            "the second message is cut"
        );
    }

    #[test]
    fn corrupt_lengths_end_the_walk_without_reading_out_of_bounds() {
        let mut buf = ControlBuffer::default();
        put(
            &mut buf,
            0,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &[0; 16],
        );
        // Claim more bytes than the buffer holds.
        buf.bytes[..size_of::<usize>()].copy_from_slice(&(CONTROL_LEN * 2).to_ne_bytes());
        assert_eq!(buf.messages(CONTROL_LEN).count(), 0);
        // A zero length (shorter than a header) must not loop forever.
        buf.bytes[..size_of::<usize>()].copy_from_slice(&0usize.to_ne_bytes());
        assert_eq!(buf.messages(CONTROL_LEN).count(), 0);
        // A payload too short for its type reads as nothing.
        let mut short = ControlBuffer::default();
        let end = put(
            &mut short,
            0,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &[1; 4],
        );
        let message = short.messages(end).next().unwrap();
        assert_eq!(message.timestamp_ns(), None);
    }
}
