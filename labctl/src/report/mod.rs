//! The HTML report: one self-contained `index.html` (inline SVG charts, inline CSS, no scripts,
//! no fonts, nothing fetched from the network).
//!
//! Findings come first, as sentences computed from the data ([`findings`]), then the charts
//! ([`charts`]), the data table and the environment.

pub mod charts;
pub mod findings;

use crate::results::{Aggregate, Results, Stat};
use crate::scenario::SystemKind;
use charts::{Chart, Series, format_number};
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
    h.push_str("<h2>Data</h2>\n");
    h.push_str(&data_table(r));
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
    let chart =
        |title: &str, x: Axis, y_label: &str, y: &dyn Fn(&Aggregate) -> Option<f64>, marks| Chart {
            title: if x == Axis::Fanout {
                title.replace("vs streams", "vs fan-out")
            } else {
                title.to_owned()
            },
            x_label: match x {
                Axis::Streams => "input streams".to_owned(),
                Axis::Fanout => "outputs per input (fan-out)".to_owned(),
            },
            y_label: y_label.to_owned(),
            series: series(r, x, y, marks),
        };
    vec![
        chart(
            "Delivered % vs streams (x = refused membership or failed point)",
            primary,
            "delivered %",
            &|a| a.delivered_pct.map(|s| s.mean),
            true,
        ),
        chart(
            "CPU seconds per million delivered packets vs streams",
            primary,
            "CPU s / Mpkt",
            &|a| a.cpu_s_per_mpkt.map(|s| s.mean),
            false,
        ),
        chart(
            "Zero-loss throughput vs fan-out",
            Axis::Fanout,
            "input pps",
            &|a| a.zero_loss_pps.map(|s| s.mean),
            false,
        ),
        chart(
            "Latency p99 vs streams",
            primary,
            "p99 latency (us)",
            &|a| a.latency_p99_ns.map(|s| s.mean / 1000.0),
            false,
        ),
        chart(
            "Group join delay (rule added -> first packet at the sink, median of the last rules) vs streams",
            primary,
            "join delay (ms)",
            &|a| a.join_delay_ms.map(|s| s.mean),
            false,
        ),
        chart(
            "Peak RSS of the system's processes vs streams",
            primary,
            "RSS (MiB)",
            &|a| a.peak_rss_kib.map(|s| s.mean / 1024.0),
            false,
        ),
        chart(
            "Processes of the system vs streams",
            primary,
            "processes",
            &|a| a.processes.map(|s| s.mean),
            false,
        ),
    ]
}

