//! JSON summaries written by `loadgen send` and `loadgen sink` and read by `labctl`.
//!
//! The field names and schema strings are the contract in `docs/interfaces.md`.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Schema tag of [`SendSummary`].
pub const SEND_SCHEMA: &str = "loadgen.send/1";
/// Schema tag of [`SinkSummary`].
pub const SINK_SCHEMA: &str = "loadgen.sink/1";

/// What `loadgen send` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendSummary {
    pub schema: String,
    pub streams: u32,
    /// UDP payload size in bytes.
    pub size: usize,
    /// `packet` (AF_PACKET frames) or `udp` (UDP sockets).
    pub mode: String,
    pub duration_s: f64,
    /// Aggregate rate asked for; `None` when unpaced (`max`).
    pub requested_pps: Option<f64>,
    pub achieved_pps: f64,
    pub sent_packets: u64,
    pub send_errors: u64,
    pub per_stream: Vec<SentStream>,
}

/// Packets sent on one stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentStream {
    pub stream: u32,
    pub group: Ipv4Addr,
    pub port: u16,
    pub sent: u64,
}

/// One-way latency percentiles in nanoseconds (CLOCK_MONOTONIC send -> receive).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencySummary {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

/// Counters summed over all streams.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Totals {
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
}

/// What the sink saw of one stream, keyed by (destination group, port, stream id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    pub group: Ipv4Addr,
    pub port: u16,
    pub stream: u32,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    pub bytes: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_arrival_ns: u64,
    pub last_arrival_ns: u64,
    pub latency_ns: LatencySummary,
}

/// A join the kernel refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinError {
    pub group: Ipv4Addr,
    pub errno: i32,
    pub message: String,
}

/// What `loadgen sink` received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkSummary {
    pub schema: String,
    pub joined_groups: u32,
    pub join_errors: Vec<JoinError>,
    pub duration_s: f64,
    /// Datagrams with a valid header.
    pub received: u64,
    /// Datagrams without the magic/version (not ours).
    pub foreign: u64,
    pub bytes: u64,
    pub totals: Totals,
    pub latency_ns: LatencySummary,
    pub streams: Vec<StreamStats>,
    /// Joined groups that received nothing.
    pub silent_groups: Vec<Ipv4Addr>,
}
