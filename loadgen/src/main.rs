//! `loadgen` binary: parse the command line, run `send` or `sink`, write the JSON summary.
//!
//! Exit codes, decided here in `main` from the typed [`Failure`]: 0 success, 1 runtime error,
//! 2 usage error (bad flags or values, an unknown interface).

use anyhow::{Context, Result};
use clap::Parser;
use loadgen::cli::{Cli, Command, Failure, UsageError};
use serde::Serialize;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Sets the returned flag on SIGTERM or SIGINT.
fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .context("cannot install signal handler")?;
    }
    Ok(flag)
}

/// Writes the summary to `json` (atomically), else to stdout.
fn emit<T: Serialize>(summary: &T, json: Option<&Path>) -> Result<()> {
    match json {
        Some(path) => {
            let text = serde_json::to_vec_pretty(summary).context("cannot encode the summary")?;
            netio::fs::write_atomically(path, &text)
                .with_context(|| format!("cannot write the summary to {}", path.display()))
        }
        None => {
            let text = serde_json::to_string(summary).context("cannot encode the summary")?;
            println!("{text}");
            Ok(())
        }
    }
}

fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Send(args) => {
            let cfg = args.validate()?;
            let stop = stop_flag()?;
            let summary = loadgen::send::run(&cfg, &stop)?;
            Ok(emit(&summary, cfg.json.as_deref())?)
        }
        Command::Sink(args) => {
            let cfg = args.validate()?;
            // An interface that does not exist is a usage error (exit 2), found before running.
            netio::iface::lookup(&cfg.interface).map_err(|e| UsageError(e.to_string()))?;
            let stop = stop_flag()?;
            let summary = loadgen::sink::run(&cfg, &stop)?;
            Ok(emit(&summary, cfg.json.as_deref())?)
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout with code 0; errors to stderr with code 2.
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(e)) => {
            eprintln!("loadgen: {e}");
            ExitCode::from(2)
        }
        Err(Failure::Runtime(e)) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::from(1)
        }
    }
}
