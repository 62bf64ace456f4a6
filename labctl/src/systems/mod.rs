//! Systems under test: what runs in the relay namespace and forwards the input groups.
//!
//! [`start`] brings a system up on a built topology with no rules yet and returns a
//! [`Running`] system: its processes by PID (for /proc sampling). [`Running::install`] then adds
//! the forwarding rules of a range of input streams (one at a time, so the first refused
//! membership is the system's capacity, and optionally stamped with CLOCK_MONOTONIC for the
//! join delay), and [`Running::capacity`] waits for the memberships and reports what was
//! refused. This project's relay is built in (`relay`); every other system - socat, kernel
//! routing, anyone's relay - comes from a definition file (`defined`, `systems/*.toml`). A
//! missing tool of a shipped definition is a [`StartError::Skip`], not a failure.
//!
//! Addresses follow docs/interfaces.md: input i is 239.1.0.1 + i, output k of input i is
//! 239.(2+k).0.1 + i on port 5000 + k ([`Layout`]). A system that cannot rename (the kernel)
//! keeps the input group and port on every output.

mod defined;
mod igmp;
mod relay;

use crate::definition::Definition;
use crate::process::{ProcessPlacement, Spawned};
use crate::results::Capacity;
use crate::scenario::SystemKind;
use crate::topology::{Endpoint, Topology};
use anyhow::Result;
use std::net::Ipv4Addr;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use igmp::joined_groups;

/// UDP port of input streams and of output 0.
pub const BASE_PORT: u16 = 5000;
/// First input group.
pub const INPUT_BASE: Ipv4Addr = Ipv4Addr::new(239, 1, 0, 1);
/// Grace between SIGTERM and SIGKILL when a system is stopped.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Where the streams of one point come from and go to.
#[derive(Debug, Clone)]
pub struct Layout {
    pub streams: u32,
    pub fanout: u32,
    /// The relay namespace (`None` for `direct`).
    pub relay_ns: Option<String>,
    /// The relay's ingress interface.
    pub relay_in: Option<Endpoint>,
    /// The relay's egress interfaces (one per output).
    pub relay_out: Vec<Endpoint>,
    /// The generator (its address is the streams' source).
    pub generator: Endpoint,
    /// Sink-side interfaces (one per output; one for direct).
    pub sinks: Vec<Endpoint>,
    /// True when outputs keep the input group and port (kernel forwarding, direct).
    pub same_group: bool,
    /// CPUs and scheduling class of the system's processes (see `crate::placement`).
    pub system_placement: ProcessPlacement,
}

impl Layout {
    /// The layout of `system` on `topology` for `streams` inputs x `fanout` outputs.
    /// `same_group`: outputs keep the input group (`direct`, systems that cannot rename) is
    /// decided by the caller for defined systems; built-ins rename, `direct` does not.
    pub fn new(system: SystemKind, topology: &Topology, streams: u32, fanout: u32) -> Layout {
        Layout {
            streams,
            fanout,
            relay_ns: topology.relay_in().map(|e| e.netns.clone()),
            relay_in: topology.relay_in().cloned(),
            relay_out: topology.relay_out().to_vec(),
            generator: topology.generator().clone(),
            sinks: topology.sinks().to_vec(),
            same_group: system == SystemKind::Direct,
            system_placement: ProcessPlacement::default(),
        }
    }

    /// Group of input stream `i`.
    pub fn input_group(&self, i: u32) -> Ipv4Addr {
        offset(INPUT_BASE, i)
    }

    /// First group of output `k`.
    pub fn output_base(&self, k: u32) -> Ipv4Addr {
        if self.same_group {
            INPUT_BASE
        } else {
            Ipv4Addr::new(239, (2 + k).min(255) as u8, 0, 1)
        }
    }

    /// Group of output `k` of input `i`.
    pub fn output_group(&self, k: u32, i: u32) -> Ipv4Addr {
        offset(self.output_base(k), i)
    }

    /// UDP port of output `k`.
    pub fn output_port(&self, k: u32) -> u16 {
        if self.same_group {
            BASE_PORT
        } else {
            BASE_PORT + k as u16
        }
    }

