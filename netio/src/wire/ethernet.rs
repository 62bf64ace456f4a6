//! Ethernet II frames, with up to two 802.1Q / 802.1ad VLAN tags in front of the EtherType.

use super::ParseError;
use std::net::Ipv4Addr;

/// Byte ranges of the untagged Ethernet header.
pub mod field {
    use std::ops::{Range, RangeFrom};
    pub const DESTINATION: Range<usize> = 0..6;
    pub const SOURCE: Range<usize> = 6..12;
    /// The EtherType, or the TPID of the first VLAN tag.
    pub const ETHERTYPE: Range<usize> = 12..14;
    pub const PAYLOAD: RangeFrom<usize> = 14..;
}

/// Byte ranges of one VLAN tag, relative to the tag's TPID (the outer EtherType field).
pub mod vlan_field {
    use std::ops::Range;
    /// Tag protocol identifier: 0x8100 (802.1Q) or 0x88a8 (802.1ad).
    pub const TPID: Range<usize> = 0..2;
    /// Priority, drop-eligible bit, VLAN id.
    pub const TCI: Range<usize> = 2..4;
}

/// Length of the untagged Ethernet header.
pub const HEADER_LEN: usize = field::PAYLOAD.start;
/// Length one VLAN tag adds to the header.
pub const VLAN_TAG_LEN: usize = 4;
/// VLAN tags skipped before the EtherType (an 802.1ad outer and an 802.1Q inner tag).
pub const MAX_VLAN_TAGS: usize = 2;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// 802.1Q VLAN tag.
pub const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad (QinQ) service VLAN tag.
pub const ETHERTYPE_QINQ: u16 = 0x88a8;

/// The Ethernet multicast MAC address of an IPv4 group: 01:00:5e + the low 23 bits of the group
/// (RFC 1112).
#[inline]
pub fn multicast_mac(group: Ipv4Addr) -> [u8; 6] {
    let o = group.octets();
    [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
}

/// Where the network layer starts in a frame once its VLAN tags are skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkHeader {
    /// The EtherType after the tags.
    pub ethertype: u16,
    /// VLAN tags skipped (0 to [`MAX_VLAN_TAGS`]).
    pub vlan_tags: usize,
    /// Header length including the tags: the offset of the network-layer packet.
    pub len: usize,
}

/// A zero-copy view of an Ethernet frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

