//! `loadgen send`: N paced streams, interleaved round-robin, batched with `sendmmsg`.
//!
//! Packet mode pre-builds one frame per stream (random payload) and per packet patches only the
//! header fields and checksums into a per-slot batch buffer (copied from the template only when
//! the slot changes stream). UDP mode sends payloads through one UDP socket with per-message
//! destinations. Neither allocates on the send path.

use crate::cli::{Mode, SendConfig, StreamTarget, UsageError};
use crate::frame::{FrameSpec, FrameTemplate};
use crate::pacer::Pacer;
use crate::progress::Progress;
use crate::summary::{SEND_SCHEMA, SendSummary, SentStream};
use crate::wire::{HEADER_LEN, Header};
use anyhow::{Context, Result};
use netio::clock::monotonic_ns;
use netio::iface::{self, InterfaceError};
use netio::send_batch::SendBatch;
use netio::sockaddr::sockaddr_in;
use netio::wire::PAYLOAD_OFFSET;
use rand::Rng;
use socket2::{Domain, Protocol, Socket, Type};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// IPv4 + UDP header bytes: the payload may be at most MTU minus this.
const IP_UDP_OVERHEAD: u32 = 28;
/// How long a full transmit queue (ENOBUFS/EAGAIN) is waited out before packets count as errors.
const BLOCKED_GIVE_UP_NS: u64 = 1_000_000_000;
/// Longest single sleep while pacing, so stop requests are noticed quickly.
const MAX_SLEEP_NS: u64 = 50_000_000;
/// Source UDP port of packet-mode frames.
const SOURCE_PORT: u16 = 40000;

/// Where the batch goes: an AF_PACKET socket with frames, or a UDP socket with payloads.
enum Transport {
    Packet {
        fd: OwnedFd,
        templates: Vec<FrameTemplate>,
    },
    Udp {
        socket: Socket,
        dests: Vec<libc::sockaddr_in>,
    },
}

/// One `sendmmsg` batch (netio's [`SendBatch`] owns the messages) and the stream whose
/// template bytes each slot holds.
struct Batch {
    messages: SendBatch,
    slot_stream: Vec<Option<usize>>,
}

impl Batch {
    fn new(slots: usize, buf_len: usize, with_destinations: bool) -> Batch {
        Batch {
            messages: SendBatch::new(slots, buf_len, with_destinations),
            slot_stream: vec![None; slots],
        }
    }
}

/// Counters of a run.
struct Counters {
    per_stream: Vec<u64>,
    sent: u64,
    errors: u64,
}

fn random_payload(size: usize) -> Vec<u8> {
    let mut payload = vec![0u8; size];
    rand::rng().fill(&mut payload[..]);
    payload
}

fn resolve_source(cfg: &SendConfig, iface: &iface::Interface) -> Result<Ipv4Addr> {
    match cfg.source.or(iface.ipv4) {
        Some(ip) => Ok(ip),
        None => Err(UsageError(format!(
            "interface {} has no IPv4 address; add one or give --source ADDR",
            cfg.interface
        ))
        .into()),
    }
}

