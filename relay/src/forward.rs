//! Per-packet work of a worker: parse, look up, and fan out to the round's sends.
//!
//! [`Forwarder::handle_frame`] takes one received frame, parses it ([`netio::wire::parse_frame`],
//! which also verifies the IPv4 header checksum), takes its VLAN id (a tag the kernel stripped
//! into the frame's metadata, or one left in the frame; untagged = 0, two tags are dropped),
//! finds its rule ([`crate::table`], keyed by interface, VLAN, group, port, source), applies the
//! TTL policy ([`crate::ttl`]: by default min(`--ttl`, arriving TTL - 1), TTL <= 1 dropped) and,
//! for every output, builds the egress frame straight into a slot of the output interface's
//! transmit ring (`--send ring`, default; [`crate::tx_rings`]), or into a free send slot kept
//! for the round's one `sendmmsg` (`--send mmsg`, and `ring` until the interface's ring is
//! open), or queues an io_uring `SendMsg` of that slot (`--send uring`, and every UDP output:
//! `--egress udp` copies the payload alone).
//! [`Egress`] owns the io_uring, the transmit rings, the bounded pool of send slots (the egress
//! queue) and the accounting of send completions; when every slot is in flight it waits for
//! completions (backpressure) instead of dropping. Nothing here allocates per packet.

use crate::dataplane::SendBackend;
use crate::drop_reason::DropReason;
use crate::ingress;
use crate::ring::SlotArena;
use crate::stats::{self, OutputStats, Stage, StageTimings, WorkerStats};
use crate::table::{CompiledOutput, CompiledRule, TableReader};
use crate::ttl::TtlPolicy;
use crate::tx_rings::{KickId, TxRings};
use crate::udp_egress;
use io_uring::{IoUring, opcode, types};
use netio::clock::realtime_ns;
use netio::packet_socket::Received;
use netio::wire::{self, FrameHeader, UdpDatagram, checksum};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, MutexGuard};
use std::time::Instant;

const TX_FLAG: u64 = 1 << 63;
/// `user_data` flag of a transmit ring's kick (`--send ring`); the low 32 bits name the
/// interface.
const KICK_FLAG: u64 = 1 << 62;
const PACKET_OUTGOING: u8 = 4;
/// `user_data` of the readiness poll on the receive socket.
pub(crate) const POLL_TAG: u64 = u64::MAX;
/// Per frame in flight (a send slot's, or a transmit ring slot's): what to credit when the
/// kernel has taken it or refused it.
pub(crate) struct InFlight {
    output: Option<Arc<OutputStats>>,
    payload_len: u64,
    queued_at: Option<Instant>,
}

impl InFlight {
    const EMPTY: InFlight = InFlight {
        output: None,
        payload_len: 0,
        queued_at: None,
    };

    /// Counts the frame as sent (`ok`) or as an egress failure on its output and the worker,
    /// and records its completion time with `--timing`.
    pub(crate) fn credit(mut self, stats: &WorkerStats, ok: bool) {
        if let Some(output) = self.output.take() {
            if ok {
                stats::bump(&output.tx_packets, 1);
                stats::bump(&output.tx_bytes, self.payload_len);
                stats::bump(&stats.tx_packets, 1);
            } else {
                stats::bump(&output.tx_errors, 1);
                stats.drop_packet(DropReason::EgressFailure);
            }
        }
        if let Some(queued) = self.queued_at.take() {
            stats
                .timings()
                .record(Stage::Completion, queued.elapsed().as_nanos() as u64);
        }
    }
}

/// Lookup and fan-out of one worker.
pub(crate) struct Forwarder {
    pub(crate) egress: Egress,
    pub(crate) table: TableReader,
    pub(crate) stats: Arc<WorkerStats>,
    ttl: TtlPolicy,
    pub(crate) timing: bool,
    /// Busy-wait per received frame, nanoseconds (test-only slowdown; 0 = off).
    pub(crate) handicap_ns: u64,
}

