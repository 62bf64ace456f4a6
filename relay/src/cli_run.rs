//! `relay run`: start the data plane, install the startup rules, serve the control socket,
//! follow the interfaces (`relay::link_watch`), and shut down cleanly on SIGTERM/SIGINT (leave
//! groups, close sockets, remove the socket file).
//! A worker that cannot be kept alive (its restart budget used up) ends the relay the same
//! way, with an error (exit status 1).

use anyhow::Context;
use netio::membership::{KernelSockets, Limits, Memberships, Strategy};
use netio::tc_fanout::ProgramOptions;
use relay::control::{ControlServer, ServerLimits};
use relay::dataplane::{Dataplane, DataplaneConfig};
use relay::dataplane::{IoBackend, SendBackend};
use relay::input_filter::{InputFilter, KernelDropTable};
use relay::link_watch::{LinkWatch, WatchConfig};
use relay::rule::Rule;
use relay::service::{Relay, RelayLimits};
use relay::supervisor::FailHook;
use relay::table::TablePublisher;
use relay::tc_dataplane::{DataplaneKind, KernelFanoutTable, TcDataplane};
use relay::ttl::{TtlMode, TtlPolicy};
use relay::udp_egress::EgressMode;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long cleanup after SIGTERM/SIGINT may take before the relay exits without finishing it.
const SHUTDOWN_BUDGET: Duration = Duration::from_millis(1500);

