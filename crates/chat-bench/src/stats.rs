//! Percentiles of samples and the median of runs.

/// The `p`-th percentile (0..=100) by nearest rank; `None` for no samples.
pub fn percentile(samples: &mut [f64], p: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    Some(samples[rank.clamp(1, samples.len()) - 1])
}

/// One figure over several runs.
#[derive(Debug, Clone, PartialEq)]
pub struct Runs {
    /// Each run's value, in run order.
    pub values: Vec<f64>,
}

impl Runs {
    /// Collects the runs' values.
    pub fn new(values: Vec<f64>) -> Runs {
        Runs { values }
    }

    /// The median (the mean of the middle two for an even count).
    pub fn median(&self) -> f64 {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        match v.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
        }
    }

    /// The smallest run.
    pub fn min(&self) -> f64 {
        self.values.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// The largest run.
    pub fn max(&self) -> f64 {
        self.values
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let mut v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&mut v, 50.0), Some(50.0));
        assert_eq!(percentile(&mut v, 99.0), Some(99.0));
        assert_eq!(percentile(&mut v, 100.0), Some(100.0));
        assert_eq!(percentile(&mut v, 0.0), Some(1.0));
        assert_eq!(percentile(&mut [7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&mut [], 99.0), None);
    }

    #[test]
    fn median_min_max_of_runs() {
        let r = Runs::new(vec![3.0, 1.0, 2.0]);
        assert_eq!((r.median(), r.min(), r.max()), (2.0, 1.0, 3.0));
        assert_eq!(Runs::new(vec![1.0, 4.0]).median(), 2.5);
        assert!(Runs::new(vec![]).median().is_nan());
    }
}
