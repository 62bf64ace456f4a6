//! `labctl report RESULTS.json [--out DIR]`: re-render the HTML report of a results file.

use anyhow::Context as _;
use labctl::results::Results;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// A results.json written by `labctl run`.
    pub results: PathBuf,
    /// Directory for index.html (default: the directory of RESULTS.json).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let results = Results::load(&args.results)?;
    let dir = match args.out {
        Some(dir) => dir,
        None => args
            .results
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    p.to_path_buf()
                }
            })
            .context("RESULTS.json has no parent directory; give --out DIR")?,
    };
    let path = labctl::report::write(&results, &dir)?;
    println!("{}", path.display());
    Ok(())
}
