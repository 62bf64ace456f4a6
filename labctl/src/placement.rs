//! CPU placement of a sweep: the load generator (sender and sink) on CPUs of its own, the sinks
//! at real-time priority, the system under test on the others, and receive processing steered
//! to the side it belongs to, so that the system under test cannot slow its own load down.
//!
//! On 2 or 3 CPUs the sender and the sink share the first CPU (the sink at SCHED_FIFO, so a busy
//! sender cannot starve it); from 4 CPUs each gets its own. labctl itself runs on the load
//! generator's CPUs.
//!
//! The sender stays in the normal class: a SCHED_FIFO sender that keeps its CPU busy (with the
//! softirq work run in its context, which this kernel charges to it) uses up the CPU's
//! real-time budget (`kernel.sched_rt_runtime_us`, 95 % of each second) and the kernel then
//! stops every real-time task there, sender and sink, for the rest of the second. Measured:
//! about 45 ms a second with the CPU idle and the sender runnable, and every frame then queued
//! in the sink's socket counted 20-70 ms late, which made a relay's fan-out 1 zero-loss search
//! end at about half its rate (by latency, with nothing lost) in about half of the searches.
//!
//! On veth, receive processing
//! (the kernel's IP input, forwarding, a relay's AF_PACKET tap) runs on the CPU that sent the
//! frame unless Receive Packet Steering moves it: the relay namespace's ingress interface
//! steers to the system's CPUs (so the kernel's forwarding and a relay's receive work are paid
//! by the system under test) and the sink interfaces steer to the sink's CPU.
//!
//! With one CPU, or `isolation = "off"`, nothing is placed and the run says so.

use crate::netns;
use crate::process::ProcessPlacement;
use crate::process::sched;
use crate::results::{IsolationRecord, RolePlacement};
use crate::scenario::IsolationMode;
use crate::topology::Topology;
use anyhow::Result;
use std::collections::BTreeMap;

/// SCHED_FIFO priority of the sinks (the sender stays in the normal class, see the module's
/// documentation), so a busy sender cannot starve them.
pub const SINK_PRIORITY: i32 = 20;

/// Where every role of a sweep runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub requested: IsolationMode,
    /// CPUs of the sender and the sinks (empty when not applied).
    pub loadgen_cpus: Vec<u32>,
    /// CPUs of the system under test (empty when not applied).
    pub sut_cpus: Vec<u32>,
    pub sender: ProcessPlacement,
    pub sink: ProcessPlacement,
    pub system: ProcessPlacement,
    /// Why isolation is off or partial.
    pub problems: Vec<String>,
}

impl Placement {
    /// No placement: every role inherits labctl's CPUs and scheduling.
    pub fn shared(requested: IsolationMode, problems: Vec<String>) -> Placement {
        Placement {
            requested,
            loadgen_cpus: Vec::new(),
            sut_cpus: Vec::new(),
            sender: ProcessPlacement::default(),
            sink: ProcessPlacement::default(),
            system: ProcessPlacement::default(),
            problems,
        }
    }

    /// The plan for the CPUs labctl may use (`cpus`, ascending) and whether real-time
    /// scheduling is allowed (`Err` says why not).
    pub fn plan(mode: IsolationMode, cpus: &[u32], realtime: Result<(), String>) -> Placement {
        if mode == IsolationMode::Off {
            return Placement::shared(mode, Vec::new());
        }
        if cpus.len() < 2 {
            return Placement::shared(
                mode,
                vec![format!(
                    "isolation needs at least 2 CPUs, this run may use {} ({cpus:?}): the load generator and the system under test share it, and a slow system can slow its own load",
                    cpus.len()
                )],
            );
        }
        let (sender_cpus, sink_cpus, sut) = if cpus.len() >= 4 {
            (vec![cpus[0]], vec![cpus[1]], cpus[2..].to_vec())
        } else {
            (vec![cpus[0]], vec![cpus[0]], cpus[1..].to_vec())
        };
        let mut problems = Vec::new();
        let realtime_ok = match realtime {
            Ok(()) => true,
            Err(why) => {
                problems.push(format!(
                    "no real-time scheduling ({why}): the sinks run at normal priority on the load generator's CPUs, where a busy sender can starve them"
                ));
                false
            }
        };
        let mut loadgen = sender_cpus.clone();
        loadgen.extend(sink_cpus.iter().filter(|c| !sender_cpus.contains(c)));
        Placement {
            requested: mode,
            loadgen_cpus: loadgen,
            sut_cpus: sut.clone(),
            sender: ProcessPlacement {
                cpus: sender_cpus,
                fifo_priority: None,
            },
            sink: ProcessPlacement {
                cpus: sink_cpus,
                fifo_priority: realtime_ok.then_some(SINK_PRIORITY),
            },
            system: ProcessPlacement {
                cpus: sut,
                fifo_priority: None,
            },
            problems,
        }
    }

