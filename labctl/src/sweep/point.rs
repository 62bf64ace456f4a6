//! One point of a sweep: topology up, receive steering, system up with its rules, bounded
//! traffic with one counting sink per link, kernel counters and the machine's CPU around it,
//! optional zero-loss search, topology down. Every failure becomes the point's status; nothing
//! here aborts the sweep.

use super::exclusive::MeasureLock;
use super::join_delay;
use super::sample::Sampler;
use super::traffic::{self, Traffic};
use super::zero_loss;
use crate::definition::Definition;
use crate::placement::Placement;
use crate::process::loadgen::SendRate;
use crate::results::{Ceiling, LossyProbe, PointResult, Status};
use crate::scenario::{Point, Scenario, SystemKind, TopologyKind, ZeroLossSearch};
use crate::systems::{self, Layout, StartError, SystemSpec};
use crate::topology::{Role, Template, Topology, TopologyOptions};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Sinks stop by themselves after this long without packets (once traffic started): a fallback,
/// labctl stops them when the links are drained.
const SINK_IDLE: Duration = Duration::from_secs(5);

/// Prefix of the note that names a point's topology run id.
pub const TOPOLOGY_NOTE: &str = "topology run id ";

/// What every point of a sweep shares: the scenario, the CPU placement, the measured ceilings,
/// the relay builds given on the command line and the loaded system definitions.
#[derive(Debug, Clone, Copy)]
pub struct Bench<'a> {
    pub scenario: &'a Scenario,
    pub placement: &'a Placement,
    pub ceilings: &'a [Ceiling],
    /// `labctl run --build NAME=PATH`: relay binaries that override `[builds.NAME] relay`.
    pub build_paths: &'a BTreeMap<String, PathBuf>,
    /// Definitions of the scenario's defined systems, by the name the scenario gives.
    pub definitions: &'a Definitions,
}

/// Loaded definitions by name.
pub type Definitions = BTreeMap<String, Arc<Definition>>;

/// Loads the definition of every defined system of `scenario`.
pub fn load_definitions(scenario: &Scenario) -> Result<Definitions> {
    let mut out = Definitions::new();
    for name in scenario
        .systems
        .iter()
        .filter_map(|s| s.definition.as_deref())
    {
        out.insert(name.to_owned(), Arc::new(Definition::find(name)?));
    }
    Ok(out)
}

impl<'a> Bench<'a> {
    /// What to start for `point`'s system: its kind and, for a relay build, binary and args.
    pub fn system_spec(&self, point: &Point) -> SystemSpec {
        let mut spec = SystemSpec::of(point.system.kind);
        spec.definition = point
            .system
            .definition
            .as_ref()
            .and_then(|name| self.definitions.get(name).cloned());
        if let Some(name) = &point.system.build {
            let build = self.scenario.build_of(&point.system);
            spec.relay_binary = self
                .build_paths
                .get(name)
                .cloned()
                .or_else(|| build.and_then(|b| b.relay.clone()));
            spec.relay_args = build.map(|b| b.args.clone()).unwrap_or_default();
        }
        if self.scenario.timing && point.system.kind.is_relay() {
            spec.relay_args.push("--timing".to_owned());
        }
        spec
    }

    /// The isolated ceiling (aggregate pps) for a payload size, if measured.
    pub fn ceiling(&self, size: u32) -> Option<f64> {
        self.ceilings
            .iter()
            .find(|c| c.size == size)
            .and_then(|c| c.pps)
    }
}

/// The topology template of a point.
pub fn template_of(scenario: &Scenario, point: &Point) -> Result<Template> {
    if point.system.kind == SystemKind::Direct {
        return Ok(Template::Direct);
    }
    if point.fanout > 1 {
        let k = u8::try_from(point.fanout)
            .ok()
            .filter(|k| *k <= crate::topology::MAX_FANOUT)
            .with_context(|| {
                format!(
                    "fan-out {} is above the topology's maximum {}",
                    point.fanout,
                    crate::topology::MAX_FANOUT
                )
            })?;
        return Ok(Template::Fanout(k));
    }
    Ok(match scenario.topology {
        TopologyKind::Chain => Template::Chain,
        TopologyKind::Snooping => Template::Snooping,
    })
}

