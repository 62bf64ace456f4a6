//! Complete Ethernet / IPv4 / UDP frames for AF_PACKET sending.
//!
//! A [`FrameTemplate`] is built once per stream (random payload body included); per packet only
//! the loadgen header, the IPv4 identification and the two checksums are patched. The UDP checksum
//! is updated incrementally: the one's-complement sum of everything but the 28-byte header is
//! computed once.

use crate::wire::{HEADER_LEN, Header, WireError};
use std::net::Ipv4Addr;

/// Ethernet header length (no VLAN tag).
pub const ETH_LEN: usize = 14;
/// IPv4 header length (no options).
pub const IPV4_LEN: usize = 20;
/// UDP header length.
pub const UDP_LEN: usize = 8;
/// Offset of the UDP payload in a frame.
pub const PAYLOAD_OFFSET: usize = ETH_LEN + IPV4_LEN + UDP_LEN;

const IP_OFFSET: usize = ETH_LEN;
const UDP_OFFSET: usize = ETH_LEN + IPV4_LEN;
const IP_ID_OFFSET: usize = IP_OFFSET + 4;
const IP_CSUM_OFFSET: usize = IP_OFFSET + 10;
const UDP_CSUM_OFFSET: usize = UDP_OFFSET + 6;

/// The Ethernet multicast MAC of an IPv4 group: 01:00:5e + the low 23 bits of the group.
pub fn multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Adds `data` as big-endian 16-bit words to a one's-complement accumulator (odd tail padded).
pub fn sum_words(mut acc: u64, data: &[u8]) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for word in &mut chunks {
        acc += u64::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds an accumulator to 16 bits and complements it.
pub fn fold_checksum(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Addresses and options of one stream's frames.
#[derive(Debug, Clone, Copy)]
pub struct FrameSpec {
    pub src_mac: [u8; 6],
    pub src_ip: Ipv4Addr,
    pub group: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub ttl: u8,
}

/// A pre-built frame for one stream; see the module docs.
#[derive(Debug, Clone)]
pub struct FrameTemplate {
    frame: Vec<u8>,
    /// Sum of the UDP pseudo header, UDP header (checksum 0) and payload after the loadgen header.
    udp_base_sum: u64,
}

impl FrameTemplate {
    /// Builds the frame for `spec` with `payload_body` as the whole UDP payload; the first
    /// [`HEADER_LEN`] bytes of it are overwritten by [`FrameTemplate::patch`].
    pub fn new(spec: &FrameSpec, payload: &[u8]) -> Result<FrameTemplate, WireError> {
        if payload.len() < HEADER_LEN {
            return Err(WireError::BufferTooSmall { len: payload.len() });
        }
        let udp_len = (UDP_LEN + payload.len()) as u16;
        let ip_total = (IPV4_LEN + UDP_LEN + payload.len()) as u16;
        let mut frame = vec![0u8; PAYLOAD_OFFSET + payload.len()];
        frame[0..6].copy_from_slice(&multicast_mac(spec.group));
        frame[6..12].copy_from_slice(&spec.src_mac);
        frame[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut frame[IP_OFFSET..IP_OFFSET + IPV4_LEN];
        ip[0] = 0x45;
        ip[1] = 0;
        ip[2..4].copy_from_slice(&ip_total.to_be_bytes());
        ip[8] = spec.ttl;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&spec.src_ip.octets());
        ip[16..20].copy_from_slice(&spec.group.octets());
        let udp = &mut frame[UDP_OFFSET..UDP_OFFSET + UDP_LEN];
        udp[0..2].copy_from_slice(&spec.src_port.to_be_bytes());
        udp[2..4].copy_from_slice(&spec.dst_port.to_be_bytes());
        udp[4..6].copy_from_slice(&udp_len.to_be_bytes());
        frame[PAYLOAD_OFFSET..].copy_from_slice(payload);

        let mut acc = sum_words(0, &spec.src_ip.octets());
        acc = sum_words(acc, &spec.group.octets());
        acc += 17 + u64::from(udp_len);
        acc = sum_words(acc, &frame[UDP_OFFSET..UDP_OFFSET + UDP_LEN]);
        // The header is 28 bytes (even), so the rest starts on a word boundary.
        acc = sum_words(acc, &frame[PAYLOAD_OFFSET + HEADER_LEN..]);
        Ok(FrameTemplate {
            frame,
            udp_base_sum: acc,
        })
    }

    /// The frame as last patched.
    pub fn bytes(&self) -> &[u8] {
        &self.frame
    }

    /// Length of the frame in bytes.
    pub fn len(&self) -> usize {
        self.frame.len()
    }

    /// Always false: a frame holds at least its headers.
    pub fn is_empty(&self) -> bool {
        self.frame.is_empty()
    }

    /// Writes `header` and `ip_id` into `out` (a copy of this template's bytes) and fixes both
    /// checksums. `out` must be exactly [`FrameTemplate::len`] bytes long.
    pub fn patch_into(&self, out: &mut [u8], header: &Header, ip_id: u16) -> Result<(), WireError> {
        if out.len() != self.frame.len() {
            return Err(WireError::BufferTooSmall { len: out.len() });
        }
        patch_frame(self.udp_base_sum, out, header, ip_id)
    }

    /// Patches the template's own bytes (see [`FrameTemplate::patch_into`]).
    pub fn patch(&mut self, header: &Header, ip_id: u16) -> Result<(), WireError> {
        patch_frame(self.udp_base_sum, &mut self.frame, header, ip_id)
    }
}

/// Writes the header and IP id into a frame and recomputes the IPv4 and UDP checksums.
fn patch_frame(
    udp_base_sum: u64,
    out: &mut [u8],
    header: &Header,
    ip_id: u16,
) -> Result<(), WireError> {
    if out.len() < PAYLOAD_OFFSET + HEADER_LEN {
        return Err(WireError::BufferTooSmall { len: out.len() });
    }
    header.encode(&mut out[PAYLOAD_OFFSET..])?;
    out[IP_ID_OFFSET..IP_ID_OFFSET + 2].copy_from_slice(&ip_id.to_be_bytes());
    out[IP_CSUM_OFFSET..IP_CSUM_OFFSET + 2].fill(0);
    let ip_csum = fold_checksum(sum_words(0, &out[IP_OFFSET..IP_OFFSET + IPV4_LEN]));
    out[IP_CSUM_OFFSET..IP_CSUM_OFFSET + 2].copy_from_slice(&ip_csum.to_be_bytes());
    let acc = sum_words(
        udp_base_sum,
        &out[PAYLOAD_OFFSET..PAYLOAD_OFFSET + HEADER_LEN],
    );
    // 0 means "no checksum" in UDP over IPv4; a computed 0 is sent as 0xffff.
    let udp_csum = match fold_checksum(acc) {
        0 => 0xffff,
        c => c,
    };
    out[UDP_CSUM_OFFSET..UDP_CSUM_OFFSET + 2].copy_from_slice(&udp_csum.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 1071 checksum written independently: byte pairs summed in u32, folded at the end.
    fn reference_checksum(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        let mut i = 0;
        while i + 1 < data.len() {
            sum += (u32::from(data[i]) << 8) | u32::from(data[i + 1]);
            i += 2;
        }
        if i < data.len() {
            sum += u32::from(data[i]) << 8;
        }
        while sum >> 16 != 0 {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn spec() -> FrameSpec {
        FrameSpec {
            src_mac: [0x02, 0x11, 0x22, 0x33, 0x44, 0x55],
            src_ip: Ipv4Addr::new(198, 18, 0, 1),
            group: Ipv4Addr::new(239, 129, 2, 3),
            src_port: 40000,
            dst_port: 5000,
            ttl: 4,
        }
    }

    fn verify(frame: &[u8]) {
        let ip = &frame[ETH_LEN..ETH_LEN + IPV4_LEN];
        assert_eq!(
            reference_checksum(ip),
            0,
            "IPv4 header checksum must verify to 0"
        );
        let udp = &frame[UDP_OFFSET..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&ip[12..20]);
        pseudo.push(0);
        pseudo.push(17);
        pseudo.extend_from_slice(&(udp.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(udp);
        assert_eq!(
            reference_checksum(&pseudo),
            0,
            "UDP checksum must verify to 0"
        );
    }

    #[test]
    fn mac_uses_low_23_bits() {
        assert_eq!(
            multicast_mac(Ipv4Addr::new(239, 129, 2, 3)),
            [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]
        );
    }

    #[test]
    fn frame_fields_and_checksums() {
        for size in [64usize, 65, 1000, 1473, 8972] {
            let payload: Vec<u8> = (0..size).map(|i| (i * 31 + 7) as u8).collect();
            let mut template = FrameTemplate::new(&spec(), &payload).unwrap();
            for (seq, id) in [
                (0u64, 0u16),
                (1, 1),
                (u64::MAX, 0xffff),
                (123_456_789, 4242),
            ] {
                let header = Header {
                    stream: 9,
                    seq,
                    send_ns: seq.wrapping_mul(977),
                };
                template.patch(&header, id).unwrap();
                let frame = template.bytes();
                assert_eq!(frame.len(), PAYLOAD_OFFSET + size);
                assert_eq!(&frame[0..6], &[0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]);
                assert_eq!(&frame[12..14], &[0x08, 0x00]);
                assert_eq!(frame[ETH_LEN + 8], 4, "TTL");
                assert_eq!(Header::decode(&frame[PAYLOAD_OFFSET..]).unwrap(), header);
                assert_eq!(
                    &frame[PAYLOAD_OFFSET + HEADER_LEN..],
                    &payload[HEADER_LEN..]
                );
                verify(frame);
            }
        }
    }

    #[test]
    fn patch_into_copy_matches() {
        let payload = vec![0xabu8; 100];
        let mut template = FrameTemplate::new(&spec(), &payload).unwrap();
        let header = Header {
            stream: 1,
            seq: 5,
            send_ns: 77,
        };
        let mut copy = template.bytes().to_vec();
        template.patch_into(&mut copy, &header, 5).unwrap();
        verify(&copy);
        template.patch(&header, 5).unwrap();
        assert_eq!(copy, template.bytes());
        let mut wrong = vec![0u8; 10];
        assert!(template.patch_into(&mut wrong, &header, 5).is_err());
    }
}
