//! Paired bootstrap intervals: how sure a difference in success rate
//! between two runs over the same items is. Items are resampled with
//! replacement, the mean per-item difference is taken each time, and the
//! 2.5% and 97.5% quantiles of those means bound the 95% interval
//! (Efron's percentile interval).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::report::quantile;
use crate::stats::mean;

/// A mean and its 95% percentile-bootstrap interval, in the units of the
/// values (the callers use percentage points).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub mean: f64,
    pub lo: f64,
    pub hi: f64,
}

impl Interval {
    /// Whether the whole interval lies above zero: a difference the
    /// resampling cannot explain away.
    pub fn excludes_zero_above(&self) -> bool {
        self.lo > 0.0
    }
}

/// Resamples used when the caller has no reason to choose.
pub const RESAMPLES: usize = 10_000;

/// The mean of `xs` with its 95% bootstrap interval from `resamples`
/// resamples drawn with `seed`.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::paired::bootstrap_mean;
///
/// let i = bootstrap_mean(&[1.0; 50], 1000, 0)?;
/// assert_eq!((i.mean, i.lo, i.hi), (1.0, 1.0, 1.0));
/// # Ok::<(), loragen_gpt4tools::Error>(())
/// ```
pub fn bootstrap_mean(xs: &[f64], resamples: usize, seed: u64) -> Result<Interval> {
    if xs.is_empty() {
        return Err(Error::Config("no items to resample".into()));
    }
    if resamples == 0 {
        return Err(Error::Config(
            "the bootstrap needs at least one resample".into(),
        ));
    }
    let n = xs.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let means: Vec<f64> = (0..resamples)
        .map(|_| mean((0..n).map(|_| xs[rng.random_range(0..n)])))
        .collect();
    Ok(Interval {
        mean: mean(xs.iter().copied()),
        lo: quantile(&means, 0.025),
        hi: quantile(&means, 0.975),
    })
}

/// The mean of `b[i] - a[i]` with its 95% paired-bootstrap interval. `a`
/// and `b` are one score per item, the same items in the same order.
///
/// # Examples
///
/// ```
/// use loragen_gpt4tools::paired::paired_bootstrap;
///
/// let before = [0.0, 1.0, 0.0, 1.0];
/// let after = [1.0, 1.0, 1.0, 1.0];
/// let d = paired_bootstrap(&before, &after, 1000, 0)?;
/// assert_eq!(d.mean, 0.5);
/// assert!(d.lo >= 0.0 && d.hi <= 1.0);
/// # Ok::<(), loragen_gpt4tools::Error>(())
/// ```
pub fn paired_bootstrap(a: &[f64], b: &[f64], resamples: usize, seed: u64) -> Result<Interval> {
    if a.len() != b.len() {
        return Err(Error::Config(format!(
            "paired scores need the same items: {} against {}",
            a.len(),
            b.len()
        )));
    }
    let diffs: Vec<f64> = a.iter().zip(b).map(|(a, b)| b - a).collect();
    bootstrap_mean(&diffs, resamples, seed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_constant_difference_has_a_zero_width_interval() {
        let a = [0.0, 1.0, 0.5, 0.25];
        let b: Vec<f64> = a.iter().map(|x| x + 0.25).collect();
        let d = paired_bootstrap(&a, &b, 500, 3).unwrap();
        assert_eq!((d.mean, d.lo, d.hi), (0.25, 0.25, 0.25));
    }

    #[test]
    fn the_interval_matches_the_normal_approximation_on_a_large_sample() {
        // 400 paired 0/1 items: 120 gained, 40 lost, 240 unchanged. The
        // differences have mean 0.2 and variance 0.4 - 0.04 = 0.36, so the
        // normal 95% interval is 0.2 +- 1.96 * 0.6 / 20 = [0.1412, 0.2588].
        let mut a = Vec::new();
        let mut b = Vec::new();
        for i in 0..400 {
            let (x, y) = match i {
                0..120 => (0.0, 1.0),
                120..160 => (1.0, 0.0),
                160..280 => (1.0, 1.0),
                _ => (0.0, 0.0),
            };
            a.push(x);
            b.push(y);
        }
        let d = paired_bootstrap(&a, &b, RESAMPLES, 0).unwrap();
        assert!((d.mean - 0.2).abs() < 1e-12);
        assert!((d.lo - 0.1412).abs() < 0.01, "lo {}", d.lo);
        assert!((d.hi - 0.2588).abs() < 0.01, "hi {}", d.hi);
        assert!(d.excludes_zero_above());
    }

    #[test]
    fn pairing_is_what_narrows_the_interval() {
        // Both runs solve the same 100 of 200 items; one solves 8 more.
        // Unpaired, each rate has a standard error of about 0.035, so the
        // difference 0.04 would get about +-0.098. Paired, 8 of 200 items
        // differ: 0.04 +- 1.96 * sqrt(0.04 * 0.96 / 200) = [0.0128, 0.0672].
        let a: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i < 100))).collect();
        let b: Vec<f64> = (0..200).map(|i| f64::from(u8::from(i < 108))).collect();
        let d = paired_bootstrap(&a, &b, RESAMPLES, 1).unwrap();
        assert!((d.lo - 0.0128).abs() < 0.008, "{d:?}");
        assert!((d.hi - 0.0672).abs() < 0.008, "{d:?}");
        assert!(d.hi - d.lo < 0.07, "{d:?}");
    }

    #[test]
    fn same_seed_same_interval_and_bad_input_is_an_error() {
        let a = [0.0, 1.0, 1.0, 0.0, 1.0];
        let b = [1.0, 1.0, 0.0, 1.0, 1.0];
        assert_eq!(
            paired_bootstrap(&a, &b, 200, 9).unwrap(),
            paired_bootstrap(&a, &b, 200, 9).unwrap()
        );
        assert!(paired_bootstrap(&a, &b[..4], 200, 9).is_err());
        assert!(paired_bootstrap(&[], &[], 200, 9).is_err());
        assert!(bootstrap_mean(&a, 0, 9).is_err());
    }
}
