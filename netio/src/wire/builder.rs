//! The one builder of Ethernet + IPv4 + UDP frames: the relay's egress frames and the load
//! generator's per-stream templates.
//!
//! Field by field, what a built frame carries (the relay and the load generator each had a copy
//! of this code, and the copies had drifted on DF and the IP id; these are the choices):
//! - Ethernet: destination = [`multicast_mac`] of the group, source = the caller's MAC,
//!   EtherType IPv4, no VLAN tag.
//! - IPv4: version 4, no options (IHL 5), TOS and TTL from the caller, **DF always set** and
//!   fragment offset 0, protocol UDP, header checksum computed. DF is set because nothing in the
//!   lab is meant to be fragmented (the relay drops fragments; payloads are sized to the MTU):
//!   a frame too big for a hop is dropped there instead of arriving as fragments. The relay set
//!   DF already; the load generator used to leave it clear.
//! - IPv4 identification: **the caller's** [`FrameHeader::ident`]. The relay passes 0 (its
//!   datagrams are atomic, RFC 6864, and Linux sends 0 for DF datagrams of unconnected sockets
//!   too); the load generator passes the low 16 bits of the sequence number and rewrites it per
//!   packet with [`patch_ipv4_ident`], as it did before.
//! - UDP: ports from the caller, length = 8 + payload, checksum always computed (a computed 0 is
//!   sent as 0xffff). The checksum is split ([`FrameHeader::udp_header_sum`] plus the payload's
//!   [`checksum::sum`]) so a payload summed once serves any number of frames, and a template's
//!   checksum can be redone from a base sum plus the patched bytes ([`patch_udp_checksum`]).

use super::BuildError;
use super::checksum;
use super::ethernet::{self, ETHERTYPE_IPV4, EthernetFrame, multicast_mac};
use super::ipv4::{self, FLAG_DONT_FRAGMENT, Ipv4Packet, PROTOCOL_UDP};
use super::udp::{self, UdpPacket};
use std::net::Ipv4Addr;

/// Offset of the IPv4 header in a built frame.
pub const IPV4_OFFSET: usize = ethernet::HEADER_LEN;
/// Offset of the UDP header in a built frame.
pub const UDP_OFFSET: usize = IPV4_OFFSET + ipv4::HEADER_LEN;
/// Offset of the UDP payload in a built frame: the header bytes in front of the payload.
pub const PAYLOAD_OFFSET: usize = UDP_OFFSET + udp::HEADER_LEN;
/// Largest payload an IPv4 datagram can carry after a UDP header.
pub const MAX_PAYLOAD: usize = u16::MAX as usize - ipv4::HEADER_LEN - udp::HEADER_LEN;

/// Everything a built frame carries besides its payload; see the module docs for the fields the
/// builder fixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub source_mac: [u8; 6],
    pub source: Ipv4Addr,
    /// Destination IPv4 multicast group; the destination MAC is derived from it.
    pub group: Ipv4Addr,
    pub source_port: u16,
    pub destination_port: u16,
    pub ttl: u8,
    pub tos: u8,
    /// IPv4 identification.
    pub ident: u16,
}

impl FrameHeader {
    /// One's-complement sum of the UDP pseudo header and of the UDP header (checksum field 0)
    /// of a frame with a `payload_len`-byte payload. Plus the payload's sum it gives the UDP
    /// checksum via [`checksum::finish_udp`]. `payload_len` must be at most [`MAX_PAYLOAD`].
    #[inline]
    pub fn udp_header_sum(&self, payload_len: usize) -> u64 {
        let udp_len = (udp::HEADER_LEN + payload_len) as u16;
        checksum::pseudo_header_sum(self.source, self.group, PROTOCOL_UDP, udp_len)
            + u64::from(self.source_port)
            + u64::from(self.destination_port)
            + u64::from(udp_len)
    }
}

