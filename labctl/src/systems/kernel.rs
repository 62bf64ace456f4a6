//! Kernel multicast routing driven by smcroute: `smcrouted` in the relay namespace (started after
//! every veth exists), then one batch of `join IN GROUP` + `add IN SOURCE GROUP OUT...` lines fed
//! to `smcroutectl -b`. The kernel forwards the input group unchanged (it cannot rename).

use super::{
    Installer as SystemInstaller, Layout, RuleAdd, Running, StartError, capacity_from_joins,
    errno_from_text, find_tool,
};
use crate::process::loadgen::ScratchDir;
use crate::process::{SpawnOptions, Spawned, spawn_in_netns};
use crate::results::Capacity;
use crate::scenario::SystemKind;
use anyhow::{Context, Result, anyhow, bail};
use std::fmt::Write as _;
use std::ops::Range;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const READY_DEADLINE: Duration = Duration::from_secs(10);
/// Outbound interfaces smcroutectl keeps of one batch-mode `add` line (measured with smcroute
/// 2.5.6: a sixth and later interface on the line are silently dropped). Further `add` lines for
/// the same (S,G) add their interfaces to the route.
const OIFS_PER_LINE: usize = 5;
const BATCH_DEADLINE: Duration = Duration::from_secs(120);

/// The smcroutectl batch for the layout: a join (so a snooping switch forwards the group) and an
/// (S,G) route to every output link, per input stream; the route's outbound interfaces go
/// [`OIFS_PER_LINE`] to a line.
pub fn batch(layout: &Layout, inputs: Range<u32>) -> Result<String> {
    let input = layout
        .relay_in
        .as_ref()
        .context("no relay ingress interface")?;
    let outs: Vec<&str> = layout
        .relay_out
        .iter()
        .take(layout.fanout as usize)
        .map(|e| e.ifname.as_str())
        .collect();
    if outs.len() < layout.fanout as usize {
        bail!("fan-out {} needs as many egress links", layout.fanout);
    }
    let mut text = String::new();
    for i in inputs {
        let group = layout.input_group(i);
        let _ = writeln!(text, "join {} {group}", input.ifname);
        for chunk in outs.chunks(OIFS_PER_LINE) {
            let _ = writeln!(
                text,
                "add {} {} {group} {}",
                input.ifname,
                layout.generator.addr,
                chunk.join(" ")
            );
        }
    }
    Ok(text)
}

pub fn start(layout: &Layout) -> Result<Running, StartError> {
    let smcrouted = find_tool("smcrouted", "smcroute")?;
    let smcroutectl = find_tool("smcroutectl", "smcroute")?;
    let ns = layout
        .relay_ns
        .as_deref()
        .ok_or_else(|| anyhow!("kernel forwarding needs a topology with a relay namespace"))?;
    let in_if = layout
        .relay_in
        .as_ref()
        .context("no relay ingress interface")?
        .ifname
        .clone();
    let scratch = ScratchDir::new("smcroute")?;
    let conf = scratch.path("empty.conf");
    let sock = scratch.path("smcroute.sock");
    let pidfile = scratch.path("smcrouted.pid");
    std::fs::write(&conf, "# mcast-lab: routes come from smcroutectl\n")
        .context("writing the smcroute config")?;
    let ident = format!("mlab{:06x}", rand::random::<u32>() & 0xff_ffff);
    let mut cmd = Command::new(smcrouted);
    cmd.arg("-n")
        .arg("-f")
        .arg(&conf)
        .arg("-u")
        .arg(&sock)
        .arg("-P")
        .arg(&pidfile)
        .args(["-i", &ident]);
    let daemon = spawn_in_netns(
        ns,
        cmd,
        SpawnOptions::default().placed(&layout.system_placement),
    )?;
    wait_socket(&daemon, &sock)?;
    let installer = Installer {
        placement: layout.system_placement.clone(),
        smcroutectl,
        ns: ns.to_owned(),
        sock,
        ident,
        in_if,
        batch_prefix: scratch.path("routes"),
        batches: 0,
        ctl_failures: Vec::new(),
    };
    Ok(Running {
        kind: SystemKind::Kernel,
        children: vec![daemon],
        installer: SystemInstaller::Kernel(installer),
        notes: vec![
            "kernel forwards the input group and port unchanged (no renaming); its forwarding runs in softirq, charged to no process: its CPU is measured on the system's CPUs (isolation) or not at all".to_owned(),
        ],
        _scratch: Some(scratch),
    })
}

/// Feeds smcroutectl batches to the running smcrouted.
#[derive(Debug)]
pub(super) struct Installer {
    /// Where smcroutectl runs (with the daemon, on the system's CPUs).
    placement: crate::process::ProcessPlacement,
    smcroutectl: PathBuf,
    ns: String,
    sock: PathBuf,
    ident: String,
    in_if: String,
    /// Batch files are `<prefix>-<n>.batch` in the system's scratch directory.
    batch_prefix: PathBuf,
    batches: u32,
    /// Output of smcroutectl runs that failed or printed an error.
    ctl_failures: Vec<String>,
}

