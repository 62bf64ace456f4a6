//! `labctl soak`: the relay under rule churn and link flaps for minutes on end; writes
//! `soak.json` and says whether memory stayed flat, descriptors did not grow and packets were
//! lost only while a link was down. Exit 3 when the verdict fails.

use super::Outcome;
use anyhow::{Context, Result};
use labctl::privilege::require_root;
use labctl::soak::{self, SoakOptions, SoakReport};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Seconds of traffic (10..=3600).
    #[arg(long, default_value_t = 600.0)]
    seconds: f64,
    /// Streams (groups from 239.1.0.1), one rule each.
    #[arg(long, default_value_t = 1000)]
    streams: u32,
    /// Packets per second per stream (the default 1000 x 50 stays inside a 2-core machine's
    /// isolated ceiling).
    #[arg(long, default_value_t = 50.0)]
    rate: f64,
    /// UDP payload bytes.
    #[arg(long, default_value_t = 1000)]
    size: u32,
    /// Seconds between rule changes (a rule of an unused group added, then removed).
    #[arg(long, default_value_t = 1.0)]
    churn_every: f64,
    /// Seconds between link flaps (the relay's ingress and egress link in turn).
    #[arg(long, default_value_t = 30.0)]
    flap_every: f64,
    /// Seconds a flapped link stays down.
    #[arg(long, default_value_t = 1.0)]
    flap_down: f64,
    /// Directory for soak.json (default: reports/soak-<time>/).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn exec(args: Args) -> Result<Outcome> {
    require_root()?;
    let opts = SoakOptions {
        duration_s: args.seconds,
        streams: args.streams,
        rate_pps: args.rate,
        size: args.size,
        churn_every_s: args.churn_every,
        flap_every_s: args.flap_every,
        flap_down_s: args.flap_down,
    };
    let bar = super::bench::Progress::new("soak: building the topology and installing rules");
    let report = soak::run(&opts, &|t| {
        // Every 10 s: a line each when stderr is not a terminal.
        if (t as u64) % 10 == 0 {
            bar.set_message(format!("soak: {t:.0} of {:.0} s", opts.duration_s));
        }
    })?;
    bar.finish();
    let dir = args.out.unwrap_or_else(|| {
        PathBuf::from("reports").join(format!(
            "soak-{}",
            labctl::results::compact_stamp(std::time::SystemTime::now())
        ))
    });
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join("soak.json");
    let json = serde_json::to_vec_pretty(&report).context("serializing the soak report")?;
    netio::fs::write_atomically(&path, &json)?;
    print_report(&report);
    println!("{}", path.display());
    Ok(if report.verdict.passed() {
        Outcome::Done
    } else {
        Outcome::GateFailed
    })
}

fn print_report(r: &SoakReport) {
    let v = &r.verdict;
    println!(
        "soak {} s, {} streams x {} pps: sent {} ({:.0} pps), received {}, lost {} ({} inside {} flap windows, {} outside); {} rule changes",
        r.options.duration_s,
        r.options.streams,
        r.options.rate_pps,
        r.sent,
        r.sent_pps,
        r.received,
        r.lost,
        v.lost_in_flaps,
        r.flaps.len(),
        v.lost_outside_flaps,
        r.rule_changes
    );
    println!(
        "relay RSS {} -> {} KiB ({:+.1} %), descriptors {} -> {}",
        v.rss_early_kib,
        v.rss_late_kib,
        v.rss_growth * 100.0,
        v.fds_early,
        v.fds_late
    );
    if v.passed() {
        println!("verdict: passed");
    } else {
        for failure in &v.failures {
            println!("verdict: FAILED: {failure}");
        }
    }
}
