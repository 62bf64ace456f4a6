//! `--send ring`: a worker's transmit rings, one `PACKET_TX_RING` per output interface
//! ([`netio::ring::TxRing`]). A frame is built straight into a ring slot (no send slot, no
//! `msghdr`), and the round's end kicks each ring that got frames: one `send` per interface
//! per round.
//!
//! Opening and closing a ring cost the kernel an RCU grace period each (`packet_set_ring`
//! calls `synchronize_net`): measured on the lab's VM, opening ten rings in the data path held
//! the first frames of a run for 170 ms. Rings are therefore opened and closed by a helper
//! thread ([`RingKeeper`]); until an interface's ring is ready (or while it cannot be opened)
//! its frames leave with the round's `sendmmsg` instead.
//!
//! Accounting matches the other backends: a frame counts as sent when the kernel took it from
//! the ring, as `egress_failure` when its ring had to be dropped (the interface is gone or
//! down, or the kernel refused a frame), as `queue_full` when its ring stayed full (the
//! receivers downstream hold every slot) for [`FULL_WAITS`] waits. An interface whose ring
//! failed gets no new ring for [`RETRY_AFTER`].
//!
//! A ring that queued nothing for a whole idle period (`relay run --tx-ring-idle-s`, checked
//! when the worker is about to sleep) and holds no frame is closed on the helper thread, so an
//! interface no rule uses any more, or one gone quiet, does not keep its ring's memory; the
//! next frame to it asks for a new ring.

use crate::drop_reason::DropReason;
use crate::forward::InFlight;
use crate::stats::{self, WorkerStats};
use netio::ring::{Push, TxRing, TxRingConfig};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

/// How long a ring may queue nothing before it is closed, unless configured
/// (`relay run --tx-ring-idle-s`).
pub(crate) const DEFAULT_IDLE_CLOSE: Duration = Duration::from_secs(30);
/// How long an interface whose ring failed waits before a new ring is asked for.
const RETRY_AFTER: Duration = Duration::from_millis(100);
/// Waits of [`WAIT_MS`] for a full ring's next slot before a frame is dropped as queue-full.
const FULL_WAITS: usize = 10;
const WAIT_MS: i32 = 1;

/// Which ring a kick handed over by [`TxRings::flush`] was for: the interface index (low 32
/// bits) and the ring's generation (the next 30 bits), so that the completion of a kick of a
/// dropped ring is not taken for one of the ring that replaced it on the same interface. Fits
/// under the two top bits of an io_uring `user_data`, which tag its kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KickId(u64);

impl KickId {
    const GENERATION_MASK: u32 = (1 << 30) - 1;

    fn new(ifindex: u32, generation: u32) -> KickId {
        KickId(u64::from(generation & Self::GENERATION_MASK) << 32 | u64::from(ifindex))
    }

    /// The id in the low 62 bits of a `user_data` (the two top bits are ignored).
    pub(crate) fn from_user_data(user_data: u64) -> KickId {
        KickId(user_data & ((1 << 62) - 1))
    }

    pub(crate) fn user_data(self) -> u64 {
        self.0
    }

    fn ifindex(self) -> u32 {
        self.0 as u32
    }

    #[cfg(test)]
    fn generation(self) -> u32 {
        (self.0 >> 32) as u32 & Self::GENERATION_MASK
    }
}

/// One interface's ring and, per frame queued in it and not yet confirmed, what to credit.
struct RingOutput {
    ring: TxRing,
    /// Told apart from earlier rings of the same interface (see [`KickId`]).
    generation: u32,
    waiting: VecDeque<InFlight>,
    /// Frames were queued since the last kick.
    touched: bool,
    /// Frames were queued since the last idle sweep.
    used: bool,
}

impl RingOutput {
    fn new(ring: TxRing, generation: u32) -> RingOutput {
        let waiting = VecDeque::with_capacity(ring.frame_count());
        RingOutput {
            ring,
            generation,
            waiting,
            touched: false,
            used: true,
        }
    }

