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
    /// Packets sent minus one over the time from the first to the last packet's send stamp
    /// (0 with fewer than two packets); `duration_s` is the whole run.
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
    /// Distinct packets received (duplicates not counted).
    pub received: u64,
    /// `last_seq + 1 - received`: gaps counted from sequence 0 (tail loss is invisible here).
    pub lost: u64,
    /// Packets whose sequence number had already arrived.
    pub duplicates: u64,
    /// Packets that arrived after a higher sequence number of the same stream.
    pub reordered: u64,
    /// UDP payload bytes of the distinct packets.
    pub bytes: u64,
    /// Lowest sequence number received.
    pub first_seq: u64,
    /// Highest sequence number received.
    pub last_seq: u64,
    /// CLOCK_MONOTONIC ns of the first and the last arrival.
    pub first_arrival_ns: u64,
    pub last_arrival_ns: u64,
    pub latency_ns: LatencySummary,
}

/// A join the kernel refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JoinError {
    pub group: Ipv4Addr,
    /// The OS error (0 when there was none).
    pub errno: i32,
    pub message: String,
}

impl From<&netio::membership::RefusedGroup> for JoinError {
    fn from(refused: &netio::membership::RefusedGroup) -> JoinError {
        JoinError {
            group: refused.group,
            errno: refused.error.errno().unwrap_or(0),
            message: refused.error.to_string(),
        }
    }
}

/// What `loadgen sink` received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkSummary {
    pub schema: String,
    pub joined_groups: u32,
    pub join_errors: Vec<JoinError>,
    pub duration_s: f64,
    /// Datagrams with a valid header (duplicates included).
    pub received: u64,
    /// Datagrams without the magic/version (not ours).
    pub foreign: u64,
    /// UDP payload bytes of datagrams with a valid header (duplicates included).
    pub bytes: u64,
    pub totals: Totals,
    pub latency_ns: LatencySummary,
    /// One-way latency to the sink's interface, over all streams: send time to the kernel's
    /// receive timestamp (`SO_TIMESTAMPNS`, taken as the frame entered this host's interface,
    /// before this host's CPU queued, processed and read it). The system's latency without the
    /// sink's own; `latency_ns` is this plus the sink host's. `None` without kernel timestamps
    /// or when the wall clock was stepped during the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_latency_ns: Option<LatencySummary>,
    pub streams: Vec<StreamStats>,
    /// Joined groups that received nothing.
    pub silent_groups: Vec<Ipv4Addr>,
    /// When packets went missing: seconds (CLOCK_MONOTONIC) with sequence gaps, dated by the
    /// send time of the packet that revealed each gap (see `accounting`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gap_timeline: Vec<GapSecond>,
}

/// Packets found missing in one second of send time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GapSecond {
    /// CLOCK_MONOTONIC second.
    pub second: u64,
    pub lost: u64,
}

/// A summary file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("cannot read summary {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("summary is not valid JSON of the expected shape: {0}")]
    Json(#[from] serde_json::Error),
    #[error("summary schema {found:?} is not the expected {expected:?}")]
    Schema {
        found: String,
        expected: &'static str,
    },
}

fn check_schema(found: &str, expected: &'static str) -> Result<(), SummaryError> {
    if found == expected {
        Ok(())
    } else {
        Err(SummaryError::Schema {
            found: found.to_string(),
            expected,
        })
    }
}

fn read_text(path: &std::path::Path) -> Result<String, SummaryError> {
    std::fs::read_to_string(path).map_err(|source| SummaryError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Parses the JSON of a `loadgen send` summary and checks its schema tag.
pub fn parse_send_summary(json: &str) -> Result<SendSummary, SummaryError> {
    let summary: SendSummary = serde_json::from_str(json)?;
    check_schema(&summary.schema, SEND_SCHEMA)?;
    Ok(summary)
}

/// Parses the JSON of a `loadgen sink` summary and checks its schema tag.
pub fn parse_sink_summary(json: &str) -> Result<SinkSummary, SummaryError> {
    let summary: SinkSummary = serde_json::from_str(json)?;
    check_schema(&summary.schema, SINK_SCHEMA)?;
    Ok(summary)
}

/// Reads and parses a `loadgen send --json` file.
pub fn read_send_summary(path: &std::path::Path) -> Result<SendSummary, SummaryError> {
    parse_send_summary(&read_text(path)?)
}

/// Reads and parses a `loadgen sink --json` file.
pub fn read_sink_summary(path: &std::path::Path) -> Result<SinkSummary, SummaryError> {
    parse_sink_summary(&read_text(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_example_from_interfaces_doc_parses() {
        let json = r#"{"schema":"loadgen.sink/1","joined_groups":2,"join_errors":[],"duration_s":3.1,
          "received":200,"foreign":0,"bytes":200000,
          "totals":{"received":200,"lost":0,"duplicates":0,"reordered":0},
          "latency_ns":{"p50":1,"p90":2,"p99":3,"p999":4,"max":5},
          "streams":[{"group":"239.2.0.1","port":5000,"stream":0,"received":200,"lost":0,
            "duplicates":0,"reordered":0,"bytes":200000,"first_seq":0,"last_seq":199,
            "first_arrival_ns":10,"last_arrival_ns":20,
            "latency_ns":{"p50":1,"p90":2,"p99":3,"p999":4,"max":5}}],
          "silent_groups":["239.2.0.2"]}"#;
        let s = parse_sink_summary(json).unwrap();
        assert_eq!(s.streams[0].last_seq, 199);
        assert_eq!(s.silent_groups, vec![Ipv4Addr::new(239, 2, 0, 2)]);
        let back = parse_sink_summary(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn send_example_parses_and_schema_is_checked() {
        let json = r#"{"schema":"loadgen.send/1","streams":1,"size":1000,"mode":"packet","duration_s":2.0,
          "requested_pps":null,"achieved_pps":9998.1,"sent_packets":20000,"send_errors":0,
          "per_stream":[{"stream":0,"group":"239.1.0.1","port":5000,"sent":200}]}"#;
        let s = parse_send_summary(json).unwrap();
        assert_eq!(s.requested_pps, None);
        assert!(matches!(
            parse_sink_summary(json),
            Err(SummaryError::Json(_) | SummaryError::Schema { .. })
        ));
        let wrong = json.replace("loadgen.send/1", "loadgen.send/9");
        assert!(matches!(
            parse_send_summary(&wrong),
            Err(SummaryError::Schema { .. })
        ));
        assert!(matches!(
            parse_send_summary("{"),
            Err(SummaryError::Json(_))
        ));
    }
}
