//! The forwarding data plane: worker threads that receive frames on AF_PACKET, look them up
//! in the rule table, and send one rebuilt frame per output.
//!
//! Each worker owns one receive socket bound to every interface and protocol (ETH_P_ALL: bound
//! to ETH_P_IP it would get 802.1Q-tagged frames only after the kernel dropped their tag, so a
//! tagged frame would look untagged; as a tap it sees the tag in the metadata, see
//! [`crate::ingress`]; non-IPv4 frames are dropped by the parse as `not_ipv4`) and joined to one
//! PACKET_FANOUT_HASH group shared by all workers of this relay (the kernel assigns a unique
//! group id), so every frame is handled by exactly one worker and a stream stays on one worker
//! (no reordering). PACKET_IGNORE_OUTGOING plus a PACKET_OUTGOING check make sure the relay never
//! re-ingests its own egress, so a rule whose input and output share an interface cannot loop.
//!
//! Receive backends ([`IoBackend`], all from netio): `ring` walks a TPACKET_V2 ring
//! ([`FrameRing`]), `uring` takes batches with `recvmmsg` ([`RecvBatch`]), `mmap` walks a
//! TPACKET_V3 ring ([`BlockRing`]); all sleep on an io_uring readiness poll.
//! Egress frames are built from scratch (Ethernet with the group's multicast MAC, IPv4 with the
//! configured TTL, UDP with a correct checksum) into a bounded pool of preallocated send slots
//! and sent on an AF_PACKET socket, all of a receive round in one `sendmmsg` (or, with
//! `--send uring`, one io_uring `SendMsg` each and one submit per round, see [`SendBackend`]); this
//! avoids the kernel's neighbour table (see ARCHITECTURE.md). When every slot is in flight the
//! worker waits for completions (backpressure) rather than dropping. No heap allocation per
//! packet.
//!
//! Workers never die silently: each runs under [`supervisor::run_caught`] (errors and panics
//! alike end up as a report) and a supervisor thread restarts a failed worker with fresh
//! sockets, re-joined to the same fanout group before the old socket is closed (the group never
//! empties), within [`RestartPolicy`]; when a worker cannot be kept alive, [`Dataplane::fatal`]
//! says why and the [`Dataplane::on_fatal`] callback wakes the caller, which must exit.

use crate::busy_poll::BusyPoll;
use crate::forward::{self, Egress, Forwarder};
use crate::stats::{self, Stage, WorkerStats};
use crate::supervisor::{self, FailHook, Fatal, RestartPolicy, WorkerExit};
use crate::table::{TablePublisher, TableReader};
use crate::tx_rings::TxRings;
use anyhow::Context;
use io_uring::{IoUring, opcode, types};
use netio::packet_socket::{self, ETH_P_ALL};
use netio::recv_batch::{RecvBatch, RecvMetadata};
use netio::ring::{BlockRing, BlockRingConfig, FrameRing, FrameRingConfig, TxRingConfig};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Largest frame handled (jumbo frames: 9000-byte MTU + Ethernet + two VLAN tags).
pub const FRAME_BUFFER_SIZE: usize = 9216;
/// Kernel receive buffer of each worker's packet socket (forced; root only, best effort).
const RX_SOCKET_BUFFER: i32 = 8 << 20;

/// How frames are received (`--io`); all of them wait on an io_uring readiness poll.
///
/// The command-line and serde names are the variant names in kebab-case (`ring`, `uring`,
/// `mmap`), derived by [`clap::ValueEnum`] and serde alike (no list of names is written out).
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum IoBackend {
    /// TPACKET_V2 mmap ring (one slot per frame, no block timeout), io_uring readiness poll
    /// and sends.
    #[default]
    Ring,
    /// `recvmmsg` batches, io_uring readiness poll and sends.
    Uring,
    /// TPACKET_V3 mmap ring, io_uring readiness poll and sends.
    Mmap,
}

