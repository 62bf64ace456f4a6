//! Samples a set of processes from /proc while traffic runs: CPU (utime + stime + cutime +
//! cstime from /proc/PID/stat), RSS (VmRSS from /proc/PID/status), open fds (/proc/PID/fd).
//! Per-process /proc is exact; /proc/stat's busy columns are tick-sampled (docs/architecture.md,
//! "CPU accounting").

use crate::results::Usage;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Time between samples of a few processes.
const INTERVAL: Duration = Duration::from_millis(200);
/// Time between samples of many processes (1000 socats): sampling must not load the machine.
const INTERVAL_MANY: Duration = Duration::from_secs(1);
/// Above this many processes, [`INTERVAL_MANY`] is used.
const MANY: usize = 100;

/// One reading of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcReading {
    /// utime + stime + cutime + cstime, clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub fds: u32,
}

/// Reads one process; `None` when it is gone.
pub fn read_process(pid: u32) -> Option<ProcReading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let cpu_ticks = parse_stat_cpu(&stat)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u32)
        .unwrap_or(0);
    Some(ProcReading {
        cpu_ticks,
        rss_kib,
        fds,
    })
}

/// utime + stime + cutime + cstime (fields 14-17) of a /proc/PID/stat line. The command name
/// (field 2) may contain spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): field n is fields[n - 3].
    (14..=17)
        .map(|n| fields.get(n - 3)?.parse::<u64>().ok())
        .sum()
}

/// Clock ticks per second of /proc's CPU times (USER_HZ, 100 on Linux).
pub fn clock_ticks_per_second() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .map_or(100.0, |t| t as f64)
}

#[derive(Debug, Default)]
struct Tally {
    first: HashMap<u32, u64>,
    last: HashMap<u32, u64>,
    peak_rss_kib: u64,
    processes: u32,
    fds: u32,
}

impl Tally {
    fn sample(&mut self, pids: &[u32]) {
        let mut rss = 0;
        let mut alive = 0;
        let mut fds = 0;
        for &pid in pids {
            if let Some(r) = read_process(pid) {
                self.first.entry(pid).or_insert(r.cpu_ticks);
                self.last.insert(pid, r.cpu_ticks);
                rss += r.rss_kib;
                fds += r.fds;
                alive += 1;
            }
        }
        self.peak_rss_kib = self.peak_rss_kib.max(rss);
        self.processes = self.processes.max(alive);
        self.fds = self.fds.max(fds);
    }

    fn usage(&self) -> Usage {
        let ticks: u64 = self
            .last
            .iter()
            .map(|(pid, last)| last.saturating_sub(self.first.get(pid).copied().unwrap_or(*last)))
            .sum();
        Usage {
            cpu_s: ticks as f64 / clock_ticks_per_second(),
            peak_rss_kib: self.peak_rss_kib,
            processes: self.processes,
            fds: self.fds,
        }
    }
}

/// A background sampler of two process sets: the system under test and the load generator's
/// sinks (the same-run CPU yardstick).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<(Tally, Tally)>,
}

impl Sampler {
    /// Takes a first sample of both sets now, then samples every 200 ms (every second for more
    /// than 100 processes) until [`Sampler::finish`], which takes a last sample.
    pub fn start(system: Vec<u32>, loadgen: Vec<u32>) -> std::io::Result<Sampler> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut sys = Tally::default();
        let mut gen_tally = Tally::default();
        sys.sample(&system);
        gen_tally.sample(&loadgen);
        let flag = stop.clone();
        let interval = if system.len() + loadgen.len() > MANY {
            INTERVAL_MANY
        } else {
            INTERVAL
        };
        let handle = std::thread::Builder::new()
            .name("proc-sampler".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    // Sleep in short steps so `finish` returns promptly.
                    let until = std::time::Instant::now() + interval;
                    while std::time::Instant::now() < until && !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    sys.sample(&system);
                    gen_tally.sample(&loadgen);
                }
                (sys, gen_tally)
            })?;
        Ok(Sampler { stop, handle })
    }

    /// Stops sampling: (system usage, load-generator usage).
    pub fn finish(self) -> (Usage, Usage) {
        self.stop.store(true, Ordering::Relaxed);
        match self.handle.join() {
            Ok((sys, lg)) => (sys.usage(), lg.usage()),
            Err(_) => (Usage::default(), Usage::default()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_counts_fields_after_the_command_name() {
        let line = "1234 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 20 0 1 0";
        // fields 14..=17 are 11, 12, 13, 14
        assert_eq!(parse_stat_cpu(line), Some(11 + 12 + 13 + 14));
        assert_eq!(parse_stat_cpu("garbage"), None);
    }

    #[test]
    fn samples_this_process() {
        let me = std::process::id();
        let r = read_process(me).expect("own /proc entry");
        assert!(r.rss_kib > 0 && r.fds > 0, "{r:?}");
        // Burn a little CPU between samples so the tally sees it.
        let sampler = Sampler::start(vec![me], vec![]).unwrap();
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while t.elapsed() < Duration::from_millis(400) {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        let (usage, lg) = sampler.finish();
        assert!(usage.cpu_s > 0.05, "{usage:?}");
        assert_eq!(usage.processes, 1);
        assert_eq!(lg.processes, 0);
    }
}
