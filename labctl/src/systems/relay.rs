//! The relay under test: `relay run --membership pool|single [--helper-buffer 8M]` in the relay
//! namespace, rules added one at a time over its control socket (JSON lines, docs/interfaces.md).

use super::{
    Installer as SystemInstaller, Layout, RuleAdd, Running, StartError, SystemSpec, stderr_suffix,
};
use crate::binaries;
use crate::process::loadgen::ScratchDir;
use crate::process::{SpawnOptions, Spawned, spawn_in_netns};
use crate::results::Capacity;
use crate::scenario::SystemKind;
use anyhow::{Context, Result, anyhow, bail};
use netio::membership::Strategy;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::ops::Range;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// How long the relay may take to answer `list` on its control socket.
const READY_DEADLINE: Duration = Duration::from_secs(15);
/// Longest wait for one control reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// A control connection unused this long is replaced before its next request: the relay closes
/// idle connections after 30 s by default.
const IDLE_RECONNECT: Duration = Duration::from_secs(20);

pub fn start(spec: &SystemSpec, layout: &Layout) -> Result<Running, StartError> {
    let kind = spec.kind;
    let binary = match &spec.relay_binary {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => {
            return Err(StartError::Skip(format!(
                "relay binary {} does not exist (build it, or pass --build NAME=PATH)",
                path.display()
            )));
        }
        None => binaries::locate("relay").map_err(StartError::Failed)?,
    };
    let ns = layout
        .relay_ns
        .as_deref()
        .ok_or_else(|| anyhow!("the relay needs a topology with a relay namespace"))?;
    let scratch = ScratchDir::new("relay")?;
    let control = scratch.path("control.sock");
    let mut cmd = Command::new(&binary);
    cmd.arg("run").arg("--control").arg(&control);
    let (strategy, helper_buffer) = membership_of(kind)?;
    cmd.arg("--membership").arg(strategy.to_string());
    if let Some(size) = helper_buffer {
        cmd.args(["--helper-buffer", size]);
    }
    cmd.args(&spec.relay_args);
    let opts = SpawnOptions::default().placed(&layout.system_placement);
    let child = spawn_in_netns(ns, cmd, opts)?;
    let client = wait_ready(&child, &control)?;
    Ok(Running {
        kind,
        children: vec![child],
        installer: SystemInstaller::Relay(Installer {
            client,
            accepted: 0,
            refusal: None,
        }),
        notes: vec![format!(
            "rules added one at a time over the control socket; relay {}{}",
            binary.display(),
            if spec.relay_args.is_empty() {
                String::new()
            } else {
                format!(" with {}", spec.relay_args.join(" "))
            }
        )],
        _scratch: Some(scratch),
    })
}

/// The membership strategy (named by its `ValueEnum` name on the command line) and the forced
/// helper buffer of a relay configuration.
fn membership_of(kind: SystemKind) -> Result<(Strategy, Option<&'static str>)> {
    match kind {
        SystemKind::RelayPool => Ok((Strategy::Pool, None)),
        SystemKind::RelaySingle => Ok((Strategy::Single, None)),
        SystemKind::RelaySingle8mb => Ok((Strategy::Single, Some("8M"))),
        other => bail!("{other} is not a relay configuration"),
    }
}

/// Adds rules over the control socket and remembers the first refusal.
#[derive(Debug)]
pub(super) struct Installer {
    client: Control,
    accepted: u32,
    /// (input index, errno, message) of the first refusal.
    refusal: Option<(u32, i32, String)>,
}

impl Installer {
    /// Adds one rule per input of `range`, stamped, stopping at the first refusal (the
    /// capacity); nothing is added after a refusal.
    pub(super) fn install(&mut self, layout: &Layout, range: Range<u32>) -> Result<Vec<RuleAdd>> {
        let mut adds = Vec::new();
        for i in range {
            if self.refusal.is_some() {
                break;
            }
            let rule = rule_text(layout, i)?;
            let at_ns = super::monotonic_ns();
            let reply = self
                .client
                .request(&serde_json::json!({"cmd": "add", "rule": rule}))?;
            if reply["ok"] == serde_json::Value::Bool(true) {
                self.accepted += 1;
                adds.push(RuleAdd { input: i, at_ns });
                continue;
            }
            let error = reply["error"].as_str().unwrap_or("refused").to_owned();
            let Some(errno) = reply["errno"].as_i64().map(|e| e as i32) else {
                // A refusal that is not a kernel limit is a bug in the rule or the relay.
                bail!("the relay refused rule {rule:?}: {error}");
            };
            self.refusal = Some((i, errno, error));
        }
        Ok(adds)
    }

