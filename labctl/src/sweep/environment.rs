//! What the numbers were taken on: kernel, CPU, sysctls (fresh namespace and root, read only),
//! tool versions. Anything unreadable is recorded as `unknown`, never an error.

use crate::results::Environment;
use crate::topology::{Role, Template, Topology, TopologyOptions};
use std::collections::BTreeMap;
use std::process::Command;

/// Per-namespace sysctls that decide membership capacity, read in a fresh lab namespace.
pub const NAMESPACE_SYSCTLS: [&str; 4] = [
    "net.ipv4.igmp_max_memberships",
    "net.ipv4.igmp_max_msf",
    "net.core.optmem_max",
    "net.ipv4.ip_forward",
];

/// Global sysctls, read (never written) in the root namespace.
pub const ROOT_SYSCTLS: [&str; 6] = [
    "net.core.rmem_max",
    "net.core.wmem_max",
    "net.core.rmem_default",
    "net.core.netdev_max_backlog",
    "net.ipv4.neigh.default.gc_thresh3",
    "net.ipv4.igmp_max_memberships",
];

const UNKNOWN: &str = "unknown";

/// Collects the environment. Builds (and removes) a small `direct` topology to read the
/// sysctls of a fresh namespace.
pub fn collect() -> Environment {
    Environment {
        kernel_release: read_trimmed("/proc/sys/kernel/osrelease"),
        cpu_model: std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| UNKNOWN.to_owned()),
        cores: std::thread::available_parallelism().map_or(0, |n| n.get() as u32),
        namespace_sysctls: fresh_namespace_sysctls(),
        root_sysctls: ROOT_SYSCTLS
            .iter()
            .map(|k| (k.to_string(), read_trimmed(&sysctl_file(k))))
            .collect(),
        tools: tool_versions(),
    }
}

fn sysctl_file(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|_| UNKNOWN.to_owned())
}

fn fresh_namespace_sysctls() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    match Topology::up(&TopologyOptions::new(Template::Direct)) {
        Ok(topology) => {
            if let Some(ns) = topology.namespace(Role::Gen) {
                for key in NAMESPACE_SYSCTLS {
                    let value = crate::netns::read_sysctl(ns, key)
                        .unwrap_or_else(|e| format!("{UNKNOWN} ({e:#})"));
                    out.insert(key.to_owned(), value);
                }
            }
            if let Err(e) = topology.down() {
                eprintln!("labctl: removing the environment probe topology: {e:#}");
            }
        }
        Err(e) => {
            out.insert("error".to_owned(), format!("no fresh namespace: {e:#}"));
        }
    }
    out
}

/// First non-empty line of a command's output that contains `needle`, else the first line.
fn version_of(program: &str, args: &[&str], needle: &str) -> String {
    let Ok(out) = Command::new(program).args(args).output() else {
        return "not installed".to_owned();
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .iter()
        .find(|l| l.to_ascii_lowercase().contains(needle))
        .or(lines.first())
        .map_or_else(|| UNKNOWN.to_owned(), |l| l.to_string())
}

fn tool_versions() -> BTreeMap<String, String> {
    let mut tools = BTreeMap::new();
    tools.insert(
        "socat".to_owned(),
        version_of("socat", &["-V"], "socat version"),
    );
    tools.insert(
        "smcrouted".to_owned(),
        version_of("smcrouted", &["-v"], "smcroute"),
    );
    tools.insert("labctl".to_owned(), env!("CARGO_PKG_VERSION").to_owned());
    // The workspace labctl was built from, else the current directory's repository.
    let workspace = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let commit = [workspace, "."]
        .iter()
        .find_map(|dir| {
            Command::new("git")
                .args(["-C", dir, "rev-parse", "HEAD"])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| UNKNOWN.to_owned());
    tools.insert("git_commit".to_owned(), commit);
    for (name, bin) in [("relay", "relay"), ("loadgen", "loadgen")] {
        let path = crate::binaries::locate(bin)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| "not found".to_owned());
        tools.insert(format!("{name} binary"), path);
    }
    tools
}
