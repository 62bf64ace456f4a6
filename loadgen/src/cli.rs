//! Command line of `loadgen` (clap) and its validation into [`SendConfig`] / [`SinkConfig`].
//!
//! Validation problems are [`UsageError`]s: one line saying what is wrong and how to fix it;
//! the binary exits with code 2 for them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;
use thiserror::Error;

/// Smallest payload (UDP data) size: room for the header and some random bytes.
pub const MIN_SIZE: usize = 64;
/// Largest payload size: a 9000-byte MTU minus IPv4 and UDP headers.
pub const MAX_SIZE: usize = 8972;
/// Highest TTL the lab allows.
pub const MAX_TTL: u8 = 8;

/// A bad command line; printed as one line, exit code 2.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Why `loadgen send` or `loadgen sink` did not finish: a typed error, so the binary's `main`
/// picks the exit code by matching on it (2 for [`Failure::Usage`], 1 for
/// [`Failure::Runtime`]) instead of inspecting an `anyhow` chain.
#[derive(Debug, Error)]
pub enum Failure {
    /// A bad command line or an interface that does not exist.
    #[error(transparent)]
    Usage(#[from] UsageError),
    /// Anything that went wrong while running.
    #[error(transparent)]
    Runtime(#[from] anyhow::Error),
}

fn usage<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// Multicast load generator and sink for the mcast-lab.
#[derive(Debug, Parser)]
#[command(name = "loadgen", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send paced multicast streams with sequence numbers and timestamps.
    Send(SendArgs),
    /// Join groups, receive streams and report loss, duplicates, reordering and latency.
    Sink(SinkArgs),
}

/// How `send` puts packets on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Build Ethernet/IPv4/UDP frames and send them on an AF_PACKET socket (default).
    Packet,
    /// Send through the kernel's UDP stack (one UDP socket, IP_MULTICAST_IF/TTL, no loop).
    Udp,
}

impl Mode {
    /// The name used in the send summary: the command-line name.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }
}

/// A rate: packets per second or unpaced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rate {
    Pps(f64),
    Max,
}

/// Parses `max` or a positive, finite number of packets per second.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    if text.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(Rate::Pps(v)),
        _ => Err(format!(
            "rate {text:?} must be a positive number of packets per second or `max`"
        )),
    }
}

/// Parses a duration in (possibly fractional) seconds, greater than 0.
pub fn parse_secs(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 1e9 => Ok(Duration::from_secs_f64(v)),
        _ => Err(format!(
            "{text:?} must be a positive number of seconds, e.g. 2 or 0.5"
        )),
    }
}

#[derive(Debug, Args)]
pub struct SendArgs {
    /// Interface to send on (in the current network namespace).
    #[arg(long, short = 'i')]
    pub interface: String,
    /// Source IPv4 address of the packets (default: the interface's first IPv4 address).
    #[arg(long)]
    pub source: Option<Ipv4Addr>,
    /// Number of streams; stream k goes to group base+k.
    #[arg(long, short = 'n')]
    pub streams: u32,
    /// First multicast group (239.0.0.0/8 only); groups count up from it.
    #[arg(long, default_value = "239.1.0.1")]
    pub group_base: Ipv4Addr,
    /// Destination UDP port (first port with --port-per-stream).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Give stream k the port PORT+k instead of one fixed port.
    #[arg(long)]
    pub port_per_stream: bool,
    /// Packets per second per stream, or `max` for unpaced.
    #[arg(long, value_parser = parse_rate, allow_negative_numbers = true, conflicts_with = "total_rate", required_unless_present = "total_rate")]
    pub rate: Option<Rate>,
    /// Aggregate packets per second over all streams, or `max` for unpaced.
    #[arg(long, value_parser = parse_rate, allow_negative_numbers = true)]
    pub total_rate: Option<Rate>,
    /// UDP payload size in bytes (64..=8972; in packet mode at most the interface MTU - 28).
    #[arg(long, default_value_t = 1000)]
    pub size: usize,
    /// Packets to send per stream (bounds the run; combine with --duration for both limits).
    #[arg(long)]
    pub count: Option<u64>,
    /// Seconds to send for (bounds the run).
    #[arg(long, value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// IP time to live (1..=8, lab rule).
    #[arg(long, default_value_t = 4)]
    pub ttl: u8,
    /// `packet`: own frames on AF_PACKET; `udp`: the kernel's UDP stack.
    #[arg(long, value_enum, default_value_t = Mode::Packet)]
    pub mode: Mode,
    /// Packets per sendmmsg call.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Send N packets back to back, then pause: the same average rate in bursts (1 = evenly
    /// spaced). Bursts make the receiver's batching repeatable from run to run.
    #[arg(long, default_value_t = 1)]
    pub burst: usize,
    /// Write the JSON summary to this file (default: print it on stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress display (progress is only shown on a terminal anyway).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct SinkArgs {
    /// Interface to join the groups on (in the current network namespace).
    #[arg(long, short = 'i')]
    pub interface: String,
    /// Number of groups/streams; groups count up from --group-base (optional with --groups).
    #[arg(long, short = 'n')]
    pub streams: Option<u32>,
    /// First multicast group (239.0.0.0/8 only).
    #[arg(long, default_value = "239.2.0.1")]
    pub group_base: Ipv4Addr,
    /// UDP port to receive on (first port with --port-per-stream).
    #[arg(long, default_value_t = 5000)]
    pub port: u16,
    /// Receive stream k on port PORT+k (one receive socket per port).
    #[arg(long)]
    pub port_per_stream: bool,
    /// Explicit comma-separated groups to join instead of counting from --group-base.
    #[arg(long, value_delimiter = ',')]
    pub groups: Option<Vec<Ipv4Addr>>,
    /// Stop after this many seconds.
    #[arg(long, value_parser = parse_secs)]
    pub duration: Option<Duration>,
    /// Stop after this many seconds without packets (counted from the first packet).
    #[arg(long, value_parser = parse_secs)]
    pub idle: Option<Duration>,
    /// Create this file (atomically) once all groups are joined and the sockets bound.
    #[arg(long)]
    pub ready_file: Option<PathBuf>,
    /// Receive only what arrives on --interface (SO_BINDTODEVICE on the receive sockets).
    /// Without it a socket bound to 0.0.0.0:PORT also receives the same group arriving on any
    /// other interface where it is joined: one sink per link needs this to count per link.
    #[arg(long)]
    pub bind_device: bool,
    /// Write the JSON summary to this file (default: print it on stdout).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No progress display (progress is only shown on a terminal anyway).
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// One stream to send or expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTarget {
    pub stream: u32,
    pub group: Ipv4Addr,
    pub port: u16,
}

