//! The forwarding data plane: worker threads that receive frames on AF_PACKET, look them up
//! in the rule table, and send one rebuilt frame per output, all batched through io_uring.
//!
//! Each worker owns one receive socket bound to every interface (ETH_P_IP) and joined to one
//! PACKET_FANOUT_HASH group shared by all workers of this relay (the kernel assigns a unique
//! group id), so every frame is handled by exactly one worker and a stream stays on one worker
//! (no reordering). PACKET_IGNORE_OUTGOING plus a PACKET_OUTGOING check make sure the relay never
//! re-ingests its own egress, so a rule whose input and output share an interface cannot loop.
//! Egress frames are built from scratch (Ethernet with the group's multicast MAC, IPv4 with the
//! configured TTL, UDP with a correct checksum) and sent on an AF_PACKET socket, which avoids
//! the kernel's neighbour table (see ARCHITECTURE.md). Buffers are preallocated: a fixed ring of
//! receive slots and a bounded pool of send slots (the egress queue); a packet that finds the
//! pool empty is dropped as `queue_full`.

use crate::packet::{self, DropReason, EgressHeader};
use crate::ring::SlotArena;
use crate::rx_batch::RecvBatch;
use crate::stats::{self, OutputStats, Stage, WorkerStats};
use crate::sys;
use crate::table::{TablePublisher, TableReader};
use anyhow::Context;
use io_uring::{IoUring, opcode, types};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

/// Largest frame handled (jumbo frames: 9000-byte MTU + Ethernet + two VLAN tags).
pub const FRAME_BUFFER_SIZE: usize = 9216;
const TX_FLAG: u64 = 1 << 63;
const PACKET_OUTGOING: u8 = 4;
/// Kernel receive buffer of each worker's packet socket (forced; root only, best effort).
const RX_SOCKET_BUFFER: i32 = 8 << 20;

/// Data plane settings.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    pub workers: usize,
    pub ttl: u8,
    pub timing: bool,
    /// Frames taken per `recvmmsg` (receive batch size).
    pub rx_slots: usize,
    /// Send slots per worker: the bound of the egress queue.
    pub tx_slots: usize,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            workers: 1,
            ttl: 8,
            timing: false,
            rx_slots: 64,
            tx_slots: 512,
        }
    }
}

/// Running workers.
pub struct Dataplane {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    stats: Vec<Arc<WorkerStats>>,
    rx_sockets: Vec<Arc<OwnedFd>>,
    fanout_group: u16,
}

struct WorkerSockets {
    rx: Arc<OwnedFd>,
    tx: OwnedFd,
}

