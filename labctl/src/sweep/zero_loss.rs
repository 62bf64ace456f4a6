//! The zero-loss search: the highest aggregate rate a system forwards with loss at or under the
//! threshold (RFC 2544 throughput), by geometric bisection until the highest lossless rate and
//! the lowest lossy one are within the search's resolution.
//!
//! Every probe says what limited it: the system (loss), the load generator (the sender fell
//! short of the asked rate) or the sink's host (it dropped packets before counting them). Only
//! the system's loss moves the upper end as the system's limit; a probe the generator could not
//! offer ends the search with a lower bound (`SearchBound::Generator`), and a probe the sink could
//! not count is an upper end marked `SearchBound::Sink`. The result is never a rate that was not
//! offered.

use crate::results::{LossyBecause, SearchBound, ZeroLoss};
use anyhow::Result;

/// What one probe at an asked rate showed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Probe {
    /// The asked rate was offered and the system's loss stayed under the threshold.
    Pass { achieved: f64 },
    /// The asked rate was offered and the system lost more than the threshold.
    Fail { achieved: f64 },
    /// The sender fell short of the asked rate; `lossless` at the rate it reached.
    GeneratorShort { achieved: f64, lossless: bool },
    /// The sink's host dropped packets beyond the threshold: the lab's limit.
    SinkShort { achieved: f64 },
}

impl Probe {
    /// The same probe judged as lossy: its traffic queued up (latency beyond the search's
    /// bound) instead of flowing through, which a short probe would otherwise count as lossless
    /// once the queue drained.
    pub fn queued(self) -> Probe {
        match self {
            Probe::Pass { achieved } => Probe::Fail { achieved },
            Probe::GeneratorShort { achieved, .. } => Probe::GeneratorShort {
                achieved,
                lossless: false,
            },
            other => other,
        }
    }

    /// The probe as the search takes it, and why it counts as lossy (`None` when it does not):
    /// `queued` says its latency exceeded the search's bound, which turns a lossless probe
    /// lossy ([`queued`](Self::queued)) and is then the reason.
    pub fn judged(self, queued: bool) -> (Probe, Option<LossyBecause>) {
        let because = match self {
            Probe::SinkShort { .. } => Some(LossyBecause::Sink),
            Probe::Fail { .. }
            | Probe::GeneratorShort {
                lossless: false, ..
            } => Some(LossyBecause::Loss),
            Probe::Pass { .. } | Probe::GeneratorShort { .. } => {
                queued.then_some(LossyBecause::Latency)
            }
        };
        (if queued { self.queued() } else { self }, because)
    }

    /// The aggregate rate the sender reached.
    pub fn achieved(&self) -> f64 {
        match *self {
            Probe::Pass { achieved }
            | Probe::Fail { achieved }
            | Probe::GeneratorShort { achieved, .. }
            | Probe::SinkShort { achieved } => achieved,
        }
    }
}

/// Why the upper end of the bracket is where it is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Upper {
    SystemLoss,
    Sink,
}

/// Searches `[min, max]` (aggregate pps) with `probe`; `Ok(None)` when the system already lost
/// packets (or the sink could not count) at `min`.
pub fn search(
    min: f64,
    max: f64,
    resolution: f64,
    mut probe: impl FnMut(f64) -> Result<Probe>,
) -> Result<Option<ZeroLoss>> {
    let mut probes = 0u32;
    let mut run = |rate: f64| {
        probes += 1;
        probe(rate)
    };
    let upper = match run(max)? {
        Probe::Pass { achieved } => {
            return Ok(Some(done(achieved, None, Some(SearchBound::RangeTop), 1)));
        }
        Probe::GeneratorShort {
            achieved,
            lossless: true,
        } => return Ok(Some(done(achieved, None, Some(SearchBound::Generator), 1))),
        Probe::SinkShort { .. } => Upper::Sink,
        Probe::Fail { .. } | Probe::GeneratorShort { .. } => Upper::SystemLoss,
    };
    let mut best = match run(min)? {
        Probe::Pass { achieved } => achieved,
        Probe::GeneratorShort {
            achieved,
            lossless: true,
        } => return Ok(Some(done(achieved, None, Some(SearchBound::Generator), 2))),
        _ => return Ok(None),
    };
    let (mut lo, mut hi, mut upper) = (min, max, upper);
    while hi / lo > 1.0 + resolution {
        let mid = (lo * hi).sqrt();
        match run(mid)? {
            Probe::Pass { achieved } => {
                lo = mid;
                best = best.max(achieved);
            }
            Probe::Fail { .. }
            | Probe::GeneratorShort {
                lossless: false, ..
            } => {
                hi = mid;
                upper = Upper::SystemLoss;
            }
            Probe::SinkShort { .. } => {
                hi = mid;
                upper = Upper::Sink;
            }
            Probe::GeneratorShort {
                achieved,
                lossless: true,
            } => {
                let pps = best.max(achieved);
                let mut z = done(pps, Some(hi), Some(SearchBound::Generator), 0);
                z.probes = probes;
                return Ok(Some(z));
            }
        }
    }
    let bound = (upper == Upper::Sink).then_some(SearchBound::Sink);
    let mut z = done(best, Some(hi), bound, 0);
    z.probes = probes;
    Ok(Some(z))
}

