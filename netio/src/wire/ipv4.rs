//! IPv4 packets (RFC 791).

use super::{ParseError, checksum};
use std::net::Ipv4Addr;

/// Byte ranges of the IPv4 header (options, if any, follow [`field::DESTINATION`]).
pub mod field {
    use std::ops::Range;
    /// Version (high nibble) and header length in 32-bit words (IHL, low nibble).
    pub const VERSION_IHL: usize = 0;
    /// DSCP and ECN, formerly the type of service.
    pub const TOS: usize = 1;
    pub const TOTAL_LEN: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    /// Flags (reserved, DF, MF) and the fragment offset.
    pub const FLAGS_FRAGMENT: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SOURCE: Range<usize> = 12..16;
    pub const DESTINATION: Range<usize> = 16..20;
}

/// Length of an IPv4 header without options.
pub const HEADER_LEN: usize = field::DESTINATION.end;
/// The IP protocol number of UDP.
pub const PROTOCOL_UDP: u8 = 17;
/// Don't-fragment flag in [`field::FLAGS_FRAGMENT`].
pub const FLAG_DONT_FRAGMENT: u16 = 0x4000;
/// More-fragments flag in [`field::FLAGS_FRAGMENT`].
pub const FLAG_MORE_FRAGMENTS: u16 = 0x2000;
/// Fragment offset bits of [`field::FLAGS_FRAGMENT`].
pub const FRAGMENT_OFFSET_MASK: u16 = 0x1fff;

