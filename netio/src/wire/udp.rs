//! UDP datagrams (RFC 768).

use super::{ParseError, checksum, ipv4};
use std::net::Ipv4Addr;

/// Byte ranges of the UDP header.
pub mod field {
    use std::ops::Range;
    pub const SOURCE_PORT: Range<usize> = 0..2;
    pub const DESTINATION_PORT: Range<usize> = 2..4;
    /// Header plus payload, in bytes.
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

/// Length of the UDP header.
pub const HEADER_LEN: usize = field::CHECKSUM.end;

/// A zero-copy view of a UDP datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// A view without any check; accessors panic if the buffer is shorter than [`HEADER_LEN`]
    /// and the payload accessors if it is shorter than the length field.
    #[inline]
    pub fn new_unchecked(buffer: T) -> UdpPacket<T> {
        UdpPacket { buffer }
    }

    /// A view of a datagram whose buffer is the IP payload (as the IP header bounds it). No
    /// accessor of the returned view panics. Errors: the buffer is shorter than the header,
    /// [`ParseError::Truncated`]; the length field is below the header length or beyond the
    /// buffer, [`ParseError::BadHeaderLength`] (the UDP header then contradicts the IP header,
    /// which is not a truncation).
    #[inline]
    pub fn new_checked(buffer: T) -> Result<UdpPacket<T>, ParseError> {
        let len = buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let packet = UdpPacket { buffer };
        let stated = usize::from(packet.len());
        if stated < HEADER_LEN || stated > len {
            return Err(ParseError::BadHeaderLength);
        }
        Ok(packet)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn source_port(&self) -> u16 {
        self.read_u16(field::SOURCE_PORT.start)
    }

    #[inline]
    pub fn destination_port(&self) -> u16 {
        self.read_u16(field::DESTINATION_PORT.start)
    }

    /// The length field: header plus payload, in bytes.
    #[allow(clippy::len_without_is_empty)]
    #[inline]
    pub fn len(&self) -> u16 {
        self.read_u16(field::LENGTH.start)
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    /// True if the checksum verifies against the IPv4 pseudo header of `source` and
    /// `destination`, or is 0 (not computed).
    pub fn verify_checksum(&self, source: Ipv4Addr, destination: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = &self.buffer.as_ref()[..usize::from(self.len())];
        let pseudo =
            checksum::pseudo_header_sum(source, destination, ipv4::PROTOCOL_UDP, self.len());
        checksum::finish(pseudo + u64::from(checksum::sum(datagram))) == 0
    }

    #[inline]
    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> UdpPacket<&'a T> {
    /// The payload: from the end of the header to the length field.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let bytes: &'a [u8] = self.buffer.as_ref();
        &bytes[HEADER_LEN..usize::from(self.len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    #[inline]
    pub fn set_source_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::SOURCE_PORT].copy_from_slice(&port.to_be_bytes());
    }

    #[inline]
    pub fn set_destination_port(&mut self, port: u16) {
        self.buffer.as_mut()[field::DESTINATION_PORT].copy_from_slice(&port.to_be_bytes());
    }

    #[inline]
    pub fn set_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }

    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN];
        let mut udp = UdpPacket::new_unchecked(&mut bytes[..]);
        udp.set_source_port(40000);
        udp.set_destination_port(5000);
        udp.set_len((HEADER_LEN + payload.len()) as u16);
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn setters_and_accessors_agree() {
        let bytes = datagram(b"abc");
        let udp = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(udp.source_port(), 40000);
        assert_eq!(udp.destination_port(), 5000);
        assert_eq!(udp.len(), 11);
        assert_eq!(udp.payload(), b"abc");
    }

    #[test]
    fn checksum_verifies_against_the_pseudo_header() {
        let (s, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(239, 1, 0, 1));
        let mut bytes = datagram(b"hello");
        assert!(
            UdpPacket::new_checked(&bytes[..])
                .unwrap()
                .verify_checksum(s, d),
            "0 = none"
        );
        let pseudo = checksum::pseudo_header_sum(s, d, ipv4::PROTOCOL_UDP, bytes.len() as u16);
        let sum = checksum::finish_udp(pseudo + u64::from(checksum::sum(&bytes)));
        UdpPacket::new_unchecked(&mut bytes[..]).set_checksum(sum);
        let udp = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert!(udp.verify_checksum(s, d));
        assert!(!udp.verify_checksum(s, Ipv4Addr::new(239, 1, 0, 2)));
    }

    #[test]
    fn inconsistent_lengths_are_rejected() {
        let good = datagram(b"abcd");
        assert_eq!(
            UdpPacket::new_checked(&good[..7]),
            Err(ParseError::Truncated)
        );
        let mut tiny = good.clone();
        tiny[field::LENGTH].copy_from_slice(&4u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&tiny[..]),
            Err(ParseError::BadHeaderLength)
        );
        let mut long = good.clone();
        long[field::LENGTH].copy_from_slice(&13u16.to_be_bytes());
        assert_eq!(
            UdpPacket::new_checked(&long[..]),
            Err(ParseError::BadHeaderLength)
        );
        // Bytes after the stated length are not payload.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 3]);
        assert_eq!(
            UdpPacket::new_checked(&padded[..]).unwrap().payload(),
            b"abcd"
        );
    }
}
