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
}

impl Outcome {
    /// The exit status of this outcome.
    pub fn exit_code(self) -> std::process::ExitCode {
        match self {
            Outcome::Done => std::process::ExitCode::SUCCESS,
            Outcome::GateFailed => {
                std::process::ExitCode::from(labctl::compare::REGRESSION_EXIT_CODE)
            }
        }
    }
}
