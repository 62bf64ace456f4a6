//! Forwarding rules: what a rule says, how it is written and how it is checked.
//!
//! A rule maps one input stream, `(interface, VLAN, group, port[, source])`, to one or more
//! outputs, `(interface, group, port)`. Its text form is
//! `IN_IF:GROUP:PORT[@SOURCE][ vlan=VID] -> OUT_IF:GROUP:PORT, OUT_IF:GROUP:PORT, ...`
//! and [`Rule`]'s `Display` prints exactly that canonical form, so parse and print round-trip.
//!
//! VLANs: without `vlan=` a rule matches untagged frames only (and priority-tagged ones, VLAN id
//! 0); with `vlan=VID` (1-4094) it matches frames of that one 802.1Q VLAN only. Outputs are
//! always sent untagged, so only inputs name a VLAN. (A VLAN device such as `eth0.100`
//! receives its VLAN's frames untagged: a rule on `eth0.100` needs no `vlan=`.)
//!
//! This module only checks what can be checked from the text (multicast groups outside the
//! link-local 224.0.0.0/24, non-zero ports, interface name length, VLAN ids, duplicate
//! outputs); whether an interface exists, is not a loopback output, and whether the rule could
//! loop is checked by the relay when the rule is installed ([`crate::rule_guard`]).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

/// Longest interface name Linux accepts (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Why a rule's text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("rule {0:?} has no '->': write IN_IF:GROUP:PORT[@SOURCE] -> OUT_IF:GROUP:PORT[, ...]")]
    MissingArrow(String),
    #[error("rule has no outputs after '->': add at least one OUT_IF:GROUP:PORT")]
    NoOutputs,
    #[error("endpoint {0:?} is not IF:GROUP:PORT (for example eth0:239.1.0.1:5000)")]
    BadEndpoint(String),
    #[error("interface name {0:?} must be 1-15 bytes without '/', ':', '@', ',' or spaces")]
    BadInterface(String),
    #[error("{0:?} is not an IPv4 address")]
    BadAddress(String),
    #[error("group {0} is not an IPv4 multicast address (224.0.0.0/4)")]
    NotMulticast(Ipv4Addr),
    #[error(
        "group {0} is link-local (224.0.0.0/24: IGMP, routing protocols, mDNS...), which is never \
         forwarded: use a group outside 224.0.0.0/24, e.g. in 239.0.0.0/8"
    )]
    LinkLocalGroup(Ipv4Addr),
    #[error("VLAN {0:?} must be a VLAN id 1-4094 (write vlan=VID after the input)")]
    BadVlan(String),
    #[error("output {0:?} names a VLAN: outputs are always sent untagged, only the input may")]
    VlanOnOutput(String),
    #[error("source {0} must be a unicast IPv4 address")]
    BadSource(Ipv4Addr),
    #[error("port {0:?} must be a number 1-65535")]
    BadPort(String),
    #[error("output {0} is listed twice")]
    DuplicateOutput(Endpoint),
}

/// One interface/group/port triple.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Endpoint {
    pub interface: String,
    pub group: Ipv4Addr,
    pub port: u16,
}

/// The input side of a rule; `source` makes it source-specific (IP_ADD_SOURCE_MEMBERSHIP),
/// `vlan` makes it match the frames of that 802.1Q VLAN instead of untagged frames.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Input {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<u16>,
}

/// Highest VLAN id a rule may name (4095 is reserved, 0 means "priority tag only").
pub const MAX_VLAN_ID: u16 = 4094;

/// True for the link-local block 224.0.0.0/24, which routers never forward.
pub fn is_link_local_group(group: Ipv4Addr) -> bool {
    let [a, b, c, _] = group.octets();
    (a, b, c) == (224, 0, 0)
}

/// A forwarding rule: one input, one or more outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    pub input: Input,
    pub outputs: Vec<Endpoint>,
}

fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME_LEN
        && !name
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | ':' | '@' | ',' | '>'))
}

fn parse_addr(text: &str) -> Result<Ipv4Addr, RuleError> {
    text.trim()
        .parse()
        .map_err(|_| RuleError::BadAddress(text.trim().to_string()))
}

impl FromStr for Endpoint {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let mut parts = text.rsplitn(3, ':');
        let (Some(port), Some(group), Some(interface)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(RuleError::BadEndpoint(text.to_string()));
        };
        let interface = interface.trim();
        if !valid_ifname(interface) {
            return Err(RuleError::BadInterface(interface.to_string()));
        }
        let group = parse_addr(group)?;
        if !group.is_multicast() {
            return Err(RuleError::NotMulticast(group));
        }
        if is_link_local_group(group) {
            return Err(RuleError::LinkLocalGroup(group));
        }
        let port = match port.trim().parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err(RuleError::BadPort(port.trim().to_string())),
        };
        Ok(Endpoint {
            interface: interface.to_string(),
            group,
            port,
        })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.interface, self.group, self.port)
    }
}

