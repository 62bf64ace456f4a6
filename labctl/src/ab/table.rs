//! The A/B comparison as a terminal table: per point, per metric, A's and B's means, B's change
//! with its 95 % interval, and the verdict.

use super::verdict::MAX_PAIRS_ESTIMATE;
use super::{AbReport, Change, Row};
use std::fmt::Write as _;

impl AbReport {
    /// The table, grouped by point, with the rule and a summary at the end.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut current: Option<(&str, &str)> = None;
        for r in &self.rows {
            if current != Some((r.system.as_str(), r.point.as_str())) {
                current = Some((r.system.as_str(), r.point.as_str()));
                let _ = writeln!(out, "\n{} B vs A  {}", r.system, r.point);
                let _ = writeln!(
                    out,
                    "  {:<16} {:>12} {:>12} {:>9}  {:<19} {:<20} note",
                    "metric", "A", "B", "change", "95 % CI", "verdict"
                );
            }
            let _ = writeln!(out, "{}", line(r));
        }
        let _ = writeln!(out, "\n{}", self.summary());
        let _ = writeln!(
            out,
            "rule: faster/slower only when the whole 95 % CI of B's change lies beyond the noise threshold (delivered % {:.0} %, zero-loss rate the larger of {:.0} % and the search's resolution, CPU per packet {:.0} %, median latency the larger of {:.0} % and {:.0} %, p99 latency the larger of {:.0} % and {:.0} % on the median of at least {} pairs, with the sign test's CI); faster = better in the metric's direction (higher delivered % and zero-loss rate, lower CPU per packet and latency)",
            super::metrics::DELIVERED_NOISE * 100.0,
            self.noise * 100.0,
            self.noise * 100.0,
            self.noise * 100.0,
            super::metrics::LATENCY_NOISE * 100.0,
            self.noise * 100.0,
            super::metrics::TAIL_NOISE * 100.0,
            super::verdict::MIN_TAIL_PAIRS,
        );
        for p in &self.problems {
            let _ = writeln!(out, "warning: {p}");
        }
        out
    }

    /// One line: how many metrics B is faster, slower, unchanged on.
    pub fn summary(&self) -> String {
        let (faster, slower) = (self.count(Change::Faster), self.count(Change::Slower));
        let same = self.count(Change::NoChange);
        let unjudged = self.rows.len() - self.judged();
        let head = match (faster, slower) {
            (0, 0) => "B vs A: no change detected".to_owned(),
            (f, 0) => format!("B vs A: FASTER on {f}"),
            (0, s) => format!("B vs A: SLOWER on {s}"),
            (f, s) => format!("B vs A: MIXED: faster on {f}, slower on {s}"),
        };
        format!(
            "{head} ({faster} faster, {slower} slower, {same} no change detected, {unjudged} not judged, of {} metric checks)",
            self.rows.len()
        )
    }
}

fn line(r: &Row) -> String {
    let num = |v: Option<f64>| v.map_or("-".to_owned(), format_value);
    let (change, interval, verdict) = match &r.outcome {
        Ok(j) => (
            format!("{:+.1} %", j.relative * 100.0),
            format!(
                "{:+.1} .. {:+.1} %",
                j.interval.0 * 100.0,
                j.interval.1 * 100.0
            ),
            j.change.label().to_owned(),
        ),
        Err(_) => ("-".to_owned(), "-".to_owned(), "not judged".to_owned()),
    };
    let note = match &r.outcome {
        Err(why) => why.clone(),
        Ok(j) if j.within_noise => join(
            &format!(
                "significant, but inside the ±{:.0} % noise band",
                r.threshold * 100.0
            ),
            &r.note,
        ),
        Ok(j) => join(&pairs_note(j, r.threshold), &r.note),
    };
    format!(
        "  {:<16} {:>12} {:>12} {:>9}  {:<19} {:<20} {note}",
        r.metric.label(),
        num(r.a),
        num(r.b),
        change,
        interval,
        verdict
    )
}

/// The pair count, and when the interval is wider than the noise band (a change could hide
/// in it), about how many pairs would narrow it to the band.
fn pairs_note(j: &super::Judgement, threshold: f64) -> String {
    if j.method == super::verdict::Method::MedianOrder {
        return format!("{} pairs; median change, sign-test CI", j.pairs);
    }
    let Some(needed) = j
        .pairs_to_resolve(threshold)
        .filter(|_| j.change == Change::NoChange)
    else {
        return format!("{} pairs", j.pairs);
    };
    let needed = if needed > MAX_PAIRS_ESTIMATE {
        format!("more than {MAX_PAIRS_ESTIMATE}")
    } else {
        format!("about {needed}")
    };
    format!(
        "{} pairs; CI ±{:.1} %: {needed} pairs would narrow it to ±{:.0} %",
        j.pairs,
        j.half_width() * 100.0,
        threshold * 100.0
    )
}

fn join(a: &str, b: &str) -> String {
    if b.is_empty() {
        a.to_owned()
    } else {
        format!("{a}; {b}")
    }
}

fn format_value(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}
