//! The Parzen estimator: a mixture of products of per-dimension kernels, as Optuna 5.0.0 builds it.
//!
//! Points are in Optuna's internal representation: numbers in their own scale (a log domain's
//! values are NOT log-transformed by the caller; the estimator takes logs itself) and categorical
//! values as the index of the choice. Each observation gives one mixture component; a prior
//! component (weight `prior_weight`, centred on the domain with the domain's width as bandwidth,
//! uniform over the choices) comes last. Numeric kernels are normal distributions truncated to the
//! domain (in log space for log domains); discrete ones (with a step) put on each lattice point
//! the kernel's mass within half a step of it.

use super::truncnorm::{log_gauss_mass, norm_log_c, ppf};
use crate::Rng;

/// Optuna's floor for a bandwidth when the magic clip is off.
const EPS: f64 = 1e-12;

/// One dimension of the estimator's space, in Optuna's terms.
#[derive(Clone, Debug, PartialEq)]
pub enum TpeDistribution {
    /// A number in `[low, high]` (both inclusive); with `step`, only `low + k * step`; with `log`,
    /// kernels live in log space. An integer domain is a numeric one with a step.
    Numeric {
        /// Lowest value.
        low: f64,
        /// Highest value (`low + k * step` when there is a step).
        high: f64,
        /// Lattice spacing, if discrete.
        step: Option<f64>,
        /// Whether kernels are placed on `ln(value)`.
        log: bool,
    },
    /// One of `n_choices` unordered values, given by index.
    Categorical {
        /// How many choices.
        n_choices: usize,
    },
}

/// How the estimator sets its kernels (Optuna's `_ParzenEstimatorParameters`, weights aside).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ParzenParams {
    /// Weight of the prior component relative to the observations' weights.
    pub prior_weight: f64,
    /// Floor bandwidths at `(high - low) / min(100, n + 2)` instead of `1e-12`.
    pub consider_magic_clip: bool,
    /// Let the outermost observations' bandwidths reach to the domain's ends.
    pub consider_endpoints: bool,
}

impl Default for ParzenParams {
    fn default() -> Self {
        ParzenParams { prior_weight: 1.0, consider_magic_clip: true, consider_endpoints: false }
    }
}

/// Why an estimator could not be built.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ParzenError {
    /// `prior_weight` was negative or not finite.
    #[error("prior_weight must be a finite number >= 0, got {0}")]
    PriorWeight(f64),
    /// The observations were not a whole number of rows.
    #[error("{values} observed values do not make rows of {dims} dimensions")]
    Ragged {
        /// How many values were given.
        values: usize,
        /// How many dimensions the space has.
        dims: usize,
    },
    /// The weights did not match the observations.
    #[error("{weights} weights for {observations} observations")]
    WeightCount {
        /// How many weights were given.
        weights: usize,
        /// How many observations were given.
        observations: usize,
    },
    /// A weight was negative, not finite, or they were all zero.
    #[error("observation weights must be finite, >= 0 and not all 0, got {0:?}")]
    Weights(Vec<f64>),
    /// An observation does not belong to its dimension.
    #[error("dimension {dim}: {value} is not a valid observation")]
    Observation {
        /// Which dimension.
        dim: usize,
        /// The offending value.
        value: f64,
    },
}

/// A numeric dimension's kernels.
#[derive(Clone, Debug, PartialEq)]
struct NumericKernels {
    /// Centres, in kernel space (log scale for log domains), prior last.
    mus: Vec<f64>,
    /// Bandwidths, prior last.
    sigmas: Vec<f64>,
    /// The domain's bounds as declared.
    low: f64,
    high: f64,
    /// The truncation bounds in kernel space (widened by half a step when discrete).
    adapted_low: f64,
    adapted_high: f64,
    step: Option<f64>,
    log: bool,
    /// Continuous only, per component: `log sigma + log sqrt(2 pi) + log(mass within the
    /// truncation bounds)` (discrete dimensions compute their normalisers per distinct kernel).
    log_norm: Vec<f64>,
    /// The observations' components (the prior excluded) in ascending order of centre.
    sorted: Vec<u32>,
    /// Per component: `1 / sigma`.
    inv_sigma: Vec<f64>,
}

