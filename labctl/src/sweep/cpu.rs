//! The whole machine's CPU time over a measurement window, per CPU, from `/proc/stat`: user,
//! system, irq and softirq included, so work the kernel does for a system under test (its
//! forwarding runs in softirq, charged to no process) is counted.
//!
//! How much: `busy` = window - idle - iowait - steal per CPU. The kernel measures idle time
//! exactly (tickless idle accounting, reported in 10 ms units), so `busy` is right to about
//! 10 ms per read; io_uring waits count as iowait, which is idle. What kind: the user, system,
//! irq and softirq columns are sampled at timer ticks (no `IRQ_TIME_ACCOUNTING` here), and since
//! the tick stops while a CPU idles, a CPU woken thousands of times a second is sampled mostly
//! while busy: those columns overstate work at low load and only show its composition.

use super::sample::clock_ticks_per_second;
use crate::results::{CpuTimes, MachineCpu};
use std::time::Instant;

/// One reading of `/proc/stat`'s per-CPU lines, in clock ticks.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    /// (cpu, [user, nice, system, idle, iowait, irq, softirq, steal]).
    cpus: Vec<(u32, [u64; 8])>,
}

impl CpuSnapshot {
    /// Reads `/proc/stat` now; `None` if it cannot be read or parsed.
    pub fn take() -> Option<CpuSnapshot> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        Some(CpuSnapshot {
            at: Instant::now(),
            cpus: parse_proc_stat(&text),
        })
    }

    /// The machine's CPU between `earlier` and `self`, with the CPU sets of the roles.
    pub fn since(&self, earlier: &CpuSnapshot, sut: &[u32], loadgen: &[u32]) -> MachineCpu {
        let tick = clock_ticks_per_second();
        let window = self.at.duration_since(earlier.at).as_secs_f64();
        let cpus = self
            .cpus
            .iter()
            .filter_map(|(cpu, now)| {
                let (_, then) = earlier.cpus.iter().find(|(c, _)| c == cpu)?;
                let d = |i: usize| now[i].saturating_sub(then[i]) as f64 / tick;
                Some(CpuTimes {
                    cpu: *cpu,
                    busy: (window - d(3) - d(4) - d(7)).max(0.0),
                    user: d(0),
                    nice: d(1),
                    system: d(2),
                    idle: d(3),
                    iowait: d(4),
                    irq: d(5),
                    softirq: d(6),
                    steal: d(7),
                })
            })
            .collect();
        MachineCpu {
            window_s: window,
            cpus,
            sut_cpus: sut.to_vec(),
            loadgen_cpus: loadgen.to_vec(),
        }
    }
}

/// The `cpuN` lines of `/proc/stat` (the aggregate `cpu` line is left out).
pub fn parse_proc_stat(text: &str) -> Vec<(u32, [u64; 8])> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let cpu: u32 = fields.next()?.strip_prefix("cpu")?.parse().ok()?;
            let mut values = [0u64; 8];
            for v in &mut values {
                *v = fields.next()?.parse().ok()?;
            }
            Some((cpu, values))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_cpu_lines_are_parsed_and_the_total_is_skipped() {
        let text = "cpu  10 0 20 300 4 0 6 0 0 0\ncpu0 5 0 10 150 2 0 3 0 0 0\ncpu1 5 0 10 150 2 1 3 1 0 0\nintr 1 2\n";
        let cpus = parse_proc_stat(text);
        assert_eq!(cpus.len(), 2);
        assert_eq!(cpus[1], (1, [5, 0, 10, 150, 2, 1, 3, 1]));
    }

    #[test]
    fn deltas_are_seconds_per_cpu() {
        let earlier = CpuSnapshot {
            at: Instant::now(),
            cpus: vec![(0, [0; 8]), (1, [0; 8])],
        };
        let tick = clock_ticks_per_second() as u64;
        let later = CpuSnapshot {
            at: earlier.at + std::time::Duration::from_secs(2),
            cpus: vec![
                (0, [tick, 0, tick / 2, tick / 2, 0, 0, 0, 0]),
                (1, [0, 0, 0, 0, 2 * tick, 0, 0, 0]),
            ],
        };
        let m = later.since(&earlier, &[1], &[0]);
        assert!((m.window_s - 2.0).abs() < 1e-9);
        // 2 s window, 0.5 s idle: 1.5 s busy; the sampled columns say the same here.
        assert!((m.cpus[0].busy - 1.5).abs() < 1e-9);
        assert!((m.cpus[0].sampled_work() - 1.5).abs() < 1e-9);
        assert_eq!(m.sut_busy(), Some(0.0), "iowait is not work");
        assert!((m.loadgen_busy().unwrap() - 1.5).abs() < 1e-9);
    }
}
