//! BOHB: the model half of Falkner, Klein & Hutter (2018), "BOHB: Robust and Efficient
//! Hyperparameter Optimization at Scale", with the behaviour of hpbandster's BOHB config
//! generator.
//!
//! # Pairing with HyperBand
//!
//! BOHB is HyperBand whose new configs come from a model instead of at random. This searcher
//! is only the model; the budgets come from the HyperBand scheduler (`[scheduler] kind =
//! "hyperband"`), which runs each bracket's trials to a rung budget (`time_attr`, by default
//! `training_iteration`), keeps the best `1/η` and runs those on. Every intermediate result a
//! trial reports is an observation at the budget it reports at (its `progress`), so a trial
//! that reports at iterations 1, 3 and 9 feeds the models of budgets 1, 3 and 9; the rung
//! budgets are where most trials report, so they are what the models are built from. A
//! `time_attr` that takes a new value at every report (wall-clock seconds) never gathers
//! enough observations at one budget, and BOHB then stays random search.
//!
//! # Observations
//!
//! Kept per budget: `on_result` records the trial's config and score at budget `progress`; a
//! later report of the same trial at the same budget replaces the earlier one. Results without
//! a score (or NaN) are not recorded. A trial that completes with a score it never reported
//! gets that score at its last reported budget (at budget `+∞`, "ran its full course", if it
//! reported nothing: the case of a searcher driven without a scheduler). A trial that fails or
//! is pruned adds nothing more; what it reported before stays (as Ray's `TuneBOHB` keeps it).
//! Configs come from `on_trial_add`, for suggested trials and others (`points_to_evaluate`,
//! replay) alike; a trial whose config lacks a usable value for some dimension is left out of
//! the models.
//!
//! # Suggestions
//!
//! The model budget is the largest budget with at least `min_points_in_model` observations
//! (default: dimensions + 1; smaller values are raised to it, as hpbandster does) that split
//! into a good and a bad set of more than `d` points each (`d` the number of searched
//! dimensions): by score, best first (ties in trial order), the best `n_good = max(min_points,
//! ⌊top_n_percent · n / 100⌋)` are good, the next `n_bad = max(min_points, ⌊(100 -
//! top_n_percent) · n / 100⌋)` are bad (hpbandster's split; it can leave the worst out).
//!
//! Without such a budget, or with probability `random_fraction`, the config is drawn at random
//! from the space exactly as [`crate::BasicVariantGenerator`] draws it. Otherwise two product
//! kernel density estimators, `l(x)` over the good points and `g(x)` over the bad ones, are
//! fitted in the encoded space below with statsmodels' normal-reference bandwidths (`1.06 σ
//! n^(-1/(4+d))` per dimension, population σ) floored at `min_bandwidth`; `num_samples`
//! candidates are drawn from `l`: a good point picked uniformly, each continuous coordinate
//! drawn from a normal around it of standard deviation `bandwidth_factor` times the
//! bandwidth, truncated to `[0, 1]`, each categorical coordinate kept with probability `1 - λ`
//! and otherwise replaced by one of the other choices, uniformly. The candidate with the
//! largest `max(l(x), 1e-32) / max(g(x), 1e-32)` wins (the first among equals).
//!
//! The encoded space: a numeric dimension maps onto `[0, 1]` (log dimensions in log space;
//! discrete ones half a step wider at each end, so that every value gets the same width, as
//! ConfigSpace encodes integers), with a Gaussian kernel; a `choice` is its index, with an
//! Aitchison–Aitken kernel over its number of choices (λ capped at `(k - 1) / k`, where the
//! kernel is uniform: statsmodels counts the levels present in the data instead, and lets λ
//! exceed 1). A candidate becomes a config by the inverse map, discrete values rounded to the
//! nearest step (see the table in [`crate::tpe`] for how each domain is searched).
//!
//! Pending trials play no part in the models. On a space whose searched dimensions are all
//! discrete, a suggestion equal to an added trial's config is replaced by the best new
//! candidate, or else by a new random config (up to 100 draws), unless every config has been
//! tried.
//!
//! # State: a fold over the calls
//!
//! The state is the added trials' encoded configs and the observations, so replaying
//! `on_trial_add` / `on_result` / `on_complete` rebuilds it; `suggest` is a function of the
//! state and the `rng` it is handed. Like [`crate::TpeSearch`], `suggest` answers `Exhausted`
//! once `num_samples` trials have been added (the first of them `points_to_evaluate`), and
//! never waits.

