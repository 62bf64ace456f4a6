//! labctl: builds multicast lab topologies in network namespaces, runs the systems under test
//! and the load generator in them, sweeps scenarios and writes reports.
//!
//! `unsafe` is denied crate-wide and allowed only in [`process`] (entering a namespace in a
//! forked child before exec); each block carries a `// SAFETY:` comment.

#![deny(unsafe_code)]

// Bench: names, namespaces, topologies, processes.
pub mod binaries;
pub mod clean;
pub mod doctor;
pub mod names;
pub mod netns;
pub mod placement;
#[allow(unsafe_code)]
pub mod process;
pub mod testing;
pub mod topology;

// Sweeps and reports.
pub mod compare;
pub mod report;
pub mod results;
pub mod scenario;
pub mod stats;
pub mod sweep;
pub mod systems;
