//! Statistics for benchmark samples, without assuming normality (Hoefler & Belli, SC'15).
//!
//! - The **median** with a distribution-free confidence interval from order statistics: the
//!   number of samples below the true median is Binomial(n, ½), so `[x(l), x(n+1-l)]` covers it
//!   with probability `1 - 2·P(B ≤ l-1)`. We take the largest `l` whose coverage is still at least
//!   the level asked for, and report the coverage actually achieved (with few samples, 95% is not
//!   reachable and the widest interval, min..max, is reported with its lower coverage).
//! - The **ratio of two medians** (backend / native) with a percentile-bootstrap interval. The
//!   resampling uses a fixed-seed generator of our own (SplitMix64), so `isolab report` recomputes
//!   exactly the numbers `isolab run` printed, on any machine and any crate version.

use serde::{Deserialize, Serialize};

/// A median with its confidence interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MedianCi {
    /// Number of samples.
    pub n: usize,
    /// The sample median.
    pub median: f64,
    /// Lower end of the interval.
    pub lo: f64,
    /// Upper end of the interval.
    pub hi: f64,
    /// Coverage actually achieved (≥ the level asked for unless n is too small).
    pub coverage: f64,
}

/// The median of sorted values. `None` for no values.
pub fn median_sorted(sorted: &[f64]) -> Option<f64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]) / 2.0),
    }
}

/// Sorts a copy of the finite values (NaN and infinities are not measurements and are dropped).
pub fn sorted_finite(values: &[f64]) -> Vec<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    v.sort_by(f64::total_cmp);
    v
}

/// P(B ≤ k) for B ~ Binomial(n, ½), computed in log space so large n does not overflow.
pub fn binomial_half_cdf(n: usize, k: usize) -> f64 {
    if k >= n {
        return 1.0;
    }
    // log C(n, i) built incrementally: C(n, i) = C(n, i-1) * (n-i+1) / i.
    let ln_half_n = n as f64 * std::f64::consts::LN_2;
    let mut ln_c = 0.0f64;
    let mut sum = (ln_c - ln_half_n).exp();
    for i in 1..=k {
        ln_c += ((n - i + 1) as f64).ln() - (i as f64).ln();
        sum += (ln_c - ln_half_n).exp();
    }
    sum.min(1.0)
}

/// The 1-based rank `l` such that `[x(l), x(n+1-l)]` is the narrowest order-statistic interval
/// covering the median with at least `level`; `l = 1` when even min..max falls short.
pub fn median_ci_rank(n: usize, level: f64) -> usize {
    let alpha_half = (1.0 - level) / 2.0;
    let mut l = 1;
    // Coverage of rank l is 1 - 2·P(B ≤ l-1); it shrinks as l grows.
    while l < n.div_ceil(2) && binomial_half_cdf(n, l) <= alpha_half {
        l += 1;
    }
    l
}

/// Median and confidence interval of `values` at `level` (e.g. 0.95). `None` for no finite values.
pub fn median_ci(values: &[f64], level: f64) -> Option<MedianCi> {
    let sorted = sorted_finite(values);
    let n = sorted.len();
    let median = median_sorted(&sorted)?;
    let l = median_ci_rank(n, level);
    let coverage = 1.0 - 2.0 * binomial_half_cdf(n, l - 1);
    Some(MedianCi {
        n,
        median,
        lo: sorted[l - 1],
        hi: sorted[n - l],
        coverage: if n == 1 { 0.0 } else { coverage },
    })
}

/// A ratio with its interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RatioCi {
    /// median(numerator) / median(denominator).
    pub ratio: f64,
    /// Lower end of the bootstrap interval.
    pub lo: f64,
    /// Upper end of the bootstrap interval.
    pub hi: f64,
}

/// Bootstrap resamples used for ratio intervals.
pub const BOOTSTRAP_RESAMPLES: usize = 2000;
const BOOTSTRAP_SEED: u64 = 0x15_01_ab;

/// SplitMix64: tiny, fast and fully specified, which is what reproducible resampling needs.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (n > 0). The modulo bias is below 2⁻⁵⁰ for any sample count
    /// we handle, far under the resampling noise.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn resampled_median(sorted_src: &[f64], rng: &mut SplitMix64, buf: &mut Vec<f64>) -> f64 {
    buf.clear();
    buf.extend((0..sorted_src.len()).map(|_| sorted_src[rng.below(sorted_src.len())]));
    buf.sort_by(f64::total_cmp);
    median_sorted(buf).unwrap_or(f64::NAN)
}

