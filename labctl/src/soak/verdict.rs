//! The verdict of a soak run, from its samples, its flap windows and the sink's gap timeline:
//! the relay's memory stays flat, its descriptors do not grow, and packets are lost only while
//! a link was down (plus a settling time after it came back).

use serde::{Deserialize, Serialize};

/// Largest allowed growth of the relay's RSS from the early to the late part of the run.
pub const MAX_RSS_GROWTH: f64 = 0.05;

/// One reading of the relay's process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the traffic started.
    pub t_s: f64,
    pub rss_kib: u64,
    pub fds: u32,
}

/// A link flap, in CLOCK_MONOTONIC seconds (the clock of the sink's gap timeline).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlapWindow {
    pub interface: String,
    pub down_at_s: f64,
    pub up_at_s: f64,
}

/// Packets found missing in one CLOCK_MONOTONIC second (the sink's gap timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LostSecond {
    pub second: u64,
    pub lost: u64,
}

/// What the soak judged, each with its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// Median RSS of the early part (after warm-up) and of the last part, KiB.
    pub rss_early_kib: u64,
    pub rss_late_kib: u64,
    pub rss_growth: f64,
    pub fds_early: u32,
    pub fds_late: u32,
    /// Packets lost in flap windows, and outside them (including never-seen tails).
    pub lost_in_flaps: u64,
    pub lost_outside_flaps: u64,
    /// Why the soak failed; empty when it passed.
    pub failures: Vec<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Judges a run of `duration_s` seconds. `settle_s` is added after each flap's end; `tail_lost`
/// counts packets sent but neither received nor seen missing (lost at the very end).
pub fn judge(
    duration_s: f64,
    samples: &[Sample],
    flaps: &[FlapWindow],
    lost: &[LostSecond],
    settle_s: f64,
    tail_lost: u64,
) -> Verdict {
    let early = window(samples, duration_s * 0.1, duration_s * 0.3);
    let late = window(samples, duration_s * 0.8, duration_s + 1.0);
    let median_rss = |s: &[Sample]| median(s.iter().map(|x| x.rss_kib).collect());
    let max_fds = |s: &[Sample]| s.iter().map(|x| x.fds).max().unwrap_or(0);
    let (rss_early, rss_late) = (median_rss(&early), median_rss(&late));
    let rss_growth = if rss_early > 0 {
        rss_late as f64 / rss_early as f64 - 1.0
    } else {
        0.0
    };
    let in_flap = |second: u64| {
        flaps.iter().any(|f| {
            let s = second as f64;
            s + 1.0 >= f.down_at_s && s <= f.up_at_s + settle_s
        })
    };
    let lost_in_flaps: u64 = lost
        .iter()
        .filter(|l| in_flap(l.second))
        .map(|l| l.lost)
        .sum();
    let lost_outside: u64 = lost
        .iter()
        .filter(|l| !in_flap(l.second))
        .map(|l| l.lost)
        .sum();
    let mut verdict = Verdict {
        rss_early_kib: rss_early,
        rss_late_kib: rss_late,
        rss_growth,
        fds_early: max_fds(&early),
        fds_late: max_fds(&late),
        lost_in_flaps,
        lost_outside_flaps: lost_outside + tail_lost,
        failures: Vec::new(),
    };
    verdict.failures = failures(&verdict, early.is_empty() || late.is_empty());
    verdict
}

fn failures(v: &Verdict, too_short: bool) -> Vec<String> {
    let mut failures = Vec::new();
    if too_short {
        failures.push("too few samples to compare early and late memory".to_owned());
    }
    if v.rss_growth > MAX_RSS_GROWTH {
        failures.push(format!(
            "the relay's RSS grew {:.1} % ({} -> {} KiB; at most {:.0} % allowed)",
            v.rss_growth * 100.0,
            v.rss_early_kib,
            v.rss_late_kib,
            MAX_RSS_GROWTH * 100.0
        ));
    }
    if v.fds_late > v.fds_early {
        failures.push(format!(
            "the relay's open descriptors grew from {} to {}",
            v.fds_early, v.fds_late
        ));
    }
    if v.lost_outside_flaps > 0 {
        failures.push(format!(
            "{} packets were lost outside the link-flap windows",
            v.lost_outside_flaps
        ));
    }
    failures
}

/// Samples with `from <= t_s < to`.
fn window(samples: &[Sample], from: f64, to: f64) -> Vec<Sample> {
    samples
        .iter()
        .copied()
        .filter(|s| s.t_s >= from && s.t_s < to)
        .collect()
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(n: u32, rss: impl Fn(u32) -> u64, fds: impl Fn(u32) -> u32) -> Vec<Sample> {
        (0..n)
            .map(|i| Sample {
                t_s: f64::from(i),
                rss_kib: rss(i),
                fds: fds(i),
            })
            .collect()
    }

    fn flap(down: f64, up: f64) -> FlapWindow {
        FlapWindow {
            interface: "x".into(),
            down_at_s: down,
            up_at_s: up,
        }
    }

    #[test]
    fn flat_memory_and_losses_inside_windows_pass() {
        let samples = flat(100, |_| 10_000, |_| 40);
        let lost = [
            LostSecond {
                second: 1030,
                lost: 500,
            },
            LostSecond {
                second: 1032,
                lost: 20,
            },
        ];
        let v = judge(100.0, &samples, &[flap(1030.2, 1031.2)], &lost, 2.0, 0);
        assert!(v.passed(), "{:?}", v.failures);
        assert_eq!((v.lost_in_flaps, v.lost_outside_flaps), (520, 0));
    }

    #[test]
    fn growth_leaks_and_stray_losses_fail() {
        let samples = flat(100, |i| 10_000 + u64::from(i) * 20, |i| 40 + i / 50);
        let lost = [LostSecond {
            second: 1060,
            lost: 3,
        }];
        let v = judge(100.0, &samples, &[flap(1030.2, 1031.2)], &lost, 2.0, 2);
        assert_eq!(v.failures.len(), 3, "{:?}", v.failures);
        assert_eq!(v.lost_outside_flaps, 5);
        assert!(v.rss_growth > 0.05);
        assert!(v.fds_late > v.fds_early);
    }

    #[test]
    fn no_samples_is_a_failure_not_a_pass() {
        let v = judge(100.0, &[], &[], &[], 2.0, 0);
        assert!(!v.passed());
    }
}