    /// The plan for this machine: the CPUs labctl's thread may use and a real-time probe.
    pub fn detect(mode: IsolationMode) -> Placement {
        if mode == IsolationMode::Off {
            return Placement::shared(mode, Vec::new());
        }
        match sched::allowed_cpus() {
            Ok(cpus) => Placement::plan(mode, &cpus, sched::realtime_allowed()),
            Err(e) => Placement::shared(
                mode,
                vec![format!("cannot read this process's CPU affinity: {e}")],
            ),
        }
    }

    /// The placement of the `direct` system's points: there is no system, so its sinks (and
    /// their receive work) take the system's CPUs and the sender keeps the load generator's.
    /// `direct` then measures the sender and the link, not one CPU shared by sender and sink,
    /// as the same-run reference the relays are compared with. (The isolated ceiling is
    /// measured with the common placement: it is the limit of every other point.)
    pub fn for_direct(&self) -> Placement {
        let mut direct = self.clone();
        if self.is_applied() {
            direct.sink.cpus = self.sut_cpus.clone();
        }
        direct
    }

    /// True when the roles run on separate CPUs.
    pub fn is_applied(&self) -> bool {
        !self.sut_cpus.is_empty()
    }

    /// Moves the calling thread (labctl's, and every thread it starts from now on) onto the
    /// load generator's CPUs; returns the previous CPUs to restore.
    pub fn pin_labctl(&self) -> Result<Option<Vec<u32>>> {
        if !self.is_applied() {
            return Ok(None);
        }
        let before = sched::allowed_cpus()?;
        sched::pin_current_thread(&self.loadgen_cpus)?;
        Ok(Some(before))
    }

    /// What results.json records: roles, steering and problems (the ceiling is added by the
    /// sweep).
    pub fn record(&self) -> IsolationRecord {
        let role = |p: &ProcessPlacement| RolePlacement {
            cpus: p.cpus.clone(),
            scheduling: p.scheduling(),
        };
        let mut roles = BTreeMap::new();
        roles.insert("sender".to_owned(), role(&self.sender));
        roles.insert("sink".to_owned(), role(&self.sink));
        roles.insert("system".to_owned(), role(&self.system));
        roles.insert(
            "labctl".to_owned(),
            RolePlacement {
                cpus: self.loadgen_cpus.clone(),
                scheduling: "SCHED_OTHER".to_owned(),
            },
        );
        IsolationRecord {
            requested: self.requested,
            applied: self.is_applied(),
            roles,
            steering: self.steering_description(),
            problems: self.problems.clone(),
            ceilings: Vec::new(),
        }
    }

    fn steering_description(&self) -> Vec<String> {
        if !self.is_applied() {
            return vec![
                "none: receive processing runs on the CPU that sent each frame (veth)".to_owned(),
            ];
        }
        vec![
            format!(
                "relay namespace ingress interface: RPS to CPU(s) {:?} (the system's): the kernel's receive, forwarding and a relay's receive work are charged to the system",
                self.sut_cpus
            ),
            format!(
                "sink interfaces: RPS to CPU(s) {:?} (the sink's): receiving is charged to the load generator",
                self.sink.cpus
            ),
            "generator side (and the snooping bridge): not steered, it runs on the sender's CPU"
                .to_owned(),
        ]
    }

    /// Applies the receive steering to a built topology (no-op without isolation).
    pub fn steer(&self, topology: &Topology) -> Result<()> {
        if !self.is_applied() {
            return Ok(());
        }
        if let Some(relay_in) = topology.relay_in() {
            write_rps(&relay_in.netns, &relay_in.ifname, &self.sut_cpus)?;
        }
        for sink in topology.sinks() {
            write_rps(&sink.netns, &sink.ifname, &self.sink.cpus)?;
        }
        Ok(())
    }
}

fn write_rps(netns: &str, ifname: &str, cpus: &[u32]) -> Result<()> {
    let mask = cpu_mask(cpus);
    let writes = netns::rps_files(ifname, 1)
        .into_iter()
        .map(|file| (file, mask.clone()))
        .collect();
    netns::write_sysfs(netns, writes)
}

