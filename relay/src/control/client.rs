//! The client side of the control socket: one connection, one request line and one reply line
//! at a time (`relay ctl`, tests, labctl).

use anyhow::Context;
use serde_json::Value;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Longest reply line read (a `list` of 100,000 rules is about 8 MB).
const MAX_REPLY: u64 = 64 << 20;

/// A connection to a relay's control socket.
pub struct Client {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects; every later read and write waits at most `timeout`.
    pub fn connect(path: &Path, timeout: Duration) -> anyhow::Result<Client> {
        let stream = UnixStream::connect(path).with_context(|| {
            format!(
                "connecting to the relay's control socket {} (is `relay run` running with this --control path?)",
                path.display()
            )
        })?;
        let timeout = timeout.max(Duration::from_millis(1));
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone().context("cloning the control socket")?),
            writer: stream,
        })
    }

    /// Sends one request and returns the relay's reply object. A relay that refuses the
    /// connection (limit reached) answers with an error line before closing: that line is
    /// returned even when sending the request failed.
    pub fn request(&mut self, request: &Value) -> anyhow::Result<Value> {
        let sent = writeln!(self.writer, "{request}");
        let mut line = String::new();
        let read = (&mut self.reader).take(MAX_REPLY).read_line(&mut line);
        match (sent, read) {
            (_, Ok(_)) if !line.is_empty() => {
                serde_json::from_str(&line).context("the relay's reply is not JSON")
            }
            (Err(e), _) => Err(e).context("sending the request"),
            (Ok(()), Err(e)) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err(e).context("no reply from the relay in time (see `relay ctl --timeout`)")
            }
            (Ok(()), Err(e)) => Err(e).context("reading the relay's reply"),
            (Ok(()), Ok(_)) => anyhow::bail!("the relay closed the connection without a reply"),
        }
    }
}

/// Sends one request to a relay over a new connection and returns its reply object.
pub fn request(path: &Path, request: &Value, timeout: Duration) -> anyhow::Result<Value> {
    Client::connect(path, timeout)?.request(request)
}
