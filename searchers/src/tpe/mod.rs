//! TPE (tree-structured Parzen estimator), with the arithmetic of Optuna 5.0.0's `TPESampler`.
//!
//! While fewer than `n_startup_trials` trials have finished (completed or pruned), configs are
//! drawn at random from the space exactly as [`crate::BasicVariantGenerator`] draws them. After
//! that, every suggestion splits the trials into good and bad ([`split_trials`]), fits a
//! [`ParzenEstimator`] `l(x)` to the good ones and `g(x)` to the bad ones, draws
//! `n_ei_candidates` candidates from `l(x)` and proposes the one that maximises
//! `log l(x) - log g(x)`. With `multivariate` (the default, as in Optuna 5.0 for a single
//! objective) one joint estimator covers every dimension; without it each dimension
//! gets its own pair of estimators and is chosen on its own.
//!
//! With `n_objectives >= 2` it is Optuna 5.0.0's multi-objective TPE (MOTPE): a completed trial
//! counts through the objectives [`Searcher::on_objectives`] gave it, the good trials are
//! `ceil(0.1 n)` of them taken by non-domination fronts with a hypervolume tie-break
//! ([`split_trials_multi_objective`]), and `l(x)` weighs them all equally. (Optuna defaults to
//! the independent TPE there; this searcher keeps `multivariate` as it is set.)
//!
//! How Ray Tune's domains map onto Optuna's distributions:
//!
//! | domain | TPE dimension |
//! |---|---|
//! | `uniform`, `loguniform` | float in `[low, high]` (log scale for `loguniform`); proposals stay below `high` |
//! | `quniform`, `qloguniform` | float on the multiples of `q` (log-scale kernels for `qloguniform`, which Optuna cannot express: it gets the discrete log kernel Optuna uses for log integers) |
//! | `randn`, `qrandn` | float in `[mean - 10 sd, mean + 10 sd]` (on the multiples of `q` for `qrandn`): unbounded normals are truncated there |
//! | `randint`, `lograndint` | integer in `[low, high - 1]` (Ray excludes `high`), log scale for `lograndint` |
//! | `qrandint`, `qlograndint` | integer on the multiples of `q` Ray can produce |
//! | `choice` | categorical, by index of the value |
//! | `sample_from` | not searched: `null`, as in the basic generator |
//! | `grid_search` | refused |
//!
//! A dimension with a single possible value is not searched (as in Optuna); it is set to that value.
//! Constants and nested sections are copied as [`Space::resolve`] copies them.
//!
//! The searcher is a fold over `on_trial_add` / `on_result` / `on_complete`: replaying the same
//! calls rebuilds the same state, and `suggest` depends only on that state and the `rng` it is
//! given (derived per trial with [`crate::trial_rng`]).

mod parzen;
mod split;
mod truncnorm;

pub use parzen::{ParzenError, ParzenEstimator, ParzenParams, TpeDistribution};
pub use split::{
    default_gamma, default_gamma_multi_objective, default_weights, default_weights_below, split_trials,
    split_trials_multi_objective, Split, TrialStatus,
};
pub use truncnorm::{erf, erfc, log_gauss_mass, log_ndtr, ndtr, ppf};

use crate::numeric::{self, Dim, Leaf};
use crate::path::{get_path, set_path};
use crate::searcher::{Observation, Outcome, Searcher, Suggestion, TrialId};
use crate::space::{Config, Space, SpaceError};
use crate::Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn default_n_startup_trials() -> usize {
    10
}

fn default_n_ei_candidates() -> usize {
    24
}

fn yes() -> bool {
    true
}

fn one() -> f64 {
    1.0
}

fn one_objective() -> usize {
    1
}

