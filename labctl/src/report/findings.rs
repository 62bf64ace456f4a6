//! Findings: plain sentences computed from the results, shown first in the report.

use super::charts::format_number;
use crate::results::{Aggregate, Results};
use crate::scenario::SystemKind;

/// Every finding, in report order.
pub fn findings(r: &Results) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(skipped(r));
    out.extend(capacity(r));
    out.extend(eight_megabytes(r));
    out.extend(delivered_up_to(r));
    out.extend(cpu_at_largest(r));
    out.extend(zero_loss(r));
    out.extend(join_delay(r));
    out.extend(kernel_fanout(r));
    if out.is_empty() {
        out.push("No point of this run produced a measurement.".to_owned());
    }
    out
}

/// errno as its name for the common cases.
pub fn errno_name(errno: i32) -> String {
    match errno {
        libc::ENOBUFS => "ENOBUFS".to_owned(),
        libc::ENOMEM => "ENOMEM".to_owned(),
        libc::EADDRINUSE => "EADDRINUSE".to_owned(),
        libc::EINVAL => "EINVAL".to_owned(),
        libc::EPERM => "EPERM".to_owned(),
        other => format!("errno {other}"),
    }
}

fn variants(r: &Results) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for a in &r.aggregates {
        if !v.contains(&a.key.variant) {
            v.push(a.key.variant.clone());
        }
    }
    v
}

/// " (variant raised)" when the run has more than one variant.
fn variant_suffix(r: &Results, variant: &str) -> String {
    if variants(r).len() > 1 {
        format!(" (sysctls: {variant})")
    } else {
        String::new()
    }
}

fn skipped(r: &Results) -> Vec<String> {
    r.systems()
        .into_iter()
        .filter_map(|s| {
            let aggs: Vec<&Aggregate> = r.aggregates_of(s).collect();
            if !aggs.is_empty() && aggs.iter().all(|a| a.ok == 0) {
                let reason = aggs
                    .iter()
                    .flat_map(|a| a.problems.first())
                    .next()
                    .map_or("no reason recorded", String::as_str);
                Some(format!("{s} produced no measurement: {reason}."))
            } else {
                None
            }
        })
        .collect()
}

/// First refused group per (system, variant), over every stream count.
fn first_refusal(r: &Results, system: SystemKind, variant: &str) -> Option<(u32, Option<i32>)> {
    r.aggregates_of(system)
        .filter(|a| a.key.variant == variant)
        .filter_map(|a| Some((a.first_refused?, a.refused_errno)))
        .min_by_key(|(i, _)| *i)
}

fn most_groups_tried(r: &Results, system: SystemKind, variant: &str) -> Option<u32> {
    r.points
        .iter()
        .filter(|p| p.point.system == system && p.point.variant == variant)
        .filter_map(|p| p.capacity.as_ref().map(|c| c.tried))
        .max()
}

fn capacity(r: &Results) -> Vec<String> {
    let mut out = Vec::new();
    for variant in variants(r) {
        let suffix = variant_suffix(r, &variant);
        for system in r.systems() {
            match first_refusal(r, system, &variant) {
                Some((index, errno)) => out.push(format!(
                    "{system} had a membership refused with {} at group {}{suffix}: it cannot carry more than {} streams.",
                    errno.map_or("an error".to_owned(), errno_name),
                    index + 1,
                    index
                )),
                None => {
                    if let Some(tried) = most_groups_tried(r, system, &variant).filter(|t| *t > 0)
                    {
                        out.push(format!(
                            "{system} joined every group it was given (up to {tried}) without a refusal{suffix}."
                        ));
                    }
                }
            }
        }
    }
    out
}

fn eight_megabytes(r: &Results) -> Vec<String> {
    let mut out = Vec::new();
    for variant in variants(r) {
        let suffix = variant_suffix(r, &variant);
        let single = first_refusal(r, SystemKind::RelaySingle, &variant);
        let big = first_refusal(r, SystemKind::RelaySingle8mb, &variant);
        let big_tried = most_groups_tried(r, SystemKind::RelaySingle8mb, &variant);
        match (single, big) {
            (Some((a, _)), Some((b, _))) if a == b => out.push(format!(
                "8 MB socket buffers did not move the refusal point: relay/single and relay/single-8mb both failed at group {}{suffix}.",
                a + 1
            )),
            (Some((a, _)), Some((b, _))) => out.push(format!(
                "8 MB socket buffers moved the refusal point from group {} to group {}{suffix}.",
                a + 1,
                b + 1
            )),
            (Some((a, _)), None) if big_tried.is_some_and(|t| t > a) => out.push(format!(
                "With 8 MB socket buffers no group was refused (up to {}), while relay/single failed at group {}{suffix}.",
                big_tried.unwrap_or(0),
                a + 1
            )),
            _ => {}
        }
    }
    out
}

