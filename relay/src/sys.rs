//! The old paths of the three kernel calls `membership` still makes, re-exported from netio
//! (no code of its own). Goes away when the membership pool moves into netio.

pub use netio::sockopt::{force_buffers, set_int_option};
pub use netio::sysctl::read_u64 as read_sysctl;
