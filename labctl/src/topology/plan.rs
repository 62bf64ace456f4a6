//! The address and link plan of a topology: pure data computed from a run id and a template,
//! before anything is created (docs/interfaces.md "Names, addresses, groups").
//!
//! Subnet n is 198.18.n.0/24 (`.1` upstream, `.2` downstream, the snooping bridge `.254`);
//! fan-out egress link k (0-based) is 198.19.k.0/24 (`.1` relay side, `.2` sink side).
//! In `snooping` the gen, the bridge and the relay's ingress share subnet 1 (one L2 segment),
//! and the relay's egress to the sink is subnet 2.

use super::Endpoint;
use super::template::Template;
use crate::names::{NameError, Role, RunId};
use std::net::Ipv4Addr;

/// Prefix length of every lab subnet.
pub const PREFIX_LEN: u8 = 24;

/// One interface to create: its namespace, name and (for non bridge ports) address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub role: Role,
    pub netns: String,
    pub ifname: String,
    /// `None` for a bridge port.
    pub addr: Option<Ipv4Addr>,
    /// Add a 224.0.0.0/4 route on this interface with this metric.
    pub mcast_route_metric: Option<u32>,
}

/// One veth pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethPair {
    pub upstream: Interface,
    pub downstream: Interface,
}

/// The snooping switch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgePlan {
    pub netns: String,
    pub name: String,
    pub addr: Ipv4Addr,
    /// Ports, by interface name, in namespace `netns`.
    pub ports: Vec<String>,
    /// The relay-facing port: `mcast_flood off`.
    pub flood_off_port: String,
}

/// Everything to build for one topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub roles: Vec<Role>,
    pub veths: Vec<VethPair>,
    pub bridge: Option<BridgePlan>,
    pub generator: Endpoint,
    pub relay_in: Option<Endpoint>,
    pub relay_out: Vec<Endpoint>,
    pub sinks: Vec<Endpoint>,
}

impl Plan {
    /// Computes the plan of `template` for run `run`.
    pub fn new(run: &RunId, template: Template) -> Result<Plan, NameError> {
        let mut builder = PlanBuilder {
            run,
            veths: Vec::new(),
        };
        let plan = match template {
            Template::Direct => {
                let (gen_ep, sink) =
                    builder.pair(1, (Role::Gen, Role::Sink), subnet(18, 1), true)?;
                builder.finish(
                    vec![Role::Gen, Role::Sink],
                    None,
                    gen_ep,
                    None,
                    vec![],
                    vec![sink],
                )
            }
            Template::Chain => {
                let (gen_ep, rin) =
                    builder.pair(1, (Role::Gen, Role::Relay), subnet(18, 1), false)?;
                let (rout, sink) =
                    builder.pair(2, (Role::Relay, Role::Sink), subnet(18, 2), true)?;
                builder.finish(
                    vec![Role::Gen, Role::Relay, Role::Sink],
                    None,
                    gen_ep,
                    Some(rin),
                    vec![rout],
                    vec![sink],
                )
            }
            Template::Snooping => builder.snooping()?,
            Template::Fanout(k) => {
                let (gen_ep, rin) =
                    builder.pair(1, (Role::Gen, Role::Relay), subnet(18, 1), false)?;
                let mut outs = Vec::new();
                let mut sinks = Vec::new();
                for link in 0..k {
                    let (rout, sink) = builder.egress(link)?;
                    outs.push(rout);
                    sinks.push(sink);
                }
                builder.finish(
                    vec![Role::Gen, Role::Relay, Role::Sink],
                    None,
                    gen_ep,
                    Some(rin),
                    outs,
                    sinks,
                )
            }
        };
        Ok(plan)
    }

    /// Namespace names, in build order.
    pub fn namespaces(&self, run: &RunId) -> Vec<(Role, String)> {
        self.roles.iter().map(|&r| (r, run.namespace(r))).collect()
    }

    /// Every interface of the plan (veth ends), with the namespace it lives in.
    pub fn interfaces(&self) -> impl Iterator<Item = &Interface> {
        self.veths.iter().flat_map(|v| [&v.upstream, &v.downstream])
    }
}

/// `198.<second>.<third>.0`
fn subnet(second: u8, third: u8) -> [u8; 3] {
    [198, second, third]
}