/// How a worker hands its packet-socket frames to the kernel (`--send`).
///
/// Either way the frames of one receive round leave in one system call; UDP-socket outputs
/// (`--egress udp`) always go through io_uring. `mmsg` is the default because it measured
/// cheaper: in one run of 12 paired repeats at 40 streams x 2500 pps its CPU per packet was
/// 3.9 % lower (95 % CI 1.4..6.3 %), and equal within 1 % at 1000 streams x 50 pps.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum SendBackend {
    /// One io_uring `SendMsg` per frame, all of a round submitted by one `io_uring_enter`;
    /// their completions are reaped later.
    Uring,
    /// One `sendmmsg` per round for all of its frames (synchronous: no completion queue).
    Mmsg,
    /// Frames built straight into a `PACKET_TX_RING` per output interface (`tx_rings`),
    /// each ring kicked once per round by an io_uring `Send` of no data; an interface whose
    /// ring is not open yet sends by `sendmmsg`.
    #[default]
    Ring,
}

/// Data plane settings.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    pub workers: usize,
    pub ttl: u8,
    /// How forwarded TTLs are chosen from `ttl` (`--ttl-mode`).
    pub ttl_mode: crate::ttl::TtlMode,
    pub timing: bool,
    pub io: IoBackend,
    /// How frames are sent (`--send`).
    pub send: SendBackend,
    /// Frames taken per `recvmmsg` (receive batch size, `uring` backend).
    pub rx_slots: usize,
    /// Send slots per worker: the bound of the egress queue.
    pub tx_slots: usize,
    /// Ring geometry (`mmap` backend).
    pub ring: BlockRingConfig,
    /// Ring geometry (`ring` backend).
    pub frame_ring: FrameRingConfig,
    /// Transmit ring geometry, per output interface and worker (`--send ring`).
    pub tx_ring: TxRingConfig,
    /// A transmit ring that queued nothing for this long is closed (`--tx-ring-idle-s`).
    pub tx_ring_idle: Duration,
    /// Test-only slowdown: busy-wait this long per received frame (`relay run --handicap-ns`),
    /// so the lab can prove its regression gate catches a slower relay. 0 = off.
    pub handicap_ns: u64,
    /// SCHED_FIFO priority of the worker threads (`--worker-priority`); 0 = normal class.
    pub worker_priority: u8,
    /// How long a worker keeps polling after its last received frame before it sleeps
    /// (`--busy-poll-us`, see `busy_poll`); zero = sleep at once.
    pub busy_poll: Duration,
    /// Restarts a failed worker gets.
    pub restart: RestartPolicy,
    /// Test-only fault: workers fail after N frames (`relay run --fail-worker-after`).
    pub fail_hook: Option<Arc<FailHook>>,
    /// False with `--dataplane tc`: the receive sockets start refusing every frame (the kernel
    /// forwards them) and the workers idle, until [`ReceiveSwitch::set`] turns them on.
    pub receive: bool,
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            workers: 1,
            ttl: 8,
            ttl_mode: Default::default(),
            timing: false,
            io: IoBackend::Ring,
            send: SendBackend::Ring,
            rx_slots: 64,
            tx_slots: 512,
            ring: BlockRingConfig::default(),
            frame_ring: FrameRingConfig::default(),
            tx_ring: TxRingConfig::default(),
            tx_ring_idle: crate::tx_rings::DEFAULT_IDLE_CLOSE,
            handicap_ns: 0,
            worker_priority: 0,
            busy_poll: Duration::ZERO,
            restart: RestartPolicy::default(),
            fail_hook: None,
            receive: true,
        }
    }
}

/// Running workers and their supervisor.
pub struct Dataplane {
    shared: Arc<Shared>,
    supervisor: Option<JoinHandle<()>>,
}

/// What the data plane, its supervisor thread and the drop probe share.
struct Shared {
    config: DataplaneConfig,
    publisher: Arc<TablePublisher>,
    stop: Arc<AtomicBool>,
    fanout_group: u16,
    /// Per worker, kept across restarts.
    stats: Vec<Arc<WorkerStats>>,
    /// Per worker: its current receive socket (replaced on restart, read by the drop probe).
    rx: Vec<Mutex<Arc<OwnedFd>>>,
    /// Whether the receive sockets take frames ([`ReceiveSwitch`]); held while a switch or a
    /// restart's new socket applies it, so that no socket misses a switch.
    receiving: Mutex<bool>,
    /// Per worker: its current thread.
    threads: Mutex<Vec<Option<JoinHandle<()>>>>,
    /// Where worker threads report how they ended.
    exits: Sender<(usize, WorkerExit)>,
    fatal: Mutex<FatalState>,
}

