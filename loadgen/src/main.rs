//! `loadgen` binary: parse the command line, run `send` or `sink`, write the JSON summary.
//!
//! Exit codes: 0 success, 1 runtime error, 2 usage error (bad flags or values).

use anyhow::{Context, Result};
use clap::Parser;
use loadgen::cli::{Cli, Command, UsageError};
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Send(args) => {
            let cfg = args.validate()?;
            let stop = stop_flag()?;
            let summary = loadgen::send::run(&cfg, &stop)?;
            emit(&summary, cfg.json.as_deref())
        }
        Command::Sink(args) => {
            let cfg = args.validate()?;
            let stop = stop_flag()?;
            let summary = loadgen::sink::run(&cfg, &stop)?;
            emit(&summary, cfg.json.as_deref())
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
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            if e.downcast_ref::<UsageError>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
