//! The HTML report: one self-contained `index.html` (inline SVG charts, inline CSS, no scripts,
//! no fonts, nothing fetched from the network).
//!
//! Findings come first, as sentences computed from the data ([`findings`]), then the charts
//! ([`charts`]), the data table and the environment.

pub mod charts;
pub mod findings;
pub mod goals;
mod search_limits;
mod snooping;
mod timing;

use crate::results::{Aggregate, Results, Stat};
use crate::scenario::System;
use charts::{Chart, Datum, Series, format_number};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// File name of the report inside its directory.
pub const INDEX: &str = "index.html";

/// Renders the results and writes `DIR/index.html`; returns its path.
pub fn write(results: &Results, dir: &Path) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(INDEX);
    std::fs::write(&path, render(results))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// HTML-escapes text.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:sans-serif;max-width:70em;margin:1em auto;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;font-size:.85em}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
th{background:#f2f2f2}td.l,th.l{text-align:left}.nodata{color:#a00;font-style:italic}\
.bad{color:#b00}.warn{background:#fff4d0;padding:.5em}svg{max-width:100%;height:auto}";

/// The whole report as HTML.
pub fn render(r: &Results) -> String {
    let mut h = String::new();
    let title = format!("mcast-lab: {}", r.scenario.name);
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n<h1>{}</h1>\n<p>{}</p>\n<p>Started {} &middot; finished {} &middot; {} points measured &middot; scenario file <code>{}</code></p>\n",
        escape(&title),
        escape(&title),
        escape(&r.scenario.definition.description),
        escape(&r.started),
        escape(r.finished.as_deref().unwrap_or("(not finished)")),
        r.points.len(),
        escape(&r.scenario.path),
    );
    if r.interrupted {
        h.push_str("<p class=\"warn\">This sweep was interrupted: only the points measured before the stop are shown.</p>\n");
    }
    h.push_str(&goals::section(r));
    h.push_str("<h2>Findings</h2>\n<ul>\n");
    for f in findings::findings(r) {
        let _ = writeln!(h, "<li>{}</li>", escape(&f));
    }
    h.push_str("</ul>\n<h2>Charts</h2>\n");
    for chart in charts_of(r) {
        h.push_str("<figure>");
        h.push_str(&chart.to_html());
        h.push_str("</figure>\n");
    }
    h.push_str(&timing::section(r));
    h.push_str("<h2>Data</h2>\n");
    h.push_str(&data_table(r));
    h.push_str("<h2>Method</h2>\n");
    h.push_str(&method(r));
    h.push_str("<h2>Environment</h2>\n");
    h.push_str(&environment_table(r));
    h.push_str("</body></html>\n");
    h
}

/// Which axis a chart's x is.
#[derive(Clone, Copy, PartialEq)]
enum Axis {
    Streams,
    Fanout,
}

/// How a chart reads its y value from an aggregate.
struct Metric {
    title: &'static str,
    y_label: &'static str,
    value: fn(&Aggregate) -> Option<Stat>,
    scale: f64,
    /// Which points without a verdict this chart marks.
    marks: Marks,
    from_zero: bool,
}

/// Which points a chart marks (drawn hollow, with a note).
#[derive(Clone, Copy, PartialEq)]
enum Marks {
    /// Refused, failed, generator- and sink-bound points.
    All,
    /// Generator- and sink-bound points (the chart about the offered load).
    Bounds,
    /// Zero-loss figures that are only lower bounds.
    SearchBounds,
    None,
}

impl Metric {
    const fn new(
        title: &'static str,
        y_label: &'static str,
        value: fn(&Aggregate) -> Option<Stat>,
        marks: Marks,
    ) -> Metric {
        Metric {
            title,
            y_label,
            value,
            scale: 1.0,
            marks,
            from_zero: true,
        }
    }

    /// The same metric with its values multiplied by `scale` (units).
    const fn scaled(self, scale: f64) -> Metric {
        Metric { scale, ..self }
    }

    /// The same metric on a y axis that need not start at 0.
    const fn floating(self) -> Metric {
        Metric {
            from_zero: false,
            ..self
        }
    }
}

/// What the sender reached, per cent of the asked rate.
fn offered_pct(a: &Aggregate) -> Option<Stat> {
    let s = a.sent_pps?;
    let pct = |v: f64| v * 100.0 / a.asked_pps;
    Some(Stat {
        mean: pct(s.mean),
        min: pct(s.min),
        max: pct(s.max),
        stddev: pct(s.stddev),
        ci95: s.ci95.map(pct),
        n: s.n,
    })
}

/// The report's charts, one question each: (x axis, metric).
fn chart_metrics(primary: Axis) -> Vec<(Axis, Metric)> {
    let mut charts = throughput_charts(primary);
    charts.extend(latency_and_resource_charts(primary));
    charts
}

/// Charts of how much of the load got through and what it cost.
fn throughput_charts(primary: Axis) -> Vec<(Axis, Metric)> {
    vec![
        (
            primary,
            Metric::new(
                "Delivered % of the asked load vs streams",
                "delivered %",
                |a| a.delivered_pct,
                Marks::All,
            ),
        ),
        (
            primary,
            Metric::new(
                "Offered load: sent / asked rate vs streams",
                "sent / asked %",
                offered_pct,
                Marks::Bounds,
            ),
        ),
        (
            primary,
            Metric::new(
                "CPU seconds per million delivered packets vs streams",
                "CPU s / Mpkt",
                |a| a.cpu_s_per_mpkt,
                Marks::None,
            ),
        ),
        (
            Axis::Fanout,
            Metric::new(
                "Zero-loss throughput vs fan-out",
                "input pps",
                |a| a.zero_loss_pps,
                Marks::SearchBounds,
            ),
        ),
    ]
}

/// Charts of latency, join delay and the system's footprint.
fn latency_and_resource_charts(primary: Axis) -> Vec<(Axis, Metric)> {
    vec![
        (
            primary,
            Metric::new(
                "Latency p99 vs streams",
                "p99 latency (us)",
                |a| a.latency_p99_ns,
                Marks::None,
            )
            .scaled(0.001)
            .floating(),
        ),
        (
            primary,
            Metric::new(
                "Latency p99 at the sinks' interfaces vs streams",
                "p99 latency (us)",
                |a| a.interface_latency_p99_ns,
                Marks::None,
            )
            .scaled(0.001)
            .floating(),
        ),
        (
            primary,
            Metric::new(
                "Group join delay vs streams",
                "join delay (ms)",
                |a| a.join_delay_ms,
                Marks::None,
            ),
        ),
        (
            primary,
            Metric::new(
                "Peak RSS of the system's processes vs streams",
                "RSS (MiB)",
                |a| a.peak_rss_kib,
                Marks::None,
            )
            .scaled(1.0 / 1024.0),
        ),
        (
            primary,
            Metric::new(
                "Processes of the system vs streams",
                "processes",
                |a| a.processes,
                Marks::None,
            ),
        ),
    ]
}

/// The report's charts, in order.
fn charts_of(r: &Results) -> Vec<Chart> {
    // The "vs streams" charts use fan-out as x when the run has one stream count and several
    // fan-outs (fanout.toml): a single x value would only show a pile of dots.
    let distinct = |f: &dyn Fn(&Aggregate) -> u32| {
        r.aggregates
            .iter()
            .map(f)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    };
    let primary = if distinct(&|a| a.key.streams) <= 1 && distinct(&|a| a.key.fanout) > 1 {
        Axis::Fanout
    } else {
        Axis::Streams
    };
    chart_metrics(primary)
        .iter()
        .map(|(x, m)| Chart {
            title: if *x == Axis::Fanout {
                m.title.replace("vs streams", "vs fan-out")
            } else {
                m.title.to_owned()
            },
            x_label: match x {
                Axis::Streams => "input streams".to_owned(),
                Axis::Fanout => "outputs per input (fan-out)".to_owned(),
            },
            y_label: m.y_label.to_owned(),
            series: series(r, *x, m),
            from_zero: m.from_zero,
            note: chart_note(m),
            x_names: Vec::new(),
        })
        .collect()
}

/// What a chart's marks and bars mean.
fn chart_note(m: &Metric) -> String {
    let marks = match m.marks {
        Marks::All => {
            "Hollow markers carry no verdict about the asked load: a refused membership (errno and group), a failed point, or a generator- or sink-bound one. "
        }
        Marks::Bounds => "Hollow markers: generator- or sink-bound points. ",
        Marks::SearchBounds => {
            "Hollow markers are lower bounds: the search hit the sender's, the sink's or the range's limit, not the system's. "
        }
        Marks::None => "",
    };
    let extra = if m.title.starts_with("Group join delay") {
        "Rule added -> first packet at the sink, median of the last rules of each point. "
    } else {
        ""
    };
    format!(
        "{marks}{extra}Error bars: 95 % confidence interval of the mean over the repeats; series at the same value are shifted apart."
    )
}

/// The label of an aggregate's series: the system and every dimension that varies, except the
/// x axis.
fn series_label(r: &Results, x: Axis) -> impl Fn(&Aggregate) -> String + '_ {
    let varies = move |f: &dyn Fn(&Aggregate) -> String| {
        r.aggregates
            .iter()
            .map(f)
            .collect::<std::collections::BTreeSet<_>>()
            .len()
            > 1
    };
    let show_variant = varies(&|a| a.key.variant.clone());
    let show_rate = varies(&|a| a.key.rate_pps.to_string());
    let show_size = varies(&|a| a.key.size.to_string());
    let show_other = match x {
        Axis::Streams => varies(&|a| a.key.fanout.to_string()),
        Axis::Fanout => varies(&|a| a.key.streams.to_string()),
    };
    move |a: &Aggregate| {
        let mut l = a.key.system.to_string();
        if show_variant {
            let _ = write!(l, " {}", a.key.variant);
        }
        if show_other {
            let _ = match x {
                Axis::Streams => write!(l, " fan-out {}", a.key.fanout),
                Axis::Fanout => write!(l, " {} streams", a.key.streams),
            };
        }
        if show_rate {
            let _ = write!(l, " {} pps", format_number(a.key.rate_pps));
        }
        if show_size {
            let _ = write!(l, " {} B", a.key.size);
        }
        l
    }
}