/// Delivered-% threshold of the run, in percent.
pub fn delivered_threshold(r: &Results) -> f64 {
    100.0 * (1.0 - r.scenario.definition.loss_threshold)
}

/// Aggregates of a system on the streams axis at the smallest fan-out, per variant, sorted by
/// streams (first rate and size of the scenario).
fn streams_line<'a>(r: &'a Results, system: SystemKind, variant: &str) -> Vec<&'a Aggregate> {
    let def = &r.scenario.definition;
    let fanout = def.fanout.iter().copied().min().unwrap_or(1);
    let rate = def.rate_pps.first().copied();
    let size = def.size.first().copied();
    let mut line: Vec<&Aggregate> = r
        .aggregates_of(system)
        .filter(|a| {
            a.key.variant == variant
                && a.key.fanout == fanout
                && Some(a.key.rate_pps) == rate
                && Some(a.key.size) == size
        })
        .collect();
    line.sort_by_key(|a| a.key.streams);
    line
}

fn delivered_up_to(r: &Results) -> Vec<String> {
    let threshold = delivered_threshold(r);
    let t = format_number(threshold);
    let mut out = Vec::new();
    for variant in variants(r) {
        let suffix = variant_suffix(r, &variant);
        for system in r.systems() {
            // Probe-only points (capacity without traffic) have no delivered % to judge.
            let line: Vec<&Aggregate> = streams_line(r, system, &variant)
                .into_iter()
                .filter(|a| a.ok == 0 || a.delivered_pct.is_some())
                .collect();
            if line.is_empty() || line.iter().all(|a| a.ok == 0) {
                continue;
            }
            let good = |a: &Aggregate| a.delivered_pct.is_some_and(|d| d.mean >= threshold);
            let first_bad = line.iter().position(|a| !good(a));
            let describe = |a: &Aggregate| match a.delivered_pct {
                Some(d) if a.ok > 0 => format!("{} %", format_number(d.mean)),
                _ => format!(
                    "failed: {}",
                    a.problems.first().map_or("no measurement", String::as_str)
                ),
            };
            let sentence = match first_bad {
                None => format!(
                    "{system} delivered >= {t} % at every stream count measured (up to {}){suffix}.",
                    line[line.len() - 1].key.streams
                ),
                Some(0) => format!(
                    "{system} delivered less than {t} % already at {} streams ({}){suffix}.",
                    line[0].key.streams,
                    describe(line[0])
                ),
                Some(i) => format!(
                    "{system} delivered >= {t} % up to {} streams; at {} streams: {}{suffix}.",
                    line[i - 1].key.streams,
                    line[i].key.streams,
                    describe(line[i])
                ),
            };
            out.push(sentence);
            if let Some(short) = line.iter().find(|a| sender_fell_short(a)) {
                out.push(format!(
                    "{system}: at {} streams the sender reached only {} of the {} pps asked{suffix} (the machine was saturated), so the load offered there was lower than the scenario's.",
                    short.key.streams,
                    format_number(short.sent_pps.map_or(0.0, |s| s.mean)),
                    format_number(short.key.rate_pps * f64::from(short.key.streams)),
                ));
            }
        }
    }
    out
}

/// True when the sender achieved less than 90 % of the rate the point asked for.
pub fn sender_fell_short(a: &Aggregate) -> bool {
    let asked = a.key.rate_pps * f64::from(a.key.streams);
    a.sent_pps.is_some_and(|s| s.mean < 0.9 * asked)
}