/// Checks that `group` may be used by the lab.
pub fn check_group(group: Ipv4Addr) -> Result<(), UsageError> {
    if !group.is_multicast() {
        return usage(format!(
            "{group} is not a multicast group; use one in 239.0.0.0/8, e.g. 239.1.0.1"
        ));
    }
    if group.octets()[0] != 239 {
        return usage(format!(
            "{group} is outside 239.0.0.0/8; the lab only uses administratively scoped groups (239.x.y.z)"
        ));
    }
    Ok(())
}

/// Streams `0..n`: groups counted up from `base`, fixed port or port per stream.
pub fn stream_targets(
    n: u32,
    base: Ipv4Addr,
    port: u16,
    port_per_stream: bool,
) -> Result<Vec<StreamTarget>, UsageError> {
    if n == 0 {
        return usage("--streams must be at least 1");
    }
    check_group(base)?;
    let last = u64::from(u32::from(base)) + u64::from(n) - 1;
    if last > u64::from(u32::from(Ipv4Addr::new(239, 255, 255, 255))) {
        return usage(format!(
            "{n} groups from {base} run past 239.255.255.255; lower --streams or --group-base"
        ));
    }
    let ports = stream_ports(n, port, port_per_stream)?;
    Ok((0..n)
        .zip(ports)
        .map(|(k, port)| StreamTarget {
            stream: k,
            group: Ipv4Addr::from(u32::from(base) + k),
            port,
        })
        .collect())
}

/// The ports of streams `0..n`: `port` for all, or `port + k` with `port_per_stream`.
pub fn stream_ports(n: u32, port: u16, port_per_stream: bool) -> Result<Vec<u16>, UsageError> {
    if port == 0 {
        return usage("--port must be 1..=65535");
    }
    if port_per_stream && u64::from(port) + u64::from(n) > u64::from(u16::MAX) + 1 {
        return usage(format!(
            "{n} ports from {port} run past 65535; lower --port or --streams"
        ));
    }
    Ok((0..n)
        .map(|k| {
            if port_per_stream {
                port + k as u16
            } else {
                port
            }
        })
        .collect())
}