/// Writes the headers for `header` and a copy of `payload` into the front of `out`; returns
/// the frame length. `payload_sum` must be [`checksum::sum`] of `payload` (the caller computes
/// it once per payload).
#[inline]
pub fn write_frame(
    out: &mut [u8],
    header: &FrameHeader,
    payload: &[u8],
    payload_sum: u32,
) -> Result<usize, BuildError> {
    let frame_len = write_headers(out, header, payload.len(), payload_sum)?;
    out[PAYLOAD_OFFSET..frame_len].copy_from_slice(payload);
    Ok(frame_len)
}

/// [`write_frame`] without the payload copy: the headers of a frame whose `payload_len`-byte
/// payload (summing to `payload_sum`) is or will be at [`PAYLOAD_OFFSET`].
#[inline]
pub fn write_headers(
    out: &mut [u8],
    header: &FrameHeader,
    payload_len: usize,
    payload_sum: u32,
) -> Result<usize, BuildError> {
    let ip_len = ipv4::HEADER_LEN + udp::HEADER_LEN + payload_len;
    let frame_len = ethernet::HEADER_LEN + ip_len;
    if ip_len > usize::from(u16::MAX) {
        return Err(BuildError::DatagramTooLong { ip_len });
    }
    if frame_len > out.len() {
        return Err(BuildError::BufferTooSmall {
            needed: frame_len,
            available: out.len(),
        });
    }
    let mut eth = EthernetFrame::new_unchecked(&mut out[..IPV4_OFFSET]);
    eth.set_destination(multicast_mac(header.group));
    eth.set_source(header.source_mac);
    eth.set_ethertype(ETHERTYPE_IPV4);

    let mut ip = Ipv4Packet::new_unchecked(&mut out[IPV4_OFFSET..UDP_OFFSET]);
    ip.set_version_and_header_len(ipv4::HEADER_LEN);
    ip.set_tos(header.tos);
    ip.set_total_len(ip_len as u16);
    ip.set_ident(header.ident);
    ip.set_flags_fragment(FLAG_DONT_FRAGMENT);
    ip.set_ttl(header.ttl);
    ip.set_protocol(PROTOCOL_UDP);
    ip.set_source(header.source);
    ip.set_destination(header.group);
    ip.fill_checksum();

    let mut udp = UdpPacket::new_unchecked(&mut out[UDP_OFFSET..PAYLOAD_OFFSET]);
    udp.set_source_port(header.source_port);
    udp.set_destination_port(header.destination_port);
    udp.set_len((udp::HEADER_LEN + payload_len) as u16);
    let sum = header.udp_header_sum(payload_len) + u64::from(payload_sum);
    udp.set_checksum(checksum::finish_udp(sum));
    Ok(frame_len)
}

/// Rewrites the IPv4 identification of a frame built here and recomputes its header checksum.
#[inline]
pub fn patch_ipv4_ident(frame: &mut [u8], ident: u16) -> Result<(), BuildError> {
    let available = frame.len();
    let ip = frame
        .get_mut(IPV4_OFFSET..UDP_OFFSET)
        .ok_or(BuildError::BufferTooSmall {
            needed: UDP_OFFSET,
            available,
        })?;
    let mut view = Ipv4Packet::new_unchecked(&mut *ip);
    view.set_ident(ident);
    view.set_checksum(0);
    let sum = checksum::finish(u64::from(checksum::sum(ip)));
    Ipv4Packet::new_unchecked(ip).set_checksum(sum);
    Ok(())
}

