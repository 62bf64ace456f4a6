//! The verdict rule of `labctl ab`, criterion-style: B is "faster" or "slower" than A on a
//! metric only when the change is significant at 95 % AND the whole 95 % interval of the
//! relative change lies beyond the metric's noise threshold; anything else is "no change
//! detected" (a real but small difference included: it is shown, not called).
//!
//! "Faster" means better in the metric's own direction (more delivered, a higher zero-loss
//! rate, less CPU per packet, lower latency), "slower" worse.

use crate::compare::judge::Better;
use crate::stats::{median_interval_rank, paired_relative_difference, t975};

/// Largest pair count [`Judgement::pairs_to_resolve`] searches.
pub const MAX_PAIRS_ESTIMATE: usize = 1000;

/// What a metric's change amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// B better than A beyond the noise threshold, at 95 %.
    Faster,
    /// B worse than A beyond the noise threshold, at 95 %.
    Slower,
    /// Neither: the interval reaches into the noise band.
    NoChange,
}

impl Change {
    pub fn label(self) -> &'static str {
        match self {
            Change::Faster => "faster",
            Change::Slower => "slower",
            Change::NoChange => "no change detected",
        }
    }
}

/// How a judgement's 95 % interval was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Student's t on the mean of the per-pair changes: for metrics whose per-pair changes
    /// scatter about evenly (CPU per packet, rates, the median latency).
    MeanT,
    /// The order statistics of the per-pair changes around their median (the sign test's
    /// interval, [`judge_tail`]): for a tail percentile, whose per-pair changes are skewed by
    /// the odd stall and make a t-interval on a few pairs overconfident.
    MedianOrder,
}

/// Fewest pairs a distribution-free 95 % interval of the median change exists for: with n
/// pairs the widest such interval (smallest to largest change) misses the median with
/// probability 2 x 0.5^n, at most 5 % from n = 6 on.
pub const MIN_TAIL_PAIRS: usize = 6;

/// The change of B against A on one metric of one point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Judgement {
    /// B / A - 1 over the pairs (0.05 = B's value 5 % higher): their mean, or their median
    /// with [`Method::MedianOrder`].
    pub relative: f64,
    /// 95 % interval of `relative`.
    pub interval: (f64, f64),
    pub method: Method,
    /// Pairs (repeats measured on both sides) it rests on.
    pub pairs: usize,
    pub change: Change,
    /// True when the interval excludes 0 but not the noise band: a difference too small to call.
    pub within_noise: bool,
}

impl Judgement {
    /// Half the width of the 95 % interval (a fraction: 0.15 = ±15 %).
    pub fn half_width(&self) -> f64 {
        (self.interval.1 - self.interval.0) / 2.0
    }

    /// When this interval is wider than ±`threshold`, about how many pairs would narrow it to
    /// ±`threshold` at the spread these pairs showed: the half-width is t(n-1) x sd / √n, so
    /// the per-pair spread is recovered from it and the smallest n whose half-width fits is
    /// searched; `MAX_PAIRS_ESTIMATE + 1` stands for "more than [`MAX_PAIRS_ESTIMATE`]". With a
    /// half-width of the threshold, a true change of twice the threshold is called. `None`
    /// when the interval is already that narrow or the estimate cannot be made.
    pub fn pairs_to_resolve(&self, threshold: f64) -> Option<usize> {
        let half = self.half_width();
        let t_interval = self.method == Method::MeanT;
        if !t_interval
            || threshold <= 0.0
            || half <= threshold
            || !half.is_finite()
            || self.pairs < 2
        {
            return None;
        }
        let n = self.pairs as f64;
        let sd = half * n.sqrt() / t975(n - 1.0)?;
        let fits = |m: usize| {
            t975(m as f64 - 1.0).is_some_and(|t| t * sd / (m as f64).sqrt() <= threshold)
        };
        Some(
            (self.pairs + 1..=MAX_PAIRS_ESTIMATE)
                .find(|&m| fits(m))
                .unwrap_or(MAX_PAIRS_ESTIMATE + 1),
        )
    }
}