/// `median(num) / median(den)` with a percentile-bootstrap interval at `level`. `None` when either
/// side has no finite values or the denominator's median is zero.
pub fn ratio_ci(num: &[f64], den: &[f64], level: f64) -> Option<RatioCi> {
    let num = sorted_finite(num);
    let den = sorted_finite(den);
    let ratio = median_sorted(&num)? / median_sorted(&den)?;
    if !ratio.is_finite() {
        return None;
    }
    let mut rng = SplitMix64::new(BOOTSTRAP_SEED);
    let (mut bn, mut bd) = (Vec::new(), Vec::new());
    let mut ratios: Vec<f64> = (0..BOOTSTRAP_RESAMPLES)
        .map(|_| {
            let n = resampled_median(&num, &mut rng, &mut bn);
            let d = resampled_median(&den, &mut rng, &mut bd);
            n / d
        })
        .filter(|r| r.is_finite())
        .collect();
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let q = |p: f64| {
        let idx = (p * (ratios.len() - 1) as f64).round() as usize;
        ratios[idx.min(ratios.len() - 1)]
    };
    let alpha_half = (1.0 - level) / 2.0;
    Some(RatioCi {
        ratio,
        lo: q(alpha_half),
        hi: q(1.0 - alpha_half),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn medians_of_odd_even_and_empty() {
        assert_eq!(median_sorted(&[1.0, 2.0, 9.0]), Some(2.0));
        assert_eq!(median_sorted(&[1.0, 2.0, 4.0, 9.0]), Some(3.0));
        assert_eq!(median_sorted(&[]), None);
        // Non-finite values are not measurements.
        let m = median_ci(&[f64::NAN, 5.0, 1.0, 3.0, f64::INFINITY], 0.95).unwrap();
        assert_eq!((m.n, m.median), (3, 3.0));
    }

    #[test]
    fn binomial_cdf_matches_hand_values() {
        // n = 10: P(B ≤ 1) = 11/1024, P(B ≤ 2) = 56/1024.
        assert!(close(binomial_half_cdf(10, 1), 11.0 / 1024.0));
        assert!(close(binomial_half_cdf(10, 2), 56.0 / 1024.0));
        assert!(close(binomial_half_cdf(10, 10), 1.0));
        // n = 20: P(B ≤ 5) = 21700/1048576.
        assert!(close(binomial_half_cdf(20, 5), 21700.0 / 1_048_576.0));
        // Large n stays finite and sane: P(B ≤ n/2) is just over ½.
        let p = binomial_half_cdf(2001, 1000);
        assert!(close(p, 0.5), "{p}");
    }

    #[test]
    fn median_interval_ranks_match_hand_computation() {
        // n = 10: l = 2 (P(B ≤ 1) = 0.0107 ≤ 0.025 < P(B ≤ 2)); coverage 1 - 22/1024.
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        let m = median_ci(&values, 0.95).unwrap();
        assert_eq!((m.median, m.lo, m.hi), (5.5, 2.0, 9.0));
        assert!(close(m.coverage, 1.0 - 22.0 / 1024.0));
        // n = 20: l = 6, interval [x(6), x(15)], coverage 1 - 2·P(B ≤ 5) = 0.9586.
        let values: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        let m = median_ci(&values, 0.95).unwrap();
        assert_eq!((m.lo, m.hi), (6.0, 15.0));
        assert!((m.coverage - 0.958_61).abs() < 1e-4, "{}", m.coverage);
        // n = 5: 95% is out of reach; min..max with coverage 1 - 2/32.
        let m = median_ci(&[3.0, 1.0, 2.0, 5.0, 4.0], 0.95).unwrap();
        assert_eq!((m.median, m.lo, m.hi), (3.0, 1.0, 5.0));
        assert!(close(m.coverage, 0.9375));
    }

    #[test]
    fn ratio_of_scaled_samples_is_the_scale_with_a_tight_interval() {
        let den: Vec<f64> = (0..30).map(|i| 100.0 + f64::from(i % 7)).collect();
        let num: Vec<f64> = den.iter().map(|x| x * 2.0).collect();
        let r = ratio_ci(&num, &den, 0.95).unwrap();
        assert!(close(r.ratio, 2.0));
        assert!(r.lo <= 2.0 && r.hi >= 2.0, "{r:?}");
        assert!(r.hi - r.lo < 0.2, "{r:?}");
        // Deterministic: the same input gives the same interval.
        assert_eq!(ratio_ci(&num, &den, 0.95), Some(r));
    }

    #[test]
    fn ratio_with_zero_or_empty_denominator_is_none() {
        assert!(ratio_ci(&[1.0], &[0.0], 0.95).is_none());
        assert!(ratio_ci(&[1.0], &[], 0.95).is_none());
    }
}