    /// The load generator's run for this layout: every input stream from the generator's
    /// interface, unbounded in count (`count: None`) and bounded by `duration`.
    pub fn send_spec(
        &self,
        rate: crate::process::loadgen::SendRate,
        size: u32,
        duration: Duration,
        placement: &ProcessPlacement,
    ) -> crate::process::loadgen::SendSpec {
        crate::process::loadgen::SendSpec {
            netns: self.generator.netns.clone(),
            interface: self.generator.ifname.clone(),
            source: self.generator.addr,
            streams: self.streams,
            group_base: INPUT_BASE,
            port: BASE_PORT,
            rate,
            size: size as usize,
            count: None,
            duration,
            placement: placement.clone(),
        }
    }

    /// Number of outputs (sinks) actually present: the fan-out, or 1 for direct.
    pub fn outputs(&self) -> u32 {
        if self.relay_ns.is_none() {
            1
        } else {
            self.fanout
        }
    }
}

fn offset(base: Ipv4Addr, i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(base).wrapping_add(i))
}

/// Why a system did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A tool is missing: the point is skipped.
    #[error("{0}")]
    Skip(String),
    /// Anything else: the point failed.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
}

/// A system forwarding in the relay namespace.
#[derive(Debug)]
pub struct Running {
    pub kind: SystemKind,
    children: Vec<Spawned>,
    installer: Installer,
    pub notes: Vec<String>,
    /// Scratch files (sockets, configs), removed on drop.
    _scratch: Option<crate::process::loadgen::ScratchDir>,
}

/// How a system's rules are installed (system-specific state).
#[derive(Debug)]
enum Installer {
    /// `direct`: nothing to install.
    Nothing,
    Relay(relay::Installer),
    Defined(Box<defined::Installer>),
}

/// One rule add, stamped: input stream index and CLOCK_MONOTONIC nanoseconds just before the
/// add was issued (request sent, process spawned, smcroutectl started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuleAdd {
    pub input: u32,
    pub at_ns: u64,
}

impl Running {
    /// This project's relay's per-stage timing so far (`relay run --timing`); empty for other
    /// systems or a relay started without it.
    pub fn stage_timing(&mut self) -> Result<Vec<crate::results::StageTime>> {
        match &mut self.installer {
            Installer::Relay(relay) => relay.stage_timing(),
            _ => Ok(Vec::new()),
        }
    }

    /// PIDs of the system's processes (for /proc sampling).
    pub fn pids(&self) -> Vec<u32> {
        match &self.installer {
            Installer::Defined(d) => d.pids(),
            _ => self.children.iter().map(Spawned::pid).collect(),
        }
    }

    /// True when rules can be added one at a time while the system runs (the join delay is
    /// measured only then).
    pub fn can_add_live(&self) -> bool {
        match &self.installer {
            Installer::Defined(d) => d.can_add_live(),
            _ => true,
        }
    }

    /// Whether the system joins its input groups (a definition's `can.joins`; the relay does).
    pub fn joins(&self) -> bool {
        match &self.installer {
            Installer::Defined(d) => d.joins(),
            _ => true,
        }
    }

    /// Installs the rules of the inputs in `range`, one at a time, in order. With `timed`, every
    /// rule is issued on its own (one smcroutectl call per rule for the kernel) and stamped; the
    /// stamps of the rules issued are returned. A refusal is not an error here: it shows in
    /// [`Running::capacity`] (the relay stops adding at its first refusal).
    pub fn install(
        &mut self,
        layout: &Layout,
        range: Range<u32>,
        timed: bool,
    ) -> Result<Vec<RuleAdd>> {
        match &mut self.installer {
            Installer::Nothing => Ok(Vec::new()),
            Installer::Relay(r) => r.install(layout, range),
            Installer::Defined(d) => d.install(layout, range, timed, &mut self.children),
        }
    }

    /// Adds (`add`) or removes the rule of input `i` at run time.
    pub fn change_rule(&mut self, layout: &Layout, i: u32, add: bool) -> Result<()> {
        match &mut self.installer {
            Installer::Relay(r) => r.change(layout, i, add),
            Installer::Defined(d) => d.change(layout, i, add, &mut self.children),
            Installer::Nothing => anyhow::bail!("{} has no rules", self.kind),
        }
    }

