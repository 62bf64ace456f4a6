//! The Internet checksum (RFC 1071): one fast word sum, split so parts can be summed once and
//! reused.
//!
//! A checksum is built in three steps: [`sum`] the byte ranges (each as big-endian 16-bit words),
//! add the partial sums (and [`pseudo_header_sum`] for UDP) in a `u64` accumulator, then
//! [`finish`] (fold to 16 bits and complement) or [`finish_udp`]. Partial sums add up to the sum
//! of the concatenation as long as every part but the last has an even length, which is what lets
//! the relay sum a payload once per input packet and reuse it for every output, and the load
//! generator sum a template once and add only the bytes it patches per packet.

use std::net::Ipv4Addr;

/// One's-complement sum of `data` as big-endian 16-bit words (an odd last byte is padded with a
/// zero byte), folded to 32 bits and not complemented.
///
/// Eight bytes are added per step in a 64-bit accumulator with end-around carry, which is
/// equivalent to adding the four 16-bit words one by one.
#[inline]
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_be_bytes([
            chunk[0], chunk[1], chunk[2], chunk[3], chunk[4], chunk[5], chunk[6], chunk[7],
        ]);
        let (s, carry) = acc.overflowing_add(word);
        acc = s + u64::from(carry);
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for pair in &mut rest {
        acc += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    fold_to_32(acc)
}

/// Folds a 64-bit accumulator to 32 bits, keeping the one's-complement carries.
#[inline]
fn fold_to_32(mut acc: u64) -> u32 {
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc = (acc & 0xffff_ffff) + (acc >> 32);
    acc as u32
}

/// Folds an accumulator of partial sums to 16 bits and complements it: the checksum to write.
#[inline]
pub fn finish(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// [`finish`] for UDP over IPv4, where 0 means "no checksum": a computed 0 is sent as 0xffff.
#[inline]
pub fn finish_udp(acc: u64) -> u16 {
    match finish(acc) {
        0 => 0xffff,
        checksum => checksum,
    }
}

/// Sum of the IPv4 pseudo header of a transport segment: source, destination, protocol and the
/// segment's `length` (transport header plus payload).
#[inline]
pub fn pseudo_header_sum(
    source: Ipv4Addr,
    destination: Ipv4Addr,
    protocol: u8,
    length: u16,
) -> u64 {
    let words = |a: Ipv4Addr| {
        let o = a.octets();
        u64::from(u16::from_be_bytes([o[0], o[1]])) + u64::from(u16::from_be_bytes([o[2], o[3]]))
    };
    words(source) + words(destination) + u64::from(protocol) + u64::from(length)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// RFC 1071 written the plain way: byte pairs added in a u32, folded at the end.
    pub(crate) fn reference_checksum(data: &[u8]) -> u16 {
        let mut acc: u32 = 0;
        for pair in data.chunks(2) {
            let high = u32::from(pair[0]) << 8;
            acc += high | pair.get(1).map_or(0, |&low| u32::from(low));
        }
        while acc >> 16 != 0 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        !(acc as u16)
    }

    #[test]
    fn known_values() {
        // RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(u64::from(sum(&data))), !0xddf2);
        assert_eq!(finish(0), 0xffff);
        assert_eq!(finish_udp(0xffff), 0xffff, "a computed 0 is sent as 0xffff");
        assert_eq!(sum(&[]), 0);
        assert_eq!(sum(&[0xab]), 0xab00, "odd tail padded on the right");
    }

    #[test]
    fn pseudo_header_matches_its_bytes() {
        let (s, d) = (Ipv4Addr::new(198, 18, 0, 1), Ipv4Addr::new(239, 1, 2, 3));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s.octets());
        bytes.extend_from_slice(&d.octets());
        bytes.extend_from_slice(&[0, 17, 0x12, 0x34]);
        assert_eq!(
            finish(pseudo_header_sum(s, d, 17, 0x1234)),
            reference_checksum(&bytes)
        );
    }

    proptest! {
        #[test]
        fn sum_matches_the_reference(data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            prop_assert_eq!(finish(u64::from(sum(&data))), reference_checksum(&data));
        }

        #[test]
        fn split_sums_add_up(
            data in proptest::collection::vec(any::<u8>(), 0..600),
            cut in 0usize..300,
        ) {
            let cut = (cut * 2).min(data.len() & !1);
            let (head, tail) = data.split_at(cut);
            let split = u64::from(sum(head)) + u64::from(sum(tail));
            prop_assert_eq!(finish(split), reference_checksum(&data));
        }
    }
}