mod kde;

use crate::numeric::{self, Dim, Leaf, Preset};
use crate::path::get_path;
use crate::sample::{below, unit};
use crate::searcher::{Observation, Outcome, Searcher, Suggestion, TrialId};
use crate::space::{Config, Space, SpaceError};
use crate::tpe::{ppf, TpeDistribution};
use crate::Rng;
use kde::{Kde, Kind};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

fn default_top_n_percent() -> u32 {
    15
}

fn default_num_samples() -> usize {
    64
}

fn default_random_fraction() -> f64 {
    1.0 / 3.0
}

fn default_bandwidth_factor() -> f64 {
    3.0
}

fn default_min_bandwidth() -> f64 {
    1e-3
}

/// Options of [`BohbSearch`]; names and defaults are hpbandster's (and Ray's `TuneBOHB`'s).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BohbConfig {
    /// Observations a budget needs before it gets a model (default and minimum: dimensions + 1).
    #[serde(default)]
    pub min_points_in_model: Option<usize>,
    /// Percentage of a budget's observations, best first, that fit the good density (1 to 99).
    #[serde(default = "default_top_n_percent")]
    pub top_n_percent: u32,
    /// Candidates drawn from the good density per model-based suggestion (at least 1).
    #[serde(default = "default_num_samples")]
    pub num_samples: usize,
    /// Fraction of suggestions drawn at random even when a model exists (in `[0, 1]`).
    #[serde(default = "default_random_fraction")]
    pub random_fraction: f64,
    /// Candidates spread this many bandwidths around their good point (above 0).
    #[serde(default = "default_bandwidth_factor")]
    pub bandwidth_factor: f64,
    /// Floor of every bandwidth (above 0).
    #[serde(default = "default_min_bandwidth")]
    pub min_bandwidth: f64,
    /// Partial configs run first, in order, each counting as one of `num_samples` trials;
    /// leaves a point leaves unset are drawn at random.
    #[serde(default)]
    pub points_to_evaluate: Vec<Config>,
}

impl Default for BohbConfig {
    fn default() -> Self {
        BohbConfig {
            min_points_in_model: None,
            top_n_percent: default_top_n_percent(),
            num_samples: default_num_samples(),
            random_fraction: default_random_fraction(),
            bandwidth_factor: default_bandwidth_factor(),
            min_bandwidth: default_min_bandwidth(),
            points_to_evaluate: Vec::new(),
        }
    }
}

