//! (being built)

#[derive(clap::Args)]
pub struct Args {}

pub fn exec(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
