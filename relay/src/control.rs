//! The control socket: JSON lines over a UNIX stream socket (mode 0600).
//!
//! One request object per line, one reply line per request (protocol in docs/interfaces.md):
//! `{"cmd":"add","rule":"RULE"}`, `{"cmd":"remove","id":3}` / `{"cmd":"remove","rule":"RULE"}`,
//! `{"cmd":"list"}`, `{"cmd":"stats"}`, `{"cmd":"memberships"}`. Replies are
//! `{"ok":true,...}` or `{"ok":false,"error":"...","errno":105}`.
//!
//! Robustness: each connection has its own thread, a read timeout (a hanging client never
//! blocks others) and a line-length cap (a longer line gets an error and the connection is
//! dropped); bad JSON, unknown commands and invalid rules get an error reply and change nothing.
//! The socket file is removed when the server shuts down.

use crate::rule::Rule;
use crate::service::{Relay, RequestError};
use anyhow::Context;
use netio::membership::SocketFactory;
use serde_json::{Map, Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Default control socket path.
pub const DEFAULT_CONTROL_PATH: &str = "/run/mcast-relay.sock";

/// A parsed control request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Add(Rule),
    RemoveId(u64),
    RemoveRule(Rule),
    List,
    Stats,
    Memberships,
}

/// Parses one request line.
pub fn parse_request(line: &str) -> Result<Request, RequestError> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        RequestError::new(format!(
            "bad JSON ({e}): send one JSON object per line, for example {{\"cmd\":\"list\"}}"
        ))
    })?;
    let object = value
        .as_object()
        .ok_or_else(|| RequestError::new("a request must be a JSON object with a \"cmd\" field"))?;
    let cmd = object.get("cmd").and_then(Value::as_str).ok_or_else(|| {
        RequestError::new("missing \"cmd\": use add, remove, list, stats or memberships")
    })?;
    let rule_field = |required: bool| -> Result<Option<Rule>, RequestError> {
        match object.get("rule") {
            Some(Value::String(text)) => text
                .parse::<Rule>()
                .map(Some)
                .map_err(|e| RequestError::new(format!("invalid rule: {e}"))),
            Some(_) => Err(RequestError::new("\"rule\" must be a string")),
            None if required => Err(RequestError::new(format!(
                "\"{cmd}\" needs \"rule\": {{\"cmd\":\"{cmd}\",\"rule\":\"IF:GROUP:PORT -> IF:GROUP:PORT\"}}"
            ))),
            None => Ok(None),
        }
    };
    match cmd {
        "add" => rule_field(true)?
            .map(Request::Add)
            .ok_or_else(|| RequestError::new("\"add\" needs \"rule\"")),
        "remove" => match object.get("id") {
            Some(id) => id
                .as_u64()
                .map(Request::RemoveId)
                .ok_or_else(|| RequestError::new("\"id\" must be a non-negative integer")),
            None => match rule_field(false)? {
                Some(rule) => Ok(Request::RemoveRule(rule)),
                None => Err(RequestError::new("\"remove\" needs \"id\" or \"rule\"")),
            },
        },
        "list" => Ok(Request::List),
        "stats" => Ok(Request::Stats),
        "memberships" => Ok(Request::Memberships),
        other => Err(RequestError::new(format!(
            "unknown command {other:?}: use add, remove, list, stats or memberships"
        ))),
    }
}

/// Executes requests; the relay implements it, tests use fakes.
pub trait Handler: Send + Sync + 'static {
    /// The reply's fields besides `"ok": true`.
    fn handle(&self, request: Request) -> Result<Map<String, Value>, RequestError>;
}

fn to_fields(value: impl serde::Serialize) -> Result<Map<String, Value>, RequestError> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RequestError::new("internal error: reply is not an object")),
        Err(e) => Err(RequestError::new(format!("internal error: {e}"))),
    }
}