/// Checks that the directory an output file goes into exists.
pub fn check_output(path: Option<&PathBuf>, flag: &str) -> Result<(), UsageError> {
    let Some(path) = path else {
        return Ok(());
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if !parent.is_dir() {
        return usage(format!(
            "{flag} {}: directory {} does not exist; create it or choose another path",
            path.display(),
            parent.display()
        ));
    }
    Ok(())
}

/// A validated `send` command.
#[derive(Debug, Clone)]
pub struct SendConfig {
    pub interface: String,
    pub source: Option<Ipv4Addr>,
    pub targets: Vec<StreamTarget>,
    /// Aggregate rate; `None` = unpaced.
    pub total_pps: Option<f64>,
    pub size: usize,
    pub count: Option<u64>,
    pub duration: Option<Duration>,
    pub ttl: u8,
    pub mode: Mode,
    pub batch: usize,
    /// Packets per burst (1 = evenly spaced).
    pub burst: usize,
    pub json: Option<PathBuf>,
    pub quiet: bool,
}

impl SendArgs {
    /// Checks everything that needs no system access (MTU is checked by `send`).
    pub fn validate(&self) -> Result<SendConfig, UsageError> {
        let targets = stream_targets(
            self.streams,
            self.group_base,
            self.port,
            self.port_per_stream,
        )?;
        if !(MIN_SIZE..=MAX_SIZE).contains(&self.size) {
            return usage(format!(
                "--size {} is out of range; use {MIN_SIZE}..={MAX_SIZE} payload bytes",
                self.size
            ));
        }
        if self.ttl == 0 || self.ttl > MAX_TTL {
            return usage(format!(
                "--ttl {} is out of range; the lab allows 1..={MAX_TTL}",
                self.ttl
            ));
        }
        if self.count.is_none() && self.duration.is_none() {
            return usage(
                "give --count PACKETS_PER_STREAM and/or --duration SECS: every load must be bounded",
            );
        }
        if self.count == Some(0) {
            return usage("--count must be at least 1");
        }
        if self.batch == 0 || self.batch > 1024 {
            return usage(format!(
                "--batch {} is out of range; use 1..=1024",
                self.batch
            ));
        }
        if self.burst == 0 || self.burst > 1024 {
            return usage(format!(
                "--burst {} is out of range; use 1..=1024",
                self.burst
            ));
        }
        check_output(self.json.as_ref(), "--json")?;
        let total_pps = match (self.rate, self.total_rate) {
            (Some(Rate::Pps(r)), None) => Some(r * f64::from(self.streams)),
            (None, Some(Rate::Pps(r))) => Some(r),
            (Some(Rate::Max), None) | (None, Some(Rate::Max)) => None,
            _ => return usage("give exactly one of --rate PPS_PER_STREAM or --total-rate PPS"),
        };
        Ok(SendConfig {
            interface: self.interface.clone(),
            source: self.source,
            targets,
            total_pps,
            size: self.size,
            count: self.count,
            duration: self.duration,
            ttl: self.ttl,
            mode: self.mode,
            batch: self.batch,
            burst: self.burst,
            json: self.json.clone(),
            quiet: self.quiet,
        })
    }
}

/// A validated `sink` command.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    pub interface: String,
    pub groups: Vec<Ipv4Addr>,
    pub ports: Vec<u16>,
    pub duration: Option<Duration>,
    pub idle: Option<Duration>,
    pub ready_file: Option<PathBuf>,
    /// Bind the receive sockets to the interface (SO_BINDTODEVICE).
    pub bind_device: bool,
    pub json: Option<PathBuf>,
    pub quiet: bool,
}