/// The io_uring, the bounded pool of send slots, and the readiness poll of one worker.
pub(crate) struct Egress {
    // Field order matters: the ring is dropped (requests cancelled) before the send arena.
    pub(crate) ring: IoUring,
    tx_arena: SlotArena,
    in_flight: Vec<InFlight>,
    free_tx: Vec<u32>,
    completions: Vec<(u64, i32)>,
    tx: OwnedFd,
    stats: Arc<WorkerStats>,
    pub(crate) poll_armed: bool,
    /// How packet-socket frames are sent (`--send`).
    pub(crate) send: SendBackend,
    /// `--send ring`: the transmit rings, one per output interface.
    pub(crate) tx_rings: TxRings,
    /// `--send ring`: kicks submitted and not yet completed.
    pub(crate) kicks_in_flight: u32,
    /// `--send mmsg`: slots filled this round, sent by [`Egress::flush_pending`].
    pending: Vec<u32>,
    /// Per pending slot, what its send returned (bytes or -errno).
    sent: Vec<i32>,
}

impl Egress {
    /// Queues an entry, handing queued entries to the kernel first if the queue is full.
    /// Returns false if it still does not fit.
    #[allow(unsafe_code)]
    pub(crate) fn push(ring: &mut IoUring, entry: &io_uring::squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: entries built by SlotArena point into arena memory owned by this worker,
            // which outlives the ring (field order), and a slot stays reserved (not reused)
            // until its completion is reaped; a poll entry and a ring's kick (a send of no
            // data) carry no pointers.
            if unsafe { ring.submission().push(entry) }.is_ok() {
                return true;
            }
            if let Err(e) = ring.submit() {
                tracing::warn!("io_uring submit failed: {e}");
            }
        }
        false
    }

    pub(crate) fn reap_completions(&mut self) {
        self.completions.clear();
        for cqe in self.ring.completion() {
            self.completions.push((cqe.user_data(), cqe.result()));
        }
        for i in 0..self.completions.len() {
            let (user_data, result) = self.completions[i];
            if user_data == POLL_TAG {
                self.poll_armed = false;
            } else if user_data & KICK_FLAG != 0 {
                self.kicks_in_flight = self.kicks_in_flight.saturating_sub(1);
                let id = KickId::from_user_data(user_data);
                self.tx_rings.kicked(id, result, &self.stats);
            } else {
                self.send_completed((user_data & !TX_FLAG) as usize, result);
            }
        }
    }

    fn send_completed(&mut self, slot: usize, result: i32) {
        let Some(flight) = self.in_flight.get_mut(slot) else {
            return;
        };
        std::mem::replace(flight, InFlight::EMPTY).credit(&self.stats, result >= 0);
        self.free_tx.push(slot as u32);
    }

    /// Sends the slots filled since the last call in one `sendmmsg` (`--send mmsg`) and
    /// accounts for each as a completion, or kicks the transmit rings that got frames
    /// (`--send ring`); nothing to do with `--send uring`.
    pub(crate) fn flush_pending(&mut self) {
        if self.send == SendBackend::Ring {
            let ring = &mut self.ring;
            let handed_over = self.tx_rings.flush(&self.stats, |id, fd| {
                // A send of no data: the kernel sends the frames marked in the ring.
                let kick = opcode::Send::new(types::Fd(fd), std::ptr::null(), 0)
                    .flags(libc::MSG_DONTWAIT)
                    .build()
                    .user_data(KICK_FLAG | id.user_data());
                Egress::push(ring, &kick)
            });
            self.kicks_in_flight += handed_over as u32;
        }
        if self.pending.is_empty() {
            return;
        }
        self.tx_arena
            .send_mmsg(self.tx.as_raw_fd(), &self.pending, &mut self.sent);
        for i in 0..self.pending.len() {
            self.send_completed(self.pending[i] as usize, self.sent[i]);
        }
        self.pending.clear();
    }

    /// A free send slot; when all are in flight, sends the pending ones or waits for
    /// completions first (backpressure onto the receive queue). `None` only if waiting fails.
    fn free_slot(&mut self) -> Option<usize> {
        if let Some(slot) = self.free_tx.pop() {
            return Some(slot as usize);
        }
        self.flush_pending();
        if let Some(slot) = self.free_tx.pop() {
            return Some(slot as usize);
        }
        for _ in 0..8 {
            if let Err(e) = self.ring.submit_and_wait(1)
                && e.raw_os_error() != Some(libc::EINTR)
            {
                tracing::warn!("io_uring wait for send completions failed: {e}");
                return None;
            }
            self.reap_completions();
            if let Some(slot) = self.free_tx.pop() {
                return Some(slot as usize);
            }
        }
        None
    }
}

