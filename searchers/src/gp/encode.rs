//! The GP's inputs: each searched dimension as coordinates of the unit cube.
//!
//! A numeric dimension is one coordinate spanning [`numeric::cube_bounds`] (log scale for log
//! dimensions, half a step beyond the ends for discrete ones); a discrete one is "snapped": its
//! coordinate is always the image of a lattice value. A `choice` of `k` values is `k`
//! coordinates, one-hot; a point's choice is the argmax (the first on ties).

use crate::numeric::{self, Dim};
use crate::sample::{below, unit};
use crate::tpe::TpeDistribution;
use crate::Rng;

/// How one searched dimension sits in the cube.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Axis {
    /// A numeric dimension in column `col`.
    Numeric {
        col: usize,
        /// The internal range the column spans (log scale when `log`).
        lo: f64,
        hi: f64,
        log: bool,
        low: f64,
        high: f64,
        /// The lattice spacing and the highest index, when discrete.
        step: Option<(f64, f64)>,
    },
    /// A choice of `k` values in columns `col..col + k`.
    Choice { col: usize, k: usize },
}

/// The map between internal values (per searched dimension) and cube points.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Encoding {
    pub(crate) axes: Vec<Axis>,
    pub(crate) width: usize,
}

/// Discrete dimensions with at most this many values try all of them in a local search.
const ALL_VALUES_UP_TO: f64 = 32.0;

impl Encoding {
    /// The encoding of `dims`, in order.
    pub(crate) fn new(dims: &[Dim]) -> Encoding {
        let mut axes = Vec::with_capacity(dims.len());
        let mut col = 0;
        for dim in dims {
            match dim.dist {
                TpeDistribution::Numeric { low, high, step, log } => {
                    let (lo, hi) = numeric::cube_bounds(&dim.dist);
                    let step = step.map(|s| (s, ((high - low) / s).round()));
                    axes.push(Axis::Numeric { col, lo, hi, log, low, high, step });
                    col += 1;
                }
                TpeDistribution::Categorical { n_choices } => {
                    axes.push(Axis::Choice { col, k: n_choices });
                    col += n_choices;
                }
            }
        }
        Encoding { axes, width: col }
    }

    /// The columns of continuous dimensions (searched by gradient).
    pub(crate) fn continuous_cols(&self) -> Vec<usize> {
        self.axes
            .iter()
            .filter_map(|a| match a {
                Axis::Numeric { col, step: None, .. } => Some(*col),
                _ => None,
            })
            .collect()
    }

    /// The indices of discrete axes (searched value by value).
    pub(crate) fn discrete_axes(&self) -> Vec<usize> {
        (0..self.axes.len()).filter(|&i| !matches!(self.axes[i], Axis::Numeric { step: None, .. })).collect()
    }

    /// The cube point of internal values, discrete ones rounded to their lattice (`None`: no
    /// usable value, the middle of the range, or an equal share of each choice).
    pub(crate) fn encode(&self, values: &[Option<f64>]) -> Vec<f64> {
        let mut x = vec![0.0; self.width];
        for (axis, v) in self.axes.iter().zip(values) {
            match (*axis, *v) {
                (Axis::Numeric { col, .. }, None) => x[col] = 0.5,
                (Axis::Numeric { col, .. }, Some(v)) => {
                    x[col] = axis_unit(axis, v);
                    if let Axis::Numeric { step: Some(_), .. } = axis {
                        x[col] = axis_unit(axis, self.value(axis, &x));
                    }
                }
                (Axis::Choice { col, k }, None) => x[col..col + k].fill(1.0 / k as f64),
                (Axis::Choice { col, k }, Some(v)) => x[col + (v as usize).min(k - 1)] = 1.0,
            }
        }
        x
    }

    /// The internal value of `axis` at cube point `x`: rounded to the lattice, or the argmax choice.
    fn value(&self, axis: &Axis, x: &[f64]) -> f64 {
        match *axis {
            Axis::Numeric { col, lo, hi, log, low, high, step } => {
                let t = lo + x[col].clamp(0.0, 1.0) * (hi - lo);
                let v = if log { t.exp() } else { t };
                match step {
                    Some((s, last)) => low + ((v - low) / s).round().clamp(0.0, last) * s,
                    None => v.clamp(low, high),
                }
            }
            Axis::Choice { col, k } => argmax(&x[col..col + k]) as f64,
        }
    }

    /// The internal values of cube point `x`, one per searched dimension.
    pub(crate) fn decode(&self, x: &[f64]) -> Vec<f64> {
        self.axes.iter().map(|a| self.value(a, x)).collect()
    }

    /// Moves every discrete coordinate of `x` onto the image of its value: what the GP sees of
    /// the config `x` becomes.
    pub(crate) fn snap(&self, x: &mut [f64]) {
        for axis in &self.axes {
            match *axis {
                Axis::Numeric { step: None, .. } => {}
                Axis::Numeric { col, .. } => x[col] = axis_unit(axis, self.value(axis, x)),
                Axis::Choice { col, k } => {
                    let i = argmax(&x[col..col + k]);
                    x[col..col + k].fill(0.0);
                    x[col + i] = 1.0;
                }
            }
        }
    }