fn host(net: [u8; 3], host: u8) -> Ipv4Addr {
    Ipv4Addr::new(net[0], net[1], net[2], host)
}

struct PlanBuilder<'a> {
    run: &'a RunId,
    veths: Vec<VethPair>,
}

impl PlanBuilder<'_> {
    fn iface(
        &self,
        role: Role,
        tag: &str,
        addr: Option<Ipv4Addr>,
        metric: Option<u32>,
    ) -> Result<Interface, NameError> {
        Ok(Interface {
            role,
            netns: self.run.namespace(role),
            ifname: self.run.ifname(tag)?,
            addr,
            mcast_route_metric: metric,
        })
    }

    /// Link `n` between two roles on subnet `net`; the upstream side always carries the
    /// multicast route (it sends), the downstream side too when `down_route` (it is a sink).
    fn pair(
        &mut self,
        n: u8,
        roles: (Role, Role),
        net: [u8; 3],
        down_route: bool,
    ) -> Result<(Endpoint, Endpoint), NameError> {
        let up = self.iface(roles.0, &format!("l{n}a"), Some(host(net, 1)), Some(0))?;
        let down = self.iface(
            roles.1,
            &format!("l{n}b"),
            Some(host(net, 2)),
            down_route.then_some(0),
        )?;
        let endpoints = (endpoint(&up), endpoint(&down));
        self.veths.push(VethPair {
            upstream: up,
            downstream: down,
        });
        Ok(endpoints)
    }

    /// Fan-out egress link `k` (0-based) on 198.19.k.0/24; the first link carries the
    /// default multicast route on both sides, the others a higher metric.
    fn egress(&mut self, k: u8) -> Result<(Endpoint, Endpoint), NameError> {
        let net = subnet(19, k);
        let metric = Some(u32::from(k));
        let up = self.iface(Role::Relay, &format!("e{k}a"), Some(host(net, 1)), metric)?;
        let down = self.iface(Role::Sink, &format!("e{k}b"), Some(host(net, 2)), metric)?;
        let endpoints = (endpoint(&up), endpoint(&down));
        self.veths.push(VethPair {
            upstream: up,
            downstream: down,
        });
        Ok(endpoints)
    }

    fn snooping(mut self) -> Result<Plan, NameError> {
        let seg = subnet(18, 1);
        let gen_if = self.iface(Role::Gen, "l1a", Some(host(seg, 1)), Some(0))?;
        let gen_port = self.iface(Role::Sw, "l1b", None, None)?;
        let relay_port = self.iface(Role::Sw, "l2a", None, None)?;
        let relay_in = self.iface(Role::Relay, "l2b", Some(host(seg, 2)), None)?;
        let bridge = BridgePlan {
            netns: self.run.namespace(Role::Sw),
            name: self.run.bridge(),
            addr: host(seg, 254),
            ports: vec![gen_port.ifname.clone(), relay_port.ifname.clone()],
            flood_off_port: relay_port.ifname.clone(),
        };
        let (gen_ep, rin_ep) = (endpoint(&gen_if), endpoint(&relay_in));
        self.veths.push(VethPair {
            upstream: gen_if,
            downstream: gen_port,
        });
        self.veths.push(VethPair {
            upstream: relay_port,
            downstream: relay_in,
        });
        let (rout, sink) = self.pair(3, (Role::Relay, Role::Sink), subnet(18, 2), true)?;
        Ok(self.finish(
            vec![Role::Gen, Role::Sw, Role::Relay, Role::Sink],
            Some(bridge),
            gen_ep,
            Some(rin_ep),
            vec![rout],
            vec![sink],
        ))
    }

    fn finish(
        self,
        roles: Vec<Role>,
        bridge: Option<BridgePlan>,
        generator: Endpoint,
        relay_in: Option<Endpoint>,
        relay_out: Vec<Endpoint>,
        sinks: Vec<Endpoint>,
    ) -> Plan {
        Plan {
            roles,
            veths: self.veths,
            bridge,
            generator,
            relay_in,
            relay_out,
            sinks,
        }
    }
}

