//! Multicast load generator and sink for the mcast-lab.
//!
//! The library side is what other crates use: [`summary`] (the JSON summaries and their
//! parsers) and [`wire`] (the payload header). The rest backs the `loadgen` binary.
//!
//! The kernel interfaces it needs (AF_PACKET sender socket, `sendmmsg`/`recvmmsg` batches,
//! control messages, interface lookup, the clock, atomic file writes) come from the `netio`
//! crate, so `unsafe` is denied here without exception.

#![deny(unsafe_code)]

pub mod accounting;
pub mod cli;
pub mod frame;
pub mod pacer;
pub mod progress;
pub mod send;
pub mod sink;
pub mod summary;
pub mod wire;

pub use summary::{parse_send_summary, parse_sink_summary, read_send_summary, read_sink_summary};
