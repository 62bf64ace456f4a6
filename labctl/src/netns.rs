//! Network namespaces: create, enter, remove, and do work inside one.
//!
//! `setns(2)` changes the namespace of the calling *thread*, so all work inside a namespace
//! runs on a dedicated `std::thread` that enters it ([`run_in_netns`]); netlink work there gets
//! its own current-thread tokio runtime and its own rtnetlink connection ([`netlink_in`]), so no
//! shared async worker ever ends up in the wrong namespace. Namespaces are persisted by
//! `netns-rs` as bind mounts under `/run/netns/NAME`, like `ip netns add`.

use anyhow::{Context, Result, anyhow, bail};
use std::fs::{File, OpenOptions};
use std::future::Future;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where persistent namespaces live: the directory `ip netns` and netns-rs use (`/var/run`
/// is `/run` on current systems).
pub const NETNS_DIR: &str = "/var/run/netns";

/// Path of a named namespace.
pub fn netns_path(name: &str) -> PathBuf {
    Path::new(NETNS_DIR).join(name)
}

/// True if `/run/netns/NAME` exists.
pub fn exists(name: &str) -> bool {
    netns_path(name).exists()
}

/// Names of all persistent namespaces, sorted.
pub fn list() -> Result<Vec<String>> {
    let dir = match std::fs::read_dir(NETNS_DIR) {
        Ok(dir) => dir,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {NETNS_DIR}")),
    };
    let mut names: Vec<String> = dir
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| entry.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

/// Reserves `/run/netns/NAME` atomically (`O_EXCL`), so two runs racing for one name cannot
/// both win. Returns false if the name is taken. [`create`] then mounts the namespace on it.
pub fn reserve(name: &str) -> Result<bool> {
    std::fs::create_dir_all(NETNS_DIR).with_context(|| format!("creating {NETNS_DIR}"))?;
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(netns_path(name))
    {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e).with_context(|| format!("reserving namespace {name}")),
    }
}

/// Creates the persistent namespace `NAME` (its path may already be [`reserve`]d).
pub fn create(name: &str) -> Result<()> {
    netns_rs::NetNs::new(name)
        .map(drop)
        .map_err(|e| anyhow!("creating network namespace {name}: {e}"))
}

/// Removes the persistent namespace `NAME` (lazy unmount + unlink, like `ip netns delete`).
/// Links inside it go away with it once no process holds it. A reserved but never mounted
/// path is just unlinked; a missing one is not an error.
pub fn remove(name: &str) -> Result<()> {
    let path = netns_path(name);
    if !path.exists() {
        return Ok(());
    }
    match nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
        // EINVAL: not a mount point (only reserved).
        Ok(()) | Err(nix::errno::Errno::EINVAL) => {}
        Err(e) => return Err(anyhow!("unmounting namespace {name}: {e}")),
    }
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing {}", path.display()))
        }
        _ => Ok(()),
    }
}

/// Inode of a namespace, to recognise processes living in it.
pub fn inode(name: &str) -> Result<u64> {
    Ok(std::fs::metadata(netns_path(name))
        .with_context(|| format!("namespace {name}"))?
        .ino())
}