#[derive(clap::Args)]
pub struct RunArgs {
    /// A rule 'IN_IF:GROUP:PORT[@SOURCE] -> OUT_IF:GROUP:PORT, ...' (repeatable).
    #[arg(long = "rule", value_name = "RULE")]
    rules: Vec<Rule>,
    /// JSON config file: {"rules": ["RULE", {"input": "...", "outputs": ["..."]}]}.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Control socket path (created with mode 0600, removed on exit).
    #[arg(long, default_value = relay::control::DEFAULT_CONTROL_PATH)]
    control: PathBuf,
    /// Worker threads (PACKET_FANOUT members).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// How IGMP joins are placed on helper sockets.
    #[arg(long, value_enum, default_value_t = Strategy::Pool)]
    membership: Strategy,
    /// Force helper socket buffers (SO_RCVBUFFORCE/SO_SNDBUFFORCE), e.g. 8M, 425K, 65536.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    helper_buffer: Option<usize>,
    /// Highest IP TTL of forwarded packets (lab rules: keep it <= 8); see --ttl-mode.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(1..))]
    ttl: u8,
    /// How forwarded TTLs are chosen: `decrement` (router semantics: min(--ttl, arriving TTL -
    /// 1), packets arriving with TTL <= 1 are dropped as ttl_expired) or `set` (always --ttl;
    /// rules whose outputs can feed an input, same interface and group, are then refused).
    #[arg(long, value_enum, default_value_t)]
    ttl_mode: TtlMode,
    /// Receive backend: `ring` (TPACKET_V2 per-frame mmap ring), `uring` (recvmmsg batches)
    /// or `mmap` (TPACKET_V3 block ring, 1 ms block timeout); all send through io_uring.
    #[arg(long, value_enum, default_value_t)]
    io: IoBackend,
    /// Egress: `packet` (own frames on AF_PACKET, no neighbour entries) or `udp` (a UDP socket
    /// per output interface, through the kernel's IP output path).
    #[arg(long, value_enum, default_value_t)]
    egress: EgressMode,
    /// How a round's frames are sent: `ring` (frames built into a PACKET_TX_RING per output
    /// interface, each kicked once per round; see --tx-ring-frames), `mmsg` (one sendmmsg per
    /// round) or `uring` (one io_uring SendMsg per frame). UDP outputs (--egress udp) always
    /// use io_uring. Measured (scenarios/send.toml, 12 paired repeats, 256-slot rings): ring
    /// cost 6.8 % less CPU per packet than mmsg at 40 streams x 2500 pps, 5.0 % less at 1000 x
    /// 50 pps, the same at fan-out 10 x 20k pps; mmsg 1.5-4.8 % less than uring.
    #[arg(long, value_enum, default_value_t)]
    send: SendBackend,
    /// Record per-stage timing (receive, parse, lookup, fan-out copy, submit, completion; with
    /// --dataplane tc: the program's time to find a datagram's rule and its fan-out, as sums,
    /// shown as means).
    #[arg(long)]
    timing: bool,
    /// With --send ring: slots of each transmit ring (one ring of 2 KiB slots per output
    /// interface and worker, 512 KiB at the default). A slot stays taken until the receivers
    /// downstream took the frame; when a ring stays full for 10 ms its frames are dropped as
    /// queue_full. Measured: 256 slots cost the same CPU per packet as 2048 (an eighth of the
    /// memory); 64 dropped frames at 40 x 2500 pps.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(8..=65536))]
    tx_ring_frames: u32,
    /// With --send ring: seconds after which a transmit ring that sent nothing is closed (checked
    /// when a worker goes to sleep, so closed within two periods of idleness), so that an
    /// interface no rule uses any more does not keep its ring's memory. Its next frame opens a
    /// new ring (the frames go by sendmmsg meanwhile).
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    tx_ring_idle_s: u64,
    /// With --io ring: MiB of each worker's receive ring (512 frame slots of 2 KiB per MiB).
    /// The ring holds what arrives while the worker is not running: the default 32 MiB (16384
    /// frames) is about 80 ms at 200k pps. Measured (1 stream, 3 repeats): 4 MiB no different,
    /// 1 MiB lower zero-loss rates and frames lost at 1000 streams x 50 pps.
    #[arg(long, value_name = "MIB", default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..=1024))]
    rx_ring_mib: u32,
    /// Send slots per worker (the bound of the egress queue).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u32).range(1..=65536))]
    tx_slots: u32,
    /// Run the worker threads at SCHED_FIFO with this priority (1-99; needs CAP_SYS_NICE,
    /// else a warning and the normal class). The kernel's own forwarding runs in softirq, ahead
    /// of every task; a worker in the normal class shares its CPU with the softirq thread
    /// (ksoftirqd) by time slices and waited up to milliseconds for it. Measured at 1000 streams
    /// x 50 pps (3 interleaved repeats): p99 latency 0.37-0.65 ms at priority 10 against
    /// 1.2-2.3 ms in the normal class, throughput unchanged; the softirq work then runs more in
    /// the worker's own time (its process CPU +6 %, its CPU's total -4 %). 0 = the normal class.
    #[arg(long, value_name = "PRIORITY", default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=99))]
    worker_priority: u8,
    /// After a round that received frames, keep polling for up to this many microseconds
    /// instead of sleeping (user-space busy polling): a frame arriving meanwhile is taken
    /// without a wake-up, for CPU spent spinning. An input busier than one frame per budget
    /// keeps the worker's CPU fully busy. 0 = sleep as soon as the input is drained.
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    busy_poll_us: u64,
    /// Keep the rules' input out of this host's own IP stack: a tcx BPF program at each input
    /// interface's ingress drops UDP to the groups the rules read there, after the relay's
    /// packet socket has seen the frames. Without it the host stack also receives every input
    /// frame (the relay joins its groups), routes it and throws it away (Udp IgnoredMulti in
    /// /proc/net/snmp), on the relay's CPU. The host's own sockets stop receiving UDP to those
    /// groups on those interfaces. Needs CAP_BPF and CAP_NET_ADMIN (root) and Linux 6.6+
    /// (tcx); the relay does not start without them. `relay ctl stats` shows it under
    /// `input_filter`; the links go when the relay exits.
    #[arg(long)]
    input_filter: bool,
    /// Where datagrams are forwarded: `user` (the worker threads: packet socket in, a frame
    /// built per output into a transmit ring) or `tc` (a tcx BPF program at each input
    /// interface's ingress hands a clone of the datagram, its headers rewritten, to every
    /// output: in the kernel, as its own multicast forwarding does, without its route
    /// lookups). The program forwards untagged IPv4 input to at most 32 outputs; the workers
    /// forward the other rules (`vlan=`, more outputs), receiving only while such a rule
    /// exists. tc is not combined with --egress udp, --input-filter (it keeps its input from
    /// the host stack itself) or the workers' receive-side flags; `relay ctl stats` shows the
    /// program's counters per rule and output, totals under `tc_dataplane`. Needs root and
    /// Linux 6.6+ (tcx). [default: tc where this kernel links its program and none of those
    /// flags is given (the measured faster: README.md, "The kernel data plane"), else user;
    /// the log says which and why]
    #[arg(long, value_enum)]
    dataplane: Option<DataplaneKind>,
    /// Frames taken per receive batch (recvmmsg).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    rx_slots: u32,
    /// Test only: busy-wait this many nanoseconds per received frame (with --dataplane tc also
    /// in the program, per forwarded datagram). The lab's regression gate runs a handicapped
    /// relay to prove that it catches a slower build (scenarios/ci.toml).
    #[arg(long, hide = true, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    handicap_ns: u64,
    /// Test only: a worker panics after receiving this many frames since it (re)started, to
    /// prove that failed workers are restarted (see --fail-worker-times). 0 = off.
    #[arg(long, hide = true, default_value_t = 0)]
    fail_worker_after: u64,
    /// Test only: how many times in all the --fail-worker-after fault fires.
    #[arg(long, hide = true, default_value_t = 1)]
    fail_worker_times: u32,
    /// Most rules installed at once; `add` beyond it is refused with an error naming this flag.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_rules: u32,
    /// Most outputs of one rule (with --dataplane tc, rules of more than 32 are the workers').
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    max_outputs: u16,
    /// Most open control connections. At the limit the connection idle longest is closed to
    /// make room; a client finding all of them busy gets a one-line error.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=4096))]
    control_max_connections: u16,
    /// Seconds a control request may take from its first byte to its reply (not per read).
    #[arg(long, value_name = "SECONDS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    control_request_timeout: u64,
    /// Seconds a control connection may wait for its next request before it is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    control_idle_timeout: u64,
}

