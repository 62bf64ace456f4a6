//! Why a membership could not be made or removed, and the refusals a pool remembers.

use super::limits::{Limits, OPTMEM_BYTES_PER_MEMBERSHIP};
use super::socket::MembershipKey;
use super::strategy::Strategy;
use serde::Serialize;
use std::io;
use std::net::Ipv4Addr;

/// Why a membership could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error(
        "joining {key} failed: {}: the {strategy} helper socket #{socket} already holds {groups_on_socket} groups; net.ipv4.igmp_max_memberships = {}, net.core.optmem_max = {} (~{OPTMEM_BYTES_PER_MEMBERSHIP} bytes per membership){}",
        describe_errno(*errno),
        limits.igmp_max_memberships,
        limits.optmem_max,
        advice(*strategy, *errno)
    )]
    JoinRefused {
        key: MembershipKey,
        errno: i32,
        strategy: Strategy,
        socket: u64,
        groups_on_socket: usize,
        limits: Limits,
    },
    /// An any-source and a source-specific join of one group would share the only helper
    /// socket of an interface (`single`). The kernel cannot hold both on one socket: it refuses
    /// the any-source join (EADDRINUSE) or silently turns the any-source membership into a
    /// source-specific one, so this is refused before the kernel is asked.
    #[error(
        "group {} on {} is already joined {} on this interface's only helper socket (#{socket}); the `{strategy}` strategy cannot also join it {}: use `pool` (--membership pool), which puts them on separate helper sockets",
        key.group,
        key.interface,
        join_kind(*existing_source),
        join_kind(key.source)
    )]
    MixedJoin {
        key: MembershipKey,
        /// The source of the membership already on the socket (`None`: any-source).
        existing_source: Option<Ipv4Addr>,
        strategy: Strategy,
        socket: u64,
    },
    #[error("opening a helper socket for {interface} failed: {source}")]
    Open {
        interface: String,
        #[source]
        source: io::Error,
    },
    #[error("{0} is not joined")]
    NotJoined(MembershipKey),
}

impl MembershipError {
    /// The OS error number behind this error, if there is one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            MembershipError::JoinRefused { errno, .. } => Some(*errno),
            MembershipError::Open { source, .. } => source.raw_os_error(),
            MembershipError::MixedJoin { .. } | MembershipError::NotJoined(_) => None,
        }
    }
}

/// `any-source` or `source-specific (source S)`.
fn join_kind(source: Option<Ipv4Addr>) -> String {
    match source {
        None => "any-source".to_string(),
        Some(source) => format!("source-specific (source {source})"),
    }
}

/// `ENOBUFS (errno 105, No buffer space available)`.
fn describe_errno(errno: i32) -> String {
    let name = match errno {
        libc::ENOBUFS => "ENOBUFS",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EINVAL => "EINVAL",
        libc::ENODEV => "ENODEV",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        _ => "error",
    };
    let text = io::Error::from_raw_os_error(errno).to_string();
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string();
    format!("{name} (errno {errno}, {text})")
}

/// What to do about a refusal: only a strategy that does not spread joins can be helped.
fn advice(strategy: Strategy, errno: i32) -> &'static str {
    match (strategy, errno) {
        (Strategy::Pool, _) | (_, libc::EADDRINUSE) => "",
        (_, libc::ENOBUFS) => {
            "; the kernel limits memberships per socket: use --membership pool (spreads joins over several sockets) or raise these sysctls in the relay's namespace"
        }
        _ => "",
    }
}

/// One join the kernel refused, kept for `relay ctl memberships`.
#[derive(Debug, Clone, Serialize)]
pub struct JoinFailure {
    pub group: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Ipv4Addr>,
    pub errno: i32,
    pub groups_on_socket: usize,
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_names_and_texts() {
        let text = describe_errno(libc::ENOBUFS);
        assert!(text.starts_with("ENOBUFS (errno 105, "), "{text}");
        assert!(!text.contains("os error"), "{text}");
        assert!(describe_errno(libc::EPERM).starts_with("error (errno 1, "));
    }

    #[test]
    fn only_strategies_that_do_not_spread_get_advice() {
        assert!(advice(Strategy::Pool, libc::ENOBUFS).is_empty());
        assert!(advice(Strategy::Single, libc::EADDRINUSE).is_empty());
        assert!(advice(Strategy::Single, libc::ENOBUFS).contains("--membership pool"));
        assert!(advice(Strategy::PerGroup, libc::ENOBUFS).contains("--membership pool"));
    }
}
