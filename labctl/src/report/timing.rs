//! "Where the time goes": the relay's per-stage timing (`timing = true` in the scenario, which
//! runs this project's relay with `--timing`), one chart per relay system and a table.
//!
//! The work stages (parse, lookup, fan-out: building and queueing every output, submit: the
//! io_uring call in which the kernel sends them) are drawn as CPU time per input frame: a
//! stage's total (samples x mean) divided by the frames parsed. Submit is timed per round, so
//! its share per frame is the round's time spread over the round's frames. Receive (kernel
//! stamp -> worker) and completion (queued -> completion reaped) are delays, not work: they are
//! in the table only.
//!
//! The tc data plane (`--dataplane tc --timing`) times two stages inside its program, as sums
//! (mean only, no percentiles): `tc_lookup` (the frame's checks and the rule's lookup) and
//! `tc_fanout` (every output's header and checksum, and the clones handed to their
//! interfaces), per datagram the program took.

use super::charts::{Chart, Datum, Series};
use super::{escape, format_number};
use crate::results::{PointResult, Results, StageTime};
use crate::scenario::{PointKey, System};
use std::fmt::Write;

/// Stages drawn as per-frame work, in pipeline order (the workers', then the tc program's).
const WORK_STAGES: [&str; 6] = [
    "parse",
    "lookup",
    "fanout_copy",
    "submit",
    "tc_lookup",
    "tc_fanout",
];
/// Every stage, in the table's order.
const ALL_STAGES: [&str; 8] = [
    "receive",
    "parse",
    "lookup",
    "fanout_copy",
    "submit",
    "completion",
    "tc_lookup",
    "tc_fanout",
];
/// The stage timed once per input frame: the workers' parse, or the tc program's lookup.
const FRAME_STAGES: [&str; 2] = ["parse", "tc_lookup"];

/// One stage of a point over its repeats.
struct StageTotal {
    name: String,
    samples: u64,
    total_ns: f64,
    /// Means over the repeats of the stage's p50 and p99; `None` for a stage timed as a sum.
    p50: Option<f64>,
    p99: Option<f64>,
}

/// One point's timing over its repeats.
struct Work {
    key: PointKey,
    stages: Vec<StageTotal>,
}

impl Work {
    fn stage(&self, name: &str) -> Option<&StageTotal> {
        self.stages.iter().find(|s| s.name == name)
    }

    /// Frames the data plane took (each is timed once in `parse` or `tc_lookup`).
    fn frames(&self) -> u64 {
        FRAME_STAGES
            .iter()
            .find_map(|name| self.stage(name))
            .map_or(0, |s| s.samples)
    }

    /// CPU nanoseconds per input frame spent in a work stage.
    fn per_frame_ns(&self, name: &str) -> Option<f64> {
        let frames = self.frames();
        let stage = self.stage(name)?;
        (frames > 0).then(|| stage.total_ns / frames as f64)
    }

    fn label(&self) -> String {
        format!("{} x fo{}", self.key.streams, self.key.fanout)
    }
}

/// The section (empty when no point has timing).
pub fn section(r: &Results) -> String {
    let works = works(r);
    if works.is_empty() {
        return String::new();
    }
    let mut h = String::from("<h2>Where the time goes</h2>\n");
    h.push_str(
        "<p>This project's relay ran with <code>--timing</code>: each stage of its per-frame \
         work is timed. The chart shows CPU time per input frame of the work stages (a stage's \
         total over the frames parsed; <em>submit</em> is the io_uring call in which the kernel \
         builds and sends every output, timed per round). With <code>--dataplane tc</code> the \
         program times itself: <em>tc lookup</em> (checks and the rule's lookup) and <em>tc \
         fanout</em> (every output's header and the clones handed to the interfaces), as sums \
         (means, no percentiles). Timing itself costs time: these runs are for the picture, not \
         for the throughput verdicts.</p>\n",
    );
    // Each timed system once, in the order of its first point (the systems take turns).
    let mut systems: Vec<&System> = Vec::new();
    for w in &works {
        if !systems.contains(&&w.key.system) {
            systems.push(&w.key.system);
        }
    }
    for system in systems {
        let mine: Vec<&Work> = works.iter().filter(|w| &w.key.system == system).collect();
        h.push_str("<figure>");
        h.push_str(&chart(system, &mine).to_html());
        h.push_str("</figure>\n");
        h.push_str(&table(&mine));
    }
    h
}

