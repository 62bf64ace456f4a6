//! `labctl doctor`: can this machine run the lab? Each [`Check`] says what it found and, for a
//! problem, how to fix it. Kernel features are probed for real inside a throw-away namespace
//! (`mlab-<id>-sw`, removed again): network namespaces, veth, bridge, AF_PACKET; io_uring is
//! probed with `io_uring_setup`; the per-namespace multicast sysctls are read from that fresh
//! namespace, since that is what every lab namespace starts with.

use crate::names::{Role, RunId};
use crate::netns::{self, netlink_in, run_in_netns};
use anyhow::{Context, bail};
use rtnetlink::{LinkBridge, LinkVeth};
use serde::Serialize;
use std::path::Path;

/// Outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Works, with a limit worth knowing.
    Warn,
    /// The lab (or part of it) cannot run.
    Fail,
}

/// One check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    /// How to fix it, for Warn/Fail.
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            status: Status::Ok,
            detail: detail.into(),
            fix: None,
        }
    }
    fn problem(
        name: &str,
        status: Status,
        detail: impl Into<String>,
        fix: impl Into<String>,
    ) -> Check {
        Check {
            name: name.into(),
            status,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs every check.
pub fn run() -> Vec<Check> {
    let mut checks = vec![root_check()];
    if crate::privilege::is_root() {
        checks.extend(namespace_checks());
    }
    checks.push(io_uring_check());
    checks.push(isolation_check());
    checks.push(program_check("socat", &["socat"], "apt-get install socat"));
    checks.push(program_check(
        "smcroute",
        &["smcrouted", "smcroutectl"],
        "apt-get install smcroute",
    ));
    for binary in ["loadgen", "relay"] {
        checks.push(match crate::binaries::locate(binary) {
            Ok(path) => Check::ok(binary, path.display().to_string()),
            Err(e) => Check::problem(binary, Status::Fail, "not found", e.to_string()),
        });
    }
    checks
}

fn root_check() -> Check {
    const NAME: &str = "root / CAP_NET_ADMIN";
    if crate::privilege::is_root() {
        return Check::ok(NAME, "running as root");
    }
    let cap_net_admin = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:").map(|v| v.trim().to_string()))
        })
        .and_then(|hex| u64::from_str_radix(&hex, 16).ok())
        .is_some_and(|caps| caps & (1 << 12) != 0);
    let detail = if cap_net_admin {
        "not root (CAP_NET_ADMIN present)"
    } else {
        "not root, no CAP_NET_ADMIN"
    };
    Check::problem(
        NAME,
        Status::Fail,
        detail,
        "run labctl as root (e.g. sudo labctl ...); namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN",
    )
}

/// Probes inside a throw-away namespace; always removes it.
fn namespace_checks() -> Vec<Check> {
    let run = RunId::random();
    let ns = run.namespace(Role::Sw);
    let mut checks = Vec::new();
    match netns::reserve(&ns).and_then(|free| {
        if free {
            netns::create(&ns)
        } else {
            bail!("{ns} exists")
        }
    }) {
        Ok(()) => checks.push(Check::ok("network namespaces", format!("created {ns}"))),
        Err(e) => {
            let _ = netns::remove(&ns);
            checks.push(Check::problem(
                "network namespaces",
                Status::Fail,
                format!("{e:#}"),
                "use a kernel with CONFIG_NET_NS and run as root; /run/netns must be writable",
            ));
            return checks;
        }
    }
    checks.push(link_probe(&ns, &run, "veth", "modprobe veth (CONFIG_VETH)"));
    checks.push(link_probe(
        &ns,
        &run,
        "bridge",
        "modprobe bridge (CONFIG_BRIDGE, with CONFIG_BRIDGE_IGMP_SNOOPING)",
    ));
    checks.push(af_packet_check(&ns));
    checks.extend(sysctl_checks(&ns));
    if let Err(e) = netns::remove(&ns) {
        checks.push(Check::problem(
            "cleanup",
            Status::Warn,
            format!("{e:#}"),
            "run `labctl clean`",
        ));
    }
    checks
}

/// Creates (and leaves to the namespace's removal) a veth pair or a bridge.
fn link_probe(ns: &str, run: &RunId, kind: &'static str, fix: &str) -> Check {
    let names = match kind {
        "veth" => (run.ifname("pva"), run.ifname("pvb")),
        _ => (run.ifname("pbr"), run.ifname("pbr")),
    };
    let result = match names {
        (Ok(a), Ok(b)) => netlink_in(Some(ns), move |handle| async move {
            let message = match kind {
                "veth" => LinkVeth::new(&a, &b).build(),
                _ => LinkBridge::new(&a).mcast_snooping(true).build(),
            };
            handle
                .link()
                .add(message)
                .execute()
                .await
                .with_context(|| format!("creating a {kind}"))?;
            Ok(())
        }),
        (Err(e), _) | (_, Err(e)) => Err(e.into()),
    };
    match result {
        Ok(()) => Check::ok(kind, format!("created a {kind} link in a test namespace")),
        Err(e) => Check::problem(kind, Status::Fail, format!("{e:#}"), fix),
    }
}

