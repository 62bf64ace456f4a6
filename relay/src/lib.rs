//! relay: a multicast relay with AF_PACKET ingress, io_uring batched I/O, fan-out rules,
//! an IGMP helper-socket pool and a runtime control socket.
//!
//! Modules, one job each:
//! - [`config`]: the `--config` JSON file
//! - [`control`]: control socket server, protocol and client
//! - [`service`]: control-plane state (installed rules, memberships, reports); the IGMP
//!   helper sockets themselves are `netio::membership` (pool / single / per-group)
//! - [`rule`]: rule syntax, parse/print, validation
//! - [`rule_guard`]: checks against installed rules and interfaces (no loops in `--ttl-mode
//!   set`, no loopback outputs)
//! - [`ttl`]: the TTL of forwarded packets (`--ttl`, `--ttl-mode`)
//! - the wire formats (frame parse and egress frame builder) are `netio::wire`
//! - [`table`]: O(1) rule lookup table and its atomic swap
//! - [`dataplane`]: worker threads: AF_PACKET + PACKET_FANOUT ingress (sockets, receive rings
//!   and `recvmmsg` batches from `netio`), io_uring batching, egress
//! - `forward`: per-packet parse, lookup, fan-out and egress (sendmmsg or io_uring) of a worker
//! - [`ingress`]: the per-frame checks before fan-out (parse, checksum, VLAN, lookup, TTL)
//! - [`ring`]: preallocated send slots (one `sendmmsg` of many, or io_uring `SendMsg`s)
//! - [`stats`]: counters and opt-in per-stage timing
//! - [`supervisor`]: restarts failed workers within a budget, or ends the relay
//! - [`drop_reason`]: why a frame was not forwarded (one counter each)
//! - [`udp_egress`]: UDP-socket egress (`--egress udp`)
//! - [`null_kernel`]: a membership kernel that accepts every join (benches, fuzzing, tests)
//! - [`resolve`]: a rule's interface names resolved against the namespace's interfaces now,
//!   and the rule state (`active` / `waiting`) that follows
//! - [`input_filter`]: `--input-filter`, the rules' input kept out of the host's IP stack (a
//!   tcx program from `netio::input_drop`, following the table)
//! - [`link_watch`]: rtnetlink link and address events (and a periodic re-sync) that make the
//!   relay re-resolve its rules ([`service::Relay::resync`])
//!
//! The kernel interfaces (AF_PACKET sockets, TPACKET rings, `recvmmsg`, interface lookup,
//! socket options) live in the `netio` crate. `unsafe` is denied crate-wide and allowed only
//! where the relay hands the kernel raw pointers: the send slot arena (`ring`, including its
//! `sendmmsg`) and the one io_uring push of `forward`; every block carries a `// SAFETY:`
//! comment.

#![deny(unsafe_code)]

mod busy_poll;
pub mod config;
pub mod control;
pub mod dataplane;
pub mod drop_reason;
mod forward;
pub mod ingress;
pub mod input_filter;
pub mod link_watch;
pub mod null_kernel;
pub mod resolve;
#[allow(unsafe_code)]
pub mod ring;
pub mod rule;
pub mod rule_guard;
pub mod service;
pub mod stats;
pub mod supervisor;
pub mod table;
pub mod tc_dataplane;
pub mod ttl;
mod tx_rings;
pub mod udp_egress;
