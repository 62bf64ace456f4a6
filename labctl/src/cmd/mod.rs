//! One module per `labctl` subcommand: argument parsing and output; the work lives in the library.
pub mod ab;
pub mod bench;
pub mod clean;
pub mod compare;
pub mod demo;
pub mod doctor;
pub mod report;
pub mod run;
pub mod soak;
pub mod topo;

/// How a subcommand ended (errors aside); `main` turns it into the exit status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Done,
    /// `labctl compare`: the gate fails (or, with `--expect-regression`, found nothing);
    /// `labctl soak`: its verdict fails; `labctl ab --fail-on-slower`: B is slower. Exit [`labctl::compare::REGRESSION_EXIT_CODE`].
    GateFailed,
    /// `labctl run`: the sweep ran, but some point failed (not measured for a reason other than
    /// a skip: a system that died or never got ready, a topology that could not be built).
    /// Exit [`POINTS_FAILED_EXIT_CODE`].
    PointsFailed,
}

/// Exit status of `labctl run` when some point failed.
pub const POINTS_FAILED_EXIT_CODE: u8 = 4;

impl Outcome {
    /// The exit status of this outcome.
    pub fn exit_code(self) -> std::process::ExitCode {
        match self {
            Outcome::Done => std::process::ExitCode::SUCCESS,
            Outcome::GateFailed => {
                std::process::ExitCode::from(labctl::compare::REGRESSION_EXIT_CODE)
            }
            Outcome::PointsFailed => std::process::ExitCode::from(POINTS_FAILED_EXIT_CODE),
        }
    }
}
