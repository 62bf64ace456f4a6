//! `labctl clean`: removes leftovers of crashed runs (only names with the lab's prefixes).

use labctl::privilege::require_root;

#[derive(clap::Args)]
pub struct Args {
    /// Only the leftovers of this run id (namespaces mlab-RUN-*); default: every lab namespace
    /// (mlab-*) and root-namespace link (ml + 6 hex + -).
    #[arg(long = "run", value_name = "RUN_ID")]
    run: Option<String>,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    require_root()?;
    let report = match &args.run {
        Some(id) => labctl::clean::clean_run(id)?,
        None => labctl::clean::clean()?,
    };
    println!(
        "removed {} namespace(s), {} root-namespace link(s); stopped {} process(es)",
        report.namespaces.len(),
        report.links.len(),
        report.processes_stopped
    );
    for name in report.namespaces.iter().chain(&report.links) {
        println!("  {name}");
    }
    if !report.errors.is_empty() {
        anyhow::bail!("could not remove: {}", report.errors.join("; "));
    }
    Ok(())
}