/// Parses sizes like `8M`, `425K`, `1G` or plain bytes.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let (digits, multiplier) = match text.char_indices().last() {
        Some((i, 'k' | 'K')) => (&text[..i], 1usize << 10),
        Some((i, 'm' | 'M')) => (&text[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&text[..i], 1 << 30),
        _ => (text, 1),
    };
    digits
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .filter(|n| *n > 0 && *n <= i32::MAX as usize)
        .ok_or_else(|| format!("{text:?} is not a size: use bytes or K/M/G, e.g. 8M"))
}

/// The data plane settings of the command line.
fn dataplane_config(args: &RunArgs) -> DataplaneConfig {
    if args.handicap_ns > 0 {
        tracing::warn!(
            "--handicap-ns {}: every frame costs that much extra CPU (test-only slowdown)",
            args.handicap_ns
        );
    }
    DataplaneConfig {
        workers: usize::from(args.workers),
        ttl: args.ttl,
        ttl_mode: args.ttl_mode,
        timing: args.timing,
        io: args.io,
        send: args.send,
        ring: Default::default(),
        frame_ring: netio::ring::FrameRingConfig {
            block_count: args.rx_ring_mib,
            ..Default::default()
        },
        tx_ring: netio::ring::TxRingConfig {
            frame_count: args.tx_ring_frames,
            ..Default::default()
        },
        tx_ring_idle: Duration::from_secs(args.tx_ring_idle_s),
        rx_slots: args.rx_slots as usize,
        tx_slots: args.tx_slots as usize,
        handicap_ns: args.handicap_ns,
        worker_priority: args.worker_priority,
        busy_poll: Duration::from_micros(args.busy_poll_us),
        restart: Default::default(),
        fail_hook: fail_hook(args),
        receive: true,
    }
}