impl SinkArgs {
    /// Checks the groups and ports.
    pub fn validate(&self) -> Result<SinkConfig, UsageError> {
        let (groups, ports) = match &self.groups {
            Some(list) => {
                if list.is_empty() {
                    return usage("--groups needs at least one group");
                }
                if let Some(n) = self.streams
                    && n as usize != list.len()
                {
                    return usage(format!(
                        "--streams {n} does not match the {} groups of --groups; drop --streams or fix the list",
                        list.len()
                    ));
                }
                for &g in list {
                    check_group(g)?;
                }
                let n = u32::try_from(list.len()).unwrap_or(u32::MAX);
                let ports = stream_ports(n, self.port, self.port_per_stream)?;
                let mut groups = list.clone();
                groups.sort();
                groups.dedup();
                (groups, ports)
            }
            None => {
                let Some(n) = self.streams else {
                    return usage(
                        "give --streams M (groups counted from --group-base) or --groups a,b,c",
                    );
                };
                let targets = stream_targets(n, self.group_base, self.port, self.port_per_stream)?;
                (
                    targets.iter().map(|t| t.group).collect(),
                    targets.iter().map(|t| t.port).collect(),
                )
            }
        };
        check_output(self.json.as_ref(), "--json")?;
        check_output(self.ready_file.as_ref(), "--ready-file")?;
        let mut ports = ports;
        ports.sort_unstable();
        ports.dedup();
        Ok(SinkConfig {
            interface: self.interface.clone(),
            groups,
            ports,
            duration: self.duration,
            idle: self.idle,
            ready_file: self.ready_file.clone(),
            bind_device: self.bind_device,
            json: self.json.clone(),
            quiet: self.quiet,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(args: &str) -> Result<SendConfig, String> {
        let argv = format!("loadgen send --interface veth0 {args}");
        let cli = Cli::try_parse_from(argv.split_whitespace()).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Send(a) => a.validate().map_err(|e| e.to_string()),
            Command::Sink(_) => Err("parsed as sink".into()),
        }
    }

    fn sink(args: &str) -> Result<SinkConfig, String> {
        let argv = format!("loadgen sink --interface veth0 {args}");
        let cli = Cli::try_parse_from(argv.split_whitespace()).map_err(|e| e.to_string())?;
        match cli.command {
            Command::Sink(a) => a.validate().map_err(|e| e.to_string()),
            Command::Send(_) => Err("parsed as send".into()),
        }
    }

    #[test]
    fn good_send_command() {
        let c = send("--streams 3 --rate 100 --count 10 --port-per-stream").unwrap();
        assert_eq!(c.total_pps, Some(300.0));
        assert_eq!(
            c.targets[2],
            StreamTarget {
                stream: 2,
                group: Ipv4Addr::new(239, 1, 0, 3),
                port: 5002
            }
        );
        let c = send("--streams 3 --total-rate max --duration 1.5").unwrap();
        assert_eq!(c.total_pps, None);
        assert_eq!(c.duration, Some(Duration::from_millis(1500)));
        assert_eq!(c.mode, Mode::Packet);
    }

    #[test]
    fn bad_send_commands() {
        let cases = [
            ("--streams 1 --rate 100", "bounded"),
            ("--streams 1 --rate 0 --count 1", "positive"),
            ("--streams 1 --rate -5 --count 1", "rate"),
            ("--streams 1 --rate 10 --count 1 --size 63", "--size"),
            ("--streams 1 --rate 10 --count 1 --size 8973", "--size"),
            ("--streams 1 --rate 10 --count 1 --ttl 9", "--ttl"),
            ("--streams 1 --rate 10 --count 1 --ttl 0", "--ttl"),
            ("--streams 0 --rate 10 --count 1", "--streams"),
            (
                "--streams 2 --rate 10 --count 1 --group-base 239.255.255.255",
                "239.255.255.255",
            ),
            (
                "--streams 1 --rate 10 --count 1 --group-base 224.1.0.1",
                "239.0.0.0/8",
            ),
            (
                "--streams 1 --rate 10 --count 1 --group-base 198.18.0.1",
                "not a multicast",
            ),
            (
                "--streams 1 --rate 10 --total-rate 5 --count 1",
                "cannot be used with",
            ),
            ("--streams 1 --count 1", "--rate"),
            (
                "--streams 10 --rate 1 --count 1 --port 65530 --port-per-stream",
                "65535",
            ),
        ];
        for (args, needle) in cases {
            let err = send(args).unwrap_err();
            assert!(err.contains(needle), "{args}: {err:?} lacks {needle:?}");
        }
    }

    #[test]
    fn sink_commands() {
        let c = sink("--streams 1000").unwrap();
        assert_eq!(c.groups.len(), 1000);
        assert_eq!(c.groups[999], Ipv4Addr::new(239, 2, 3, 232));
        assert_eq!(c.ports, vec![5000]);
        let c = sink("--groups 239.3.0.1,239.2.0.1 --port-per-stream --port 6000").unwrap();
        assert_eq!(
            c.groups,
            vec![Ipv4Addr::new(239, 2, 0, 1), Ipv4Addr::new(239, 3, 0, 1)]
        );
        assert_eq!(c.ports, vec![6000, 6001]);
        assert!(sink("").unwrap_err().contains("--streams"));
        assert!(
            sink("--groups 239.1.0.1 --streams 2")
                .unwrap_err()
                .contains("does not match")
        );
        assert!(
            sink("--groups 225.1.0.1")
                .unwrap_err()
                .contains("239.0.0.0/8")
        );
        assert!(
            sink("--streams 5 --idle 0")
                .unwrap_err()
                .contains("positive")
        );
    }

    #[test]
    fn port_ranges() {
        assert_eq!(stream_ports(1, 65535, true).unwrap(), vec![65535]);
        assert!(stream_ports(2, 65535, true).is_err());
        assert_eq!(stream_ports(3, 7000, false).unwrap(), vec![7000; 3]);
        assert!(stream_ports(1, 0, false).is_err());
    }

    #[test]
    fn rate_parsing() {
        assert_eq!(parse_rate("MAX"), Ok(Rate::Max));
        assert_eq!(parse_rate("2.5"), Ok(Rate::Pps(2.5)));
        assert!(parse_rate("nan").is_err());
        assert!(parse_rate("inf").is_err());
        assert!(parse_rate("").is_err());
    }
}