fn works(r: &Results) -> Vec<Work> {
    let mut keys: Vec<PointKey> = Vec::new();
    for p in r.points.iter().filter(|p| !p.stage_timing.is_empty()) {
        if !keys.contains(&p.point.key()) {
            keys.push(p.point.key());
        }
    }
    keys.into_iter()
        .map(|key| {
            let repeats: Vec<&PointResult> =
                r.points.iter().filter(|p| p.point.key() == key).collect();
            Work {
                stages: merged(&repeats),
                key,
            }
        })
        .collect()
}

/// Per stage over the repeats: samples summed, total ns summed, p50 and p99 averaged (over the
/// repeats that have them).
fn merged(repeats: &[&PointResult]) -> Vec<StageTotal> {
    ALL_STAGES
        .iter()
        .filter_map(|&name| {
            let of: Vec<&StageTime> = repeats
                .iter()
                .flat_map(|p| p.stage_timing.iter().filter(|s| s.stage == name))
                .filter(|s| s.samples > 0)
                .collect();
            if of.is_empty() {
                return None;
            }
            let mean_of = |values: Vec<f64>| {
                (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
            };
            Some(StageTotal {
                name: name.to_owned(),
                samples: of.iter().map(|s| s.samples).sum(),
                total_ns: of.iter().map(|s| s.mean * s.samples as f64).sum(),
                p50: mean_of(of.iter().filter_map(|s| s.p50).map(|v| v as f64).collect()),
                p99: mean_of(of.iter().filter_map(|s| s.p99).map(|v| v as f64).collect()),
            })
        })
        .collect()
}

fn chart(system: &System, works: &[&Work]) -> Chart {
    let series = WORK_STAGES
        .iter()
        .map(|&stage| Series {
            label: stage.replace('_', " "),
            data: works
                .iter()
                .enumerate()
                .filter_map(|(i, w)| {
                    Some(Datum {
                        x: i as f64,
                        y: w.per_frame_ns(stage)?,
                        ..Datum::default()
                    })
                })
                .collect(),
        })
        .collect();
    Chart {
        title: format!("Where {system}'s time goes: CPU ns per input frame, by stage"),
        x_label: "streams x fan-out".to_owned(),
        y_label: "ns per input frame".to_owned(),
        series,
        from_zero: true,
        note: "submit: the kernel's send of every output (io_uring), per round, spread over \
               the round's frames; fan-out copy: building and queueing every output; tc lookup / \
               tc fanout (--dataplane tc): the program's checks and rule lookup / every \
               output's header and the clones handed to the interfaces (the last output's send \
               is after the program)"
            .to_owned(),
        x_names: works.iter().map(|w| w.label()).collect(),
    }
}

fn table(works: &[&Work]) -> String {
    let mut h = String::from(
        "<table><tr><th>work</th><th>rate (pps per stream)</th><th>stage</th><th>samples</th>\
         <th>ns per input frame</th><th>p50 ns</th><th>p99 ns</th></tr>\n",
    );
    let percentile = |v: Option<f64>| v.map_or("-".to_owned(), format_number);
    for w in works {
        for stage in &w.stages {
            let name = &stage.name;
            let per_frame = if WORK_STAGES.contains(&name.as_str()) {
                w.per_frame_ns(name).map_or("-".to_owned(), format_number)
            } else {
                "(delay)".to_owned()
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{per_frame}</td>\
                 <td>{}</td><td>{}</td></tr>",
                escape(&w.label()),
                format_number(w.key.rate_pps),
                escape(name),
                stage.samples,
                percentile(stage.p50),
                percentile(stage.p99),
            );
        }
    }
    h.push_str("</table>\n");
    h
}
