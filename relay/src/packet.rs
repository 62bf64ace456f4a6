//! Zero-copy view of Ethernet (+ one or two 802.1Q/802.1ad tags) / IPv4 / UDP frames, and the
//! builder for the frames the relay sends.
//!
//! [`parse_frame`] never allocates and never panics: anything the relay cannot forward is
//! rejected with a [`DropReason`]. [`write_frame`] writes fresh Ethernet, IPv4 and UDP headers
//! (correct IPv4 header checksum, correct UDP checksum) followed by the payload into a buffer.
//! The UDP checksum is split so the payload's one's-complement sum is computed once per input
//! packet and reused for every output ([`payload_sum`]).

use std::net::Ipv4Addr;

pub const ETH_HEADER_LEN: usize = 14;
pub const IPV4_HEADER_LEN: usize = 20;
pub const UDP_HEADER_LEN: usize = 8;
/// Bytes of headers the relay writes in front of the payload.
pub const EGRESS_HEADERS_LEN: usize = ETH_HEADER_LEN + IPV4_HEADER_LEN + UDP_HEADER_LEN;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const IPPROTO_UDP: u8 = 17;

/// Why a frame was not forwarded. The discriminant indexes the drop counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    NotIpv4 = 0,
    NotUdp,
    Fragment,
    Truncated,
    BadHeaderLength,
    NoRule,
    EgressFailure,
    QueueFull,
}

impl DropReason {
    pub const COUNT: usize = 8;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::NotIpv4,
        DropReason::NotUdp,
        DropReason::Fragment,
        DropReason::Truncated,
        DropReason::BadHeaderLength,
        DropReason::NoRule,
        DropReason::EgressFailure,
        DropReason::QueueFull,
    ];

    /// Stable snake_case name used in `stats` output.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::NotUdp => "not_udp",
            DropReason::Fragment => "ip_fragment",
            DropReason::Truncated => "truncated",
            DropReason::BadHeaderLength => "bad_header_length",
            DropReason::NoRule => "no_rule",
            DropReason::EgressFailure => "egress_failure",
            DropReason::QueueFull => "queue_full",
        }
    }
}

/// A parsed IPv4/UDP datagram borrowed from the frame it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub source_port: u16,
    pub destination_port: u16,
    pub tos: u8,
    pub payload: &'a [u8],
}

fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

/// Parses an Ethernet frame down to its UDP payload.
pub fn parse_frame(frame: &[u8]) -> Result<UdpDatagram<'_>, DropReason> {
    let mut offset = 12;
    let mut ethertype = be16(frame, offset).ok_or(DropReason::Truncated)?;
    // Up to two VLAN tags (802.1ad outer, 802.1Q inner).
    for _ in 0..2 {
        if ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ {
            offset += 4;
            ethertype = be16(frame, offset).ok_or(DropReason::Truncated)?;
        }
    }
    if ethertype != ETHERTYPE_IPV4 {
        return Err(DropReason::NotIpv4);
    }
    parse_ipv4(frame.get(offset + 2..).ok_or(DropReason::Truncated)?)
}

/// Parses an IPv4 packet (no link-layer header) down to its UDP payload.
pub fn parse_ipv4(ip: &[u8]) -> Result<UdpDatagram<'_>, DropReason> {
    let first = *ip.first().ok_or(DropReason::Truncated)?;
    if first >> 4 != 4 {
        return Err(DropReason::NotIpv4);
    }
    if ip.len() < IPV4_HEADER_LEN {
        return Err(DropReason::Truncated);
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < IPV4_HEADER_LEN {
        return Err(DropReason::BadHeaderLength);
    }
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total_len < header_len + UDP_HEADER_LEN {
        return Err(DropReason::BadHeaderLength);
    }
    if ip.len() < total_len {
        return Err(DropReason::Truncated);
    }
    let flags_fragment = u16::from_be_bytes([ip[6], ip[7]]);
    // More-fragments flag or a non-zero fragment offset.
    if flags_fragment & 0x3fff != 0 {
        return Err(DropReason::Fragment);
    }
    if ip[9] != IPPROTO_UDP {
        return Err(DropReason::NotUdp);
    }
    let udp = &ip[header_len..total_len];
    let udp_len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if udp_len < UDP_HEADER_LEN || udp_len > udp.len() {
        return Err(DropReason::BadHeaderLength);
    }
    Ok(UdpDatagram {
        source: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        destination: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        source_port: u16::from_be_bytes([udp[0], udp[1]]),
        destination_port: u16::from_be_bytes([udp[2], udp[3]]),
        tos: ip[1],
        payload: &udp[UDP_HEADER_LEN..udp_len],
    })
}