    /// Queues one frame; on `Err` nothing was queued.
    #[inline]
    fn push(
        &mut self,
        flight: InFlight,
        build: impl FnOnce(&mut [u8]) -> Option<usize>,
    ) -> Result<(), DropReason> {
        match self.ring.push(build) {
            Push::Queued => {
                self.waiting.push_back(flight);
                self.touched = true;
                self.used = true;
                Ok(())
            }
            Push::Full => Err(DropReason::QueueFull),
            Push::NotBuilt => Err(DropReason::BadHeaderLength),
            Push::TooLong => Err(DropReason::EgressFailure),
        }
    }

    /// One kick and the credits for what the kernel took; false if the ring failed and must
    /// be dropped (the interface is gone or down, or the kernel refused a frame).
    fn kick(&mut self, stats: &WorkerStats) -> bool {
        self.touched = false;
        let kicked = self.ring.kick().map(|_| ());
        self.confirm(kicked, stats)
    }

    /// Credits what the kernel took after a kick that returned `kicked`; false if the ring
    /// failed and must be dropped.
    fn confirm(&mut self, kicked: io::Result<()>, stats: &WorkerStats) -> bool {
        let confirmed = self.ring.confirm();
        for flight in self.waiting.drain(..confirmed.sent) {
            flight.credit(stats, true);
        }
        stats::bump(&stats.tx_ring_packets, confirmed.sent as u64);
        let kept = match kicked {
            Ok(()) => true,
            Err(e) => kick_kept(-e.raw_os_error().unwrap_or(libc::EIO)),
        };
        kept && !confirmed.stuck
    }
}

/// Whether a ring survives a kick that returned `result` (bytes or -errno): only a full send
/// buffer or a driver's momentary refusal (EAGAIN, ENOBUFS), or a signal, leave it usable;
/// the frames not taken go with the next kick.
fn kick_kept(result: i32) -> bool {
    result >= 0 || matches!(-result, libc::EAGAIN | libc::ENOBUFS | libc::EINTR)
}

/// The helper thread that opens rings, and closes dropped ones, off the data path.
struct RingKeeper {
    jobs: Sender<KeeperJob>,
    opened: Receiver<(u32, io::Result<TxRing>)>,
}

enum KeeperJob {
    Open(u32),
    Close(Box<TxRing>),
}

impl RingKeeper {
    /// Starts the thread; it ends when its [`TxRings`] is dropped (the job channel closes).
    fn start(config: TxRingConfig) -> io::Result<RingKeeper> {
        let (jobs, incoming) = mpsc::channel::<KeeperJob>();
        let (done, opened) = mpsc::channel();
        std::thread::Builder::new()
            .name("tx-ring-keeper".into())
            .spawn(move || {
                for job in incoming {
                    match job {
                        KeeperJob::Open(ifindex) => {
                            if done.send((ifindex, TxRing::open(ifindex, config))).is_err() {
                                return;
                            }
                        }
                        KeeperJob::Close(ring) => drop(ring),
                    }
                }
            })?;
        Ok(RingKeeper { jobs, opened })
    }
}

/// The transmit rings of one worker, by interface index.
pub(crate) struct TxRings {
    rings: HashMap<u32, RingOutput>,
    /// Interfaces whose ring was asked for and not yet received.
    opening: Vec<u32>,
    /// Interfaces whose ring failed, and when.
    failed: HashMap<u32, Instant>,
    /// Scratch: rings to drop after a flush.
    broken: Vec<u32>,
    /// Started with the first ring asked for.
    keeper: Option<RingKeeper>,
    config: TxRingConfig,
    /// Generation of the last ring taken (see [`KickId`]).
    generation: u32,
    /// A ring unused for a whole period of this is closed (see [`close_idle`](Self::close_idle)).
    idle_close: Duration,
    last_sweep: Instant,
}

impl TxRings {
    /// No ring and no thread yet: both come with the first [`queue`](Self::queue).
    pub(crate) fn new(config: TxRingConfig, idle_close: Duration) -> TxRings {
        TxRings {
            rings: HashMap::new(),
            opening: Vec::new(),
            failed: HashMap::new(),
            broken: Vec::new(),
            keeper: None,
            config,
            generation: 0,
            idle_close,
            last_sweep: Instant::now(),
        }
    }

