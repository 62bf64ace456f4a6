//! Point groups (`[[groups]]`): one scenario, several blocks of points with their own axes, so
//! that one run can measure, side by side, work that no single cartesian product expresses (for
//! example 1 stream at fan-out 1, 10 and 20 with the zero-loss search, and 1000 streams at a
//! fixed rate without it).
//!
//! A group sets any of `streams`, `fanout`, `rate_pps`, `size` and `duration_s`; what it does not
//! set comes from the top of the file. `zero_loss` is a group's own: with groups, a top-level
//! `zero_loss` is refused (a group that searches says so). Every group is expanded and checked
//! like a scenario of its own (its [`Scenario::views`]); two groups may not share a point.

use super::{Point, Scenario, ZeroLossSearch};
use serde::{Deserialize, Serialize};

/// One block of points with its own axes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointGroup {
    /// Short name, used in messages and in the report.
    pub name: String,
    #[serde(default)]
    pub streams: Option<Vec<u32>>,
    #[serde(default)]
    pub fanout: Option<Vec<u32>>,
    #[serde(default)]
    pub rate_pps: Option<Vec<f64>>,
    #[serde(default)]
    pub size: Option<Vec<u32>>,
    #[serde(default)]
    pub duration_s: Option<f64>,
    /// This group's zero-loss search (none: fixed rate only).
    #[serde(default)]
    pub zero_loss: Option<ZeroLossSearch>,
}

impl Scenario {
    /// The scenario as one or more plain scenarios without groups: itself when it has none,
    /// else one per group with the group's axes (inherited where the group sets none).
    pub fn views(&self) -> Vec<Scenario> {
        if self.groups.is_empty() {
            return vec![self.clone()];
        }
        self.groups.iter().map(|g| self.view_of(g)).collect()
    }

    fn view_of(&self, group: &PointGroup) -> Scenario {
        Scenario {
            streams: group
                .streams
                .clone()
                .unwrap_or_else(|| self.streams.clone()),
            fanout: group.fanout.clone().unwrap_or_else(|| self.fanout.clone()),
            rate_pps: group
                .rate_pps
                .clone()
                .unwrap_or_else(|| self.rate_pps.clone()),
            size: group.size.clone().unwrap_or_else(|| self.size.clone()),
            duration_s: group.duration_s.unwrap_or(self.duration_s),
            zero_loss: group.zero_loss.clone(),
            groups: Vec::new(),
            ..self.clone()
        }
    }

    /// The plain scenario (see [`views`](Self::views)) that `point` belongs to: its duration and
    /// zero-loss search are the ones to measure it with.
    pub fn for_point(&self, point: &Point) -> Scenario {
        self.views()
            .into_iter()
            .find(|view| view.contains(point))
            .unwrap_or_else(|| self.clone())
    }

    /// The coarsest zero-loss resolution of the sweep (all groups), if any
    /// point searches: what a finding over several groups can claim.
    pub fn search_resolution(&self) -> Option<f64> {
        self.views()
            .iter()
            .filter_map(|v| v.zero_loss.as_ref().map(|z| z.resolution))
            .reduce(f64::max)
    }

    /// The group a point belongs to, by name (none without groups).
    pub fn group_of(&self, point: &Point) -> Option<&str> {
        self.groups
            .iter()
            .find(|g| self.view_of(g).contains(point))
            .map(|g| g.name.as_str())
    }

    /// Whether `point`'s axes are among this (plain) scenario's.
    fn contains(&self, point: &Point) -> bool {
        self.streams.contains(&point.streams)
            && self.fanout.contains(&point.fanout)
            && self.rate_pps.contains(&point.rate_pps)
            && self.size.contains(&point.size)
    }

