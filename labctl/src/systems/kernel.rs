//! Kernel multicast routing driven by smcroute: `smcrouted` in the relay namespace (started after
//! every veth exists), then one batch of `join IN GROUP` + `add IN SOURCE GROUP OUT...` lines fed
//! to `smcroutectl -b`. The kernel forwards the input group unchanged (it cannot rename).

use super::{Layout, Running, StartError, capacity_from_joins, errno_from_text, find_tool};
use crate::process::loadgen::ScratchDir;
use crate::process::{SpawnOptions, Spawned, spawn_in_netns};
use crate::scenario::SystemKind;
use anyhow::{Context, Result, anyhow, bail};
use std::fmt::Write as _;
use std::process::Command;
use std::time::{Duration, Instant};

const READY_DEADLINE: Duration = Duration::from_secs(10);
const BATCH_DEADLINE: Duration = Duration::from_secs(120);

/// The smcroutectl batch for the layout: a join (so a snooping switch forwards the group) and an
/// (S,G) route to every output link, per input stream.
pub fn batch(layout: &Layout) -> Result<String> {
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
    for i in 0..layout.streams {
        let group = layout.input_group(i);
        let _ = writeln!(text, "join {} {group}", input.ifname);
        let _ = writeln!(
            text,
            "add {} {} {group} {}",
            input.ifname,
            layout.generator.addr,
            outs.join(" ")
        );
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
    let daemon = spawn_in_netns(ns, cmd, SpawnOptions::default())?;
    wait_socket(&daemon, &sock)?;

    let batch_file = scratch.path("routes.batch");
    std::fs::write(&batch_file, batch(layout)?).context("writing the smcroutectl batch")?;
    let mut ctl = Command::new("/bin/sh");
    ctl.arg("-c")
        .arg("exec \"$0\" -u \"$1\" -i \"$2\" -b < \"$3\"")
        .arg(&smcroutectl)
        .arg(&sock)
        .arg(&ident)
        .arg(&batch_file);
    let child = spawn_in_netns(ns, ctl, SpawnOptions::with_deadline(BATCH_DEADLINE))?;
    let (status, out, err) = child.wait_output(BATCH_DEADLINE)?;
    let ctl_text = format!("{out}{err}");
    let joined = super::joined_groups(daemon.pid(), &in_if)
        .context("reading the relay namespace's igmp table")?;
    let error = ctl_text
        .lines()
        .chain(daemon.stderr_text().lines().collect::<Vec<_>>())
        .find(|l| errno_from_text(l).is_some())
        .map(str::to_owned)
        .or_else(|| (!status.success()).then(|| ctl_text.trim().to_owned()));
    let errno = error.as_deref().and_then(errno_from_text);
    let capacity = capacity_from_joins(layout, &joined, errno, error);
    let notes = vec![
        "kernel forwards the input group and port unchanged (no renaming); its forwarding runs in softirq and is charged to no process".to_owned(),
    ];
    Ok(Running {
        kind: SystemKind::Kernel,
        children: vec![daemon],
        capacity: Some(capacity),
        notes,
        _scratch: Some(scratch),
    })
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
        };
        assert_eq!(
            batch(&layout).unwrap(),
            "join in 239.1.0.1\nadd in 198.18.1.1 239.1.0.1 o0 o1\njoin in 239.1.0.2\nadd in 198.18.1.1 239.1.0.2 o0 o1\n"
        );
    }
}