/// One series per label; each aggregate becomes a datum with its interval and, where the point
/// carries no verdict, a mark.
fn series(r: &Results, x: Axis, m: &Metric) -> Vec<Series> {
    let label = series_label(r, x);
    let mut out: Vec<(System, Series)> = Vec::new();
    for a in &r.aggregates {
        let xv = match x {
            Axis::Streams => f64::from(a.key.streams),
            Axis::Fanout => f64::from(a.key.fanout),
        };
        let name = label(a);
        let idx = match out.iter().position(|(_, s)| s.label == name) {
            Some(i) => i,
            None => {
                out.push((
                    a.key.system.clone(),
                    Series {
                        label: name,
                        data: Vec::new(),
                    },
                ));
                out.len() - 1
            }
        };
        if let Some(d) = datum(a, xv, m) {
            out[idx].1.data.push(d);
        }
    }
    out.sort_by(|(a, _), (b, _)| a.order_key().cmp(&b.order_key()));
    out.into_iter().map(|(_, s)| s).collect()
}

fn datum(a: &Aggregate, x: f64, m: &Metric) -> Option<Datum> {
    let value = if a.measured() > 0 { (m.value)(a) } else { None };
    let mark = match m.marks {
        Marks::All => mark_of(a),
        Marks::Bounds => mark_of(a).filter(|n| n.ends_with("-bound")),
        Marks::SearchBounds => a.zero_loss_bound.map(|_| ">= (lab limit)".to_owned()),
        Marks::None => None,
    };
    // Every chart draws a point without a verdict (generator- or sink-bound) hollow.
    let hollow = a.measured() > 0 && !a.is_valid();
    match value {
        Some(s) => Some(Datum {
            x,
            y: s.mean * m.scale,
            interval: s
                .ci95
                .map(|h| ((s.mean - h) * m.scale, (s.mean + h) * m.scale)),
            detached: false,
            mark,
            hollow,
        }),
        // Failed or refused points without a value: a mark at 0.
        None if m.marks == Marks::All && mark.is_some() => Some(Datum {
            x,
            y: 0.0,
            interval: None,
            detached: true,
            mark,
            hollow: true,
        }),
        None => None,
    }
}