/// Judges paired repeats `(a, b)` of a metric whose better direction is `better`, against a
/// noise threshold (a fraction: 0.05 = ±5 %). `Err` says why there is no judgement.
pub fn judge(pairs: &[(f64, f64)], better: Better, threshold: f64) -> Result<Judgement, String> {
    let usable = pairs.iter().filter(|(a, _)| a.abs() > f64::EPSILON).count();
    if usable < 2 {
        return Err(format!(
            "{usable} usable pair(s) of repeats: at least 2 are needed for an interval"
        ));
    }
    let d = paired_relative_difference(pairs)
        .ok_or_else(|| "A's values are 0: no relative change".to_owned())?;
    let interval = d
        .interval
        .ok_or_else(|| "no interval from the repeats".to_owned())?;
    Ok(verdict(
        d.relative,
        interval,
        Method::MeanT,
        usable,
        better,
        threshold,
    ))
}

/// Judges paired repeats of a tail percentile (the p99 latency) without assuming its per-pair
/// changes are normal: the change is the median of the per-pair changes B_i / A_i - 1 and its
/// 95 % interval the sign test's, from the k-th smallest to the k-th largest change (k from
/// the binomial distribution, [`median_interval_rank`]). With 6 to 8 pairs that is the
/// smallest to the largest: B is called slower only when every pair is slower by more than
/// the threshold. Fewer than [`MIN_TAIL_PAIRS`] pairs: no judgement (a t-interval on 4 pairs
/// of p99 called an A/A of one binary 80 % slower once in five CI runs on the 2-core VM).
pub fn judge_tail(
    pairs: &[(f64, f64)],
    better: Better,
    threshold: f64,
) -> Result<Judgement, String> {
    let mut changes: Vec<f64> = pairs
        .iter()
        .filter(|(a, _)| a.abs() > f64::EPSILON)
        .map(|(a, b)| b / a - 1.0)
        .filter(|c| c.is_finite())
        .collect();
    let n = changes.len();
    let k = median_interval_rank(n).ok_or_else(|| {
        format!(
            "{n} usable pair(s): a tail percentile is judged on at least {MIN_TAIL_PAIRS} \
             (a distribution-free 95 % interval of the median change needs them)"
        )
    })?;
    changes.sort_by(f64::total_cmp);
    let median = if n % 2 == 1 {
        changes[n / 2]
    } else {
        (changes[n / 2 - 1] + changes[n / 2]) / 2.0
    };
    let interval = (changes[k - 1], changes[n - k]);
    Ok(verdict(
        median,
        interval,
        Method::MedianOrder,
        n,
        better,
        threshold,
    ))
}