fn cpu_at_largest(r: &Results) -> Vec<String> {
    let mut out = Vec::new();
    for variant in variants(r) {
        let suffix = variant_suffix(r, &variant);
        let mut at_max: Vec<(SystemKind, u32, f64)> = r
            .systems()
            .into_iter()
            .filter_map(|s| {
                let line = streams_line(r, s, &variant);
                let a = line.iter().rev().find(|a| a.cpu_s_per_mpkt.is_some())?;
                Some((s, a.key.streams, a.cpu_s_per_mpkt?.mean))
            })
            .collect();
        if at_max.is_empty() {
            continue;
        }
        let largest = at_max.iter().map(|x| x.1).max().unwrap_or(0);
        at_max.retain(|x| x.1 == largest);
        at_max.sort_by(|a, b| a.2.total_cmp(&b.2));
        let list = at_max
            .iter()
            .map(|(s, _, c)| format!("{s} {}", format_number(*c)))
            .collect::<Vec<_>>()
            .join(", ");
        let mut sentence = format!(
            "At {largest} streams, CPU seconds per million delivered packets (= CPU cores per Mpps): {list}{suffix}."
        );
        if at_max.iter().any(|x| x.0 == SystemKind::Kernel) {
            sentence.push_str(
                " The kernel's forwarding runs in softirq context on the sender's CPU and is charged to no process: its figure counts smcrouted only.",
            );
        }
        out.push(sentence);
    }
    out
}

fn zero_loss(r: &Results) -> Vec<String> {
    let mut fanouts: Vec<u32> = r
        .aggregates
        .iter()
        .filter(|a| a.zero_loss_pps.is_some())
        .map(|a| a.key.fanout)
        .collect();
    fanouts.sort_unstable();
    fanouts.dedup();
    fanouts
        .into_iter()
        .map(|fanout| {
            let mut best: Vec<(SystemKind, f64)> = Vec::new();
            for a in r
                .aggregates
                .iter()
                .filter(|a| a.key.fanout == fanout)
            {
                if let Some(z) = a.zero_loss_pps {
                    match best.iter_mut().find(|b| b.0 == a.key.system) {
                        Some(b) => b.1 = b.1.max(z.mean),
                        None => best.push((a.key.system, z.mean)),
                    }
                }
            }
            best.sort_by(|a, b| b.1.total_cmp(&a.1));
            let list = best
                .iter()
                .map(|(s, z)| {
                    if *s == SystemKind::Direct && fanout > 1 {
                        format!("direct (no relay, no copies) {} pps", format_number(*z))
                    } else {
                        format!("{s} {} pps", format_number(*z))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            if fanout == 1 {
                format!("Zero-loss throughput at fan-out 1 (input packets per second): {list}.")
            } else {
                format!(
                    "Zero-loss throughput at fan-out {fanout} (input packets per second, each copied {fanout} times): {list}."
                )
            }
        })
        .collect()
}

/// Join delay per system: the range of per-point medians and the worst delay seen.
fn join_delay(r: &Results) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for system in r.systems() {
        let medians: Vec<(u32, f64)> = r
            .aggregates_of(system)
            .filter_map(|a| Some((a.key.streams, a.join_delay_ms?.mean)))
            .collect();
        if medians.is_empty() {
            continue;
        }
        let lo = medians.iter().map(|m| m.1).fold(f64::INFINITY, f64::min);
        let hi = medians
            .iter()
            .map(|m| m.1)
            .fold(f64::NEG_INFINITY, f64::max);
        let worst = r
            .aggregates_of(system)
            .filter_map(|a| Some((a.key.streams, a.join_delay_max_ms?.max)))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let range = if (hi - lo).abs() < 0.05 {
            format!("{} ms", format_number(lo))
        } else {
            format!("{}-{} ms", format_number(lo), format_number(hi))
        };
        let mut part = format!("{system} median {range}");
        if let Some((streams, w)) = worst {
            part.push_str(&format!(
                " (worst {} ms, at {streams} streams)",
                format_number(w)
            ));
        }
        parts.push(part);
    }
    if parts.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "Group join delay (rule added -> first packet at the sink, the last {} rules of each point timed while the sender was already sending; behind the snooping bridge it includes the bridge learning the join): {}.",
        crate::sweep::join_delay::SAMPLE,
        parts.join("; ")
    )]
}

/// How kernel fan-out points are counted, when the run has any.
fn kernel_fanout(r: &Results) -> Vec<String> {
    let any = r
        .aggregates_of(SystemKind::Kernel)
        .any(|a| a.key.fanout > 1 && a.ok > 0);
    if any {
        vec![format!(
            "Kernel fan-out is counted differently: {}.",
            crate::sweep::point::KERNEL_FANOUT_NOTE
        )]
    } else {
        Vec::new()
    }
}
