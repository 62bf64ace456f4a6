//! (being built)

#[derive(clap::Subcommand)]
pub enum TopoCommand {
    /// List lab topologies.
    List,
}

pub fn exec(_cmd: TopoCommand) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