/// Options of [`TpeSearch`]; the defaults are Optuna 5.0.0's for a single objective.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TpeConfig {
    /// Draw configs at random until this many trials have finished (completed or pruned).
    #[serde(default = "default_n_startup_trials")]
    pub n_startup_trials: usize,
    /// How many candidates to draw from `l(x)` per suggestion (at least 1).
    #[serde(default = "default_n_ei_candidates")]
    pub n_ei_candidates: usize,
    /// One joint estimator over all dimensions (true) or one per dimension (false).
    #[serde(default = "yes")]
    pub multivariate: bool,
    /// Include the prior component; Optuna 5.0.0 always does, so only `true` is accepted.
    #[serde(default = "yes")]
    pub consider_prior: bool,
    /// The prior component's weight relative to one observation's.
    #[serde(default = "one")]
    pub prior_weight: f64,
    /// Floor bandwidths at `(high - low) / min(100, n + 2)` instead of `1e-12`.
    #[serde(default = "yes")]
    pub consider_magic_clip: bool,
    /// Let the outermost observations' bandwidths reach to the domain's ends.
    #[serde(default)]
    pub consider_endpoints: bool,
    /// Count running trials as bad, so that parallel suggestions spread out.
    #[serde(default = "yes")]
    pub constant_liar: bool,
    /// Partial configs run first, in order, each counting as one of `num_samples`; leaves a
    /// point leaves unset are drawn at random.
    #[serde(default)]
    pub points_to_evaluate: Vec<Config>,
    /// How many objectives the experiment has (at least 1); from 2 on, completed trials are
    /// compared by the objectives [`Searcher::on_objectives`] gives, as Optuna's MOTPE does.
    #[serde(default = "one_objective")]
    pub n_objectives: usize,
}

impl Default for TpeConfig {
    fn default() -> Self {
        TpeConfig {
            n_startup_trials: default_n_startup_trials(),
            n_ei_candidates: default_n_ei_candidates(),
            multivariate: true,
            consider_prior: true,
            prior_weight: 1.0,
            consider_magic_clip: true,
            consider_endpoints: false,
            constant_liar: true,
            points_to_evaluate: Vec::new(),
            n_objectives: 1,
        }
    }
}

impl TpeConfig {
    /// Builds the searcher; `num_samples` is -1 for unlimited, else at least 0. Scores it is
    /// told are "higher is better" (the metric's mode is already folded in).
    ///
    /// Refuses `grid_search` leaves, points naming keys the space lacks, `n_ei_candidates = 0`,
    /// a negative or non-finite `prior_weight`, `consider_prior = false` and `n_objectives = 0`.
    pub fn build(self, space: Space, num_samples: i64) -> Result<TpeSearch, SpaceError> {
        let err = |path: &str, rule: String| SpaceError { path: path.into(), rule };
        let num_samples = numeric::parse_num_samples(num_samples)?;
        if self.n_ei_candidates == 0 {
            return Err(err("n_ei_candidates", "must be at least 1, got 0".into()));
        }
        if !(self.prior_weight >= 0.0 && self.prior_weight.is_finite()) {
            return Err(err("prior_weight", format!("must be a finite number >= 0, got {}", self.prior_weight)));
        }
        if !self.consider_prior {
            return Err(err(
                "consider_prior",
                "Optuna 5.0 always uses the prior; set prior_weight (0 makes it weightless) instead".into(),
            ));
        }
        if self.n_objectives == 0 {
            return Err(err("n_objectives", "must be at least 1, got 0".into()));
        }
        let (leaves, dims) = numeric::compile(&space, "TPE")?;
        let presets = numeric::compile_points(&space, &self.points_to_evaluate)?;
        let n_dims = dims.len();
        let finite_size = dims.iter().try_fold(1u128, |acc, d| d.lattice_len().map(|n| acc.saturating_mul(n)));
        let params = ParzenParams {
            prior_weight: self.prior_weight,
            consider_magic_clip: self.consider_magic_clip,
            consider_endpoints: self.consider_endpoints,
        };
        Ok(TpeSearch {
            n_startup_trials: self.n_startup_trials,
            n_ei_candidates: self.n_ei_candidates,
            multivariate: self.multivariate,
            constant_liar: self.constant_liar,
            n_objectives: self.n_objectives,
            params,
            space,
            leaves,
            dims,
            presets,
            num_samples,
            finite_size,
            trials: BTreeMap::new(),
            seen: BTreeSet::new(),
            sorted: vec![Vec::new(); n_dims],
        })
    }
}

/// What the searcher remembers of one trial.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    /// Internal value per dimension; NaN where the config had none usable.
    values: Vec<f64>,
    /// Where it stands (`Pruned`'s `last` is filled from `last` when it ends pruned).
    status: TrialStatus,
    /// `(progress, score)` of the furthest intermediate result; the score NaN when absent.
    last: Option<(f64, f64)>,
    /// Dense index, in the order trials were added.
    slot: u32,
    /// The objectives `on_objectives` gave (multi-objective only), higher is better.
    objectives: Option<Vec<f64>>,
}

