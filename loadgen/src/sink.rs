//! `loadgen sink`: joins the groups on helper sockets ([`netio::membership`], the pool strategy
//! with the relay's capacity rule), receives on one
//! socket per port bound to INADDR_ANY (IP_PKTINFO gives the destination group), batches with
//! `recvmmsg` (netio's `RecvBatch`), and accounts every datagram ([`crate::accounting`]).
//!
//! The joins are deliberately not on the receiving sockets: a long membership list on the
//! receiving socket is walked for every packet. A socket bound to INADDR_ANY:port still receives
//! every group joined on the host (IP_MULTICAST_ALL defaults to 1).

use crate::accounting::Accounting;
use crate::cli::{SinkConfig, UsageError};
use crate::progress::Progress;
use crate::summary::{JoinError, SINK_SCHEMA, SinkSummary};
use crate::wire::Header;
use anyhow::{Context, Result};
use netio::iface::InterfaceError;
use netio::membership::{GroupJoins, KernelSockets, Limits, Memberships, Strategy};
use netio::recv_batch::{RecvBatch, RecvMetadata};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Protocol, Socket, Type};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};

/// Datagrams per recvmmsg call.
const BATCH: usize = 64;
/// Receive buffer per datagram: the largest payload (8972) fits.
const DATAGRAM_BUF: usize = 9216;
/// Asked socket receive buffer.
const RCVBUF_BYTES: usize = 8 << 20;
/// A change of the wall clock's offset to CLOCK_MONOTONIC beyond this during a run (the clock
/// was stepped) voids the interface latency, which converts kernel timestamps by that offset.
const CLOCK_STEP_NS: u64 = 1_000_000;
/// Poll timeout: how quickly --duration, --idle and signals are noticed.
const POLL_MS: u16 = 50;

/// A receiving socket with the port it is bound to.
struct Receiver {
    socket: Socket,
    port: u16,
}

fn open_receiver(port: u16, device: Option<&str>) -> Result<Receiver> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))
        .context("cannot open a UDP receive socket")?;
    socket
        .set_reuse_address(true)
        .context("cannot set SO_REUSEADDR")?;
    socket
        .set_nonblocking(true)
        .context("cannot make the receive socket non-blocking")?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Ipv4PacketInfo, &true)
        .context("cannot enable IP_PKTINFO")?;
    nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::ReceiveTimestampns,
        &true,
    )
    .context("cannot enable SO_TIMESTAMPNS")?;
    if nix::sys::socket::setsockopt(
        &socket,
        nix::sys::socket::sockopt::RcvBufForce,
        &RCVBUF_BYTES,
    )
    .is_err()
    {
        // Not root: the normal option, capped by net.core.rmem_max.
        socket
            .set_recv_buffer_size(RCVBUF_BYTES)
            .context("cannot set SO_RCVBUF")?;
    }
    if let Some(device) = device {
        socket
            .bind_device(Some(device.as_bytes()))
            .with_context(|| {
                format!(
                    "cannot bind the receive socket to {device} (SO_BINDTODEVICE needs CAP_NET_RAW)"
                )
            })?;
    }
    socket
        .bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())
        .with_context(|| format!("cannot bind a receive socket to 0.0.0.0:{port}"))?;
    Ok(Receiver { socket, port })
}

/// Looks the interface up (an unknown one is a usage error) and returns its index.
fn interface_index(name: &str) -> Result<u32> {
    match netio::iface::lookup(name) {
        Ok(interface) => Ok(interface.index),
        Err(e @ InterfaceError::Unknown { .. }) => Err(UsageError(e.to_string()).into()),
        Err(e) => Err(e.into()),
    }
}