fn open_transport(cfg: &SendConfig) -> Result<Transport> {
    let iface = iface::lookup(&cfg.interface).map_err(|e| match e {
        InterfaceError::Unknown { .. } => anyhow::Error::new(UsageError(e.to_string())),
        other => anyhow::Error::new(other),
    })?;
    let source = resolve_source(cfg, &iface)?;
    match cfg.mode {
        Mode::Packet => {
            let max = iface.mtu.saturating_sub(IP_UDP_OVERHEAD) as usize;
            if cfg.size > max {
                return Err(UsageError(format!(
                    "--size {} does not fit the MTU {} of {}; use at most {max} in packet mode",
                    cfg.size, iface.mtu, cfg.interface
                ))
                .into());
            }
            let fd = netio::packet_socket::open_sender(iface.index)
                .with_context(|| format!("cannot open an AF_PACKET socket on {}", cfg.interface))?;
            let templates = cfg
                .targets
                .iter()
                .map(|t| {
                    let spec = FrameSpec {
                        src_mac: iface.mac,
                        src_ip: source,
                        group: t.group,
                        src_port: SOURCE_PORT,
                        dst_port: t.port,
                        ttl: cfg.ttl,
                    };
                    FrameTemplate::new(&spec, &random_payload(cfg.size))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Transport::Packet { fd, templates })
        }
        Mode::Udp => {
            let socket = Socket::new(Domain::IPV4, Type::DGRAM.cloexec(), Some(Protocol::UDP))
                .context("cannot open a UDP socket")?;
            socket.set_multicast_if_v4(&source).with_context(|| {
                format!("cannot send multicast from {source} (IP_MULTICAST_IF)")
            })?;
            socket
                .set_multicast_ttl_v4(u32::from(cfg.ttl))
                .context("cannot set IP_MULTICAST_TTL")?;
            socket
                .set_multicast_loop_v4(false)
                .context("cannot clear IP_MULTICAST_LOOP")?;
            // Pin the egress interface too; without CAP_NET_RAW IP_MULTICAST_IF alone decides.
            if let Err(e) = socket.bind_device(Some(cfg.interface.as_bytes()))
                && e.raw_os_error() != Some(libc::EPERM)
            {
                return Err(e)
                    .with_context(|| format!("cannot bind the UDP socket to {}", cfg.interface));
            }
            socket
                .bind(&SocketAddrV4::new(source, 0).into())
                .with_context(|| format!("cannot bind the UDP socket to {source}"))?;
            let dests = cfg
                .targets
                .iter()
                .map(|t| sockaddr_in(t.group, t.port))
                .collect();
            Ok(Transport::Udp { socket, dests })
        }
    }
}

impl Transport {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Transport::Packet { fd, .. } => fd.as_fd(),
            Transport::Udp { socket, .. } => socket.as_fd(),
        }
    }

    fn buf_len(&self, size: usize) -> usize {
        match self {
            Transport::Packet { .. } => PAYLOAD_OFFSET + size,
            Transport::Udp { .. } => size,
        }
    }

    /// Puts packet `header` of `stream` into batch slot `slot`.
    fn fill(&self, batch: &mut Batch, slot: usize, stream: usize, header: &Header) -> Result<()> {
        match self {
            Transport::Packet { templates, .. } => {
                let template = &templates[stream];
                let buf = batch.messages.buffer_mut(slot);
                if batch.slot_stream[slot] != Some(stream) {
                    buf.copy_from_slice(template.bytes());
                    batch.slot_stream[slot] = Some(stream);
                }
                template.patch_into(buf, header, header.seq as u16)?;
            }
            Transport::Udp { dests, .. } => {
                let buf = batch.messages.buffer_mut(slot);
                if batch.slot_stream[slot].is_none() {
                    rand::rng().fill(&mut buf[HEADER_LEN..]);
                    batch.slot_stream[slot] = Some(stream);
                }
                header.encode(buf)?;
                batch.messages.set_destination(slot, dests[stream]);
            }
        }
        Ok(())
    }
}

/// Sends slots `..n` of `batch`; returns per-slot success through `on_sent(slot)`, counts
/// errors.
fn send_batch(
    fd: BorrowedFd<'_>,
    batch: &mut Batch,
    n: usize,
    stop: &AtomicBool,
    mut on_sent: impl FnMut(usize),
) -> u64 {
    let mut errors = 0;
    let mut off = 0;
    let mut blocked_since: Option<u64> = None;
    while off < n {
        match batch.messages.send(fd, off..n) {
            Ok(k) => {
                for slot in off..off + k {
                    on_sent(slot);
                }
                off += k;
                blocked_since = None;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOBUFS) | Some(libc::EAGAIN)) => {
                let now = monotonic_ns();
                let since = *blocked_since.get_or_insert(now);
                if now - since > BLOCKED_GIVE_UP_NS || stop.load(Ordering::Relaxed) {
                    errors += (n - off) as u64;
                    break;
                }
                std::thread::sleep(Duration::from_micros(50));
            }
            Err(_) => {
                // This message cannot be sent (e.g. EMSGSIZE); count it and go on.
                errors += 1;
                off += 1;
            }
        }
    }
    errors
}