impl FromStr for Input {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (text, vlan) = split_vlan(text)?;
        let (endpoint, source) = match text.split_once('@') {
            Some((endpoint, source)) => {
                let source = parse_addr(source)?;
                if source.is_multicast() || source.is_unspecified() || source.is_broadcast() {
                    return Err(RuleError::BadSource(source));
                }
                (endpoint, Some(source))
            }
            None => (text, None),
        };
        Ok(Input {
            endpoint: endpoint.parse()?,
            source,
            vlan,
        })
    }
}

/// Splits a trailing ` vlan=VID` off an input (interface names hold no whitespace, so a
/// whitespace-preceded `vlan=` is never part of one).
fn split_vlan(text: &str) -> Result<(&str, Option<u16>), RuleError> {
    let Some(at) = text.rfind("vlan=") else {
        return Ok((text, None));
    };
    let head = &text[..at];
    if !head.ends_with(char::is_whitespace) {
        return Ok((text, None));
    }
    let value = text[at + "vlan=".len()..].trim();
    match value.parse::<u16>() {
        Ok(vid) if (1..=MAX_VLAN_ID).contains(&vid) => Ok((head, Some(vid))),
        _ => Err(RuleError::BadVlan(value.to_string())),
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.endpoint)?;
        if let Some(source) = self.source {
            write!(f, "@{source}")?;
        }
        if let Some(vlan) = self.vlan {
            write!(f, " vlan={vlan}")?;
        }
        Ok(())
    }
}

impl FromStr for Rule {
    type Err = RuleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (input, outputs) = text
            .split_once("->")
            .ok_or_else(|| RuleError::MissingArrow(text.trim().to_string()))?;
        let input: Input = input.parse()?;
        let mut parsed: Vec<Endpoint> = Vec::new();
        for output in outputs.split(',') {
            if output.trim().is_empty() {
                continue;
            }
            if !matches!(split_vlan(output), Ok((_, None))) {
                return Err(RuleError::VlanOnOutput(output.trim().to_string()));
            }
            let endpoint: Endpoint = output.parse()?;
            if parsed.contains(&endpoint) {
                return Err(RuleError::DuplicateOutput(endpoint));
            }
            parsed.push(endpoint);
        }
        if parsed.is_empty() {
            return Err(RuleError::NoOutputs);
        }
        Ok(Rule {
            input,
            outputs: parsed,
        })
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> ", self.input)?;
        for (i, output) in self.outputs.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{output}")?;
        }
        Ok(())
    }
}

impl Rule {
    /// Re-checks a rule built from structured data (a JSON config) with the text rules.
    pub fn validated(self) -> Result<Rule, RuleError> {
        self.to_string().parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let text = "in-if:239.1.0.1:5000 -> out-if:239.2.0.1:5000, out2-if:239.3.0.1:6000";
        let rule: Rule = text.parse().unwrap();
        assert_eq!(rule.input.endpoint.interface, "in-if");
        assert_eq!(rule.input.endpoint.group, Ipv4Addr::new(239, 1, 0, 1));
        assert_eq!(rule.input.source, None);
        assert_eq!(rule.outputs.len(), 2);
        assert_eq!(rule.outputs[1].port, 6000);
        assert_eq!(rule.to_string(), text);
        assert_eq!(rule.to_string().parse::<Rule>().unwrap(), rule);
    }