/// The Ethernet multicast MAC address of an IPv4 group (01:00:5e + low 23 bits).
pub fn multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// One's-complement sum of `data` folded to 32 bits (not yet complemented).
pub fn payload_sum(data: &[u8]) -> u32 {
    let mut sum: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_be_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let (s, carry) = sum.overflowing_add(word);
        sum = s + u64::from(carry);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for pair in &mut rest {
        sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = rest.remainder() {
        sum += u64::from(*last) << 8;
    }
    fold64(sum)
}

fn fold64(mut sum: u64) -> u32 {
    // Fold 64 -> 32 bits keeping the one's-complement carry.
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum as u32
}

fn finish_checksum(sum: u64) -> u16 {
    let mut s = sum;
    while s >> 16 != 0 {
        s = (s & 0xffff) + (s >> 16);
    }
    !(s as u16)
}

fn header_checksum(header: &[u8]) -> u16 {
    finish_checksum(u64::from(payload_sum(header)))
}

/// What an egress frame carries besides the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EgressHeader {
    pub source_mac: [u8; 6],
    pub source: Ipv4Addr,
    pub group: Ipv4Addr,
    pub source_port: u16,
    pub destination_port: u16,
    pub ttl: u8,
    pub tos: u8,
}

/// Writes Ethernet + IPv4 + UDP headers and `payload` into `out`; returns the frame length, or
/// `None` when `out` is too small or the datagram would exceed 65535 bytes.
/// `payload_sum` must be [`payload_sum`] of `payload`.
pub fn write_frame(
    out: &mut [u8],
    header: &EgressHeader,
    payload: &[u8],
    payload_sum: u32,
) -> Option<usize> {
    let udp_len = UDP_HEADER_LEN + payload.len();
    let ip_len = IPV4_HEADER_LEN + udp_len;
    let frame_len = ETH_HEADER_LEN + ip_len;
    if frame_len > out.len() || ip_len > usize::from(u16::MAX) {
        return None;
    }
    let out = &mut out[..frame_len];
    out[0..6].copy_from_slice(&multicast_mac(header.group));
    out[6..12].copy_from_slice(&header.source_mac);
    out[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());

    let ip = &mut out[ETH_HEADER_LEN..ETH_HEADER_LEN + IPV4_HEADER_LEN];
    ip[0] = 0x45;
    ip[1] = header.tos;
    ip[2..4].copy_from_slice(&(ip_len as u16).to_be_bytes());
    ip[4..6].copy_from_slice(&[0, 0]); // identification: unused with DF set
    ip[6..8].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
    ip[8] = header.ttl;
    ip[9] = IPPROTO_UDP;
    ip[10..12].copy_from_slice(&[0, 0]);
    ip[12..16].copy_from_slice(&header.source.octets());
    ip[16..20].copy_from_slice(&header.group.octets());
    let ip_sum = header_checksum(ip);
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());

    let udp_at = ETH_HEADER_LEN + IPV4_HEADER_LEN;
    let udp = &mut out[udp_at..udp_at + UDP_HEADER_LEN];
    udp[0..2].copy_from_slice(&header.source_port.to_be_bytes());
    udp[2..4].copy_from_slice(&header.destination_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].copy_from_slice(&[0, 0]);
    // Pseudo header + UDP header + payload.
    let s = header.source.octets();
    let g = header.group.octets();
    let mut sum: u64 = u64::from(payload_sum);
    sum +=
        u64::from(u16::from_be_bytes([s[0], s[1]])) + u64::from(u16::from_be_bytes([s[2], s[3]]));
    sum +=
        u64::from(u16::from_be_bytes([g[0], g[1]])) + u64::from(u16::from_be_bytes([g[2], g[3]]));
    sum += u64::from(IPPROTO_UDP) + 2 * udp_len as u64;
    sum += u64::from(header.source_port) + u64::from(header.destination_port);
    let mut udp_sum = finish_checksum(sum);
    if udp_sum == 0 {
        udp_sum = 0xffff; // 0 means "no checksum" in UDP over IPv4
    }
    out[udp_at + 6..udp_at + 8].copy_from_slice(&udp_sum.to_be_bytes());
    out[udp_at + UDP_HEADER_LEN..].copy_from_slice(payload);
    Some(frame_len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header() -> EgressHeader {
        EgressHeader {
            source_mac: [2, 0, 0, 0, 0, 1],
            source: Ipv4Addr::new(198, 18, 1, 1),
            group: Ipv4Addr::new(239, 1, 0, 1),
            source_port: 40000,
            destination_port: 5000,
            ttl: 4,
            tos: 0,
        }
    }

    fn sample_frame(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; EGRESS_HEADERS_LEN + payload.len()];
        let n = write_frame(&mut out, &header(), payload, payload_sum(payload)).unwrap();
        out.truncate(n);
        out
    }

    /// Straightforward RFC 1071 checksum over a list of byte slices, for cross-checking.
    fn reference_checksum(parts: &[&[u8]]) -> u16 {
        let bytes: Vec<u8> = parts.concat();
        let mut sum: u32 = 0;
        for pair in bytes.chunks(2) {
            let word = if pair.len() == 2 {
                u16::from_be_bytes([pair[0], pair[1]])
            } else {
                u16::from_be_bytes([pair[0], 0])
            };
            sum += u32::from(word);
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn built_frame_parses_back_with_valid_checksums() {
        let payload: Vec<u8> = (0..1001u32).map(|i| (i * 7 + 3) as u8).collect();
        let frame = sample_frame(&payload);
        assert_eq!(&frame[0..6], &[0x01, 0x00, 0x5e, 0x01, 0x00, 0x01]);
        let d = parse_frame(&frame).unwrap();
        assert_eq!(d.payload, &payload[..]);
        assert_eq!(d.destination, Ipv4Addr::new(239, 1, 0, 1));
        assert_eq!(d.source_port, 40000);
        assert_eq!(d.destination_port, 5000);
        let ip = &frame[14..34];
        assert_eq!(ip[8], 4, "ttl");
        assert_eq!(reference_checksum(&[ip]), 0, "IPv4 header checksum");
        let udp = &frame[34..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.extend_from_slice(&[0, 17]);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        assert_eq!(reference_checksum(&[&pseudo, udp]), 0, "UDP checksum");
    }

    #[test]
    fn multicast_mac_drops_the_high_bit_of_the_second_octet() {
        assert_eq!(
            multicast_mac(Ipv4Addr::new(239, 129, 2, 3)),
            [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]
        );
    }

    #[test]
    fn parses_vlan_tagged_frames() {
        let plain = sample_frame(b"hello");
        let mut tagged = plain[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x05]);
        tagged.extend_from_slice(&plain[12..]);
        assert_eq!(parse_frame(&tagged).unwrap().payload, b"hello");
    }

    #[test]
    fn rejects_malformed_frames_with_typed_reasons() {
        let good = sample_frame(b"0123456789");
        assert_eq!(parse_frame(&good[..10]), Err(DropReason::Truncated));
        assert_eq!(parse_frame(&good[..20]), Err(DropReason::Truncated));
        assert_eq!(
            parse_frame(&good[..good.len() - 1]),
            Err(DropReason::Truncated)
        );

        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(parse_frame(&arp), Err(DropReason::NotIpv4));

        let mut v6 = good.clone();
        v6[14] = 0x65;
        assert_eq!(parse_frame(&v6), Err(DropReason::NotIpv4));

        let mut tcp = good.clone();
        tcp[14 + 9] = 6;
        assert_eq!(parse_frame(&tcp), Err(DropReason::NotUdp));

        let mut fragment = good.clone();
        fragment[14 + 6] = 0x20; // MF
        assert_eq!(parse_frame(&fragment), Err(DropReason::Fragment));
        let mut later_fragment = good.clone();
        later_fragment[14 + 7] = 0x10; // offset
        assert_eq!(parse_frame(&later_fragment), Err(DropReason::Fragment));

        let mut short_ihl = good.clone();
        short_ihl[14] = 0x44;
        assert_eq!(parse_frame(&short_ihl), Err(DropReason::BadHeaderLength));

        let mut short_total = good.clone();
        short_total[16..18].copy_from_slice(&20u16.to_be_bytes());
        assert_eq!(parse_frame(&short_total), Err(DropReason::BadHeaderLength));

        let mut long_udp = good.clone();
        long_udp[38..40].copy_from_slice(&500u16.to_be_bytes());
        assert_eq!(parse_frame(&long_udp), Err(DropReason::BadHeaderLength));

        let mut tiny_udp = good.clone();
        tiny_udp[38..40].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(parse_frame(&tiny_udp), Err(DropReason::BadHeaderLength));

        // Ethernet padding after the IP datagram is ignored.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 8]);
        assert_eq!(parse_frame(&padded).unwrap().payload, b"0123456789");
    }

    #[test]
    fn write_frame_refuses_small_buffers() {
        let mut out = [0u8; 50];
        assert_eq!(write_frame(&mut out, &header(), &[0; 20], 0), None);
    }

    #[test]
    fn drop_reason_names_are_unique_and_indexed() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
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
        ) {
            let mut frame = sample_frame(&payload);
            if at < frame.len() { frame[at] = value; }
            frame.truncate(cut.min(frame.len()));
            let _ = parse_frame(&frame);
        }

        #[test]
        fn udp_checksum_matches_reference(payload in proptest::collection::vec(any::<u8>(), 0..300)) {
            let frame = sample_frame(&payload);
            let ip = &frame[14..34];
            let udp = &frame[34..];
            let mut pseudo = Vec::new();
            pseudo.extend_from_slice(&ip[12..20]);
            pseudo.extend_from_slice(&[0, 17]);
            pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            prop_assert_eq!(reference_checksum(&[&pseudo, udp]), 0);
        }
    }
}
