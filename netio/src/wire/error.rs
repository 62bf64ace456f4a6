//! Why bytes are not the frame a view or the parser expects, and why a frame cannot be built.

use thiserror::Error;

/// Why bytes are not a single-frame IPv4/UDP datagram (or not the header a view expects).
///
/// Returned by the views' `new_checked` constructors and by [`super::parse_frame`]; the relay
/// counts each variant as a drop reason of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
pub enum ParseError {
    /// The EtherType (after at most two VLAN tags) is not IPv4, or the IP version is not 4.
    #[error("not an IPv4 packet")]
    NotIpv4,
    /// The IPv4 protocol is not UDP.
    #[error("not a UDP datagram")]
    NotUdp,
    /// An IPv4 fragment (more-fragments flag or a non-zero fragment offset): not reassembled.
    #[error("an IPv4 fragment")]
    Fragment,
    /// The bytes end before a header or before the length the IPv4 header states.
    #[error("truncated")]
    Truncated,
    /// A length field contradicts the others (IHL below 5, IPv4 total length shorter than its
    /// header plus a UDP header, UDP length outside the IPv4 payload).
    #[error("inconsistent header length")]
    BadHeaderLength,
    /// The IPv4 header checksum does not verify (the header was corrupted on the way).
    #[error("bad IPv4 header checksum")]
    BadChecksum,
}

/// Why [`super::write_frame`] wrote nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum BuildError {
    #[error("a {needed}-byte frame does not fit the {available}-byte buffer")]
    BufferTooSmall { needed: usize, available: usize },
    #[error("a {ip_len}-byte IPv4 datagram exceeds the 65535-byte maximum")]
    DatagramTooLong { ip_len: usize },
}
