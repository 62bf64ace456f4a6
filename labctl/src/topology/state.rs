//! State files of kept topologies (`/run/mlab/<runid>.json`), so that `labctl topo down` and
//! [`Topology::attach`](super::Topology::attach) find a topology that `labctl topo up` left up.

use super::Topology;
use crate::names::RunId;
use anyhow::{Context, Result};
use std::path::PathBuf;

/// Directory of the state files (tmpfs: gone after a reboot, like the namespaces).
pub const STATE_DIR: &str = "/run/mlab";

fn path(id: &RunId) -> PathBuf {
    PathBuf::from(STATE_DIR).join(format!("{id}.json"))
}

pub fn exists(id: &RunId) -> bool {
    path(id).exists()
}

pub fn save(topology: &Topology) -> Result<()> {
    std::fs::create_dir_all(STATE_DIR).with_context(|| format!("creating {STATE_DIR}"))?;
    let id = &topology.run_id;
    let text = serde_json::to_string_pretty(topology).context("serialising the topology")?;
    std::fs::write(path(id), text).with_context(|| format!("writing {}", path(id).display()))
}

/// Reads a stored topology. The value is detached (dropping it tears nothing down) until
/// [`Topology::attach`](super::Topology::attach) takes ownership.
pub fn load(id: &RunId) -> Result<Topology> {
    let file = path(id);
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "no state for lab topology {id} ({} missing); `labctl topo list` shows what exists",
            file.display()
        )
    })?;
    serde_json::from_str(&text).with_context(|| format!("reading {}", file.display()))
}

/// The template recorded in the state file, if it exists and is readable.
pub fn load_template(id: &RunId) -> Option<super::Template> {
    #[derive(serde::Deserialize)]
    struct TemplateOnly {
        template: super::Template,
    }
    let text = std::fs::read_to_string(path(id)).ok()?;
    serde_json::from_str::<TemplateOnly>(&text)
        .ok()
        .map(|t| t.template)
}

/// Removes the state file; a missing one is fine.
pub fn remove(id: &RunId) {
    let _ = std::fs::remove_file(path(id));
}
