//! The relay binaries `labctl ab` compares: a path to an executable, or `rev:GIT_REV` - that
//! revision of this repository's relay, built from `git archive` (the work tree is not touched)
//! into `<target>/ab-rev/` like `./lab gate` builds its baseline. A revision is built once and
//! its binary kept as `<target>/ab-rev/relay-<commit>`; `<target>` is `$CARGO_TARGET_DIR` or
//! the repository's `target/`.

use anyhow::{Context, Result, bail, ensure};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Prefix that names a git revision instead of a path.
pub const REV_PREFIX: &str = "rev:";

/// What an A_RELAY / B_RELAY argument names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelaySource {
    Path(PathBuf),
    Rev(String),
}

impl RelaySource {
    pub fn parse(text: &str) -> RelaySource {
        match text.strip_prefix(REV_PREFIX) {
            Some(rev) => RelaySource::Rev(rev.to_owned()),
            None => RelaySource::Path(PathBuf::from(text)),
        }
    }
}

/// Checks a path argument without building anything: it must be an executable file.
/// `arg` names the argument in the error (`A_RELAY`).
pub fn check_path(arg: &str, path: &Path) -> Result<PathBuf> {
    ensure!(
        crate::binaries::is_executable(path),
        "{arg} {}: not an executable file (give a relay binary, e.g. target/release/relay, or {REV_PREFIX}GIT_REV)",
        path.display()
    );
    std::path::absolute(path).with_context(|| format!("{arg} {}", path.display()))
}

/// The repository `labctl` was built from (its workspace root).
pub fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The full commit id of `rev` in `repo`; an error naming `arg` when it is not a commit.
pub fn resolve(arg: &str, repo: &Path, rev: &str) -> Result<String> {
    ensure!(
        !rev.is_empty() && !rev.starts_with('-'),
        "{arg} {REV_PREFIX}{rev}: give a git revision, e.g. {REV_PREFIX}main"
    );
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["rev-parse", "--verify", "--quiet"])
        .arg(format!("{rev}^{{commit}}"))
        .output()
        .with_context(|| format!("{arg}: running git"))?;
    let sha = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    ensure!(
        out.status.success() && !sha.is_empty(),
        "{arg} {REV_PREFIX}{rev}: not a commit of {}",
        repo.display()
    );
    Ok(sha)
}

/// Builds the relay of commit `sha` (once) and returns its binary.
pub fn build(repo: &Path, sha: &str) -> Result<PathBuf> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo.join("target"))
        .join("ab-rev");
    let binary = target.join(format!("relay-{sha}"));
    if crate::binaries::is_executable(&binary) {
        return Ok(binary);
    }
    let src = target.join(format!("src-{sha}"));
    if !src.join("Cargo.toml").is_file() {
        extract(repo, sha, &src).inspect_err(|_| {
            let _ = std::fs::remove_dir_all(&src);
        })?;
    }
    eprintln!("labctl: building the relay of {sha} (cargo build --release -p relay)");
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "relay", "--bin", "relay"])
        .arg("--manifest-path")
        .arg(src.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target.join("build"))
        .stdout(Stdio::null())
        .status()
        .context("running cargo")?;
    ensure!(status.success(), "building the relay of {sha} failed");
    let built = target.join("build").join("release").join("relay");
    std::fs::copy(&built, &binary)
        .with_context(|| format!("copying {} to {}", built.display(), binary.display()))?;
    Ok(binary)
}

/// `git archive SHA | tar -x -C DIR`.
fn extract(repo: &Path, sha: &str, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut git = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["archive", sha])
        .stdout(Stdio::piped())
        .spawn()
        .context("running git archive")?;
    let archive = git.stdout.take().context("git archive's output")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(archive)
        .status()
        .context("running tar")?;
    let git = git.wait().context("waiting for git archive")?;
    if !(git.success() && tar.success()) {
        bail!("extracting {sha} with git archive | tar failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rev_prefix_or_path() {
        assert_eq!(
            RelaySource::parse("rev:main"),
            RelaySource::Rev("main".into())
        );
        assert_eq!(
            RelaySource::parse("target/release/relay"),
            RelaySource::Path("target/release/relay".into())
        );
    }

    #[test]
    fn a_path_that_is_not_an_executable_names_the_argument() {
        let dir = tempfile::tempdir().unwrap();
        let err = check_path("B_RELAY", &dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("B_RELAY ") && err.contains("not an executable file"),
            "{err}"
        );
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "x").unwrap();
        assert!(check_path("A_RELAY", &plain).is_err(), "not executable");
        assert!(check_path("A_RELAY", dir.path()).is_err(), "a directory");
    }

    #[test]
    fn an_unknown_revision_names_the_argument() {
        let err = resolve("A_RELAY", &repository(), "no-such-rev-xyz")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("A_RELAY"), "{err}");
        assert!(resolve("A_RELAY", &repository(), "--all").is_err());
    }
}