impl Dataplane {
    /// Opens every worker's sockets (errors are reported here) and starts the workers.
    pub fn start(config: DataplaneConfig, publisher: Arc<TablePublisher>) -> anyhow::Result<Self> {
        anyhow::ensure!(config.workers >= 1, "--workers must be at least 1");
        let mut sockets = Vec::with_capacity(config.workers);
        let mut fanout_group = None;
        for worker in 0..config.workers {
            let rx = sys::packet_socket(sys::ETH_P_IP)
                .context("opening the AF_PACKET receive socket (needs CAP_NET_RAW)")?;
            if let Err(e) = sys::ignore_outgoing(&rx) {
                tracing::warn!(
                    "PACKET_IGNORE_OUTGOING unavailable ({e}); filtering on pkttype only"
                );
            }
            let _ = sys::force_buffers(rx.as_raw_fd(), RX_SOCKET_BUFFER);
            if config.timing {
                sys::set_int_option(rx.as_raw_fd(), libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
                    .context("enabling SO_TIMESTAMPNS for --timing")?;
            }
            sys::bind_packet(&rx, 0, sys::ETH_P_IP).context("binding the receive socket")?;
            let id = sys::join_fanout(&rx, fanout_group)
                .with_context(|| format!("joining worker {worker} to the PACKET_FANOUT group"))?;
            fanout_group = Some(id);
            let tx = sys::packet_socket(0).context("opening the AF_PACKET send socket")?;
            sockets.push(WorkerSockets {
                rx: Arc::new(rx),
                tx,
            });
        }
        // Frames queued before every socket was in the fanout group could be seen twice.
        let mut scratch = vec![0u8; FRAME_BUFFER_SIZE];
        for s in &sockets {
            sys::drain(&s.rx, &mut scratch);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let rx_sockets: Vec<Arc<OwnedFd>> = sockets.iter().map(|s| s.rx.clone()).collect();
        let mut threads = Vec::new();
        let mut stats = Vec::new();
        for (index, socks) in sockets.into_iter().enumerate() {
            let worker_stats = Arc::new(WorkerStats::default());
            stats.push(worker_stats.clone());
            // The worker's buffers hold raw pointers (not Send): build it on its own thread
            // and report the setup result back.
            let (ready_tx, ready_rx) = std::sync::mpsc::channel();
            let (reader, worker_stop, worker_config) =
                (publisher.reader(), stop.clone(), config.clone());
            let thread = std::thread::Builder::new()
                .name(format!("relay-worker-{index}"))
                .spawn(move || {
                    match Worker::new(&worker_config, socks, reader, worker_stats, worker_stop) {
                        Ok(worker) => {
                            let _ = ready_tx.send(Ok(()));
                            worker.run();
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })
                .context("spawning a worker thread")?;
            threads.push(thread);
            let setup = ready_rx
                .recv()
                .unwrap_or_else(|_| Err(anyhow::anyhow!("worker thread exited during setup")));
            if let Err(e) = setup {
                stop.store(true, Ordering::Relaxed);
                for thread in threads {
                    let _ = thread.join();
                }
                return Err(e.context(format!("setting up worker {index}")));
            }
        }
        Ok(Dataplane {
            stop,
            threads,
            stats,
            rx_sockets,
            fanout_group: fanout_group.unwrap_or(0),
        })
    }

    pub fn worker_stats(&self) -> &[Arc<WorkerStats>] {
        &self.stats
    }

    /// A probe that adds the kernel's per-socket drop counts to the workers' `socket_drops`.
    pub fn drop_probe(&self) -> SocketDropProbe {
        SocketDropProbe {
            sockets: self
                .rx_sockets
                .iter()
                .cloned()
                .zip(self.stats.iter().cloned())
                .collect(),
        }
    }

    pub fn fanout_group(&self) -> u16 {
        self.fanout_group
    }

    /// Stops the workers and waits for them (each notices within ~100 ms).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

/// Reads PACKET_STATISTICS of every worker's receive socket on request (reading resets the
/// kernel counter, so the totals are accumulated in [`WorkerStats::socket_drops`]).
#[derive(Clone)]
pub struct SocketDropProbe {
    sockets: Vec<(Arc<OwnedFd>, Arc<WorkerStats>)>,
}

impl SocketDropProbe {
    pub fn collect(&self) {
        for (fd, stats) in &self.sockets {
            if let Ok(drops) = sys::packet_socket_drops(fd) {
                stats::bump(&stats.socket_drops, drops);
            }
        }
    }
}

/// Per send slot: what to credit when its completion arrives.
struct InFlight {
    output: Option<Arc<OutputStats>>,
    payload_len: u64,
    queued_at: Option<Instant>,
}

/// `user_data` of the readiness poll on the receive socket.
const POLL_TAG: u64 = u64::MAX;
/// Receive batches taken per round before send completions are reaped again.
const BATCHES_PER_ROUND: usize = 4;

struct Worker {
    // Field order matters: the ring is dropped (requests cancelled) before the send arena.
    ring: IoUring,
    tx_arena: SlotArena,
    rx: RecvBatch,
    in_flight: Vec<InFlight>,
    free_tx: Vec<u32>,
    completions: Vec<(u64, i32)>,
    sockets: WorkerSockets,
    table: TableReader,
    stats: Arc<WorkerStats>,
    stop: Arc<AtomicBool>,
    ttl: u8,
    timing: bool,
    poll_armed: bool,
}

impl Worker {
    fn new(
        config: &DataplaneConfig,
        sockets: WorkerSockets,
        table: TableReader,
        stats: Arc<WorkerStats>,
        stop: Arc<AtomicBool>,
    ) -> anyhow::Result<Worker> {
        let entries = (config.tx_slots + 1).next_power_of_two() as u32;
        let ring = IoUring::builder()
            .setup_cqsize(entries * 2)
            .build(entries)
            .context("io_uring_setup failed (kernel without io_uring, or io_uring disabled by sysctl kernel.io_uring_disabled)")?;
        Ok(Worker {
            ring,
            tx_arena: SlotArena::new(config.tx_slots, FRAME_BUFFER_SIZE),
            rx: RecvBatch::new(config.rx_slots, FRAME_BUFFER_SIZE, config.timing),
            in_flight: (0..config.tx_slots)
                .map(|_| InFlight {
                    output: None,
                    payload_len: 0,
                    queued_at: None,
                })
                .collect(),
            free_tx: (0..config.tx_slots as u32).rev().collect(),
            completions: Vec::with_capacity(entries as usize * 2),
            sockets,
            table,
            stats,
            stop,
            ttl: config.ttl,
            timing: config.timing,
            poll_armed: false,
        })
    }

    /// Queues an entry, handing queued entries to the kernel first if the queue is full.
    /// Returns false if it still does not fit.
    fn push(ring: &mut IoUring, entry: &io_uring::squeue::Entry) -> bool {
        for _ in 0..2 {
            // SAFETY: entries built by SlotArena point into arena memory owned by this worker,
            // which outlives the ring (field order), and a slot stays reserved (not reused)
            // until its completion is reaped; a poll entry carries no pointers.
            if unsafe { ring.submission().push(entry) }.is_ok() {
                return true;
            }
            if let Err(e) = ring.submit() {
                tracing::warn!("io_uring submit failed: {e}");
            }
        }
        false
    }

    fn run(mut self) {
        let timeout = types::Timespec::new().nsec(100_000_000);
        let args = types::SubmitArgs::new().timespec(&timeout);
        let rx_fd = self.sockets.rx.as_raw_fd();
        while !self.stop.load(Ordering::Relaxed) {
            self.table.refresh();
            let drained = self.receive_round(rx_fd);
            if drained && !self.poll_armed {
                let poll = opcode::PollAdd::new(types::Fd(rx_fd), libc::POLLIN as u32)
                    .build()
                    .user_data(POLL_TAG);
                self.poll_armed = Self::push(&mut self.ring, &poll);
            }
            let started = self.timing.then(Instant::now);
            if let Err(e) = self.ring.submit() {
                if !matches!(
                    e.raw_os_error(),
                    Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) {
                    tracing::error!("io_uring submit failed: {e}; worker stops");
                    break;
                }
            }
            if let Some(started) = started {
                self.stats
                    .timings()
                    .record(Stage::Submit, started.elapsed().as_nanos() as u64);
            }
            if drained {
                // Sleep until the socket is readable or a send completes (or 100 ms pass).
                match self.ring.submitter().submit_with_args(1, &args) {
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.raw_os_error(),
                            Some(libc::ETIME | libc::EINTR | libc::EBUSY)
                        ) => {}
                    Err(e) => {
                        tracing::error!("io_uring wait failed: {e}; worker stops");
                        break;
                    }
                }
            }
            self.reap_completions();
        }
    }

    /// Takes up to BATCHES_PER_ROUND receive batches; true when the socket is drained.
    fn receive_round(&mut self, rx_fd: i32) -> bool {
        for _ in 0..BATCHES_PER_ROUND {
            let received = match self.rx.recv(rx_fd) {
                Ok(n) => n,
                Err(e) => {
                    stats::bump(&self.stats.rx_errors, 1);
                    tracing::debug!("recvmmsg failed: {e}");
                    return true;
                }
            };
            if received == 0 {
                return true;
            }
            stats::bump(&self.stats.batches, 1);
            for index in 0..received {
                self.handle_frame(index);
            }
            if received < self.rx.capacity() {
                return true;
            }
        }
        false
    }

    fn reap_completions(&mut self) {
        self.completions.clear();
        for cqe in self.ring.completion() {
            self.completions.push((cqe.user_data(), cqe.result()));
        }
        for i in 0..self.completions.len() {
            let (user_data, result) = self.completions[i];
            if user_data == POLL_TAG {
                self.poll_armed = false;
            } else {
                self.send_completed((user_data & !TX_FLAG) as usize, result);
            }
        }
    }

    fn send_completed(&mut self, slot: usize, result: i32) {
        let Some(flight) = self.in_flight.get_mut(slot) else {
            return;
        };
        if let Some(output) = flight.output.take() {
            if result >= 0 {
                stats::bump(&output.tx_packets, 1);
                stats::bump(&output.tx_bytes, flight.payload_len);
                stats::bump(&self.stats.tx_packets, 1);
            } else {
                stats::bump(&output.tx_errors, 1);
                self.stats.drop_packet(DropReason::EgressFailure);
            }
        }
        if let Some(queued) = flight.queued_at.take() {
            self.stats
                .timings()
                .record(Stage::Completion, queued.elapsed().as_nanos() as u64);
        }
        self.free_tx.push(slot as u32);
    }

    fn handle_frame(&mut self, index: usize) {
        let meta = self.rx.received(index);
        if meta.pkttype == PACKET_OUTGOING {
            stats::bump(&self.stats.ignored_outgoing, 1);
            return;
        }
        stats::bump(&self.stats.rx_packets, 1);
        stats::bump(&self.stats.rx_bytes, meta.len as u64);
        if meta.truncated {
            self.stats.drop_packet(DropReason::Truncated);
            return;
        }
        let mut timings = if self.timing {
            let mut guard = self.stats.timings();
            if let Some(kernel_ns) = self.rx.timestamp_ns(index) {
                guard.record(Stage::Receive, sys::realtime_ns().saturating_sub(kernel_ns));
            }
            Some((guard, Instant::now()))
        } else {
            None
        };
        let datagram = match packet::parse_frame(self.rx.frame(index)) {
            Ok(d) => d,
            Err(reason) => {
                self.stats.drop_packet(reason);
                return;
            }
        };
        if let Some((t, mark)) = timings.as_mut() {
            let now = Instant::now();
            t.record(Stage::Parse, (now - *mark).as_nanos() as u64);
            *mark = now;
        }
        let Some(rule) = self.table.table().lookup(
            meta.ifindex,
            datagram.destination,
            datagram.destination_port,
            datagram.source,
        ) else {
            self.stats.drop_packet(DropReason::NoRule);
            return;
        };
        if let Some((t, mark)) = timings.as_mut() {
            let now = Instant::now();
            t.record(Stage::Lookup, (now - *mark).as_nanos() as u64);
            *mark = now;
        }
        let payload_len = datagram.payload.len() as u64;
        stats::bump(&rule.stats.rx_packets, 1);
        stats::bump(&rule.stats.rx_bytes, payload_len);
        let payload_sum = packet::payload_sum(datagram.payload);
        let tx_fd = self.sockets.tx.as_raw_fd();
        let queued_at = timings.as_ref().map(|_| Instant::now());
        for output in rule.outputs.iter() {
            let Some(tx_slot) = self.free_tx.pop() else {
                self.stats.drop_packet(DropReason::QueueFull);
                stats::bump(&output.stats.tx_errors, 1);
                continue;
            };
            let tx_slot = tx_slot as usize;
            let header = EgressHeader {
                source_port: datagram.source_port,
                tos: datagram.tos,
                ttl: self.ttl,
                ..output.header
            };
            let Some(frame_len) = packet::write_frame(
                self.tx_arena.frame_mut(tx_slot),
                &header,
                datagram.payload,
                payload_sum,
            ) else {
                self.free_tx.push(tx_slot as u32);
                self.stats.drop_packet(DropReason::BadHeaderLength);
                continue;
            };
            let entry = self
                .tx_arena
                .send_entry(
                    tx_slot,
                    tx_fd,
                    frame_len,
                    output.ifindex,
                    packet::multicast_mac(output.header.group),
                )
                .user_data(TX_FLAG | tx_slot as u64);
            self.in_flight[tx_slot] = InFlight {
                output: Some(output.stats.clone()),
                payload_len,
                queued_at,
            };
            if !Self::push(&mut self.ring, &entry) {
                self.in_flight[tx_slot].output = None;
                self.free_tx.push(tx_slot as u32);
                self.stats.drop_packet(DropReason::QueueFull);
                stats::bump(&output.stats.tx_errors, 1);
            }
        }
        if let Some((t, mark)) = timings.as_mut() {
            t.record(Stage::FanoutCopy, mark.elapsed().as_nanos() as u64);
        }
    }
}
