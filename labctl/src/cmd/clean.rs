//! `labctl clean`: removes leftovers of crashed runs (only names with the lab's prefixes).

use labctl::privilege::require_root;

#[derive(clap::Args)]
pub struct Args {
    /// Only the leftovers of this run id (namespaces mlab-RUN-*); default: every lab namespace
    /// (mlab-*) and root-namespace link (ml + 6 hex + -). Either way, scratch directories
    /// $TMPDIR/mlab-* whose labctl is gone (their lock is free) are removed; a live run's are not.
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
        "removed {} namespace(s), {} root-namespace link(s), {} scratch director(y/ies); stopped {} process(es)",
        report.namespaces.len(),
        report.links.len(),
        report.scratch_dirs.len(),
        report.processes_stopped
    );
    for name in report
        .namespaces
        .iter()
        .chain(&report.links)
        .chain(&report.scratch_dirs)
    {
        println!("  {name}");
    }
    if !report.errors.is_empty() {
        anyhow::bail!("could not remove: {}", report.errors.join("; "));
    }
    Ok(())
}