impl BohbConfig {
    /// Builds the searcher; `num_samples` (the trial count) is -1 for unlimited, else at least
    /// 0. Scores it is told are "higher is better" (the metric's mode is already folded in).
    ///
    /// Refuses `grid_search` leaves, points naming keys the space lacks, `top_n_percent`
    /// outside 1..=99, `num_samples = 0` candidates, `random_fraction` outside `[0, 1]`, and a
    /// `bandwidth_factor` or `min_bandwidth` that is not a finite number above 0.
    pub fn build(self, space: Space, num_samples: i64) -> Result<BohbSearch, SpaceError> {
        let err = |path: &str, rule: String| SpaceError { path: path.into(), rule };
        let limit = numeric::parse_num_samples(num_samples)?;
        if !(1..=99).contains(&self.top_n_percent) {
            return Err(err("top_n_percent", format!("must be in 1..=99, got {}", self.top_n_percent)));
        }
        if self.num_samples == 0 {
            return Err(err("num_samples", "must be at least 1 (candidates per suggestion), got 0".into()));
        }
        if !(0.0..=1.0).contains(&self.random_fraction) {
            return Err(err("random_fraction", format!("must be in [0, 1], got {}", self.random_fraction)));
        }
        for (name, v) in [("bandwidth_factor", self.bandwidth_factor), ("min_bandwidth", self.min_bandwidth)] {
            if !(v > 0.0 && v.is_finite()) {
                return Err(err(name, format!("must be a finite number above 0, got {v}")));
            }
        }
        let (leaves, dims) = numeric::compile(&space, "BOHB")?;
        let presets = numeric::compile_points(&space, &self.points_to_evaluate)?;
        let kinds = dims
            .iter()
            .map(|d| match d.dist {
                TpeDistribution::Numeric { .. } => Kind::Continuous,
                TpeDistribution::Categorical { n_choices } => Kind::Categorical(n_choices),
            })
            .collect();
        let bounds = dims.iter().map(|d| numeric::cube_bounds(&d.dist)).collect();
        let finite_size = if dims.is_empty() {
            None
        } else {
            dims.iter().try_fold(1u128, |acc, d| d.lattice_len().map(|n| acc.saturating_mul(n)))
        };
        Ok(BohbSearch {
            min_points: self.min_points_in_model.unwrap_or(0).max(dims.len() + 1),
            top_n_percent: self.top_n_percent,
            candidates: self.num_samples,
            random_fraction: self.random_fraction,
            bandwidth_factor: self.bandwidth_factor,
            min_bandwidth: self.min_bandwidth,
            space,
            leaves,
            dims,
            kinds,
            bounds,
            presets,
            limit,
            finite_size,
            trials: BTreeMap::new(),
            budgets: BTreeMap::new(),
            seen: BTreeSet::new(),
        })
    }
}

/// A budget, ordered as a number (NaN never enters; `-0.0` is stored as `0.0`).
#[derive(Clone, Copy, Debug)]
struct Budget(f64);

impl PartialEq for Budget {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Budget {}

impl PartialOrd for Budget {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Budget {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// What the searcher remembers of one trial.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    /// The config in the encoded space, per dimension; NaN where it has no usable value.
    x: Vec<f64>,
    /// The budget of its latest result.
    last: Option<f64>,
    /// Whether it has ended.
    done: bool,
}

/// The good and bad sizes of `n` observations: hpbandster's `n_good = max(min_points,
/// ⌊top · n / 100⌋)` and `n_bad = max(min_points, ⌊(100 - top) · n / 100⌋)`, as far as the
/// data reach (good first).
pub(crate) fn split_sizes(n: usize, min_points: usize, top_n_percent: u32) -> (usize, usize) {
    let p = top_n_percent as usize;
    let good = min_points.max(p * n / 100).min(n);
    let bad = min_points.max((100 - p) * n / 100).min(n - good);
    (good, bad)
}

/// The data of the model budget: the good and bad rows (encoded configs), best first.
struct ModelData {
    budget: f64,
    good: Vec<Vec<f64>>,
    bad: Vec<Vec<f64>>,
}

/// BOHB's model over a [`Space`]: see the module docs for the observations per budget, the
/// model and how the state is rebuilt by replay.
#[derive(Clone, Debug, PartialEq)]
pub struct BohbSearch {
    min_points: usize,
    top_n_percent: u32,
    candidates: usize,
    random_fraction: f64,
    bandwidth_factor: f64,
    min_bandwidth: f64,
    space: Space,
    leaves: Vec<Leaf>,
    dims: Vec<Dim>,
    kinds: Vec<Kind>,
    /// Per dimension, the internal range `[0, 1]` spans (numeric ones).
    bounds: Vec<(f64, f64)>,
    presets: Vec<Preset>,
    limit: Option<u64>,
    /// Number of configs when every dimension is discrete.
    finite_size: Option<u128>,
    trials: BTreeMap<TrialId, Record>,
    /// Per budget, each trial's score there.
    budgets: BTreeMap<Budget, BTreeMap<TrialId, f64>>,
    /// Lattice keys of the added configs (finite spaces only).
    seen: BTreeSet<Vec<i64>>,
}

impl BohbSearch {
    /// A searcher with default options.
    pub fn new(space: Space, num_samples: i64) -> Result<Self, SpaceError> {
        BohbConfig::default().build(space, num_samples)
    }

