//! The IPv4 TTL of forwarded packets (`--ttl`, `--ttl-mode`): router semantics by default, so a
//! forwarding loop dies out instead of amplifying.
//!
//! - `decrement` (default): a forwarded packet leaves with min(`--ttl`, arriving TTL - 1); a
//!   packet that arrives with TTL 0 or 1 is not forwarded (drop reason `ttl_expired`). Any loop,
//!   through one relay or several, ends after at most `--ttl` hops.
//! - `set`: every forwarded packet leaves with `--ttl`, whatever it arrived with (for sources
//!   that send with TTL 1 and must be re-TTLed). A loop would never die out, so in this mode the
//!   relay refuses rules whose outputs can feed its own inputs (see [`crate::rule_guard`]).

/// How the TTL of a forwarded packet is chosen (`--ttl-mode`).
///
/// The command-line and serde names are the variant names in kebab-case (`decrement`, `set`),
/// derived by [`clap::ValueEnum`] and serde alike (no list of names is written out).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum TtlMode {
    /// Router semantics: min(--ttl, arriving TTL - 1); TTL <= 1 is not forwarded.
    #[default]
    Decrement,
    /// Always --ttl (re-TTL); rules that could loop are refused.
    Set,
}

impl std::fmt::Display for TtlMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use clap::ValueEnum;
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => write!(f, "{self:?}"),
        }
    }
}

/// `--ttl` and `--ttl-mode` together: what a worker applies to every forwarded packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    /// `--ttl`: the highest TTL a forwarded packet leaves with.
    pub limit: u8,
    pub mode: TtlMode,
}

impl TtlPolicy {
    pub fn new(limit: u8, mode: TtlMode) -> TtlPolicy {
        TtlPolicy { limit, mode }
    }

    /// The TTL a packet that arrived with `arriving` leaves with, or `None` if it must not be
    /// forwarded (TTL expired, `decrement` mode only).
    #[inline(always)]
    pub fn forwarded(self, arriving: u8) -> Option<u8> {
        match self.mode {
            TtlMode::Set => Some(self.limit),
            TtlMode::Decrement if arriving <= 1 => None,
            TtlMode::Decrement => Some(self.limit.min(arriving - 1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    #[test]
    fn decrement_is_router_semantics() {
        let policy = TtlPolicy::new(8, TtlMode::Decrement);
        assert_eq!(policy.forwarded(0), None);
        assert_eq!(policy.forwarded(1), None);
        assert_eq!(policy.forwarded(2), Some(1));
        assert_eq!(policy.forwarded(5), Some(4));
        assert_eq!(policy.forwarded(9), Some(8));
        assert_eq!(policy.forwarded(255), Some(8), "capped at --ttl");
        assert_eq!(
            TtlPolicy::new(255, TtlMode::Decrement).forwarded(255),
            Some(254)
        );
    }

    #[test]
    fn a_loop_in_decrement_mode_ends_within_ttl_hops() {
        let policy = TtlPolicy::new(8, TtlMode::Decrement);
        for start in 0..=255u8 {
            let mut ttl = start;
            let mut hops = 0;
            while let Some(next) = policy.forwarded(ttl) {
                assert!(next < ttl, "the TTL must fall on every hop");
                ttl = next;
                hops += 1;
            }
            assert!(hops <= 8, "{start}: {hops} hops");
        }
    }

    #[test]
    fn set_keeps_the_fixed_ttl() {
        let policy = TtlPolicy::new(8, TtlMode::Set);
        for arriving in [0, 1, 2, 64, 255] {
            assert_eq!(policy.forwarded(arriving), Some(8));
        }
    }

    #[test]
    fn clap_and_serde_names_agree() {
        for mode in TtlMode::value_variants() {
            let name = mode.to_possible_value().unwrap();
            assert_eq!(
                serde_json::to_string(mode).unwrap(),
                format!("\"{}\"", name.get_name())
            );
            assert_eq!(mode.to_string(), name.get_name());
        }
        assert_eq!(TtlMode::default(), TtlMode::Decrement);
    }
}
