//! "Where the time goes": the relay's per-stage timing (`timing = true` in the scenario, which
//! runs this project's relay with `--timing`), one chart per relay system and a table.
//!
//! The work stages (parse, lookup, fan-out: building and queueing every output, submit: the
//! io_uring call in which the kernel sends them) are drawn as CPU time per input frame: a
//! stage's total (samples x mean) divided by the frames parsed. Submit is timed per round, so
//! its share per frame is the round's time spread over the round's frames. Receive (kernel
//! stamp -> worker) and completion (queued -> completion reaped) are delays, not work: they are
//! in the table only.

use super::charts::{Chart, Datum, Series};
use super::{escape, format_number};
use crate::results::{PointResult, Results, StageTime};
use crate::scenario::{PointKey, System};
use std::fmt::Write;

/// Stages drawn as per-frame work, in pipeline order.
const WORK_STAGES: [&str; 4] = ["parse", "lookup", "fanout_copy", "submit"];
/// Every stage, in the table's order.
const ALL_STAGES: [&str; 6] = [
    "receive",
    "parse",
    "lookup",
    "fanout_copy",
    "submit",
    "completion",
];

/// One point's timing over its repeats: per stage (samples, total ns, mean of p50, mean of p99).
struct Work {
    key: PointKey,
    stages: Vec<(String, u64, f64, f64, f64)>,
}

impl Work {
    fn stage(&self, name: &str) -> Option<&(String, u64, f64, f64, f64)> {
        self.stages.iter().find(|s| s.0 == name)
    }

    /// Frames the worker parsed (each is timed once in `parse`).
    fn frames(&self) -> u64 {
        self.stage("parse").map_or(0, |s| s.1)
    }

    /// CPU nanoseconds per input frame spent in a work stage.
    fn per_frame_ns(&self, name: &str) -> Option<f64> {
        let frames = self.frames();
        let (_, _, total, _, _) = self.stage(name)?;
        (frames > 0).then(|| total / frames as f64)
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
         builds and sends every output, timed per round). Timing itself costs time: these runs \
         are for the picture, not for the throughput verdicts.</p>\n",
    );
    let mut systems: Vec<&System> = works.iter().map(|w| &w.key.system).collect();
    systems.dedup();
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

/// Per stage over the repeats: samples summed, total ns summed, p50 and p99 averaged.
fn merged(repeats: &[&PointResult]) -> Vec<(String, u64, f64, f64, f64)> {
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
            let n = of.len() as f64;
            let samples = of.iter().map(|s| s.samples).sum();
            let total = of.iter().map(|s| s.mean * s.samples as f64).sum();
            let p50 = of.iter().map(|s| s.p50 as f64).sum::<f64>() / n;
            let p99 = of.iter().map(|s| s.p99 as f64).sum::<f64>() / n;
            Some((name.to_owned(), samples, total, p50, p99))
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
               the round's frames; fan-out copy: building and queueing every output"
            .to_owned(),
        x_names: works.iter().map(|w| w.label()).collect(),
    }
}

fn table(works: &[&Work]) -> String {
    let mut h = String::from(
        "<table><tr><th>work</th><th>rate (pps per stream)</th><th>stage</th><th>samples</th>\
         <th>ns per input frame</th><th>p50 ns</th><th>p99 ns</th></tr>\n",
    );
    for w in works {
        for (name, samples, _, p50, p99) in &w.stages {
            let per_frame = if WORK_STAGES.contains(&name.as_str()) {
                w.per_frame_ns(name).map_or("-".to_owned(), format_number)
            } else {
                "(delay)".to_owned()
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{samples}</td><td>{per_frame}</td>\
                 <td>{}</td><td>{}</td></tr>",
                escape(&w.label()),
                format_number(w.key.rate_pps),
                escape(name),
                format_number(*p50),
                format_number(*p99),
            );
        }
    }
    h.push_str("</table>\n");
    h
}