/// PIDs of processes whose network namespace is `NAME` (from `/proc/PID/ns/net`).
pub fn pids_in(name: &str) -> Result<Vec<i32>> {
    let target = inode(name)?;
    let own = std::process::id() as i32;
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc")
        .context("reading /proc")?
        .flatten()
    {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid == own {
            continue;
        }
        if let Ok(meta) = std::fs::metadata(entry.path().join("ns/net"))
            && meta.ino() == target
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// Runs `work` on a new thread that has entered namespace `NAME` and returns its result.
///
/// The thread is dedicated: it never leaves the namespace and ends with `work`. Sockets
/// created inside `work` stay in the namespace and may be returned to the caller.
pub fn run_in_netns<T, F>(name: &str, work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    let path = netns_path(name);
    let file = File::open(&path).with_context(|| format!("opening namespace {name}"))?;
    let label = name.to_string();
    std::thread::Builder::new()
        .name(format!("netns-{name}"))
        .spawn(move || -> Result<T> {
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                .with_context(|| format!("entering namespace {label} (needs CAP_SYS_ADMIN)"))?;
            drop(file);
            work()
        })
        .context("spawning a namespace thread")?
        .join()
        .map_err(|_| anyhow!("a thread working in namespace {name} panicked"))?
}

/// Runs async netlink work inside namespace `NAME` (or the caller's namespace for `None`) on a
/// dedicated thread with a current-thread runtime and its own rtnetlink connection.
pub fn netlink_in<T, F, Fut>(name: Option<&str>, work: F) -> Result<T>
where
    F: FnOnce(rtnetlink::Handle) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T>>,
    T: Send + 'static,
{
    let body = move || -> Result<T> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("building a tokio runtime")?;
        runtime.block_on(async move {
            let (connection, handle, _) =
                rtnetlink::new_connection().context("opening a netlink socket")?;
            let task = tokio::spawn(connection);
            let result = work(handle).await;
            task.abort();
            result
        })
    };
    match name {
        Some(name) => run_in_netns(name, body),
        None => std::thread::Builder::new()
            .name("netlink-root".into())
            .spawn(body)
            .context("spawning a netlink thread")?
            .join()
            .map_err(|_| anyhow!("the netlink thread panicked"))?,
    }
}

/// Writes files under `/sys` as namespace `NAME` sees them, e.g.
/// `class/net/IF/queues/rx-0/rps_cpus`. sysfs shows a network namespace's devices only when it
/// was mounted from inside that namespace, so the working thread also takes a private mount
/// namespace (mounts below `/` made slaves, so nothing propagates out) and mounts a fresh sysfs
/// on `/sys` there, as `ip netns exec` does. Nothing outside that thread changes; its mounts go
/// with it.
pub fn write_sysfs(name: &str, writes: Vec<(String, String)>) -> Result<()> {
    use nix::mount::{MntFlags, MsFlags, mount, umount2};
    let label = name.to_string();
    run_in_netns(name, move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS)
            .context("unshare(CLONE_NEWNS) for a private /sys")?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_SLAVE,
            None::<&str>,
        )
        .context("making the private mount namespace a slave")?;
        // /sys may be busy or absent; the fresh mount goes on top either way.
        let _ = umount2("/sys", MntFlags::MNT_DETACH);
        mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .context("mounting sysfs for the namespace")?;
        for (relative, value) in writes {
            let path = Path::new("/sys").join(&relative);
            std::fs::write(&path, value.as_bytes()).with_context(|| {
                format!("writing {value:?} to /sys/{relative} in namespace {label}")
            })?;
        }
        Ok(())
    })
}

/// The receive queues' `rps_cpus` files of interface `ifname`, relative to `/sys` (veth has
/// one queue, `rx-0`, unless created with more).
pub fn rps_files(ifname: &str, queues: u32) -> Vec<String> {
    (0..queues.max(1))
        .map(|q| format!("class/net/{ifname}/queues/rx-{q}/rps_cpus"))
        .collect()
}

/// Checks a sysctl key such as `net.ipv4.igmp_max_memberships` and returns its /proc path.
pub fn sysctl_path(key: &str) -> Result<PathBuf> {
    let valid = !key.is_empty()
        && key.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
    if !valid || !key.starts_with("net.") {
        bail!(
            "invalid sysctl {key:?}: expected a per-namespace key like net.ipv4.igmp_max_memberships"
        );
    }
    Ok(Path::new("/proc/sys").join(key.replace('.', "/")))
}

/// Writes per-namespace sysctls from a thread inside namespace `NAME`.
pub fn write_sysctls(name: &str, settings: Vec<(String, String)>) -> Result<()> {
    let label = name.to_string();
    run_in_netns(name, move || {
        for (key, value) in settings {
            let path = sysctl_path(&key)?;
            std::fs::write(&path, value.as_bytes())
                .with_context(|| format!("setting {key}={value} in namespace {label}"))?;
        }
        Ok(())
    })
}

/// Reads a sysctl inside namespace `NAME`.
pub fn read_sysctl(name: &str, key: &str) -> Result<String> {
    let path = sysctl_path(key)?;
    let label = format!("{key} in namespace {name}");
    run_in_netns(name, move || {
        Ok(std::fs::read_to_string(&path)
            .with_context(|| format!("reading {label}"))?
            .trim()
            .to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysctl_keys_are_checked() {
        assert_eq!(
            sysctl_path("net.ipv4.igmp_max_memberships").unwrap(),
            Path::new("/proc/sys/net/ipv4/igmp_max_memberships")
        );
        assert!(sysctl_path("net.ipv4.conf.mlabc123-l1a.rp_filter").is_ok());
        assert!(sysctl_path("kernel.pid_max").is_err());
        assert!(sysctl_path("net..x").is_err());
        assert!(sysctl_path("net/../../etc").is_err());
        assert!(sysctl_path("").is_err());
    }
}
