//! `labctl`: the mcast-lab command line. One module per subcommand under `cmd/`.

mod cmd;

use clap::{Parser, Subcommand};

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
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Topo(c) => cmd::topo::exec(c),
        Command::Clean(a) => cmd::clean::exec(a),
        Command::Doctor(a) => cmd::doctor::exec(a),
        Command::Demo(a) => cmd::demo::exec(a),
        Command::Bench(a) => cmd::bench::exec(a),
        Command::Run(a) => cmd::run::exec(a),
        Command::Report(a) => cmd::report::exec(a),
        Command::Compare(a) => cmd::compare::exec(a),
    };
    // After SIGINT/SIGTERM the cleanup thread owns the exit (status 130).
    labctl::process::exit_if_interrupted();
    if let Err(err) = result {
        eprintln!("labctl: error: {err:#}");
        std::process::exit(1);
    }
}
