//! Running `loadgen sink` and `loadgen send` in lab namespaces (command lines from
//! docs/interfaces.md) and reading their JSON summaries.
//!
//! Typical use: [`SinkSpec::start`] in the sink namespace (returns once the sink's ready file
//! exists), [`SendSpec::run`] in the gen namespace (bounded; returns the send summary), then
//! [`RunningSink::finish`] (waits for the sink's idle stop, else SIGTERM) for the sink summary.

use super::{ProcessPlacement, SpawnOptions, Spawned, spawn_in_netns};
use crate::binaries;
use anyhow::{Context, Result, bail};
use loadgen::summary::{SendSummary, SinkSummary};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use super::scratch::ScratchDir;

/// How long a sink may take to join its groups and write its ready file.
pub const SINK_READY_DEADLINE: Duration = Duration::from_secs(20);

/// What a `loadgen sink` should receive.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    pub netns: String,
    pub interface: String,
    /// Groups counted from `group_base` (ignored when `groups` is set).
    pub streams: u32,
    pub group_base: Ipv4Addr,
    /// Explicit groups instead of counting.
    pub groups: Option<Vec<Ipv4Addr>>,
    pub port: u16,
    /// Stop after this many seconds without packets (after the first one).
    pub idle: Duration,
    /// Hard stop.
    pub duration: Duration,
    /// Count only what arrives on `interface` (one sink per link).
    pub bind_device: bool,
    /// CPUs and scheduling class of the sink.
    pub placement: ProcessPlacement,
}

/// A started sink.
#[derive(Debug)]
pub struct RunningSink {
    child: Spawned,
    json: PathBuf,
}

impl SinkSpec {
    /// Starts the sink and waits until it has joined every group (its ready file exists).
    /// Several sinks may share one scratch directory: each one's files are named after its
    /// namespace and interface.
    pub fn start(&self, scratch: &ScratchDir) -> Result<RunningSink> {
        let loadgen = binaries::locate("loadgen")?;
        let stem = format!("sink-{}-{}", self.netns, self.interface);
        let ready = scratch.path(&format!("{stem}.ready"));
        let json = scratch.path(&format!("{stem}.json"));
        // A sink started before in this directory left its files: its ready file would
        // pass for this sink's (the first frames sent before this sink joined) and its
        // summary for this one's.
        clear_outputs(&[&ready, &json])?;
        let cmd = self.command(&loadgen, &ready, &json);
        let deadline = self.duration + Duration::from_secs(30);
        let opts = SpawnOptions::with_deadline(deadline).placed(&self.placement);
        let child = spawn_in_netns(&self.netns, cmd, opts)?;
        wait_ready(&child, &ready)?;
        Ok(RunningSink { child, json })
    }

    /// The `loadgen sink` command line (docs/interfaces.md).
    pub fn command(&self, loadgen: &Path, ready: &Path, json: &Path) -> Command {
        let mut cmd = Command::new(loadgen);
        cmd.arg("sink")
            .args(["--interface", &self.interface])
            .args(["--port", &self.port.to_string()])
            .args(["--idle", &secs(self.idle)])
            .args(["--duration", &secs(self.duration)])
            .arg("--ready-file")
            .arg(ready)
            .arg("--json")
            .arg(json)
            .arg("--quiet");
        if self.bind_device {
            cmd.arg("--bind-device");
        }
        match &self.groups {
            Some(groups) => {
                let list: Vec<String> = groups.iter().map(Ipv4Addr::to_string).collect();
                cmd.args(["--groups", &list.join(",")]);
            }
            None => {
                cmd.args(["--streams", &self.streams.to_string()])
                    .args(["--group-base", &self.group_base.to_string()]);
            }
        }
        cmd
    }
}

fn wait_ready(child: &Spawned, ready: &Path) -> Result<()> {
    let end = Instant::now() + SINK_READY_DEADLINE;
    loop {
        if ready.exists() {
            return Ok(());
        }
        if let Some(status) = child.wait_timeout(Duration::from_millis(10))? {
            bail!(
                "loadgen sink exited before it was ready ({status}): {}",
                child.stderr_text().trim()
            );
        }
        if Instant::now() >= end {
            bail!(
                "loadgen sink was not ready within {SINK_READY_DEADLINE:?}: {}",
                child.stderr_text().trim()
            );
        }
    }
}

