//! `labctl doctor`: prints each check with its status and, for problems, the fix.

use labctl::doctor::{Status, run};

#[derive(clap::Args)]
pub struct Args {
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

pub fn exec(args: Args) -> anyhow::Result<()> {
    let checks = run();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&checks)?);
    } else {
        for check in &checks {
            let mark = match check.status {
                Status::Ok => "ok  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            println!("[{mark}] {:<22} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("       {:<22} fix: {fix}", "");
            }
        }
    }
    let failed = checks.iter().filter(|c| c.status == Status::Fail).count();
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed; see the fixes above");
    }
    Ok(())
}