    /// How many trials have been added: the index of the next suggestion.
    pub fn position(&self) -> u64 {
        self.trials.len() as u64
    }

    /// The space searched.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// How many dimensions are searched.
    pub fn dims(&self) -> usize {
        self.dims.len()
    }

    /// `min_points_in_model` as used (raised to dimensions + 1).
    pub fn min_points_in_model(&self) -> usize {
        self.min_points
    }

    /// Every budget with observations and how many, ascending.
    pub fn budgets(&self) -> Vec<(f64, usize)> {
        self.budgets.iter().map(|(b, obs)| (b.0, obs.len())).collect()
    }

    /// The budget a model-based suggestion would model now; `None` while suggestions are random.
    pub fn model_budget(&self) -> Option<f64> {
        self.model_data().map(|m| m.budget)
    }

    /// The largest budget whose observations make a model, and its good and bad rows.
    fn model_data(&self) -> Option<ModelData> {
        let d = self.dims.len();
        if d == 0 {
            return None;
        }
        for (budget, obs) in self.budgets.iter().rev() {
            let mut rows: Vec<(f64, &Vec<f64>)> = obs
                .iter()
                .filter_map(|(t, &s)| {
                    let x = &self.trials.get(t)?.x;
                    x.iter().all(|v| v.is_finite()).then_some((s, x))
                })
                .collect();
            let n = rows.len();
            if n < self.min_points {
                continue;
            }
            let (n_good, n_bad) = split_sizes(n, self.min_points, self.top_n_percent);
            if n_good <= d || n_bad <= d {
                continue;
            }
            // Best first; ties keep trial order.
            rows.sort_by(|a, b| b.0.total_cmp(&a.0));
            let good = rows[..n_good].iter().map(|(_, x)| (*x).clone()).collect();
            let bad = rows[n_good..n_good + n_bad].iter().map(|(_, x)| (*x).clone()).collect();
            return Some(ModelData { budget: budget.0, good, bad });
        }
        None
    }

    /// The internal values of a config (NaN where it has none usable).
    fn internal(&self, config: &Config) -> Vec<f64> {
        self.dims
            .iter()
            .map(|d| {
                get_path(config, &self.space.params()[d.param].path).and_then(|v| d.internal(v)).unwrap_or(f64::NAN)
            })
            .collect()
    }

    /// The encoded point of internal values.
    fn encode(&self, values: &[f64]) -> Vec<f64> {
        self.dims
            .iter()
            .zip(&self.bounds)
            .zip(values)
            .map(|((d, &(lo, hi)), &v)| match d.dist {
                _ if v.is_nan() => f64::NAN,
                TpeDistribution::Numeric { log, .. } => {
                    let t = if log { v.ln() } else { v };
                    ((t - lo) / (hi - lo)).clamp(0.0, 1.0)
                }
                TpeDistribution::Categorical { .. } => v,
            })
            .collect()
    }

    /// The internal values of an encoded point: discrete values on their steps, choices indices.
    fn decode(&self, x: &[f64]) -> Vec<f64> {
        self.dims
            .iter()
            .zip(&self.bounds)
            .zip(x)
            .map(|((d, &(lo, hi)), &u)| match d.dist {
                TpeDistribution::Numeric { low, high, step, log } => {
                    let t = lo + u.clamp(0.0, 1.0) * (hi - lo);
                    let mut v = if log { t.exp() } else { t };
                    if let Some(s) = step {
                        v = low + ((v - low) / s).round() * s;
                    }
                    v.clamp(low, high)
                }
                TpeDistribution::Categorical { n_choices } => (u.round().max(0.0) as usize).min(n_choices - 1) as f64,
            })
            .collect()
    }

    fn key(&self, values: &[f64]) -> Vec<i64> {
        self.dims.iter().zip(values).map(|(d, &v)| d.key(v)).collect()
    }

    /// Whether suggestions must avoid configs already added.
    fn avoid_duplicates(&self) -> bool {
        self.finite_size.is_some_and(|size| (self.seen.len() as u128) < size)
    }

