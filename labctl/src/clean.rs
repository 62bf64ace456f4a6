//! `labctl clean`: removes leftovers of crashed runs, recognised strictly by name: namespaces
//! `mlab-*` (after stopping processes still inside them) and root-namespace links
//! `ml` + 6 hex + `-` (none should exist: lab links are created straight into namespaces),
//! and scratch directories `$TMPDIR/mlab-*` whose owner is gone (their owner lock is free, see
//! [`crate::process::scratch`]).

use crate::names;
use crate::netns::{self, netlink_in};
use crate::process;
use anyhow::Result;
use futures::TryStreamExt;
use rtnetlink::packet_route::link::LinkAttribute;
use std::time::Duration;

/// What `clean` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CleanReport {
    pub namespaces: Vec<String>,
    pub links: Vec<String>,
    /// Scratch directories of processes that are gone.
    pub scratch_dirs: Vec<String>,
    /// Processes stopped because they were still inside a lab namespace.
    pub processes_stopped: usize,
    /// What could not be removed, with the reason.
    pub errors: Vec<String>,
}

/// Removes every lab namespace and root-namespace lab link.
pub fn clean() -> Result<CleanReport> {
    let mut report = remove_namespaces(names::is_lab_namespace)?;
    let (links, errors) = remove_root_links()?;
    report.links = links;
    report.errors.extend(errors);
    remove_stale_state_files();
    remove_stale_scratch(&mut report);
    Ok(report)
}

/// Removes the leftovers of one run only (its namespaces `mlab-<run_id>-*` and the processes
/// still inside them): what a crashed run with that id left behind.
pub fn clean_run(run_id: &str) -> Result<CleanReport> {
    let id = names::RunId::parse(run_id)?;
    let prefix = format!("{}{id}-", names::NAMESPACE_PREFIX);
    let mut report = remove_namespaces(|n| n.starts_with(&prefix))?;
    remove_stale_state_files();
    remove_stale_scratch(&mut report);
    Ok(report)
}

fn remove_namespaces(matches: impl Fn(&str) -> bool) -> Result<CleanReport> {
    let mut report = CleanReport::default();
    for name in netns::list()?.into_iter().filter(|n| matches(n)) {
        match process::stop_pids_in_netns(&name, Duration::from_secs(1)) {
            Ok(n) => report.processes_stopped += n,
            Err(e) => report.errors.push(format!("{name}: {e:#}")),
        }
        match netns::remove(&name) {
            Ok(()) => report.namespaces.push(name),
            Err(e) => report.errors.push(format!("{name}: {e:#}")),
        }
    }
    Ok(report)
}

/// Deletes root-namespace links named like lab links; returns (removed, errors).
fn remove_root_links() -> Result<(Vec<String>, Vec<String>)> {
    netlink_in(None, |handle| async move {
        let mut found = Vec::new();
        let mut stream = handle.link().get().execute();
        while let Some(link) = stream.try_next().await? {
            let name = link.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            if let Some(name) = name.filter(|n| names::is_lab_link(n)) {
                found.push((link.header.index, name));
            }
        }
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        for (index, name) in found {
            match handle.link().del(index).execute().await {
                Ok(()) => removed.push(name),
                Err(e) => errors.push(format!("{name}: {e}")),
            }
        }
        Ok((removed, errors))
    })
}

/// Scratch directories whose owner died: they belong to no live run, whatever its id.
fn remove_stale_scratch(report: &mut CleanReport) {
    let (removed, errors) = crate::process::scratch::remove_stale();
    report
        .scratch_dirs
        .extend(removed.iter().map(|p| p.display().to_string()));
    report.errors.extend(errors);
}

/// State files of topologies whose namespaces are all gone.
fn remove_stale_state_files() {
    let existing = netns::list().unwrap_or_default();
    for entry in std::fs::read_dir("/run/mlab")
        .into_iter()
        .flatten()
        .flatten()
    {
        let path = entry.path();
        let stale = path
            .file_stem()
            .and_then(|s| s.to_str())
            .map(|id| {
                !existing
                    .iter()
                    .any(|n| n.starts_with(&format!("mlab-{id}-")))
            })
            .unwrap_or(false);
        if stale && path.extension().is_some_and(|e| e == "json") {
            let _ = std::fs::remove_file(&path);
        }
    }
}
