use super::*;
use crate::control::{Request, client::request};
use serde_json::{Map, Value, json};
use std::io::BufRead;
use std::time::Instant;

/// The start of a request whose line never ends (a client that hangs, or is still sending).
const UNFINISHED_REQUEST: &[u8] = b"{\"cmd\":";

/// Answers every request with `{"ok":true}`.
struct FakeHandler;

impl Handler for FakeHandler {
    fn handle(&self, _: Request) -> Result<Map<String, Value>, RequestError> {
        Ok(Map::new())
    }
}

fn start(dir: &tempfile::TempDir, limits: ServerLimits) -> (ControlServer, PathBuf) {
    let path = dir.path().join("relay.sock");
    let server = ControlServer::start(&path, Arc::new(FakeHandler), limits).unwrap();
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
    assert!(ControlServer::start(&path, Arc::new(FakeHandler), ServerLimits::default()).is_err());
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
        request_timeout: Duration::from_secs(2),
        ..ServerLimits::default()
    };
    let (_server, path) = start(&dir, limits);
    let mut hanging = UnixStream::connect(&path).unwrap();
    hanging.write_all(UNFINISHED_REQUEST).unwrap(); // never finishes the line
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
    assert!(reply.contains("not complete within 2 s"), "{reply}");
}

#[test]
fn stale_socket_file_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("relay.sock");
    drop(UnixListener::bind(&path).unwrap()); // leaves a dead socket file
    assert!(path.exists());
    let server =
        ControlServer::start(&path, Arc::new(FakeHandler), ServerLimits::default()).unwrap();
    assert!(request(&path, &json!({"cmd":"list"}), Duration::from_secs(5)).is_ok());
    server.shutdown();
    let regular = dir.path().join("file");
    std::fs::write(&regular, b"x").unwrap();
    assert!(
        ControlServer::start(&regular, Arc::new(FakeHandler), ServerLimits::default()).is_err()
    );
    assert!(regular.exists(), "a non-socket file is never deleted");
}

fn read_reply(stream: &UnixStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reply = String::new();
    BufReader::new(stream).read_line(&mut reply).unwrap();
    reply
}

/// Clients that connect and never send keep the server full; a new client still gets its
/// answer, because the longest-idle connection makes room (and is told why).
#[test]
fn idle_connections_make_room_for_new_clients() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ServerLimits {
        max_connections: 4,
        ..ServerLimits::default()
    };
    let (_server, path) = start(&dir, limits);
    let idle: Vec<UnixStream> = (0..6)
        .map(|_| UnixStream::connect(&path).unwrap())
        .collect();
    let started = Instant::now();
    for _ in 0..3 {
        let ok = request(&path, &json!({"cmd":"list"}), Duration::from_secs(5)).unwrap();
        assert_eq!(ok["ok"], true, "{ok}");
    }
    assert!(started.elapsed() < Duration::from_secs(2));
    let evicted = read_reply(&idle[0]);
    assert!(
        evicted.contains("make room") && evicted.contains("--control-max-connections"),
        "{evicted}"
    );
}

/// When every connection is busy with a request, a newcomer gets one JSON error line naming
/// the limit and the flag - not a broken pipe.
#[test]
fn a_client_over_the_limit_of_busy_connections_gets_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ServerLimits {
        max_connections: 2,
        request_timeout: Duration::from_secs(5),
        ..ServerLimits::default()
    };
    let (_server, path) = start(&dir, limits);
    let busy: Vec<UnixStream> = (0..2)
        .map(|_| {
            let mut s = UnixStream::connect(&path).unwrap();
            s.write_all(UNFINISHED_REQUEST).unwrap(); // a request under way
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let reply = request(&path, &json!({"cmd":"list"}), Duration::from_secs(5)).unwrap();
    assert_eq!(reply["ok"], false, "{reply}");
    let message = reply["error"].as_str().unwrap();
    assert!(
        message.contains("all 2 are busy") && message.contains("--control-max-connections"),
        "{message}"
    );
    drop(busy);
}

/// One byte every 100 ms is never a complete request: the request deadline (not a per-read
/// timeout) closes the connection, and other clients are served meanwhile.
#[test]
fn a_slow_loris_client_is_closed_at_the_request_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ServerLimits {
        request_timeout: Duration::from_secs(1),
        ..ServerLimits::default()
    };
    let (_server, path) = start(&dir, limits);
    let mut slow = UnixStream::connect(&path).unwrap();
    let reader = slow.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        let started = Instant::now();
        let line = [
            UNFINISHED_REQUEST,
            b"\"list\"                              ",
        ]
        .concat();
        for byte in line.iter().cycle().take(60) {
            if slow.write_all(&[*byte]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        started.elapsed()
    });
    let ok = request(&path, &json!({"cmd":"list"}), Duration::from_secs(5)).unwrap();
    assert_eq!(ok["ok"], true);
    let reply = read_reply(&reader);
    assert!(reply.contains("--control-request-timeout"), "{reply}");
    let took = trickle.join().unwrap();
    assert!(
        took < Duration::from_secs(3),
        "the trickle was cut off: {took:?}"
    );
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let limits = ServerLimits {
        idle_timeout: Duration::from_millis(300),
        ..ServerLimits::default()
    };
    let (_server, path) = start(&dir, limits);
    let idle = UnixStream::connect(&path).unwrap();
    let reply = read_reply(&idle);
    assert!(reply.contains("--control-idle-timeout"), "{reply}");
}

/// The accept loop is woken without the socket file: shutdown is quick even when the file
/// was deleted or replaced, and a replacement is left alone.
#[test]
fn shutdown_is_quick_and_never_needs_or_removes_a_foreign_socket_file() {
    let dir = tempfile::tempdir().unwrap();
    let (server, path) = start(&dir, ServerLimits::default());
    std::fs::remove_file(&path).unwrap();
    let started = Instant::now();
    server.shutdown();
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );

    let (server, path) = start(&dir, ServerLimits::default());
    std::fs::remove_file(&path).unwrap();
    let other = UnixListener::bind(&path).unwrap();
    let _open = UnixStream::connect(&path).unwrap();
    server.shutdown();
    assert!(
        path.exists(),
        "another listener's socket file is not removed"
    );
    drop(other);
}