    /// Once per idle period: closes (on the helper thread) every ring that queued nothing
    /// since the last sweep and holds no frame, and forgets failures older than
    /// [`RETRY_AFTER`]. Between periods it only compares two instants.
    pub(crate) fn close_idle(&mut self, now: Instant) {
        if now.saturating_duration_since(self.last_sweep) < self.idle_close {
            return;
        }
        self.last_sweep = now;
        let idle: Vec<u32> = self
            .rings
            .iter()
            .filter(|(_, output)| !output.used && !output.touched && output.waiting.is_empty())
            .map(|(ifindex, _)| *ifindex)
            .collect();
        for output in self.rings.values_mut() {
            output.used = false;
        }
        for ifindex in idle {
            tracing::debug!("transmit ring on interface {ifindex} closed: idle");
            self.close(ifindex);
        }
        self.failed
            .retain(|_, at| now.saturating_duration_since(*at) < RETRY_AFTER);
    }

    fn request(&mut self, ifindex: u32) {
        if self.opening.contains(&ifindex) {
            return;
        }
        if let Some(at) = self.failed.get(&ifindex) {
            if at.elapsed() < RETRY_AFTER {
                return;
            }
            self.failed.remove(&ifindex);
        }
        if self.keeper.is_none() {
            match RingKeeper::start(self.config) {
                Ok(keeper) => self.keeper = Some(keeper),
                Err(e) => {
                    tracing::warn!("--send ring: no ring helper thread ({e}); sendmmsg instead");
                    self.failed.insert(ifindex, Instant::now());
                    return;
                }
            }
        }
        if let Some(keeper) = &self.keeper
            && keeper.jobs.send(KeeperJob::Open(ifindex)).is_ok()
        {
            self.opening.push(ifindex);
        }
    }

    /// Takes the rings the helper thread opened since the last call.
    fn receive_opened(&mut self) {
        let Some(keeper) = &self.keeper else {
            return;
        };
        while let Ok((ifindex, opened)) = keeper.opened.try_recv() {
            self.opening.retain(|i| *i != ifindex);
            match opened {
                Ok(ring) => {
                    self.generation = self.generation.wrapping_add(1);
                    self.rings
                        .insert(ifindex, RingOutput::new(ring, self.generation));
                }
                Err(e) => {
                    tracing::warn!(
                        "transmit ring on interface {ifindex}: {e}; its frames go by sendmmsg"
                    );
                    self.failed.insert(ifindex, Instant::now());
                }
            }
        }
    }

    /// Builds one frame with `build` into `ifindex`'s ring for the round's kick; `flight()` is
    /// credited when the kernel takes it. `Ok(false)`: the interface has no ring yet (the
    /// helper thread is asked for one, unless one is on its way or the last failed within
    /// [`RETRY_AFTER`]) and the frame must go another way. On `Err` nothing was queued.
    #[inline]
    pub(crate) fn queue(
        &mut self,
        ifindex: u32,
        flight: impl FnOnce() -> InFlight,
        build: impl FnOnce(&mut [u8]) -> Option<usize>,
        stats: &WorkerStats,
    ) -> Result<bool, DropReason> {
        match self.rings.get_mut(&ifindex) {
            Some(output) if output.ring.has_room() => {
                return output.push(flight(), build).map(|()| true);
            }
            Some(_) => {}
            None => {
                self.request(ifindex);
                return Ok(false);
            }
        }
        let mut waits = 0;
        while !self.output(ifindex)?.ring.has_room() {
            if waits == FULL_WAITS {
                return Err(DropReason::QueueFull);
            }
            waits += 1;
            self.make_room(ifindex, stats)?;
        }
        self.output(ifindex)?.push(flight(), build).map(|()| true)
    }

    fn output(&mut self, ifindex: u32) -> Result<&mut RingOutput, DropReason> {
        self.rings
            .get_mut(&ifindex)
            .ok_or(DropReason::EgressFailure)
    }