/// Why a point carries no verdict, as a chart note.
fn mark_of(a: &Aggregate) -> Option<String> {
    if let Some(i) = a.first_refused {
        let what = a
            .refused_errno
            .map_or("refused".to_owned(), findings::errno_name);
        Some(format!("{what} @{}", i + 1))
    } else if a.measured() == 0 && a.repeats > 0 {
        Some("failed".to_owned())
    } else if a.is_generator_bound() {
        Some("gen-bound".to_owned())
    } else if a.is_sink_bound() {
        Some("sink-bound".to_owned())
    } else {
        None
    }
}

fn stat_cell(s: Option<Stat>, scale: f64) -> String {
    match s {
        None => "&ndash;".to_owned(),
        Some(s) => match s.ci95 {
            Some(h) if h > 0.0 => format!(
                "{} <small>&plusmn;{}</small>",
                format_number(s.mean * scale),
                format_number(h * scale)
            ),
            _ => format_number(s.mean * scale),
        },
    }
}

/// Mean of the per-repeat medians, then the worst delay of any repeat.
fn join_delay_cell(a: &Aggregate) -> String {
    match (a.join_delay_ms, a.join_delay_max_ms) {
        (Some(m), Some(w)) => format!("{} / {}", format_number(m.mean), format_number(w.max)),
        (Some(m), None) => format_number(m.mean),
        _ => "&ndash;".to_owned(),
    }
}

