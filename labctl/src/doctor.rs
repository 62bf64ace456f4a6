//! `labctl doctor`: can this machine run the lab? Each check says what it found and how to fix
//! a problem.

use anyhow::{Result, bail};

/// Fails with a one-line explanation unless the process runs as root.
pub fn require_root() -> Result<()> {
    if nix::unistd::geteuid().is_root() {
        Ok(())
    } else {
        bail!(
            "this needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create network namespaces): run it as root, e.g. with sudo"
        )
    }
}