/// Measures one point; the caller holds the machine's measurement lock (`_held`). Never panics
/// on system failures: they become the status.
pub fn measure(bench: &Bench<'_>, point: &Point, _held: &MeasureLock) -> PointResult {
    let (direct_placement, direct_bench);
    let bench = if point.system.kind == SystemKind::Direct {
        direct_placement = bench.placement.for_direct();
        direct_bench = Bench {
            placement: &direct_placement,
            ..*bench
        };
        &direct_bench
    } else {
        bench
    };
    match measure_inner(bench, point) {
        Ok(mut r) if point.system.kind == SystemKind::Direct && bench.placement.is_applied() => {
            r.notes.push(format!(
                "direct: no system, so the sink ran on the system's CPUs {:?} (the sender on {:?}): \
                 the sender's and the link's limit, not one CPU shared by sender and sink",
                bench.placement.sut_cpus, bench.placement.sender.cpus
            ));
            r
        }
        Ok(r) => r,
        Err(Outcome::Skipped(reason)) => {
            PointResult::empty(point.clone(), Status::Skipped { reason })
        }
        Err(Outcome::Failed(e)) => PointResult::empty(
            point.clone(),
            Status::Failed {
                reason: format!("{e:#}"),
            },
        ),
    }
}

enum Outcome {
    Skipped(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Outcome {
    fn from(e: anyhow::Error) -> Self {
        Outcome::Failed(e)
    }
}

fn measure_inner(bench: &Bench<'_>, point: &Point) -> Result<PointResult, Outcome> {
    // Skip before building anything when a tool is missing or the system cannot do the point.
    let spec = bench.system_spec(point);
    systems::preflight(&spec, point.fanout).map_err(|e| match e {
        StartError::Skip(reason) => Outcome::Skipped(reason),
        StartError::Failed(e) => Outcome::Failed(e),
    })?;

    let scenario = bench.scenario;
    let template = template_of(scenario, point)?;
    let mut opts = TopologyOptions::new(template);
    if point.system.kind != SystemKind::Direct {
        for (k, v) in scenario
            .sysctls_for(&point.variant)
            .into_iter()
            .chain(systems::required_sysctls(&spec))
        {
            opts.sysctls.push((Role::Relay, k, v));
        }
    }
    let topology = Topology::up(&opts).context("building the topology")?;
    let result = bench
        .placement
        .steer(&topology)
        .context("steering receive processing (RPS)")
        .map_err(Outcome::Failed)
        .and_then(|()| with_topology(bench, point, &topology));
    let down = topology.down();
    let mut result = result?;
    if let Err(e) = down {
        result.notes.push(format!("topology teardown: {e:#}"));
    }
    Ok(result)
}

fn with_topology(
    bench: &Bench<'_>,
    point: &Point,
    topology: &Topology,
) -> Result<PointResult, Outcome> {
    let spec = bench.system_spec(point);
    let mut layout = Layout::new(point.system.kind, topology, point.streams, point.fanout);
    layout.system_placement = bench.placement.system.clone();
    if let Some(def) = &spec.definition {
        layout.same_group = !def.can().rename;
    }
    let mut system = match systems::start(&spec, &layout) {
        Ok(s) => s,
        Err(StartError::Skip(reason)) => return Err(Outcome::Skipped(reason)),
        Err(StartError::Failed(e)) => {
            return Err(Outcome::Failed(
                e.context(format!("starting {}", point.system)),
            ));
        }
    };
    let mut result = PointResult::empty(point.clone(), Status::Ok);
    result.notes.push(format!(
        "{TOPOLOGY_NOTE}{} ({})",
        topology.run_id(),
        topology.template()
    ));
    let scenario = bench.scenario;
    let probe_only = scenario.capacity.as_ref().is_some_and(|c| !c.send_traffic);
    let installed = install_rules(bench, point, &layout, &mut system, probe_only, &mut result);
    result.notes.extend(system.notes.iter().cloned());
    if installed.is_ok() && !probe_only {
        if system.joins() {
            wait_switch_open(topology, &layout, &mut result);
        } else if topology.template() == Template::Snooping {
            result.notes.push(format!(
                "{} does not join its input groups (can.joins = false): behind the snooping switch it gets only what the switch floods",
                point.system
            ));
        }
    }

    let measured = match installed {
        Err(e) => Err(e),
        Ok(()) if probe_only => Sampler::start(system.pids(), Vec::new())
            .context("starting the /proc sampler")
            .map(|sampler| {
                std::thread::sleep(Duration::from_millis(300));
                let (usage, _) = sampler.finish();
                result.usage = Some(usage);
            }),
        Ok(()) => measure_traffic(bench, point, &layout, &mut system, &mut result),
    };
    let died = system.stop();
    measured?;
    if let Some(died) = died {
        result.status = Status::Failed {
            reason: format!("{} died during the point: {died}", point.system),
        };
    }
    Ok(result)
}

/// Installs every rule of the point; unless the scenario turns it off, `probe_only` or
/// `direct`, the last ones are timed for the join delay (with a probe sender already sending).
/// Records capacity and join delay.
fn install_rules(
    bench: &Bench<'_>,
    point: &Point,
    layout: &Layout,
    system: &mut systems::Running,
    probe_only: bool,
    result: &mut PointResult,
) -> Result<()> {
    let timed = if probe_only
        || !bench.scenario.join_delay
        || point.system.kind == SystemKind::Direct
        || !system.can_add_live()
    {
        point.streams..point.streams
    } else {
        join_delay::sample(point.streams)
    };
    system
        .install(layout, 0..timed.start, false)
        .context("installing the rules")?;
    if !timed.is_empty() {
        // Let the bulk's memberships settle (socat joins asynchronously) before timing.
        system.capacity(layout).context("waiting for the joins")?;
        let (delays, notes) = join_delay::measure(system, layout, timed, bench.placement)
            .context("measuring the join delay")?;
        result.join_delay_ms = delays.as_ref().map(|d| d.median_ms);
        result.join_delay_max_ms = delays.as_ref().map(|d| d.max_ms);
        result.notes.extend(notes);
    }
    result.capacity = system.capacity(layout).context("reading the capacity")?;
    Ok(())
}

/// On a snooping switch a system's joins only count once the switch has learned them: waits
/// (bounded: 10 s a group) until the switch forwards the first
/// and the last joined input group to the relay namespace, so that traffic does not start into
/// a switch that still drops it and charge those packets to the system (seen: 10 of 6000 lost
/// before the relay's interface at a point's start). A group never forwarded is noted, and the
/// point goes on. No switch, nothing to wait for.
fn wait_switch_open(topology: &Topology, layout: &Layout, result: &mut PointResult) {
    if topology.template() != Template::Snooping {
        return;
    }
    let joined = result
        .capacity
        .as_ref()
        .map_or(layout.streams, |c| c.accepted)
        .min(layout.streams);
    if joined == 0 {
        return;
    }
    let last = (joined > 1).then_some(joined - 1);
    for i in std::iter::once(0).chain(last) {
        if let Err(e) = topology.wait_group_forwarded(layout.input_group(i)) {
            result.notes.push(format!("snooping switch: {e:#}"));
            return;
        }
    }
}

fn measure_traffic(
    bench: &Bench<'_>,
    point: &Point,
    layout: &Layout,
    system: &mut systems::Running,
    result: &mut PointResult,
) -> Result<()> {
    let scenario = &bench.scenario.for_point(point);
    let pids = system.pids();
    let run = traffic::Run {
        layout,
        system_pids: &pids,
        placement: bench.placement,
        rate: SendRate::PerStream(point.rate_pps),
        size: point.size,
        duration: Duration::from_secs_f64(scenario.duration_s),
        sink_idle: SINK_IDLE,
        counting_sinks: scenario.counting_sinks.unwrap_or(u32::MAX),
    };
    let t = traffic::run(run)?;
    record_traffic(bench, point, &t, result);
    // Empty unless the relay runs with --timing (`timing = true`, or a build's args).
    result.stage_timing = system
        .stage_timing()
        .context("reading the relay's stage timing")?;
    if let Some(z) = &scenario.zero_loss {
        search_zero_loss(scenario, z, run, result)?;
    }
    Ok(())
}

/// The point's zero-loss search, each probe a traffic run of `run` at an aggregate rate; the
/// lowest lossy probe is kept with the reason it was lossy.
fn search_zero_loss(
    scenario: &Scenario,
    z: &ZeroLossSearch,
    run: traffic::Run<'_>,
    result: &mut PointResult,
) -> Result<()> {
    let probe_run = traffic::Run {
        duration: Duration::from_secs_f64(z.duration_s.unwrap_or(scenario.duration_s)),
        ..run
    };
    let mut lossy: Vec<LossyProbe> = Vec::new();
    let mut found = zero_loss::search(z.min_pps, z.max_pps, z.resolution, |total| {
        let t = traffic::run(traffic::Run {
            rate: SendRate::Total(total),
            ..probe_run
        })?;
        // The system's latency (to the sinks' interfaces) when the sinks measured it: the
        // end-to-end one adds the sinks' host, which shares the load generator's busy CPU.
        let judged_latency = t.interface_latency.or(t.latency);
        let queued = match (z.max_p99_ms, judged_latency) {
            (Some(ms), Some(latency)) => latency.p99 as f64 > ms * 1e6,
            _ => false,
        };
        let (probe, because) = t
            .probe(
                total,
                scenario.loss_threshold,
                scenario.generator_min_fraction,
            )
            .judged(queued);
        if let Some(because) = because {
            lossy.push(LossyProbe {
                asked_pps: total,
                because,
                system_loss: t.system_loss(),
                p99_ns: t.latency.map(|l| l.p99),
                interface_p99_ns: t.interface_latency.map(|l| l.p99),
            });
        }
        Ok(probe)
    })?;
    if let Some(found) = found.as_mut() {
        found.upper = found
            .lossy_pps
            .and_then(|hi| lossy.iter().find(|l| l.asked_pps == hi).copied());
    }
    if let Some(ms) = z.max_p99_ms {
        result.notes.push(format!(
            "zero-loss search: a probe whose p99 latency to the sinks' interfaces (end to end \
             where the sinks had no kernel timestamps) exceeded {ms} ms counted as lossy \
             (traffic that queued up instead of flowing through)"
        ));
    }
    if found.is_none() {
        result.notes.push(format!(
            "zero-loss search: loss above the threshold already at {} pps",
            z.min_pps
        ));
    }
    result.zero_loss = found;
    Ok(())
}

/// Fills the point from its main traffic run and decides its status: `generator_bound` when
/// the sender fell short of the asked rate, `sink_bound` when the sink's host dropped packets.
fn record_traffic(bench: &Bench<'_>, point: &Point, t: &Traffic, result: &mut PointResult) {
    let scenario = bench.scenario;
    result.offered = t.offered();
    result.delivered = t.delivered();
    result.sink_lost = t.sink_lost;
    result.duplicates = t.duplicates;
    result.reordered = t.reordered;
    result.sent_pps = Some(t.sent_pps);
    result.latency_ns = t.latency;
    result.interface_latency_ns = t.interface_latency;
    result.links = t.links.clone();
    result.counters = Some(t.counters.clone());
    result.cpu = t.cpu.clone();
    if point.system.kind != SystemKind::Direct {
        result.usage = Some(t.usage);
    }
    result.derive();
    let asked = point.total_pps();
    if t.sent_pps < scenario.generator_min_fraction * asked {
        result.status = Status::GeneratorBound {
            reason: format!(
                "the sender reached {:.0} of the {asked:.0} pps asked ({:.1} %): less load was offered than the point names",
                t.sent_pps,
                t.sent_pps * 100.0 / asked
            ),
        };
    } else if t.sink_loss() > scenario.loss_threshold {
        result.status = Status::SinkBound {
            reason: format!(
                "the sinks' host dropped {} of {} packets ({:.2} %) before counting them: the lab's limit, not the system's",
                t.sink_lost,
                t.offered(),
                t.sink_loss() * 100.0
            ),
        };
    }
    for m in &t.counters.mismatches {
        result.notes.push(format!("cross-check: {m}"));
    }
    let by_interface = t.links.iter().filter(|l| l.interface_counted).count();
    if by_interface > 0 {
        result.notes.push(format!(
            "{by_interface} of {} links counted by their interfaces' rx_packets (counting_sinks = \
             {}): delivered there is what the system put on the link; duplicates, order and \
             latency come from the counting sink(s)",
            t.links.len(),
            t.links.len() - by_interface
        ));
    }
    let output_rate = asked * f64::from(layout_outputs(point));
    if let Some(ceiling) = bench.ceiling(point.size)
        && output_rate > ceiling
    {
        result.notes.push(format!(
            "above the isolated ceiling: {output_rate:.0} pps at the sinks asked, the load generator alone sustains {ceiling:.0} pps"
        ));
    }
}

/// Outputs per input packet at the sinks: the fan-out (1 for direct).
fn layout_outputs(point: &Point) -> u32 {
    if point.system.kind == SystemKind::Direct {
        1
    } else {
        point.fanout
    }
}