fn af_packet_check(ns: &str) -> Check {
    let result = run_in_netns(ns, || {
        socket2::Socket::new(socket2::Domain::PACKET, socket2::Type::RAW, None)
            .context("socket(AF_PACKET, SOCK_RAW)")?;
        Ok(())
    });
    match result {
        Ok(()) => Check::ok("AF_PACKET", "raw packet socket opened"),
        Err(e) => Check::problem(
            "AF_PACKET",
            Status::Fail,
            format!("{e:#}"),
            "enable CONFIG_PACKET (modprobe af_packet) and run as root",
        ),
    }
}

/// The per-namespace multicast limits a fresh namespace starts with, and what they imply.
fn sysctl_checks(ns: &str) -> Vec<Check> {
    let read = |key: &str| {
        netns::read_sysctl(ns, key)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
    };
    let mut checks = Vec::new();
    match read("net.ipv4.igmp_max_memberships") {
        Some(n) => checks.push(Check::problem(
            "igmp_max_memberships",
            if n < 100 { Status::Warn } else { Status::Ok },
            format!("{n} in a new namespace: one socket can join at most {n} groups (the next join fails with ENOBUFS)"),
            "use a relay that spreads joins over several sockets (relay --membership pool), or raise it in the lab namespace (scenario `sysctls`: \"net.ipv4.igmp_max_memberships\" = \"1024\")",
        )),
        None => checks.push(Check::problem("igmp_max_memberships", Status::Fail, "cannot read it", "check that /proc/sys/net/ipv4 exists (CONFIG_IP_MULTICAST)")),
    }
    match read("net.core.optmem_max") {
        Some(bytes) => checks.push(Check::problem(
            "optmem_max",
            Status::Ok,
            format!("{bytes} bytes in a new namespace: about {} group memberships per socket (~48 bytes each) once igmp_max_memberships is raised", bytes / 48),
            "raise net.core.optmem_max in the lab namespace (scenario `sysctls`) for more groups per socket",
        )),
        None => checks.push(Check::problem("optmem_max", Status::Fail, "cannot read it", "check /proc/sys/net/core")),
    }
    for check in &mut checks {
        if check.status == Status::Ok {
            check.fix = None;
        }
    }
    checks
}

/// Whether sweeps can give the load generator CPUs of its own (`isolation = "auto"`).
fn isolation_check() -> Check {
    let placement = crate::placement::Placement::detect(crate::scenario::IsolationMode::Auto);
    let describe =
        |p: &crate::process::ProcessPlacement| format!("CPU {:?} {}", p.cpus, p.scheduling());
    if !placement.is_applied() {
        return Check::problem(
            "isolation",
            Status::Warn,
            placement.problems.join("; "),
            "run on a machine (or cpuset) with at least 2 CPUs: otherwise a slow system can slow its own load (sweeps still run and mark generator-bound points)",
        );
    }
    let detail = format!(
        "sender {}, sinks {}, systems {}",
        describe(&placement.sender),
        describe(&placement.sink),
        describe(&placement.system)
    );
    match placement.problems.first() {
        None => Check::ok("isolation", detail),
        Some(problem) => Check::problem(
            "isolation",
            Status::Warn,
            format!("{detail}; {problem}"),
            "allow real-time scheduling (root with CAP_SYS_NICE, and real-time runtime in the cgroup: cpu.rt_runtime_us)",
        ),
    }
}

fn io_uring_check() -> Check {
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|s| s.trim().to_string());
    match io_uring::IoUring::new(8) {
        Ok(_) => Check::ok("io_uring", "io_uring_setup works"),
        Err(e) => Check::problem(
            "io_uring",
            Status::Warn,
            format!(
                "io_uring_setup failed: {e} (kernel.io_uring_disabled = {})",
                disabled.as_deref().unwrap_or("?")
            ),
            "set kernel.io_uring_disabled=0 (or use relay --io mmap); needs CONFIG_IO_URING",
        ),
    }
}

fn program_check(name: &str, programs: &[&str], fix: &str) -> Check {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !std::env::split_paths(&path).any(|dir| Path::new(&dir).join(p).is_file()))
        .collect();
    if missing.is_empty() {
        Check::ok(name, format!("{} found", programs.join(", ")))
    } else {
        Check::problem(
            name,
            Status::Fail,
            format!(
                "missing: {} (needed for the `{name}` baseline)",
                missing.join(", ")
            ),
            fix,
        )
    }
}