    #[test]
    fn parses_source_specific_input_and_loose_spacing() {
        let rule: Rule = "  a:239.1.0.1:5000@198.18.0.1->b:239.2.0.1:5000 ,c:239.2.0.2:1,"
            .parse()
            .unwrap();
        assert_eq!(rule.input.source, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(
            rule.to_string(),
            "a:239.1.0.1:5000@198.18.0.1 -> b:239.2.0.1:5000, c:239.2.0.2:1"
        );
    }

    #[test]
    fn rejects_bad_rules_with_reasons() {
        type Check = fn(&RuleError) -> bool;
        let cases: &[(&str, Check)] = &[
            ("a:239.1.0.1:5000", |e| {
                matches!(e, RuleError::MissingArrow(_))
            }),
            ("a:239.1.0.1:5000 -> ", |e| {
                matches!(e, RuleError::NoOutputs)
            }),
            ("a:198.18.0.1:5000 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::NotMulticast(_))
            }),
            ("a:239.1.0.1:0 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadPort(_))
            }),
            ("a:239.1.0.1:70000 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadPort(_))
            }),
            ("a:239.1.0.1:1 -> b:239.2.0.1:x", |e| {
                matches!(e, RuleError::BadPort(_))
            }),
            ("a:239.1.0.300:1 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadAddress(_))
            }),
            ("239.1.0.1:1 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadEndpoint(_))
            }),
            ("averyveryverylongname:239.1.0.1:1 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadInterface(_))
            }),
            ("a:239.1.0.1:1@239.9.9.9 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadSource(_))
            }),
            ("a:239.1.0.1:1 -> b:239.2.0.1:1, b:239.2.0.1:1", |e| {
                matches!(e, RuleError::DuplicateOutput(_))
            }),
            ("a:224.0.0.251:5353 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::LinkLocalGroup(_))
            }),
            ("a:239.1.0.1:1 -> b:239.2.0.1:1, c:224.0.0.9:520", |e| {
                matches!(e, RuleError::LinkLocalGroup(_))
            }),
            ("a:239.1.0.1:1 vlan=0 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadVlan(_))
            }),
            ("a:239.1.0.1:1 vlan=4095 -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadVlan(_))
            }),
            ("a:239.1.0.1:1 vlan=x -> b:239.2.0.1:1", |e| {
                matches!(e, RuleError::BadVlan(_))
            }),
            ("a:239.1.0.1:1 -> b:239.2.0.1:1 vlan=5", |e| {
                matches!(e, RuleError::VlanOnOutput(_))
            }),
        ];
        for (text, check) in cases {
            let err = text.parse::<Rule>().unwrap_err();
            assert!(check(&err), "{text}: unexpected error {err}");
            assert!(!err.to_string().is_empty());
        }
    }

    #[test]
    fn link_local_is_exactly_224_0_0_0_24() {
        assert!(is_link_local_group(Ipv4Addr::new(224, 0, 0, 0)));
        assert!(is_link_local_group(Ipv4Addr::new(224, 0, 0, 255)));
        assert!(!is_link_local_group(Ipv4Addr::new(224, 0, 1, 1)));
        assert!(!is_link_local_group(Ipv4Addr::new(239, 0, 0, 1)));
        let err = "a:224.0.0.1:1 -> b:239.2.0.1:1"
            .parse::<Rule>()
            .unwrap_err();
        assert!(err.to_string().contains("link-local"), "{err}");
        assert!("a:224.0.1.1:1 -> b:239.2.0.1:1".parse::<Rule>().is_ok());
    }

    #[test]
    fn a_vlan_input_parses_prints_and_serializes() {
        let text = "a:239.1.0.1:5000@198.18.0.1 vlan=100 -> b:239.2.0.1:5000";
        let rule: Rule = text.parse().unwrap();
        assert_eq!(rule.input.vlan, Some(100));
        assert_eq!(rule.input.source, Some(Ipv4Addr::new(198, 18, 0, 1)));
        assert_eq!(rule.to_string(), text);
        let loose: Rule = "a:239.1.0.1:5000   vlan=4094->b:239.2.0.1:5000"
            .parse()
            .unwrap();
        assert_eq!(loose.input.vlan, Some(4094));
        let untagged: Rule = "a:239.1.0.1:5000 -> b:239.2.0.1:5000".parse().unwrap();
        assert_eq!(untagged.input.vlan, None);
        assert_ne!(untagged.input, rule.input);
        let json = serde_json::to_value(&rule.input).unwrap();
        assert_eq!(json["vlan"], 100);
        let back: Input = serde_json::from_value(json).unwrap();
        assert_eq!(back, rule.input);
        assert!(
            serde_json::to_value(&untagged.input)
                .unwrap()
                .get("vlan")
                .is_none()
        );
        // An interface name may hold "vlan=" only where no whitespace precedes it.
        let odd: Rule = "vlan=1:239.1.0.1:5000 -> b:239.2.0.1:5000".parse().unwrap();
        assert_eq!(
            (odd.input.endpoint.interface.as_str(), odd.input.vlan),
            ("vlan=1", None)
        );
    }

    #[test]
    fn structured_rules_are_revalidated() {
        let rule = Rule {
            input: Input {
                endpoint: Endpoint {
                    interface: "a".into(),
                    group: Ipv4Addr::new(10, 0, 0, 1),
                    port: 1,
                },
                source: None,
                vlan: None,
            },
            outputs: vec![],
        };
        assert!(matches!(rule.validated(), Err(RuleError::NotMulticast(_))));
    }
}