/// TPE over a [`Space`], as Optuna 5.0.0's `TPESampler` (one objective, or several with
/// `n_objectives`).
///
/// `suggest` answers `Exhausted` once `num_samples` trials have been added; the first of them are
/// `points_to_evaluate`, then random configs until `n_startup_trials` trials have finished, then
/// TPE proposals. On a space whose searched dimensions are all discrete, a proposal equal to an
/// existing trial's config is replaced by the best other candidate that is new, or else by a
/// random new config (up to 100 draws), unless every config of the space has been tried.
///
/// Trials it is told about: `on_trial_add` records the config (values outside a numeric
/// dimension's bounds are clamped into them; a value that cannot belong to a dimension leaves
/// the trial out of that dimension's estimator); `on_result` keeps the intermediate score of
/// the furthest progress step (the first report of a step wins; an absent score counts as NaN);
/// `on_complete` with a completed score makes the trial complete, without a score failed.
/// With several objectives, `on_objectives` (before `on_complete`) records the trial's
/// objectives, and a completed trial is complete when they are `n_objectives` long and hold no
/// NaN, failed otherwise (its score is not read); intermediate results are not used.
#[derive(Clone, Debug, PartialEq)]
pub struct TpeSearch {
    n_startup_trials: usize,
    n_ei_candidates: usize,
    multivariate: bool,
    constant_liar: bool,
    n_objectives: usize,
    params: ParzenParams,
    space: Space,
    leaves: Vec<Leaf>,
    dims: Vec<Dim>,
    presets: Vec<Vec<(Vec<String>, Value)>>,
    num_samples: Option<u64>,
    /// Number of configs when every dimension is discrete.
    finite_size: Option<u128>,
    trials: BTreeMap<TrialId, Record>,
    /// Lattice keys of the added configs (finite spaces only).
    seen: BTreeSet<Vec<i64>>,
    /// Per numeric dimension, the trials with a value, ascending by `(value, trial)`, with
    /// their slots: the Parzen estimators' sort, done once per trial instead of per suggestion.
    sorted: Vec<Vec<(u64, TrialId, u32)>>,
}

impl TpeSearch {
    /// A searcher with default options.
    pub fn new(space: Space, num_samples: i64) -> Result<Self, SpaceError> {
        TpeConfig::default().build(space, num_samples)
    }

    /// How many trials have been added: the index of the next suggestion.
    pub fn position(&self) -> u64 {
        self.trials.len() as u64
    }

    /// The space searched.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// The searched dimensions' distributions, in the space's path order.
    pub fn distributions(&self) -> Vec<TpeDistribution> {
        self.dims.iter().map(|d| d.dist.clone()).collect()
    }

    fn random_config(&self, rng: &mut Rng) -> Config {
        self.space.resolve(&[], rng)
    }

    fn finished(&self, current: TrialId) -> usize {
        self.trials
            .iter()
            .filter(|(id, r)| {
                **id != current && matches!(r.status, TrialStatus::Complete { .. } | TrialStatus::Pruned { .. })
            })
            .count()
    }

    /// The records of the good and of the bad trials, each in trial order.
    fn split(&self, current: TrialId) -> (Vec<&Record>, Vec<&Record>) {
        let trials = self.trials.iter().filter(|(id, _)| **id != current);
        let split = if self.n_objectives >= 2 {
            let trials = trials.map(|(id, r)| (*id, r.status, r.objectives.as_deref()));
            split_trials_multi_objective(trials, self.n_objectives, self.constant_liar)
        } else {
            split_trials(trials.map(|(id, r)| (*id, r.status)), self.constant_liar)
        };
        let pick = |ids: &[TrialId]| -> Vec<&Record> {
            let mut want = ids.iter().peekable();
            let mut out = Vec::with_capacity(ids.len());
            for (id, r) in &self.trials {
                if want.peek() == Some(&id) {
                    want.next();
                    out.push(r);
                }
            }
            out
        };
        (pick(&split.below), pick(&split.above))
    }