/// The rule, given a change, its 95 % interval and the metric's direction and threshold.
fn verdict(
    relative: f64,
    interval: (f64, f64),
    method: Method,
    pairs: usize,
    better: Better,
    threshold: f64,
) -> Judgement {
    // The interval in the "better" direction: positive = B better.
    let (lo, hi) = match better {
        Better::Higher => interval,
        Better::Lower => (-interval.1, -interval.0),
    };
    let change = if lo > threshold {
        Change::Faster
    } else if hi < -threshold {
        Change::Slower
    } else {
        Change::NoChange
    };
    let significant = interval.0 > 0.0 || interval.1 < 0.0;
    Judgement {
        relative,
        interval,
        method,
        pairs,
        change,
        within_noise: change == Change::NoChange && significant,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ab::metrics;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn pairs(a: &[f64], b: &[f64]) -> Vec<(f64, f64)> {
        a.iter().copied().zip(b.iter().copied()).collect()
    }

    #[test]
    fn direction_decides_faster_or_slower() {
        let a = [100.0, 102.0, 98.0, 101.0, 99.0];
        let b: Vec<f64> = a.iter().map(|v| v * 1.3).collect();
        // 30 % higher: faster for a rate, slower for CPU per packet.
        let up = judge(&pairs(&a, &b), Better::Higher, 0.05).unwrap();
        assert_eq!(up.change, Change::Faster, "{up:?}");
        assert!((up.relative - 0.3).abs() < 1e-9);
        assert_eq!(up.pairs, 5);
        let cpu = judge(&pairs(&a, &b), Better::Lower, 0.05).unwrap();
        assert_eq!(cpu.change, Change::Slower, "{cpu:?}");
        let down: Vec<f64> = a.iter().map(|v| v * 0.7).collect();
        assert_eq!(
            judge(&pairs(&a, &down), Better::Lower, 0.05)
                .unwrap()
                .change,
            Change::Faster
        );
        assert_eq!(
            judge(&pairs(&a, &down), Better::Higher, 0.05)
                .unwrap()
                .change,
            Change::Slower
        );
    }

    #[test]
    fn a_significant_change_inside_the_noise_band_is_no_change() {
        // 3 % slower every time: significant, but the interval does not clear 5 %.
        let a = [100.0, 101.0, 99.0, 100.0];
        let b = [103.0, 104.1, 101.9, 103.0];
        let j = judge(&pairs(&a, &b), Better::Lower, 0.05).unwrap();
        assert_eq!(j.change, Change::NoChange, "{j:?}");
        assert!(j.within_noise);
        // With a 2 % threshold the same data is slower.
        let j = judge(&pairs(&a, &b), Better::Lower, 0.02).unwrap();
        assert_eq!(j.change, Change::Slower, "{j:?}");
    }

    #[test]
    fn a_large_but_uncertain_change_is_no_change() {
        // Mean +20 %, but one pair went the other way: the interval reaches below +5 %.
        let a = [100.0, 100.0, 100.0];
        let b = [150.0, 90.0, 120.0];
        let j = judge(&pairs(&a, &b), Better::Lower, 0.05).unwrap();
        assert!((j.relative - 0.2).abs() < 1e-9);
        assert_eq!(j.change, Change::NoChange, "{j:?}");
        assert!(!j.within_noise);
    }

    #[test]
    fn a_wide_interval_says_how_many_pairs_would_resolve_the_noise_band() {
        // Spread about ±10 % per pair over 4 pairs: an interval of about ±16 %.
        let a = [100.0, 100.0, 100.0, 100.0];
        let b = [110.0, 90.0, 112.0, 92.0];
        let j = judge(&pairs(&a, &b), Better::Lower, 0.05).unwrap();
        assert_eq!(j.change, Change::NoChange, "{j:?}");
        let half = j.half_width();
        assert!(half > 0.10 && half < 0.25, "{j:?}");
        let needed = j.pairs_to_resolve(0.05).unwrap();
        // The spread the 4 pairs showed, and the interval it gives at `needed` pairs and one
        // fewer: the first fits the band, the second does not.
        let sd = half * 2.0 / t975(3.0).unwrap();
        let half_at = |m: usize| t975(m as f64 - 1.0).unwrap() * sd / (m as f64).sqrt();
        assert!(half_at(needed) <= 0.05, "{needed}: ±{}", half_at(needed));
        assert!(
            half_at(needed - 1) > 0.05,
            "{needed}: ±{}",
            half_at(needed - 1)
        );
        assert!(needed > 4, "{needed}");
        // A threshold as wide as the interval needs no more pairs.
        assert_eq!(j.pairs_to_resolve(half + 1e-9), None);
        // A tight interval needs none either.
        let tight = judge(
            &pairs(&a, &[101.0, 100.5, 100.8, 100.2]),
            Better::Lower,
            0.05,
        )
        .unwrap();
        assert_eq!(tight.pairs_to_resolve(0.05), None, "{tight:?}");
    }

    #[test]
    fn too_few_pairs_or_zero_baseline_is_no_judgement() {
        assert!(judge(&[(1.0, 2.0)], Better::Lower, 0.05).is_err());
        assert!(judge(&[], Better::Lower, 0.05).is_err());
        assert!(judge(&[(0.0, 2.0), (0.0, 3.0)], Better::Lower, 0.05).is_err());
    }

    /// Standard normal deviate (Box-Muller), enough for a simulation.
    fn normal(rng: &mut StdRng) -> f64 {
        let (u, v): (f64, f64) = (rng.random_range(1e-12..1.0), rng.random());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }

    /// How often the rule, with noise threshold `threshold`, calls a change in `trials`
    /// simulated A/A comparisons of 10 metrics with 5 repeats and per-repeat noise `sd`
    /// (relative, on each side) on top of a drift both sides share.
    fn false_alarms(sd: f64, threshold: f64, trials: usize) -> usize {
        let mut rng = StdRng::seed_from_u64(10);
        (0..trials)
            .filter(|_| {
                (0..10).any(|_| {
                    let p: Vec<(f64, f64)> = (0..5)
                        .map(|_| {
                            let drift = 100.0 * (1.0 + 0.1 * normal(&mut rng));
                            let a = drift * (1.0 + sd * normal(&mut rng));
                            let b = drift * (1.0 + sd * normal(&mut rng));
                            (a, b)
                        })
                        .collect();
                    judge(&p, Better::Lower, threshold).is_ok_and(|j| j.change != Change::NoChange)
                })
            })
            .count()
    }

    #[test]
    fn same_against_same_rarely_calls_a_change() {
        // 3 % noise per repeat and side (process CPU per packet on the 2-core VM), 5 % noise
        // threshold: a false alarm takes five pairs that all lean one way by more than 5 % with
        // little spread. At most 1 in 1000 comparisons of 10 metrics.
        let quiet = false_alarms(0.03, 0.05, 4000);
        eprintln!("3 % noise, 5 % threshold: {quiet} of 4000 A/A comparisons called a change");
        assert!(quiet <= 4, "{quiet} of 4000");
        // 10 % noise (the median latency on a busy machine) defeats a 5 % threshold - about
        // 1 comparison in 12 would call a change - which is why latency gets 20 %.
        let noisy = false_alarms(0.10, 0.05, 4000);
        eprintln!("10 % noise, 5 % threshold: {noisy} of 4000");
        assert!(noisy > 100, "{noisy} of 4000");
        let latency = false_alarms(0.10, metrics::LATENCY_NOISE, 4000);
        eprintln!("10 % noise, 20 % threshold: {latency} of 4000");
        assert!(latency <= 4, "{latency} of 4000");
        // 25 % noise (a p99 tail: one build's spans 2x over repeats) against the tail's 50 %.
        let tail = false_alarms(0.25, metrics::TAIL_NOISE, 4000);
        eprintln!("25 % noise, 50 % threshold: {tail} of 4000");
        assert!(tail <= 4, "{tail} of 4000");
    }

    #[test]
    fn a_tail_is_judged_on_the_median_with_every_pair_past_the_band() {
        // The p99 pairs of the A/A that failed a CI run: B 63-98 % above A in all 4 pairs. On 4
        // pairs there is no distribution-free interval: not judged.
        let a = [32.0, 30.5, 35.0, 33.5, 31.0, 34.0];
        let b = [57.0, 60.4, 57.1, 61.0, 60.0, 55.0];
        let four = judge_tail(&pairs(&a[..4], &b[..4]), Better::Lower, 0.5);
        assert!(four.is_err_and(|e| e.contains("at least 6")));
        // The same on 6 pairs: every pair is beyond +50 %, slower, and the change is the median.
        let six = judge_tail(&pairs(&a, &b), Better::Lower, 0.5).unwrap();
        assert_eq!(six.change, Change::Slower, "{six:?}");
        assert_eq!(six.method, Method::MedianOrder);
        assert_eq!(six.pairs, 6);
        let mut changes: Vec<f64> = a.iter().zip(&b).map(|(a, b)| b / a - 1.0).collect();
        changes.sort_by(f64::total_cmp);
        assert!((six.relative - (changes[2] + changes[3]) / 2.0).abs() < 1e-12);
        assert_eq!(six.interval, (changes[0], changes[5]));
        assert_eq!(six.pairs_to_resolve(0.5), None);
        // One pair of the six only 10 % up: the interval reaches into the band, no call, though
        // the mean change is still +65 %.
        let mut mixed = b;
        mixed[4] = 34.1;
        let j = judge_tail(&pairs(&a, &mixed), Better::Lower, 0.5).unwrap();
        assert_eq!(j.change, Change::NoChange, "{j:?}");
        assert!(
            j.within_noise,
            "every pair is up: significant, not beyond the band"
        );
        // And B well below A in every pair is faster.
        let halved: Vec<f64> = a.iter().map(|v| v * 0.4).collect();
        let j = judge_tail(&pairs(&a, &halved), Better::Lower, 0.5).unwrap();
        assert_eq!(j.change, Change::Faster, "{j:?}");
    }

    /// One p99 of a repeat: quiet at about 50 us, or, with probability `stall`, 3-15 x that
    /// (a millisecond stall of something else on the machine landed in the repeat).
    fn tail_sample(rng: &mut StdRng, stall: f64) -> f64 {
        let quiet = 50.0 * (0.2 * normal(rng)).exp();
        if rng.random_bool(stall) {
            quiet * rng.random_range(3.0..15.0)
        } else {
            quiet
        }
    }

    #[test]
    fn a_stalled_tail_fools_the_median_rule_less_than_a_t_interval() {
        // A/A comparisons of a p99 whose repeats stall 30 % of the time: how often Student's t
        // on 4 pairs (the rule before) and the sign-test rule on 6 pairs call a 50 % change.
        let mut rng = StdRng::seed_from_u64(12);
        let mut pairs_of = |n: usize| -> Vec<(f64, f64)> {
            (0..n)
                .map(|_| (tail_sample(&mut rng, 0.3), tail_sample(&mut rng, 0.3)))
                .collect()
        };
        let trials = 10_000;
        let called = |j: Result<Judgement, String>| j.is_ok_and(|j| j.change != Change::NoChange);
        let t_on_4 = (0..trials)
            .filter(|_| called(judge(&pairs_of(4), Better::Lower, TAIL)))
            .count();
        let median_on_6 = (0..trials)
            .filter(|_| called(judge_tail(&pairs_of(6), Better::Lower, TAIL)))
            .count();
        eprintln!(
            "A/A of a stalling p99: t on 4 pairs called {t_on_4}, the median rule on 6 pairs \
             {median_on_6} of {trials}"
        );
        assert!(median_on_6 * 4 < t_on_4, "{median_on_6} vs {t_on_4}");
        assert!(median_on_6 <= 10, "{median_on_6} of {trials}");
    }

    const TAIL: f64 = metrics::TAIL_NOISE;

    #[test]
    fn a_real_change_is_found_through_the_noise() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut found = 0;
        for _ in 0..500 {
            let p: Vec<(f64, f64)> = (0..5)
                .map(|_| {
                    let a = 100.0 * (1.0 + 0.03 * normal(&mut rng));
                    (a, 1.25 * a * (1.0 + 0.03 * normal(&mut rng)))
                })
                .collect();
            if judge(&p, Better::Lower, 0.05).unwrap().change == Change::Slower {
                found += 1;
            }
        }
        assert!(
            found >= 495,
            "a 25 % worsening was called in {found} of 500"
        );
    }
}
