//! Per-stream frame templates for AF_PACKET sending, built with [`netio::wire`].
//!
//! A [`FrameTemplate`] is built once per stream (random payload body included) by
//! [`wire::write_frame`]; per packet only the loadgen header, the IPv4 identification (the low 16
//! bits of the sequence number) and the two checksums are patched. The UDP checksum is updated
//! incrementally: the one's-complement sum of everything but the 28-byte loadgen header is
//! computed once. The header fields of the frames (DF set, the IP id chosen by the caller, ...)
//! are documented with the builder.

use crate::wire::{HEADER_LEN, Header, WireError};
use netio::wire::{self, FrameHeader, PAYLOAD_OFFSET, checksum};
use std::net::Ipv4Addr;

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

impl FrameSpec {
    /// The builder's header of this stream's frames (TOS 0, IP id 0 until patched).
    fn frame_header(&self) -> FrameHeader {
        FrameHeader {
            source_mac: self.src_mac,
            source: self.src_ip,
            group: self.group,
            source_port: self.src_port,
            destination_port: self.dst_port,
            ttl: self.ttl,
            tos: 0,
            ident: 0,
        }
    }
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
        let header = spec.frame_header();
        let mut frame = vec![0u8; PAYLOAD_OFFSET + payload.len()];
        wire::write_frame(&mut frame, &header, payload, checksum::sum(payload))
            .map_err(|_| WireError::BufferTooSmall { len: payload.len() })?;
        // The loadgen header is 28 bytes (even), so the rest starts on a word boundary.
        let udp_base_sum =
            header.udp_header_sum(payload.len()) + u64::from(checksum::sum(&payload[HEADER_LEN..]));
        Ok(FrameTemplate {
            frame,
            udp_base_sum,
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
    let loadgen_header = &mut out[PAYLOAD_OFFSET..PAYLOAD_OFFSET + HEADER_LEN];
    header.encode(loadgen_header)?;
    let udp_sum = udp_base_sum + u64::from(checksum::sum(loadgen_header));
    let len = out.len();
    let too_small = |_| WireError::BufferTooSmall { len };
    wire::patch_ipv4_ident(out, ip_id).map_err(too_small)?;
    wire::patch_udp_checksum(out, udp_sum).map_err(too_small)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use netio::wire::ipv4::FLAG_DONT_FRAGMENT;
    use netio::wire::{IPV4_OFFSET, Ipv4Packet, UdpPacket};

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

    /// Both checksums verify (netio's views are checked against a plain RFC 1071
    /// implementation in netio's tests) and the frame parses back.
    fn verify(frame: &[u8], ip_id: u16) {
        let ip = Ipv4Packet::new_checked(&frame[IPV4_OFFSET..]).unwrap();
        assert!(ip.verify_checksum(), "IPv4 header checksum");
        assert_eq!(ip.ident(), ip_id);
        assert_eq!(ip.flags_fragment(), FLAG_DONT_FRAGMENT);
        assert_eq!(ip.ttl(), 4);
        let udp = UdpPacket::new_checked(ip.payload()).unwrap();
        assert_ne!(udp.checksum(), 0, "UDP checksum always computed");
        assert!(
            udp.verify_checksum(ip.source(), ip.destination()),
            "UDP checksum"
        );
        let datagram = wire::parse_frame(frame).unwrap();
        assert_eq!(datagram.destination, spec().group);
        assert_eq!(
            (datagram.source_port, datagram.destination_port),
            (40000, 5000)
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
                assert_eq!(Header::decode(&frame[PAYLOAD_OFFSET..]).unwrap(), header);
                assert_eq!(
                    &frame[PAYLOAD_OFFSET + HEADER_LEN..],
                    &payload[HEADER_LEN..]
                );
                verify(frame, id);
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
        verify(&copy, 5);
        template.patch(&header, 5).unwrap();
        assert_eq!(copy, template.bytes());
        let mut wrong = vec![0u8; 10];
        assert!(template.patch_into(&mut wrong, &header, 5).is_err());
    }

    #[test]
    fn payload_shorter_than_the_loadgen_header_is_refused() {
        assert!(FrameTemplate::new(&spec(), &[0; HEADER_LEN - 1]).is_err());
    }
}