/// Joins the groups on helper sockets: the pool strategy with the relay's capacity rule
/// (`min(igmp_max_memberships, optmem_max / 48)` per socket, spilling on ENOBUFS). Refused
/// joins are returned, not fatal; the memberships last until the pool is dropped.
fn join_groups(cfg: &SinkConfig, ifindex: u32) -> Result<(Memberships<KernelSockets>, GroupJoins)> {
    let limits = Limits::from_proc()
        .context("reading net.ipv4.igmp_max_memberships / net.core.optmem_max")?;
    let mut pool = Memberships::new(Strategy::Pool, limits, KernelSockets::default());
    let joins = pool.join_groups(&cfg.interface, ifindex, &cfg.groups);
    Ok((pool, joins))
}

/// What [`set_up`] prepared; `_pool` holds the memberships until the sink is done.
struct SetUp {
    _pool: Memberships<KernelSockets>,
    joins: GroupJoins,
    join_errors: Vec<JoinError>,
    receivers: Vec<Receiver>,
}

/// Joins the groups, opens the receivers and, if every join worked, writes the ready file.
fn set_up(cfg: &SinkConfig) -> Result<SetUp> {
    let ifindex = interface_index(&cfg.interface)?;
    // One helper socket per few dozen groups: thousands of groups need more than 1024 fds.
    if let Err(e) = netio::limits::raise_open_file_limit() {
        eprintln!("loadgen sink: could not raise the open-file limit: {e}");
    }
    let (pool, joins) = join_groups(cfg, ifindex)?;
    let join_errors: Vec<JoinError> = joins.refused.iter().map(JoinError::from).collect();
    let receivers = cfg
        .ports
        .iter()
        .map(|&p| open_receiver(p, cfg.bind_device.then_some(cfg.interface.as_str())))
        .collect::<Result<Vec<_>>>()?;
    if join_errors.is_empty() {
        if let Some(path) = &cfg.ready_file {
            netio::fs::write_atomically(path, b"ready\n").context("cannot write the ready file")?;
        }
    } else {
        let first = &join_errors[0];
        eprintln!(
            "loadgen sink: {} of {} joins failed (first: {}: {}); not writing the ready file",
            join_errors.len(),
            cfg.groups.len(),
            first.group,
            first.message
        );
    }
    Ok(SetUp {
        _pool: pool,
        joins,
        join_errors,
        receivers,
    })
}

/// What the receive loop accumulates.
struct Reception {
    accounting: Accounting,
    batch: RecvBatch,
    progress: Progress,
    /// Arrival time of the last datagram (CLOCK_MONOTONIC ns).
    last_packet: Option<u64>,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC when reception started: converts the kernel's receive
    /// timestamps to the send time's clock.
    clock_offset_ns: i64,
}

impl Reception {
    fn new(quiet: bool) -> Reception {
        let metadata = RecvMetadata {
            link_addresses: false,
            control: true,
        };
        Reception {
            accounting: Accounting::new(),
            batch: RecvBatch::new(BATCH, DATAGRAM_BUF, metadata),
            progress: Progress::new(quiet, "received"),
            last_packet: None,
            clock_offset_ns: netio::clock::realtime_offset_ns(),
        }
    }

    /// Takes everything queued on `receiver`, one batch at a time, and accounts for it.
    fn drain(&mut self, receiver: &Receiver) -> Result<()> {
        loop {
            let n = match self.batch.recv(&receiver.socket) {
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(e).context("recvmmsg failed"),
            };
            let arrival = netio::clock::monotonic_ns();
            for i in 0..n {
                let payload = self.batch.frame(i);
                let Ok(header) = Header::decode(payload) else {
                    self.accounting.record_foreign();
                    continue;
                };
                self.accounting.record(
                    self.batch.destination(i).unwrap_or(Ipv4Addr::UNSPECIFIED),
                    receiver.port,
                    &header,
                    payload.len(),
                    arrival,
                );
                if let Some(kernel) = self.batch.timestamp_ns(i) {
                    let interface = (kernel as i64).saturating_sub(self.clock_offset_ns);
                    self.accounting
                        .record_interface_arrival(header.send_ns, interface.max(0) as u64);
                }
            }
            if n > 0 {
                self.last_packet = Some(arrival);
            }
            self.progress.update(self.accounting.received());
            if n < BATCH {
                return Ok(());
            }
        }
    }
}

