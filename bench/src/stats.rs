//! Medians, percentiles and the printed table.

use std::time::Duration;

/// The median of some samples (the mean of the middle two for an even count); 0 for none.
pub fn median(samples: &[f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    } else {
        sorted[mid]
    }
}

/// The `p`-th percentile (0..=100) of durations, by nearest rank, in microseconds.
pub fn percentile_us(samples: &mut [Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_unstable();
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    let index = rank.clamp(1, samples.len()) - 1;
    samples[index].as_secs_f64() * 1e6
}

/// This process's resident memory, in bytes (Linux; 0 where `/proc` is missing).
pub fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// The median of the ratios `a[i] / b[i]` of samples taken side by side (same rep): a slow drift
/// of the machine, which moves both samples of a pair alike, cancels out of each ratio, where a
/// ratio of two medians would take each from a different moment. `NaN` without pairs.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    let ratios: Vec<f64> = a.iter().zip(b).map(|(a, b)| a / b).collect();
    if ratios.is_empty() {
        return f64::NAN;
    }
    median(&ratios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paired_ratios_cancel_a_drift_that_moves_both_alike() {
        // The machine slows down three-fold halfway; each pair still says 2x.
        let a = [2.0, 2.0, 6.0, 6.0, 6.0];
        let b = [1.0, 1.0, 3.0, 3.0, 3.0];
        assert_eq!(paired_ratio(&a, &b), 2.0);
        assert_eq!(median(&a) / median(&b), 2.0);
        // The slowdown falls between the two samples of one pair only: the medians taken from
        // different moments say 2/3, the pairs still 2.
        let a = [2.0, 2.0, 2.0, 6.0, 6.0];
        let b = [1.0, 1.0, 3.0, 3.0, 3.0];
        assert_eq!(median(&a) / median(&b), 2.0 / 3.0);
        assert_eq!(paired_ratio(&a, &b), 2.0);
        assert!(paired_ratio(&[], &[]).is_nan());
    }

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile_us(&mut samples, 50.0), 50.0);
        assert_eq!(percentile_us(&mut samples, 99.0), 99.0);
        assert_eq!(percentile_us(&mut samples, 100.0), 100.0);
    }
}