/// The streams' state while sending: what goes into the next batch and what was sent.
struct Streams<'a> {
    cfg: &'a SendConfig,
    counters: Counters,
    seqs: Vec<u64>,
    next_stream: usize,
    /// Stream of each slot of the batch being sent.
    slot_streams: Vec<usize>,
    first_send_ns: Option<u64>,
    last_send_ns: u64,
}

impl<'a> Streams<'a> {
    fn new(cfg: &'a SendConfig) -> Streams<'a> {
        let streams = cfg.targets.len();
        Streams {
            cfg,
            counters: Counters {
                per_stream: vec![0; streams],
                sent: 0,
                errors: 0,
            },
            seqs: vec![0; streams],
            next_stream: 0,
            slot_streams: vec![0; cfg.batch],
            first_send_ns: None,
            last_send_ns: 0,
        }
    }

    /// Fills the first `due` slots of `batch` with the next packet of each stream in turn.
    fn fill(&mut self, transport: &Transport, batch: &mut Batch, due: usize) -> Result<()> {
        let streams = self.cfg.targets.len();
        for (slot, slot_stream) in self.slot_streams.iter_mut().enumerate().take(due) {
            let stream = self.next_stream;
            self.next_stream = (self.next_stream + 1) % streams;
            let header = Header {
                stream: self.cfg.targets[stream].stream,
                seq: self.seqs[stream],
                send_ns: monotonic_ns(),
            };
            self.seqs[stream] += 1;
            self.first_send_ns.get_or_insert(header.send_ns);
            self.last_send_ns = header.send_ns;
            *slot_stream = stream;
            transport.fill(batch, slot, stream, &header)?;
        }
        Ok(())
    }

    /// Sends the first `due` slots of `batch` and counts what was sent and what failed.
    fn send(&mut self, fd: BorrowedFd<'_>, batch: &mut Batch, due: usize, stop: &AtomicBool) {
        let per_stream = &mut self.counters.per_stream;
        let slot_streams = &self.slot_streams;
        let mut sent_now = 0u64;
        self.counters.errors += send_batch(fd, batch, due, stop, |slot| {
            per_stream[slot_streams[slot]] += 1;
            sent_now += 1;
        });
        self.counters.sent += sent_now;
    }

    /// The summary of a run that lasted from `start` to `end` (CLOCK_MONOTONIC ns).
    fn summary(&self, start: u64, end: u64) -> SendSummary {
        let cfg = self.cfg;
        SendSummary {
            schema: SEND_SCHEMA.to_string(),
            streams: cfg.targets.len() as u32,
            size: cfg.size,
            mode: cfg.mode.name(),
            duration_s: end.saturating_sub(start) as f64 / 1e9,
            requested_pps: cfg.total_pps,
            achieved_pps: self.first_send_ns.map_or(0.0, |first| {
                crate::pacer::rate_between(self.counters.sent, first, self.last_send_ns)
            }),
            sent_packets: self.counters.sent,
            send_errors: self.counters.errors,
            per_stream: cfg
                .targets
                .iter()
                .zip(&self.counters.per_stream)
                .map(|(t, &sent): (&StreamTarget, &u64)| SentStream {
                    stream: t.stream,
                    group: t.group,
                    port: t.port,
                    sent,
                })
                .collect(),
        }
    }
}

/// Runs the sender until the count or duration is reached or `stop` is set.
pub fn run(cfg: &SendConfig, stop: &AtomicBool) -> Result<SendSummary> {
    precise_sleeps();
    let transport = open_transport(cfg)?;
    let mut batch = Batch::new(
        cfg.batch,
        transport.buf_len(cfg.size),
        matches!(transport, Transport::Udp { .. }),
    );
    let total_limit = cfg
        .count
        .map(|c| c.saturating_mul(cfg.targets.len() as u64));
    let mut streams = Streams::new(cfg);
    let mut progress = Progress::new(cfg.quiet, "sent");
    let fd = transport.fd();

    let start = monotonic_ns();
    let deadline = cfg
        .duration
        .map(|d| start.saturating_add(d.as_nanos() as u64));
    let mut pacer = Pacer::new(cfg.total_pps, start, cfg.batch).with_burst(cfg.burst);
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = monotonic_ns();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let remaining = total_limit.map_or(u64::MAX, |t| t - pacer.sent());
        if remaining == 0 {
            break;
        }
        let due = (pacer.due(now) as u64).min(remaining) as usize;
        if due == 0 {
            let mut wait = pacer.wait_ns(now).min(MAX_SLEEP_NS);
            if let Some(d) = deadline {
                wait = wait.min(d.saturating_sub(now));
            }
            std::thread::sleep(Duration::from_nanos(wait.max(1)));
            continue;
        }
        streams.fill(&transport, &mut batch, due)?;
        streams.send(fd, &mut batch, due, stop);
        pacer.record(due as u64);
        progress.update(streams.counters.sent);
    }
    let end = monotonic_ns();
    progress.finish();
    Ok(streams.summary(start, end))
}