/// Writes the UDP checksum of a frame built here from `sum`: the one's-complement sum of the
/// UDP pseudo header, the UDP header with checksum 0 and the payload as it is now (for
/// example [`FrameHeader::udp_header_sum`] plus [`checksum::sum`] of the payload's parts).
#[inline]
pub fn patch_udp_checksum(frame: &mut [u8], sum: u64) -> Result<(), BuildError> {
    let available = frame.len();
    let udp = frame
        .get_mut(UDP_OFFSET..PAYLOAD_OFFSET)
        .ok_or(BuildError::BufferTooSmall {
            needed: PAYLOAD_OFFSET,
            available,
        })?;
    UdpPacket::new_unchecked(udp).set_checksum(checksum::finish_udp(sum));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum::tests::reference_checksum;
    use crate::wire::parse_frame;
    use proptest::prelude::*;

    pub(crate) fn header() -> FrameHeader {
        FrameHeader {
            source_mac: [2, 0, 0, 0, 0, 1],
            source: Ipv4Addr::new(198, 18, 1, 1),
            group: Ipv4Addr::new(239, 1, 0, 1),
            source_port: 40000,
            destination_port: 5000,
            ttl: 4,
            tos: 0,
            ident: 0,
        }
    }

    fn build(header: &FrameHeader, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; PAYLOAD_OFFSET + payload.len()];
        let len = write_frame(&mut out, header, payload, checksum::sum(payload)).unwrap();
        assert_eq!(len, out.len());
        out
    }

    /// Both checksums of a built frame, checked with the plain reference implementation.
    fn assert_checksums_verify(frame: &[u8]) {
        let ip = &frame[IPV4_OFFSET..UDP_OFFSET];
        assert_eq!(reference_checksum(ip), 0, "IPv4 header checksum");
        let udp = &frame[UDP_OFFSET..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[ipv4::field::SOURCE]);
        pseudo.extend_from_slice(&ip[ipv4::field::DESTINATION]);
        pseudo.extend_from_slice(&[0, PROTOCOL_UDP]);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(udp);
        assert_eq!(reference_checksum(&pseudo), 0, "UDP checksum");
    }

    #[test]
    fn built_frame_carries_the_documented_fields() {
        let payload: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let header = FrameHeader {
            tos: 0xb8,
            ident: 0x4242,
            ..header()
        };
        let frame = build(&header, &payload);
        let eth = EthernetFrame::new_checked(&frame[..]).unwrap();
        assert_eq!(eth.destination(), [0x01, 0x00, 0x5e, 0x01, 0x00, 0x01]);
        assert_eq!(eth.source(), header.source_mac);
        assert_eq!(eth.ethertype(), ETHERTYPE_IPV4);
        let ip = Ipv4Packet::new_checked(&frame[IPV4_OFFSET..]).unwrap();
        assert_eq!((ip.header_len(), ip.total_len()), (20, 1029));
        assert_eq!((ip.tos(), ip.ttl(), ip.ident()), (0xb8, 4, 0x4242));
        assert_eq!(ip.flags_fragment(), FLAG_DONT_FRAGMENT, "DF set, offset 0");
        assert_eq!(
            (ip.source(), ip.destination()),
            (header.source, header.group)
        );
        assert!(ip.verify_checksum());
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (udp.source_port(), udp.destination_port(), udp.len()),
            (40000, 5000, 1009)
        );
        assert!(udp.verify_checksum(header.source, header.group));
        assert_eq!(udp.payload(), &payload[..]);
        assert_checksums_verify(&frame);
    }

    #[test]
    fn refuses_small_buffers_and_oversized_datagrams() {
        let mut out = [0u8; 50];
        assert_eq!(
            write_frame(&mut out, &header(), &[0; 20], 0),
            Err(BuildError::BufferTooSmall {
                needed: 62,
                available: 50
            })
        );
        let mut big = vec![0u8; 70_000];
        assert_eq!(
            write_headers(&mut big, &header(), MAX_PAYLOAD + 1, 0),
            Err(BuildError::DatagramTooLong { ip_len: 65_536 })
        );
        assert!(write_headers(&mut big, &header(), MAX_PAYLOAD, 0).is_ok());
        assert!(patch_ipv4_ident(&mut out[..33], 1).is_err());
        assert!(patch_udp_checksum(&mut out[..41], 1).is_err());
    }

    #[test]
    fn patching_a_template_matches_building_afresh() {
        let mut payload = vec![0x5au8; 300];
        let mut template = build(&header(), &payload);
        // The template way: base sum once, then per packet the patched bytes only.
        let patched_len = 28;
        let base = header().udp_header_sum(payload.len())
            + u64::from(checksum::sum(&payload[patched_len..]));
        for (ident, fill) in [(1u16, 0x11u8), (0xffff, 0xee), (7, 0)] {
            template[PAYLOAD_OFFSET..PAYLOAD_OFFSET + patched_len].fill(fill);
            patch_ipv4_ident(&mut template, ident).unwrap();
            let patched = &template[PAYLOAD_OFFSET..PAYLOAD_OFFSET + patched_len];
            let sum = base + u64::from(checksum::sum(patched));
            patch_udp_checksum(&mut template, sum).unwrap();
            payload[..patched_len].fill(fill);
            assert_eq!(
                template,
                build(&FrameHeader { ident, ..header() }, &payload)
            );
        }
    }

    /// The relay's egress frame builder before it moved here (DF set, IP id 0), kept as the
    /// oracle that the relay's frames did not change.
    fn legacy_relay_frame(h: &FrameHeader, payload: &[u8]) -> Vec<u8> {
        let finish = |mut s: u64| {
            while s >> 16 != 0 {
                s = (s & 0xffff) + (s >> 16);
            }
            !(s as u16)
        };
        let words = |b: &[u8]| {
            b.chunks(2)
                .map(|p| u64::from(p[0]) << 8 | u64::from(*p.get(1).unwrap_or(&0)))
                .sum::<u64>()
        };
        let udp_len = 8 + payload.len();
        let mut out = Vec::new();
        out.extend_from_slice(&multicast_mac(h.group));
        out.extend_from_slice(&h.source_mac);
        out.extend_from_slice(&[0x08, 0x00, 0x45, h.tos]);
        out.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0, 0x40, 0, h.ttl, 17, 0, 0]);
        out.extend_from_slice(&h.source.octets());
        out.extend_from_slice(&h.group.octets());
        let ip_sum = finish(words(&out[14..34]));
        out[24..26].copy_from_slice(&ip_sum.to_be_bytes());
        out.extend_from_slice(&h.source_port.to_be_bytes());
        out.extend_from_slice(&h.destination_port.to_be_bytes());
        out.extend_from_slice(&(udp_len as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        let sum = words(payload)
            + words(&out[26..34])
            + 17
            + 2 * udp_len as u64
            + u64::from(h.source_port)
            + u64::from(h.destination_port);
        let udp_sum = match finish(sum) {
            0 => 0xffff,
            c => c,
        };
        out[40..42].copy_from_slice(&udp_sum.to_be_bytes());
        out.extend_from_slice(payload);
        out
    }

    proptest! {
        #[test]
        fn relay_frames_are_byte_for_byte_what_they_were(
            payload in proptest::collection::vec(any::<u8>(), 0..600),
            source_port in any::<u16>(),
            ttl in any::<u8>(),
            tos in any::<u8>(),
        ) {
            // The relay passes ident 0.
            let header = FrameHeader { source_port, ttl, tos, ..header() };
            prop_assert_eq!(build(&header, &payload), legacy_relay_frame(&header, &payload));
        }
    }

    proptest! {
        #[test]
        fn build_then_parse_round_trips(
            payload in proptest::collection::vec(any::<u8>(), 0..1500),
            source_port in any::<u16>(),
            destination_port in any::<u16>(),
            ttl in any::<u8>(),
            tos in any::<u8>(),
            ident in any::<u16>(),
            group in any::<u32>(),
        ) {
            let header = FrameHeader {
                source_port, destination_port, ttl, tos, ident,
                group: Ipv4Addr::from(group),
                ..header()
            };
            let frame = build(&header, &payload);
            let d = parse_frame(&frame).unwrap();
            prop_assert_eq!(d.payload, &payload[..]);
            prop_assert_eq!((d.source, d.destination), (header.source, header.group));
            prop_assert_eq!((d.source_port, d.destination_port, d.tos), (source_port, destination_port, tos));
            assert_checksums_verify(&frame);
        }
    }
}