/// Why the data plane gave up, and whom to wake when it does.
#[derive(Default)]
struct FatalState {
    error: Option<Fatal>,
    wake: Option<Box<dyn FnOnce() + Send>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct WorkerSockets {
    rx: Arc<OwnedFd>,
    tx: OwnedFd,
    /// The mmap'd receive ring, if the backend has one (the `uring` batch is built on the
    /// worker thread: it holds raw pointers and is not Send).
    mapped: Option<MappedRing>,
}

/// A receive ring set up on the socket before it is bound.
enum MappedRing {
    Blocks(BlockRing),
    Frames(FrameRing),
}

impl WorkerSockets {
    /// Opens worker `worker`'s receive socket (ring set up, bound to every interface, joined
    /// to the fanout group, which the first worker creates) and its send socket.
    fn open(
        config: &DataplaneConfig,
        receiving: bool,
        worker: usize,
        fanout_group: &mut Option<u16>,
    ) -> anyhow::Result<WorkerSockets> {
        let rx = packet_socket::open(ETH_P_ALL)
            .context("opening the AF_PACKET receive socket (needs CAP_NET_RAW)")?;
        if let Err(e) = packet_socket::ignore_outgoing(&rx) {
            tracing::warn!("PACKET_IGNORE_OUTGOING unavailable ({e}); filtering on pkttype only");
        }
        if !receiving {
            packet_socket::receive_nothing(&rx)
                .context("attaching the receive-nothing filter (--dataplane tc)")?;
        }
        let _ = netio::sockopt::force_buffers(rx.as_raw_fd(), RX_SOCKET_BUFFER);
        let mapped = MappedRing::set_up(&rx, config)?;
        if config.timing && mapped.is_none() {
            netio::sockopt::set_int_option(
                rx.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_TIMESTAMPNS,
                1,
            )
            .context("enabling SO_TIMESTAMPNS for --timing")?;
        }
        if mapped.is_none() {
            // The VLAN tag the kernel strips from a tagged frame comes as auxiliary data.
            packet_socket::receive_auxdata(&rx)
                .context("enabling PACKET_AUXDATA (VLAN tags of received frames)")?;
        }
        packet_socket::bind(&rx, 0, ETH_P_ALL).context("binding the receive socket")?;
        let id = packet_socket::join_fanout(&rx, *fanout_group)
            .with_context(|| format!("joining worker {worker} to the PACKET_FANOUT group"))?;
        *fanout_group = Some(id);
        let tx = packet_socket::open(0).context("opening the AF_PACKET send socket")?;
        if let Err(e) = packet_socket::qdisc_bypass(&tx) {
            tracing::warn!("PACKET_QDISC_BYPASS unavailable ({e}); sending through the qdisc");
        }
        Ok(WorkerSockets {
            rx: Arc::new(rx),
            tx,
            mapped,
        })
    }

    /// Throws away every frame already queued on the receive socket or its ring.
    fn discard_queued(&mut self, scratch: &mut [u8]) {
        packet_socket::drain(&*self.rx, scratch);
        match self.mapped.as_mut() {
            Some(MappedRing::Blocks(ring)) => {
                ring.discard_ready();
            }
            Some(MappedRing::Frames(ring)) => {
                ring.discard_ready();
            }
            None => {}
        }
    }
}

impl MappedRing {
    /// The receive ring of `config.io` on `rx` (none for the `uring` backend).
    fn set_up(rx: &OwnedFd, config: &DataplaneConfig) -> anyhow::Result<Option<MappedRing>> {
        Ok(match config.io {
            IoBackend::Mmap => Some(MappedRing::Blocks(
                BlockRing::new(rx, config.ring, config.timing)
                    .context("setting up the TPACKET_V3 receive ring")?,
            )),
            IoBackend::Ring => Some(MappedRing::Frames(
                FrameRing::new(rx, config.frame_ring, config.timing)
                    .context("setting up the TPACKET_V2 receive ring")?,
            )),
            IoBackend::Uring => None,
        })
    }
}

/// Starts worker `index` on its own thread and waits until it is set up (the worker is built
/// there: its `recvmmsg` batch holds raw pointers and is not Send); a setup error is returned
/// after the thread ended. The thread reports how its worker ended (error or panic included)
/// to the supervisor.
fn spawn_worker(
    index: usize,
    sockets: WorkerSockets,
    shared: &Shared,
) -> anyhow::Result<JoinHandle<()>> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let config = shared.config.clone();
    let (reader, stop, exits) = (
        shared.publisher.reader(),
        shared.stop.clone(),
        shared.exits.clone(),
    );
    let stats = shared.stats[index].clone();
    let thread = std::thread::Builder::new()
        .name(format!("relay-worker-{index}"))
        .spawn(move || {
            set_worker_priority(config.worker_priority);
            let worker = match Worker::new(&config, sockets, reader, stats, stop) {
                Ok(worker) => worker,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let exit = supervisor::run_caught(move || worker.run());
            let _ = exits.send((index, exit));
        })
        .context("spawning a worker thread")?;
    let setup = ready_rx
        .recv()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("worker thread exited during setup")));
    match setup {
        Ok(()) => Ok(thread),
        Err(e) => {
            let _ = thread.join();
            Err(e)
        }
    }
}

