//! Checks a rule must pass against the installed rules and the interfaces before it is
//! installed, so that the relay cannot be told to amplify its own traffic:
//!
//! - **No loopback outputs**, in every TTL mode: a frame sent on a loopback interface (IFF_LOOPBACK,
//!   whatever its name) comes straight back in.
//! - **No rule that can feed an input**, when the TTL of forwarded packets does not fall on every
//!   hop (`--ttl-mode set`, or `--egress udp`, whose sockets send with the fixed `--ttl`): an
//!   output `(interface, group)` equal to some untagged input `(interface, group)` of any rule -
//!   the new rule's own input included - is refused, in both directions (a new output hitting an
//!   installed input, a new input hit by an installed output). Ports are not compared (a loop
//!   through another program on the port is still a loop), and an input that names a VLAN is
//!   never fed (outputs are untagged). In `--ttl-mode decrement` such rules are allowed: every
//!   hop lowers the TTL, so a loop ends after at most `--ttl` hops.
//!
//! The guard keeps its own index of inputs and outputs by `(interface, group)`, so a check costs
//! O(outputs of the rule), not O(installed rules).

use crate::rule::{Endpoint, Rule};
use crate::ttl::TtlMode;
use crate::udp_egress::EgressMode;
use netio::iface::Interface;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// Why a rule was refused; the service prints it with the rules' text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// An output on a loopback interface.
    LoopbackOutput { output: Endpoint },
    /// The rule's output feeds an input: `existing` is the id of the installed rule on the other
    /// end, `None` if the rule feeds its own input.
    Loop {
        output: Endpoint,
        existing: Option<u64>,
        /// True if the new rule's output feeds `existing`'s input, false if `existing`'s output
        /// feeds the new rule's input.
        new_feeds_existing: bool,
    },
}

type Place = (String, Ipv4Addr);

/// The loop and loopback checks of one relay, with its index of installed rules.
#[derive(Debug)]
pub struct RuleGuard {
    /// Whether forwarded TTLs stay fixed, so loops must be refused.
    refuse_loops: bool,
    /// Untagged inputs by (interface, group): rule ids.
    inputs: HashMap<Place, Vec<u64>>,
    /// Outputs by (interface, group): rule ids.
    outputs: HashMap<Place, Vec<u64>>,
    /// Tests, benches and fuzzing only (see `Relay::allowing_loopback_outputs`): `lo` is the one
    /// interface with an address in every namespace, so they send to it.
    pub(crate) allow_loopback_outputs: bool,
}

fn place(endpoint: &Endpoint) -> Place {
    (endpoint.interface.clone(), endpoint.group)
}

impl RuleGuard {
    pub fn new(ttl_mode: TtlMode, egress: EgressMode) -> RuleGuard {
        RuleGuard {
            refuse_loops: ttl_mode == TtlMode::Set || egress == EgressMode::Udp,
            inputs: HashMap::new(),
            outputs: HashMap::new(),
            allow_loopback_outputs: false,
        }
    }

    /// True if rules that can feed an input are refused.
    pub fn refuses_loops(&self) -> bool {
        self.refuse_loops
    }

    /// Refuses an output on a loopback interface (`interface` is the resolved output).
    pub fn check_output_interface(
        &self,
        output: &Endpoint,
        interface: &Interface,
    ) -> Result<(), GuardError> {
        if self.allow_loopback_outputs {
            return Ok(());
        }
        if interface.loopback {
            return Err(GuardError::LoopbackOutput {
                output: output.clone(),
            });
        }
        Ok(())
    }

    /// Refuses a rule that could feed an input (only when loops must be refused).
    pub fn check_loops(&self, rule: &Rule) -> Result<(), GuardError> {
        if !self.refuse_loops {
            return Ok(());
        }
        let own_input = rule
            .input
            .vlan
            .is_none()
            .then(|| place(&rule.input.endpoint));
        for output in &rule.outputs {
            let at = place(output);
            if own_input.as_ref() == Some(&at) {
                return Err(loop_error(output, None, true));
            }
            if let Some(&id) = self.inputs.get(&at).and_then(|ids| ids.first()) {
                return Err(loop_error(output, Some(id), true));
            }
        }
        if let Some(at) = own_input
            && let Some(&id) = self.outputs.get(&at).and_then(|ids| ids.first())
        {
            return Err(loop_error(&rule.input.endpoint, Some(id), false));
        }
        Ok(())
    }

    /// Records an installed rule.
    pub fn insert(&mut self, id: u64, rule: &Rule) {
        if rule.input.vlan.is_none() {
            self.inputs
                .entry(place(&rule.input.endpoint))
                .or_default()
                .push(id);
        }
        for output in &rule.outputs {
            self.outputs.entry(place(output)).or_default().push(id);
        }
    }

    /// Forgets a removed rule.
    pub fn remove(&mut self, id: u64, rule: &Rule) {
        let forget = |map: &mut HashMap<Place, Vec<u64>>, at: Place| {
            if let Some(ids) = map.get_mut(&at) {
                ids.retain(|&other| other != id);
                if ids.is_empty() {
                    map.remove(&at);
                }
            }
        };
        forget(&mut self.inputs, place(&rule.input.endpoint));
        for output in &rule.outputs {
            forget(&mut self.outputs, place(output));
        }
    }
}

