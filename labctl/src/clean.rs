//! `labctl clean`: removes leftovers of crashed runs, recognised strictly by name: namespaces
//! `mlab-*` (after stopping processes still inside them) and root-namespace links
//! `ml` + 6 hex + `-` (none should exist: lab links are created straight into namespaces).

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
    /// Processes stopped because they were still inside a lab namespace.
    pub processes_stopped: usize,
    /// What could not be removed, with the reason.
    pub errors: Vec<String>,
}

/// Removes every lab namespace and root-namespace lab link.
pub fn clean() -> Result<CleanReport> {
    let mut report = CleanReport::default();
    for name in netns::list()?
        .into_iter()
        .filter(|n| names::is_lab_namespace(n))
    {
        match process::stop_pids_in_netns(&name, Duration::from_secs(1)) {
            Ok(n) => report.processes_stopped += n,
            Err(e) => report.errors.push(format!("{name}: {e:#}")),
        }
        match netns::remove(&name) {
            Ok(()) => report.namespaces.push(name),
            Err(e) => report.errors.push(format!("{name}: {e:#}")),
        }
    }
    let (links, errors) = netlink_in(None, |handle| async move {
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
    })?;
    report.links = links;
    report.errors.extend(errors);
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
                !netns::list()
                    .unwrap_or_default()
                    .iter()
                    .any(|n| n.starts_with(&format!("mlab-{id}-")))
            })
            .unwrap_or(false);
        if stale && path.extension().is_some_and(|e| e == "json") {
            let _ = std::fs::remove_file(&path);
        }
    }
    Ok(report)
}