/// Puts the calling worker thread in SCHED_FIFO at `priority` (0: leaves it alone). A refusal
/// (no CAP_SYS_NICE, no real-time budget) is logged and the worker runs at normal priority.
fn set_worker_priority(priority: u8) {
    if priority == 0 {
        return;
    }
    if let Err(e) = netio::sched::set_scheduler(libc::SCHED_FIFO, i32::from(priority)) {
        tracing::warn!("--worker-priority {priority}: SCHED_FIFO refused ({e}); normal priority");
    }
}

impl Shared {
    /// Restarts worker `index` (its thread has ended): fresh sockets joined to the fanout
    /// group while the old receive socket is still a member, then a new thread; the old
    /// socket is closed once replaced.
    fn restart(&self, index: usize) -> anyhow::Result<()> {
        let old = lock(&self.threads).get_mut(index).and_then(Option::take);
        if let Some(old) = old {
            let _ = old.join();
        }
        let mut group = Some(self.fanout_group);
        // Held until the new socket is in `rx`: a switch waits for it, or came before it.
        let receiving = lock(&self.receiving);
        let mut sockets = WorkerSockets::open(&self.config, *receiving, index, &mut group)?;
        // Frames queued before the socket joined the group are also another worker's.
        sockets.discard_queued(&mut vec![0u8; FRAME_BUFFER_SIZE]);
        let rx = sockets.rx.clone();
        let thread = spawn_worker(index, sockets, self)?;
        if let Some(slot) = self.rx.get(index) {
            *lock(slot) = rx;
        }
        drop(receiving);
        if let Some(slot) = lock(&self.threads).get_mut(index) {
            *slot = Some(thread);
        }
        Ok(())
    }

    /// Records why the data plane gave up and wakes whoever waits for it.
    fn declare_fatal(&self, fatal: Fatal) {
        tracing::error!("{fatal}");
        let mut state = lock(&self.fatal);
        state.error = Some(fatal);
        if let Some(wake) = state.wake.take() {
            wake();
        }
    }
}

/// Starts the supervisor thread: it restarts failed workers or declares the data plane dead.
fn spawn_supervisor(
    shared: Arc<Shared>,
    exits: mpsc::Receiver<(usize, WorkerExit)>,
) -> anyhow::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("relay-supervisor".into())
        .spawn(move || {
            let policy = shared.config.restart;
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                supervisor::supervise(&exits, &shared.stats, policy, &shared.stop, |index| {
                    shared.restart(index)
                })
            }));
            let fatal = match outcome {
                Ok(Ok(())) => return,
                Ok(Err(fatal)) => fatal,
                Err(_) => Fatal {
                    worker: 0,
                    reason: "the worker supervisor panicked".into(),
                    last_failure: "unknown".into(),
                },
            };
            shared.declare_fatal(fatal);
        })
        .context("spawning the worker supervisor thread")
}