impl Egress {
    /// Queues one send per output of `rule`; the payload's checksum sum is computed once for
    /// all of them.
    #[inline(always)]
    fn fan_out(
        &mut self,
        datagram: &UdpDatagram<'_>,
        rule: &CompiledRule,
        ttl: u8,
        queued_at: Option<Instant>,
    ) {
        let payload_len = datagram.payload.len() as u64;
        stats::bump(&rule.stats.rx_packets, 1);
        stats::bump(&rule.stats.rx_bytes, payload_len);
        let payload_sum = checksum::sum(datagram.payload);
        for output in rule.outputs.iter() {
            self.queue_output(output, datagram, payload_sum, ttl, queued_at);
        }
    }

    /// One output: builds its frame into the interface's transmit ring (`--send ring`, once the
    /// ring is open), or takes a free send slot (waiting for one if need be), fills it and
    /// keeps it for the round's `sendmmsg` or queues its io_uring send; counts the drop if any
    /// step fails.
    #[inline(always)]
    fn queue_output(
        &mut self,
        output: &CompiledOutput,
        datagram: &UdpDatagram<'_>,
        payload_sum: u32,
        ttl: u8,
        queued_at: Option<Instant>,
    ) {
        if self.send == SendBackend::Ring
            && output.udp.is_none()
            && self.queue_to_ring(output, datagram, payload_sum, ttl, queued_at)
        {
            return;
        }
        let Some(tx_slot) = self.free_slot() else {
            self.stats.drop_packet(DropReason::QueueFull);
            stats::bump(&output.stats.tx_errors, 1);
            return;
        };
        if self
            .fill_slot(tx_slot, output, datagram, payload_sum, ttl)
            .is_none()
        {
            self.free_tx.push(tx_slot as u32);
            self.stats.drop_packet(DropReason::BadHeaderLength);
            return;
        }
        self.in_flight[tx_slot] = InFlight {
            output: Some(output.stats.clone()),
            payload_len: datagram.payload.len() as u64,
            queued_at,
        };
        if self.send != SendBackend::Uring && output.udp.is_none() {
            // The slot's message is ready; it leaves with the round's sendmmsg (also with
            // --send ring, until the interface's ring is open).
            self.pending.push(tx_slot as u32);
            return;
        }
        let fd = output
            .udp
            .as_ref()
            .map_or(self.tx.as_raw_fd(), |s| s.as_raw_fd());
        let entry = self
            .tx_arena
            .entry(tx_slot, fd)
            .user_data(TX_FLAG | tx_slot as u64);
        if !Egress::push(&mut self.ring, &entry) {
            self.in_flight[tx_slot].output = None;
            self.free_tx.push(tx_slot as u32);
            self.stats.drop_packet(DropReason::QueueFull);
            stats::bump(&output.stats.tx_errors, 1);
        }
    }