    fn is_new(&self, values: &[f64]) -> bool {
        values.iter().any(|v| v.is_nan()) || !self.seen.contains(&self.key(values))
    }

    /// A random config (Ray's distribution), redrawn up to 100 times while it is a duplicate on
    /// a finite space; `None` when `require_new` and no new one came up.
    fn random_config(&self, rng: &mut Rng, require_new: bool) -> Option<Config> {
        let mut config = self.space.resolve(&[], rng);
        if self.avoid_duplicates() {
            for _ in 0..100 {
                if self.is_new(&self.internal(&config)) {
                    return Some(config);
                }
                config = self.space.resolve(&[], rng);
            }
            if require_new {
                return None;
            }
        }
        Some(config)
    }

    /// Draws the candidates from the good density (encoded points).
    fn candidates(&self, good: &Kde, rng: &mut Rng) -> Vec<Vec<f64>> {
        let mut out = Vec::with_capacity(self.candidates);
        let (mut q, mut a, mut b, mut at) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for c in 0..self.candidates {
            let datum = &good.rows[below(rng, good.rows.len() as u64) as usize];
            let mut x = datum.clone();
            for (j, kind) in self.kinds.iter().enumerate() {
                let (m, bw) = (datum[j], good.bw[j]);
                match *kind {
                    Kind::Continuous => {
                        let h = self.bandwidth_factor * bw;
                        q.push(unit(rng));
                        a.push(-m / h);
                        b.push((1.0 - m) / h);
                        at.push((c, j, m, h));
                    }
                    Kind::Categorical(levels) => {
                        if unit(rng) >= 1.0 - bw {
                            let other = below(rng, levels as u64 - 1) as f64;
                            x[j] = if other >= m { other + 1.0 } else { other };
                        }
                    }
                }
            }
            out.push(x);
        }
        for ((c, j, m, h), z) in at.into_iter().zip(ppf(&q, &a, &b)) {
            let v = m + h * z;
            out[c][j] = if v.is_finite() { v.clamp(0.0, 1.0) } else { m };
        }
        out
    }

    /// A model-based config: the best candidate (the best new one on a finite space, else a new
    /// random config, else the best).
    fn model_config(&self, data: ModelData, rng: &mut Rng) -> Config {
        let l = Kde::fit(data.good, &self.kinds, self.min_bandwidth);
        let g = Kde::fit(data.bad, &self.kinds, self.min_bandwidth);
        let floor = 1e-32f64.ln();
        let cands = self.candidates(&l, rng);
        let acq: Vec<f64> = cands.iter().map(|x| l.log_pdf(x).max(floor) - g.log_pdf(x).max(floor)).collect();
        let mut order: Vec<usize> = (0..cands.len()).collect();
        // Best first; ties keep candidate order; NaN last.
        order.sort_by(|&i, &j| {
            let (x, y) = (acq[i], acq[j]);
            y.partial_cmp(&x).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
        });
        let values: Vec<Vec<f64>> = order.iter().map(|&i| self.decode(&cands[i])).collect();
        let mut chosen = 0;
        if self.avoid_duplicates() {
            match values.iter().position(|v| self.is_new(v)) {
                Some(i) => chosen = i,
                None => {
                    if let Some(config) = self.random_config(rng, true) {
                        return config;
                    }
                }
            }
        }
        let v = &values[chosen];
        numeric::assemble(&self.space, &self.leaves, |j| self.dims[j].external(v[j]))
    }

