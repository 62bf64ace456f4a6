//! Ethernet / IPv4 / UDP wire formats, in the manner of smoltcp's `wire` module.
//!
//! - [`ethernet`], [`ipv4`], [`udp`]: zero-copy views over byte slices (`new_checked` refuses
//!   what would make an accessor panic; `new_unchecked` trusts the caller), each with its header
//!   fields as named byte ranges in a `field` module and its header constants.
//! - [`checksum`]: the one Internet checksum, split so parts are summed once and reused.
//! - [`parse_frame`] / [`parse_ipv4`]: a received frame (up to two VLAN tags) down to its UDP
//!   payload (with its TTL and outer VLAN id), or the [`ParseError`] that says why not (the
//!   IPv4 header checksum is verified); never allocates, never panics.
//! - [`write_frame`] and friends: the one builder of Ethernet + IPv4 + UDP frames (the relay's
//!   egress frames, the load generator's templates). Its module docs state what every header
//!   field of a built frame holds.

pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod udp;

mod builder;
mod datagram;
mod error;

pub use builder::{
    FrameHeader, IPV4_OFFSET, MAX_PAYLOAD, PAYLOAD_OFFSET, UDP_OFFSET, patch_ipv4_ident,
    patch_udp_checksum, write_frame, write_headers,
};
pub use datagram::{UdpDatagram, VLAN_ID_MASK, parse_frame, parse_ipv4};
pub use error::{BuildError, ParseError};
pub use ethernet::{EthernetFrame, multicast_mac};
pub use ipv4::Ipv4Packet;
pub use udp::UdpPacket;