/// Refuses the flags `--dataplane tc` cannot honour, and the workers' receive-side flags that
/// would silently do nothing for its program's rules (the workers receive only for theirs).
fn check_dataplane_flags(args: &RunArgs) -> anyhow::Result<()> {
    match (args.dataplane, tc_conflict(args)) {
        (Some(DataplaneKind::Tc), Some(flag)) => {
            anyhow::bail!("--dataplane tc cannot be combined with {flag}")
        }
        _ => Ok(()),
    }
}

/// The first flag that needs the worker data plane, if any.
fn tc_conflict(args: &RunArgs) -> Option<&'static str> {
    let conflicts = [
        (args.egress == EgressMode::Udp, "--egress udp"),
        (
            args.input_filter,
            "--input-filter (tc keeps its input from the host stack itself)",
        ),
        (
            args.busy_poll_us > 0,
            "--busy-poll-us (the workers receive only for the rules tc cannot forward)",
        ),
        (
            args.fail_worker_after > 0,
            "--fail-worker-after (the workers receive only for the rules tc cannot forward)",
        ),
    ];
    conflicts
        .iter()
        .find(|(set, _)| *set)
        .map(|(_, flag)| *flag)
}

/// The data plane to run, with the tc program loaded if it is tc: `--dataplane` as given, or
/// by default tc where this kernel links the program and no flag needs the workers (else the
/// workers, the reason logged).
fn choose_dataplane(args: &RunArgs) -> anyhow::Result<(DataplaneKind, Option<KernelFanoutTable>)> {
    let load = || {
        let options = ProgramOptions {
            timing: args.timing,
            // At most 1,000,000 (the flag's range).
            handicap_ns: u32::try_from(args.handicap_ns).unwrap_or(u32::MAX),
        };
        KernelFanoutTable::load(args.max_rules, options)
    };
    match args.dataplane {
        Some(DataplaneKind::User) => Ok((DataplaneKind::User, None)),
        Some(DataplaneKind::Tc) => {
            let table = load().context("--dataplane tc: loading the tcx program")?;
            Ok((DataplaneKind::Tc, Some(table)))
        }
        None => match tc_conflict(args) {
            Some(flag) => {
                tracing::info!("data plane user (the workers): {flag} needs them");
                Ok((DataplaneKind::User, None))
            }
            None => match load() {
                Ok(table) => Ok((DataplaneKind::Tc, Some(table))),
                Err(e) => {
                    tracing::warn!(
                        "data plane user (the workers): this kernel does not take the tc \
                         program ({e:#}); pass --dataplane user to choose them, --dataplane tc \
                         to make this an error"
                    );
                    Ok((DataplaneKind::User, None))
                }
            },
        },
    }
}

/// The test-only worker fault of `--fail-worker-after`, if set.
fn fail_hook(args: &RunArgs) -> Option<Arc<FailHook>> {
    if args.fail_worker_after == 0 || args.fail_worker_times == 0 {
        return None;
    }
    tracing::warn!(
        "--fail-worker-after {}: workers fail on purpose ({} time(s); test-only fault)",
        args.fail_worker_after,
        args.fail_worker_times
    );
    Some(Arc::new(FailHook::new(
        args.fail_worker_after,
        args.fail_worker_times,
    )))
}

/// The control socket's limits from the command line.
fn server_limits(args: &RunArgs) -> ServerLimits {
    ServerLimits {
        max_connections: usize::from(args.control_max_connections),
        request_timeout: Duration::from_secs(args.control_request_timeout),
        idle_timeout: Duration::from_secs(args.control_idle_timeout),
        ..ServerLimits::default()
    }
}

/// Ends the process if the cleanup after a signal takes longer than [`SHUTDOWN_BUDGET`]
/// (a stuck interface or socket must not keep a stopped relay alive); exit status 1 says the
/// cleanup was cut short. The kernel still drops the memberships with the sockets.
fn start_shutdown_watchdog() {
    let spawned = std::thread::Builder::new()
        .name("relay-shutdown-watchdog".into())
        .spawn(|| {
            std::thread::sleep(SHUTDOWN_BUDGET);
            tracing::error!(
                "cleanup did not finish within {} ms of the signal: exiting without it",
                SHUTDOWN_BUDGET.as_millis()
            );
            std::process::exit(1);
        });
    if let Err(e) = spawned {
        tracing::warn!("no shutdown watchdog thread: {e}");
    }
}

