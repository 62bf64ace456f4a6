//! Forwarding rules: what a rule says, how it is written and how it is checked.
//!
//! A rule maps one input stream, `(interface, group, port[, source])`, to one or more outputs,
//! `(interface, group, port)`. Its text form is
//! `IN_IF:GROUP:PORT[@SOURCE] -> OUT_IF:GROUP:PORT, OUT_IF:GROUP:PORT, ...`
//! and [`Rule`]'s `Display` prints exactly that canonical form, so parse and print round-trip.
//! This module only checks what can be checked from the text (multicast groups, non-zero ports,
//! interface name length, duplicate outputs); whether an interface exists is checked by the
//! relay when the rule is installed.

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

/// The input side of a rule; `source` makes it source-specific (IP_ADD_SOURCE_MEMBERSHIP).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Input {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
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
        })
    }
}

impl fmt::Display for Input {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.endpoint)?;
        if let Some(source) = self.source {
            write!(f, "@{source}")?;
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
        ];
        for (text, check) in cases {
            let err = text.parse::<Rule>().unwrap_err();
            assert!(check(&err), "{text}: unexpected error {err}");
            assert!(!err.to_string().is_empty());
        }
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
            },
            outputs: vec![],
        };
        assert!(matches!(rule.validated(), Err(RuleError::NotMulticast(_))));
    }
}
