//! The load generator's own ceiling under the run's CPU placement: the highest aggregate rate the
//! sender reaches (>= the scenario's `generator_min_fraction` of the asked rate) with the sink
//! counting all but `loss_threshold` of it, on the `direct` topology (no system under test).
//! Points that ask for more output than this measure the lab, not the system; the report marks
//! them. Measured once per payload size at the scenario's largest stream count.

use super::traffic;
use super::zero_loss::{self, Probe};
use crate::placement::Placement;
use crate::process::loadgen::SendRate;
use crate::results::Ceiling;
use crate::scenario::{Scenario, SystemKind};
use crate::systems::Layout;
use crate::topology::{Template, Topology, TopologyOptions};
use anyhow::{Context, Result};
use std::time::Duration;

/// Lowest and highest aggregate rates tried.
const MIN_PPS: f64 = 5_000.0;
const MAX_PPS: f64 = 2_000_000.0;
/// Bracket width at which the calibration stops.
const RESOLUTION: f64 = 0.08;
/// Seconds per probe.
const PROBE: Duration = Duration::from_secs(1);
const SINK_IDLE: Duration = Duration::from_secs(5);

/// One ceiling per payload size of the scenario.
pub fn measure(scenario: &Scenario, placement: &Placement) -> Vec<Ceiling> {
    let streams = scenario.most_streams();
    scenario
        .sizes()
        .into_iter()
        .map(|size| match measure_one(scenario, placement, streams, size) {
            Ok(Some(pps)) => Ceiling {
                size,
                streams,
                pps: Some(pps),
                note: format!(
                    "direct topology, {streams} streams, {size}-byte payloads, probes of {}s, resolution {:.0} %",
                    PROBE.as_secs_f64(),
                    RESOLUTION * 100.0
                ),
            },
            Ok(None) => Ceiling {
                size,
                streams,
                pps: None,
                note: format!("the sink lost packets already at {MIN_PPS} pps"),
            },
            Err(e) => Ceiling {
                size,
                streams,
                pps: None,
                note: format!("calibration failed: {e:#}"),
            },
        })
        .collect()
}

fn measure_one(
    scenario: &Scenario,
    placement: &Placement,
    streams: u32,
    size: u32,
) -> Result<Option<f64>> {
    let _lock = super::exclusive::MeasureLock::acquire()?;
    let topology = Topology::up(&TopologyOptions::new(Template::Direct))
        .context("building the calibration topology")?;
    let found = placement
        .steer(&topology)
        .context("steering receive processing (RPS)")
        .and_then(|()| {
            let layout = Layout::new(SystemKind::Direct, &topology, streams, 1);
            let run = traffic::Run {
                layout: &layout,
                system_pids: &[],
                placement,
                rate: SendRate::Total(MIN_PPS),
                size,
                duration: PROBE,
                sink_idle: SINK_IDLE,
                counting_sinks: u32::MAX,
            };
            zero_loss::search(MIN_PPS, MAX_PPS, RESOLUTION, |total| {
                let t = traffic::run(traffic::Run {
                    rate: SendRate::Total(total),
                    ..run
                })?;
                // For the lab itself, falling short is failing.
                let probe = t.probe(
                    total,
                    scenario.loss_threshold,
                    scenario.generator_min_fraction,
                );
                Ok(match probe {
                    Probe::Pass { .. } => probe,
                    other => Probe::Fail {
                        achieved: other.achieved(),
                    },
                })
            })
        });
    let down = topology.down();
    let found = found?;
    down.context("removing the calibration topology")?;
    Ok(found.map(|z| z.pps))
}
