//! The control socket server: accepts clients within [`ServerLimits`], one thread each, and
//! stops without needing its socket file (shutdown(2) on the listening socket wakes `accept`).

use super::connections::{Connections, Slot};
use super::line::{Next, next_request, write_line_by};
use super::{Handler, error_reply};
use crate::service::RequestError;
use anyhow::Context;
use std::io::{BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// Limits that keep one client from hurting the others (`relay run --control-*` flags).
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    /// Longest request line in bytes.
    pub max_line: usize,
    /// A request must be read, handled and answered within this time from its first byte.
    pub request_timeout: Duration,
    /// A connection waiting longer than this for its next request is closed.
    pub idle_timeout: Duration,
    /// Open connections at most; at the limit the longest-idle one makes room for a new one.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_line: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

/// How long [`ControlServer::shutdown`] waits for the accept thread before leaving it behind.
const ACCEPT_STOP_WAIT: Duration = Duration::from_millis(500);

/// A listening control socket.
pub struct ControlServer {
    path: PathBuf,
    /// Device and inode of the socket file this server created (removed only if unchanged).
    file_id: (u64, u64),
    /// A second handle on the listening socket, to wake `accept` by shutting it down.
    listener: UnixListener,
    stop: Arc<AtomicBool>,
    connections: Arc<Connections>,
    accept_done: Option<mpsc::Receiver<()>>,
}

impl ControlServer {
    /// Binds `path` (mode 0600) and serves requests on a background thread.
    pub fn start(
        path: &Path,
        handler: Arc<dyn Handler>,
        limits: ServerLimits,
    ) -> anyhow::Result<Self> {
        prepare_path(path)?;
        // Create the socket file with mode 0600 from the start (no window with looser mode).
        let old_mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
        let bound = UnixListener::bind(path);
        nix::sys::stat::umask(old_mask);
        let listener =
            bound.with_context(|| format!("binding control socket {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("setting mode 0600 on {}", path.display()))?;
        let meta = std::fs::symlink_metadata(path)
            .with_context(|| format!("reading back {}", path.display()))?;
        let handle = listener.try_clone().context("cloning the control socket")?;
        let stop = Arc::new(AtomicBool::new(false));
        let connections = Arc::new(Connections::default());
        let (done_tx, done_rx) = mpsc::channel();
        let (accept_stop, accept_connections) = (stop.clone(), connections.clone());
        std::thread::Builder::new()
            .name("relay-control".into())
            .spawn(move || {
                accept_loop(listener, handler, limits, &accept_stop, &accept_connections);
                let _ = done_tx.send(());
            })
            .context("spawning the control thread")?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            file_id: (meta.dev(), meta.ino()),
            listener: handle,
            stop,
            connections,
            accept_done: Some(done_rx),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, closes every connection and removes the socket file if it is still
    /// the one this server created. Bounded: it never needs the socket file to exist.
    pub fn shutdown(mut self) {
        self.stop_and_remove();
    }

    fn stop_and_remove(&mut self) {
        let Some(done) = self.accept_done.take() else {
            return;
        };
        self.stop.store(true, Ordering::SeqCst);
        // Wakes a blocked accept() with EINVAL (Linux) - no connect to the file needed.
        let _ = socket2::SockRef::from(&self.listener).shutdown(Shutdown::Both);
        if done.recv_timeout(ACCEPT_STOP_WAIT).is_err() {
            tracing::warn!("the control accept thread did not stop in time; leaving it");
        }
        self.connections.close_all();
        match std::fs::symlink_metadata(&self.path) {
            Ok(meta) if (meta.dev(), meta.ino()) == self.file_id => {
                let _ = std::fs::remove_file(&self.path);
            }
            Ok(_) => tracing::warn!(
                "{} is no longer this relay's control socket: left in place",
                self.path.display()
            ),
            Err(_) => {}
        }
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop_and_remove();
    }
}

/// Refuses a path another relay listens on; removes a stale socket file.
fn prepare_path(path: &Path) -> anyhow::Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    anyhow::ensure!(
        meta.file_type().is_socket(),
        "{} exists and is not a socket: choose another --control path",
        path.display()
    );
    anyhow::ensure!(
        UnixStream::connect(path).is_err(),
        "another process is listening on {}: stop it or choose another --control path",
        path.display()
    );
    std::fs::remove_file(path).with_context(|| format!("removing stale socket {}", path.display()))
}

fn accept_loop(
    listener: UnixListener,
    handler: Arc<dyn Handler>,
    limits: ServerLimits,
    stop: &AtomicBool,
    connections: &Arc<Connections>,
) {
    loop {
        let accepted = listener.accept();
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok((stream, _)) = accepted else {
            // EMFILE and the like: do not spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        let Some(slot) = connections.admit(&stream, limits.max_connections) else {
            refuse(
                stream,
                &limit_error(limits.max_connections),
                limits.max_line,
            );
            continue;
        };
        let handler = handler.clone();
        let spawned = std::thread::Builder::new()
            .name("relay-control-conn".into())
            .spawn(move || serve_connection(stream, handler.as_ref(), limits, Some(&slot)));
        if let Err(e) = spawned {
            tracing::warn!("no thread for a control connection: {e}");
        }
    }
}

fn limit_error(limit: usize) -> RequestError {
    RequestError::new(format!(
        "too many control connections: all {limit} are busy with requests (limit set by \
         `relay run --control-max-connections`); try again"
    ))
}

/// Answers a client the server has no room for with one error line, without blocking: reads
/// what it already sent (so closing does not reset the connection before it reads the
/// answer), writes the line and closes.
fn refuse(mut stream: UnixStream, error: &RequestError, max_line: usize) {
    if stream.set_nonblocking(true).is_err() {
        return;
    }
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained <= max_line {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    let _ = writeln!(stream, "{}", error_reply(error));
    let _ = stream.shutdown(Shutdown::Write);
}

/// Serves one client until EOF, an idle or request timeout, an over-long line, eviction or a
/// write error. `slot` (the server's registration) is told when the client is idle.
pub fn serve_connection(
    stream: UnixStream,
    handler: &dyn Handler,
    limits: ServerLimits,
    slot: Option<&Slot>,
) {
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let set_idle = |idle: bool| {
        if let Some(slot) = slot {
            slot.set_idle(idle);
        }
    };
    loop {
        set_idle(true);
        let (next, deadline) = next_request(
            &mut reader,
            limits.idle_timeout,
            limits.request_timeout,
            limits.max_line,
            || set_idle(false),
        );
        let closing = !matches!(next, Next::Line(_));
        let reply = match next {
            Next::Line(line) => match super::respond_line(handler, &line) {
                Some(reply) => reply,
                None => continue,
            },
            Next::Eof if slot.is_some_and(Slot::evicted) => evicted_reply(limits),
            Next::Eof | Next::Broken => return,
            Next::Idle => closing_reply(format!(
                "no request for {} s: closing the idle connection (`relay run \
                 --control-idle-timeout`)",
                limits.idle_timeout.as_secs_f64()
            )),
            Next::Late => closing_reply(format!(
                "request not complete within {} s of its first byte: closing the connection \
                 (`relay run --control-request-timeout`)",
                limits.request_timeout.as_secs_f64()
            )),
            Next::TooLong => closing_reply(format!(
                "request line longer than {} bytes: closing the connection",
                limits.max_line
            )),
        };
        if write_line_by(&mut writer, &reply, deadline).is_err() || closing {
            return;
        }
    }
}

fn closing_reply(message: String) -> String {
    error_reply(&RequestError::new(message)).to_string()
}

fn evicted_reply(limits: ServerLimits) -> String {
    closing_reply(format!(
        "closing this idle connection to make room for a new client: the relay allows {} \
         control connections (`relay run --control-max-connections`)",
        limits.max_connections
    ))
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod tests;
