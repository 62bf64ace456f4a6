//! Child processes inside network namespaces, tracked by PID (docs/architecture.md, safety
//! rule 4).
//!
//! [`spawn_in_netns`] starts a command whose child enters the namespace between fork and exec
//! (setns on a descriptor opened before the fork), captures stdout and stderr into bounded
//! buffers, and optionally enforces a deadline. [`Spawned::stop`] sends SIGTERM, then SIGKILL
//! after a grace period, and always reaps. Dropping a [`Spawned`] stops it.
//!
//! A global registry knows every live child and every cleanup action (topologies register
//! theirs); [`install_signal_cleanup`] makes SIGINT/SIGTERM stop the children, run the
//! cleanups and exit with status 130. [`scratch`] holds the runs' scratch directories, which
//! the same cleanup removes.

#[allow(unsafe_code)]
mod enter_namespace;
pub mod loadgen;
pub mod sched;
pub mod scratch;
mod stray;

pub use sched::ProcessPlacement;

use anyhow::{Context, Result, anyhow};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, Once, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Grace between SIGTERM and SIGKILL when a deadline expires or a signal arrives.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(5);

/// How to run a child.
#[derive(Debug, Clone)]
pub struct SpawnOptions {
    /// Stop the child (SIGTERM, then SIGKILL after `grace`) if it runs longer than this.
    pub deadline: Option<Duration>,
    /// Grace between SIGTERM and SIGKILL for the deadline.
    pub grace: Duration,
    /// Bytes kept of each of stdout and stderr (the rest is counted and dropped).
    pub capture_limit: usize,
    /// CPUs and scheduling class of the child (applied between fork and exec).
    pub placement: ProcessPlacement,
}

impl Default for SpawnOptions {
    fn default() -> Self {
        SpawnOptions {
            deadline: None,
            grace: DEFAULT_GRACE,
            capture_limit: 8 << 20,
            placement: ProcessPlacement::default(),
        }
    }
}

impl SpawnOptions {
    pub fn with_deadline(deadline: Duration) -> Self {
        SpawnOptions {
            deadline: Some(deadline),
            ..SpawnOptions::default()
        }
    }

    /// The same options, with the child placed on `placement`'s CPUs and scheduling class.
    pub fn placed(self, placement: &ProcessPlacement) -> Self {
        SpawnOptions {
            placement: placement.clone(),
            ..self
        }
    }
}

/// Bounded capture of one output stream.
#[derive(Debug, Default)]
struct Capture {
    data: Vec<u8>,
    dropped: u64,
}

#[derive(Debug)]
struct ChildState {
    child: Child,
    status: Option<ExitStatus>,
}

#[derive(Debug)]
struct Inner {
    pid: u32,
    state: Mutex<ChildState>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, ChildState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn try_wait(&self) -> Result<Option<ExitStatus>> {
        let mut state = self.lock();
        if let Some(status) = state.status {
            return Ok(Some(status));
        }
        let status = state
            .child
            .try_wait()
            .with_context(|| format!("waiting for PID {}", self.pid))?;
        state.status = status;
        Ok(status)
    }

    fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, wait `grace`, SIGKILL, reap.
    fn stop(&self, grace: Duration) -> Result<ExitStatus> {
        {
            let mut state = self.lock();
            if let Some(status) = state.status {
                return Ok(status);
            }
            if let Some(status) = state.child.try_wait()? {
                state.status = Some(status);
                return Ok(status);
            }
            // The child is not reaped (we hold it), so its PID cannot have been reused.
            let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGTERM);
        }
        if let Some(status) = self.wait_timeout(grace)? {
            return Ok(status);
        }
        let mut state = self.lock();
        if let Some(status) = state.status {
            return Ok(status);
        }
        let _ = state.child.kill();
        let status = state
            .child
            .wait()
            .with_context(|| format!("reaping PID {}", self.pid))?;
        state.status = Some(status);
        Ok(status)
    }
}

/// A child running in a namespace.
#[derive(Debug)]
pub struct Spawned {
    inner: Arc<Inner>,
    netns: String,
    stdout: Arc<Mutex<Capture>>,
    stderr: Arc<Mutex<Capture>>,
    readers: Vec<JoinHandle<()>>,
    deadline_hit: Arc<std::sync::atomic::AtomicBool>,
}