/// The control plane: rules, memberships on helper sockets, limits and modes from `args`, and
/// the tc program if that is the data plane.
fn new_relay(
    args: &RunArgs,
    limits: Limits,
    publisher: Arc<TablePublisher>,
    dataplane: &Dataplane,
    tc_program: Option<KernelFanoutTable>,
) -> anyhow::Result<Arc<Relay<KernelSockets>>> {
    let memberships = Memberships::new(
        args.membership,
        limits,
        KernelSockets {
            forced_buffer: args.helper_buffer,
        },
    );
    let mut relay = Relay::new(
        memberships,
        publisher,
        dataplane.worker_stats().to_vec(),
        args.ttl,
        args.timing,
    )
    .with_drop_probe(dataplane.drop_probe())
    .with_egress(args.egress)
    .with_limits(RelayLimits {
        max_rules: args.max_rules as usize,
        max_outputs: usize::from(args.max_outputs),
    })
    .with_ttl_mode(args.ttl_mode);
    if args.input_filter {
        let table = KernelDropTable::load(args.max_rules)
            .context("--input-filter: loading the tcx program")?;
        relay = relay.with_input_filter(InputFilter::new(Box::new(table)));
    }
    if let Some(table) = tc_program {
        let ttl = TtlPolicy::new(args.ttl, args.ttl_mode);
        let switch = dataplane.receive_switch();
        let tc = TcDataplane::new(Box::new(table), ttl)
            .with_worker_switch(Box::new(move |on| switch.set(on)));
        relay = relay.with_tc_dataplane(tc);
    }
    Ok(Arc::new(relay))
}

pub fn run(args: RunArgs) -> anyhow::Result<()> {
    let mut rules = args.rules.clone();
    if let Some(path) = &args.config {
        rules.extend(relay::config::load_config(path)?);
    }
    let strategy = args.membership;
    check_dataplane_flags(&args)?;
    let (kind, tc_program) = choose_dataplane(&args)?;
    // Register signal handlers before anything needs cleaning up.
    let mut signals = signal_hook::iterator::Signals::new([libc::SIGTERM, libc::SIGINT])
        .context("installing SIGTERM/SIGINT handlers")?;
    if let Err(e) = netio::limits::raise_open_file_limit() {
        tracing::warn!("could not raise the open-file limit: {e}");
    }
    let limits = Limits::from_proc()
        .context("reading net.ipv4.igmp_max_memberships / net.core.optmem_max")?;
    let publisher = TablePublisher::new();
    let config = DataplaneConfig {
        receive: kind == DataplaneKind::User,
        ..dataplane_config(&args)
    };
    let dataplane = Dataplane::start(config, publisher.clone())?;
    let relay = new_relay(&args, limits, publisher, &dataplane, tc_program)?;
    for (index, rule) in rules.into_iter().enumerate() {
        if let Err(e) = relay.add(rule.clone()) {
            relay.leave_all();
            dataplane.stop();
            anyhow::bail!("startup rule #{} ({rule}) failed: {e}", index + 1);
        }
    }
    let watch = match start_link_watch(&relay) {
        Ok(watch) => watch,
        Err(e) => {
            relay.leave_all();
            dataplane.stop();
            return Err(e);
        }
    };
    let server = match ControlServer::start(&args.control, relay.clone(), server_limits(&args)) {
        Ok(server) => server,
        Err(e) => {
            watch.stop();
            relay.leave_all();
            dataplane.stop();
            return Err(e);
        }
    };
    tracing::info!(
        "relay running: {} rule(s), data plane {}, {} worker(s), fanout group {}, membership {strategy}, control {}",
        relay.list().len(),
        kind.name(),
        args.workers,
        dataplane.fanout_group(),
        server.path().display()
    );
    // A worker that cannot be kept alive ends the wait below like a signal does.
    let wake = signals.handle();
    dataplane.on_fatal(move || wake.close());
    let signal = signals.forever().next();
    let fatal = dataplane.fatal();
    match (&fatal, signal) {
        (Some(_), _) => tracing::error!("a worker cannot be kept alive: shutting down"),
        (None, signal) => tracing::info!("signal {signal:?}: shutting down"),
    }
    start_shutdown_watchdog();
    watch.stop();
    server.shutdown();
    dataplane.stop();
    relay.leave_all();
    match fatal {
        Some(fatal) => Err(fatal.into()),
        None => Ok(()),
    }
}