impl RunningSink {
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Waits up to `wait` for the sink to stop by itself (idle), else SIGTERMs it; then reads
    /// its summary.
    pub fn finish(mut self, wait: Duration) -> Result<SinkSummary> {
        let status = match self.child.wait_timeout(wait)? {
            Some(status) => status,
            None => self.child.stop(Duration::from_secs(5))?,
        };
        self.child.finish_output(Duration::from_secs(2));
        if super::interrupted() {
            bail!("interrupted");
        }
        let text = std::fs::read_to_string(&self.json).with_context(|| {
            format!(
                "loadgen sink wrote no summary ({status}): {}",
                self.child.stderr_text().trim()
            )
        })?;
        let summary: SinkSummary =
            serde_json::from_str(&text).context("parsing the loadgen sink summary")?;
        if summary.schema != loadgen::summary::SINK_SCHEMA {
            bail!(
                "loadgen sink summary has schema {:?}, expected {}",
                summary.schema,
                loadgen::summary::SINK_SCHEMA
            );
        }
        Ok(summary)
    }
}

/// Rate of a sender.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SendRate {
    /// Packets per second per stream.
    PerStream(f64),
    /// Packets per second over all streams.
    Total(f64),
    /// Unpaced (`--total-rate max`).
    Max,
}

/// What a `loadgen send` should send (bounded by `duration` and optional `count`).
#[derive(Debug, Clone)]
pub struct SendSpec {
    pub netns: String,
    pub interface: String,
    pub source: Ipv4Addr,
    pub streams: u32,
    pub group_base: Ipv4Addr,
    pub port: u16,
    pub rate: SendRate,
    pub size: usize,
    /// Packets per stream.
    pub count: Option<u64>,
    pub duration: Duration,
    /// CPUs and scheduling class of the sender.
    pub placement: ProcessPlacement,
}

impl SendSpec {
    /// Runs the sender to completion (bounded by its duration plus a margin).
    pub fn run(&self, scratch: &ScratchDir) -> Result<SendSummary> {
        let loadgen = binaries::locate("loadgen")?;
        let json = scratch.path("send.json");
        clear_outputs(&[&json])?;
        let cmd = self.command(&loadgen, &json);
        let limit = self.duration + Duration::from_secs(20);
        let opts = SpawnOptions::with_deadline(limit).placed(&self.placement);
        let child = spawn_in_netns(&self.netns, cmd, opts)?;
        let (status, _, stderr) = child.wait_output(limit)?;
        if super::interrupted() {
            bail!("interrupted");
        }
        if !status.success() {
            bail!("loadgen send failed ({status}): {}", stderr.trim());
        }
        let text = std::fs::read_to_string(&json).context("loadgen send wrote no summary")?;
        serde_json::from_str(&text).context("parsing the loadgen send summary")
    }

    /// The `loadgen send` command line (docs/interfaces.md); bounded by `--duration`.
    pub fn command(&self, loadgen: &Path, json: &Path) -> Command {
        let mut cmd = Command::new(loadgen);
        cmd.arg("send")
            .args(["--interface", &self.interface])
            .args(["--source", &self.source.to_string()])
            .args(["--streams", &self.streams.to_string()])
            .args(["--group-base", &self.group_base.to_string()])
            .args(["--port", &self.port.to_string()])
            .args(["--size", &self.size.to_string()])
            .args(["--duration", &secs(self.duration)])
            .arg("--json")
            .arg(json)
            .arg("--quiet");
        match self.rate {
            SendRate::PerStream(pps) => cmd.args(["--rate", &pps.to_string()]),
            SendRate::Total(pps) => cmd.args(["--total-rate", &pps.to_string()]),
            SendRate::Max => cmd.args(["--total-rate", "max"]),
        };
        if let Some(count) = self.count {
            cmd.args(["--count", &count.to_string()]);
        }
        cmd
    }
}

