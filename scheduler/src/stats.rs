//! numpy's numerics, bit for bit, where the schedulers claim Ray's exact decisions.

/// `np.nanpercentile(values, pct)` with numpy's default linear method, bit for bit: NaN values
/// are ignored; no values left gives NaN.
pub fn nan_percentile(values: impl IntoIterator<Item = f64>, pct: f64) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| !x.is_nan()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    let vi = (n - 1) as f64 * (pct / 100.0);
    // numpy: an index at or past the end reads the last value with gamma = vi - (-1).
    let (prev, next, gamma) = if vi >= (n - 1) as f64 {
        (n - 1, n - 1, vi + 1.0)
    } else if vi < 0.0 {
        (0, 0, vi)
    } else {
        let p = vi.floor();
        (p as usize, p as usize + 1, vi - p)
    };
    let (a, b) = (v[prev], v[next]);
    let diff = b - a;
    if gamma >= 0.5 {
        b - diff * (1.0 - gamma)
    } else {
        a + diff * gamma
    }
}

/// `np.sum` of a float64 array, bit for bit (numpy's pairwise summation).
pub fn np_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |acc, x| acc + x)
    } else if n <= 128 {
        let mut r = [a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]];
        let mut i = 8;
        while i < n - n % 8 {
            for (j, acc) in r.iter_mut().enumerate() {
                *acc += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for x in &a[i..] {
            res += x;
        }
        res
    } else {
        let half = n / 2;
        let half = half - half % 8;
        np_sum(&a[..half]) + np_sum(&a[half..])
    }
}

/// A total order on `f64` (NaN never enters).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Ord64(f64);
impl Eq for Ord64 {}
impl PartialOrd for Ord64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Ord64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Scores kept as two heaps around the percentile's position, so the cut-off costs O(log n)
/// per new score instead of a sort of the whole rung (Ray sorts on every decision). The result
/// is bit for bit [`nan_percentile`]: the same two order statistics, the same interpolation.
#[derive(Clone, Debug, Default)]
pub(crate) struct RankedScores {
    /// The smallest `prev + 1` scores (max on top).
    lower: std::collections::BinaryHeap<Ord64>,
    /// The rest (min on top).
    upper: std::collections::BinaryHeap<std::cmp::Reverse<Ord64>>,
}

impl RankedScores {
    /// numpy's `(prev, gamma)` for `n` values at percentile `pct`, as in [`nan_percentile`].
    fn position(n: usize, pct: f64) -> (usize, f64, bool) {
        let vi = (n - 1) as f64 * (pct / 100.0);
        if vi >= (n - 1) as f64 {
            (n - 1, vi + 1.0, true)
        } else if vi < 0.0 {
            (0, vi, true)
        } else {
            let p = vi.floor();
            (p as usize, vi - p, false)
        }
    }

    pub(crate) fn insert(&mut self, x: f64, pct: f64) {
        if x.is_nan() {
            return;
        }
        match self.lower.peek() {
            Some(top) if Ord64(x) <= *top => self.lower.push(Ord64(x)),
            _ => self.upper.push(std::cmp::Reverse(Ord64(x))),
        }
        let n = self.lower.len() + self.upper.len();
        let want = Self::position(n, pct).0 + 1;
        while self.lower.len() > want {
            let v = self.lower.pop().expect("non-empty");
            self.upper.push(std::cmp::Reverse(v));
        }
        while self.lower.len() < want {
            let std::cmp::Reverse(v) = self.upper.pop().expect("non-empty");
            self.lower.push(v);
        }
    }

    /// `np.nanpercentile` of the scores; NaN when there are none.
    pub(crate) fn percentile(&self, pct: f64) -> f64 {
        let n = self.lower.len() + self.upper.len();
        if n == 0 {
            return f64::NAN;
        }
        let (_, gamma, same) = Self::position(n, pct);
        let a = self.lower.peek().expect("non-empty").0;
        let b = if same { a } else { self.upper.peek().map_or(a, |r| r.0 .0) };
        let diff = b - a;
        if gamma >= 0.5 {
            b - diff * (1.0 - gamma)
        } else {
            a + diff * gamma
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_heap_cut_off_equals_numpy_on_every_prefix() {
        use rand::{Rng as _, SeedableRng};
        let mut rng = crate::Rng::seed_from_u64(11);
        for rf in [2.0, 3.0, 4.0, 2.5] {
            let pct = (1.0 - 1.0 / rf) * 100.0;
            let mut r = RankedScores::default();
            let mut all = Vec::new();
            for i in 0..500 {
                let x = match i % 17 {
                    0 => f64::NAN,
                    1 => f64::INFINITY,
                    2 => -f64::INFINITY,
                    3 => 0.5,
                    _ => rng.random::<f64>() * 2.0 - 1.0,
                };
                all.push(x);
                r.insert(x, pct);
                let (want, got) = (nan_percentile(all.iter().copied(), pct), r.percentile(pct));
                assert!(want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()), "{rf} {i}: {want} {got}");
            }
        }
    }
}
