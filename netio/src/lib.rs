//! netio: the wire formats and Linux kernel interfaces the relay and the load generator share.
//!
//! Modules, one job each:
//! - [`wire`]: zero-copy Ethernet / IPv4 / UDP views, the frame builder, the checksum
//! - [`packet_socket`]: AF_PACKET sockets: open, bind, PACKET_FANOUT, drops, qdisc bypass,
//!   ignore outgoing; the metadata of a received frame
//! - [`ring`]: TPACKET_V2 frame ring and TPACKET_V3 block ring, in one self-unmapping mapping
//! - [`recv_batch`]: batched receive (`recvmmsg`) that owns its buffers
//! - [`send_batch`]: batched send (`sendmmsg`) that owns its buffers
//! - `mmsghdr` (private): the empty message headers and iovecs both batches start from
//! - [`cmsg`]: aligned control buffers and the one control-message iterator (receive
//!   timestamp, IP_PKTINFO destination)
//! - [`sockaddr`]: `sockaddr_in` / `sockaddr_ll` builders
//! - [`sockopt`]: integer and `SOL_PACKET` socket options, forced socket buffers
//! - [`iface`]: interface lookup (index, MAC, MTU, first IPv4 address)
//! - [`clock`]: CLOCK_MONOTONIC / CLOCK_REALTIME in nanoseconds
//! - [`sysctl`]: reading one integer under /proc/sys
//! - [`limits`]: raising the open-file limit
//! - [`membership`]: IGMP joins on helper sockets (limits, strategies, the pool, its report)
//! - [`fs`]: atomic file replacement (unique temporary file + rename)
//! - [`sched`]: the calling thread's scheduling class (`sched_setscheduler`)
//! - [`bpf`]: the `bpf(2)` calls used here: hash map, classifier program, tcx link, test run
//! - [`input_drop`]: the tcx program that keeps a relay's input out of its host's IP stack
//!
//! `unsafe` is denied crate-wide and allowed only in the kernel-interface modules
//! (`packet_socket`, `ring`, `recv_batch`, `send_batch`, `mmsghdr`, `cmsg`, `sockopt`, `iface`,
//! `sched`, `bpf`);
//! every block carries a `// SAFETY:` comment and the types there own the memory the kernel is
//! given pointers to, so no public function's soundness depends on its caller (the workspace's
//! clippy lints enforce the comments and `# Safety` sections).

#![deny(unsafe_code)]

#[allow(unsafe_code)]
pub mod bpf;
pub mod clock;
#[allow(unsafe_code)]
pub mod cmsg;
pub mod fs;
#[allow(unsafe_code)]
pub mod iface;
pub mod input_drop;
pub mod limits;
pub mod membership;
#[allow(unsafe_code)]
mod mmsghdr;
#[allow(unsafe_code)]
pub mod packet_socket;
#[allow(unsafe_code)]
pub mod recv_batch;
#[allow(unsafe_code)]
pub mod ring;
#[allow(unsafe_code)]
pub mod sched;
#[allow(unsafe_code)]
pub mod send_batch;
pub mod sockaddr;
#[allow(unsafe_code)]
pub mod sockopt;
pub mod sysctl;
pub mod tc_fanout;
pub mod wire;