fn status_cell(a: &Aggregate) -> String {
    let mut parts = vec![format!("{}/{} ok", a.ok, a.repeats)];
    if a.generator_bound > 0 {
        parts.push(format!("{} gen-bound", a.generator_bound));
    }
    if a.sink_bound > 0 {
        parts.push(format!("{} sink-bound", a.sink_bound));
    }
    if a.excluded > 0 {
        parts.push(format!("{} bound left out", a.excluded));
    }
    if a.cross_check_flags > 0 {
        parts.push(format!("{} cross-check flag(s)", a.cross_check_flags));
    }
    parts.join(", ")
}

fn zero_loss_cell(a: &Aggregate) -> String {
    let cell = stat_cell(a.zero_loss_pps, 1.0);
    match a.zero_loss_bound {
        Some(_) if a.zero_loss_pps.is_some() => format!("&ge; {cell}"),
        _ => cell,
    }
}

fn data_table(r: &Results) -> String {
    let mut h = String::from(
        "<p>Values are means over the repeats &plusmn; the half-width of their 95 % confidence interval (Student's t); a point's status counts its repeats.</p>\n<table><tr><th class=\"l\">system</th><th>streams</th><th>fan-out</th><th class=\"l\">sysctls</th><th>pps/stream</th><th>size</th><th class=\"l\">status</th><th>sent pps</th><th>delivered %</th><th>sink-lost %</th><th>CPU s/Mpkt</th><th>process CPU s/Mpkt</th><th>p99 us</th><th>p99 us<br><small>at the interface</small></th><th>RSS MiB</th><th>procs</th><th>fds</th><th>zero-loss pps</th><th>join delay ms<br><small>median / worst</small></th><th class=\"l\">first refused</th><th class=\"l\">problems</th></tr>\n",
    );
    for a in &r.aggregates {
        let refused = match (a.first_refused, a.refused_errno) {
            (Some(i), Some(e)) => format!("group {} ({})", i + 1, findings::errno_name(e)),
            (Some(i), None) => format!("group {}", i + 1),
            _ => "&ndash;".to_owned(),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l{}\">{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l bad\">{}</td></tr>",
            escape(&a.key.system.to_string()),
            a.key.streams,
            a.key.fanout,
            escape(&a.key.variant),
            format_number(a.key.rate_pps),
            a.key.size,
            if a.is_valid() { "" } else { " bad" },
            status_cell(a),
            if a.is_generator_bound() {
                " class=\"bad\" title=\"the sender fell short of the rate asked\""
            } else {
                ""
            },
            stat_cell(a.sent_pps, 1.0),
            stat_cell(a.delivered_pct, 1.0),
            stat_cell(a.sink_lost_pct, 1.0),
            stat_cell(a.cpu_s_per_mpkt, 1.0),
            stat_cell(a.process_cpu_s_per_mpkt, 1.0),
            stat_cell(a.latency_p99_ns, 0.001),
            stat_cell(a.interface_latency_p99_ns, 0.001),
            stat_cell(a.peak_rss_kib, 1.0 / 1024.0),
            stat_cell(a.processes, 1.0),
            stat_cell(a.fds, 1.0),
            zero_loss_cell(a),
            join_delay_cell(a),
            refused,
            escape(&a.problems.join("; ")),
        );
    }
    h.push_str("</table>\n");
    h
}

