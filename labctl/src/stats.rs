//! Statistics of repeated measurements: mean, spread and a 95 % confidence interval of the mean
//! (Student's t), and the difference of two samples (Welch's t), which `compare` judges.
//!
//! With n repeats the interval is `mean ± t(0.975, n - 1) · s / √n`. It says how well the mean of
//! this run is known, not how much the next run will vary; with one repeat there is none.

use serde::{Deserialize, Serialize};
use statrs::distribution::{Binomial, ContinuousCDF, DiscreteCDF, StudentsT};

/// Mean and spread of one metric over a point's repeats.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Sample standard deviation (n - 1); 0 for one value.
    pub stddev: f64,
    /// Number of repeats that had a value.
    pub n: u32,
    /// Half-width of the 95 % confidence interval of the mean; `None` for fewer than 2 values.
    #[serde(default)]
    pub ci95: Option<f64>,
}

impl Stat {
    /// Statistics of the values; `None` for no values or a value that is not finite.
    pub fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() || values.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = variance(values, mean);
        let stddev = var.sqrt();
        let ci95 = t975(n - 1.0).map(|t| t * stddev / n.sqrt());
        Some(Stat {
            mean,
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            stddev,
            n: values.len() as u32,
            ci95,
        })
    }
}

/// Sample variance (n - 1); 0 for fewer than two values.
fn variance(values: &[f64], mean: f64) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() as f64 - 1.0)
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (`None` for df < 1 or NaN).
pub fn t975(df: f64) -> Option<f64> {
    t_quantile(0.975, df)
}

/// The `p` quantile of Student's t with `df` degrees of freedom (`None` for df < 1, NaN, or `p`
/// outside (0, 1)).
pub fn t_quantile(p: f64, df: f64) -> Option<f64> {
    if df.is_nan() || df < 1.0 || !(p > 0.0 && p < 1.0) {
        return None;
    }
    StudentsT::new(0.0, 1.0, df).ok().map(|t| t.inverse_cdf(p))
}

/// The two-sided t quantile of a `confidence` interval (0.95: the 97.5 % quantile).
fn t_two_sided(confidence: f64, df: f64) -> Option<f64> {
    t_quantile(1.0 - (1.0 - confidence) / 2.0, df)
}

/// How `current` differs from `baseline`, relative to the baseline's mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// (mean(current) - mean(baseline)) / mean(baseline).
    pub relative: f64,
    /// Interval of `relative` at the confidence asked (95 % unless said otherwise); `None` when
    /// a side has fewer than 2 values.
    pub interval: Option<(f64, f64)>,
}

impl Difference {
    /// True when the interval excludes 0 (the difference is not noise).
    pub fn is_significant(&self) -> bool {
        self.interval.is_some_and(|(lo, hi)| lo > 0.0 || hi < 0.0)
    }
}

/// The relative difference of the means of two samples and its interval at `confidence` (0.95
/// for 95 %; Welch's t with Welch-Satterthwaite degrees of freedom, divided by the baseline
/// mean). `None` when a sample is empty or the baseline mean is 0.
pub fn relative_difference_at(
    baseline: &[f64],
    current: &[f64],
    confidence: f64,
) -> Option<Difference> {
    let (b, c) = (&Stat::of(baseline)?, &Stat::of(current)?);
    if b.mean.abs() <= f64::EPSILON {
        return None;
    }
    let relative = (c.mean - b.mean) / b.mean;
    let interval = welch_half_width(b, c, confidence).map(|half| {
        let half = half / b.mean.abs();
        (relative - half, relative + half)
    });
    Some(Difference { relative, interval })
}

/// The mean relative difference of paired measurements `(baseline, current)` - two systems
/// measured in turn at the same repeat - and its 95 % interval (Student's t on the per-pair
/// ratios). Pairing removes drift that hits both alike. `None` without a pair with a non-zero
/// baseline.
pub fn paired_relative_difference(pairs: &[(f64, f64)]) -> Option<Difference> {
    paired_relative_difference_at(pairs, 0.95)
}