/// A CPU list as the kernel's bitmap text: 32-bit hex words, most significant first, joined by
/// commas (`[1]` -> `00000002`, `[0, 33]` -> `00000002,00000001`).
pub fn cpu_mask(cpus: &[u32]) -> String {
    let words = cpus.iter().map(|c| c / 32 + 1).max().unwrap_or(1) as usize;
    let mut bits = vec![0u32; words];
    for &c in cpus {
        bits[(c / 32) as usize] |= 1 << (c % 32);
    }
    bits.iter()
        .rev()
        .map(|w| format!("{w:08x}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_gives_its_sink_the_system_cpus() {
        let p = Placement::plan(IsolationMode::Auto, &[0, 1], Ok(()));
        let d = p.for_direct();
        assert_eq!(
            (d.sender.cpus.clone(), d.sink.cpus.clone()),
            (vec![0], vec![1])
        );
        assert_eq!(d.sink.fifo_priority, p.sink.fifo_priority);
        let shared = Placement::shared(IsolationMode::Off, Vec::new());
        assert_eq!(
            shared.for_direct(),
            shared,
            "nothing to move without isolation"
        );
    }

    #[test]
    fn two_cpus_give_the_first_to_the_load_generator() {
        let p = Placement::plan(IsolationMode::Auto, &[0, 1], Ok(()));
        assert!(p.is_applied());
        assert_eq!(
            (p.loadgen_cpus.clone(), p.sut_cpus.clone()),
            (vec![0], vec![1])
        );
        assert_eq!(p.sender.cpus, [0]);
        assert_eq!(p.sink.cpus, [0]);
        assert_eq!(p.sink.fifo_priority, Some(SINK_PRIORITY));
        // Never a real-time sender: it would use up the CPU's real-time budget.
        assert_eq!(p.sender.fifo_priority, None);
        assert_eq!(p.system.fifo_priority, None);
        let r = p.record();
        assert!(r.applied);
        assert_eq!(r.roles["sink"].scheduling, "SCHED_FIFO 20");
        assert_eq!(r.roles["sender"].scheduling, "SCHED_OTHER");
        assert_eq!(r.roles["system"].cpus, [1]);
    }

    #[test]
    fn four_cpus_give_sender_and_sink_one_each() {
        let p = Placement::plan(IsolationMode::Auto, &[2, 3, 4, 5], Ok(()));
        assert_eq!(p.sender.cpus, [2]);
        assert_eq!(p.sink.cpus, [3]);
        assert_eq!(p.loadgen_cpus, [2, 3]);
        assert_eq!(p.sut_cpus, [4, 5]);
    }

    #[test]
    fn one_cpu_or_off_places_nothing_and_says_why() {
        let p = Placement::plan(IsolationMode::Auto, &[0], Ok(()));
        assert!(!p.is_applied());
        assert!(
            p.problems[0].contains("at least 2 CPUs"),
            "{:?}",
            p.problems
        );
        assert!(p.sender.is_inherited() && p.system.is_inherited());
        let off = Placement::plan(IsolationMode::Off, &[0, 1, 2, 3], Ok(()));
        assert!(!off.is_applied() && off.problems.is_empty());
        assert!(!off.record().applied);
    }

    #[test]
    fn no_realtime_keeps_the_cpus_and_says_so() {
        let p = Placement::plan(
            IsolationMode::Auto,
            &[0, 1],
            Err("SCHED_FIFO refused: Operation not permitted".into()),
        );
        assert!(p.is_applied());
        assert_eq!((p.sender.fifo_priority, p.sink.fifo_priority), (None, None));
        assert!(p.problems[0].contains("no real-time"), "{:?}", p.problems);
    }

    #[test]
    fn a_thread_limited_to_one_cpu_gets_no_isolation() {
        // The CPUs this thread may use decide: pinned to one, isolation is impossible.
        let placement = std::thread::spawn(|| {
            let first = sched::allowed_cpus().unwrap()[0];
            sched::pin_current_thread(&[first]).unwrap();
            Placement::detect(IsolationMode::Auto)
        })
        .join()
        .unwrap();
        assert!(!placement.is_applied());
        assert!(
            placement.problems[0].contains("at least 2 CPUs"),
            "{:?}",
            placement.problems
        );
    }

    #[test]
    fn masks_are_kernel_bitmaps() {
        assert_eq!(cpu_mask(&[1]), "00000002");
        assert_eq!(cpu_mask(&[0, 1]), "00000003");
        assert_eq!(cpu_mask(&[0, 33]), "00000002,00000001");
        assert_eq!(cpu_mask(&[]), "00000000");
    }
}
