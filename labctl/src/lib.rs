//! labctl: builds multicast lab topologies in network namespaces, runs the systems under test
//! and the load generator in them, sweeps scenarios and writes reports.
//!
//! `unsafe` is denied crate-wide and allowed only in two private modules of [`process`]:
//! `process::enter_namespace` (the `pre_exec` hook that enters a namespace in the forked child)
//! and `process::scheduler` (`sched_setscheduler`, which nix does not wrap); each block carries
//! a `// SAFETY:` comment.

//! Modules depend one way, each only on modules listed before it (lowest first; checked by
//! reading their `crate::` paths, tests aside):
//!
//! 1. [`names`], [`netns`], [`binaries`], [`stats`], [`privilege`], [`toml_location`],
//!    [`shipped`]: no lab module below them
//! 2. [`process`]: spawning in a namespace, placement of a process, scratch directories (uses
//!    netns, binaries)
//! 3. [`topology`]: building and tearing down topologies (uses names, netns, process, privilege)
//! 4. [`definition`]: system definition files and their templates (uses toml_location);
//!    [`scenario`]: scenario files (uses topology's limits, definition)
//! 5. [`results`]: results.json and what both sweep and report read (uses scenario, stats)
//! 6. [`placement`]: CPUs and scheduling of the roles (uses process, topology, scenario, results)
//! 7. [`systems`]: the systems under test (uses process, topology, scenario, results)
//! 8. [`report`], [`compare`]: read results (use results, scenario, stats); [`ab`]: the A/B
//!    verdicts of two relay builds (uses compare's metric directions, and binaries)
//! 9. [`sweep`]: runs points and writes results and the report (uses everything above);
//!    [`soak`]: a long run of the relay under rule churn and link flaps (uses sweep's sampler)
//! 10. [`doctor`], [`clean`], [`testing`]: whole-lab checks, cleanup and test support
//!
//! The `labctl` binary's `cmd/` modules sit on top and decide the exit code in `main`.

#![deny(unsafe_code)]

// Bench: names, namespaces, topologies, processes.
pub mod binaries;
pub mod clean;
pub mod doctor;
pub mod names;
pub mod netns;
pub mod placement;
pub mod privilege;
pub mod process;
pub mod shipped;
pub mod testing;
pub mod toml_location;
pub mod topology;

// Sweeps and reports.
pub mod ab;
pub mod compare;
pub mod definition;
pub mod report;
pub mod results;
pub mod scenario;
pub mod soak;
pub mod stats;
pub mod sweep;
pub mod systems;