impl Dataplane {
    /// Opens every worker's sockets (errors are reported here), starts the workers and their
    /// supervisor.
    pub fn start(config: DataplaneConfig, publisher: Arc<TablePublisher>) -> anyhow::Result<Self> {
        anyhow::ensure!(config.workers >= 1, "--workers must be at least 1");
        let mut sockets = Vec::with_capacity(config.workers);
        let mut fanout_group = None;
        for worker in 0..config.workers {
            let socks = WorkerSockets::open(&config, config.receive, worker, &mut fanout_group)?;
            sockets.push(socks);
        }
        // Frames queued before every socket was in the fanout group could be seen twice.
        let mut scratch = vec![0u8; FRAME_BUFFER_SIZE];
        for s in &mut sockets {
            s.discard_queued(&mut scratch);
        }
        let (exits, exit_reports) = mpsc::channel();
        let shared = Arc::new(Shared {
            stop: Arc::new(AtomicBool::new(false)),
            fanout_group: fanout_group.unwrap_or(0),
            stats: (0..config.workers)
                .map(|_| Arc::new(WorkerStats::default()))
                .collect(),
            rx: sockets.iter().map(|s| Mutex::new(s.rx.clone())).collect(),
            receiving: Mutex::new(config.receive),
            threads: Mutex::new((0..config.workers).map(|_| None).collect()),
            exits,
            fatal: Mutex::default(),
            config,
            publisher,
        });
        let mut dataplane = Dataplane {
            shared: shared.clone(),
            supervisor: None,
        };
        for (index, socks) in sockets.into_iter().enumerate() {
            match spawn_worker(index, socks, &shared) {
                Ok(thread) => lock(&shared.threads)[index] = Some(thread),
                Err(e) => {
                    dataplane.stop();
                    return Err(e.context(format!("setting up worker {index}")));
                }
            }
        }
        match spawn_supervisor(shared, exit_reports) {
            Ok(thread) => dataplane.supervisor = Some(thread),
            Err(e) => {
                dataplane.stop();
                return Err(e);
            }
        }
        Ok(dataplane)
    }

    pub fn worker_stats(&self) -> &[Arc<WorkerStats>] {
        &self.shared.stats
    }

    /// A probe that adds the kernel's per-socket drop counts to the workers' `socket_drops`.
    pub fn drop_probe(&self) -> SocketDropProbe {
        SocketDropProbe {
            shared: self.shared.clone(),
        }
    }

    /// Turns the workers' receiving on and off at run time (`--dataplane tc`: while the table
    /// has a rule the tcx program cannot forward).
    pub fn receive_switch(&self) -> ReceiveSwitch {
        ReceiveSwitch {
            shared: self.shared.clone(),
        }
    }

    pub fn fanout_group(&self) -> u16 {
        self.shared.fanout_group
    }

    /// Calls `wake` (once, from the supervisor thread, or right away if it already happened)
    /// when a worker cannot be kept alive; the caller must then stop and exit non-zero.
    pub fn on_fatal(&self, wake: impl FnOnce() + Send + 'static) {
        let mut state = lock(&self.shared.fatal);
        if state.error.is_some() {
            drop(state);
            wake();
        } else {
            state.wake = Some(Box::new(wake));
        }
    }

    /// Why the data plane gave up, if it did.
    pub fn fatal(&self) -> Option<Fatal> {
        lock(&self.shared.fatal).error.clone()
    }

    /// Stops the supervisor and the workers and waits for them (each notices within ~100 ms).
    pub fn stop(mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(supervisor) = self.supervisor.take()
            && supervisor.join().is_err()
        {
            tracing::error!("the worker supervisor thread panicked");
        }
        let threads: Vec<JoinHandle<()>> = lock(&self.shared.threads)
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for thread in threads {
            if thread.join().is_err() {
                tracing::error!("a worker thread panicked");
            }
        }
    }
}

/// Attaches or detaches the receive-nothing filter of every worker's receive socket (and of
/// those a restart opens later).
#[derive(Clone)]
pub struct ReceiveSwitch {
    shared: Arc<Shared>,
}

impl ReceiveSwitch {
    /// Every worker's socket takes frames (`on`) or refuses them all; frames already queued
    /// are still read.
    pub fn set(&self, on: bool) -> std::io::Result<()> {
        let mut receiving = lock(&self.shared.receiving);
        for socket in &self.shared.rx {
            let fd = lock(socket).clone();
            if on {
                packet_socket::receive_all(&*fd)?;
            } else {
                packet_socket::receive_nothing(&*fd)?;
            }
        }
        *receiving = on;
        Ok(())
    }
}

