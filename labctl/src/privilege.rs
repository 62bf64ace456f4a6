//! Whether this process may build lab topologies: the root check every layer that needs root
//! uses (topology, the commands, the end-to-end test support, `doctor`'s report).

use anyhow::{Result, bail};

/// True when the effective user is root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Fails with a one-line explanation unless the process runs as root.
pub fn require_root() -> Result<()> {
    if is_root() {
        Ok(())
    } else {
        bail!(
            "this needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN to create network namespaces): run it as root, e.g. with sudo"
        )
    }
}
