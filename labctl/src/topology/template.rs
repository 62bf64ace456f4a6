//! The topology templates and their text form (`direct`, `chain`, `snooping`, `fanout K`).

use std::fmt;
use std::str::FromStr;

/// Largest fan-out: K egress links from the relay to the sink.
pub const MAX_FANOUT: u8 = 64;

/// The shapes of lab topologies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum Template {
    /// `gen -- sink` on one veth: the machine's ceiling, no relay.
    Direct,
    /// `gen -- relay -- sink`: the relay namespace has an ingress and an egress link.
    Chain,
    /// `gen -- sw -- relay -- sink`: `sw` is a Linux bridge that snoops IGMP, is the querier,
    /// and does not flood multicast to the relay's port, so the relay gets a group only after
    /// joining it.
    Snooping,
    /// `gen -- relay =K= sink`: K egress links from the relay namespace to ONE sink namespace
    /// (K sink-side interfaces), K in 1..=64.
    Fanout(u8),
}

/// Why a template string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown template {0:?}: valid templates are direct, chain, snooping, fanout K (K = 1..=64, also written fanout:K or fanout-K)"
)]
pub struct TemplateError(pub String);

impl Template {
    /// Human list of the valid forms, for help texts.
    pub const VALID: &'static str =
        "direct | chain | snooping | fanout K (K = 1..=64; also fanout:K, fanout-K)";

    /// Number of relay egress links (0 for `direct`).
    pub fn egress_links(self) -> usize {
        match self {
            Template::Direct => 0,
            Template::Chain | Template::Snooping => 1,
            Template::Fanout(k) => usize::from(k),
        }
    }
}

impl FromStr for Template {
    type Err = TemplateError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        let err = || TemplateError(text.to_string());
        match lower.as_str() {
            "direct" => return Ok(Template::Direct),
            "chain" => return Ok(Template::Chain),
            "snooping" => return Ok(Template::Snooping),
            _ => {}
        }
        let rest = lower.strip_prefix("fanout").ok_or_else(err)?;
        let count = rest
            .strip_prefix(':')
            .or_else(|| rest.strip_prefix('-'))
            .or_else(|| rest.strip_prefix(' '))
            .ok_or_else(err)?
            .trim();
        let k: u8 = count.parse().map_err(|_| err())?;
        if (1..=MAX_FANOUT).contains(&k) {
            Ok(Template::Fanout(k))
        } else {
            Err(err())
        }
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Template::Direct => f.write_str("direct"),
            Template::Chain => f.write_str("chain"),
            Template::Snooping => f.write_str("snooping"),
            Template::Fanout(k) => write!(f, "fanout:{k}"),
        }
    }
}

impl From<Template> for String {
    fn from(t: Template) -> String {
        t.to_string()
    }
}

impl TryFrom<String> for Template {
    type Error = TemplateError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!("direct".parse(), Ok(Template::Direct));
        assert_eq!("chain".parse(), Ok(Template::Chain));
        assert_eq!("Snooping".parse(), Ok(Template::Snooping));
        assert_eq!("fanout 4".parse(), Ok(Template::Fanout(4)));
        assert_eq!("fanout:10".parse(), Ok(Template::Fanout(10)));
        assert_eq!("fanout-64".parse(), Ok(Template::Fanout(64)));
        assert_eq!("fanout:1".parse(), Ok(Template::Fanout(1)));
    }

    #[test]
    fn refuses_bad_input_and_lists_valid_ones() {
        for bad in [
            "",
            "star",
            "fanout",
            "fanout:0",
            "fanout:65",
            "fanout:x",
            "fanout4",
            "fanout:-1",
        ] {
            let err = bad.parse::<Template>().unwrap_err();
            assert!(
                err.to_string().contains("direct, chain, snooping"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for t in [
            Template::Direct,
            Template::Chain,
            Template::Snooping,
            Template::Fanout(7),
        ] {
            assert_eq!(t.to_string().parse(), Ok(t));
        }
    }

    #[test]
    fn egress_counts() {
        assert_eq!(Template::Direct.egress_links(), 0);
        assert_eq!(Template::Chain.egress_links(), 1);
        assert_eq!(Template::Fanout(9).egress_links(), 9);
    }
}
