//! Finding the lab's own programs (`loadgen`, `relay`).
//!
//! Order: the environment variable `MCAST_LAB_<NAME>` (uppercase, `-` as `_`), a sibling of
//! the current executable, its parent directory (tests run from `target/*/deps`), then `PATH`.

use anyhow::{Result, bail};
use std::path::{Path, PathBuf};

/// The environment variable that overrides the path of binary `name`.
pub fn env_var(name: &str) -> String {
    format!("MCAST_LAB_{}", name.to_ascii_uppercase().replace('-', "_"))
}

/// Path of the lab binary `name`.
pub fn locate(name: &str) -> Result<PathBuf> {
    let var = env_var(name);
    if let Some(value) = std::env::var_os(&var) {
        let path = PathBuf::from(value);
        if is_executable(&path) {
            return Ok(path);
        }
        bail!(
            "{var}={} is not an executable file; fix or unset it",
            path.display()
        );
    }
    let mut candidates = Vec::new();
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        candidates.push(dir.join(name));
        if let Some(parent) = dir.parent() {
            candidates.push(parent.join(name));
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    if let Some(found) = candidates.into_iter().find(|p| is_executable(p)) {
        return Ok(found);
    }
    bail!(
        "cannot find the `{name}` binary: run `cargo build --workspace --release` or set {var}=/path/to/{name}"
    )
}

/// True for an existing regular file with an execute bit.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_names() {
        assert_eq!(env_var("loadgen"), "MCAST_LAB_LOADGEN");
        assert_eq!(env_var("my-tool"), "MCAST_LAB_MY_TOOL");
    }

    #[test]
    fn missing_binary_says_how_to_fix() {
        let err = locate("mcast-lab-no-such-binary").unwrap_err().to_string();
        assert!(err.contains("cargo build --workspace --release"), "{err}");
        assert!(err.contains("MCAST_LAB_MCAST_LAB_NO_SUCH_BINARY"), "{err}");
    }
}
