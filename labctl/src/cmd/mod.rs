//! One module per `labctl` subcommand: argument parsing and output; the work lives in the library.
pub mod bench;
pub mod clean;
pub mod compare;
pub mod demo;
pub mod doctor;
pub mod report;
pub mod run;
pub mod topo;