    /// Records `score` for `trial` at `budget`.
    fn observe(&mut self, trial: TrialId, budget: f64, score: f64) {
        self.budgets.entry(Budget(budget + 0.0)).or_default().insert(trial, score);
    }
}

/// A fold over the calls: see the module docs.
impl Searcher for BohbSearch {
    fn suggest(&mut self, _trial: TrialId, rng: &mut Rng) -> Suggestion {
        let position = self.position();
        if self.limit.is_some_and(|n| position >= n) {
            return Suggestion::Exhausted;
        }
        if let Some(preset) = self.presets.get(position as usize) {
            return Suggestion::Config(numeric::preset_config(&self.space, preset, rng));
        }
        if let Some(data) = self.model_data() {
            if unit(rng) >= self.random_fraction {
                return Suggestion::Config(self.model_config(data, rng));
            }
        }
        Suggestion::Config(self.random_config(rng, false).expect("a config when duplicates are allowed"))
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
        if self.trials.contains_key(&trial) {
            return;
        }
        let values = self.internal(config);
        if self.finite_size.is_some() && values.iter().all(|v| !v.is_nan()) {
            self.seen.insert(self.key(&values));
        }
        let x = self.encode(&values);
        self.trials.insert(trial, Record { x, last: None, done: false });
    }

    fn on_result(&mut self, trial: TrialId, obs: &Observation) {
        let Some(record) = self.trials.get_mut(&trial) else { return };
        if record.done || obs.progress.is_nan() {
            return;
        }
        record.last = Some(obs.progress);
        if let Some(score) = obs.score.filter(|s| !s.is_nan()) {
            self.observe(trial, obs.progress, score);
        }
    }

