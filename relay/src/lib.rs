//! relay: a multicast relay with AF_PACKET ingress, io_uring batched I/O, fan-out rules,
//! an IGMP helper-socket pool and a runtime control socket.
//!
//! Modules, one job each:
//! - [`config`]: the `--config` JSON file
//! - [`control`]: control socket server, protocol and client
//! - [`service`]: control-plane state (installed rules, memberships, reports)
//! - [`rule`]: rule syntax, parse/print, validation
//! - [`packet`]: zero-copy Ethernet/IPv4/UDP parser and egress frame builder
//! - [`table`]: O(1) rule lookup table and its atomic swap
//! - [`dataplane`]: worker threads: AF_PACKET + PACKET_FANOUT ingress (sockets, receive rings
//!   and `recvmmsg` batches from `netio`), io_uring batching, egress
//! - `forward`: per-packet parse, lookup, fan-out and io_uring egress of a worker
//! - [`ring`]: preallocated io_uring send slots
//! - [`membership`]: IGMP helper sockets (pool / single / per-group)
//! - [`stats`]: counters, drop reasons and opt-in per-stage timing
//! - [`udp_egress`]: UDP-socket egress (`--egress udp`)
//! - [`sys`]: old paths of the netio calls `membership` makes (re-exports only)
//!
//! The kernel interfaces (AF_PACKET sockets, TPACKET rings, `recvmmsg`, interface lookup,
//! socket options) live in the `netio` crate. `unsafe` is denied crate-wide and allowed only
//! where the relay hands io_uring raw pointers: the send slot arena (`ring`) and the one
//! io_uring push of `forward`; every block carries a `// SAFETY:` comment.

#![deny(unsafe_code)]

pub mod config;
pub mod control;
pub mod dataplane;
mod forward;
pub mod membership;
pub mod packet;
#[allow(unsafe_code)]
pub mod ring;
pub mod rule;
pub mod service;
pub mod stats;
pub mod sys;
pub mod table;
pub mod udp_egress;