/// A zero-copy view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view without any check; accessors panic if the buffer is shorter than [`HEADER_LEN`]
    /// and the payload accessors if it is shorter than the total length.
    #[inline]
    pub fn new_unchecked(buffer: T) -> Ipv4Packet<T> {
        Ipv4Packet { buffer }
    }

    /// A view of a well-formed IPv4 packet; see [`Ipv4Packet::new_checked_with_payload`].
    #[inline]
    pub fn new_checked(buffer: T) -> Result<Ipv4Packet<T>, ParseError> {
        Self::new_checked_with_payload(buffer, 0)
    }

    /// A view of an IPv4 packet whose payload holds at least `min_payload` bytes (the
    /// transport header the caller will read). No accessor of the returned view panics. The
    /// checks, in this order (the first failing one is returned):
    /// 1. the buffer is empty: [`ParseError::Truncated`];
    /// 2. the version is not 4: [`ParseError::NotIpv4`];
    /// 3. the buffer is shorter than [`HEADER_LEN`]: [`ParseError::Truncated`];
    /// 4. the header length (IHL) is below [`HEADER_LEN`]: [`ParseError::BadHeaderLength`];
    /// 5. the total length is below the header length plus `min_payload`:
    ///    [`ParseError::BadHeaderLength`];
    /// 6. the buffer is shorter than the total length: [`ParseError::Truncated`].
    ///
    /// Bytes after the total length (Ethernet padding) are ignored.
    #[inline]
    pub fn new_checked_with_payload(
        buffer: T,
        min_payload: usize,
    ) -> Result<Ipv4Packet<T>, ParseError> {
        let bytes = buffer.as_ref();
        let first = *bytes.first().ok_or(ParseError::Truncated)?;
        if first >> 4 != 4 {
            return Err(ParseError::NotIpv4);
        }
        if bytes.len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        let packet = Ipv4Packet { buffer };
        let header_len = packet.header_len();
        if header_len < HEADER_LEN {
            return Err(ParseError::BadHeaderLength);
        }
        let total_len = usize::from(packet.total_len());
        if total_len < header_len + min_payload {
            return Err(ParseError::BadHeaderLength);
        }
        if packet.buffer.as_ref().len() < total_len {
            return Err(ParseError::Truncated);
        }
        Ok(packet)
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VERSION_IHL] >> 4
    }

    /// Header length in bytes (IHL times 4).
    #[inline]
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VERSION_IHL] & 0x0f) * 4
    }

    #[inline]
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Header plus payload, in bytes.
    #[inline]
    pub fn total_len(&self) -> u16 {
        self.read_u16(field::TOTAL_LEN.start)
    }

    #[inline]
    pub fn ident(&self) -> u16 {
        self.read_u16(field::IDENT.start)
    }

    #[inline]
    pub fn flags_fragment(&self) -> u16 {
        self.read_u16(field::FLAGS_FRAGMENT.start)
    }

    #[inline]
    pub fn dont_fragment(&self) -> bool {
        self.flags_fragment() & FLAG_DONT_FRAGMENT != 0
    }

    /// True for any fragment of a fragmented datagram: more-fragments set or a non-zero offset.
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.flags_fragment() & (FLAG_MORE_FRAGMENTS | FRAGMENT_OFFSET_MASK) != 0
    }

    #[inline]
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    #[inline]
    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    #[inline]
    pub fn checksum(&self) -> u16 {
        self.read_u16(field::CHECKSUM.start)
    }

    #[inline]
    pub fn source(&self) -> Ipv4Addr {
        self.read_addr(field::SOURCE.start)
    }

    #[inline]
    pub fn destination(&self) -> Ipv4Addr {
        self.read_addr(field::DESTINATION.start)
    }

    /// True if the header checksum verifies (the header, checksum included, sums to 0xffff).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::finish(u64::from(checksum::sum(
            &self.buffer.as_ref()[..self.header_len()],
        ))) == 0
    }

    #[inline]
    fn read_u16(&self, at: usize) -> u16 {
        let b = self.buffer.as_ref();
        u16::from_be_bytes([b[at], b[at + 1]])
    }

    #[inline]
    fn read_addr(&self, at: usize) -> Ipv4Addr {
        let b = self.buffer.as_ref();
        Ipv4Addr::new(b[at], b[at + 1], b[at + 2], b[at + 3])
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload: the bytes from the end of the header to the total length.
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        let bytes: &'a [u8] = self.buffer.as_ref();
        &bytes[self.header_len()..usize::from(self.total_len())]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length `header_len` (bytes, a multiple of 4).
    #[inline]
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VERSION_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    #[inline]
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }

    #[inline]
    pub fn set_total_len(&mut self, len: u16) {
        self.buffer.as_mut()[field::TOTAL_LEN].copy_from_slice(&len.to_be_bytes());
    }

    #[inline]
    pub fn set_ident(&mut self, ident: u16) {
        self.buffer.as_mut()[field::IDENT].copy_from_slice(&ident.to_be_bytes());
    }

    #[inline]
    pub fn set_flags_fragment(&mut self, flags_fragment: u16) {
        self.buffer.as_mut()[field::FLAGS_FRAGMENT].copy_from_slice(&flags_fragment.to_be_bytes());
    }

    #[inline]
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    #[inline]
    pub fn set_protocol(&mut self, protocol: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol;
    }

    #[inline]
    pub fn set_checksum(&mut self, checksum: u16) {
        self.buffer.as_mut()[field::CHECKSUM].copy_from_slice(&checksum.to_be_bytes());
    }

    #[inline]
    pub fn set_source(&mut self, address: Ipv4Addr) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&address.octets());
    }

    #[inline]
    pub fn set_destination(&mut self, address: Ipv4Addr) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&address.octets());
    }

    /// Computes the header checksum over the header as it is now and writes it.
    #[inline]
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let sum = checksum::sum(&self.buffer.as_ref()[..header_len]);
        self.set_checksum(checksum::finish(u64::from(sum)));
    }

    /// The payload, writable (from the end of the header to the total length).
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let range = self.header_len()..usize::from(self.total_len());
        &mut self.buffer.as_mut()[range]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(payload: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN + payload.len()];
        let mut ip = Ipv4Packet::new_unchecked(&mut bytes[..]);
        ip.set_version_and_header_len(HEADER_LEN);
        ip.set_tos(0xb8);
        ip.set_total_len((HEADER_LEN + payload.len()) as u16);
        ip.set_ident(0x1234);
        ip.set_flags_fragment(FLAG_DONT_FRAGMENT);
        ip.set_ttl(7);
        ip.set_protocol(PROTOCOL_UDP);
        ip.set_source(Ipv4Addr::new(198, 18, 0, 1));
        ip.set_destination(Ipv4Addr::new(239, 1, 0, 1));
        ip.payload_mut().copy_from_slice(payload);
        ip.fill_checksum();
        bytes
    }

    #[test]
    fn setters_and_accessors_agree() {
        let bytes = packet(&[9; 12]);
        let ip = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(ip.version(), 4);
        assert_eq!(ip.header_len(), 20);
        assert_eq!(ip.tos(), 0xb8);
        assert_eq!(ip.total_len(), 32);
        assert_eq!(ip.ident(), 0x1234);
        assert!(ip.dont_fragment());
        assert!(!ip.is_fragment());
        assert_eq!(ip.ttl(), 7);
        assert_eq!(ip.protocol(), PROTOCOL_UDP);
        assert_eq!(ip.source(), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(ip.destination(), Ipv4Addr::new(239, 1, 0, 1));
        assert_eq!(ip.payload(), &[9; 12]);
        assert!(ip.verify_checksum());
        assert_eq!(
            crate::wire::checksum::tests::reference_checksum(&bytes[..HEADER_LEN]),
            0
        );
    }

    #[test]
    fn fragments_are_recognised() {
        for flags in [FLAG_MORE_FRAGMENTS, 1, FRAGMENT_OFFSET_MASK, 0x3fff] {
            let mut bytes = packet(&[0; 8]);
            Ipv4Packet::new_unchecked(&mut bytes[..]).set_flags_fragment(flags);
            assert!(
                Ipv4Packet::new_unchecked(&bytes[..]).is_fragment(),
                "{flags:#x}"
            );
        }
    }

    #[test]
    fn checked_constructor_reports_in_order() {
        let good = packet(&[0; 8]);
        let check = |bytes: &[u8]| Ipv4Packet::new_checked_with_payload(bytes, 8).map(|_| ());
        assert_eq!(check(&[]), Err(ParseError::Truncated));
        assert_eq!(check(&[0x60, 0, 0]), Err(ParseError::NotIpv4));
        assert_eq!(check(&good[..19]), Err(ParseError::Truncated));
        let mut ihl = good.clone();
        ihl[0] = 0x44;
        assert_eq!(check(&ihl), Err(ParseError::BadHeaderLength));
        let mut short_total = good.clone();
        short_total[field::TOTAL_LEN].copy_from_slice(&27u16.to_be_bytes());
        assert_eq!(check(&short_total), Err(ParseError::BadHeaderLength));
        // A total length too small for the payload wins over a buffer too short for it.
        assert_eq!(check(&short_total[..24]), Err(ParseError::BadHeaderLength));
        assert_eq!(check(&good[..27]), Err(ParseError::Truncated));
        assert_eq!(check(&good), Ok(()));
        let mut long_ihl = good.clone();
        long_ihl[0] = 0x4f; // 60-byte header in a 28-byte packet
        assert_eq!(check(&long_ihl), Err(ParseError::BadHeaderLength));
    }
}