/// Removes what an earlier run left at `paths`, so that only this run's files are read.
fn clear_outputs(paths: &[&Path]) -> Result<()> {
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("removing {} left by an earlier run", path.display())
                });
            }
        }
    }
    Ok(())
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_left_by_an_earlier_run_are_removed_and_missing_ones_are_fine() {
        let scratch = ScratchDir::new("clear-outputs").unwrap();
        let (ready, json) = (scratch.path("s.ready"), scratch.path("s.json"));
        std::fs::write(&ready, "ready\n").unwrap();
        clear_outputs(&[&ready, &json]).unwrap();
        assert!(!ready.exists() && !json.exists());
        let kept = scratch.path("other.json");
        std::fs::write(&kept, "{}").unwrap();
        clear_outputs(&[&json]).unwrap();
        assert!(kept.exists(), "only the named files go");
        // A path that cannot be removed is an error that names it.
        let dir = scratch.path("a-directory");
        std::fs::create_dir(&dir).unwrap();
        let err = clear_outputs(&[&dir]).unwrap_err();
        assert!(format!("{err:#}").contains("a-directory"), "{err:#}");
    }

    fn args(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn has(args: &[String], flag: &str, value: &str) -> bool {
        args.windows(2).any(|w| w[0] == flag && w[1] == value)
    }

    #[test]
    fn sink_command_follows_the_contract() {
        let mut spec = SinkSpec {
            netns: "mlab-abc123-sink".into(),
            interface: "mlabc123-l1b".into(),
            streams: 50,
            group_base: Ipv4Addr::new(239, 2, 0, 1),
            groups: None,
            port: 5000,
            idle: Duration::from_secs(1),
            duration: Duration::from_millis(2500),
            bind_device: true,
            placement: ProcessPlacement::default(),
        };
        let a = args(&spec.command(
            Path::new("/x/loadgen"),
            Path::new("/t/r"),
            Path::new("/t/j"),
        ));
        assert_eq!(a[0], "sink");
        assert!(has(&a, "--interface", "mlabc123-l1b"));
        assert!(has(&a, "--streams", "50"));
        assert!(has(&a, "--group-base", "239.2.0.1"));
        assert!(has(&a, "--duration", "2.5"));
        assert!(has(&a, "--idle", "1"));
        assert!(has(&a, "--ready-file", "/t/r"));
        assert!(has(&a, "--json", "/t/j"));
        assert!(a.contains(&"--bind-device".to_string()));
        spec.groups = Some(vec![
            Ipv4Addr::new(239, 1, 0, 1),
            Ipv4Addr::new(239, 1, 0, 9),
        ]);
        let a = args(&spec.command(
            Path::new("/x/loadgen"),
            Path::new("/t/r"),
            Path::new("/t/j"),
        ));
        assert!(has(&a, "--groups", "239.1.0.1,239.1.0.9"));
        assert!(!a.contains(&"--streams".to_string()));
    }

    #[test]
    fn send_command_follows_the_contract() {
        let mut spec = SendSpec {
            netns: "mlab-abc123-gen".into(),
            interface: "mlabc123-l1a".into(),
            source: Ipv4Addr::new(198, 18, 1, 1),
            streams: 8,
            group_base: Ipv4Addr::new(239, 1, 0, 1),
            port: 5000,
            rate: SendRate::PerStream(200.0),
            size: 64,
            count: Some(400),
            duration: Duration::from_secs(2),
            placement: ProcessPlacement::default(),
        };
        let a = args(&spec.command(Path::new("/x/loadgen"), Path::new("/t/j")));
        assert_eq!(a[0], "send");
        assert!(has(&a, "--source", "198.18.1.1"));
        assert!(has(&a, "--rate", "200"));
        assert!(has(&a, "--count", "400"));
        assert!(has(&a, "--duration", "2"));
        assert!(has(&a, "--size", "64"));
        spec.rate = SendRate::Max;
        spec.count = None;
        let a = args(&spec.command(Path::new("/x/loadgen"), Path::new("/t/j")));
        assert!(has(&a, "--total-rate", "max"));
        assert!(!a.contains(&"--count".to_string()));
    }
}
