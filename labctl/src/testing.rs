//! Support for the end-to-end tests of every crate in the workspace (labctl's, the relay's):
//! the root check that skips loudly, the leftover check, and a topology that is torn down and
//! verified gone whether the test body passes or panics.

use crate::results::PointResult;
use crate::scenario::{Point, Scenario};
use crate::topology::{Template, Topology, TopologyOptions};
use std::collections::BTreeSet;

/// True when running as root. Otherwise prints `SKIPPED (needs root): TEST` to stderr, so a run
/// without root never passes silently, and returns false.
pub fn require_root(test: &str) -> bool {
    if crate::privilege::is_root() {
        return true;
    }
    eprintln!("SKIPPED (needs root): {test}");
    false
}

/// Every lab namespace (`mlab-*`) present now, as `ip netns list` would show it.
pub fn lab_namespaces() -> BTreeSet<String> {
    crate::netns::list()
        .unwrap_or_default()
        .into_iter()
        .filter(|name| crate::names::is_lab_namespace(name))
        .collect()
}

/// Namespaces of run `run_id` that are still present.
pub fn namespaces_of(run_id: &str) -> Vec<String> {
    let prefix = format!("mlab-{run_id}-");
    lab_namespaces()
        .into_iter()
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// The run id of the topology a measured point names in its notes (`None` for a point that
/// failed before it built one).
pub fn topology_of(result: &PointResult) -> Option<String> {
    result
        .notes
        .iter()
        .find_map(|n| n.strip_prefix(crate::sweep::point::TOPOLOGY_NOTE))
        .and_then(|n| n.split_whitespace().next())
        .map(str::to_owned)
}

/// Asserts that no namespace of the topology `result` names is left; panics as well when the
/// point names none. Tests running beside it build their own namespaces, so only these are
/// checked.
pub fn assert_topology_gone(result: &PointResult) {
    let run_id = topology_of(result).expect("the point names its topology");
    let left = namespaces_of(&run_id);
    assert!(left.is_empty(), "topology {run_id} left behind: {left:?}");
}

/// Runs `body` on a fresh topology of `template`, tears it down whatever happens, asserts that
/// none of its namespaces is left, then re-raises a panic of the body.
pub fn with_topology(template: Template, body: impl FnOnce(&Topology)) {
    let topology = match Topology::up(&TopologyOptions::new(template)) {
        Ok(topology) => topology,
        Err(err) => panic!("topology {template} up: {err:#}"),
    };
    let id = topology.run_id().to_string();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body(&topology)));
    let down = topology.down();
    let left = namespaces_of(&id);
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    if let Err(err) = down {
        panic!("topology {id} down: {err:#}");
    }
    assert!(left.is_empty(), "run {id} left namespaces behind: {left:?}");
}

/// Measures one point the way a sweep does (placement from the scenario, the scenario's system
/// definitions, no ceiling, no relay builds from the command line).
pub fn measure_point(scenario: &Scenario, point: &Point) -> PointResult {
    let placement = crate::placement::Placement::detect(scenario.isolation);
    let builds = std::collections::BTreeMap::new();
    let definitions =
        crate::sweep::point::load_definitions(scenario).expect("the scenario's definitions load");
    let bench = crate::sweep::point::Bench {
        scenario,
        placement: &placement,
        ceilings: &[],
        build_paths: &builds,
        definitions: &definitions,
    };
    let held = crate::sweep::exclusive::MeasureLock::acquire().expect("the measurement lock");
    crate::sweep::point::measure(&bench, point, &held)
}