    /// Waits until the memberships of the installed rules show (or stop appearing) and reports
    /// the capacity over all `layout.streams` inputs; `None` for `direct`.
    pub fn capacity(&mut self, layout: &Layout) -> Result<Option<Capacity>> {
        let capacity = match &self.installer {
            Installer::Nothing => return Ok(None),
            Installer::Relay(r) => r.capacity(layout),
            Installer::Defined(d) => d.capacity(layout, &self.children)?,
        };
        Ok(Some(capacity))
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace) and reaps it. Returns a
    /// description of the processes that had died before the stop, if any.
    pub fn stop(self) -> Option<String> {
        let mut dead = Vec::new();
        if let Installer::Defined(d) = &self.installer {
            dead = d.died(&self.children);
            d.stop_all();
        }
        for child in &self.children {
            if !child.is_running() && !matches!(self.installer, Installer::Defined(_)) {
                dead.push(format!(
                    "PID {} exited early: {}",
                    child.pid(),
                    child.stderr_text().trim()
                ));
            }
        }
        // Many socats: stop them from a few threads at once (each stop waits for its child).
        let per_thread = self.children.len().div_ceil(8).max(1);
        std::thread::scope(|scope| {
            for chunk in self.children.chunks(per_thread) {
                scope.spawn(move || {
                    for child in chunk {
                        let _ = child.stop(STOP_GRACE);
                    }
                });
            }
        });
        (!dead.is_empty()).then(|| dead.join("; "))
    }
}

/// What to start: a kind and, for this project's relay, the binary and extra arguments of a
/// named build (`relay/pool@NAME`); for a defined system, its definition.
#[derive(Debug, Clone)]
pub struct SystemSpec {
    pub kind: SystemKind,
    /// The relay binary; `None` = the current build (`binaries::locate("relay")`).
    pub relay_binary: Option<PathBuf>,
    /// Extra `relay run` arguments.
    pub relay_args: Vec<String>,
    /// With [`SystemKind::Defined`]: the loaded definition.
    pub definition: Option<Arc<Definition>>,
}

impl SystemSpec {
    /// The current build of `kind`.
    pub fn of(kind: SystemKind) -> SystemSpec {
        SystemSpec {
            kind,
            relay_binary: None,
            relay_args: Vec::new(),
            definition: None,
        }
    }
}

/// Brings the system up on the layout, with no rules yet. `direct` starts nothing.
pub fn start(spec: &SystemSpec, layout: &Layout) -> Result<Running, StartError> {
    let kind = spec.kind;
    match kind {
        SystemKind::Direct => Ok(Running {
            kind,
            children: Vec::new(),
            installer: Installer::Nothing,
            notes: Vec::new(),
            _scratch: None,
        }),
        SystemKind::RelayPool | SystemKind::RelaySingle | SystemKind::RelaySingle8mb => {
            relay::start(spec, layout)
        }
        SystemKind::Defined => match &spec.definition {
            Some(def) => defined::start(def, layout),
            None => Err(StartError::Failed(anyhow::anyhow!(
                "a defined system needs its definition"
            ))),
        },
    }
}

/// CLOCK_MONOTONIC now, nanoseconds: the clock `loadgen sink` stamps arrivals with (one clock
/// for every network namespace of the host).
pub fn monotonic_ns() -> u64 {
    netio::clock::monotonic_ns()
}

/// Sysctls a system needs in the relay namespace (on top of the scenario's).
pub fn required_sysctls(spec: &SystemSpec) -> Vec<(String, String)> {
    spec.definition
        .as_ref()
        .map(|d| d.sysctls().clone().into_iter().collect())
        .unwrap_or_default()
}

/// Capacity from the joined set: the first input group (in order) that is not joined.
fn capacity_from_joins(
    layout: &Layout,
    joined: &std::collections::HashSet<Ipv4Addr>,
    errno: Option<i32>,
    error: Option<String>,
) -> Capacity {
    capacity_from(
        layout,
        |i| joined.contains(&layout.input_group(i)),
        errno,
        error,
    )
}

/// Capacity from what a system took: the first stream (in order) for which `took` is false.
fn capacity_from(
    layout: &Layout,
    took: impl Fn(u32) -> bool,
    errno: Option<i32>,
    error: Option<String>,
) -> Capacity {
    let first_missing = (0..layout.streams).find(|&i| !took(i));
    Capacity {
        tried: layout.streams,
        accepted: first_missing.unwrap_or(layout.streams),
        first_refused: first_missing,
        refused_group: first_missing.map(|i| layout.input_group(i).to_string()),
        errno: first_missing.and(errno),
        error: first_missing.and(error),
    }
}

