//! `relay`: run the multicast relay (`relay run`) or talk to a running one (`relay ctl`).
//!
//! Exit status, decided in `main`: 0 success; 1 an error, or a `ctl` request the relay refused.

mod cli_run;
mod cli_tables;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "relay",
    version,
    about = "Multicast relay: AF_PACKET ingress with PACKET_FANOUT workers, io_uring batching, fan-out rules, IGMP helper-socket pool, runtime control socket",
    after_help = "Rule syntax: IN_IF:GROUP:PORT[@SOURCE][ vlan=VID] -> OUT_IF:GROUP:PORT[, OUT_IF:GROUP:PORT...]\n\
                  Without vlan= a rule matches untagged frames only; vlan=VID (1-4094) matches that 802.1Q VLAN.\n\
                  Refused: groups in 224.0.0.0/24 (link-local), outputs on loopback interfaces, and with\n\
                  --ttl-mode set (or --egress udp) an output (interface, group) equal to any rule's input.\n\
                  Config file (--config): {\"rules\": [\"RULE\", {\"input\": \"IN_IF:GROUP:PORT[@SOURCE]\", \"outputs\": [\"OUT_IF:GROUP:PORT\"]}]}\n\
                  See relay/README.md for the control protocol and membership strategies."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the relay until SIGTERM/SIGINT.
    Run(cli_run::RunArgs),
    /// Send one request to a running relay's control socket.
    Ctl(CtlArgs),
}

#[derive(clap::Args)]
struct CtlArgs {
    /// Control socket of the relay.
    #[arg(long, default_value = relay::control::DEFAULT_CONTROL_PATH)]
    control: PathBuf,
    /// Print the raw JSON reply instead of a table.
    #[arg(long)]
    json: bool,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    #[command(subcommand)]
    request: CtlRequest,
}

#[derive(Subcommand)]
enum CtlRequest {
    /// Add rules: 'IN_IF:GROUP:PORT[@SOURCE][ vlan=VID] -> OUT_IF:GROUP:PORT, ...' (vlan=VID:
    /// frames of that 802.1Q VLAN; without it, untagged frames only). Several are sent over one
    /// connection, one request each; a refused rule does not stop the others.
    Add {
        #[arg(required = true, value_name = "RULE")]
        rules: Vec<String>,
    },
    /// Remove a rule by id (see `list`) or by its exact text.
    Remove { rule_or_id: String },
    /// List installed rules.
    List,
    /// Counters per rule, output and worker; drops by reason; timing with --timing.
    Stats,
    /// Helper sockets per interface, their groups, and join failures.
    Memberships,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RELAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => cli_run::run(args).map(|()| Outcome::Done),
        Command::Ctl(args) => ctl(args),
    };
    match result {
        Ok(Outcome::Done) => ExitCode::SUCCESS,
        Ok(Outcome::Refused) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("relay: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How a subcommand ended (errors aside); `main` turns it into the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    /// The relay answered a `ctl` request with an error (already printed).
    Refused,
}

fn ctl(args: CtlArgs) -> anyhow::Result<Outcome> {
    use serde_json::json;
    let timeout = std::time::Duration::from_secs(args.timeout.max(1));
    let mut client = relay::control::Client::connect(&args.control, timeout)?;
    let request = match &args.request {
        CtlRequest::Add { rules } => return ctl_add(&mut client, rules, args.json),
        CtlRequest::Remove { rule_or_id } => match rule_or_id.trim().parse::<u64>() {
            Ok(id) => json!({"cmd": "remove", "id": id}),
            Err(_) => json!({"cmd": "remove", "rule": rule_or_id}),
        },
        CtlRequest::List => json!({"cmd": "list"}),
        CtlRequest::Stats => json!({"cmd": "stats"}),
        CtlRequest::Memberships => json!({"cmd": "memberships"}),
    };
    let reply = client.request(&request)?;
    let ok = reply["ok"].as_bool() == Some(true);
    if args.json {
        println!("{reply}");
    } else if !ok {
        print_refusal(&reply, "");
    } else {
        let text = match args.request {
            CtlRequest::Add { .. } => String::new(), // printed by `ctl_add`
            CtlRequest::Remove { .. } => format!("removed rule {}\n", reply["id"]),
            CtlRequest::List => cli_tables::rules(&reply),
            CtlRequest::Stats => cli_tables::stats(&reply),
            CtlRequest::Memberships => cli_tables::memberships(&reply),
        };
        print!("{text}");
    }
    Ok(if ok { Outcome::Done } else { Outcome::Refused })
}

/// `relay ctl add RULE...`: one request per rule over one connection, in order.
fn ctl_add(
    client: &mut relay::control::Client,
    rules: &[String],
    json: bool,
) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::Done;
    for rule in rules {
        let reply = client.request(&serde_json::json!({"cmd": "add", "rule": rule}))?;
        let ok = reply["ok"].as_bool() == Some(true);
        if json {
            println!("{reply}");
        } else if ok {
            println!("added rule {}", reply["id"]);
        } else {
            print_refusal(&reply, &format!(" ({rule})"));
        }
        if !ok {
            outcome = Outcome::Refused;
        }
    }
    Ok(outcome)
}

/// Prints a refused request's error (and errno) to stderr.
fn print_refusal(reply: &serde_json::Value, context: &str) {
    let errno = reply["errno"]
        .as_i64()
        .map(|e| format!(" (errno {e})"))
        .unwrap_or_default();
    eprintln!(
        "relay ctl: error{errno}{context}: {}",
        reply["error"].as_str().unwrap_or("unknown error")
    );
}
