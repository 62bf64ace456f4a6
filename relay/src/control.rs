//! The control socket: JSON lines over a UNIX stream socket (mode 0600).
//!
//! One request object per line, one reply line per request (protocol in docs/interfaces.md):
//! `{"cmd":"add","rule":"RULE"}`, `{"cmd":"remove","id":3}` / `{"cmd":"remove","rule":"RULE"}`,
//! `{"cmd":"list"}`, `{"cmd":"stats"}`, `{"cmd":"memberships"}`. Replies are
//! `{"ok":true,...}` or `{"ok":false,"error":"...","errno":105}`.
//!
//! Submodules, one job each: [`server`] (accept loop, connection threads, [`ServerLimits`]),
//! `connections` (the open connections and who makes room at the limit), `line` (reading a
//! request and writing a reply against deadlines) and [`client`].
//!
//! Robustness: each connection has its own thread; a request must be complete and answered
//! within its deadline counted from its first byte (not per read), a connection idle longer
//! than the idle timeout is closed, and at the connection limit the longest-idle connection is
//! closed to make room (a client finding every connection busy gets a one-line error). A line
//! longer than the cap gets an error and the connection is dropped; bad JSON, invalid UTF-8,
//! unknown commands and invalid rules get an error reply and change nothing. The socket file
//! is removed when the server shuts down (if it is still the one the server created).

use crate::rule::Rule;
use crate::service::{Relay, RequestError};
use netio::membership::SocketFactory;
use serde_json::{Map, Value, json};

pub mod client;
mod connections;
mod line;
pub mod server;

pub use client::{Client, request};
pub use connections::Slot;
pub use server::{ControlServer, ServerLimits, serve_connection};

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

/// The reply line for one raw request line (any bytes: invalid UTF-8 is refused); `None` for a blank line, which gets no reply.
pub fn respond_line(handler: &dyn Handler, line: &[u8]) -> Option<String> {
    let text = match std::str::from_utf8(line) {
        Ok(text) => text.trim(),
        Err(e) => {
            let e = RequestError::new(format!(
                "request is not UTF-8 text (bad byte at offset {}): send JSON, for example {{\"cmd\":\"list\"}}",
                e.valid_up_to()
            ));
            return Some(error_reply(&e).to_string());
        }
    };
    (!text.is_empty()).then(|| respond(handler, text))
}

fn error_reply(e: &RequestError) -> Value {
    let mut reply = json!({ "ok": false, "error": e.message });
    if let Some(errno) = e.errno {
        reply["errno"] = json!(errno);
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
}
