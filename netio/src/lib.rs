//! netio: the wire formats and Linux kernel interfaces the relay and the load generator share.
//!
//! Modules, one job each:
//! - [`wire`]: zero-copy Ethernet / IPv4 / UDP views, the frame builder, the checksum
//! - [`membership`]: IGMP joins on helper sockets (limits, strategies, the pool, its report)
//!
//! `unsafe` is denied crate-wide and allowed only in the kernel-interface modules; every block
//! carries a `// SAFETY:` comment and every function whose soundness depends on its caller is an
//! `unsafe fn` with a `# Safety` section (the workspace's clippy lints enforce both).

#![deny(unsafe_code)]

pub mod membership;
pub mod wire;
