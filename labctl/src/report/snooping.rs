//! The finding for a system that forwards on a plain link but delivers nothing behind an
//! IGMP-snooping switch: it does not join its input groups, so the switch never sends them to
//! it. The lab's own relay is checked the same way as anyone's.

use crate::results::{PointResult, Results};
use crate::scenario::{SystemKind, TopologyKind};

/// One sentence per system that delivered nothing at every measured point behind the snooping
/// switch (the scenario's `snooping` topology at fan-out 1).
pub fn silent_behind_snooping(r: &Results) -> Vec<String> {
    let snooping = r.scenario.definition.topology == TopologyKind::Snooping;
    let mut out = Vec::new();
    for system in r.systems() {
        if system.kind == SystemKind::Direct {
            continue;
        }
        let measured: Vec<&PointResult> = r
            .points
            .iter()
            .filter(|p| p.point.system == system && p.status.is_measured() && p.offered > 0)
            .collect();
        let behind_switch = |p: &&&PointResult| snooping && p.point.fanout == 1;
        let behind: Vec<&&PointResult> = measured.iter().filter(behind_switch).collect();
        if behind.is_empty() || behind.iter().any(|p| p.delivered > 0) {
            continue;
        }
        let joins = behind
            .iter()
            .filter_map(|p| p.capacity.as_ref())
            .map(|c| format!("{} of {}", c.accepted, c.tried))
            .next()
            .map(|j| format!(" It joined {j} input groups in the relay namespace."))
            .unwrap_or_default();
        let plain = measured
            .iter()
            .filter(|p| !behind_switch(p))
            .any(|p| p.delivered > 0);
        out.push(format!(
            "{system} delivered nothing behind the IGMP-snooping switch{}: does it join its input groups?{joins}",
            if plain {
                ", while it delivered on plain links"
            } else {
                ""
            }
        ));
    }
    out
}