/// Reads PACKET_STATISTICS of every worker's receive socket on request (reading resets the
/// kernel counter, so the totals are accumulated in [`WorkerStats::socket_drops`]).
/// A restarted worker's new socket is read from then on.
#[derive(Clone)]
pub struct SocketDropProbe {
    shared: Arc<Shared>,
}

impl SocketDropProbe {
    pub fn collect(&self) {
        for (socket, stats) in self.shared.rx.iter().zip(&self.shared.stats) {
            let fd = lock(socket).clone();
            if let Ok(drops) = packet_socket::take_drops(&*fd) {
                stats::bump(&stats.socket_drops, drops);
            }
        }
    }
}

/// Receive batches (or ring blocks) taken per round before send completions are reaped again.
const BATCHES_PER_ROUND: usize = 4;

/// Where a worker's frames come from.
enum Receiver {
    Batch(RecvBatch),
    Ring(BlockRing),
    Frames(FrameRing),
}

struct Worker {
    // Field order matters: `forward` (with the io_uring) is dropped before the receive ring.
    forward: Forwarder,
    receiver: Receiver,
    /// Frames taken from a `ring` receiver per round (`--rx-slots` x BATCHES_PER_ROUND).
    frames_per_round: usize,
    rx: Arc<OwnedFd>,
    stop: Arc<AtomicBool>,
    /// Test-only fault, and the worker's frame count when it started.
    fail_hook: Option<(Arc<FailHook>, u64)>,
    /// Whether a drained worker polls on rather than sleeps (`--busy-poll-us`).
    busy_poll: BusyPoll,
}