    /// The observations of `dims` by dimension, for the trials that have all of them, and for
    /// each dimension the observations' order by value (ties in trial order).
    fn columns(&self, records: &[&Record], dims: &[usize]) -> (Vec<Vec<f64>>, usize, Vec<Vec<u32>>) {
        let mut columns: Vec<Vec<f64>> = dims.iter().map(|_| Vec::with_capacity(records.len())).collect();
        let mut row_of_slot = vec![u32::MAX; self.trials.len()];
        let mut n = 0u32;
        for r in records {
            if dims.iter().all(|&j| !r.values[j].is_nan()) {
                for (c, &j) in columns.iter_mut().zip(dims) {
                    c.push(r.values[j]);
                }
                row_of_slot[r.slot as usize] = n;
                n += 1;
            }
        }
        let orders = dims
            .iter()
            .map(|&j| {
                self.sorted[j]
                    .iter()
                    .map(|&(_, _, slot)| row_of_slot[slot as usize])
                    .filter(|&r| r != u32::MAX)
                    .collect()
            })
            .collect();
        (columns, n as usize, orders)
    }

    /// Candidates of `dims` ranked best first (each a row of values).
    fn ranked(&self, split: &(Vec<&Record>, Vec<&Record>), dims: &[usize], rng: &mut Rng) -> Option<Vec<Vec<f64>>> {
        let dists: Vec<TpeDistribution> = dims.iter().map(|&j| self.dims[j].dist.clone()).collect();
        let (below, nb, below_orders) = self.columns(&split.0, dims);
        let (above, na, above_orders) = self.columns(&split.1, dims);
        let below_weights = default_weights_below(nb, self.n_objectives);
        let l = ParzenEstimator::from_columns(&below, &below_weights, &dists, &self.params, below_orders).ok()?;
        let g = ParzenEstimator::from_columns(&above, &default_weights(na), &dists, &self.params, above_orders).ok()?;
        let mut cands = l.sample(rng, self.n_ei_candidates);
        let d = dims.len();
        for row in cands.chunks_mut(d) {
            for (x, &j) in row.iter_mut().zip(dims) {
                *x = self.dims[j].clamp(*x);
            }
        }
        let (lb, la) = (l.log_pdf(&cands), g.log_pdf(&cands));
        let acq: Vec<f64> = lb.iter().zip(&la).map(|(b, a)| b - a).collect();
        let mut order: Vec<usize> = (0..acq.len()).collect();
        // Best first; ties keep candidate order (argmax takes the first); NaN last.
        order.sort_by(|&a, &b| {
            let (x, y) = (acq[a], acq[b]);
            y.partial_cmp(&x).unwrap_or_else(|| x.is_nan().cmp(&y.is_nan()))
        });
        Some(order.into_iter().map(|i| cands[i * d..(i + 1) * d].to_vec()).collect())
    }

    fn is_new(&self, x: &[f64]) -> bool {
        let key: Vec<i64> = self.dims.iter().zip(x).map(|(d, &v)| d.key(v)).collect();
        !self.seen.contains(&key)
    }

    /// Whether proposals must avoid configs already tried.
    fn avoid_duplicates(&self) -> bool {
        self.finite_size.is_some_and(|size| (self.seen.len() as u128) < size)
    }

    fn tpe_values(&self, current: TrialId, rng: &mut Rng) -> Option<Vec<f64>> {
        if self.dims.is_empty() {
            return Some(Vec::new());
        }
        let split = self.split(current);
        let all: Vec<usize> = (0..self.dims.len()).collect();
        let avoid = self.avoid_duplicates();
        let mut chosen = if self.multivariate {
            let ranked = self.ranked(&split, &all, rng)?;
            let first_new = if avoid { ranked.iter().position(|x| self.is_new(x)) } else { None };
            ranked.into_iter().nth(first_new.unwrap_or(0))?
        } else {
            let mut x = Vec::with_capacity(self.dims.len());
            for j in 0..self.dims.len() {
                x.push(self.ranked(&split, &[j], rng)?.into_iter().next()?[0]);
            }
            x
        };
        if avoid && !self.is_new(&chosen) {
            for _ in 0..100 {
                let mut x = Vec::with_capacity(self.dims.len());
                for d in &self.dims {
                    let v = self.space.params()[d.param].domain.sample(rng);
                    x.push(d.internal(&v)?);
                }
                if self.is_new(&x) {
                    chosen = x;
                    break;
                }
            }
        }
        Some(chosen)
    }

