//! Ingress validation: the per-frame decisions of a worker before any output is built, as
//! plain functions (the worker inlines them into `handle_frame`; the frame fuzzer in
//! `relay/tests/fuzz_frames.rs` drives them directly).
//!
//! 1. [`classify`]: parse the frame ([`netio::wire::parse_frame`]: lengths, IPv4 header
//!    checksum, fragments, UDP) and find its VLAN id.
//! 2. [`route`]: look the flow up in the rule table and apply the TTL policy.
//!
//! Every refusal is a [`DropReason`].

use crate::drop_reason::DropReason;
use crate::table::{CompiledRule, RuleTable};
use crate::ttl::TtlPolicy;
use netio::packet_socket::Received;
use netio::wire::{self, UdpDatagram};

/// The parse phase: the datagram of a received frame and its VLAN id (0 untagged), or why it is
/// dropped. A tag the kernel stripped (`meta.vlan_tci`) and tags left in the frame count alike;
/// a frame with two tags in all is dropped ([`DropReason::StackedVlan`]), since a rule names at
/// most one VLAN. A VLAN id of 0 (a priority tag) counts as untagged.
#[inline(always)]
pub fn classify<'a>(
    frame: &'a [u8],
    meta: &Received,
) -> Result<(UdpDatagram<'a>, u16), DropReason> {
    let datagram = wire::parse_frame(frame)?;
    let stripped = meta.vlan_tci.map(|tci| tci & wire::VLAN_ID_MASK);
    let vlan = match (stripped, datagram.vlan_tags) {
        (None, 0) => 0,
        (Some(vid), 0) => vid,
        (None, 1) => datagram.vlan_id,
        _ => return Err(DropReason::StackedVlan),
    };
    Ok((datagram, vlan))
}