    fn on_complete(&mut self, trial: TrialId, outcome: &Outcome) {
        let Some(record) = self.trials.get_mut(&trial) else { return };
        if record.done {
            return;
        }
        record.done = true;
        let budget = record.last.unwrap_or(f64::INFINITY);
        if let Outcome::Completed { score: Some(score) } = outcome {
            let known = self.budgets.get(&Budget(budget + 0.0)).is_some_and(|obs| obs.contains_key(&trial));
            if !score.is_nan() && !known {
                self.observe(trial, budget, *score);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trial_rng;
    use serde_json::json;

    fn search(cfg: BohbConfig) -> BohbSearch {
        let space = Space::parse(&json!({"x": {"uniform": [0, 1]}, "y": {"uniform": [0, 1]}})).unwrap();
        cfg.build(space, -1).unwrap()
    }

    /// Adds `n` trials at `(i / n, i / n)` and reports each at `budgets`, scored `i`.
    fn feed(s: &mut BohbSearch, first: u64, n: u64, budgets: &[f64]) {
        for i in 0..n {
            let t = TrialId(first + i);
            let v = i as f64 / n as f64;
            s.on_trial_add(t, json!({"x": v, "y": v}).as_object().unwrap());
            for &b in budgets {
                s.on_result(t, &Observation { score: Some(i as f64), progress: b });
            }
        }
    }

    #[test]
    fn split_sizes_for_twenty_points() {
        // d = 2: min_points = 3; 15% of 20 = 3 good, 85% of 20 = 17 bad.
        assert_eq!(split_sizes(20, 3, 15), (3, 17));
        // 21 points: ⌊3.15⌋ = 3 good, ⌊17.85⌋ = 17 bad; the worst is left out.
        assert_eq!(split_sizes(21, 3, 15), (3, 17));
        // 40 points, top 15%: 6 good, 34 bad.
        assert_eq!(split_sizes(40, 3, 15), (6, 34));
        // Few points: the good set takes min_points, the bad set what is left.
        assert_eq!(split_sizes(5, 3, 15), (3, 2));
        assert_eq!(split_sizes(20, 5, 50), (10, 10));
    }

    #[test]
    fn model_budget_is_the_largest_with_enough_points() {
        let mut s = search(BohbConfig::default());
        assert_eq!(s.min_points_in_model(), 3);
        // A model over d = 2 needs 3 good and 3 bad points: 6 observations at least.
        feed(&mut s, 0, 5, &[1.0, 3.0, 9.0]);
        assert_eq!(s.model_budget(), None);
        feed(&mut s, 5, 1, &[1.0, 3.0]);
        // Budget 1: 6 points; budget 3: 6; budget 9: 5.
        assert_eq!(s.budgets(), vec![(1.0, 6), (3.0, 6), (9.0, 5)]);
        assert_eq!(s.model_budget(), Some(3.0));
        feed(&mut s, 6, 1, &[9.0]);
        assert_eq!(s.model_budget(), Some(9.0));
        // A larger min_points_in_model holds budget 9 back until it has that many.
        let mut s = search(BohbConfig { min_points_in_model: Some(8), ..Default::default() });
        feed(&mut s, 0, 8, &[1.0]);
        feed(&mut s, 8, 7, &[1.0, 3.0, 9.0]);
        assert_eq!(s.budgets(), vec![(1.0, 15), (3.0, 7), (9.0, 7)]);
        // Budget 1 has 15 points: 8 good (min_points), 7 bad: 7 > d.
        assert_eq!(s.model_budget(), Some(1.0));
        feed(&mut s, 15, 1, &[3.0]);
        assert_eq!(s.model_budget(), Some(1.0), "8 points: 8 good, 0 bad");
        // Too low a value is raised to d + 1.
        assert_eq!(search(BohbConfig { min_points_in_model: Some(1), ..Default::default() }).min_points_in_model(), 3);
    }

    #[test]
    fn results_replace_complete_and_fail_as_documented() {
        let mut s = search(BohbConfig::default());
        let add =
            |s: &mut BohbSearch, t: u64| s.on_trial_add(TrialId(t), json!({"x": 0.5, "y": 0.5}).as_object().unwrap());
        add(&mut s, 0);
        let obs = |score: Option<f64>, progress: f64| Observation { score, progress };
        s.on_result(TrialId(0), &obs(Some(1.0), 1.0));
        s.on_result(TrialId(0), &obs(Some(2.0), 1.0));
        s.on_result(TrialId(0), &obs(None, 2.0));
        s.on_result(TrialId(0), &obs(Some(f64::NAN), 3.0));
        assert_eq!(s.budgets[&Budget(1.0)][&TrialId(0)], 2.0);
        assert_eq!(s.budgets(), vec![(1.0, 1)]);
        // Completing with a score it did not report: recorded at its last budget.
        s.on_complete(TrialId(0), &Outcome::Completed { score: Some(5.0) });
        assert_eq!(s.budgets(), vec![(1.0, 1), (3.0, 1)]);
        // Without any report: at +inf. Failed and pruned trials add nothing; results after the end are ignored.
        add(&mut s, 1);
        s.on_complete(TrialId(1), &Outcome::Completed { score: Some(1.0) });
        add(&mut s, 2);
        s.on_result(TrialId(2), &obs(Some(1.0), 1.0));
        s.on_complete(TrialId(2), &Outcome::Failed);
        s.on_result(TrialId(2), &obs(Some(1.0), 3.0));
        add(&mut s, 3);
        s.on_complete(TrialId(3), &Outcome::Pruned { score: Some(3.0) });
        assert_eq!(s.budgets(), vec![(1.0, 2), (3.0, 1), (f64::INFINITY, 1)]);
    }

    #[test]
    fn random_fraction_one_never_models_and_a_model_stays_inside() {
        let mut s = search(BohbConfig { random_fraction: 0.0, ..Default::default() });
        feed(&mut s, 0, 10, &[1.0]);
        assert_eq!(s.model_budget(), Some(1.0));
        // The good points are the top-scored: i = 7, 8, 9 at (0.7..0.9, same).
        for t in 10..30u64 {
            let Suggestion::Config(c) = s.suggest(TrialId(t), &mut trial_rng(1, TrialId(t))) else { panic!() };
            let (x, y) = (c["x"].as_f64().unwrap(), c["y"].as_f64().unwrap());
            assert!((0.0..1.0).contains(&x) && (0.0..1.0).contains(&y));
        }
        let all_random = search(BohbConfig { random_fraction: 1.0, ..Default::default() });
        let mut r = all_random.clone();
        feed(&mut r, 0, 10, &[1.0]);
        let plain = search(BohbConfig::default());
        // With random_fraction 1 every suggestion is the random draw after the coin.
        let mut rng = trial_rng(3, TrialId(10));
        let _ = unit(&mut rng);
        assert_eq!(
            r.suggest(TrialId(10), &mut trial_rng(3, TrialId(10))),
            Suggestion::Config(plain.space.resolve(&[], &mut rng))
        );
    }
}