    fn assemble(&self, x: &[f64]) -> Config {
        numeric::assemble(&self.space, &self.leaves, |j| self.dims[j].external(x[j]))
    }
}

/// A fold over the calls: see [`TpeSearch`] for what each one records.
impl Searcher for TpeSearch {
    fn suggest(&mut self, trial: TrialId, rng: &mut Rng) -> Suggestion {
        let position = self.position();
        if self.num_samples.is_some_and(|n| position >= n) {
            return Suggestion::Exhausted;
        }
        if let Some(preset) = self.presets.get(position as usize) {
            let mut config = self.random_config(rng);
            for (path, v) in preset {
                set_path(&mut config, path, v.clone());
            }
            return Suggestion::Config(config);
        }
        if self.finished(trial) < self.n_startup_trials {
            return Suggestion::Config(self.random_config(rng));
        }
        match self.tpe_values(trial, rng) {
            Some(x) => Suggestion::Config(self.assemble(&x)),
            None => Suggestion::Config(self.random_config(rng)),
        }
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
        if self.trials.contains_key(&trial) {
            return;
        }
        let values: Vec<f64> = self
            .dims
            .iter()
            .map(|d| {
                get_path(config, &self.space.params()[d.param].path).and_then(|v| d.internal(v)).unwrap_or(f64::NAN)
            })
            .collect();
        if self.finite_size.is_some() && values.iter().all(|v| !v.is_nan()) {
            let key = self.dims.iter().zip(&values).map(|(d, &v)| d.key(v)).collect();
            self.seen.insert(key);
        }
        let slot = self.trials.len() as u32;
        for ((sorted, d), &v) in self.sorted.iter_mut().zip(&self.dims).zip(&values) {
            if v.is_nan() || matches!(d.dist, TpeDistribution::Categorical { .. }) {
                continue;
            }
            let entry = (parzen::sort_key(v), trial, slot);
            let at = sorted.partition_point(|e| (e.0, e.1) < (entry.0, entry.1));
            sorted.insert(at, entry);
        }
        self.trials.insert(trial, Record { values, status: TrialStatus::Running, last: None, slot, objectives: None });
    }

    fn on_result(&mut self, trial: TrialId, obs: &Observation) {
        let Some(record) = self.trials.get_mut(&trial) else {
            return;
        };
        if obs.progress.is_nan() || record.status != TrialStatus::Running {
            return;
        }
        let further = match record.last {
            None => true,
            Some((step, _)) => obs.progress > step,
        };
        if further {
            record.last = Some((obs.progress, obs.score.unwrap_or(f64::NAN)));
        }
    }

    fn on_objectives(&mut self, trial: TrialId, values: &[f64]) {
        if self.n_objectives < 2 {
            return;
        }
        if let Some(record) = self.trials.get_mut(&trial) {
            if record.status == TrialStatus::Running {
                record.objectives = Some(values.to_vec());
            }
        }
    }

    fn on_complete(&mut self, trial: TrialId, outcome: &Outcome) {
        let Some(record) = self.trials.get_mut(&trial) else {
            return;
        };
        if record.status != TrialStatus::Running {
            return;
        }
        if self.n_objectives >= 2 {
            let usable = |v: &Vec<f64>| v.len() == self.n_objectives && !v.iter().any(|x| x.is_nan());
            record.status = match outcome {
                // The score is not read with several objectives; 0 keeps the record comparable.
                Outcome::Completed { .. } if record.objectives.as_ref().is_some_and(usable) => {
                    TrialStatus::Complete { score: 0.0 }
                }
                Outcome::Completed { .. } | Outcome::Failed => TrialStatus::Failed,
                Outcome::Pruned { .. } => TrialStatus::Pruned { last: None },
            };
            return;
        }
        record.status = match outcome {
            Outcome::Completed { score: Some(s) } if !s.is_nan() => TrialStatus::Complete { score: *s },
            Outcome::Completed { .. } | Outcome::Failed => TrialStatus::Failed,
            Outcome::Pruned { .. } => TrialStatus::Pruned { last: record.last },
        };
    }
}