/// A categorical dimension's kernels. Every observation's row is the same up to which choice
/// it observed (`observed` there, `other` elsewhere), so rows are kept in that form.
#[derive(Clone, Debug, PartialEq)]
struct CategoricalKernels {
    n_choices: usize,
    /// Per observation component: the observed choice.
    chosen: Vec<u32>,
    /// An observation row's probability at its own choice, and at every other one.
    observed: f64,
    other: f64,
    log_observed: f64,
    log_other: f64,
    /// The last component's row (the prior's; with no observations, the only one).
    prior: Vec<f64>,
    log_prior: Vec<f64>,
}

impl CategoricalKernels {
    /// Component `c`'s probability of choice `i`.
    fn prob(&self, c: usize, i: usize) -> f64 {
        match self.chosen.get(c) {
            Some(&o) if o as usize == i => self.observed,
            Some(_) => self.other,
            None => self.prior[i],
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Kernels {
    Numeric(NumericKernels),
    Categorical(CategoricalKernels),
}

/// Optuna 5.0.0's `_ParzenEstimator`: built from observations and their weights, it samples
/// points and evaluates the mixture's log density at points.
#[derive(Clone, Debug, PartialEq)]
pub struct ParzenEstimator {
    /// Mixture weights, normalised: observations in order, prior last.
    weights: Vec<f64>,
    log_weights: Vec<f64>,
    dims: Vec<Kernels>,
}

impl ParzenEstimator {
    /// Builds the estimator.
    ///
    /// `observations` is row-major: `weights.len()` rows of `dists.len()` values each, in
    /// internal representation (see the module docs). `weights` are the observations' weights
    /// (Optuna's `weights(n)`, e.g. [`super::default_weights`]).
    pub fn new(
        observations: &[f64],
        weights: &[f64],
        dists: &[TpeDistribution],
        params: &ParzenParams,
    ) -> Result<Self, ParzenError> {
        let d = dists.len();
        if d > 0 && observations.len() % d != 0 {
            return Err(ParzenError::Ragged { values: observations.len(), dims: d });
        }
        let n = observations.len().checked_div(d).unwrap_or(weights.len());
        let columns: Vec<Vec<f64>> = (0..d).map(|j| (0..n).map(|i| observations[i * d + j]).collect()).collect();
        Self::build(&columns, weights, dists, params, None)
    }

    /// [`ParzenEstimator::new`] from the observations by dimension (`columns[j][i]` is
    /// observation `i`'s value in dimension `j`), given for each numeric dimension the
    /// observations' indices in ascending order of value, ties in index order (`orders[j]`;
    /// ignored for categorical dimensions).
    pub(crate) fn from_columns(
        columns: &[Vec<f64>],
        weights: &[f64],
        dists: &[TpeDistribution],
        params: &ParzenParams,
        orders: Vec<Vec<u32>>,
    ) -> Result<Self, ParzenError> {
        Self::build(columns, weights, dists, params, Some(orders))
    }

    fn build(
        columns: &[Vec<f64>],
        weights: &[f64],
        dists: &[TpeDistribution],
        params: &ParzenParams,
        mut orders: Option<Vec<Vec<u32>>>,
    ) -> Result<Self, ParzenError> {
        assert_eq!(columns.len(), dists.len(), "one column per dimension");
        if !(params.prior_weight >= 0.0 && params.prior_weight.is_finite()) {
            return Err(ParzenError::PriorWeight(params.prior_weight));
        }
        let n = weights.len();
        if let Some(c) = columns.iter().find(|c| c.len() != n) {
            return Err(ParzenError::WeightCount { weights: n, observations: c.len() });
        }
        if weights.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || (n > 0 && weights.iter().sum::<f64>() <= 0.0) {
            return Err(ParzenError::Weights(weights.to_vec()));
        }
        let mut mix = if n == 0 { vec![1.0] } else { weights.iter().copied().chain([params.prior_weight]).collect() };
        let total: f64 = mix.iter().sum();
        for w in &mut mix {
            *w /= total;
        }
        let mut dims = Vec::with_capacity(dists.len());
        for (j, (dist, column)) in dists.iter().zip(columns).enumerate() {
            dims.push(match *dist {
                TpeDistribution::Numeric { low, high, step, log } => {
                    let order = orders.as_mut().map(|o| std::mem::take(&mut o[j]));
                    Kernels::Numeric(numeric(column, low, high, step, log, params, j, order)?)
                }
                TpeDistribution::Categorical { n_choices } => {
                    Kernels::Categorical(categorical(column, n_choices, params.prior_weight, j)?)
                }
            });
        }
        let mut memo = MemoLn::new();
        let log_weights = mix.iter().map(|&w| memo.ln(w)).collect();
        Ok(ParzenEstimator { weights: mix, log_weights, dims })
    }

    /// How many dimensions.
    pub fn dims(&self) -> usize {
        self.dims.len()
    }

    /// The mixture weights, normalised: one per observation in order, the prior's last.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// A numeric dimension's kernel centres (log scale for log domains), prior last.
    pub fn mus(&self, dim: usize) -> Option<&[f64]> {
        match &self.dims[dim] {
            Kernels::Numeric(k) => Some(&k.mus),
            Kernels::Categorical(_) => None,
        }
    }

    /// A numeric dimension's bandwidths (log scale for log domains), prior last.
    pub fn sigmas(&self, dim: usize) -> Option<&[f64]> {
        match &self.dims[dim] {
            Kernels::Numeric(k) => Some(&k.sigmas),
            Kernels::Categorical(_) => None,
        }
    }

    /// A categorical dimension's choice probabilities, one row per component (prior last).
    pub fn categorical_probs(&self, dim: usize) -> Option<Vec<Vec<f64>>> {
        match &self.dims[dim] {
            Kernels::Categorical(k) => {
                Some((0..=k.chosen.len()).map(|c| (0..k.n_choices).map(|i| k.prob(c, i)).collect()).collect())
            }
            Kernels::Numeric(_) => None,
        }
    }

    /// Draws `n` points (row-major, `n x dims`), taking uniforms in `[0, 1)` from `rng`.
    pub fn sample(&self, rng: &mut Rng, n: usize) -> Vec<f64> {
        self.sample_with(n, &mut || crate::sample::unit(rng))
    }

    /// Draws `n` points (row-major), taking uniforms from `uniform` in the order Optuna's
    /// `sample` draws them from NumPy: `n` to pick components, `n` per categorical dimension in
    /// order, then `n` per numeric dimension in order.
    pub fn sample_with(&self, n: usize, uniform: &mut dyn FnMut() -> f64) -> Vec<f64> {
        let d = self.dims.len();
        let mut out = vec![0.0; n * d];
        let mut cdf: Vec<f64> = self
            .weights
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        let last = *cdf.last().expect("at least the prior");
        for c in &mut cdf {
            *c /= last;
        }
        let active: Vec<usize> = (0..n)
            .map(|_| {
                let u = uniform();
                cdf.partition_point(|&c| c <= u).min(cdf.len() - 1)
            })
            .collect();
        let mut cum = Vec::new();
        for (j, dim) in self.dims.iter().enumerate() {
            if let Kernels::Categorical(k) = dim {
                for (i, &c) in active.iter().enumerate() {
                    let u = uniform();
                    cum.clear();
                    cum.extend((0..k.n_choices).scan(0.0, |acc, choice| {
                        *acc += k.prob(c, choice);
                        Some(*acc)
                    }));
                    *cum.last_mut().expect("at least one choice") = 1.0;
                    out[i * d + j] = cum.iter().filter(|&&c| c < u).count() as f64;
                }
            }
        }
        let numeric: Vec<(usize, &NumericKernels)> = self
            .dims
            .iter()
            .enumerate()
            .filter_map(|(j, k)| match k {
                Kernels::Numeric(k) => Some((j, k)),
                Kernels::Categorical(_) => None,
            })
            .collect();
        let m = numeric.len() * n;
        let (mut q, mut a, mut b) = (Vec::with_capacity(m), Vec::with_capacity(m), Vec::with_capacity(m));
        for &(_, k) in &numeric {
            for &c in &active {
                q.push(uniform());
                a.push((k.adapted_low - k.mus[c]) / k.sigmas[c]);
                b.push((k.adapted_high - k.mus[c]) / k.sigmas[c]);
            }
        }
        let x = ppf(&q, &a, &b);
        for (r, &(j, k)) in numeric.iter().enumerate() {
            for (i, &c) in active.iter().enumerate() {
                let mut v = x[r * n + i] * k.sigmas[c] + k.mus[c];
                if k.log {
                    v = v.exp();
                }
                if let Some(step) = k.step {
                    v = (k.low + ((v - k.low) / step).round_ties_even() * step).clamp(k.low, k.high);
                }
                out[i * d + j] = v;
            }
        }
        out
    }

    /// The mixture's log density at each point (row-major, `dims` values per point).
    ///
    /// For a numeric dimension it is the density of the kernel-space value (of `ln x` for a log
    /// domain), for a discrete one the probability of the lattice point, for a categorical one the
    /// probability of the choice. A point outside a continuous dimension's bounds gets `-inf`.
    /// Components more than 64 (in log) below the largest are left out of the sum (see
    /// `log_sum_exp`).
    ///
    /// # Panics
    /// If `points` is not a whole number of rows, or a categorical value is not a valid index.
    pub fn log_pdf(&self, points: &[f64]) -> Vec<f64> {
        let d = self.dims.len();
        if d == 0 {
            return Vec::new();
        }
        assert_eq!(points.len() % d, 0, "log_pdf: points must be whole rows");
        let n = points.len() / d;
        let mut continuous = Vec::new();
        let mut others = Vec::new();
        // Discrete dimensions: the mass of each distinct point under each distinct kernel.
        for (j, dim) in self.dims.iter().enumerate() {
            match dim {
                Kernels::Numeric(k) if k.step.is_none() => continuous.push((j, k)),
                Kernels::Numeric(k) => others.push((j, Other::Discrete(DiscreteTable::new(k, points, j, d)))),
                Kernels::Categorical(k) => others.push((j, Other::Categorical(k))),
            }
        }
        let mut acc = vec![0.0; self.weights.len()];
        let mut out = Vec::with_capacity(n);
        for row in points.chunks_exact(d) {
            acc.copy_from_slice(&self.log_weights);
            let mut outside = false;
            for &(j, k) in &continuous {
                let x = if k.log { row[j].ln() } else { row[j] };
                if !(x >= k.adapted_low && x <= k.adapted_high) {
                    outside = true;
                    break;
                }
                for (((a, &mu), &inv), &norm) in acc.iter_mut().zip(&k.mus).zip(&k.inv_sigma).zip(&k.log_norm) {
                    let z = (x - mu) * inv;
                    *a += -0.5 * z * z - norm;
                }
            }
            if outside {
                out.push(f64::NEG_INFINITY);
                continue;
            }
            for (j, other) in &others {
                match other {
                    Other::Discrete(table) => {
                        let t = table.row(row[*j]);
                        for (a, &q) in acc.iter_mut().zip(&table.pair_of) {
                            *a += t[q as usize];
                        }
                    }
                    Other::Categorical(k) => {
                        let x = row[*j];
                        assert!(x >= 0.0 && (x as usize) < k.n_choices, "log_pdf: choice {x} out of range");
                        let x = x as u32;
                        let (obs, prior) = acc.split_at_mut(k.chosen.len());
                        for (a, &o) in obs.iter_mut().zip(&k.chosen) {
                            *a += if o == x { k.log_observed } else { k.log_other };
                        }
                        prior[0] += k.log_prior[x as usize];
                    }
                }
            }
            out.push(log_sum_exp(&acc));
        }
        out
    }
}

/// A non-continuous dimension, ready to give each point's terms.
enum Other<'a> {
    Discrete(DiscreteTable),
    Categorical(&'a CategoricalKernels),
}

/// The largest value (NaN ignored; `-inf` when empty).
fn max_of(v: &[f64]) -> f64 {
    let mut m = [f64::NEG_INFINITY; 4];
    let chunks = v.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        for i in 0..4 {
            m[i] = if c[i] > m[i] { c[i] } else { m[i] };
        }
    }
    tail.iter().chain(&m).fold(f64::NEG_INFINITY, |a, &b| if b > a { b } else { a })
}

/// `log(sum(exp(v)))`; all `-inf` gives `-inf`. Terms more than 64 below the largest are left
/// out: they could not move the result by more than `len * e^-64` relative (and most would
/// underflow to 0 anyway).
fn log_sum_exp(v: &[f64]) -> f64 {
    let mut max = max_of(v);
    if max == f64::NEG_INFINITY {
        max = 0.0;
    }
    let cut = max - 64.0;
    let s: f64 = v.iter().filter(|&&x| x >= cut).map(|&x| (x - max).exp()).sum();
    s.ln() + max
}

/// The log masses of the distinct discrete values among some points under the distinct kernels.
struct DiscreteTable {
    /// Distinct values, ascending.
    xs: Vec<f64>,
    /// Per component: index of its `(mu, sigma)` among the distinct pairs.
    pair_of: Vec<u32>,
    /// Row-major `xs.len() x pairs`.
    table: Vec<f64>,
    pairs: usize,
}

impl DiscreteTable {
    fn new(k: &NumericKernels, points: &[f64], j: usize, d: usize) -> Self {
        let step = k.step.expect("discrete");
        let mut xs: Vec<f64> = points.iter().skip(j).step_by(d).copied().collect();
        xs.sort_by(f64::total_cmp);
        xs.dedup_by(|a, b| a.to_bits() == b.to_bits());
        // Distinct (mu, sigma) pairs: walking the components by centre, equal centres are
        // adjacent and carry only a few distinct bandwidths. The prior is a pair of its own.
        let mut pair_of = vec![0u32; k.mus.len()];
        let mut uniq: Vec<usize> = Vec::new();
        let mut run_start = 0;
        for &c in &k.sorted {
            let c = c as usize;
            if uniq.last().is_some_and(|&u| k.mus[u] != k.mus[c]) {
                run_start = uniq.len();
            }
            let found = (run_start..uniq.len()).find(|&p| k.sigmas[uniq[p]] == k.sigmas[c]);
            pair_of[c] = found.unwrap_or_else(|| {
                uniq.push(c);
                uniq.len() - 1
            }) as u32;
        }
        let prior = k.mus.len() - 1;
        uniq.push(prior);
        pair_of[prior] = (uniq.len() - 1) as u32;
        let norms: Vec<f64> = uniq
            .iter()
            .map(|&u| {
                let (mu, sigma) = (k.mus[u], k.sigmas[u]);
                log_gauss_mass((k.adapted_low - mu) / sigma, (k.adapted_high - mu) / sigma)
            })
            .collect();
        let mut table = Vec::with_capacity(xs.len() * uniq.len());
        for &x in &xs {
            let (lo, hi) =
                if k.log { ((x - step / 2.0).ln(), (x + step / 2.0).ln()) } else { (x - step / 2.0, x + step / 2.0) };
            for (&u, &norm) in uniq.iter().zip(&norms) {
                let (mu, sigma) = (k.mus[u], k.sigmas[u]);
                table.push(log_gauss_mass((lo - mu) / sigma, (hi - mu) / sigma) - norm);
            }
        }
        DiscreteTable { xs, pair_of, table, pairs: uniq.len() }
    }

    fn row(&self, x: f64) -> &[f64] {
        let r = self.xs.partition_point(|&v| v.total_cmp(&x).is_lt());
        &self.table[r * self.pairs..(r + 1) * self.pairs]
    }
}

/// `ln`, remembering the last two arguments (kernel tables repeat a few values many times).
struct MemoLn {
    last: [(u64, f64); 2],
}

impl MemoLn {
    fn new() -> Self {
        MemoLn { last: [(f64::NAN.to_bits(), f64::NAN); 2] }
    }

    fn ln(&mut self, x: f64) -> f64 {
        let bits = x.to_bits();
        if let Some(&(_, v)) = self.last.iter().find(|(b, _)| *b == bits) {
            return v;
        }
        let v = x.ln();
        self.last = [self.last[1], (bits, v)];
        v
    }
}

#[allow(clippy::too_many_arguments)]
fn numeric(
    obs: &[f64],
    low: f64,
    high: f64,
    step: Option<f64>,
    log: bool,
    params: &ParzenParams,
    dim: usize,
    order: Option<Vec<u32>>,
) -> Result<NumericKernels, ParzenError> {
    if let Some(&bad) = obs.iter().find(|v| !v.is_finite() || (log && **v <= 0.0)) {
        return Err(ParzenError::Observation { dim, value: bad });
    }
    let (mut lo, mut hi) = (low, high);
    if let Some(s) = step {
        lo -= s / 2.0;
        hi += s / 2.0;
    }
    if log {
        lo = lo.ln();
        hi = hi.ln();
    }
    let mut mus: Vec<f64> = if log { obs.iter().map(|v| v.ln()).collect() } else { obs.to_vec() };
    let sorted = match order {
        Some(o) => {
            assert_eq!(o.len(), mus.len(), "one sorted index per observation");
            o
        }
        None => sort_order(&mus),
    };
    let mut sigmas = bandwidths(&mus, &sorted, lo, hi, params);
    mus.push(0.5 * (lo + hi));
    sigmas.push(hi - lo);
    let log_norm = if step.is_some() {
        Vec::new()
    } else {
        let log_c = norm_log_c();
        let mut memo = MemoLn::new();
        mus.iter()
            .zip(&sigmas)
            .map(|(&mu, &sigma)| log_gauss_mass((lo - mu) / sigma, (hi - mu) / sigma) + memo.ln(sigma) + log_c)
            .collect()
    };
    let inv_sigma = sigmas.iter().map(|s| 1.0 / s).collect();
    Ok(NumericKernels {
        mus,
        sigmas,
        low,
        high,
        adapted_low: lo,
        adapted_high: hi,
        step,
        log,
        log_norm,
        sorted,
        inv_sigma,
    })
}

/// Optuna's neighbour-gap bandwidths: each observation's distance to the farther of its two
/// neighbours in sorted order (the domain's ends count as neighbours), the outermost two using
/// their inner gap unless `consider_endpoints`, then clipped to `[min, high - low]`. Ties are
/// ordered by observation index.
fn bandwidths(mus: &[f64], sorted: &[u32], low: f64, high: f64, params: &ParzenParams) -> Vec<f64> {
    let n = mus.len();
    if n == 0 {
        return Vec::new();
    }
    let at = |p: usize| -> f64 {
        // Position p in [low, sorted..., high].
        if p == 0 {
            low
        } else if p == n + 1 {
            high
        } else {
            mus[sorted[p - 1] as usize]
        }
    };
    let max_sigma = high - low;
    let min_sigma = if params.consider_magic_clip { (high - low) / f64::min(100.0, 1.0 + (n + 1) as f64) } else { EPS };
    let mut sigmas = vec![0.0; n];
    for s in 0..n {
        let p = s + 1;
        let mut sigma = f64::max(at(p) - at(p - 1), at(p + 1) - at(p));
        if !params.consider_endpoints && n >= 2 {
            if s == 0 {
                sigma = at(2) - at(1);
            } else if s == n - 1 {
                sigma = at(n) - at(n - 1);
            }
        }
        // np.clip: max then min.
        sigmas[sorted[s] as usize] = sigma.max(min_sigma).min(max_sigma);
    }
    sigmas
}

/// The order-preserving integer image of a float (`-0.0` as `0.0`; NaNs at the ends).
pub(crate) fn sort_key(x: f64) -> u64 {
    let b = if x == 0.0 { 0 } else { x.to_bits() };
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// The indices of `values` in ascending order, ties in index order.
fn sort_order(values: &[f64]) -> Vec<u32> {
    let mut keys: Vec<u128> =
        values.iter().enumerate().map(|(i, &m)| (u128::from(sort_key(m)) << 32) | i as u128).collect();
    keys.sort_unstable();
    keys.into_iter().map(|k| k as u32).collect()
}

fn categorical(
    obs: &[f64],
    n_choices: usize,
    prior_weight: f64,
    dim: usize,
) -> Result<CategoricalKernels, ParzenError> {
    if let Some(&bad) = obs.iter().find(|v| !(v.fract() == 0.0 && **v >= 0.0 && (**v as usize) < n_choices)) {
        return Err(ParzenError::Observation { dim, value: bad });
    }
    let chosen: Vec<u32> = obs.iter().map(|&v| v as u32).collect();
    // Each row starts at prior_weight / components everywhere, an observation adds 1 at its
    // choice, and rows are normalised (an all-zero row stays zero).
    let normalise = |row: &mut [f64]| {
        let sum: f64 = row.iter().sum();
        let sum = if sum == 0.0 { 1.0 } else { sum };
        for p in row {
            *p /= sum;
        }
    };
    let (observed, other, prior) = if obs.is_empty() {
        (f64::NAN, f64::NAN, vec![1.0 / n_choices as f64; n_choices])
    } else {
        let base = prior_weight / (obs.len() + 1) as f64;
        let mut row = vec![base; n_choices];
        row[0] += 1.0;
        normalise(&mut row);
        let mut prior = vec![base; n_choices];
        normalise(&mut prior);
        (row[0], row.get(1).copied().unwrap_or(f64::NAN), prior)
    };
    let log_prior = prior.iter().map(|p| p.ln()).collect();
    Ok(CategoricalKernels {
        n_choices,
        chosen,
        observed,
        other,
        log_observed: observed.ln(),
        log_other: other.ln(),
        prior,
        log_prior,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(low: f64, high: f64) -> TpeDistribution {
        TpeDistribution::Numeric { low, high, step: None, log: false }
    }

    #[test]
    fn three_points_univariate_bandwidths_by_hand() {
        // Observations 1, 2, 5 in [0, 10]: with endpoints, gaps are 0|1|1|3|5 -> max of the two
        // sides: 1, 3, 5; without endpoints the outer two take their inner gap: 1, 3, 3.
        // Magic clip floor: 10 / min(100, 1 + 4) = 2.
        let dists = [float(0.0, 10.0)];
        let obs = [5.0, 1.0, 2.0];
        let w = [1.0; 3];
        let plain = ParzenParams { consider_magic_clip: false, consider_endpoints: false, ..Default::default() };
        let e = ParzenEstimator::new(&obs, &w, &dists, &plain).unwrap();
        assert_eq!(e.sigmas(0).unwrap(), &[3.0, 1.0, 3.0, 10.0]);
        assert_eq!(e.mus(0).unwrap(), &[5.0, 1.0, 2.0, 5.0]);
        let ends = ParzenParams { consider_endpoints: true, ..plain };
        let e = ParzenEstimator::new(&obs, &w, &dists, &ends).unwrap();
        assert_eq!(e.sigmas(0).unwrap(), &[5.0, 1.0, 3.0, 10.0]);
        let clip = ParzenParams::default();
        let e = ParzenEstimator::new(&obs, &w, &dists, &clip).unwrap();
        assert_eq!(e.sigmas(0).unwrap(), &[3.0, 2.0, 3.0, 10.0]);
        assert_eq!(e.weights(), &[0.25; 4]);
    }

    #[test]
    fn categorical_prior_spreads_weight() {
        let dists = [TpeDistribution::Categorical { n_choices: 3 }];
        let e = ParzenEstimator::new(&[2.0], &[1.0], &dists, &ParzenParams::default()).unwrap();
        // Two kernels: each row starts at prior_weight / 2 = 0.5 per choice.
        let rows = e.categorical_probs(0).unwrap();
        assert_eq!(rows[0], &[0.2, 0.2, 0.6]);
        assert_eq!(rows[1], &[1.0 / 3.0; 3]);
        let lp = e.log_pdf(&[2.0, 0.0]);
        assert!((lp[0] - (0.5 * 0.6 + 0.5 / 3.0f64).ln()).abs() < 1e-15);
        assert!((lp[1] - (0.5 * 0.2 + 0.5 / 3.0f64).ln()).abs() < 1e-15);
    }

    #[test]
    fn discrete_masses_sum_to_one() {
        let dists = [TpeDistribution::Numeric { low: 0.0, high: 20.0, step: Some(5.0), log: false }];
        let e = ParzenEstimator::new(&[5.0, 15.0, 15.0], &[1.0; 3], &dists, &ParzenParams::default()).unwrap();
        let lattice = [0.0, 5.0, 10.0, 15.0, 20.0];
        let total: f64 = e.log_pdf(&lattice).iter().map(|l| l.exp()).sum();
        assert!((total - 1.0).abs() < 1e-12, "{total}");
    }

    #[test]
    fn continuous_density_integrates_to_one() {
        let dists = [TpeDistribution::Numeric { low: 1e-3, high: 10.0, step: None, log: true }];
        let e = ParzenEstimator::new(&[0.01, 0.5, 3.0], &[1.0; 3], &dists, &ParzenParams::default()).unwrap();
        // The density is over ln x: integrate on a fine grid in log space.
        let (lo, hi) = (1e-3f64.ln(), 10f64.ln());
        let m = 20_000;
        let h = (hi - lo) / m as f64;
        let xs: Vec<f64> = (0..m).map(|i| (lo + (i as f64 + 0.5) * h).exp()).collect();
        let total: f64 = e.log_pdf(&xs).iter().map(|l| l.exp() * h).sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
        assert_eq!(e.log_pdf(&[20.0]), vec![f64::NEG_INFINITY]);
    }

    #[test]
    fn bad_inputs_are_refused() {
        let dists = [float(0.0, 1.0)];
        let p = ParzenParams { prior_weight: -1.0, ..Default::default() };
        assert_eq!(ParzenEstimator::new(&[], &[], &dists, &p).unwrap_err(), ParzenError::PriorWeight(-1.0));
        let p = ParzenParams::default();
        assert!(matches!(ParzenEstimator::new(&[0.5], &[], &dists, &p), Err(ParzenError::WeightCount { .. })));
        assert!(matches!(ParzenEstimator::new(&[0.5], &[-1.0], &dists, &p), Err(ParzenError::Weights(_))));
        let cat = [TpeDistribution::Categorical { n_choices: 2 }];
        assert!(matches!(ParzenEstimator::new(&[2.0], &[1.0], &cat, &p), Err(ParzenError::Observation { .. })));
    }
}