/// Re-resolves the rules on every link or address change (and periodically); a failed
/// re-sync is logged when its error changes, not on every attempt.
fn start_link_watch(relay: &Arc<Relay<KernelSockets>>) -> anyhow::Result<LinkWatch> {
    let relay = relay.clone();
    let mut last_error: Option<String> = None;
    LinkWatch::start(WatchConfig::default(), move |trigger| {
        match relay.resync() {
            Ok(changed) => {
                if changed {
                    tracing::debug!("re-sync ({trigger:?}): rule table republished");
                }
                if last_error.take().is_some() {
                    tracing::info!("interface re-sync works again");
                }
            }
            Err(e) => {
                let error = e.to_string();
                if last_error.as_ref() != Some(&error) {
                    tracing::warn!("interface re-sync failed (retried): {error}");
                    last_error = Some(error);
                }
            }
        }
    })
    .context("starting the interface watcher")
}

#[cfg(test)]
mod tests {
    use super::{RunArgs, parse_size};
    use clap::{Parser, ValueEnum};
    use relay::dataplane::{IoBackend, SendBackend};
    use relay::udp_egress::EgressMode;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn io_and_egress_parse_from_their_value_enum_names() {
        let args = Cli::try_parse_from(["relay"]).unwrap().run;
        assert_eq!(
            (args.io, args.egress),
            (IoBackend::Ring, EgressMode::Packet)
        );
        let args = Cli::try_parse_from(["relay", "--io", "uring", "--egress", "udp"])
            .unwrap()
            .run;
        assert_eq!((args.io, args.egress), (IoBackend::Uring, EgressMode::Udp));
        assert!(Cli::try_parse_from(["relay", "--io", "recvmmsg"]).is_err());
        assert_eq!(args.send, SendBackend::Ring, "transmit rings by default");
        for (name, backend) in [("uring", SendBackend::Uring), ("mmsg", SendBackend::Mmsg)] {
            let args = Cli::try_parse_from(["relay", "--send", name]).unwrap().run;
            assert_eq!(args.send, backend);
        }
        assert!(Cli::try_parse_from(["relay", "--send", "xdp"]).is_err());
        for io in IoBackend::value_variants() {
            let name = io.to_possible_value().unwrap();
            let json = serde_json::to_string(io).unwrap();
            assert_eq!(
                json,
                format!("\"{}\"", name.get_name()),
                "serde and clap agree"
            );
        }
    }

    #[test]
    fn ttl_mode_defaults_to_decrement() {
        use relay::ttl::TtlMode;
        let args = Cli::try_parse_from(["relay"]).unwrap().run;
        assert_eq!(args.ttl_mode, TtlMode::Decrement);
        let args = Cli::try_parse_from(["relay", "--ttl-mode", "set"])
            .unwrap()
            .run;
        assert_eq!(args.ttl_mode, TtlMode::Set);
        assert!(Cli::try_parse_from(["relay", "--ttl-mode", "fixed"]).is_err());
    }