/// How the numbers were taken, and what they cannot show.
fn method(r: &Results) -> String {
    let mut h = String::from("<ul>\n");
    let items = [
        "Load: `loadgen send` builds its frames before the timed loop and sends paced, batched frames on AF_PACKET. A point whose sender reached less than the scenario's `generator_min_fraction` of the asked rate is generator-bound: measured, but no verdict about the asked load.".to_owned(),
        format!(
            "Isolation ({}): {}",
            if r.isolation.applied { "applied" } else { "not applied" },
            r.isolation.steering.join("; ")
        ),
        "Counting: one sink per egress link, its sockets bound to the link's interface (SO_BINDTODEVICE), so identical copies on several links (kernel fan-out) are each counted once on their own link. Around every run the kernel's own counters are read: the generator interface's tx, the sink interfaces' rx and rx_dropped (rtnetlink), the sink namespace's UDP InDatagrams / InErrors / NoPorts (/proc/net/snmp). Packets the sinks' host dropped are the lab's loss, not the system's: delivered % = (counted + dropped by the sink host) / offered; above the loss threshold the point is sink-bound. A count that disagrees with the kernel's by more than 0.1 % is flagged.".to_owned(),
        "CPU: with isolation, the busy time of the CPUs given to the system under test over the measurement window (window - idle - iowait - steal from /proc/stat; the kernel measures idle exactly), so the kernel's forwarding, which runs in softirq and belongs to no process, is a real number; without isolation, the system's processes only (utime + stime, exact totals). Per-process CPU is shown too. Limits: idle is reported in 10 ms units (a few per cent of a short window at low load); the user/system/softirq split in results.json is sampled at timer ticks and overstates work when a CPU wakes thousands of times a second; work the system causes on the sink's CPU (the sink's receive) is charged to the load generator.".to_owned(),
        "Statistics: repeats are interleaved (the whole sweep once, then again), so drift on a shared machine hits every system alike; means carry a 95 % confidence interval (Student's t), drawn as error bars. The zero-loss search is a geometric bisection to the resolution stated with its result; a figure capped by the sender or the sink is a lower bound.".to_owned(),
    ];
    for item in items {
        let _ = writeln!(h, "<li>{}</li>", escape(&item));
    }
    h.push_str("</ul>\n");
    h
}

/// The environment table's rows about the CPU placement and the load generator's ceiling.
fn isolation_rows(r: &Results) -> Vec<(String, String)> {
    let iso = &r.isolation;
    let mut rows = Vec::new();
    rows.push((
        "isolation".into(),
        format!(
            "{} ({})",
            if iso.applied {
                "applied"
            } else {
                "not applied"
            },
            match iso.requested {
                crate::scenario::IsolationMode::Auto => "requested: auto",
                crate::scenario::IsolationMode::Off => "requested: off",
            }
        ),
    ));
    for (role, p) in &iso.roles {
        rows.push((
            format!("placement: {role}"),
            format!("CPUs {:?}, {}", p.cpus, p.scheduling),
        ));
    }
    rows.extend(
        iso.steering
            .iter()
            .map(|s| ("steering".to_owned(), s.clone())),
    );
    rows.extend(
        iso.problems
            .iter()
            .map(|p| ("isolation problem".to_owned(), p.clone())),
    );
    for c in &iso.ceilings {
        rows.push((
            format!("load generator ceiling, {} B", c.size),
            match c.pps {
                Some(pps) => format!("{} pps ({})", format_number(pps), c.note),
                None => c.note.clone(),
            },
        ));
    }
    rows
}

fn environment_table(r: &Results) -> String {
    let e = &r.environment;
    let mut rows: Vec<(String, String)> = vec![
        ("kernel".into(), e.kernel_release.clone()),
        ("CPU".into(), e.cpu_model.clone()),
        ("cores".into(), e.cores.to_string()),
    ];
    rows.extend(
        e.tools
            .iter()
            .map(|(k, v)| (format!("tool: {k}"), v.clone())),
    );
    rows.extend(
        e.namespace_sysctls
            .iter()
            .map(|(k, v)| (format!("fresh namespace: {k}"), v.clone())),
    );
    rows.extend(
        e.root_sysctls
            .iter()
            .map(|(k, v)| (format!("root (read only): {k}"), v.clone())),
    );
    rows.extend(isolation_rows(r));
    let def = &r.scenario.definition;
    for v in def.variants() {
        let sysctls = r.scenario.definition.sysctls_for(&v.name);
        let text = if sysctls.is_empty() {
            "(namespace defaults)".to_owned()
        } else {
            sysctls
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        rows.push((format!("relay namespace sysctls: {}", v.name), text));
    }
    let mut h = String::from("<table>\n");
    for (k, v) in rows {
        let _ = writeln!(
            h,
            "<tr><th class=\"l\">{}</th><td class=\"l\">{}</td></tr>",
            escape(&k),
            escape(&v)
        );
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
mod tests;
