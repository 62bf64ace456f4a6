//! What ended each zero-loss search: the system's loss, its latency (traffic that queued past
//! the search's p99 bound with nothing or little lost) or the sink's host. A rate limited by
//! latency is a different finding from one limited by drops, and a point whose repeats split
//! between the two explains a spread that the rates alone cannot.

use super::charts::format_number;
use crate::results::{Aggregate, LossyBecause, LossyProbe, Results};

/// One sentence over every point with a zero-loss search whose lowest lossy probes were
/// recorded; `None` when no search recorded one.
pub fn search_limits(r: &Results) -> Option<String> {
    let parts: Vec<String> = r
        .aggregates
        .iter()
        .filter(|a| a.zero_loss_pps.is_some())
        .filter_map(|a| point_limits(r, a))
        .collect();
    if parts.is_empty() {
        return None;
    }
    Some(format!(
        "What ended each zero-loss search (its lowest lossy probe): {}. A search ended by \
         latency found where the system started to hold traffic back for longer than the \
         search's p99 bound, not where it dropped packets.",
        parts.join("; ")
    ))
}

/// "relay/pool, fan-out 1: latency in 2 of 3 (...), loss in 1 of 3 (...)".
fn point_limits(r: &Results, a: &Aggregate) -> Option<String> {
    let uppers: Vec<LossyProbe> = r
        .points
        .iter()
        .filter(|p| p.point.key() == a.key && p.status.is_measured())
        .filter_map(|p| p.zero_loss?.upper)
        .collect();
    if uppers.is_empty() {
        return None;
    }
    let n = uppers.len();
    let reasons: Vec<String> = [
        LossyBecause::Latency,
        LossyBecause::Loss,
        LossyBecause::Sink,
    ]
    .into_iter()
    .filter_map(|because| {
        let of: Vec<&LossyProbe> = uppers.iter().filter(|u| u.because == because).collect();
        (!of.is_empty())
            .then(|| format!("{} in {} of {n} ({})", name(because), of.len(), detail(&of)))
    })
    .collect();
    Some(format!(
        "{}, fan-out {}: {}",
        a.key.system,
        a.key.fanout,
        reasons.join(", ")
    ))
}

fn name(because: LossyBecause) -> &'static str {
    match because {
        LossyBecause::Latency => "latency",
        LossyBecause::Loss => "loss",
        LossyBecause::Sink => "the sink's host",
    }
}

/// The probes' rates, losses and p99s as ranges.
fn detail(probes: &[&LossyProbe]) -> String {
    let range = |values: Vec<f64>, show: &dyn Fn(f64) -> String| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if show(lo) == show(hi) {
            show(lo)
        } else {
            format!("{}-{}", show(lo), show(hi))
        }
    };
    let mut out = vec![
        format!(
            "at {} pps",
            range(probes.iter().map(|p| p.asked_pps).collect(), &|v| {
                format_number(v)
            })
        ),
        format!(
            "{} % lost",
            range(
                probes.iter().map(|p| p.system_loss * 100.0).collect(),
                &|v| format!("{v:.2}")
            )
        ),
    ];
    let ms = |of: &dyn Fn(&LossyProbe) -> Option<u64>| -> Option<String> {
        let values: Vec<f64> = probes
            .iter()
            .filter_map(|p| of(p))
            .map(|ns| ns as f64 / 1e6)
            .collect();
        (!values.is_empty()).then(|| range(values, &|v| format!("{v:.1}")))
    };
    match (ms(&|p| p.interface_p99_ns), ms(&|p| p.p99_ns)) {
        (Some(interface), Some(end_to_end)) => out.push(format!(
            "p99 {interface} ms at the sinks' interfaces ({end_to_end} ms end to end)"
        )),
        (Some(interface), None) => out.push(format!("p99 {interface} ms at the sinks' interfaces")),
        (None, Some(end_to_end)) => out.push(format!("p99 {end_to_end} ms")),
        (None, None) => {}
    }
    out.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(because: LossyBecause, asked_pps: f64, system_loss: f64, p99_ms: f64) -> LossyProbe {
        LossyProbe {
            asked_pps,
            because,
            system_loss,
            p99_ns: Some((p99_ms * 1e6) as u64),
            interface_p99_ns: None,
        }
    }

    #[test]
    fn the_detail_gives_ranges_of_rate_loss_and_p99() {
        let a = probe(LossyBecause::Latency, 120_000.0, 0.0, 21.3);
        let b = probe(LossyBecause::Latency, 125_000.0, 0.0001, 28.0);
        assert_eq!(
            detail(&[&a, &b]),
            "at 120k-125k pps, 0.00-0.01 % lost, p99 21.3-28.0 ms"
        );
        assert_eq!(detail(&[&a]), "at 120k pps, 0.00 % lost, p99 21.3 ms");
        let timestamped = LossyProbe {
            interface_p99_ns: Some(12_000_000),
            ..a
        };
        assert_eq!(
            detail(&[&timestamped]),
            "at 120k pps, 0.00 % lost, p99 12.0 ms at the sinks' interfaces (21.3 ms end to end)"
        );
    }
}
