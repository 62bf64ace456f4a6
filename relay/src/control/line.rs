//! Reading one request line and writing one reply line against deadlines: the idle wait before
//! a request and the whole request (first byte to reply written) each have one deadline, not a
//! timeout per read, so a client trickling one byte a second cannot hold a connection.

use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// What waiting for the next request gave.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// A complete line (with its newline, or the rest before EOF).
    Line(Vec<u8>),
    /// The client closed the connection (or was evicted) between requests.
    Eof,
    /// No request started within the idle timeout.
    Idle,
    /// A request started but was not complete by its deadline.
    Late,
    /// The line is longer than the limit.
    TooLong,
    /// The connection failed.
    Broken,
}

/// Waits up to `idle` for a request to start, calls `started` with the request's deadline, then
/// reads the line until `deadline` (at most `max_line` bytes).
pub(super) fn next_request(
    reader: &mut BufReader<UnixStream>,
    idle: Duration,
    request: Duration,
    max_line: usize,
    started: impl FnOnce(),
) -> (Next, Instant) {
    let idle_deadline = Instant::now() + idle;
    loop {
        if reader
            .get_ref()
            .set_read_timeout(Some(remaining(idle_deadline)))
            .is_err()
        {
            return (Next::Broken, Instant::now());
        }
        match reader.fill_buf() {
            Ok([]) => return (Next::Eof, Instant::now()),
            Ok(_) => break,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if is_timeout(&e) => {
                if Instant::now() >= idle_deadline {
                    return (Next::Idle, Instant::now());
                }
            }
            Err(_) => return (Next::Broken, Instant::now()),
        }
    }
    started();
    let deadline = Instant::now() + request;
    (read_line_by(reader, deadline, max_line), deadline)
}

/// Reads up to a newline by `deadline`, one buffer fill at a time (the deadline is checked
/// after every read, however few bytes it brought).
fn read_line_by(reader: &mut BufReader<UnixStream>, deadline: Instant, max_line: usize) -> Next {
    let mut line = Vec::with_capacity(256);
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Next::Late;
        }
        if reader
            .get_ref()
            .set_read_timeout(Some(deadline - now))
            .is_err()
        {
            return Next::Broken;
        }
        let available = match reader.fill_buf() {
            Ok([]) if line.is_empty() => return Next::Eof,
            Ok([]) => return Next::Line(line),
            Ok(available) => available,
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Next::Broken,
        };
        let (taken, complete) = match available.iter().position(|b| *b == b'\n') {
            Some(end) => (end + 1, true),
            None => (available.len(), false),
        };
        let room = (max_line + 1).saturating_sub(line.len());
        line.extend_from_slice(&available[..taken.min(room)]);
        reader.consume(taken.min(room));
        if line.len() > max_line {
            return Next::TooLong;
        }
        if complete {
            return Next::Line(line);
        }
    }
}

/// Writes `text` and a newline by `deadline` (at least `MIN_WRITE` from now, so a request that
/// took long to handle still gets its answer to a reading client).
pub(super) fn write_line_by(
    stream: &mut UnixStream,
    text: &str,
    deadline: Instant,
) -> io::Result<()> {
    const MIN_WRITE: Duration = Duration::from_millis(200);
    let deadline = deadline.max(Instant::now() + MIN_WRITE);
    let mut bytes = Vec::with_capacity(text.len() + 1);
    bytes.extend_from_slice(text.as_bytes());
    bytes.push(b'\n');
    let mut written = 0;
    while written < bytes.len() {
        let now = Instant::now();
        if now >= deadline {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                "reply not taken by the deadline",
            ));
        }
        stream.set_write_timeout(Some(deadline - now))?;
        match stream.write(&bytes[written..]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn remaining(deadline: Instant) -> Duration {
    // A zero timeout means "block forever" to the socket API: never pass one.
    deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1))
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (UnixStream, BufReader<UnixStream>) {
        let (client, server) = UnixStream::pair().unwrap();
        (client, BufReader::new(server))
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn lines_eof_idle_and_too_long() {
        let (mut client, mut reader) = pair();
        client.write_all(b"{\"cmd\":\"list\"}\nabc").unwrap();
        let (next, _) = next_request(&mut reader, SECOND, SECOND, 100, || {});
        assert_eq!(next, Next::Line(b"{\"cmd\":\"list\"}\n".to_vec()));
        client.shutdown(std::net::Shutdown::Write).unwrap();
        let (next, _) = next_request(&mut reader, SECOND, SECOND, 100, || {});
        assert_eq!(next, Next::Line(b"abc".to_vec()), "the rest before EOF");
        let (next, _) = next_request(&mut reader, SECOND, SECOND, 100, || {});
        assert_eq!(next, Next::Eof);

        let (_client, mut reader) = pair();
        let started = Instant::now();
        let (next, _) = next_request(&mut reader, Duration::from_millis(100), SECOND, 100, || {
            panic!("no request started")
        });
        assert_eq!(next, Next::Idle);
        assert!(started.elapsed() < SECOND);

        let (mut client, mut reader) = pair();
        client.write_all(&[b'x'; 300]).unwrap();
        let (next, _) = next_request(&mut reader, SECOND, SECOND, 100, || {});
        assert_eq!(next, Next::TooLong);
    }

    /// One byte every 50 ms never completes a line: the request deadline ends it, although
    /// every single read succeeds well within any per-read timeout.
    #[test]
    fn a_trickling_request_ends_at_its_deadline() {
        let (mut client, mut reader) = pair();
        let trickle = std::thread::spawn(move || {
            for _ in 0..40 {
                if client.write_all(b"x").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        let started = Instant::now();
        let (next, _) = next_request(&mut reader, SECOND, Duration::from_millis(400), 100, || {});
        assert_eq!(next, Next::Late);
        let took = started.elapsed();
        assert!(took < Duration::from_millis(900), "{took:?}");
        drop(reader);
        trickle.join().unwrap();
    }

    #[test]
    fn a_reply_nobody_reads_is_given_up_at_the_deadline() {
        let (_client, server) = UnixStream::pair().unwrap();
        let mut server = server;
        let big = "x".repeat(4 << 20);
        let started = Instant::now();
        let result = write_line_by(
            &mut server,
            &big,
            Instant::now() + Duration::from_millis(300),
        );
        assert_eq!(result.unwrap_err().kind(), ErrorKind::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
