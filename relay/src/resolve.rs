//! Resolving a rule's interface names against the interfaces the namespace has now, and the
//! rule state that follows: `active`, or `waiting` for the interfaces it cannot use.
//!
//! Rules name interfaces; the kernel numbers them. An interface deleted and created again
//! under the same name gets a new index (and possibly a new MAC or address), so the relay
//! re-resolves every rule whenever the interfaces change ([`crate::link_watch`] triggers
//! [`crate::service::Relay::resync`]). An input needs only to exist (a source-specific input
//! also needs an IPv4 address: the join is made by address); an output needs an IPv4 address
//! (the source of the frames it sends).

use crate::rule::Rule;
use netio::iface::Interface;
use netio::membership::Link;
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;

/// The interfaces of the relay's namespace by name (`netio::iface::list`).
pub type Interfaces = HashMap<String, Interface>;

/// What `list` and `stats` show for a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleState {
    /// Every interface of the rule is usable; the rule forwards.
    Active,
    /// An interface of the rule is missing or has no IPv4 address. Without its input the rule
    /// forwards nothing; without an output it forwards to the others. It resumes by itself.
    Waiting,
}

impl RuleState {
    pub fn of(waiting_for: &[Unusable]) -> RuleState {
        if waiting_for.is_empty() {
            RuleState::Active
        } else {
            RuleState::Waiting
        }
    }
}

/// Why a rule cannot use one of its interfaces now.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unusable {
    /// No interface of that name exists (deleted, renamed, not created yet).
    Missing(String),
    /// The interface exists without an IPv4 address.
    NoIpv4(String),
    /// The interface is there but its output could not be set up (the UDP egress socket).
    Failed(String, String),
}

impl fmt::Display for Unusable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unusable::Missing(name) => write!(f, "{name} (missing)"),
            Unusable::NoIpv4(name) => write!(f, "{name} (no IPv4 address)"),
            Unusable::Failed(name, error) => write!(f, "{name} ({error})"),
        }
    }
}

/// A rule's interfaces as they are now.
#[derive(Debug)]
pub struct Resolved<'a> {
    pub input: Result<&'a Interface, Unusable>,
    /// One per rule output, in rule order.
    pub outputs: Vec<Result<&'a Interface, Unusable>>,
}

impl Resolved<'_> {
    /// Everything the rule waits for, sorted, each interface once.
    pub fn waiting_for(&self) -> Vec<Unusable> {
        let mut waiting: Vec<Unusable> = std::iter::once(&self.input)
            .chain(&self.outputs)
            .filter_map(|r| r.as_ref().err().cloned())
            .collect();
        waiting.sort();
        waiting.dedup();
        waiting
    }
}

/// Resolves `rule`'s interfaces in `interfaces`.
pub fn resolve<'a>(rule: &Rule, interfaces: &'a Interfaces) -> Resolved<'a> {
    let input = find(interfaces, &rule.input.endpoint.interface).and_then(|i| {
        if rule.input.source.is_some() && i.ipv4.is_none() {
            Err(Unusable::NoIpv4(i.name.clone()))
        } else {
            Ok(i)
        }
    });
    let outputs = rule
        .outputs
        .iter()
        .map(|o| {
            find(interfaces, &o.interface).and_then(|i| match i.ipv4 {
                Some(_) => Ok(i),
                None => Err(Unusable::NoIpv4(i.name.clone())),
            })
        })
        .collect();
    Resolved { input, outputs }
}

fn find<'a>(interfaces: &'a Interfaces, name: &str) -> Result<&'a Interface, Unusable> {
    interfaces
        .get(name)
        .ok_or_else(|| Unusable::Missing(name.to_string()))
}

/// Where an input interface's memberships are joined.
pub fn link_of(interface: &Interface) -> Link {
    Link {
        ifindex: interface.index,
        ifaddr: interface.ipv4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn interface(name: &str, index: u32, ipv4: Option<Ipv4Addr>) -> (String, Interface) {
        let i = Interface {
            name: name.into(),
            index,
            mac: [2, 0, 0, 0, 0, index as u8],
            mtu: 1500,
            ipv4,
            loopback: false,
        };
        (name.into(), i)
    }

    fn interfaces() -> Interfaces {
        [
            interface("in0", 4, None),
            interface("out0", 5, Some(Ipv4Addr::new(198, 18, 2, 1))),
            interface("out1", 6, None),
        ]
        .into_iter()
        .collect()
    }

    #[test]
    fn a_rule_with_usable_interfaces_is_active() {
        let ifs = interfaces();
        let rule: Rule = "in0:239.1.0.1:5000 -> out0:239.2.0.1:5000".parse().unwrap();
        let resolved = resolve(&rule, &ifs);
        assert_eq!(resolved.input.as_ref().unwrap().index, 4);
        assert_eq!(resolved.outputs[0].as_ref().unwrap().index, 5);
        assert!(resolved.waiting_for().is_empty());
        assert_eq!(RuleState::of(&resolved.waiting_for()), RuleState::Active);
    }

    #[test]
    fn missing_and_unaddressed_interfaces_are_named_once() {
        let ifs = interfaces();
        let rule: Rule =
            "gone0:239.1.0.1:5000 -> out0:239.2.0.1:5000, out1:239.2.0.2:5000, out1:239.2.0.3:1"
                .parse()
                .unwrap();
        let resolved = resolve(&rule, &ifs);
        let waiting = resolved.waiting_for();
        assert_eq!(
            waiting,
            vec![
                Unusable::Missing("gone0".into()),
                Unusable::NoIpv4("out1".into())
            ]
        );
        assert_eq!(waiting[0].to_string(), "gone0 (missing)");
        assert_eq!(waiting[1].to_string(), "out1 (no IPv4 address)");
        assert!(resolved.outputs[0].is_ok());
        assert_eq!(RuleState::of(&waiting), RuleState::Waiting);
        assert_eq!(serde_json::to_value(RuleState::Waiting).unwrap(), "waiting");
    }

    #[test]
    fn a_source_specific_input_needs_an_address() {
        let ifs = interfaces();
        let rule: Rule = "in0:239.1.0.1:5000@198.18.1.1 -> out0:239.2.0.1:5000"
            .parse()
            .unwrap();
        assert_eq!(
            resolve(&rule, &ifs).waiting_for(),
            vec![Unusable::NoIpv4("in0".into())]
        );
        let link = link_of(&ifs["out0"]);
        assert_eq!((link.ifindex, link.ifaddr), (5, ifs["out0"].ipv4));
    }
}