impl Installer {
    /// Joins and routes the inputs of `range`: one batch for all of them, or with `timed` one
    /// smcroutectl run per input, stamped just before it starts.
    pub(super) fn install(
        &mut self,
        layout: &Layout,
        range: Range<u32>,
        timed: bool,
    ) -> Result<Vec<RuleAdd>> {
        if !timed {
            self.run_batch(&batch(layout, range)?)?;
            return Ok(Vec::new());
        }
        let mut adds = Vec::new();
        for i in range {
            let text = batch(layout, i..i + 1)?;
            let at_ns = super::monotonic_ns();
            self.run_batch(&text)?;
            adds.push(RuleAdd { input: i, at_ns });
        }
        Ok(adds)
    }

    fn run_batch(&mut self, text: &str) -> Result<()> {
        let file = PathBuf::from(format!(
            "{}-{}.batch",
            self.batch_prefix.display(),
            self.batches
        ));
        self.batches += 1;
        std::fs::write(&file, text).context("writing the smcroutectl batch")?;
        let mut ctl = Command::new("/bin/sh");
        ctl.arg("-c")
            .arg("exec \"$0\" -u \"$1\" -i \"$2\" -b < \"$3\"")
            .arg(&self.smcroutectl)
            .arg(&self.sock)
            .arg(&self.ident)
            .arg(&file);
        let opts = SpawnOptions::with_deadline(BATCH_DEADLINE).placed(&self.placement);
        let child = spawn_in_netns(&self.ns, ctl, opts)?;
        let (status, out, err) = child.wait_output(BATCH_DEADLINE)?;
        let ctl_text = format!("{out}{err}");
        if let Some(line) = ctl_text.lines().find(|l| errno_from_text(l).is_some()) {
            self.ctl_failures.push(line.to_owned());
        } else if !status.success() {
            self.ctl_failures.push(ctl_text.trim().to_owned());
        }
        Ok(())
    }

    /// The joins the namespace shows on the ingress interface, and the first error printed.
    pub(super) fn capacity(&self, layout: &Layout, children: &[Spawned]) -> Result<Capacity> {
        let daemon = children.first().context("smcrouted is not running")?;
        let joined = super::joined_groups(daemon.pid(), &self.in_if)
            .context("reading the relay namespace's igmp table")?;
        let daemon_err = daemon.stderr_text();
        let error = self
            .ctl_failures
            .iter()
            .map(String::as_str)
            .chain(daemon_err.lines())
            .find(|l| errno_from_text(l).is_some())
            .or_else(|| self.ctl_failures.first().map(String::as_str))
            .map(str::to_owned);
        let errno = error.as_deref().and_then(errno_from_text);
        Ok(capacity_from_joins(layout, &joined, errno, error))
    }
}

fn wait_socket(daemon: &Spawned, sock: &std::path::Path) -> Result<()> {
    let end = Instant::now() + READY_DEADLINE;
    while !sock.exists() {
        if let Some(status) = daemon.wait_timeout(Duration::from_millis(20))? {
            bail!(
                "smcrouted exited before it was ready ({status}){}",
                super::stderr_suffix(daemon)
            );
        }
        if Instant::now() >= end {
            bail!(
                "smcrouted did not create {} within {READY_DEADLINE:?}",
                sock.display()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Endpoint;
    use std::net::Ipv4Addr;

    #[test]
    fn batch_joins_and_routes_every_stream() {
        let ep = |n: &str, a: u8| Endpoint {
            netns: "ns".into(),
            ifname: n.into(),
            addr: Ipv4Addr::new(198, 18, a, 1),
        };
        let layout = Layout {
            streams: 2,
            fanout: 2,
            relay_ns: Some("ns".into()),
            relay_in: Some(ep("in", 1)),
            relay_out: vec![ep("o0", 2), ep("o1", 3)],
            generator: ep("g", 1),
            sinks: vec![],
            same_group: true,
            system_placement: Default::default(),
        };
        assert_eq!(
            batch(&layout, 0..2).unwrap(),
            "join in 239.1.0.1\nadd in 198.18.1.1 239.1.0.1 o0 o1\njoin in 239.1.0.2\nadd in 198.18.1.1 239.1.0.2 o0 o1\n"
        );
        // smcroutectl keeps 5 outbound interfaces per batch line: 7 go on two lines.
        let outs: Vec<Endpoint> = (0..7u8).map(|k| ep(&format!("o{k}"), k + 2)).collect();
        let wide = Layout {
            streams: 1,
            fanout: 7,
            relay_out: outs,
            ..layout
        };
        assert_eq!(
            batch(&wide, 0..1).unwrap(),
            "join in 239.1.0.1\nadd in 198.18.1.1 239.1.0.1 o0 o1 o2 o3 o4\nadd in 198.18.1.1 239.1.0.1 o5 o6\n"
        );
    }
}