/// Starts `cmd` inside namespace `netns`; its stdout and stderr are captured (stdin is null).
pub fn spawn_in_netns(netns: &str, mut cmd: Command, opts: SpawnOptions) -> Result<Spawned> {
    if interrupted() {
        anyhow::bail!("interrupted: not starting {:?}", cmd.get_program());
    }
    let path = crate::netns::netns_path(netns);
    let ns_file = File::open(&path).with_context(|| format!("opening namespace {netns}"))?;
    let program = cmd.get_program().to_string_lossy().into_owned();
    let cpus = opts
        .placement
        .cpu_set()
        .with_context(|| format!("CPU set {:?} for {program}", opts.placement.cpus))?;
    enter_namespace::enter_before_exec(
        &mut cmd,
        ns_file.into(),
        cpus,
        opts.placement.fifo_priority,
    );
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Own process group: a terminal's Ctrl-C reaches labctl, which stops children in order.
    cmd.process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting {program} in namespace {netns}"))?;
    // The namespace descriptor, owned by the pre-exec hook, is no longer needed.
    drop(cmd);
    let pid = child.id();
    let stdout = Arc::new(Mutex::new(Capture::default()));
    let stderr = Arc::new(Mutex::new(Capture::default()));
    let mut readers = Vec::new();
    if let Some(pipe) = child.stdout.take() {
        readers.push(spawn_reader(pipe, stdout.clone(), opts.capture_limit)?);
    }
    if let Some(pipe) = child.stderr.take() {
        readers.push(spawn_reader(pipe, stderr.clone(), opts.capture_limit)?);
    }
    let inner = Arc::new(Inner {
        pid,
        state: Mutex::new(ChildState {
            child,
            status: None,
        }),
    });
    registry()
        .children
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(pid, Arc::downgrade(&inner));
    let deadline_hit = Arc::new(std::sync::atomic::AtomicBool::new(false));
    if let Some(deadline) = opts.deadline {
        spawn_watchdog(
            Arc::downgrade(&inner),
            deadline,
            opts.grace,
            deadline_hit.clone(),
        )?;
    }
    Ok(Spawned {
        inner,
        netns: netns.to_string(),
        stdout,
        stderr,
        readers,
        deadline_hit,
    })
}

fn spawn_reader(
    mut pipe: impl Read + Send + 'static,
    sink: Arc<Mutex<Capture>>,
    limit: usize,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("child-output".into())
        .spawn(move || {
            let mut buf = [0u8; 16384];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let mut capture = sink.lock().unwrap_or_else(|p| p.into_inner());
                        let room = limit.saturating_sub(capture.data.len()).min(n);
                        capture.data.extend_from_slice(&buf[..room]);
                        capture.dropped += (n - room) as u64;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        })
        .context("spawning an output reader thread")
}