fn done(pps: f64, lossy: Option<f64>, bound: Option<SearchBound>, probes: u32) -> ZeroLoss {
    ZeroLoss {
        pps,
        lossy_pps: lossy,
        bound,
        resolution: lossy.map(|l| l / pps - 1.0),
        probes,
        upper: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queued_probe_counts_as_lossy() {
        assert_eq!(
            Probe::Pass { achieved: 5.0 }.queued(),
            Probe::Fail { achieved: 5.0 }
        );
        assert_eq!(
            Probe::GeneratorShort {
                achieved: 4.0,
                lossless: true
            }
            .queued(),
            Probe::GeneratorShort {
                achieved: 4.0,
                lossless: false
            }
        );
        assert_eq!(
            Probe::SinkShort { achieved: 3.0 }.queued(),
            Probe::SinkShort { achieved: 3.0 }
        );
    }

    #[test]
    fn a_judged_probe_names_loss_latency_or_the_sink() {
        let pass = Probe::Pass { achieved: 5.0 };
        assert_eq!(pass.judged(false), (pass, None));
        assert_eq!(
            pass.judged(true),
            (Probe::Fail { achieved: 5.0 }, Some(LossyBecause::Latency))
        );
        // Loss is the reason even when the probe also queued.
        let fail = Probe::Fail { achieved: 5.0 };
        assert_eq!(fail.judged(true), (fail, Some(LossyBecause::Loss)));
        let short = |lossless| Probe::GeneratorShort {
            achieved: 4.0,
            lossless,
        };
        assert_eq!(short(true).judged(false), (short(true), None));
        assert_eq!(
            short(true).judged(true),
            (short(false), Some(LossyBecause::Latency))
        );
        assert_eq!(
            short(false).judged(false),
            (short(false), Some(LossyBecause::Loss))
        );
        let sink = Probe::SinkShort { achieved: 3.0 };
        assert_eq!(sink.judged(true), (sink, Some(LossyBecause::Sink)));
    }

    /// A simulated bench: the system loses above `system`, the sender reaches at most
    /// `generator`, the sink drops above `sink`.
    fn bench(system: f64, generator: f64, sink: f64) -> impl FnMut(f64) -> Result<Probe> {
        move |asked: f64| {
            let achieved = asked.min(generator);
            let lossless = achieved <= system;
            Ok(if achieved < 0.99 * asked {
                Probe::GeneratorShort { achieved, lossless }
            } else if achieved > sink {
                Probe::SinkShort { achieved }
            } else if lossless {
                Probe::Pass { achieved }
            } else {
                Probe::Fail { achieved }
            })
        }
    }

    #[test]
    fn finds_the_systems_limit_within_the_resolution() {
        let z = search(1000.0, 400_000.0, 0.03, bench(123_000.0, 1e9, 1e9))
            .unwrap()
            .unwrap();
        assert_eq!(z.bound, None);
        assert!(z.pps <= 123_000.0 && z.pps >= 123_000.0 / 1.03, "{z:?}");
        let lossy = z.lossy_pps.unwrap();
        assert!(lossy > 123_000.0 && lossy / z.pps <= 1.03 + 1e-9, "{z:?}");
        assert!(z.resolution.unwrap() <= 0.03 + 1e-9);
        assert!(z.probes >= 3 && z.probes <= 12, "{z:?}");
    }

    #[test]
    fn a_generator_limit_gives_a_lower_bound_never_a_higher_rate() {
        // The system would do 300k but the sender tops out at 90k.
        let z = search(1000.0, 400_000.0, 0.03, bench(300_000.0, 90_000.0, 1e9))
            .unwrap()
            .unwrap();
        assert_eq!(z.bound, Some(SearchBound::Generator));
        assert!(z.pps <= 90_000.0 && z.pps > 80_000.0, "{z:?}");
    }

    #[test]
    fn a_sink_limit_marks_the_upper_end() {
        let z = search(1000.0, 400_000.0, 0.03, bench(300_000.0, 1e9, 150_000.0))
            .unwrap()
            .unwrap();
        assert_eq!(z.bound, Some(SearchBound::Sink));
        assert!(z.pps <= 150_000.0 && z.pps >= 150_000.0 / 1.03, "{z:?}");
    }

    #[test]
    fn lossless_at_the_top_and_lossy_at_the_bottom() {
        let top = search(1000.0, 50_000.0, 0.05, bench(1e9, 1e9, 1e9))
            .unwrap()
            .unwrap();
        assert_eq!(
            (top.bound, top.probes, top.pps),
            (Some(SearchBound::RangeTop), 1, 50_000.0)
        );
        assert_eq!(
            search(1000.0, 50_000.0, 0.05, bench(500.0, 1e9, 1e9)).unwrap(),
            None
        );
    }

    #[test]
    fn probe_errors_end_the_search() {
        let err = search(1.0, 10.0, 0.1, |_| anyhow::bail!("sink did not start"));
        assert!(err.is_err());
    }
}