/// `": <last stderr line>"` of a child, or nothing when it printed nothing.
fn stderr_suffix(child: &Spawned) -> String {
    let text = child.stderr_text();
    match text.trim().lines().last() {
        Some(line) if !line.trim().is_empty() => format!(": {}", line.trim()),
        _ => String::new(),
    }
}

/// Checks made before a point builds anything: a defined system's required programs are
/// installed and it can do the point's fan-out. `Skip` says why the point is not measured.
pub fn preflight(spec: &SystemSpec, fanout: u32) -> Result<(), StartError> {
    let Some(def) = &spec.definition else {
        return Ok(());
    };
    if let Some(refusal) = def.refusal(fanout) {
        return Err(StartError::Skip(refusal));
    }
    defined::check_requirements(def)
}

/// errno guessed from a tool's error text (socat, smcroutectl print strerror()).
fn errno_from_text(text: &str) -> Option<i32> {
    let t = text.to_ascii_lowercase();
    if t.contains("no buffer space") {
        Some(libc::ENOBUFS)
    } else if t.contains("cannot allocate memory") {
        Some(libc::ENOMEM)
    } else if t.contains("address already in use") {
        Some(libc::EADDRINUSE)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(same_group: bool) -> Layout {
        let ep = |n: &str| Endpoint {
            netns: "mlab-x-relay".into(),
            ifname: n.into(),
            addr: Ipv4Addr::new(198, 18, 1, 2),
        };
        Layout {
            streams: 300,
            fanout: 3,
            relay_ns: Some("mlab-x-relay".into()),
            relay_in: Some(ep("in")),
            relay_out: vec![ep("o0"), ep("o1"), ep("o2")],
            generator: ep("g"),
            sinks: vec![ep("s0"), ep("s1"), ep("s2")],
            same_group,
            system_placement: ProcessPlacement::default(),
        }
    }

    #[test]
    fn groups_and_ports_follow_the_interfaces_contract() {
        let l = layout(false);
        assert_eq!(l.input_group(0), Ipv4Addr::new(239, 1, 0, 1));
        assert_eq!(l.input_group(299), Ipv4Addr::new(239, 1, 1, 44));
        assert_eq!(l.output_group(0, 0), Ipv4Addr::new(239, 2, 0, 1));
        assert_eq!(l.output_group(2, 5), Ipv4Addr::new(239, 4, 0, 6));
        assert_eq!(l.output_port(2), 5002);
        let k = layout(true);
        assert_eq!(k.output_group(2, 5), k.input_group(5));
        assert_eq!(k.output_port(2), BASE_PORT);
    }

    #[test]
    fn capacity_is_the_first_group_not_joined() {
        let l = layout(false);
        let joined = (0..20).map(|i| l.input_group(i)).collect();
        let c = capacity_from_joins(&l, &joined, Some(libc::ENOBUFS), Some("x".into()));
        assert_eq!(c.first_refused, Some(20));
        assert_eq!(c.accepted, 20);
        assert_eq!(c.refused_group.as_deref(), Some("239.1.0.21"));
        let all = (0..300).map(|i| l.input_group(i)).collect();
        let c = capacity_from_joins(&l, &all, Some(libc::ENOBUFS), None);
        assert_eq!((c.first_refused, c.errno, c.accepted), (None, None, 300));
    }

    #[test]
    fn capacity_of_a_system_that_does_not_join_is_what_it_installed() {
        let l = layout(false);
        let installed: std::collections::BTreeSet<u32> = (0..300).filter(|&i| i != 7).collect();
        let c = capacity_from(&l, |i| installed.contains(&i), None, Some("refused".into()));
        assert_eq!((c.accepted, c.first_refused), (7, Some(7)));
        assert_eq!(c.refused_group.as_deref(), Some("239.1.0.8"));
        assert_eq!(c.error.as_deref(), Some("refused"));
        let c = capacity_from(&l, |_| true, None, Some("ignored".into()));
        assert_eq!((c.accepted, c.first_refused, c.error), (300, None, None));
    }

    #[test]
    fn errno_from_strerror_text() {
        assert_eq!(
            errno_from_text("E setsockopt(5, ...): No buffer space available"),
            Some(libc::ENOBUFS)
        );
        assert_eq!(errno_from_text("something else"), None);
    }
}