/// [`paired_relative_difference`] with an interval at `confidence` (0.95 for 95 %).
pub fn paired_relative_difference_at(pairs: &[(f64, f64)], confidence: f64) -> Option<Difference> {
    let ratios: Vec<f64> = pairs
        .iter()
        .filter(|(b, _)| b.abs() > f64::EPSILON)
        .map(|(b, c)| c / b - 1.0)
        .collect();
    let s = Stat::of(&ratios)?;
    let n = f64::from(s.n);
    let half = t_two_sided(confidence, n - 1.0).map(|t| t * s.stddev / n.sqrt());
    Some(Difference {
        relative: s.mean,
        interval: half.map(|half| (s.mean - half, s.mean + half)),
    })
}

/// The (baseline, current) values of the repeats both sides measured, matched by repeat index
/// (each side's samples are `(repeat, value)`).
pub fn pair_by_repeat(baseline: &[(u32, f64)], current: &[(u32, f64)]) -> Vec<(f64, f64)> {
    baseline
        .iter()
        .filter_map(|(repeat, b)| {
            let (_, c) = current.iter().find(|(r, _)| r == repeat)?;
            Some((*b, *c))
        })
        .collect()
}

/// The rank k of the sign test's 95 % interval of a median from n values: the interval from
/// the k-th smallest to the k-th largest value holds the median with probability
/// 1 - 2 P(Bin(n, 1/2) < k) >= 95 %, and k is the largest rank that keeps it so. `None` for
/// fewer than 6 values (even the smallest to the largest holds it with less than 95 %).
pub fn median_interval_rank(n: usize) -> Option<usize> {
    let n_trials = u64::try_from(n).ok()?;
    let binomial = Binomial::new(0.5, n_trials).ok()?;
    // P(Bin < k) = cdf(k - 1); k = 1 needs P(Bin < 1) = 0.5^n <= 0.025.
    let misses = |k: usize| 2.0 * binomial.cdf(k as u64 - 1);
    (1..=n / 2).take_while(|&k| misses(k) <= 0.05).last()
}

