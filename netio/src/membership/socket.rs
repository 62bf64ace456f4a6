//! What a pool needs from the kernel: helper sockets that join and leave, and a factory that
//! opens them. [`super::kernel`] implements both with real sockets; tests use a fake kernel.

use std::fmt;
use std::io;
use std::net::Ipv4Addr;

/// One membership: (interface, group, optional source).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MembershipKey {
    pub interface: String,
    pub group: Ipv4Addr,
    pub source: Option<Ipv4Addr>,
}

impl fmt::Display for MembershipKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.group)?;
        if let Some(source) = self.source {
            write!(f, "@{source}")?;
        }
        write!(f, " on {}", self.interface)
    }
}

/// Everything a socket needs to join or leave one membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JoinTarget {
    pub ifindex: u32,
    /// Interface address; required for source-specific joins.
    pub ifaddr: Option<Ipv4Addr>,
    pub group: Ipv4Addr,
    pub source: Option<Ipv4Addr>,
}

/// A helper socket that can hold memberships (closing it leaves them all).
pub trait JoinSocket {
    fn join(&mut self, target: &JoinTarget) -> io::Result<()>;
    fn leave(&mut self, target: &JoinTarget) -> io::Result<()>;
}

/// Opens helper sockets.
pub trait SocketFactory {
    type Socket: JoinSocket;
    fn open(&mut self, interface: &str) -> io::Result<Self::Socket>;
}