impl<F> Handler for Relay<F>
where
    F: SocketFactory + Send + 'static,
    F::Socket: Send,
{
    fn handle(&self, request: Request) -> Result<Map<String, Value>, RequestError> {
        match request {
            Request::Add(rule) => Ok(to_fields(json!({ "id": self.add(rule)? }))?),
            Request::RemoveId(id) => Ok(to_fields(json!({ "id": self.remove(id)? }))?),
            Request::RemoveRule(rule) => Ok(to_fields(json!({ "id": self.remove_rule(&rule)? }))?),
            Request::List => to_fields(json!({ "rules": self.list() })),
            Request::Stats => to_fields(self.stats()),
            Request::Memberships => to_fields(self.memberships()),
        }
    }
}

/// The reply line (without newline) for one request line.
pub fn respond(handler: &dyn Handler, line: &str) -> String {
    let reply = match parse_request(line).and_then(|r| handler.handle(r)) {
        Ok(mut fields) => {
            let mut reply = Map::new();
            reply.insert("ok".into(), Value::Bool(true));
            reply.append(&mut fields);
            Value::Object(reply)
        }
        Err(e) => error_reply(&e),
    };
    reply.to_string()
}

fn error_reply(e: &RequestError) -> Value {
    let mut reply = json!({ "ok": false, "error": e.message });
    if let Some(errno) = e.errno {
        reply["errno"] = json!(errno);
    }
    reply
}

/// Limits that keep one client from hurting the others.
#[derive(Debug, Clone, Copy)]
pub struct ServerLimits {
    pub max_line: usize,
    pub read_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        ServerLimits {
            max_line: 64 * 1024,
            read_timeout: Duration::from_secs(10),
            max_connections: 64,
        }
    }
}

