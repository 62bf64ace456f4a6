//! Multicast load generator and sink for the mcast-lab.
//!
//! The library side is what other crates use: [`summary`] (the JSON summaries and their
//! parsers) and [`wire`] (the payload header). The rest backs the `loadgen` binary.
//!
//! `unsafe` is denied crate-wide and allowed only in [`sys`] (the raw socket calls socket2 and
//! nix do not cover); every block there carries a `// SAFETY:` comment.

#![deny(unsafe_code)]

pub mod accounting;
pub mod cli;
pub mod frame;
pub mod iface;
pub mod pacer;
pub mod progress;
pub mod send;
pub mod sink;
pub mod summary;
#[allow(unsafe_code)]
pub mod sys;
pub mod wire;

pub use summary::{parse_send_summary, parse_sink_summary, read_send_summary, read_sink_summary};