    /// Adds (`add`) or removes the rule of input `i` (rule churn of a soak run).
    pub(super) fn change(&mut self, layout: &Layout, i: u32, add: bool) -> Result<()> {
        let rule = rule_text(layout, i)?;
        let cmd = if add { "add" } else { "remove" };
        let reply = self
            .client
            .request(&serde_json::json!({"cmd": cmd, "rule": rule}))?;
        if reply["ok"] != serde_json::Value::Bool(true) {
            bail!(
                "the relay refused `{cmd} {rule}`: {}",
                reply["error"].as_str().unwrap_or("no reason given")
            );
        }
        Ok(())
    }

    /// The `timing` part of the relay's `stats` answer (absent without `--timing`).
    pub(super) fn stage_timing(&mut self) -> Result<Vec<crate::results::StageTime>> {
        let reply = self.client.request(&serde_json::json!({"cmd": "stats"}))?;
        match reply.get("timing") {
            None | Some(serde_json::Value::Null) => Ok(Vec::new()),
            Some(timing) => serde_json::from_value(timing.clone())
                .context("the relay's stage timing is not in the expected form"),
        }
    }

    /// Rules accepted and the first refusal, over `layout.streams` inputs.
    pub(super) fn capacity(&self, layout: &Layout) -> Capacity {
        let mut capacity = Capacity {
            tried: layout.streams,
            accepted: self.accepted,
            ..Capacity::default()
        };
        if let Some((i, errno, error)) = &self.refusal {
            capacity.first_refused = Some(*i);
            capacity.refused_group = Some(layout.input_group(*i).to_string());
            capacity.errno = Some(*errno);
            capacity.error = Some(error.clone());
        }
        capacity
    }
}

/// The rule of input `i`: `IN:GROUP:PORT -> OUT0:GROUP0:PORT0, OUT1:...`.
pub fn rule_text(layout: &Layout, i: u32) -> Result<String> {
    let input = layout
        .relay_in
        .as_ref()
        .context("no relay ingress interface")?;
    if layout.relay_out.len() < layout.fanout as usize {
        bail!(
            "fan-out {} needs {} egress links, the topology has {}",
            layout.fanout,
            layout.fanout,
            layout.relay_out.len()
        );
    }
    let outputs: Vec<String> = (0..layout.fanout)
        .map(|k| {
            format!(
                "{}:{}:{}",
                layout.relay_out[k as usize].ifname,
                layout.output_group(k, i),
                layout.output_port(k)
            )
        })
        .collect();
    Ok(format!(
        "{}:{}:{} -> {}",
        input.ifname,
        layout.input_group(i),
        super::BASE_PORT,
        outputs.join(", ")
    ))
}

/// A connection to the relay's control socket. The relay closes a connection that stays idle
/// (30 s by default, `relay run --control-idle-timeout`), and a point can measure for longer than
/// that between two requests, so an idle connection is replaced before it is used, and a request
/// the relay never received (the write failed on a closed connection) is sent again once on a
/// new one. A request that was written is never sent twice.
#[derive(Debug)]
struct Control {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    last_used: Instant,
}

impl Control {
    fn connect(path: &Path) -> std::io::Result<Control> {
        Ok(Control {
            path: path.to_owned(),
            reader: BufReader::new(Self::open(path)?),
            last_used: Instant::now(),
        })
    }

    fn open(path: &Path) -> std::io::Result<UnixStream> {
        let stream = UnixStream::connect(path)?;
        stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(stream)
    }

    fn reconnect(&mut self) -> Result<()> {
        let stream = Self::open(&self.path).with_context(|| {
            format!(
                "reconnecting to the relay's control socket {}",
                self.path.display()
            )
        })?;
        self.reader = BufReader::new(stream);
        Ok(())
    }

    fn request(&mut self, request: &serde_json::Value) -> Result<serde_json::Value> {
        if self.last_used.elapsed() >= IDLE_RECONNECT {
            self.reconnect()?;
        }
        let mut line = request.to_string();
        line.push('\n');
        if let Err(e) = self.reader.get_mut().write_all(line.as_bytes()) {
            if !matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset) {
                return Err(e).context("writing to the relay's control socket");
            }
            self.reconnect()?;
            self.reader
                .get_mut()
                .write_all(line.as_bytes())
                .context("writing to the relay's control socket (after reconnecting)")?;
        }
        let mut reply = String::new();
        let n = self
            .reader
            .read_line(&mut reply)
            .context("reading the relay's control reply")?;
        self.last_used = Instant::now();
        if n == 0 {
            bail!("the relay closed its control socket");
        }
        serde_json::from_str(&reply)
            .with_context(|| format!("the relay's control reply is not JSON: {}", reply.trim()))
    }
}

