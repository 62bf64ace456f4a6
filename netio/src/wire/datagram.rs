//! Parsing a received frame down to its UDP payload: the one classification the relay's data
//! path runs on every frame. It never allocates and never panics.

use super::ParseError;
use super::ethernet::{ETHERTYPE_IPV4, EthernetFrame, vlan_field};
use super::ipv4::{Ipv4Packet, PROTOCOL_UDP};
use super::udp::{self, UdpPacket};
use std::net::Ipv4Addr;

/// An IPv4/UDP datagram borrowed from the frame it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub source_port: u16,
    pub destination_port: u16,
    pub tos: u8,
    /// The IPv4 time to live the datagram arrived with.
    pub ttl: u8,
    /// VLAN tags in the frame in front of the IPv4 header (0 for [`parse_ipv4`]).
    pub vlan_tags: u8,
    /// VLAN id (low 12 bits of the TCI) of the outermost tag in the frame; 0 if untagged.
    pub vlan_id: u16,
    pub payload: &'a [u8],
}

/// The 12-bit VLAN id of a tag control information field.
pub const VLAN_ID_MASK: u16 = 0x0fff;

/// Parses an Ethernet frame (untagged, or with one or two 802.1Q/802.1ad tags) down to its UDP
/// payload. Errors, the first that applies: the frame ends inside its Ethernet header or a tag,
/// [`ParseError::Truncated`]; the EtherType is not IPv4, [`ParseError::NotIpv4`]; then those
/// of [`parse_ipv4`]. Ethernet padding after the IPv4 total length is ignored.
#[inline]
pub fn parse_frame(frame: &[u8]) -> Result<UdpDatagram<'_>, ParseError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let link = eth.link_header()?;
    if link.ethertype != ETHERTYPE_IPV4 {
        return Err(ParseError::NotIpv4);
    }
    let mut datagram = parse_ipv4(frame.get(link.len..).ok_or(ParseError::Truncated)?)?;
    if link.vlan_tags > 0 {
        // The outer tag's TCI follows its TPID at the EtherType offset; link_header checked
        // that the frame holds it.
        let tci_at = super::ethernet::field::ETHERTYPE.start + vlan_field::TCI.start;
        let tci = u16::from_be_bytes([frame[tci_at], frame[tci_at + 1]]);
        datagram.vlan_tags = link.vlan_tags as u8;
        datagram.vlan_id = tci & VLAN_ID_MASK;
    }
    Ok(datagram)
}