    /// Checks the groups: names plain and unique, no top-level search, every group valid as a
    /// scenario of its own, no point in two groups.
    pub(super) fn validate_groups(&self) -> Result<(), String> {
        if self.zero_loss.is_some() {
            return Err(
                "field `zero_loss`: with [[groups]], each group that searches has its own \
                 [groups.zero_loss]; remove the top-level one"
                    .to_owned(),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for group in &self.groups {
            if !super::is_plain_name(&group.name) || !names.insert(group.name.as_str()) {
                return Err(format!(
                    "field `groups`: name {:?} must be unique and use only letters, digits, '-' \
                     and '_'",
                    group.name
                ));
            }
            self.view_of(group)
                .validate_point_axes()
                .map_err(|e| format!("{e} (in group `{}`)", group.name))?;
        }
        self.check_overlap()
    }

    /// No point (streams x fan-out x rate x size) belongs to two groups: its results would be
    /// aggregated as one.
    fn check_overlap(&self) -> Result<(), String> {
        let views = self.views();
        for (i, a) in views.iter().enumerate() {
            for (j, b) in views.iter().enumerate().skip(i + 1) {
                let shared = a.points_of_pass(0).into_iter().find(|p| b.contains(p));
                if let Some(p) = shared {
                    return Err(format!(
                        "field `groups`: groups `{}` and `{}` both have the point streams={} \
                         fanout={} rate={} size={}; a point may be in one group only",
                        self.groups[i].name,
                        self.groups[j].name,
                        p.streams,
                        p.fanout,
                        p.rate_pps,
                        p.size
                    ));
                }
            }
        }
        Ok(())
    }

    /// One pass of this plain scenario's points (repeat index `repeat`), systems in turn.
    pub(super) fn points_of_pass(&self, repeat: u32) -> Vec<Point> {
        let variants = self.variants();
        let mut points = Vec::new();
        for &streams in &self.streams {
            for &fanout in &self.fanout {
                for variant in &variants {
                    for &rate_pps in &self.rate_pps {
                        for &size in &self.size {
                            for system in self.systems_in_turn(repeat) {
                                points.push(Point {
                                    system: system.clone(),
                                    streams,
                                    fanout,
                                    variant: variant.name.clone(),
                                    rate_pps,
                                    size,
                                    repeat,
                                });
                            }
                        }
                    }
                }
            }
        }
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const GROUPED: &str = r#"
        name = "g"
        systems = ["relay/pool", "direct"]
        size = [1000]
        rate_pps = [50.0]
        repeats = 2
        [[groups]]
        name = "one-stream"
        streams = [1]
        fanout = [1, 10]
        duration_s = 1.0
        [groups.zero_loss]
        min_pps = 1000.0
        max_pps = 100000.0
        [[groups]]
        name = "many"
        streams = [1000]
    "#;

    fn parse(text: &str) -> Result<Scenario, String> {
        Scenario::parse(text, Path::new("g.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn groups_expand_with_their_own_axes_and_search() {
        let s = parse(GROUPED).unwrap();
        let points = s.points();
        // (2 fan-outs + 1) x 2 systems x 2 repeats
        assert_eq!(points.len(), 12);
        let first_pass: Vec<_> = points.iter().filter(|p| p.repeat == 0).collect();
        assert_eq!(first_pass.len(), 6);
        let many = points.iter().find(|p| p.streams == 1000).unwrap();
        assert_eq!(
            many.fanout, 1,
            "fan-out inherited from the top (default [1])"
        );
        assert_eq!(s.group_of(many), Some("many"));
        let view = s.for_point(many);
        assert!(view.zero_loss.is_none());
        assert_eq!(view.duration_s, 3.0, "duration inherited");
        let one = points
            .iter()
            .find(|p| p.streams == 1 && p.fanout == 10)
            .unwrap();
        let view = s.for_point(one);
        assert_eq!(view.zero_loss.as_ref().map(|z| z.max_pps), Some(100000.0));
        assert_eq!(
            s.search_resolution(),
            Some(0.05),
            "the searching group's (default)"
        );
        assert_eq!(view.duration_s, 1.0);
        assert_eq!(s.group_of(one), Some("one-stream"));
    }

    #[test]
    fn consecutive_points_form_turns_of_every_system() {
        let s = parse(GROUPED).unwrap();
        let points = s.points();
        let turns: Vec<&[Point]> = points.chunk_by(|a, b| a.same_turn(b)).collect();
        assert_eq!(turns.len(), 6, "3 points x 2 passes");
        for turn in &turns {
            let systems: Vec<String> = turn.iter().map(|p| p.system.to_string()).collect();
            assert_eq!(systems.len(), 2, "{systems:?}");
            assert_ne!(systems[0], systems[1]);
        }
        assert_eq!(
            turns[0][0].system, turns[3][1].system,
            "odd passes reverse the turn"
        );
    }

    #[test]
    fn top_level_search_with_groups_is_refused() {
        let text = format!("{GROUPED}\n[zero_loss]\nmin_pps = 1.0\nmax_pps = 2.0\n");
        let err = parse(&text).unwrap_err();
        assert!(err.contains("each group that searches"), "{err}");
    }

    #[test]
    fn overlapping_groups_and_bad_group_axes_are_refused() {
        let overlap = GROUPED.replace("streams = [1000]", "streams = [1]");
        let err = parse(&overlap).unwrap_err();
        assert!(err.contains("both have the point streams=1"), "{err}");
        let bad = GROUPED.replace("fanout = [1, 10]", "fanout = [0]");
        let err = parse(&bad).unwrap_err();
        assert!(err.contains("(in group `one-stream`)"), "{err}");
        let dup = GROUPED.replace("name = \"many\"", "name = \"one-stream\"");
        assert!(parse(&dup).unwrap_err().contains("must be unique"));
    }

    #[test]
    fn without_groups_a_scenario_needs_streams() {
        let err = parse("name = \"x\"\nsystems = [\"direct\"]\n").unwrap_err();
        assert!(err.contains("field `streams`"), "{err}");
    }
}
