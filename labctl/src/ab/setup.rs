//! Preparing a scenario for `labctl ab`: it must pair every relay of build `a` with the same
//! relay of build `b`; the two binaries and the number of repeats are then set in it, so the
//! run's results.json records which binaries were compared.

use super::{BUILD_A, BUILD_B};
use crate::scenario::{Scenario, System};
use anyhow::{Result, ensure};
use std::path::PathBuf;

/// Fewest repeats that give a confidence interval worth having (t with 2 degrees of freedom).
pub const MIN_REPEATS: u32 = 3;
/// Most repeats (the scenario's own limit).
pub const MAX_REPEATS: u32 = 100;

/// Checks that `scenario` has builds `a` and `b` and pairs every system of build `a` with the
/// same kind of build `b`.
pub fn check(scenario: &Scenario) -> Result<()> {
    let hint = "labctl ab needs [builds.a] and [builds.b] and systems such as relay/pool@a and relay/pool@b (see scenarios/ab.toml)";
    for build in [BUILD_A, BUILD_B] {
        ensure!(
            scenario.builds.contains_key(build),
            "scenario {}: no [builds.{build}]: {hint}",
            scenario.name
        );
    }
    let of = |build: &str| -> Vec<&System> {
        scenario
            .systems
            .iter()
            .filter(|s| s.build.as_deref() == Some(build))
            .collect()
    };
    let (a, b) = (of(BUILD_A), of(BUILD_B));
    ensure!(
        !a.is_empty(),
        "scenario {}: no system of build a: {hint}",
        scenario.name
    );
    for s in &a {
        ensure!(
            b.iter().any(|x| x.kind == s.kind),
            "scenario {}: {s} has no {}@{BUILD_B} to compare with: {hint}",
            scenario.name,
            s.kind
        );
    }
    Ok(())
}

/// Sets the binaries of builds `a` and `b` and, if given, the number of repeats.
pub fn apply(scenario: &mut Scenario, a: PathBuf, b: PathBuf, repeats: Option<u32>) -> Result<()> {
    if let Some(n) = repeats {
        ensure!(
            (MIN_REPEATS..=MAX_REPEATS).contains(&n),
            "--repeats {n}: give {MIN_REPEATS}..={MAX_REPEATS} (a 95 % interval needs a few pairs)"
        );
        scenario.repeats = n;
    }
    ensure!(
        scenario.repeats >= MIN_REPEATS,
        "scenario {}: repeats = {}: labctl ab needs at least {MIN_REPEATS} (or pass --repeats)",
        scenario.name,
        scenario.repeats
    );
    for (build, binary) in [(BUILD_A, a), (BUILD_B, b)] {
        if let Some(entry) = scenario.builds.get_mut(build) {
            entry.relay = Some(binary);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Scenario {
        Scenario::parse(text, Path::new("t.toml")).unwrap()
    }

    #[test]
    fn builds_a_and_b_are_required_and_paired() {
        let ok = parse(
            "name = \"t\"\nsystems = [\"relay/pool@a\", \"relay/pool@b\", \"direct\"]\nstreams = [1]\n[builds.a]\n[builds.b]\n",
        );
        check(&ok).unwrap();
        let no_b = parse("name = \"t\"\nsystems = [\"relay/pool@a\"]\nstreams = [1]\n[builds.a]\n");
        let err = check(&no_b).unwrap_err().to_string();
        assert!(err.contains("[builds.b]"), "{err}");
        let unpaired = parse(
            "name = \"t\"\nsystems = [\"relay/pool@a\", \"relay/single@b\"]\nstreams = [1]\n[builds.a]\n[builds.b]\n",
        );
        let err = check(&unpaired).unwrap_err().to_string();
        assert!(err.contains("relay/pool@a has no relay/pool@b"), "{err}");
    }

    #[test]
    fn binaries_and_repeats_are_set() {
        let mut s = parse(
            "name = \"t\"\nsystems = [\"relay/pool@a\", \"relay/pool@b\"]\nstreams = [1]\nrepeats = 4\n[builds.a]\n[builds.b]\nargs = [\"--handicap-ns\", \"10\"]\n",
        );
        apply(&mut s, "/x/a".into(), "/x/b".into(), Some(6)).unwrap();
        assert_eq!(s.repeats, 6);
        assert_eq!(s.builds["a"].relay.as_deref(), Some(Path::new("/x/a")));
        assert_eq!(s.builds["b"].relay.as_deref(), Some(Path::new("/x/b")));
        assert_eq!(s.builds["b"].args, ["--handicap-ns", "10"]);
        let err = apply(&mut s, "/x/a".into(), "/x/b".into(), Some(1)).unwrap_err();
        assert!(err.to_string().starts_with("--repeats 1"), "{err}");
        s.repeats = 2;
        assert!(apply(&mut s, "/x/a".into(), "/x/b".into(), None).is_err());
    }
}
