//! Why the relay did not forward a frame: one counter per reason.
//!
//! The reasons are relay policy (what the relay counts and reports in `stats`), so they live
//! here; six of them are the wire verdicts of [`netio::wire::ParseError`] (the parse never
//! allocates or panics; every frame it refuses lands in exactly one of them), the others are
//! the relay's own (no rule, a failed send, a full egress queue, an expired TTL, a frame with
//! two VLAN tags).

use netio::wire::ParseError;

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
    /// Arrived with TTL 0 or 1 (`--ttl-mode decrement`).
    TtlExpired,
    /// The IPv4 header checksum does not verify.
    BadIpChecksum,
    /// Two VLAN tags (802.1ad QinQ): rules name at most one VLAN.
    StackedVlan,
}

impl DropReason {
    pub const COUNT: usize = 11;
    pub const ALL: [DropReason; Self::COUNT] = [
        DropReason::NotIpv4,
        DropReason::NotUdp,
        DropReason::Fragment,
        DropReason::Truncated,
        DropReason::BadHeaderLength,
        DropReason::NoRule,
        DropReason::EgressFailure,
        DropReason::QueueFull,
        DropReason::TtlExpired,
        DropReason::BadIpChecksum,
        DropReason::StackedVlan,
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
            DropReason::TtlExpired => "ttl_expired",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::StackedVlan => "stacked_vlan",
        }
    }
}

impl From<ParseError> for DropReason {
    #[inline]
    fn from(error: ParseError) -> DropReason {
        match error {
            ParseError::NotIpv4 => DropReason::NotIpv4,
            ParseError::NotUdp => DropReason::NotUdp,
            ParseError::Fragment => DropReason::Fragment,
            ParseError::Truncated => DropReason::Truncated,
            ParseError::BadHeaderLength => DropReason::BadHeaderLength,
            ParseError::BadChecksum => DropReason::BadIpChecksum,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_indexed() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        let mut names: Vec<_> = DropReason::ALL.iter().map(|r| r.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), DropReason::COUNT);
    }

    #[test]
    fn every_parse_error_has_its_own_reason() {
        let errors = [
            ParseError::NotIpv4,
            ParseError::NotUdp,
            ParseError::Fragment,
            ParseError::Truncated,
            ParseError::BadHeaderLength,
            ParseError::BadChecksum,
        ];
        let mut reasons: Vec<usize> = errors
            .iter()
            .map(|&e| DropReason::from(e) as usize)
            .collect();
        reasons.sort();
        reasons.dedup();
        assert_eq!(reasons.len(), errors.len());
        assert_eq!(DropReason::from(ParseError::Fragment).name(), "ip_fragment");
    }
}