/// Asks for the sleeps between batches to end on time: a thread in the normal class gets 50 us
/// of timer slack by default, which would release the pacing's batches up to 50 us late and
/// bunch them together (a real-time thread gets none, but the lab keeps the sender out of the
/// real-time class, see labctl's placement). Without it the rate holds and only the spacing
/// is coarser, so a refusal is reported and the run goes on.
fn precise_sleeps() {
    if let Err(e) = nix::sys::prctl::set_timerslack(1) {
        eprintln!("loadgen send: timer slack stays at the default ({e}): pacing within 50 us");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Mode;

    #[test]
    fn the_sending_thread_sleeps_with_no_timer_slack() {
        let slack = std::thread::spawn(|| {
            precise_sleeps();
            nix::sys::prctl::get_timerslack().expect("PR_GET_TIMERSLACK")
        })
        .join()
        .unwrap();
        assert_eq!(slack, 1);
    }

    fn config(mode: Mode, count: u64, total_pps: Option<f64>) -> SendConfig {
        SendConfig {
            interface: "lo".into(),
            source: Some(Ipv4Addr::LOCALHOST),
            targets: crate::cli::stream_targets(3, Ipv4Addr::new(239, 1, 0, 1), 5000, false)
                .unwrap(),
            total_pps,
            size: 64,
            count: Some(count),
            duration: Some(Duration::from_secs(5)),
            ttl: 1,
            mode,
            batch: 4,
            burst: 1,
            json: None,
            quiet: true,
        }
    }

    /// Runs `f` in a fresh network namespace on its own thread (never sends in the root one).
    fn in_fresh_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("SKIPPED (needs root): send test in a fresh network namespace");
            return None;
        }
        let handle = std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
            f()
        });
        Some(handle.join().unwrap())
    }

    #[test]
    fn attempts_are_bounded_by_count_when_the_link_is_down() {
        // Loopback of a fresh namespace is down: AF_PACKET sends fail with ENETDOWN and count
        // as errors, which still exercises the bounded loop and the accounting of attempts.
        let Some(result) = in_fresh_netns(|| {
            run(
                &config(Mode::Packet, 10, Some(10_000.0)),
                &AtomicBool::new(false),
            )
        }) else {
            return;
        };
        let summary = result.unwrap();
        assert_eq!(summary.sent_packets + summary.send_errors, 30);
        assert_eq!(summary.per_stream.len(), 3);
        assert_eq!(
            summary.per_stream.iter().map(|s| s.sent).sum::<u64>(),
            summary.sent_packets
        );
        assert_eq!(summary.mode, "packet");
    }

    #[test]
    fn stop_flag_ends_an_unbounded_rate_run() {
        let Some(result) = in_fresh_netns(|| {
            run(
                &config(Mode::Packet, u64::MAX / 8, None),
                &AtomicBool::new(true),
            )
        }) else {
            return;
        };
        let summary = result.unwrap();
        assert_eq!(summary.sent_packets + summary.send_errors, 0);
        assert_eq!(summary.requested_pps, None);
    }
}