    #[test]
    fn busy_polling_is_off_by_default_and_bounded() {
        let config = super::dataplane_config(&Cli::try_parse_from(["relay"]).unwrap().run);
        assert_eq!(config.busy_poll, std::time::Duration::ZERO);
        let args = Cli::try_parse_from(["relay", "--busy-poll-us", "50"])
            .unwrap()
            .run;
        let config = super::dataplane_config(&args);
        assert_eq!(config.busy_poll, std::time::Duration::from_micros(50));
        assert!(Cli::try_parse_from(["relay", "--busy-poll-us", "100001"]).is_err());
        assert!(Cli::try_parse_from(["relay", "--busy-poll-us", "-1"]).is_err());
    }

    #[test]
    fn ring_sizes_default_to_the_measured_ones_and_are_bounded() {
        let config = super::dataplane_config(&Cli::try_parse_from(["relay"]).unwrap().run);
        assert_eq!(
            (config.frame_ring.block_count, config.tx_ring.frame_count),
            (32, 256)
        );
        let args = Cli::try_parse_from(["relay", "--rx-ring-mib", "4", "--tx-ring-frames", "64"])
            .unwrap()
            .run;
        let config = super::dataplane_config(&args);
        assert_eq!(
            (config.frame_ring.block_count, config.tx_ring.frame_count),
            (4, 64)
        );
        assert_eq!(config.frame_ring.block_size, 1 << 20, "1 MiB blocks");
        assert!(Cli::try_parse_from(["relay", "--rx-ring-mib", "0"]).is_err());
        assert!(Cli::try_parse_from(["relay", "--rx-ring-mib", "1025"]).is_err());
        assert!(Cli::try_parse_from(["relay", "--tx-ring-frames", "7"]).is_err());
    }

    #[test]
    fn idle_transmit_rings_close_after_30_s_by_default_and_the_period_is_bounded() {
        let config = super::dataplane_config(&Cli::try_parse_from(["relay"]).unwrap().run);
        assert_eq!(config.tx_ring_idle, std::time::Duration::from_secs(30));
        let args = Cli::try_parse_from(["relay", "--tx-ring-idle-s", "2"])
            .unwrap()
            .run;
        let config = super::dataplane_config(&args);
        assert_eq!(config.tx_ring_idle, std::time::Duration::from_secs(2));
        assert!(Cli::try_parse_from(["relay", "--tx-ring-idle-s", "0"]).is_err());
        assert!(Cli::try_parse_from(["relay", "--tx-ring-idle-s", "86401"]).is_err());
    }

    #[test]
    fn tc_refuses_what_it_cannot_do_and_worker_receive_flags_that_would_do_nothing() {
        let check = |flags: &[&str]| {
            let argv = [&["relay", "--dataplane", "tc"], flags].concat();
            super::check_dataplane_flags(&Cli::try_parse_from(argv).unwrap().run)
                .map_err(|e| e.to_string())
        };
        assert!(check(&[]).is_ok());
        assert!(check(&["--timing"]).is_ok(), "the program times itself");
        assert!(
            check(&["--handicap-ns", "1200"]).is_ok(),
            "the program waits it out per datagram"
        );
        for (flags, named) in [
            (&["--egress", "udp"][..], "--egress udp"),
            (&["--input-filter"], "--input-filter"),
            (&["--busy-poll-us", "50"], "--busy-poll-us"),
            (&["--fail-worker-after", "10"], "--fail-worker-after"),
        ] {
            let err = check(flags).unwrap_err();
            assert!(err.contains(named), "{flags:?}: {err}");
            assert!(
                err.starts_with("--dataplane tc cannot be combined with"),
                "{err}"
            );
        }
        // The user data plane takes them all.
        let user = Cli::try_parse_from(["relay", "--handicap-ns", "1200", "--busy-poll-us", "5"])
            .unwrap()
            .run;
        assert!(super::check_dataplane_flags(&user).is_ok());
    }

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("8M"), Ok(8 << 20));
        assert_eq!(parse_size("425K"), Ok(425 << 10));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("0").is_err());
        assert!(parse_size("8X").is_err());
        assert!(
            parse_size("4G").is_err(),
            "larger than an int socket option"
        );
    }
}