    /// The snapped point of unit-cube coordinates `u`, one per searched dimension (a choice of
    /// `k` values takes value `floor(u k)`): how a quasi-random point becomes a candidate.
    pub(crate) fn point_of_unit(&self, u: &[f64]) -> Vec<f64> {
        let mut x = vec![0.0; self.width];
        for (axis, &ui) in self.axes.iter().zip(u) {
            match *axis {
                Axis::Numeric { col, .. } => x[col] = ui,
                Axis::Choice { col, k } => x[col + ((ui * k as f64) as usize).min(k - 1)] = 1.0,
            }
        }
        self.snap(&mut x);
        x
    }

    /// How many searched dimensions (axes) the encoding has.
    pub(crate) fn n_axes(&self) -> usize {
        self.axes.len()
    }

    /// A uniformly random snapped point.
    pub(crate) fn random(&self, rng: &mut Rng) -> Vec<f64> {
        let mut x = vec![0.0; self.width];
        for axis in &self.axes {
            match *axis {
                Axis::Numeric { col, .. } => x[col] = unit(rng),
                Axis::Choice { col, k } => x[col + below(rng, k as u64) as usize] = 1.0,
            }
        }
        self.snap(&mut x);
        x
    }

    /// The points that differ from snapped `x` in discrete axis `a` only: every other value
    /// when there are at most 32, else the values 1, 2, 4, ... lattice steps away either side
    /// and the two ends.
    pub(crate) fn neighbours(&self, a: usize, x: &[f64]) -> Vec<Vec<f64>> {
        let axis = &self.axes[a];
        match *axis {
            Axis::Numeric { col, low, step: Some((s, last)), .. } => {
                let here = ((self.value(axis, x) - low) / s).round();
                let mut idx: Vec<f64> = if last + 1.0 <= ALL_VALUES_UP_TO {
                    (0..=last as usize).map(|i| i as f64).collect()
                } else {
                    let mut v = vec![0.0, last];
                    let mut d = 1.0;
                    while d <= last {
                        v.extend([here - d, here + d]);
                        d *= 2.0;
                    }
                    v
                };
                idx.retain(|&i| i != here && (0.0..=last).contains(&i));
                idx.sort_by(f64::total_cmp);
                idx.dedup();
                idx.into_iter()
                    .map(|i| {
                        let mut y = x.to_vec();
                        y[col] = axis_unit(axis, low + i * s);
                        y
                    })
                    .collect()
            }
            Axis::Choice { col, k } => {
                let here = argmax(&x[col..col + k]);
                (0..k)
                    .filter(|&i| i != here)
                    .map(|i| {
                        let mut y = x.to_vec();
                        y[col..col + k].fill(0.0);
                        y[col + i] = 1.0;
                        y
                    })
                    .collect()
            }
            Axis::Numeric { step: None, .. } => Vec::new(),
        }
    }
}

/// The cube coordinate of internal value `v` of a numeric axis.
fn axis_unit(axis: &Axis, v: f64) -> f64 {
    let Axis::Numeric { lo, hi, log, .. } = *axis else { return 0.0 };
    let t = if log { v.ln() } else { v };
    let u = (t - lo) / (hi - lo);
    if u.is_nan() {
        0.5
    } else {
        u.clamp(0.0, 1.0)
    }
}

/// The index of the largest value (the first of equals).
fn argmax(v: &[f64]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numeric::Output;

    fn dim(dist: TpeDistribution) -> Dim {
        Dim { param: 0, dist, out: Output::Choice(Vec::new()) }
    }

    #[test]
    fn round_trips_and_snaps() {
        let enc = Encoding::new(&[
            dim(TpeDistribution::Numeric { low: 1.0, high: 100.0, step: None, log: true }),
            dim(TpeDistribution::Numeric { low: 0.0, high: 9.0, step: Some(1.0), log: false }),
            dim(TpeDistribution::Categorical { n_choices: 3 }),
            dim(TpeDistribution::Numeric { low: 2.0, high: 200.0, step: Some(2.0), log: true }),
        ]);
        assert_eq!(enc.width, 6);
        assert_eq!(enc.continuous_cols(), vec![0]);
        assert_eq!(enc.discrete_axes(), vec![1, 2, 3]);
        let x = enc.encode(&[Some(10.0), Some(3.0), Some(2.0), Some(64.0)]);
        assert!((x[0] - 0.5).abs() < 1e-15);
        assert!((x[1] - 0.35).abs() < 1e-15);
        assert_eq!(&x[2..5], &[0.0, 0.0, 1.0]);
        let back = enc.decode(&x);
        assert!((back[0] - 10.0).abs() < 1e-12);
        assert_eq!(&back[1..], &[3.0, 2.0, 64.0]);
        let mut y = x.clone();
        y[1] = 0.31;
        y[2] = 0.7;
        y[5] += 1e-3;
        enc.snap(&mut y);
        assert_eq!(&y[1..], &x[1..]);
        assert_eq!(enc.neighbours(2, &x).len(), 2);
        assert_eq!(enc.neighbours(1, &x).len(), 9);
        // 100 values: powers of two either side and the ends.
        let n = enc.neighbours(3, &x);
        let got: Vec<f64> = n.iter().map(|p| enc.decode(p)[3]).collect();
        assert_eq!(got, [2.0, 32.0, 48.0, 56.0, 60.0, 62.0, 66.0, 68.0, 72.0, 80.0, 96.0, 128.0, 192.0, 200.0]);
        assert_eq!(enc.encode(&[None, None, None, None])[2..5], [1.0 / 3.0; 3]);
    }
}
