//! `labctl`: the mcast-lab command line. One module per subcommand under `cmd/`.
//!
//! Every subcommand returns its [`cmd::Outcome`] (or an error); `main` alone decides the exit
//! status: 0 done, 3 `compare`'s gate failed (or `soak`'s verdict, or `ab --fail-on-slower`
//! found B slower), 1 an error. After SIGINT/SIGTERM the signal thread exits with 130 once
//! children and topologies are cleaned up.

mod cmd;

use clap::{Parser, Subcommand};
use cmd::Outcome;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "labctl",
    version,
    about = "Multicast relay test and benchmarking lab"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build, list and remove lab topologies.
    #[command(subcommand)]
    Topo(cmd::topo::TopoCommand),
    /// Remove leftovers of crashed runs (only names with the lab's prefix).
    Clean(cmd::clean::Args),
    /// Check that this machine can run the lab, and say how to fix what is missing.
    Doctor(cmd::doctor::Args),
    /// Short end-to-end demo: topology up, multicast through it, per-stream results.
    Demo(cmd::demo::Args),
    /// Highest send and receive packet rates on the `direct` topology.
    Bench(cmd::bench::Args),
    /// Run a scenario sweep and write results.json + index.html.
    Run(cmd::run::Args),
    /// Re-render the HTML report of a results.json.
    Report(cmd::report::Args),
    /// Compare two results.json; non-zero exit on a regression beyond noise.
    Compare(cmd::compare::Args),
    /// Is relay build B faster or slower than build A? Both side by side, verdicts with 95 % CIs.
    Ab(cmd::ab::Args),
    /// The relay under rule churn and link flaps for minutes (default 10): memory flat,
    /// descriptors steady, losses only while a link was down; exit 3 when not.
    Soak(cmd::soak::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let done = |result: anyhow::Result<()>| result.map(|()| Outcome::Done);
    let result = match cli.command {
        Command::Topo(c) => done(cmd::topo::exec(c)),
        Command::Clean(a) => done(cmd::clean::exec(a)),
        Command::Doctor(a) => done(cmd::doctor::exec(a)),
        Command::Demo(a) => done(cmd::demo::exec(a)),
        Command::Bench(a) => done(cmd::bench::exec(a)),
        Command::Run(a) => cmd::run::exec(a),
        Command::Report(a) => done(cmd::report::exec(a)),
        Command::Compare(a) => cmd::compare::exec(a),
        Command::Soak(a) => cmd::soak::exec(a),
        Command::Ab(a) => cmd::ab::exec(a),
    };
    // After SIGINT/SIGTERM the cleanup thread owns the exit (status 130).
    labctl::process::exit_if_interrupted();
    match result {
        Ok(outcome) => outcome.exit_code(),
        Err(err) => {
            eprintln!("labctl: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