/// The lookup phase: the rule of a parsed datagram and the TTL its copies leave with, `None`
/// if the rule is the tcx program's ([`CompiledRule::in_kernel`]: not the workers' to forward
/// or count), or why it is dropped. The TTL is checked after the lookup, so `ttl_expired`
/// counts only packets a rule would have forwarded.
#[inline(always)]
pub fn route<'t>(
    table: &'t RuleTable,
    ttl: TtlPolicy,
    ifindex: u32,
    vlan: u16,
    datagram: &UdpDatagram<'_>,
) -> Result<Option<(&'t CompiledRule, u8)>, DropReason> {
    let rule = table
        .lookup(
            ifindex,
            vlan,
            datagram.destination,
            datagram.destination_port,
            datagram.source,
        )
        .ok_or(DropReason::NoRule)?;
    if rule.in_kernel {
        return Ok(None);
    }
    let ttl = ttl.forwarded(datagram.ttl).ok_or(DropReason::TtlExpired)?;
    Ok(Some((rule, ttl)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{CompiledRule, FlowKey, RuleTable};
    use crate::ttl::TtlMode;
    use netio::wire::{FrameHeader, PAYLOAD_OFFSET, checksum, write_frame};
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    const IFINDEX: u32 = 3;
    const GROUP: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);

    fn frame(ttl: u8) -> Vec<u8> {
        let header = FrameHeader {
            source_mac: [2, 0, 0, 0, 0, 1],
            source: Ipv4Addr::new(198, 18, 0, 1),
            group: GROUP,
            source_port: 40000,
            destination_port: 5000,
            ttl,
            tos: 0,
            ident: 0,
        };
        let mut out = vec![0u8; PAYLOAD_OFFSET + 4];
        write_frame(&mut out, &header, b"data", checksum::sum(b"data")).unwrap();
        out
    }

    fn tag(frame: &[u8], tpid: u16, tci: u16) -> Vec<u8> {
        let mut out = frame[..12].to_vec();
        out.extend_from_slice(&tpid.to_be_bytes());
        out.extend_from_slice(&tci.to_be_bytes());
        out.extend_from_slice(&frame[12..]);
        out
    }

    fn meta(vlan_tci: Option<u16>) -> Received {
        Received {
            ifindex: IFINDEX,
            pkttype: 2,
            truncated: false,
            len: 0,
            vlan_tci,
        }
    }

    /// Rule 1: untagged; rule 2: VLAN 100 (same interface, group and port); both the workers'.
    fn table() -> RuleTable {
        table_with(false)
    }

    /// [`table`], rule 1 the tc program's if `in_kernel`.
    fn table_with(in_kernel: bool) -> RuleTable {
        let key = |vlan| FlowKey {
            ifindex: IFINDEX,
            vlan,
            group: GROUP,
            port: 5000,
            source: Ipv4Addr::UNSPECIFIED,
        };
        let rule = |id| {
            Arc::new(CompiledRule {
                id,
                stats: Arc::default(),
                outputs: Box::new([]),
                in_kernel: in_kernel && id == 1,
            })
        };
        RuleTable::new([(key(0), rule(1)), (key(100), rule(2))])
    }

    fn decide(frame: &[u8], meta: &Received, table: &RuleTable) -> Result<(u64, u8), DropReason> {
        let policy = TtlPolicy::new(8, TtlMode::Decrement);
        let (datagram, vlan) = classify(frame, meta)?;
        match route(table, policy, meta.ifindex, vlan, &datagram)? {
            Some((rule, ttl)) => Ok((rule.id, ttl)),
            None => Ok((0, 0)), // the tc program's
        }
    }

    #[test]
    fn tagged_frames_match_only_their_vlan_rule() {
        let table = table();
        let plain = frame(64);
        assert_eq!(decide(&plain, &meta(None), &table), Ok((1, 8)));
        // The tag left in the frame, or stripped by the kernel into the metadata: the same.
        let in_frame = tag(&plain, 0x8100, 0x2064);
        assert_eq!(decide(&in_frame, &meta(None), &table), Ok((2, 8)));
        assert_eq!(decide(&plain, &meta(Some(0x2064)), &table), Ok((2, 8)));
        // Another VLAN matches neither rule: never relayed as if untagged.
        assert_eq!(
            decide(&plain, &meta(Some(7)), &table),
            Err(DropReason::NoRule)
        );
        let other = tag(&plain, 0x8100, 7);
        assert_eq!(decide(&other, &meta(None), &table), Err(DropReason::NoRule));
        // A priority tag (VLAN id 0) is untagged.
        assert_eq!(decide(&plain, &meta(Some(0xe000)), &table), Ok((1, 8)));
    }

    #[test]
    fn the_tc_programs_rules_are_left_alone_whatever_their_ttl() {
        let table = table_with(true);
        for ttl in [64, 1] {
            assert_eq!(
                decide(&frame(ttl), &meta(None), &table),
                Ok((0, 0)),
                "{ttl}"
            );
        }
        // The VLAN rule beside it is still the workers'.
        assert_eq!(decide(&frame(64), &meta(Some(100)), &table), Ok((2, 8)));
    }

    #[test]
    fn two_tags_are_dropped_as_stacked() {
        let table = table();
        let plain = frame(64);
        let qinq = tag(&tag(&plain, 0x8100, 100), 0x88a8, 100);
        assert_eq!(
            decide(&qinq, &meta(None), &table),
            Err(DropReason::StackedVlan)
        );
        let inner_left = tag(&plain, 0x8100, 100);
        assert_eq!(
            decide(&inner_left, &meta(Some(100)), &table),
            Err(DropReason::StackedVlan)
        );
    }

    #[test]
    fn a_bad_ip_checksum_is_dropped() {
        let mut bad = frame(64);
        bad[14 + 12] ^= 0x01; // source address
        assert_eq!(
            decide(&bad, &meta(None), &table()),
            Err(DropReason::BadIpChecksum)
        );
    }

    #[test]
    fn ttl_is_decremented_and_expires() {
        let table = table();
        assert_eq!(decide(&frame(5), &meta(None), &table), Ok((1, 4)));
        assert_eq!(decide(&frame(2), &meta(None), &table), Ok((1, 1)));
        for ttl in [0, 1] {
            assert_eq!(
                decide(&frame(ttl), &meta(None), &table),
                Err(DropReason::TtlExpired)
            );
        }
        // Without a rule the frame is no_rule, whatever its TTL.
        let empty = RuleTable::default();
        assert_eq!(
            decide(&frame(1), &meta(None), &empty),
            Err(DropReason::NoRule)
        );
    }
}
