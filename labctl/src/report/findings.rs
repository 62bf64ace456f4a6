//! Findings: plain sentences computed from the results, shown first in the report. They lead
//! with verdicts that hold under the lab's checks: a point the load generator could not offer
//! (generator-bound) or the sink could not count (sink-bound) is named as such and never counted
//! as delivered.

use super::charts::format_number;
use crate::results::{Aggregate, Results, SearchBound};
use crate::scenario::{System, SystemKind};
use crate::stats::Stat;

/// Every finding, in report order.
pub fn findings(r: &Results) -> Vec<String> {
    let mut out = Vec::new();
    out.extend(isolation(r));
    out.extend(skipped(r));
    out.extend(super::snooping::silent_behind_snooping(r));
    out.extend(headline(r));
    out.extend(capacity(r));
    out.extend(eight_megabytes(r));
    out.extend(delivered_up_to(r));
    out.extend(bound_points(r));
    out.extend(cpu_at_largest(r));
    out.extend(latency_at_largest(r));
    out.extend(zero_loss(r));
    out.extend(super::search_limits::search_limits(r));
    out.extend(join_delay(r));
    out.extend(cross_checks(r));
    out.extend(sink_losses(r));
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

/// `100.0 %` or `99.2 % (95 % CI 98.9-99.5)`, the interval clamped to 0..100.
pub fn percent_with_ci(s: &Stat) -> String {
    match s.ci95 {
        Some(half) if half > 0.0 => format!(
            "{:.1} % (95 % CI {:.1}-{:.1})",
            s.mean,
            (s.mean - half).max(0.0),
            (s.mean + half).min(100.0)
        ),
        _ => format!("{:.1} %", s.mean),
    }
}

/// `150k` or `150k (95 % CI 146k-154k)`.
pub fn number_with_ci(s: &Stat) -> String {
    match s.ci95 {
        Some(half) if half > 0.0 => format!(
            "{} (95 % CI {}-{})",
            format_number(s.mean),
            format_number((s.mean - half).max(0.0)),
            format_number(s.mean + half)
        ),
        _ => format_number(s.mean),
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

/// " (sysctls: raised)" when the run has more than one variant.
fn variant_suffix(r: &Results, variant: &str) -> String {
    if variants(r).len() > 1 {
        format!(" (sysctls: {variant})")
    } else {
        String::new()
    }
}

fn isolation(r: &Results) -> Vec<String> {
    let iso = &r.isolation;
    let mut out = Vec::new();
    if iso.applied {
        let role = |name: &str| {
            iso.roles.get(name).map_or("?".to_owned(), |p| {
                format!("CPU {:?} ({})", p.cpus, p.scheduling)
            })
        };
        out.push(format!(
            "Isolation: the sender ran on {}, the sinks on {}, every system under test on {}; receive work on the relay namespace's ingress was steered to the system's CPU(s), so the kernel's forwarding and a relay's receive work are charged to the system.",
            role("sender"),
            role("sink"),
            role("system")
        ));
    } else if iso.requested == crate::scenario::IsolationMode::Off {
        out.push("Isolation was off (scenario `isolation = \"off\"`): the load generator and the systems shared every CPU, so a slow system could slow its own load; generator-bound points show where it did.".to_owned());
    }
    for p in &iso.problems {
        out.push(format!("Isolation: {p}."));
    }
    for c in &iso.ceilings {
        match c.pps {
            Some(pps) => out.push(format!(
                "The load generator alone (sender and sink on the direct topology, no system) sustains {} pps at {}-byte payloads under this placement. Through a system it may reach more (the sender's frames are then received on the system's CPU); whether it kept up is checked at every point, and points where it did not are named as generator- or sink-bound.",
                format_number(pps),
                c.size
            )),
            None => out.push(format!(
                "The load generator's ceiling at {}-byte payloads could not be measured: {}.",
                c.size, c.note
            )),
        }
    }
    out
}

fn skipped(r: &Results) -> Vec<String> {
    r.systems()
        .into_iter()
        .filter_map(|s| {
            let aggs: Vec<&Aggregate> = r.aggregates_of(&s).collect();
            if !aggs.is_empty() && aggs.iter().all(|a| a.measured() == 0) {
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

/// How one aggregate's delivery reads in a sentence.
fn delivery(a: &Aggregate) -> String {
    let Some(d) = a.delivered_pct.as_ref() else {
        return format!(
            "no measurement ({})",
            a.problems.first().map_or("failed", String::as_str)
        );
    };
    if a.is_generator_bound() {
        format!(
            "generator-bound: the sender reached only {} of {} pps asked, {} of that delivered - no verdict about the asked load",
            a.sent_pps.map_or("?".to_owned(), |s| format_number(s.mean)),
            format_number(a.asked_pps),
            percent_with_ci(d)
        )
    } else if a.is_sink_bound() {
        format!(
            "{} (sink-bound: the sink's host dropped {} % - the lab's limit)",
            percent_with_ci(d),
            a.sink_lost_pct
                .map_or("?".to_owned(), |s| format!("{:.2}", s.mean))
        )
    } else {
        percent_with_ci(d)
    }
}

/// Why a measured point carries no verdict, in a few words.
fn no_verdict(a: &Aggregate) -> String {
    if a.is_generator_bound() {
        format!(
            "generator-bound (the sender reached {} of {} pps)",
            a.sent_pps.map_or("?".to_owned(), |s| format_number(s.mean)),
            format_number(a.asked_pps)
        )
    } else {
        "sink-bound (the sinks' host dropped packets)".to_owned()
    }
}

/// The verdict at the run's largest stream count (or largest fan-out for fan-out runs).
fn headline(r: &Results) -> Vec<String> {
    if r.scenario
        .definition
        .capacity
        .as_ref()
        .is_some_and(|c| !c.send_traffic)
    {
        return Vec::new();
    }
    let traffic: Vec<&Aggregate> = r
        .aggregates
        .iter()
        .filter(|a| a.delivered_pct.is_some() || a.measured() == 0)
        .collect();
    let Some(top) = traffic.iter().map(|a| (a.key.streams, a.key.fanout)).max() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for variant in variants(r) {
        let at_top: Vec<&&Aggregate> = traffic
            .iter()
            .filter(|a| (a.key.streams, a.key.fanout) == top && a.key.variant == variant)
            .collect();
        let Some(first) = at_top.first() else {
            continue;
        };
        let parts: Vec<String> = at_top
            .iter()
            .map(|a| format!("{} {}", a.key.system, delivery(a)))
            .collect();
        out.push(format!(
            "At {} streams x {} pps (fan-out {}, {} pps asked){}: {}.",
            top.0,
            format_number(first.key.rate_pps),
            top.1,
            format_number(first.asked_pps),
            variant_suffix(r, &variant),
            parts.join("; ")
        ));
    }
    out
}

/// First refused group per (system, variant), over every stream count.
fn first_refusal(r: &Results, system: &System, variant: &str) -> Option<(u32, Option<i32>)> {
    r.aggregates_of(system)
        .filter(|a| a.key.variant == variant)
        .filter_map(|a| Some((a.first_refused?, a.refused_errno)))
        .min_by_key(|(i, _)| *i)
}

fn most_groups_tried(r: &Results, system: &System, variant: &str) -> Option<u32> {
    r.points
        .iter()
        .filter(|p| p.point.system == *system && p.point.variant == variant)
        .filter_map(|p| p.capacity.as_ref().map(|c| c.tried))
        .max()
}

fn capacity(r: &Results) -> Vec<String> {
    let mut out = Vec::new();
    for variant in variants(r) {
        let suffix = variant_suffix(r, &variant);
        for system in r.systems() {
            match first_refusal(r, &system, &variant) {
                Some((index, errno)) => out.push(format!(
                    "{system} had a membership refused with {} at group {}{suffix}: it cannot carry more than {} streams.",
                    errno.map_or("an error".to_owned(), errno_name),
                    index + 1,
                    index
                )),
                None => {
                    if let Some(tried) =
                        most_groups_tried(r, &system, &variant).filter(|t| *t > 0)
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
    let single = System::of(SystemKind::RelaySingle);
    let big = System::of(SystemKind::RelaySingle8mb);
    let mut out = Vec::new();
    for variant in variants(r) {
        let suffix = variant_suffix(r, &variant);
        let big_tried = most_groups_tried(r, &big, &variant);
        match (
            first_refusal(r, &single, &variant),
            first_refusal(r, &big, &variant),
        ) {
            (Some((a, _)), Some((b, _))) if a == b => out.push(format!(
                "8 MB socket buffers did not move the refusal point: {single} and {big} both failed at group {}{suffix}.",
                a + 1
            )),
            (Some((a, _)), Some((b, _))) => out.push(format!(
                "8 MB socket buffers moved the refusal point from group {} to group {}{suffix}.",
                a + 1,
                b + 1
            )),
            (Some((a, _)), None) if big_tried.is_some_and(|t| t > a) => out.push(format!(
                "With 8 MB socket buffers no group was refused (up to {}), while {single} failed at group {}{suffix}.",
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
fn streams_line<'a>(r: &'a Results, system: &System, variant: &str) -> Vec<&'a Aggregate> {
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
            let line: Vec<&Aggregate> = streams_line(r, &system, &variant)
                .into_iter()
                .filter(|a| a.measured() == 0 || a.delivered_pct.is_some())
                .collect();
            if line.is_empty() || line.iter().all(|a| a.measured() == 0) {
                continue;
            }
            let good = |a: &Aggregate| {
                a.is_valid() && a.delivered_pct.is_some_and(|d| d.mean >= threshold)
            };
            let sentence = match line.iter().position(|a| !good(a)) {
                None => format!(
                    "{system} delivered >= {t} % of the full load at every stream count measured (up to {}){suffix}.",
                    line[line.len() - 1].key.streams
                ),
                Some(0) if !line[0].is_valid() && line[0].measured() > 0 => format!(
                    "{system}: no verdict already at {} streams: {}{suffix}.",
                    line[0].key.streams,
                    no_verdict(line[0])
                ),
                Some(0) => format!(
                    "{system} did not deliver >= {t} % already at {} streams: {}{suffix}.",
                    line[0].key.streams,
                    delivery(line[0])
                ),
                Some(i) if !line[i].is_valid() && line[i].measured() > 0 => format!(
                    "{system} delivered >= {t} % of the full load up to {} streams; no verdict at {} streams: {}{suffix}.",
                    line[i - 1].key.streams,
                    line[i].key.streams,
                    no_verdict(line[i])
                ),
                Some(i) => format!(
                    "{system} delivered >= {t} % of the full load up to {} streams; at {} streams: {}{suffix}.",
                    line[i - 1].key.streams,
                    line[i].key.streams,
                    delivery(line[i])
                ),
            };
            out.push(sentence);
        }
    }
    out
}

/// Names every point without a verdict about its asked load.
fn bound_points(r: &Results) -> Vec<String> {
    let gen_bound: Vec<String> = r
        .aggregates
        .iter()
        .filter(|a| a.is_generator_bound())
        .map(|a| {
            format!(
                "{} at {} streams (sender {} of {} pps)",
                a.key.system,
                a.key.streams,
                a.sent_pps.map_or("?".to_owned(), |s| format_number(s.mean)),
                format_number(a.asked_pps)
            )
        })
        .collect();
    let mut out = Vec::new();
    if !gen_bound.is_empty() {
        out.push(format!(
            "Generator-bound points (the asked load was not offered, so they carry no verdict about it): {}.",
            gen_bound.join("; ")
        ));
    }
    out
}

/// Every system's `metric` at the largest stream count measured (smallest fan-out, first rate
/// and size), lowest first; `None` when no system has it.
fn ranked_at_largest(
    r: &Results,
    variant: &str,
    metric: fn(&Aggregate) -> Option<Stat>,
) -> Option<(u32, Vec<(System, Stat)>)> {
    let mut at_max: Vec<(System, u32, Stat)> = r
        .systems()
        .into_iter()
        .filter_map(|s| {
            let line = streams_line(r, &s, variant);
            let a = line.iter().rev().find(|a| metric(a).is_some())?;
            Some((s, a.key.streams, metric(a)?))
        })
        .collect();
    let largest = at_max.iter().map(|x| x.1).max()?;
    at_max.retain(|x| x.1 == largest);
    at_max.sort_by(|a, b| a.2.mean.total_cmp(&b.2.mean));
    Some((
        largest,
        at_max.into_iter().map(|(s, _, v)| (s, v)).collect(),
    ))
}

fn cpu_at_largest(r: &Results) -> Vec<String> {
    let basis = if r.isolation.applied {
        "busy time of the system's own CPUs, kernel softirq included"
    } else {
        "the system's processes only: without isolation the kernel's forwarding in softirq is not attributable"
    };
    variants(r)
        .into_iter()
        .filter_map(|variant| {
            let (largest, ranked) = ranked_at_largest(r, &variant, |a| a.cpu_s_per_mpkt)?;
            let list = ranked
                .iter()
                .map(|(s, c)| format!("{s} {}", number_with_ci(c)))
                .collect::<Vec<_>>()
                .join(", ");
            Some(format!(
                "At {largest} streams, CPU seconds per million delivered packets (= CPU cores per Mpps; {basis}): {list}{}.",
                variant_suffix(r, &variant)
            ))
        })
        .collect()
}

/// p99 latency of every system at the largest stream count, fastest first.
fn latency_at_largest(r: &Results) -> Vec<String> {
    variants(r)
        .into_iter()
        .filter_map(|variant| {
            let (largest, ranked) = ranked_at_largest(r, &variant, |a| a.latency_p99_ns)?;
            let list = ranked
                .iter()
                .map(|(s, l)| format!("{s} {} ms", format_number(l.mean / 1e6)))
                .collect::<Vec<_>>()
                .join(", ");
            Some(format!(
                "At {largest} streams, p99 latency (sender to sink, worst link): {list}{}.",
                variant_suffix(r, &variant)
            ))
        })
        .collect()
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
    let resolution = r.scenario.definition.search_resolution().unwrap_or(0.0);
    fanouts
        .into_iter()
        .map(|fanout| {
            let mut best: Vec<(&Aggregate, Stat)> = r
                .aggregates
                .iter()
                .filter(|a| a.key.fanout == fanout)
                .filter_map(|a| Some((a, a.zero_loss_pps?)))
                .collect();
            best.sort_by(|a, b| b.1.mean.total_cmp(&a.1.mean));
            let list = best
                .iter()
                .map(|(a, z)| {
                    let bound = match a.zero_loss_bound {
                        Some(SearchBound::Generator) => " or more (the sender's limit)",
                        Some(SearchBound::Sink) => " or more (the sink's limit)",
                        Some(SearchBound::RangeTop) => " or more (top of the search)",
                        None => "",
                    };
                    let name = if a.key.system.kind == SystemKind::Direct && fanout > 1 {
                        "direct (no relay, no copies)".to_owned()
                    } else {
                        a.key.system.to_string()
                    };
                    format!("{name} {} pps{bound}", number_with_ci(z))
                })
                .collect::<Vec<_>>()
                .join(", ");
            let what = if fanout == 1 {
                "Zero-loss throughput at fan-out 1 (input packets per second".to_owned()
            } else {
                format!(
                    "Zero-loss throughput at fan-out {fanout} (input packets per second, each copied {fanout} times"
                )
            };
            format!(
                "{what}; search resolution {:.0} %): {list}.",
                resolution * 100.0
            )
        })
        .collect()
}

/// Join delay per system: the range of per-point medians and the worst delay seen.
fn join_delay(r: &Results) -> Vec<String> {
    let mut parts: Vec<String> = Vec::new();
    for system in r.systems() {
        let medians: Vec<f64> = r
            .aggregates_of(&system)
            .filter_map(|a| Some(a.join_delay_ms?.mean))
            .collect();
        if medians.is_empty() {
            continue;
        }
        let lo = medians.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = medians.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let worst = r
            .aggregates_of(&system)
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
        crate::results::JOIN_DELAY_SAMPLE,
        parts.join("; ")
    )]
}

/// How the lab's counts agreed with the kernel's counters.
fn cross_checks(r: &Results) -> Vec<String> {
    let checked: Vec<_> = r
        .points
        .iter()
        .filter_map(|p| Some((p, p.counters.as_ref()?)))
        .collect();
    if checked.is_empty() {
        return Vec::new();
    }
    let flagged: Vec<_> = checked.iter().filter(|(_, c)| c.flagged()).collect();
    let worst = checked
        .iter()
        .map(|(_, c)| c.max_mismatch)
        .fold(0.0, f64::max);
    let mut sentence = format!(
        "Cross-check: at {} of {} measured points every count agreed within 0.1 % with the kernel's own counters (generator tx, sink interfaces' rx and drops, the sink namespace's UDP counters); largest disagreement {:.3} %.",
        checked.len() - flagged.len(),
        checked.len(),
        worst * 100.0
    );
    if let Some((p, c)) = flagged.first() {
        sentence.push_str(&format!(
            " Flagged: {} point(s), e.g. {}: {}.",
            flagged.len(),
            p.point,
            c.mismatches.join("; ")
        ));
    }
    vec![sentence]
}

/// Packets the sinks' host dropped: the lab's loss, not the systems'.
fn sink_losses(r: &Results) -> Vec<String> {
    let lossy: Vec<_> = r.points.iter().filter(|p| p.sink_lost > 0).collect();
    if lossy.is_empty() {
        return Vec::new();
    }
    let total: u64 = lossy.iter().map(|p| p.sink_lost).sum();
    vec![format!(
        "The sinks' host dropped {total} packets at {} point(s) (its backlog or socket buffers, counted by the kernel): charged to the lab, not to the systems; points above the loss threshold are marked sink-bound.",
        lossy.len()
    )]
}