/// One series per (system and every dimension that varies, except the x axis).
fn series(r: &Results, x: Axis, y: &dyn Fn(&Aggregate) -> Option<f64>, marks: bool) -> Vec<Series> {
    let aggs = &r.aggregates;
    let varies = |f: &dyn Fn(&Aggregate) -> String| {
        aggs.iter()
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
    let label = |a: &Aggregate| {
        let mut l = a.key.system.to_string();
        if show_variant {
            let _ = write!(l, " {}", a.key.variant);
        }
        if show_other {
            match x {
                Axis::Streams => {
                    let _ = write!(l, " fan-out {}", a.key.fanout);
                }
                Axis::Fanout => {
                    let _ = write!(l, " {} streams", a.key.streams);
                }
            }
        }
        if show_rate {
            let _ = write!(l, " {} pps", format_number(a.key.rate_pps));
        }
        if show_size {
            let _ = write!(l, " {} B", a.key.size);
        }
        l
    };
    let mut out: Vec<(SystemKind, Series)> = Vec::new();
    for a in aggs {
        let xv = match x {
            Axis::Streams => f64::from(a.key.streams),
            Axis::Fanout => f64::from(a.key.fanout),
        };
        let name = label(a);
        let idx = match out.iter().position(|(_, s)| s.label == name) {
            Some(i) => i,
            None => {
                out.push((
                    a.key.system,
                    Series {
                        label: name,
                        ..Series::default()
                    },
                ));
                out.len() - 1
            }
        };
        let s = &mut out[idx].1;
        let value = if a.ok > 0 { y(a) } else { None };
        if let Some(v) = value {
            s.points.push((xv, v));
        }
        if marks {
            if let Some(i) = a.first_refused {
                let what = a
                    .refused_errno
                    .map_or("refused".to_owned(), findings::errno_name);
                s.marks
                    .push((xv, value.unwrap_or(0.0), format!("{what} @{}", i + 1)));
            } else if a.ok == 0 && a.repeats > 0 {
                s.marks.push((xv, 0.0, "failed".to_owned()));
            }
        }
    }
    out.sort_by_key(|(sys, _)| SystemKind::ALL.iter().position(|s| s == sys));
    out.into_iter()
        .map(|(_, mut s)| {
            s.points.sort_by(|a, b| a.0.total_cmp(&b.0));
            s
        })
        .collect()
}

fn stat_cell(s: Option<Stat>, scale: f64) -> String {
    match s {
        None => "&ndash;".to_owned(),
        Some(s) if s.n > 1 && s.max > s.min => format!(
            "{} <small>({}&ndash;{})</small>",
            format_number(s.mean * scale),
            format_number(s.min * scale),
            format_number(s.max * scale)
        ),
        Some(s) => format_number(s.mean * scale),
    }
}

/// Mean of the per-repeat medians, then the worst delay of any repeat.
fn join_delay_cell(a: &crate::results::Aggregate) -> String {
    match (a.join_delay_ms, a.join_delay_max_ms) {
        (Some(m), Some(w)) => format!("{} / {}", format_number(m.mean), format_number(w.max)),
        (Some(m), None) => format_number(m.mean),
        _ => "&ndash;".to_owned(),
    }
}

fn data_table(r: &Results) -> String {
    let mut h = String::from(
        "<table><tr><th class=\"l\">system</th><th>streams</th><th>fan-out</th><th class=\"l\">sysctls</th><th>pps/stream</th><th>size</th><th>ok/runs</th><th>sent pps</th><th>delivered %</th><th>CPU s/Mpkt</th><th>p99 us</th><th>RSS MiB</th><th>procs</th><th>fds</th><th>zero-loss pps</th><th>join delay ms<br><small>median / worst</small></th><th class=\"l\">first refused</th><th class=\"l\">problems</th></tr>\n",
    );
    for a in &r.aggregates {
        let refused = match (a.first_refused, a.refused_errno) {
            (Some(i), Some(e)) => format!("group {} ({})", i + 1, findings::errno_name(e)),
            (Some(i), None) => format!("group {}", i + 1),
            _ => "&ndash;".to_owned(),
        };
        let _ = writeln!(
            h,
            "<tr><td class=\"l\">{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td>{}</td><td>{}</td><td>{}/{}</td><td{}>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"l\">{}</td><td class=\"l bad\">{}</td></tr>",
            escape(a.key.system.name()),
            a.key.streams,
            a.key.fanout,
            escape(&a.key.variant),
            format_number(a.key.rate_pps),
            a.key.size,
            a.ok,
            a.repeats,
            if findings::sender_fell_short(a) {
                " class=\"bad\" title=\"the sender fell short of the rate asked\""
            } else {
                ""
            },
            stat_cell(a.sent_pps, 1.0),
            stat_cell(a.delivered_pct, 1.0),
            stat_cell(a.cpu_s_per_mpkt, 1.0),
            stat_cell(a.latency_p99_ns, 0.001),
            stat_cell(a.peak_rss_kib, 1.0 / 1024.0),
            stat_cell(a.processes, 1.0),
            stat_cell(a.fds, 1.0),
            stat_cell(a.zero_loss_pps, 1.0),
            join_delay_cell(a),
            refused,
            escape(&a.problems.join("; ")),
        );
    }
    h.push_str("</table>\n");
    h
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
