//! `labctl topo up|down|list`: build a topology and leave it up, remove one, list them.

use anyhow::Result;
use labctl::privilege::require_root;
use labctl::topology::{Endpoint, Template, Topology, TopologyOptions};

#[derive(clap::Subcommand)]
pub enum TopoCommand {
    /// Build a topology, wait until it is ready, print it and leave it up.
    #[command(
        after_help = "Examples:\n  labctl topo up direct\n  labctl topo up snooping --name demo1\n  labctl topo up fanout 4\n  labctl topo down demo1"
    )]
    Up {
        /// direct | chain | snooping | fanout K (K = 1..=64; also fanout:K, fanout-K).
        #[arg(value_name = "TEMPLATE", num_args = 1..=2, required = true)]
        template: Vec<String>,
        /// Run id to use instead of a random one: 1 to 6 characters of a-z, 0-9.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a topology (its namespaces, links and processes) by run id.
    Down {
        /// Run id, as printed by `topo up` or `topo list`.
        name: String,
    },
    /// List the lab topologies on this machine.
    List,
}

pub fn exec(cmd: TopoCommand) -> Result<()> {
    match cmd {
        TopoCommand::Up { template, name } => up(&template.join(" "), name),
        TopoCommand::Down { name } => {
            require_root()?;
            let removed = labctl::topology::remove_run(&name)?;
            println!("removed topology {name} ({removed} namespaces)");
            Ok(())
        }
        TopoCommand::List => list(),
    }
}

fn up(template: &str, name: Option<String>) -> Result<()> {
    let template: Template = template.parse()?;
    require_root()?;
    labctl::process::install_signal_cleanup()?;
    let mut opts = TopologyOptions::new(template);
    opts.name = name;
    let topology = Topology::up(&opts)?;
    print_topology(&topology);
    println!("remove with: labctl topo down {}", topology.run_id());
    topology.persist();
    Ok(())
}

fn print_topology(t: &Topology) {
    println!("topology {} ({})", t.run_id(), t.template());
    for (role, ns) in t.namespaces() {
        println!("  namespace {role:<5} {ns}");
    }
    let show = |label: &str, e: &Endpoint| {
        println!("  {label:<10} {:<18} {:<16} {}", e.netns, e.ifname, e.addr)
    };
    show("gen", t.generator());
    if let Some(e) = t.relay_in() {
        show("relay-in", e);
    }
    for e in t.relay_out() {
        show("relay-out", e);
    }
    for e in t.sinks() {
        show("sink", e);
    }
    if let Some(e) = t.bridge() {
        show("bridge", e);
    }
}

fn list() -> Result<()> {
    let topologies = Topology::list()?;
    if topologies.is_empty() {
        println!("no lab topologies");
    }
    for t in topologies {
        let template = t
            .template
            .map_or_else(|| "unknown".to_string(), |t| t.to_string());
        println!("{}  {:<10}  {}", t.run_id, template, t.namespaces.join(" "));
    }
    Ok(())
}