fn spawn_watchdog(
    inner: Weak<Inner>,
    deadline: Duration,
    grace: Duration,
    hit: Arc<std::sync::atomic::AtomicBool>,
) -> Result<()> {
    let end = Instant::now() + deadline;
    std::thread::Builder::new()
        .name("child-deadline".into())
        .spawn(move || {
            loop {
                let Some(inner) = inner.upgrade() else { return };
                match inner.try_wait() {
                    Ok(None) => {}
                    _ => return,
                }
                if Instant::now() >= end {
                    hit.store(true, std::sync::atomic::Ordering::SeqCst);
                    let _ = inner.stop(grace);
                    return;
                }
                drop(inner);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .context("spawning a deadline thread")?;
    Ok(())
}

impl Spawned {
    pub fn pid(&self) -> u32 {
        self.inner.pid
    }

    /// The namespace the child runs in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    pub fn is_running(&self) -> bool {
        matches!(self.inner.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the child to exit; `None` if it is still running.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<ExitStatus>> {
        self.inner.wait_timeout(timeout)
    }

    /// SIGTERM, then SIGKILL after `grace`; always reaps.
    pub fn stop(&self, grace: Duration) -> Result<ExitStatus> {
        self.inner.stop(grace)
    }

    /// True if the deadline of [`SpawnOptions`] expired and the child was stopped for it.
    pub fn deadline_expired(&self) -> bool {
        self.deadline_hit.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Captured stdout so far (complete once the child has exited and [`Self::finish_output`]).
    pub fn stdout_text(&self) -> String {
        capture_text(&self.stdout)
    }

    /// Captured stderr so far.
    pub fn stderr_text(&self) -> String {
        capture_text(&self.stderr)
    }

    /// Waits (up to `timeout`) for the output readers to reach end of file, so the texts are
    /// complete; call after the child exited.
    pub fn finish_output(&mut self, timeout: Duration) {
        let end = Instant::now() + timeout;
        while Instant::now() < end && self.readers.iter().any(|r| !r.is_finished()) {
            std::thread::sleep(POLL);
        }
        for reader in std::mem::take(&mut self.readers) {
            if reader.is_finished() {
                let _ = reader.join();
            }
        }
    }

    /// Waits for exit up to `timeout` (stopping the child if it has not exited by then) and
    /// returns the status with complete output.
    pub fn wait_output(mut self, timeout: Duration) -> Result<(ExitStatus, String, String)> {
        let status = match self.wait_timeout(timeout)? {
            Some(status) => status,
            None => {
                let status = self.stop(DEFAULT_GRACE)?;
                return Err(anyhow!(
                    "PID {} did not exit within {timeout:?} and was stopped ({status}); stderr: {}",
                    self.pid(),
                    self.stderr_text().trim()
                ));
            }
        };
        self.finish_output(Duration::from_secs(2));
        Ok((status, self.stdout_text(), self.stderr_text()))
    }
}

fn capture_text(capture: &Mutex<Capture>) -> String {
    let capture = capture.lock().unwrap_or_else(|p| p.into_inner());
    let mut text = String::from_utf8_lossy(&capture.data).into_owned();
    if capture.dropped > 0 {
        text.push_str(&format!("\n[{} more bytes not kept]\n", capture.dropped));
    }
    text
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.inner.stop(DEFAULT_GRACE);
        registry()
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.inner.pid);
    }
}

/// A cleanup action run on SIGINT/SIGTERM (for example: tear down a topology).
pub type CleanupAction = Box<dyn Fn() + Send>;

struct Registry {
    children: Mutex<HashMap<u32, Weak<Inner>>>,
    cleanups: Mutex<Vec<(String, CleanupAction)>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        children: Mutex::new(HashMap::new()),
        cleanups: Mutex::new(Vec::new()),
    })
}

/// Registers `action` under `key` to run if labctl is interrupted.
pub fn register_cleanup(key: String, action: CleanupAction) {
    let mut cleanups = registry()
        .cleanups
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    cleanups.retain(|(k, _)| *k != key);
    cleanups.push((key, action));
}

/// Forgets the cleanup registered under `key`.
pub fn unregister_cleanup(key: &str) {
    registry()
        .cleanups
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .retain(|(k, _)| k != key);
}

/// Stops every registered child (SIGTERM, then SIGKILL after `grace`) and runs every
/// registered cleanup, newest first.
pub fn cleanup_all(grace: Duration) {
    let children: Vec<Arc<Inner>> = registry()
        .children
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .filter_map(Weak::upgrade)
        .collect();
    for child in &children {
        let mut state = child.lock();
        if state.status.is_none() && matches!(state.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(child.pid as i32), Signal::SIGTERM);
        } else if state.status.is_none() {
            state.status = state.child.try_wait().ok().flatten();
        }
    }
    for child in &children {
        let _ = child.stop(grace);
    }
    let cleanups = std::mem::take(
        &mut *registry()
            .cleanups
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    for (_, action) in cleanups.into_iter().rev() {
        action();
    }
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// True once SIGINT/SIGTERM arrived (after [`install_signal_cleanup`]); no new child starts.
pub fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}

/// Call before leaving `main`: if a signal arrived, waits for the cleanup thread, which exits
/// with status 130 when done (bounded: exits 130 itself after a minute).
pub fn exit_if_interrupted() {
    if !interrupted() {
        return;
    }
    let end = Instant::now() + Duration::from_secs(60);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::process::exit(130);
}

/// Installs (once) a SIGINT/SIGTERM handler thread that stops registered children, tears down
/// registered topologies and exits with status 130.
pub fn install_signal_cleanup() -> Result<()> {
    static INSTALLED: Once = Once::new();
    let mut result = Ok(());
    INSTALLED.call_once(|| {
        result = (|| {
            let mut signals = signal_hook::iterator::Signals::new([libc::SIGINT, libc::SIGTERM])
                .context("installing the SIGINT/SIGTERM handler")?;
            std::thread::Builder::new()
                .name("signal-cleanup".into())
                .spawn(move || {
                    if let Some(signal) = signals.forever().next() {
                        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
                        eprintln!(
                            "labctl: signal {signal}: stopping children and tearing down topologies"
                        );
                        cleanup_all(DEFAULT_GRACE);
                        std::process::exit(130);
                    }
                })
                .context("spawning the signal thread")?;
            Ok(())
        })();
    });
    result
}

/// Stops processes found in namespace `netns` (not necessarily our children): SIGTERM, then
/// SIGKILL after `grace`, each through a pidfd (see `stray`). Used at teardown so a namespace
/// never outlives a stray process, and by `labctl clean`.
pub fn stop_pids_in_netns(netns: &str, grace: Duration) -> Result<usize> {
    stray::stop_in_netns(netns, rustix::process::Signal::TERM, grace)
}

/// [`stop_pids_in_netns`] with another first signal, by name (`TERM`, `INT`, `HUP`, `QUIT`,
/// `USR1`, `USR2`; anything else is SIGTERM).
pub fn stop_pids_in_netns_with(netns: &str, signal: &str, grace: Duration) -> Result<usize> {
    use rustix::process::Signal;
    let signal = match signal {
        "INT" => Signal::INT,
        "HUP" => Signal::HUP,
        "QUIT" => Signal::QUIT,
        "USR1" => Signal::USR1,
        "USR2" => Signal::USR2,
        _ => Signal::TERM,
    };
    stray::stop_in_netns(netns, signal, grace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_is_bounded() {
        let capture = Arc::new(Mutex::new(Capture::default()));
        let data: &'static [u8] = b"0123456789";
        spawn_reader(data, capture.clone(), 4)
            .unwrap()
            .join()
            .unwrap();
        let text = capture_text(&capture);
        assert!(text.starts_with("0123"));
        assert!(text.contains("[6 more bytes not kept]"));
    }

    #[test]
    fn cleanups_register_and_unregister() {
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let h = hits.clone();
        register_cleanup(
            "test:a".into(),
            Box::new(move || {
                h.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        );
        unregister_cleanup("test:a");
        let found = registry()
            .cleanups
            .lock()
            .unwrap()
            .iter()
            .any(|(k, _)| k == "test:a");
        assert!(!found);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0);
    }
}
