//! relay: a multicast relay with AF_PACKET ingress, io_uring batched I/O, fan-out rules,
//! an IGMP helper-socket pool and a runtime control socket.
//!
//! Modules, one job each:
//! - [`config`]: the `--config` JSON file
//! - [`control`]: control socket server, protocol and client
//! - [`service`]: control-plane state (installed rules, memberships, reports); the IGMP
//!   helper sockets themselves are `netio::membership` (pool / single / per-group)
//! - [`rule`]: rule syntax, parse/print, validation
//! - the wire formats (frame parse and egress frame builder) are `netio::wire`
//! - [`table`]: O(1) rule lookup table and its atomic swap
//! - [`dataplane`]: worker threads: AF_PACKET + PACKET_FANOUT ingress, io_uring batching, egress
//! - `forward`: per-packet parse, lookup, fan-out and io_uring egress of a worker
//! - [`ring`]: preallocated io_uring send slots
//! - [`rx_batch`]: order-preserving batched receive (recvmmsg)
//! - [`frame_ring`]: TPACKET_V2 per-frame receive ring (`--io ring`, the default)
//! - [`mmap_ring`]: TPACKET_V3 block receive ring (`--io mmap`)
//! - [`stats`]: counters and opt-in per-stage timing
//! - [`drop_reason`]: why a frame was not forwarded (one counter each)
//! - [`netif`]: interface index / MAC / address lookup
//! - [`udp_egress`]: UDP-socket egress (`--egress udp`)
//! - [`sys`]: the raw socket calls socket2/nix do not cover
//!
//! `unsafe` is denied crate-wide and allowed only in the modules that talk to the kernel with
//! raw pointers (`sys`, `ring`, `rx_batch`, `frame_ring`, `mmap_ring`) and in the one io_uring push of
//! `forward`; every block carries a `// SAFETY:` comment.

#![deny(unsafe_code)]

pub mod config;
pub mod control;
pub mod dataplane;
pub mod drop_reason;
mod forward;
#[allow(unsafe_code)]
pub mod frame_ring;
#[allow(unsafe_code)]
pub mod mmap_ring;
pub mod netif;
#[allow(unsafe_code)]
pub mod ring;
pub mod rule;
#[allow(unsafe_code)]
pub mod rx_batch;
pub mod service;
pub mod stats;
#[allow(unsafe_code)]
pub mod sys;
pub mod table;
pub mod udp_egress;