/// What one receive round did.
#[derive(Debug, Clone, Copy)]
struct RoundOutcome {
    /// Nothing was left to take: the worker may sleep.
    drained: bool,
    /// The round took at least one frame (or ring block).
    received: bool,
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
        let receiver = match sockets.mapped {
            Some(MappedRing::Blocks(ring)) => Receiver::Ring(ring),
            Some(MappedRing::Frames(ring)) => Receiver::Frames(ring),
            None => Receiver::Batch(RecvBatch::new(
                config.rx_slots,
                FRAME_BUFFER_SIZE,
                RecvMetadata {
                    link_addresses: true,
                    // PACKET_AUXDATA (VLAN tags), and timestamps with --timing.
                    control: true,
                },
            )),
        };
        let mut forward = Forwarder::new(
            ring,
            config.tx_slots,
            FRAME_BUFFER_SIZE,
            sockets.tx,
            table,
            stats,
            crate::ttl::TtlPolicy::new(config.ttl, config.ttl_mode),
            config.timing,
        );
        forward.handicap_ns = config.handicap_ns;
        forward.egress.send = config.send;
        forward.egress.tx_rings = TxRings::new(config.tx_ring, config.tx_ring_idle);
        let fail_hook = config.fail_hook.clone().map(|hook| {
            let frames = stats::read(&forward.stats.rx_packets);
            (hook, frames)
        });
        Ok(Worker {
            forward,
            receiver,
            frames_per_round: config.rx_slots.max(1) * BATCHES_PER_ROUND,
            rx: sockets.rx,
            stop,
            fail_hook,
            busy_poll: BusyPoll::new(config.busy_poll),
        })
    }

    /// The receive loop, until the stop flag is set (`Ok`) or io_uring fails (`Err`).
    fn run(mut self) -> anyhow::Result<()> {
        let timeout = types::Timespec::new().nsec(100_000_000);
        let args = types::SubmitArgs::new().timespec(&timeout);
        let rx_fd = self.rx.as_raw_fd();
        while !self.stop.load(Ordering::Relaxed) {
            self.forward.table.refresh();
            let round = self.receive_round();
            self.check_fail_hook();
            // Busy polling: a drained worker that keeps spinning neither arms the readiness
            // poll nor sleeps; its next round looks at the receive queue again at once. Every
            // round is told (a busy round's frames restart the budget too).
            let spinning =
                self.busy_poll.keep_spinning(round.received, Instant::now) && round.drained;
            let sleep = round.drained && !spinning;
            let forward = &mut self.forward;
            if sleep {
                forward.egress.tx_rings.close_idle(Instant::now());
            }
            if sleep && !forward.egress.poll_armed {
                let poll = opcode::PollAdd::new(types::Fd(rx_fd), libc::POLLIN as u32)
                    .build()
                    .user_data(forward::POLL_TAG);
                forward.egress.poll_armed = Egress::push(&mut forward.egress.ring, &poll);
            }
            // With --timing the round's sends are submitted (and timed: the kernel's send
            // work, for every frame and output of the round) before any wait.
            if forward.timing {
                let started = Instant::now();
                forward.egress.flush_pending();
                // An error here (EBUSY, EAGAIN) is met again, and judged, just below.
                let _ = forward.egress.ring.submit();
                forward
                    .stats
                    .timings()
                    .record(Stage::Submit, started.elapsed().as_nanos() as u64);
            }
            // `--send mmsg`: the round's frames leave now, in one sendmmsg.
            forward.egress.flush_pending();
            // One io_uring_enter per round: with the queue drained, submit the round's sends
            // and sleep until the socket is readable or a send completes (or 100 ms pass);
            // otherwise only submit.
            // Ring kicks (`--send ring`) complete at once: wait for one event beyond them.
            let want = 1 + forward.egress.kicks_in_flight as usize;
            let entered = if sleep {
                forward
                    .egress
                    .ring
                    .submitter()
                    .submit_with_args(want, &args)
            } else if spinning && forward.egress.ring.submission().is_empty() {
                std::hint::spin_loop();
                Ok(0)
            } else {
                forward.egress.ring.submit()
            };
            if let Err(e) = entered
                && !matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                )
            {
                anyhow::bail!("io_uring submit/wait failed: {e}");
            }
            forward.egress.reap_completions();
        }
        Ok(())
    }

    /// The test-only fault (`--fail-worker-after`): panics once the hook fires.
    fn check_fail_hook(&self) {
        if let Some((hook, at_start)) = &self.fail_hook {
            let frames = stats::read(&self.forward.stats.rx_packets).saturating_sub(*at_start);
            if hook.fires(frames) {
                panic!(
                    "test fault --fail-worker-after {}: failing after {frames} frames",
                    hook.after_frames
                );
            }
        }
    }

    /// Takes up to BATCHES_PER_ROUND batches (or ring blocks).
    fn receive_round(&mut self) -> RoundOutcome {
        let forward = &mut self.forward;
        match &mut self.receiver {
            Receiver::Ring(ring) => {
                let blocks = ring.drain(BATCHES_PER_ROUND, |frame, meta, ts| {
                    forward.handle_frame(frame, meta, ts)
                });
                stats::bump(&forward.stats.batches, blocks as u64);
                RoundOutcome {
                    drained: blocks < BATCHES_PER_ROUND,
                    received: blocks > 0,
                }
            }
            Receiver::Frames(ring) => {
                let budget = self.frames_per_round;
                let frames = ring.drain(budget, |frame, meta, ts| {
                    forward.handle_frame(frame, meta, ts)
                });
                if frames > 0 {
                    stats::bump(&forward.stats.batches, 1);
                }
                RoundOutcome {
                    drained: frames < budget,
                    received: frames > 0,
                }
            }
            Receiver::Batch(batch) => {
                let mut received = false;
                for _ in 0..BATCHES_PER_ROUND {
                    let taken = match batch.recv(self.rx.as_fd()) {
                        Ok(n) => n,
                        Err(e) => {
                            stats::bump(&forward.stats.rx_errors, 1);
                            tracing::debug!("recvmmsg failed: {e}");
                            0
                        }
                    };
                    if taken > 0 {
                        received = true;
                        stats::bump(&forward.stats.batches, 1);
                    }
                    for index in 0..taken {
                        forward.handle_frame(
                            batch.frame(index),
                            batch.received(index),
                            batch.timestamp_ns(index),
                        );
                    }
                    if taken < batch.capacity() {
                        return RoundOutcome {
                            drained: true,
                            received,
                        };
                    }
                }
                RoundOutcome {
                    drained: false,
                    received,
                }
            }
        }
    }
}
