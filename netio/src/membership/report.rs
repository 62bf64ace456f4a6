//! [`MembershipReport`]: the strategy, the limits, every helper socket with its groups, and the
//! remembered refusals (what `relay ctl memberships` shows).

use super::error::JoinFailure;
use super::limits::Limits;
use super::pool::Memberships;
use super::socket::SocketFactory;
use super::strategy::Strategy;
use serde::Serialize;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, Serialize)]
pub struct MembershipReport {
    pub strategy: Strategy,
    pub limits: Limits,
    pub capacity_per_socket: usize,
    pub interfaces: Vec<InterfaceReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct InterfaceReport {
    pub interface: String,
    pub sockets: Vec<SocketReport>,
    pub join_failures: Vec<JoinFailure>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SocketReport {
    pub socket: u64,
    pub capacity: usize,
    pub groups: Vec<GroupReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct GroupReport {
    pub group: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    /// References (relay rules) using this membership.
    pub rules: usize,
}

impl<F: SocketFactory> Memberships<F> {
    /// The current placement of every membership.
    pub fn report(&self) -> MembershipReport {
        MembershipReport {
            strategy: self.strategy(),
            limits: self.limits(),
            capacity_per_socket: self.limits().capacity_per_socket(),
            interfaces: self
                .interfaces
                .iter()
                .map(|(name, entry)| InterfaceReport {
                    interface: name.clone(),
                    sockets: entry
                        .sockets
                        .iter()
                        .map(|s| SocketReport {
                            socket: s.id,
                            capacity: s.capacity,
                            groups: s
                                .members
                                .keys()
                                .map(|k| GroupReport {
                                    group: k.group,
                                    source: k.source,
                                    rules: self.references(k),
                                })
                                .collect(),
                        })
                        .collect(),
                    join_failures: entry.failures.clone(),
                })
                .collect(),
        }
    }
}