/// Polls the receivers and drains the readable ones until `deadline`, `idle_ns` without a
/// datagram, or `stop`.
fn receive(
    receivers: &[Receiver],
    reception: &mut Reception,
    deadline: Option<u64>,
    idle_ns: Option<u64>,
    stop: &AtomicBool,
) -> Result<()> {
    let mut fds: Vec<PollFd> = receivers
        .iter()
        .map(|r| PollFd::new(r.socket.as_fd(), PollFlags::POLLIN))
        .collect();
    let mut ready = vec![false; receivers.len()];
    while !stop.load(Ordering::Relaxed) {
        let now = netio::clock::monotonic_ns();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        if let (Some(idle), Some(last)) = (idle_ns, reception.last_packet)
            && now.saturating_sub(last) >= idle
        {
            break;
        }
        match poll(&mut fds, PollTimeout::from(POLL_MS)) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("poll on the receive sockets failed"),
        }
        for (flag, fd) in ready.iter_mut().zip(&fds) {
            *flag = fd.revents().is_some_and(|r| r.contains(PollFlags::POLLIN));
        }
        for (receiver, _) in receivers.iter().zip(&ready).filter(|(_, ready)| **ready) {
            reception.drain(receiver)?;
        }
    }
    Ok(())
}

/// Runs the sink until --duration, --idle or `stop`, and summarises what arrived.
pub fn run(cfg: &SinkConfig, stop: &AtomicBool) -> Result<SinkSummary> {
    let SetUp {
        _pool,
        joins,
        join_errors,
        receivers,
    } = set_up(cfg)?;
    let mut reception = Reception::new(cfg.quiet);
    let start = netio::clock::monotonic_ns();
    let deadline = cfg
        .duration
        .map(|d| start.saturating_add(d.as_nanos() as u64));
    let idle_ns = cfg.idle.map(|d| d.as_nanos() as u64);
    receive(&receivers, &mut reception, deadline, idle_ns, stop)?;
    let end = netio::clock::monotonic_ns();
    reception.progress.finish();

    let clock_stepped =
        netio::clock::realtime_offset_ns().abs_diff(reception.clock_offset_ns) > CLOCK_STEP_NS;
    let accounting = reception.accounting;
    let (streams, totals, latency_ns) = accounting.finish();
    let seen: HashSet<Ipv4Addr> = accounting.groups_seen();
    let silent_groups = joins
        .joined
        .iter()
        .copied()
        .filter(|g| !seen.contains(g))
        .collect();
    Ok(SinkSummary {
        schema: SINK_SCHEMA.to_string(),
        joined_groups: joins.joined.len() as u32,
        join_errors,
        duration_s: end.saturating_sub(start) as f64 / 1e9,
        received: accounting.received(),
        foreign: accounting.foreign(),
        bytes: accounting.bytes(),
        totals,
        latency_ns,
        interface_latency_ns: accounting.interface_latency().filter(|_| !clock_stepped),
        streams,
        silent_groups,
        gap_timeline: accounting.gap_timeline(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sink_joins_past_the_per_socket_limit_in_fresh_netns() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): sink_joins_past_the_per_socket_limit_in_fresh_netns");
            return;
        }
        // A fresh namespace per test thread: joins on its loopback, never the root namespace.
        let handle = std::thread::spawn(|| -> Result<SinkSummary> {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            // Stop at once: the run must still join, bind and summarise.
            let cfg = SinkConfig {
                interface: "lo".into(),
                groups: (0..50u32)
                    .map(|i| Ipv4Addr::from(0xEF02_0001 + i))
                    .collect(),
                ports: vec![5000],
                duration: Some(std::time::Duration::from_millis(100)),
                idle: None,
                ready_file: None,
                bind_device: false,
                json: None,
                quiet: true,
            };
            run(&cfg, &AtomicBool::new(false))
        });
        let summary = handle.join().unwrap().unwrap();
        assert_eq!(summary.joined_groups, 50, "{:?}", summary.join_errors);
        assert!(summary.join_errors.is_empty());
        assert_eq!(summary.silent_groups.len(), 50);
        assert_eq!(summary.received, 0);
        assert!(summary.duration_s >= 0.1);
    }

    /// Sink and sender in one fresh namespace over its loopback: every packet must arrive.
    fn loopback_round_trip(mode: crate::cli::Mode) -> (crate::summary::SendSummary, SinkSummary) {
        use crate::cli::{SendConfig, stream_targets};
        let handle = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            netio::iface::set_up("lo").unwrap();
            let dir =
                std::env::temp_dir().join(format!("loadgen-rt-{}-{mode:?}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            let ready = dir.join("ready");
            let base = Ipv4Addr::new(239, 1, 0, 1);
            let sink_cfg = SinkConfig {
                interface: "lo".into(),
                groups: (0..30u32)
                    .map(|i| Ipv4Addr::from(u32::from(base) + i))
                    .collect(),
                ports: vec![5000],
                duration: Some(std::time::Duration::from_secs(10)),
                idle: Some(std::time::Duration::from_millis(500)),
                ready_file: Some(ready.clone()),
                bind_device: true,
                json: None,
                quiet: true,
            };
            // Threads spawned here inherit this thread's (new) network namespace.
            let sink = std::thread::spawn(move || run(&sink_cfg, &AtomicBool::new(false)));
            for _ in 0..200 {
                if ready.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            assert!(ready.exists(), "sink never became ready");
            let send_cfg = SendConfig {
                interface: "lo".into(),
                // The kernel drops received frames from 127/8 or a local address as martians;
                // packet mode sends from an address nobody in this namespace owns.
                source: Some(match mode {
                    crate::cli::Mode::Packet => Ipv4Addr::new(198, 18, 0, 1),
                    crate::cli::Mode::Udp => Ipv4Addr::LOCALHOST,
                }),
                targets: stream_targets(30, base, 5000, false).unwrap(),
                total_pps: Some(3000.0),
                size: 200,
                count: Some(20),
                duration: Some(std::time::Duration::from_secs(10)),
                ttl: 1,
                mode,
                batch: 16,
                burst: 1,
                json: None,
                quiet: true,
            };
            let sent = crate::send::run(&send_cfg, &AtomicBool::new(false)).unwrap();
            let received = sink.join().unwrap().unwrap();
            std::fs::remove_dir_all(&dir).unwrap();
            (sent, received)
        });
        handle.join().unwrap()
    }

    fn check_round_trip(mode: crate::cli::Mode) {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): loopback round trip {mode:?}");
            return;
        }
        let (sent, sink) = loopback_round_trip(mode);
        assert_eq!(sent.sent_packets, 600);
        assert_eq!(sent.send_errors, 0);
        assert_eq!(sink.joined_groups, 30);
        assert_eq!(sink.received, 600);
        assert_eq!(sink.foreign, 0);
        assert_eq!(sink.bytes, 600 * 200);
        assert_eq!(sink.totals.lost, 0);
        assert_eq!(sink.totals.duplicates, 0);
        assert!(sink.silent_groups.is_empty());
        assert_eq!(sink.streams.len(), 30);
        for (k, s) in sink.streams.iter().enumerate() {
            assert_eq!(s.stream, k as u32);
            assert_eq!(s.group, Ipv4Addr::from(0xEF01_0001 + k as u32));
            assert_eq!((s.received, s.first_seq, s.last_seq), (20, 0, 19));
        }
        assert!(sink.latency_ns.max > 0);
    }

    #[test]
    fn loopback_round_trip_packet_mode() {
        check_round_trip(crate::cli::Mode::Packet);
    }

    #[test]
    fn loopback_round_trip_udp_mode() {
        check_round_trip(crate::cli::Mode::Udp);
    }
}