    /// `--send ring`: builds the frame straight into a slot of the output interface's
    /// transmit ring; it leaves with the round's kick of that ring. False if the interface has
    /// no ring yet: the frame is then the send slots' to send.
    #[inline(always)]
    fn queue_to_ring(
        &mut self,
        output: &CompiledOutput,
        datagram: &UdpDatagram<'_>,
        payload_sum: u32,
        ttl: u8,
        queued_at: Option<Instant>,
    ) -> bool {
        let header = output_header(output, datagram, ttl);
        let flight = || InFlight {
            output: Some(output.stats.clone()),
            payload_len: datagram.payload.len() as u64,
            queued_at,
        };
        let build = |buffer: &mut [u8]| {
            wire::write_frame(buffer, &header, datagram.payload, payload_sum).ok()
        };
        match self
            .tx_rings
            .queue(output.ifindex, flight, build, &self.stats)
        {
            Ok(queued) => queued,
            Err(reason) => {
                self.stats.drop_packet(reason);
                stats::bump(&output.stats.tx_errors, 1);
                true
            }
        }
    }

    /// Writes what `output` sends into slot `tx_slot` and prepares the slot's message: the
    /// payload alone for a UDP-socket output (`--egress udp`, sent with the socket's fixed
    /// `--ttl`), else the whole frame built by [`wire::write_frame`] (source port and TOS from
    /// the input, `ttl` as the TTL policy chose it for this packet: it is one field of the
    /// header written anyway, and the header checksum is computed once per frame as before).
    /// `None` if the frame does not fit the slot.
    #[inline(always)]
    fn fill_slot(
        &mut self,
        tx_slot: usize,
        output: &CompiledOutput,
        datagram: &UdpDatagram<'_>,
        payload_sum: u32,
        ttl: u8,
    ) -> Option<()> {
        let buffer = self.tx_arena.frame_mut(tx_slot);
        if output.udp.is_some() {
            let len = datagram.payload.len().min(buffer.len());
            buffer[..len].copy_from_slice(&datagram.payload[..len]);
            let destination =
                udp_egress::sockaddr_in(output.header.group, output.header.destination_port);
            self.tx_arena.prepare_udp(tx_slot, len, destination);
            return Some(());
        }
        let header = output_header(output, datagram, ttl);
        let frame_len = wire::write_frame(buffer, &header, datagram.payload, payload_sum).ok()?;
        self.tx_arena.prepare_packet(
            tx_slot,
            frame_len,
            output.ifindex,
            wire::multicast_mac(output.header.group),
        );
        Some(())
    }
}

/// The headers of `output`'s copy of `datagram`: the rule's addresses and ports, the input's
/// source port and TOS, and `ttl` as the TTL policy chose it.
#[inline(always)]
fn output_header(output: &CompiledOutput, datagram: &UdpDatagram<'_>, ttl: u8) -> FrameHeader {
    FrameHeader {
        source_port: datagram.source_port,
        tos: datagram.tos,
        ttl,
        ..output.header
    }
}

/// Per-stage timing of one frame with `--timing` (nothing without): holds the worker's timing
/// lock from receive to lookup and records each stage's duration.
struct StageClock<'a>(Option<(MutexGuard<'a, StageTimings>, Instant)>);