/// Half-width of the `confidence` interval of mean(c) - mean(b); 0 when both samples are
/// constant.
fn welch_half_width(b: &Stat, c: &Stat, confidence: f64) -> Option<f64> {
    if b.n < 2 || c.n < 2 {
        return None;
    }
    let (nb, nc) = (f64::from(b.n), f64::from(c.n));
    let (vb, vc) = (b.stddev.powi(2) / nb, c.stddev.powi(2) / nc);
    let se2 = vb + vc;
    if se2 <= 0.0 {
        return Some(0.0);
    }
    let df = se2.powi(2) / (vb.powi(2) / (nb - 1.0) + vc.powi(2) / (nc - 1.0));
    Some(t_two_sided(confidence, df)? * se2.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_interval_ranks_match_the_sign_test_tables() {
        // Conover's table of the sign test (two-sided 5 %): n 6-8 -> 1, 9-11 -> 2, 12-14 -> 3,
        // 15-16 -> 4, 20 -> 6.
        for n in 0..6 {
            assert_eq!(median_interval_rank(n), None, "{n}");
        }
        for (n, k) in [
            (6, 1),
            (8, 1),
            (9, 2),
            (11, 2),
            (12, 3),
            (14, 3),
            (15, 4),
            (16, 4),
            (20, 6),
        ] {
            assert_eq!(median_interval_rank(n), Some(k), "{n}");
        }
    }

    #[test]
    fn t_quantiles_match_the_tables() {
        // Student's t 97.5 % quantiles: df 1 -> 12.706, 2 -> 4.303, 4 -> 2.776, 30 -> 2.042.
        for (df, table) in [(1.0, 12.706), (2.0, 4.303), (4.0, 2.776), (30.0, 2.042)] {
            let t = t975(df).unwrap();
            assert!((t - table).abs() < 1e-3, "df {df}: {t}");
        }
        assert_eq!(t975(0.0), None);
        assert_eq!(t975(f64::NAN), None);
    }

    #[test]
    fn other_levels_match_the_tables_and_widen_the_interval() {
        // t(0.995, 11) = 3.106, t(0.99, 11) = 2.7181.
        assert!((t_quantile(0.995, 11.0).unwrap() - 3.106).abs() < 1e-3);
        assert!((t_quantile(0.99, 11.0).unwrap() - 2.7181).abs() < 1e-3);
        assert_eq!(t_quantile(1.0, 11.0), None);
        let pairs = [
            (100.0, 108.0),
            (100.0, 104.0),
            (100.0, 111.0),
            (100.0, 103.0),
        ];
        let at95 = paired_relative_difference(&pairs)
            .unwrap()
            .interval
            .unwrap();
        let at99 = paired_relative_difference_at(&pairs, 0.99)
            .unwrap()
            .interval
            .unwrap();
        assert!(at99.0 < at95.0 && at99.1 > at95.1, "{at95:?} {at99:?}");
        // Same mean, half-widths in the ratio of the quantiles (df 3: 5.841 / 3.182).
        let ratio = (at99.1 - at99.0) / (at95.1 - at95.0);
        assert!((ratio - 5.841 / 3.182).abs() < 1e-2, "{ratio}");
    }

    #[test]
    fn stat_has_an_interval_from_two_values() {
        let s = Stat::of(&[10.0, 12.0, 14.0]).unwrap();
        assert_eq!((s.mean, s.min, s.max, s.n), (12.0, 10.0, 14.0, 3));
        assert!((s.stddev - 2.0).abs() < 1e-12);
        // 4.303 * 2 / sqrt(3)
        assert!((s.ci95.unwrap() - 4.968_7).abs() < 1e-3, "{s:?}");
        let one = Stat::of(&[5.0]).unwrap();
        assert_eq!((one.ci95, one.stddev), (None, 0.0));
        assert!(Stat::of(&[]).is_none());
        assert!(Stat::of(&[1.0, f64::NAN]).is_none());
    }

    #[test]
    fn pairing_removes_drift_that_hits_both() {
        // Both drift from 100 to 130 over the repeats; the current is 10 % slower each time.
        let pairs: Vec<(f64, f64)> = (0..6)
            .map(|i| {
                let b = 100.0 + 6.0 * f64::from(i);
                (b, b * 1.1)
            })
            .collect();
        let paired = paired_relative_difference(&pairs).unwrap();
        assert!((paired.relative - 0.1).abs() < 1e-9);
        assert!(paired.is_significant(), "{paired:?}");
        let (b, c): (Vec<f64>, Vec<f64>) = pairs.iter().copied().unzip();
        let unpaired = relative_difference_at(&b, &c, 0.95).unwrap();
        assert!(
            !unpaired.is_significant(),
            "drift hides it unpaired: {unpaired:?}"
        );
        assert!(paired_relative_difference(&[(0.0, 1.0)]).is_none());
    }

    #[test]
    fn a_clear_shift_is_significant_and_noise_is_not() {
        let base = [100.0, 101.0, 99.0, 100.5, 99.5];
        let slower = [89.0, 90.0, 91.0, 90.5, 89.5];
        let d = relative_difference_at(&base, &slower, 0.95).unwrap();
        assert!((d.relative + 0.10).abs() < 1e-9, "{d:?}");
        assert!(d.is_significant(), "{d:?}");
        let (lo, hi) = d.interval.unwrap();
        assert!(lo < -0.10 && hi > -0.10 && hi < 0.0, "{d:?}");

        let same = [100.2, 99.8, 100.9, 99.1, 100.0];
        let d = relative_difference_at(&base, &same, 0.95).unwrap();
        assert!(!d.is_significant(), "{d:?}");

        let d = relative_difference_at(&[100.0], &[90.0], 0.95).unwrap();
        assert_eq!(d.interval, None);
        assert!(!d.is_significant());
        assert!(relative_difference_at(&[0.0, 0.0], &[1.0, 1.0], 0.95).is_none());
        // Constant samples: the interval is the point.
        let d = relative_difference_at(&[2.0, 2.0], &[3.0, 3.0], 0.95).unwrap();
        assert_eq!(d.interval, Some((0.5, 0.5)));
        assert!(d.is_significant());
    }
}
