//! `labctl ab A_RELAY B_RELAY`: is relay build B faster or slower than build A?

use super::Outcome;
use anyhow::{Context as _, Result, bail, ensure};
use labctl::ab::rev::{self, RelaySource};
use labctl::ab::{self, Change, setup};
use labctl::scenario::Scenario;
use labctl::sweep::SweepOptions;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The help text after the options: what runs, how long, the verdict rule, the exit status.
/// (A doc comment on this struct would not be shown: the subcommand's one-line doc in main.rs
/// is its `about`.)
const AFTER_HELP: &str = "\
What it runs: the scenario (default scenarios/ab.toml: relay/pool@a and relay/pool@b on the chain \
topology at 1 and 40 streams, a fixed-rate run then a zero-loss throughput search per point, 6 \
interleaved repeats; about 7 minutes on 2 cores) with A and B taking turns at every point and \
repeat, so drift of the machine hits both alike. Then, per point and metric: A's and B's means, \
B's relative change with its 95 % confidence interval (Student's t on the per-pair ratios \
B_i / A_i - 1) and a verdict; then the usual report (results.json, index.html, and ab.txt with \
the table), both builds side by side.

Verdict, criterion-style: \"faster\" or \"slower\" only when the whole 95 % interval of B's change \
lies beyond the metric's noise threshold (so it is also significant at 95 %), otherwise \"no change \
detected\". Thresholds: delivered % 1 %; CPU per packet (the system's CPUs, the relay process) \
--noise; zero-loss rate the larger of --noise and the search's resolution; median latency the \
larger of --noise and 20 %; p99 latency the larger of --noise and 50 % (a tail moves about 2x \
between repeats of one build), on the median of the per-pair changes with the sign test's \
distribution-free interval, so from 6 pairs on (with 6 to 8, every pair must clear the band). \"Faster\" = better in the metric's direction: higher delivered % and \
zero-loss rate, lower CPU per packet and latency. CPU per packet is not judged at a point whose \
repeats have too few packets to resolve it (the 1-stream point), and the table says why.

A_RELAY / B_RELAY: a relay binary (e.g. target/release/relay), or rev:GIT_REV to build that \
revision of this repository's relay first (git archive + cargo build --release into \
$CARGO_TARGET_DIR/ab-rev/, or target/ab-rev/; kept for the next run), e.g. \
`labctl ab rev:main target/release/relay`.

Exit status: 0 when it ran, whatever the verdict; 3 with --fail-on-slower when B is slower on \
some metric; 1 on an error (bad argument, nothing could be judged).";

#[derive(clap::Args)]
#[command(after_help = AFTER_HELP)]
pub struct Args {
    /// Build A, the reference: a relay binary or rev:GIT_REV.
    #[arg(value_name = "A_RELAY")]
    pub a: String,
    /// Build B, the one judged: a relay binary or rev:GIT_REV.
    #[arg(value_name = "B_RELAY")]
    pub b: String,
    /// Scenario name (scenarios/NAME.toml) or path; it must have [builds.a] and [builds.b].
    #[arg(long, value_name = "NAME", default_value = "ab")]
    pub scenario: String,
    /// Repeats per point (default: the scenario's; at least 3; the p99 latency is judged from
    /// 6 on).
    #[arg(long, value_name = "N")]
    pub repeats: Option<u32>,
    /// Parent directory of the report directory `<scenario>-<UTC time>/`.
    #[arg(long, value_name = "DIR", default_value = "reports")]
    pub out: PathBuf,
    /// Noise threshold, per cent, of the zero-loss rate, CPU per packet and latency.
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
    pub noise: f64,
    /// Exit 3 when B is slower on any metric (for scripts).
    #[arg(long)]
    pub fail_on_slower: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

pub fn exec(args: Args) -> Result<Outcome> {
    ensure!(
        args.noise.is_finite() && (0.0..100.0).contains(&args.noise),
        "--noise {}: give a percentage in [0, 100), e.g. 5",
        args.noise
    );
    let path = Scenario::resolve(&args.scenario)?;
    let mut scenario = Scenario::load(&path)?;
    setup::check(&scenario)?;
    let (a, b) = binaries(&args.a, &args.b)?;
    setup::apply(&mut scenario, a.clone(), b.clone(), args.repeats)?;
    if !args.quiet {
        eprintln!(
            "labctl ab: A = {}\nlabctl ab: B = {}",
            a.display(),
            b.display()
        );
    }
    let options = SweepOptions {
        out_root: args.out,
        quiet: args.quiet,
        build_paths: BTreeMap::new(),
    };
    let outcome = super::run::announce_and_run(&scenario, &path, &options, "labctl ab")?;
    let report = ab::compare(&outcome.results, args.noise / 100.0);
    let table = report.table();
    print!("{table}");
    let text = outcome.dir.join("ab.txt");
    std::fs::write(
        &text,
        format!("A = {}\nB = {}\n{table}", a.display(), b.display()),
    )
    .with_context(|| format!("writing {}", text.display()))?;
    println!("{}", outcome.results_path.display());
    println!("{}", outcome.report_path.display());
    println!("{}", text.display());
    if report.judged() == 0 {
        bail!(
            "no metric could be judged (every point failed or was bound): see {}",
            outcome.report_path.display()
        );
    }
    if args.fail_on_slower && report.count(Change::Slower) > 0 {
        eprintln!("labctl ab: B is slower (--fail-on-slower: exit 3)");
        return Ok(Outcome::GateFailed);
    }
    Ok(Outcome::Done)
}

/// The two binaries: paths are checked first (no build starts when the other argument is
/// wrong), then revisions are resolved and built.
fn binaries(a: &str, b: &str) -> Result<(PathBuf, PathBuf)> {
    let sources = [
        ("A_RELAY", RelaySource::parse(a)),
        ("B_RELAY", RelaySource::parse(b)),
    ];
    let repo = rev::repository();
    let mut resolved = Vec::new();
    for (arg, source) in &sources {
        resolved.push(match source {
            RelaySource::Path(p) => Resolved::Path(rev::check_path(arg, p)?),
            RelaySource::Rev(r) => Resolved::Commit(rev::resolve(arg, &repo, r)?),
        });
    }
    let mut built = resolved.into_iter().map(|r| match r {
        Resolved::Path(p) => Ok(p),
        Resolved::Commit(sha) => rev::build(&repo, &sha),
    });
    let (Some(a), Some(b)) = (built.next(), built.next()) else {
        bail!("two relay binaries expected");
    };
    Ok((a?, b?))
}

enum Resolved {
    Path(PathBuf),
    Commit(String),
}