impl<'a> StageClock<'a> {
    /// Starts timing; records the kernel-to-worker receive delay if the kernel stamped the
    /// frame.
    #[inline(always)]
    fn start(stats: &'a WorkerStats, timing: bool, kernel_ns: Option<u64>) -> StageClock<'a> {
        if !timing {
            return StageClock(None);
        }
        let mut guard = stats.timings();
        if let Some(kernel_ns) = kernel_ns {
            guard.record(Stage::Receive, realtime_ns().saturating_sub(kernel_ns));
        }
        StageClock(Some((guard, Instant::now())))
    }

    /// Records `stage` as the time since the last mark.
    #[inline(always)]
    fn lap(&mut self, stage: Stage) {
        if let Some((timings, mark)) = self.0.as_mut() {
            let now = Instant::now();
            timings.record(stage, (now - *mark).as_nanos() as u64);
            *mark = now;
        }
    }

    /// Records `stage`, releases the lock and returns when the next stage started.
    #[inline(always)]
    fn finish(self, stage: Stage) -> Option<Instant> {
        self.0.map(|(mut timings, mark)| {
            let now = Instant::now();
            timings.record(stage, (now - mark).as_nanos() as u64);
            now
        })
    }
}

/// Spins (never sleeps) for `ns` nanoseconds: the `--handicap-ns` slowdown, spent on the
/// worker's CPU exactly like real per-packet work.
fn busy_wait(ns: u64) {
    let until = Instant::now() + std::time::Duration::from_nanos(ns);
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

impl Forwarder {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        ring: IoUring,
        tx_slots: usize,
        frame_size: usize,
        tx: OwnedFd,
        table: TableReader,
        stats: Arc<WorkerStats>,
        ttl: TtlPolicy,
        timing: bool,
    ) -> Forwarder {
        let completions = Vec::with_capacity(ring.params().cq_entries() as usize);
        Forwarder {
            egress: Egress {
                ring,
                tx_arena: SlotArena::new(tx_slots, frame_size),
                in_flight: (0..tx_slots).map(|_| InFlight::EMPTY).collect(),
                free_tx: (0..tx_slots as u32).rev().collect(),
                completions,
                tx,
                stats: stats.clone(),
                poll_armed: false,
                send: SendBackend::default(),
                tx_rings: TxRings::new(Default::default(), crate::tx_rings::DEFAULT_IDLE_CLOSE),
                kicks_in_flight: 0,
                pending: Vec::with_capacity(tx_slots),
                sent: Vec::with_capacity(tx_slots),
            },
            table,
            stats,
            ttl,
            timing,
            handicap_ns: 0,
        }
    }

    /// Parses, looks up and fans out one received frame. Each phase is a small function
    /// inlined into this one (the hot path stays one straight-line body).
    pub(crate) fn handle_frame(&mut self, frame: &[u8], meta: Received, kernel_ns: Option<u64>) {
        if !self.admit(&meta) {
            return;
        }
        let mut clock = StageClock::start(&self.stats, self.timing, kernel_ns);
        let (datagram, vlan) = match ingress::classify(frame, &meta) {
            Ok(parsed) => parsed,
            Err(reason) => {
                self.stats.drop_packet(reason);
                return;
            }
        };
        clock.lap(Stage::Parse);
        let table = self.table.table();
        let (rule, ttl) = match ingress::route(table, self.ttl, meta.ifindex, vlan, &datagram) {
            Ok(Some(routed)) => routed,
            Ok(None) => {
                stats::bump(&self.stats.in_kernel, 1);
                return;
            }
            Err(reason) => {
                self.stats.drop_packet(reason);
                return;
            }
        };
        // Release the timing lock before fan-out: waiting for send completions (a full egress
        // queue) records completion times under the same lock.
        let fanout_started = clock.finish(Stage::Lookup);
        self.egress.fan_out(&datagram, rule, ttl, fanout_started);
        if let Some(started) = fanout_started {
            self.stats
                .timings()
                .record(Stage::FanoutCopy, started.elapsed().as_nanos() as u64);
        }
    }

    /// Counts a received frame; false if it is not to be parsed: the worker's own outgoing
    /// frame, or one cut short by the receive buffer (dropped as truncated).
    #[inline(always)]
    fn admit(&self, meta: &Received) -> bool {
        if meta.pkttype == PACKET_OUTGOING {
            stats::bump(&self.stats.ignored_outgoing, 1);
            return false;
        }
        stats::bump(&self.stats.rx_packets, 1);
        stats::bump(&self.stats.rx_bytes, meta.len as u64);
        if self.handicap_ns > 0 {
            busy_wait(self.handicap_ns);
        }
        if meta.truncated {
            self.stats.drop_packet(DropReason::Truncated);
            return false;
        }
        true
    }
}