fn loop_error(output: &Endpoint, existing: Option<u64>, new_feeds_existing: bool) -> GuardError {
    GuardError::Loop {
        output: output.clone(),
        existing,
        new_feeds_existing,
    }
}

impl GuardError {
    /// The refusal in plain words; `describe` gives an installed rule's text by id.
    pub fn message(&self, rule: &Rule, describe: impl Fn(u64) -> String) -> String {
        const WHY: &str = "with --ttl-mode set (or --egress udp) the TTL does not fall on \
                           each hop, so a loop would forward the same packets forever; use \
                           another group or interface, or run with --ttl-mode decrement";
        match self {
            GuardError::LoopbackOutput { output } => format!(
                "rule {rule}: output {output} is on a loopback interface, whose frames come \
                 straight back in (a loop): loopback outputs are refused"
            ),
            GuardError::Loop { existing: None, .. } => {
                format!("rule {rule} feeds its own input (same interface and group): {WHY}")
            }
            GuardError::Loop {
                output,
                existing: Some(id),
                new_feeds_existing: true,
            } => format!(
                "rule {rule}: its output {output} feeds the input of rule {id} ({}): {WHY}",
                describe(*id)
            ),
            GuardError::Loop {
                output,
                existing: Some(id),
                new_feeds_existing: false,
            } => format!(
                "rule {rule}: its input {output} is fed by an output of rule {id} ({}): {WHY}",
                describe(*id)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(text: &str) -> Rule {
        text.parse().unwrap()
    }

    fn set_mode() -> RuleGuard {
        RuleGuard::new(TtlMode::Set, EgressMode::Packet)
    }

    #[test]
    fn a_hairpin_is_refused_in_set_mode_only() {
        let hairpin = rule("a:239.9.0.1:5000 -> a:239.9.0.1:6000");
        let err = set_mode().check_loops(&hairpin).unwrap_err();
        assert!(matches!(err, GuardError::Loop { existing: None, .. }));
        assert!(
            err.message(&hairpin, |_| String::new())
                .contains("its own input")
        );
        let decrement = RuleGuard::new(TtlMode::Decrement, EgressMode::Packet);
        assert!(!decrement.refuses_loops());
        assert_eq!(decrement.check_loops(&hairpin), Ok(()));
        let udp = RuleGuard::new(TtlMode::Decrement, EgressMode::Udp);
        assert!(
            udp.check_loops(&hairpin).is_err(),
            "udp egress sends a fixed TTL"
        );
    }

    #[test]
    fn a_new_output_hitting_an_installed_input_is_refused() {
        let mut guard = set_mode();
        let first = rule("a:239.1.0.1:5000 -> b:239.2.0.1:5000");
        guard.check_loops(&first).unwrap();
        guard.insert(1, &first);
        let back = rule("b:239.2.0.1:5000 -> c:239.3.0.1:5000, a:239.1.0.1:7000");
        let err = guard.check_loops(&back).unwrap_err();
        assert_eq!(
            err,
            GuardError::Loop {
                output: "a:239.1.0.1:7000".parse().unwrap(),
                existing: Some(1),
                new_feeds_existing: true,
            }
        );
        let text = err.message(&back, |id| format!("#{id} text"));
        assert!(text.contains("rule 1 (#1 text)"), "{text}");
        assert!(
            text.contains(&back.to_string()),
            "names the new rule: {text}"
        );
    }

    #[test]
    fn a_new_input_fed_by_an_installed_output_is_refused() {
        let mut guard = set_mode();
        let first = rule("a:239.1.0.1:5000 -> b:239.2.0.1:5000");
        guard.insert(1, &first);
        let fed = rule("b:239.2.0.1:9999 -> c:239.3.0.1:5000");
        let err = guard.check_loops(&fed).unwrap_err();
        assert!(matches!(
            err,
            GuardError::Loop {
                existing: Some(1),
                new_feeds_existing: false,
                ..
            }
        ));
        // Another group, another interface, or a VLAN input: no loop.
        for ok in [
            "b:239.2.0.2:5000 -> c:239.3.0.1:5000",
            "c:239.2.0.1:5000 -> d:239.3.0.1:5000",
            "b:239.2.0.1:5000 vlan=7 -> c:239.3.0.1:5000",
        ] {
            assert_eq!(guard.check_loops(&rule(ok)), Ok(()), "{ok}");
        }
        guard.remove(1, &first);
        assert_eq!(guard.check_loops(&fed), Ok(()), "forgotten on remove");
        assert!(guard.inputs.is_empty() && guard.outputs.is_empty());
    }

    #[test]
    fn loopback_outputs_are_refused_by_flag_not_name() {
        let guard = RuleGuard::new(TtlMode::Decrement, EgressMode::Packet);
        let output: Endpoint = "lo2:239.1.0.1:5000".parse().unwrap();
        let mut interface = Interface {
            name: "lo2".into(),
            index: 7,
            mac: [0; 6],
            mtu: 65536,
            ipv4: Some(Ipv4Addr::LOCALHOST),
            loopback: true,
        };
        let err = guard
            .check_output_interface(&output, &interface)
            .unwrap_err();
        let text = err.message(&rule("x:239.1.0.1:1 -> lo2:239.1.0.1:5000"), |_| {
            String::new()
        });
        assert!(text.contains("loopback"), "{text}");
        interface.loopback = false;
        interface.name = "lo".into();
        assert_eq!(guard.check_output_interface(&output, &interface), Ok(()));
    }
}
