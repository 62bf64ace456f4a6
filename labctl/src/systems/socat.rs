//! socat as the relay: one process per stream and per output, in the form that relays exactly
//! one group (docs/architecture.md: `bind=GROUP` on UDP4-RECV, else every socat relays every
//! group).

use super::{
    Installer as SystemInstaller, Layout, RuleAdd, Running, StartError, capacity_from_joins,
    errno_from_text, find_tool,
};
use crate::process::{SpawnOptions, Spawned, spawn_in_netns};
use crate::results::Capacity;
use crate::scenario::SystemKind;
use anyhow::{Context, Result, anyhow};
use std::ops::Range;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Receive buffer asked of each socat (capped by the global rmem_max; never forced).
const RCVBUF: u32 = 4 << 20;
/// How long the joins may take to appear in the namespace's igmp table.
const JOIN_DEADLINE: Duration = Duration::from_secs(30);
/// Give up waiting when the joined count has not grown for this long.
const JOIN_STALL: Duration = Duration::from_secs(3);

/// The socat command line relaying input `i` to output `k`.
pub fn command_line(layout: &Layout, i: u32, k: u32) -> Result<Vec<String>> {
    let input = layout
        .relay_in
        .as_ref()
        .context("no relay ingress interface")?;
    let out = layout
        .relay_out
        .get(k as usize)
        .with_context(|| format!("no egress link for output {k}"))?;
    let group = layout.input_group(i);
    Ok(vec![
        "-u".to_owned(),
        format!(
            "UDP4-RECV:{},bind={group},reuseaddr,ip-add-membership={group}:{},rcvbuf={RCVBUF}",
            super::BASE_PORT,
            input.addr
        ),
        format!(
            "UDP4-SENDTO:{}:{},ip-multicast-if={},ip-multicast-ttl=8,ip-multicast-loop=0",
            layout.output_group(k, i),
            layout.output_port(k),
            out.addr
        ),
    ])
}

pub fn start(layout: &Layout) -> Result<Running, StartError> {
    let socat = find_tool("socat", "socat")?;
    let ns = layout
        .relay_ns
        .as_deref()
        .ok_or_else(|| anyhow!("socat needs a topology with a relay namespace"))?
        .to_owned();
    let in_if = layout
        .relay_in
        .as_ref()
        .context("no relay ingress interface")?
        .ifname
        .clone();
    Ok(Running {
        kind: SystemKind::Socat,
        children: Vec::new(),
        installer: SystemInstaller::Socat(Installer {
            socat,
            ns,
            in_if,
            started: 0,
        }),
        notes: vec![format!(
            "one socat process per stream and output ({} x {})",
            layout.streams, layout.fanout
        )],
        _scratch: None,
    })
}

/// Starts one socat per (input, output).
#[derive(Debug)]
pub(super) struct Installer {
    socat: PathBuf,
    ns: String,
    in_if: String,
    /// Inputs started so far (always the first ones: ranges are installed in order).
    started: u32,
}

impl Installer {
    /// Starts the socats of the inputs in `range` (every output of each), stamped per input at
    /// the spawn of its first socat.
    pub(super) fn install(
        &mut self,
        layout: &Layout,
        range: Range<u32>,
        children: &mut Vec<Spawned>,
    ) -> Result<Vec<RuleAdd>> {
        let mut adds = Vec::new();
        for i in range {
            adds.push(RuleAdd {
                input: i,
                at_ns: super::monotonic_ns(),
            });
            for k in 0..layout.fanout {
                let mut cmd = Command::new(&self.socat);
                cmd.args(command_line(layout, i, k)?);
                let opts = SpawnOptions::default().placed(&layout.system_placement);
                let child = spawn_in_netns(&self.ns, cmd, opts).with_context(|| {
                    format!(
                        "starting socat {} of {}",
                        children.len() + 1,
                        layout.streams * layout.fanout
                    )
                })?;
                children.push(child);
            }
            self.started = self.started.max(i + 1);
        }
        Ok(adds)
    }

    /// Waits for the joins of the started socats and reports what is missing.
    pub(super) fn capacity(&self, layout: &Layout, children: &[Spawned]) -> Result<Capacity> {
        wait_joined(layout, children, &self.in_if, self.started)
    }
}

/// Waits until the groups of the `started` first inputs are joined on the ingress interface (or
/// no progress), and reports what was not (over all inputs).
fn wait_joined(
    layout: &Layout,
    children: &[Spawned],
    in_if: &str,
    started: u32,
) -> Result<Capacity> {
    let Some(probe_pid) = children.first().map(Spawned::pid) else {
        // No socat started: nothing is joined.
        return Ok(capacity_from_joins(
            layout,
            &std::collections::HashSet::new(),
            None,
            None,
        ));
    };
    let start = Instant::now();
    let mut last_count = 0;
    let mut last_progress = Instant::now();
    loop {
        let joined = super::joined_groups(probe_pid, in_if)
            .context("reading the relay namespace's igmp table")?;
        let count = (0..started)
            .filter(|&i| joined.contains(&layout.input_group(i)))
            .count();
        let exited: Vec<&Spawned> = children.iter().filter(|c| !c.is_running()).collect();
        let done = count == started as usize;
        if count > last_count {
            last_count = count;
            last_progress = Instant::now();
        }
        if done
            || start.elapsed() > JOIN_DEADLINE
            || (last_progress.elapsed() > JOIN_STALL && !exited.is_empty())
            || last_progress.elapsed() > JOIN_STALL * 3
        {
            let error = exited
                .iter()
                .map(|c| c.stderr_text())
                .find(|t| !t.trim().is_empty())
                .map(|t| t.trim().lines().last().unwrap_or_default().to_owned());
            let errno = error.as_deref().and_then(errno_from_text);
            return Ok(capacity_from_joins(layout, &joined, errno, error));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::Endpoint;
    use std::net::Ipv4Addr;

    #[test]
    fn one_socat_relays_exactly_one_group() {
        let ep = |n: &str, a: u8| Endpoint {
            netns: "ns".into(),
            ifname: n.into(),
            addr: Ipv4Addr::new(198, 18, a, 2),
        };
        let layout = Layout {
            streams: 3,
            fanout: 2,
            relay_ns: Some("ns".into()),
            relay_in: Some(ep("in", 1)),
            relay_out: vec![ep("o0", 2), ep("o1", 3)],
            generator: ep("g", 1),
            sinks: vec![],
            same_group: false,
            system_placement: Default::default(),
        };
        assert_eq!(
            command_line(&layout, 2, 1).unwrap(),
            [
                "-u",
                "UDP4-RECV:5000,bind=239.1.0.3,reuseaddr,ip-add-membership=239.1.0.3:198.18.1.2,rcvbuf=4194304",
                "UDP4-SENDTO:239.3.0.3:5001,ip-multicast-if=198.18.3.2,ip-multicast-ttl=8,ip-multicast-loop=0",
            ]
        );
    }
}