    /// A full ring: sends what is queued and, if the next slot is still held downstream,
    /// waits up to [`WAIT_MS`] for it.
    fn make_room(&mut self, ifindex: u32, stats: &WorkerStats) -> Result<(), DropReason> {
        let output = self.output(ifindex)?;
        if !output.kick(stats) {
            self.discard(ifindex, stats);
            return Err(DropReason::EgressFailure);
        }
        if !output.ring.has_room() {
            output
                .ring
                .wait_free(WAIT_MS)
                .map_err(|_| DropReason::EgressFailure)?;
        }
        Ok(())
    }

    /// Kicks every ring that got frames since the last call: `kick_later(id, fd)` may
    /// take the kick (an io_uring `Send` in the round's one `io_uring_enter`; its completion
    /// goes to [`kicked`](Self::kicked)), else it is kicked here, and the kernel's take
    /// credited. Takes the rings opened meanwhile. Returns how many kicks were handed over.
    pub(crate) fn flush(
        &mut self,
        stats: &WorkerStats,
        mut kick_later: impl FnMut(KickId, RawFd) -> bool,
    ) -> usize {
        if !self.opening.is_empty() {
            self.receive_opened();
        }
        let mut handed_over = 0;
        for (ifindex, output) in self.rings.iter_mut() {
            if !output.touched {
                continue;
            }
            let id = KickId::new(*ifindex, output.generation);
            if kick_later(id, output.ring.fd().as_raw_fd()) {
                output.touched = false;
                handed_over += 1;
            } else if !output.kick(stats) {
                self.broken.push(*ifindex);
            }
        }
        while let Some(ifindex) = self.broken.pop() {
            self.discard(ifindex, stats);
        }
        handed_over
    }

    /// A kick handed over by [`flush`](Self::flush) completed with `result` (bytes sent or
    /// -errno): credits what the kernel took, and drops the ring if it failed. The kick of a
    /// ring dropped meanwhile is ignored, even if a new ring took its interface.
    pub(crate) fn kicked(&mut self, id: KickId, result: i32, stats: &WorkerStats) {
        let ifindex = id.ifindex();
        let Some(output) = self.rings.get_mut(&ifindex) else {
            return;
        };
        if KickId::new(ifindex, output.generation) != id {
            return;
        }
        if !output.confirm(Ok(()), stats) || !kick_kept(result) {
            self.discard(ifindex, stats);
        }
    }

    /// Drops `ifindex`'s ring (the helper thread closes it): its unsent frames count as egress
    /// failures.
    fn discard(&mut self, ifindex: u32, stats: &WorkerStats) {
        for flight in self.close(ifindex).into_iter().flatten() {
            flight.credit(stats, false);
        }
        self.failed.insert(ifindex, Instant::now());
    }

    /// Removes `ifindex`'s ring and hands it to the helper thread to close (an RCU grace period
    /// the worker does not wait for); returns what it still held, `None` without a ring.
    fn close(&mut self, ifindex: u32) -> Option<VecDeque<InFlight>> {
        let output = self.rings.remove(&ifindex)?;
        if let Some(keeper) = &self.keeper {
            let _ = keeper.jobs.send(KeeperJob::Close(Box::new(output.ring)));
        }
        Some(output.waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::KickId;

    #[test]
    fn a_kick_id_carries_interface_and_generation_under_the_tag_bits() {
        let id = KickId::new(7, 3);
        assert_eq!((id.ifindex(), id.generation()), (7, 3));
        assert_eq!(id.user_data() >> 62, 0, "the two tag bits stay free");
        let tagged = (1 << 62) | id.user_data();
        assert_eq!(KickId::from_user_data(tagged), id);
        let last = KickId::new(u32::MAX, u32::MAX);
        assert_eq!(last.ifindex(), u32::MAX);
        assert_eq!(last.generation(), KickId::GENERATION_MASK);
        assert_eq!(last.user_data() >> 62, 0);
    }

    #[test]
    fn kicks_of_two_rings_of_one_interface_differ() {
        assert_ne!(KickId::new(7, 1), KickId::new(7, 2));
        // Generations wrap within the mask: the 2^30th ring after this one looks the same,
        // which takes 2^30 ring replacements during one kick's flight.
        assert_eq!(KickId::new(7, 1), KickId::new(7, 1 + (1 << 30)));
    }
}