#[inline]
fn be16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*bytes.get(at)?, *bytes.get(at + 1)?]))
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// A view without any check; accessors panic if the buffer is shorter than [`HEADER_LEN`].
    #[inline]
    pub fn new_unchecked(buffer: T) -> EthernetFrame<T> {
        EthernetFrame { buffer }
    }

    /// A view of a buffer that holds at least the untagged header ([`ParseError::Truncated`]
    /// otherwise); no accessor of the returned view panics.
    #[inline]
    pub fn new_checked(buffer: T) -> Result<EthernetFrame<T>, ParseError> {
        if buffer.as_ref().len() < HEADER_LEN {
            return Err(ParseError::Truncated);
        }
        Ok(EthernetFrame { buffer })
    }

    #[inline]
    pub fn into_inner(self) -> T {
        self.buffer
    }

    #[inline]
    pub fn destination(&self) -> [u8; 6] {
        let mut mac = [0; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::DESTINATION]);
        mac
    }

    #[inline]
    pub fn source(&self) -> [u8; 6] {
        let mut mac = [0; 6];
        mac.copy_from_slice(&self.buffer.as_ref()[field::SOURCE]);
        mac
    }

    /// The outer EtherType (a VLAN TPID on a tagged frame).
    #[inline]
    pub fn ethertype(&self) -> u16 {
        let b = &self.buffer.as_ref()[field::ETHERTYPE];
        u16::from_be_bytes([b[0], b[1]])
    }

    /// Skips up to [`MAX_VLAN_TAGS`] tags, 802.1Q or 802.1ad in any order, and returns the
    /// EtherType behind them; [`ParseError::Truncated`] if the frame ends inside a tag. A third
    /// tag is not skipped: its TPID is returned as the EtherType.
    #[inline]
    pub fn link_header(&self) -> Result<LinkHeader, ParseError> {
        let frame = self.buffer.as_ref();
        let mut at = field::ETHERTYPE.start;
        let mut ethertype = self.ethertype();
        let mut vlan_tags = 0;
        while vlan_tags < MAX_VLAN_TAGS
            && (ethertype == ETHERTYPE_VLAN || ethertype == ETHERTYPE_QINQ)
        {
            at += VLAN_TAG_LEN;
            ethertype = be16(frame, at).ok_or(ParseError::Truncated)?;
            vlan_tags += 1;
        }
        Ok(LinkHeader {
            ethertype,
            vlan_tags,
            len: at + 2,
        })
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> EthernetFrame<&'a T> {
    /// Everything after the untagged header (a VLAN tag's TCI first on a tagged frame).
    #[inline]
    pub fn payload(&self) -> &'a [u8] {
        &self.buffer.as_ref()[field::PAYLOAD]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    #[inline]
    pub fn set_destination(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::DESTINATION].copy_from_slice(&mac);
    }

    #[inline]
    pub fn set_source(&mut self, mac: [u8; 6]) {
        self.buffer.as_mut()[field::SOURCE].copy_from_slice(&mac);
    }

    #[inline]
    pub fn set_ethertype(&mut self, ethertype: u16) {
        self.buffer.as_mut()[field::ETHERTYPE].copy_from_slice(&ethertype.to_be_bytes());
    }

    /// Everything after the untagged header, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tags: &[u16], ethertype: u16) -> Vec<u8> {
        let mut bytes = vec![0u8; HEADER_LEN];
        let mut eth = EthernetFrame::new_unchecked(&mut bytes[..]);
        eth.set_destination([1, 2, 3, 4, 5, 6]);
        eth.set_source([7, 8, 9, 10, 11, 12]);
        bytes.truncate(field::ETHERTYPE.start);
        for (i, tpid) in tags.iter().enumerate() {
            bytes.extend_from_slice(&tpid.to_be_bytes());
            bytes.extend_from_slice(&(100 + i as u16).to_be_bytes());
        }
        bytes.extend_from_slice(&ethertype.to_be_bytes());
        bytes.extend_from_slice(b"payload");
        bytes
    }

    #[test]
    fn accessors_read_the_named_fields() {
        let bytes = frame(&[], ETHERTYPE_IPV4);
        let eth = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(eth.destination(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(eth.source(), [7, 8, 9, 10, 11, 12]);
        assert_eq!(eth.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(eth.payload(), b"payload");
        let link = eth.link_header().unwrap();
        assert_eq!(
            (link.ethertype, link.vlan_tags, link.len),
            (ETHERTYPE_IPV4, 0, 14)
        );
    }

    #[test]
    fn one_or_two_tags_of_either_kind_are_skipped() {
        for tags in [
            &[ETHERTYPE_VLAN][..],
            &[ETHERTYPE_QINQ],
            &[ETHERTYPE_QINQ, ETHERTYPE_VLAN],
            &[ETHERTYPE_VLAN, ETHERTYPE_VLAN],
        ] {
            let bytes = frame(tags, ETHERTYPE_IPV4);
            let link = EthernetFrame::new_checked(&bytes[..])
                .unwrap()
                .link_header()
                .unwrap();
            assert_eq!(link.ethertype, ETHERTYPE_IPV4, "{tags:x?}");
            assert_eq!(link.vlan_tags, tags.len());
            assert_eq!(&bytes[link.len..], b"payload");
            let tci = &bytes[field::ETHERTYPE.start..][vlan_field::TCI];
            assert_eq!(tci, &100u16.to_be_bytes());
        }
    }

    #[test]
    fn a_third_tag_is_not_skipped() {
        let bytes = frame(
            &[ETHERTYPE_QINQ, ETHERTYPE_VLAN, ETHERTYPE_VLAN],
            ETHERTYPE_IPV4,
        );
        let link = EthernetFrame::new_checked(&bytes[..])
            .unwrap()
            .link_header()
            .unwrap();
        assert_eq!((link.ethertype, link.vlan_tags), (ETHERTYPE_VLAN, 2));
    }

    #[test]
    fn short_frames_and_cut_tags_are_truncated() {
        assert_eq!(
            EthernetFrame::new_checked(&[0u8; 13][..]),
            Err(ParseError::Truncated)
        );
        let bytes = frame(&[ETHERTYPE_VLAN], ETHERTYPE_IPV4);
        let cut = EthernetFrame::new_checked(&bytes[..17]).unwrap();
        assert_eq!(cut.link_header(), Err(ParseError::Truncated));
        let whole_tag = EthernetFrame::new_checked(&bytes[..18]).unwrap();
        assert_eq!(whole_tag.link_header().unwrap().len, 18);
    }

    #[test]
    fn multicast_mac_keeps_the_low_23_bits() {
        assert_eq!(
            multicast_mac(Ipv4Addr::new(239, 129, 2, 3)),
            [0x01, 0x00, 0x5e, 0x01, 0x02, 0x03]
        );
        assert_eq!(
            multicast_mac(Ipv4Addr::new(224, 0, 0, 1)),
            [0x01, 0x00, 0x5e, 0x00, 0x00, 0x01]
        );
    }
}
