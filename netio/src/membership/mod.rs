//! IGMP memberships on helper sockets, for the relay and the load generator's sink alike.
//!
//! A host that only receives with AF_PACKET (the relay) or on sockets bound to INADDR_ANY (the
//! sink) still has to join every group: snooping switches and NIC filters forward a group only
//! after a host joined it. The joins are made on "helper" UDP sockets that never receive
//! anything, because the kernel limits memberships per socket.
//!
//! Submodules, one job each:
//! - [`limits`]: the per-socket limits of the current network namespace (two sysctls) and the
//!   capacity rule derived from them
//! - [`strategy`]: how joins are placed on helper sockets (`pool` / `single` / `per-group`)
//! - [`socket`]: what a helper socket and its factory must do ([`JoinSocket`],
//!   [`SocketFactory`]) and what identifies one membership ([`MembershipKey`], [`JoinTarget`])
//! - [`pool`]: [`Memberships`], the reference-counted placement of joins on helper sockets,
//!   generic over the kernel calls so tests run it against a fake kernel
//! - [`kernel`]: [`KernelSockets`], the real helper sockets (socket2)
//! - [`error`]: [`MembershipError`] and the join failures a pool remembers
//! - [`report`]: [`MembershipReport`], what `relay ctl memberships` shows
//! - [`retarget`]: moving an interface's memberships when it is deleted and created again
//!   (new index) or re-addressed ([`Memberships::detach_interface`],
//!   [`Memberships::attach_interface`])
//!
//! The capacity rule is the relay's: `min(net.ipv4.igmp_max_memberships, net.core.optmem_max /
//! 48)` per socket, and a join that still fails with ENOBUFS spills to the next (or a new)
//! socket. The relay and the sink both use this rule (the sink once counted only
//! `igmp_max_memberships`).

pub mod error;
pub mod kernel;
pub mod limits;
pub mod pool;
pub mod report;
pub mod retarget;
pub mod socket;
pub mod strategy;

#[cfg(test)]
mod fake;
#[cfg(test)]
mod tests;

pub use error::{JoinFailure, MembershipError};
pub use kernel::KernelSockets;
pub use limits::{Limits, OPTMEM_BYTES_PER_MEMBERSHIP};
pub use pool::{GroupJoins, Memberships, RefusedGroup};
pub use report::{GroupReport, InterfaceReport, MembershipReport, SocketReport};
pub use retarget::{Attached, Link};
pub use socket::{JoinSocket, JoinTarget, MembershipKey, SocketFactory};
pub use strategy::Strategy;