/// A listening control socket.
pub struct ControlServer {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
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
        let stop = Arc::new(AtomicBool::new(false));
        let accept_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("relay-control".into())
            .spawn(move || accept_loop(listener, handler, limits, accept_stop))
            .context("spawning the control thread")?;
        Ok(ControlServer {
            path: path.to_path_buf(),
            stop,
            thread: Some(thread),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops accepting, waits for the accept thread and removes the socket file.
    pub fn shutdown(mut self) {
        self.stop_and_remove();
    }

    fn stop_and_remove(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.store(true, Ordering::SeqCst);
            // Wake the blocking accept().
            let _ = UnixStream::connect(&self.path);
            let _ = thread.join();
        }
        let _ = std::fs::remove_file(&self.path);
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
    stop: Arc<AtomicBool>,
) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(mut stream) = stream else {
            // EMFILE and the like: do not spin.
            std::thread::sleep(Duration::from_millis(50));
            continue;
        };
        if active.load(Ordering::SeqCst) >= limits.max_connections {
            let e = RequestError::new("too many control connections: try again later");
            let _ = writeln!(stream, "{}", error_reply(&e));
            continue;
        }
        active.fetch_add(1, Ordering::SeqCst);
        let (handler, active_conn) = (handler.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name("relay-control-conn".into())
            .spawn(move || {
                serve_connection(stream, handler.as_ref(), limits);
                active_conn.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Serves one client until EOF, timeout, an over-long line or a write error.
pub fn serve_connection(stream: UnixStream, handler: &dyn Handler, limits: ServerLimits) {
    if stream.set_read_timeout(Some(limits.read_timeout)).is_err()
        || stream.set_write_timeout(Some(limits.read_timeout)).is_err()
    {
        return;
    }
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        let read = (&mut reader)
            .take(limits.max_line as u64 + 1)
            .read_until(b'\n', &mut line);
        match read {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                let e = RequestError::new(format!(
                    "no complete request within {} s: closing the connection",
                    limits.read_timeout.as_secs()
                ));
                let _ = writeln!(writer, "{}", error_reply(&e));
                return;
            }
            Err(_) => return,
        }
        if line.last() != Some(&b'\n') && line.len() > limits.max_line {
            let e = RequestError::new(format!(
                "request line longer than {} bytes: closing the connection",
                limits.max_line
            ));
            let _ = writeln!(writer, "{}", error_reply(&e));
            return;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let reply = respond(handler, text);
        if writeln!(writer, "{reply}").is_err() {
            return;
        }
    }
}

/// Sends one request to a relay and returns its reply object.
pub fn request(path: &Path, request: &Value, timeout: Duration) -> anyhow::Result<Value> {
    let mut stream = UnixStream::connect(path).with_context(|| {
        format!(
            "connecting to the relay's control socket {} (is `relay run` running with this --control path?)",
            path.display()
        )
    })?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    writeln!(stream, "{request}").context("sending the request")?;
    let mut line = String::new();
    BufReader::new(stream)
        .take(64 << 20)
        .read_line(&mut line)
        .context("reading the relay's reply")?;
    anyhow::ensure!(
        !line.is_empty(),
        "the relay closed the connection without a reply"
    );
    serde_json::from_str(&line).context("the relay's reply is not JSON")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Instant;

    #[derive(Default)]
    struct FakeHandler {
        seen: Mutex<Vec<Request>>,
    }

    impl Handler for FakeHandler {
        fn handle(&self, request: Request) -> Result<Map<String, Value>, RequestError> {
            let mut seen = self.seen.lock().unwrap();
            seen.push(request.clone());
            match request {
                Request::Add(_) => Err(RequestError {
                    message: "joining failed: ENOBUFS".into(),
                    errno: Some(105),
                }),
                _ => to_fields(json!({ "count": seen.len() })),
            }
        }
    }

    #[test]
    fn parses_every_command() {
        let rule = "a:239.1.0.1:5000 -> b:239.2.0.1:5000";
        assert!(matches!(
            parse_request(&format!(r#"{{"cmd":"add","rule":"{rule}"}}"#)),
            Ok(Request::Add(_))
        ));
        assert_eq!(
            parse_request(r#"{"cmd":"remove","id":3}"#),
            Ok(Request::RemoveId(3))
        );
        assert!(matches!(
            parse_request(&format!(r#"{{"cmd":"remove","rule":"{rule}"}}"#)),
            Ok(Request::RemoveRule(_))
        ));
        assert_eq!(parse_request(r#"{"cmd":"list"}"#), Ok(Request::List));
        assert_eq!(parse_request(r#"{"cmd":"stats"}"#), Ok(Request::Stats));
        assert_eq!(
            parse_request(r#"{"cmd":"memberships"}"#),
            Ok(Request::Memberships)
        );
    }

    #[test]
    fn rejects_bad_requests_with_clear_errors() {
        let cases = [
            ("not json", "bad JSON"),
            ("[1,2]", "JSON object"),
            (r#"{"rule":"x"}"#, "missing \"cmd\""),
            (r#"{"cmd":"explode"}"#, "unknown command"),
            (r#"{"cmd":"add"}"#, "needs \"rule\""),
            (r#"{"cmd":"add","rule":5}"#, "must be a string"),
            (
                r#"{"cmd":"add","rule":"a:198.18.0.1:1 -> b:239.2.0.1:1"}"#,
                "not an IPv4 multicast",
            ),
            (
                r#"{"cmd":"add","rule":"a:239.1.0.1:0 -> b:239.2.0.1:1"}"#,
                "port",
            ),
            (r#"{"cmd":"remove"}"#, "needs \"id\" or \"rule\""),
            (r#"{"cmd":"remove","id":-1}"#, "non-negative"),
        ];
        for (line, expected) in cases {
            let err = parse_request(line).unwrap_err();
            assert!(err.message.contains(expected), "{line}: {}", err.message);
        }
    }

    #[test]
    fn replies_carry_ok_error_and_errno() {
        let handler = FakeHandler::default();
        let ok: Value = serde_json::from_str(&respond(&handler, r#"{"cmd":"list"}"#)).unwrap();
        assert_eq!(ok["ok"], true);
        assert_eq!(ok["count"], 1);
        let failed: Value = serde_json::from_str(&respond(
            &handler,
            r#"{"cmd":"add","rule":"a:239.1.0.1:1 -> b:239.2.0.1:1"}"#,
        ))
        .unwrap();
        assert_eq!(failed["ok"], false);
        assert_eq!(failed["errno"], 105);
        let bad: Value = serde_json::from_str(&respond(&handler, "{")).unwrap();
        assert_eq!(bad["ok"], false);
        assert!(bad.get("errno").is_none());
    }

    fn start(dir: &tempfile::TempDir, limits: ServerLimits) -> (ControlServer, PathBuf) {
        let path = dir.path().join("relay.sock");
        let server = ControlServer::start(&path, Arc::new(FakeHandler::default()), limits).unwrap();
        (server, path)
    }

    #[test]
    fn socket_is_0600_serves_lines_and_is_removed_on_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (server, path) = start(&dir, ServerLimits::default());
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let reply = request(&path, &json!({"cmd":"stats"}), Duration::from_secs(5)).unwrap();
        assert_eq!(reply["ok"], true);
        // A second server on the same path is refused while the first one listens.
        assert!(
            ControlServer::start(
                &path,
                Arc::new(FakeHandler::default()),
                ServerLimits::default()
            )
            .is_err()
        );
        server.shutdown();
        assert!(!path.exists());
    }

    #[test]
    fn over_long_line_gets_an_error_and_the_connection_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ServerLimits {
            max_line: 1024,
            ..ServerLimits::default()
        };
        let (_server, path) = start(&dir, limits);
        let mut stream = UnixStream::connect(&path).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.write_all(&vec![b'x'; 10_000]);
        let mut reply = String::new();
        BufReader::new(&stream).read_line(&mut reply).unwrap();
        assert!(reply.contains("longer than 1024 bytes"), "{reply}");
        // The server still answers others.
        let ok = request(&path, &json!({"cmd":"list"}), Duration::from_secs(5)).unwrap();
        assert_eq!(ok["ok"], true);
    }

    #[test]
    fn hanging_client_does_not_block_others_and_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let limits = ServerLimits {
            read_timeout: Duration::from_secs(2),
            ..ServerLimits::default()
        };
        let (_server, path) = start(&dir, limits);
        let mut hanging = UnixStream::connect(&path).unwrap();
        hanging.write_all(b"{\"cmd\":").unwrap(); // never finishes the line
        let started = Instant::now();
        let ok = request(&path, &json!({"cmd":"list"}), Duration::from_secs(5)).unwrap();
        assert_eq!(ok["ok"], true);
        assert!(
            started.elapsed() < Duration::from_millis(1500),
            "blocked by the hanging client"
        );
        hanging
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut reply = String::new();
        BufReader::new(&hanging).read_line(&mut reply).unwrap();
        assert!(reply.contains("no complete request"), "{reply}");
    }

    #[test]
    fn stale_socket_file_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("relay.sock");
        drop(UnixListener::bind(&path).unwrap()); // leaves a dead socket file
        assert!(path.exists());
        let server = ControlServer::start(
            &path,
            Arc::new(FakeHandler::default()),
            ServerLimits::default(),
        )
        .unwrap();
        assert!(request(&path, &json!({"cmd":"list"}), Duration::from_secs(5)).is_ok());
        server.shutdown();
        let regular = dir.path().join("file");
        std::fs::write(&regular, b"x").unwrap();
        assert!(
            ControlServer::start(
                &regular,
                Arc::new(FakeHandler::default()),
                ServerLimits::default()
            )
            .is_err()
        );
        assert!(regular.exists(), "a non-socket file is never deleted");
    }
}