fn wait_ready(child: &Spawned, control: &Path) -> Result<Control> {
    let end = Instant::now() + READY_DEADLINE;
    loop {
        if let Ok(mut c) = Control::connect(control)
            && let Ok(reply) = c.request(&serde_json::json!({"cmd": "list"}))
            && reply["ok"] == serde_json::Value::Bool(true)
        {
            return Ok(c);
        }
        if let Some(status) = child.wait_timeout(Duration::from_millis(20))? {
            bail!(
                "the relay exited before it was ready ({status}){}",
                stderr_suffix(child)
            );
        }
        if Instant::now() >= end {
            bail!(
                "the relay did not answer `list` on {} within {READY_DEADLINE:?}{}",
                control.display(),
                stderr_suffix(child)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Endpoint;
    use std::net::Ipv4Addr;

    #[test]
    fn rule_text_follows_the_contract() {
        let ep = |n: &str| Endpoint {
            netns: "ns".into(),
            ifname: n.into(),
            addr: Ipv4Addr::new(198, 18, 1, 2),
        };
        let layout = Layout {
            streams: 2,
            fanout: 2,
            relay_ns: Some("ns".into()),
            relay_in: Some(ep("mlabc-rin")),
            relay_out: vec![ep("o0"), ep("o1")],
            generator: ep("g"),
            sinks: vec![ep("s0"), ep("s1")],
            same_group: false,
            system_placement: Default::default(),
        };
        assert_eq!(
            rule_text(&layout, 1).unwrap(),
            "mlabc-rin:239.1.0.2:5000 -> o0:239.2.0.2:5000, o1:239.3.0.2:5001"
        );
    }

    /// Serves one request per connection on `path`, replying with the connection's number, and
    /// closes each connection after its reply.
    fn one_request_per_connection(
        path: &Path,
        connections: usize,
    ) -> std::thread::JoinHandle<Vec<String>> {
        let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let mut requests = Vec::new();
            for n in 1..=connections {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                requests.push(line.trim().to_owned());
                let reply = format!("{{\"ok\":true,\"n\":{n}}}\n");
                reader.get_mut().write_all(reply.as_bytes()).unwrap();
            }
            requests
        })
    }

    #[test]
    fn a_request_on_a_connection_the_relay_closed_is_sent_on_a_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let server = one_request_per_connection(&path, 2);
        let mut control = Control::connect(&path).unwrap();
        let first = control
            .request(&serde_json::json!({"cmd": "list"}))
            .unwrap();
        assert_eq!(first["n"], 1);
        // The server closed the first connection after its reply: wait until the close is seen.
        let mut probe = [0u8; 1];
        assert_eq!(
            std::io::Read::read(&mut control.reader, &mut probe).unwrap(),
            0
        );
        let second = control
            .request(&serde_json::json!({"cmd": "stats"}))
            .unwrap();
        assert_eq!(
            second["n"], 2,
            "the second request went over a new connection"
        );
        let requests = server.join().unwrap();
        assert_eq!(requests, [r#"{"cmd":"list"}"#, r#"{"cmd":"stats"}"#]);
    }

    #[test]
    fn an_idle_connection_is_replaced_before_the_relay_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        let server = one_request_per_connection(&path, 2);
        let mut control = Control::connect(&path).unwrap();
        assert_eq!(
            control
                .request(&serde_json::json!({"cmd": "list"}))
                .unwrap()["n"],
            1
        );
        // As if the connection had been idle for longer than the reconnect age.
        control.last_used = Instant::now()
            .checked_sub(IDLE_RECONNECT)
            .expect("the monotonic clock is older than the reconnect age");
        assert_eq!(
            control
                .request(&serde_json::json!({"cmd": "list"}))
                .unwrap()["n"],
            2
        );
        assert_eq!(server.join().unwrap().len(), 2);
    }

    #[test]
    fn relay_kinds_name_their_membership_strategy() {
        let args = |kind| {
            membership_of(kind)
                .map(|(strategy, buffer)| (strategy.to_string(), buffer))
                .unwrap()
        };
        assert_eq!(args(SystemKind::RelayPool), ("pool".into(), None));
        assert_eq!(args(SystemKind::RelaySingle), ("single".into(), None));
        assert_eq!(
            args(SystemKind::RelaySingle8mb),
            ("single".into(), Some("8M"))
        );
        assert!(membership_of(SystemKind::Defined).is_err());
    }
}