/// Parses an IPv4 packet (no link-layer header) down to its UDP payload. Errors, the first that
/// applies: those of [`Ipv4Packet::new_checked_with_payload`] (room for a UDP header required);
/// a header checksum that does not verify, [`ParseError::BadChecksum`]; a fragment,
/// [`ParseError::Fragment`]; not UDP, [`ParseError::NotUdp`]; those of
/// [`UdpPacket::new_checked`] on the IPv4 payload.
#[inline]
pub fn parse_ipv4(ip: &[u8]) -> Result<UdpDatagram<'_>, ParseError> {
    let ip = Ipv4Packet::new_checked_with_payload(ip, udp::HEADER_LEN)?;
    if !ip.verify_checksum() {
        return Err(ParseError::BadChecksum);
    }
    if ip.is_fragment() {
        return Err(ParseError::Fragment);
    }
    if ip.protocol() != PROTOCOL_UDP {
        return Err(ParseError::NotUdp);
    }
    let udp = UdpPacket::new_checked(ip.payload())?;
    Ok(UdpDatagram {
        source: ip.source(),
        destination: ip.destination(),
        source_port: udp.source_port(),
        destination_port: udp.destination_port(),
        tos: ip.tos(),
        ttl: ip.ttl(),
        vlan_tags: 0,
        vlan_id: 0,
        payload: udp.payload(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Ipv4Packet;
    use crate::wire::ethernet::{ETHERTYPE_QINQ, ETHERTYPE_VLAN};
    use crate::wire::{FrameHeader, PAYLOAD_OFFSET, checksum, write_frame};
    use proptest::prelude::*;

    fn sample_frame(payload: &[u8]) -> Vec<u8> {
        let header = FrameHeader {
            source_mac: [2, 0, 0, 0, 0, 1],
            source: Ipv4Addr::new(198, 18, 1, 1),
            group: Ipv4Addr::new(239, 1, 0, 1),
            source_port: 40000,
            destination_port: 5000,
            ttl: 4,
            tos: 0x10,
            ident: 0,
        };
        let mut out = vec![0u8; PAYLOAD_OFFSET + payload.len()];
        let len = write_frame(&mut out, &header, payload, checksum::sum(payload)).unwrap();
        out.truncate(len);
        out
    }

    fn tagged(frame: &[u8], tpids: &[u16]) -> Vec<u8> {
        let mut out = frame[..12].to_vec();
        for tpid in tpids {
            out.extend_from_slice(&tpid.to_be_bytes());
            out.extend_from_slice(&[0x00, 0x05]);
        }
        out.extend_from_slice(&frame[12..]);
        out
    }

    /// Recomputes the IPv4 header checksum of an untagged frame whose IHL fits the frame.
    fn refill_ip_checksum(frame: &mut [u8]) {
        let ihl = usize::from(frame[14] & 0x0f) * 4;
        if ihl >= 20 && frame.len() >= 14 + ihl {
            Ipv4Packet::new_unchecked(&mut frame[14..14 + ihl]).fill_checksum();
        }
    }

    #[test]
    fn a_corrupted_ip_header_is_a_bad_checksum() {
        let good = sample_frame(b"0123456789");
        for (at, mask) in [
            (14 + 1, 0x04u8),
            (14 + 8, 0x01),
            (14 + 15, 0x80),
            (24, 0xff),
        ] {
            let mut frame = good.clone();
            frame[at] ^= mask;
            assert_eq!(
                parse_frame(&frame),
                Err(ParseError::BadChecksum),
                "byte {at}"
            );
        }
        // The payload is not covered by the header checksum.
        let mut frame = good.clone();
        *frame.last_mut().unwrap() ^= 1;
        assert!(parse_frame(&frame).is_ok());
    }

    #[test]
    fn reports_the_ttl_and_the_outer_vlan_tag() {
        let plain = sample_frame(b"hi");
        let d = parse_frame(&plain).unwrap();
        assert_eq!((d.ttl, d.vlan_tags, d.vlan_id), (4, 0, 0));
        let mut one = tagged(&plain, &[ETHERTYPE_VLAN]);
        one[14..16].copy_from_slice(&0xe064u16.to_be_bytes()); // PCP 7, VID 100
        let d = parse_frame(&one).unwrap();
        assert_eq!((d.vlan_tags, d.vlan_id), (1, 100));
        let two = tagged(&plain, &[ETHERTYPE_QINQ, ETHERTYPE_VLAN]);
        let d = parse_frame(&two).unwrap();
        assert_eq!((d.vlan_tags, d.vlan_id), (2, 5));
        assert_eq!(parse_ipv4(&plain[14..]).unwrap().vlan_tags, 0);
    }

    #[test]
    fn parses_the_fields_of_a_frame() {
        let frame = sample_frame(b"hello");
        let d = parse_frame(&frame).unwrap();
        assert_eq!(d.source, Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(d.destination, Ipv4Addr::new(239, 1, 0, 1));
        assert_eq!(
            (d.source_port, d.destination_port, d.tos),
            (40000, 5000, 0x10)
        );
        assert_eq!(d.payload, b"hello");
        assert_eq!(parse_ipv4(&frame[14..]), Ok(d));
    }

    #[test]
    fn parses_frames_with_one_or_two_vlan_tags() {
        let plain = sample_frame(b"hello");
        for tpids in [
            &[ETHERTYPE_VLAN][..],
            &[ETHERTYPE_QINQ],
            &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
        ] {
            assert_eq!(
                parse_frame(&tagged(&plain, tpids)).unwrap().payload,
                b"hello"
            );
        }
        let three = tagged(&plain, &[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_VLAN]);
        assert_eq!(parse_frame(&three), Err(ParseError::NotIpv4));
        let one = tagged(&plain, &[ETHERTYPE_VLAN]);
        assert_eq!(parse_frame(&one[..16]), Err(ParseError::Truncated));
        assert_eq!(
            parse_frame(&one[..18]),
            Err(ParseError::Truncated),
            "no IP byte"
        );
    }

    #[test]
    fn rejects_malformed_frames_with_typed_reasons() {
        let good = sample_frame(b"0123456789");
        assert_eq!(parse_frame(&good[..10]), Err(ParseError::Truncated));
        assert_eq!(parse_frame(&good[..14]), Err(ParseError::Truncated));
        assert_eq!(parse_frame(&good[..20]), Err(ParseError::Truncated));
        assert_eq!(
            parse_frame(&good[..good.len() - 1]),
            Err(ParseError::Truncated)
        );

        // Edits inside the IP header come with a fixed-up checksum, so each case shows its
        // own reason rather than a bad checksum.
        let with = |at: usize, bytes: &[u8]| {
            let mut frame = good.clone();
            frame[at..at + bytes.len()].copy_from_slice(bytes);
            refill_ip_checksum(&mut frame);
            parse_frame(&frame).map(|d| d.payload.to_vec())
        };
        assert_eq!(with(12, &[0x08, 0x06]), Err(ParseError::NotIpv4), "ARP");
        assert_eq!(with(14, &[0x65]), Err(ParseError::NotIpv4), "version 6");
        assert_eq!(with(14 + 9, &[6]), Err(ParseError::NotUdp), "TCP");
        assert_eq!(with(14 + 6, &[0x20]), Err(ParseError::Fragment), "MF");
        assert_eq!(
            with(14 + 6, &[0x40, 0x10]),
            Err(ParseError::Fragment),
            "offset"
        );
        assert_eq!(with(14, &[0x44]), Err(ParseError::BadHeaderLength), "IHL 4");
        assert_eq!(
            with(16, &[0, 20]),
            Err(ParseError::BadHeaderLength),
            "total 20"
        );
        assert_eq!(
            with(38, &[1, 244]),
            Err(ParseError::BadHeaderLength),
            "UDP 500"
        );
        assert_eq!(with(38, &[0, 4]), Err(ParseError::BadHeaderLength), "UDP 4");

        // Ethernet padding after the IP datagram is ignored.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(parse_frame(&padded).unwrap().payload, b"0123456789");
        // A UDP length shorter than the IP payload bounds the payload.
        assert_eq!(with(38, &[0, 12]), Ok(b"0123".to_vec()));
    }

    /// The relay's parser before it moved here, kept as the oracle that the drop reasons did
    /// not change (plus the header checksum check added since, at the place it now runs).
    fn legacy_parse_frame(frame: &[u8]) -> Result<&[u8], ParseError> {
        use ParseError::*;
        let be16 = |at: usize| Some(u16::from_be_bytes([*frame.get(at)?, *frame.get(at + 1)?]));
        let mut offset = 12;
        let mut ethertype = be16(offset).ok_or(Truncated)?;
        for _ in 0..2 {
            if ethertype == 0x8100 || ethertype == 0x88a8 {
                offset += 4;
                ethertype = be16(offset).ok_or(Truncated)?;
            }
        }
        if ethertype != 0x0800 {
            return Err(NotIpv4);
        }
        let ip = frame.get(offset + 2..).ok_or(Truncated)?;
        let first = *ip.first().ok_or(Truncated)?;
        if first >> 4 != 4 {
            return Err(NotIpv4);
        }
        if ip.len() < 20 {
            return Err(Truncated);
        }
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < 20 {
            return Err(BadHeaderLength);
        }
        let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        if total_len < header_len + 8 {
            return Err(BadHeaderLength);
        }
        if ip.len() < total_len {
            return Err(Truncated);
        }
        // Added with the checksum check (issue 9): the legacy relay did not verify it.
        if crate::wire::checksum::tests::reference_checksum(&ip[..header_len]) != 0 {
            return Err(BadChecksum);
        }
        if u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0 {
            return Err(Fragment);
        }
        if ip[9] != 17 {
            return Err(NotUdp);
        }
        let udp = &ip[header_len..total_len];
        let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        if udp_len < 8 || udp_len > udp.len() {
            return Err(BadHeaderLength);
        }
        Ok(&udp[8..udp_len])
    }

    proptest! {
        #[test]
        fn same_verdicts_as_the_relay_parser_before_the_move(
            payload in proptest::collection::vec(any::<u8>(), 0..40),
            edits in proptest::collection::vec((0usize..60, any::<u8>()), 0..4),
            cut in 0usize..100,
            tags in proptest::collection::vec(
                prop_oneof![Just(ETHERTYPE_VLAN), Just(ETHERTYPE_QINQ)], 0..4),
        ) {
            let mut frame = tagged(&sample_frame(&payload), &tags);
            for (at, value) in edits {
                if at < frame.len() { frame[at] = value; }
            }
            frame.truncate(cut.min(frame.len()));
            prop_assert_eq!(parse_frame(&frame).map(|d| d.payload), legacy_parse_frame(&frame));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_frame(&bytes);
            let _ = parse_ipv4(&bytes);
        }

        #[test]
        fn mutated_valid_frames_never_panic(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            at in 0usize..120,
            value in any::<u8>(),
            cut in 0usize..140,
            tags in 0usize..3,
        ) {
            let mut frame = tagged(&sample_frame(&payload), &[ETHERTYPE_VLAN, ETHERTYPE_QINQ][..tags]);
            if at < frame.len() { frame[at] = value; }
            frame.truncate(cut.min(frame.len()));
            let _ = parse_frame(&frame);
        }

        #[test]
        fn every_cut_of_a_valid_frame_is_truncated(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            cut in 0usize..106,
        ) {
            let frame = sample_frame(&payload);
            prop_assume!(cut < frame.len());
            prop_assert_eq!(parse_frame(&frame[..cut]), Err(ParseError::Truncated));
        }
    }
}
