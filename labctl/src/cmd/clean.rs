//! `labctl clean`: removes leftovers of crashed runs (only names with the lab's prefixes).

use labctl::doctor::require_root;

#[derive(clap::Args)]
pub struct Args {}

pub fn exec(_args: Args) -> anyhow::Result<()> {
    require_root()?;
    let report = labctl::clean::clean()?;
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