fn endpoint(iface: &Interface) -> Endpoint {
    Endpoint {
        netns: iface.netns.clone(),
        ifname: iface.ifname.clone(),
        addr: iface.addr.unwrap_or(Ipv4Addr::UNSPECIFIED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn run() -> RunId {
        RunId::parse("a1b2c3").unwrap()
    }

    fn all_templates() -> Vec<Template> {
        vec![
            Template::Direct,
            Template::Chain,
            Template::Snooping,
            Template::Fanout(1),
            Template::Fanout(64),
        ]
    }

    #[test]
    fn every_address_is_in_the_benchmark_range() {
        for t in all_templates() {
            let plan = Plan::new(&run(), t).unwrap();
            for iface in plan.interfaces() {
                if let Some(a) = iface.addr {
                    let o = a.octets();
                    assert!(o[0] == 198 && (o[1] == 18 || o[1] == 19), "{t}: {a}");
                }
            }
            if let Some(b) = &plan.bridge {
                assert_eq!(b.addr, Ipv4Addr::new(198, 18, 1, 254));
            }
        }
    }

    #[test]
    fn names_are_unique_prefixed_and_short() {
        for t in all_templates() {
            let plan = Plan::new(&run(), t).unwrap();
            let mut seen = HashSet::new();
            for iface in plan.interfaces() {
                assert!(iface.ifname.len() <= 15, "{}", iface.ifname);
                assert!(iface.ifname.starts_with("mla1b2c3-"));
                assert!(iface.netns.starts_with("mlab-a1b2c3-"));
                assert!(
                    seen.insert(iface.ifname.clone()),
                    "duplicate {}",
                    iface.ifname
                );
                assert!(plan.roles.contains(&iface.role));
            }
        }
    }

    #[test]
    fn direct_plan() {
        let plan = Plan::new(&run(), Template::Direct).unwrap();
        assert_eq!(plan.roles, vec![Role::Gen, Role::Sink]);
        assert_eq!(plan.generator.addr, Ipv4Addr::new(198, 18, 1, 1));
        assert_eq!(plan.sinks.len(), 1);
        assert_eq!(plan.sinks[0].addr, Ipv4Addr::new(198, 18, 1, 2));
        assert_eq!(plan.sinks[0].netns, "mlab-a1b2c3-sink");
        assert!(plan.relay_in.is_none() && plan.relay_out.is_empty());
    }

    #[test]
    fn chain_plan() {
        let plan = Plan::new(&run(), Template::Chain).unwrap();
        assert_eq!(
            plan.relay_in.as_ref().unwrap().addr,
            Ipv4Addr::new(198, 18, 1, 2)
        );
        assert_eq!(plan.relay_out[0].addr, Ipv4Addr::new(198, 18, 2, 1));
        assert_eq!(plan.sinks[0].addr, Ipv4Addr::new(198, 18, 2, 2));
        assert_eq!(plan.relay_out[0].netns, "mlab-a1b2c3-relay");
    }

    #[test]
    fn snooping_plan_shares_one_segment() {
        let plan = Plan::new(&run(), Template::Snooping).unwrap();
        let bridge = plan.bridge.as_ref().unwrap();
        assert_eq!(bridge.ports.len(), 2);
        assert_eq!(bridge.flood_off_port, "mla1b2c3-l2a");
        assert_eq!(bridge.netns, "mlab-a1b2c3-sw");
        assert_eq!(
            plan.relay_in.as_ref().unwrap().addr,
            Ipv4Addr::new(198, 18, 1, 2)
        );
        assert_eq!(plan.relay_out[0].addr, Ipv4Addr::new(198, 18, 2, 1));
        // Bridge ports carry no address.
        for iface in plan.interfaces().filter(|i| i.role == Role::Sw) {
            assert!(iface.addr.is_none());
        }
    }

    #[test]
    fn fanout_plan_has_k_links_to_one_sink() {
        let plan = Plan::new(&run(), Template::Fanout(64)).unwrap();
        assert_eq!(plan.relay_out.len(), 64);
        assert_eq!(plan.sinks.len(), 64);
        assert!(plan.sinks.iter().all(|s| s.netns == "mlab-a1b2c3-sink"));
        assert_eq!(plan.relay_out[5].addr, Ipv4Addr::new(198, 19, 5, 1));
        assert_eq!(plan.sinks[63].addr, Ipv4Addr::new(198, 19, 63, 2));
    }
}
