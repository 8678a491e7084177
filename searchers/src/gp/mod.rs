//! Gaussian-process Bayesian optimisation: a GP fitted to the scores so far, and the config that
//! maximises the log expected improvement over the best one.
//!
//! # Search space
//!
//! The searched dimensions are those of [`crate::TpeSearch`] (see the table in [`crate::tpe`]).
//! The GP's input is the unit cube: a numeric dimension is one coordinate (in log space for
//! `loguniform`, `qloguniform`, `lograndint`, `qlograndint`; a discrete dimension spans half a
//! step beyond its lowest and highest values, and its coordinate is always rounded to the image
//! of a lattice value, so the GP sees, and the acquisition scores, the point that will run); a
//! `choice` of `k` values is `k` one-hot coordinates, decoded by argmax.
//!
//! # Model
//!
//! Scores (higher is better) are standardised to zero mean and unit variance over the observed
//! trials (a constant set of scores becomes all zeros), warped by the Yeo-Johnson power
//! transform whose exponent makes them most Gaussian (maximum likelihood; see `warp.rs`), and
//! standardised again, so that a long tail of bad scores does not flatten the good region; the
//! GP has a constant mean, the mean of the warped scores (0), and a Matérn-5/2 kernel with one length scale per coordinate,
//! a signal variance and a noise variance (at least 1e-6; held there with
//! `deterministic_objective`). The hyperparameters are the MAP estimate under Optuna
//! `GPSampler`'s heuristic priors, found by L-BFGS on their logarithms with the analytic
//! gradient of the log marginal likelihood.
//!
//! Each fit is warm-started from an earlier one, and is a function of the observations alone
//! (never of when `suggest` was called), so that a searcher rebuilt by replay fits exactly
//! what the uninterrupted one fitted: the fit on the first `n` observations (in the order their
//! trials finished) starts from the fit on the first `n & (n - 1)` (`n` with its lowest set bit
//! cleared), or on the first `n / 2` when `n` is a power of two (the first fit, `n = 1`, starts
//! from unit length scales and signal variance and noise 0.01; a start where the posterior is
//! undefined falls back to that too). In a sequential run this is the previous fit for every
//! odd `n`; a replay of `n` observations fits at most `2 log₂ n` times. Fits are cached.
//!
//! # Suggestions
//!
//! Until `n_startup_trials` trials have finished with a score (completed or pruned; at least
//! one is always needed), configs are points of a scrambled Sobol' sequence (as
//! [`crate::QmcSearch`] maps them, the scramble keyed by the experiment seed, the index the
//! trial's position after the points; random when the space has more dimensions than the
//! sequence). Then the acquisition is `ln EI` (computed stably far below underflow, after Ament
//! et al. 2023) over the best warped score, maximised over the cube from
//! `n_candidates` random points and `n_local_search` local searches (see `optim.rs`: L-BFGS on
//! continuous coordinates, value-by-value moves on discrete ones, no continuous relaxation).
//! Running trials are constant liars: each is conditioned on as if it had scored the worst
//! observed score (Ginsbourger et al.'s CL-min), so parallel suggestions spread out.
//!
//! Cost per suggestion, with `n` observations and running trials and `D` cube coordinates: the
//! fit (usually one, warm-started; at most 100 L-BFGS iterations and 150 evaluations of
//! `O(n³ + n² D)` each), then `O(n (n + D))` per acquisition value: `n_candidates` values plus
//! at most `n_local_search + 1` local searches of at most 8 rounds, each at most 100 values and
//! gradients of the continuous move and the discrete moves. In a release build, about 60 ms
//! for 200 observations in 10 dimensions and 0.55 s for 500 in 5; the fit's `O(n³)` makes
//! thousands of observations slow.
//!
//! # State: a fold over the calls
//!
//! `on_trial_add` records each trial's cube point (from its config, so trials the searcher did
//! not suggest count too; a value that cannot belong to a dimension becomes the middle of the
//! range, or an equal share of each choice); `on_result` keeps the score of the furthest
//! progress step; `on_complete` makes a completed or pruned trial an observation with its
//! score, or, without one, the last intermediate score; failed trials and trials without a
//! finite score are dropped. `suggest` reads that state and the `rng` it is handed only.

mod acq;
mod encode;
mod linalg;
mod model;
mod optim;
mod warp;

use crate::numeric::{self, Dim, Leaf, Preset};
use crate::path::get_path;
use crate::qmc::{quantile, Sobol};
use crate::searcher::{Observation, Outcome, Searcher, Suggestion, TrialId};
use crate::space::{Config, Space, SpaceError};
use crate::Rng;
use encode::Encoding;
use model::{Hyper, Posterior};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

fn ten() -> usize {
    10
}

fn default_n_candidates() -> usize {
    2048
}

/// Options of [`GpSearch`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpConfig {
    /// Draw configs from a scrambled Sobol' sequence until this many trials have finished with a score.
    #[serde(default = "ten")]
    pub n_startup_trials: usize,
    /// Random points of the cube scored by the acquisition per suggestion (at least 1).
    #[serde(default = "default_n_candidates")]
    pub n_candidates: usize,
    /// How many of the best candidates start a local search (besides the best observed point).
    #[serde(default = "ten")]
    pub n_local_search: usize,
    /// The objective is noise-free: hold the noise variance at its floor (1e-6) instead of fitting it.
    #[serde(default)]
    pub deterministic_objective: bool,
    /// Partial configs run first, in order, each counting as one of `num_samples`; leaves a
    /// point leaves unset are drawn at random.
    #[serde(default)]
    pub points_to_evaluate: Vec<Config>,
}

impl Default for GpConfig {
    fn default() -> Self {
        GpConfig {
            n_startup_trials: 10,
            n_candidates: default_n_candidates(),
            n_local_search: 10,
            deterministic_objective: false,
            points_to_evaluate: Vec::new(),
        }
    }
}

impl GpConfig {
    /// Builds the searcher; `num_samples` is -1 for unlimited, else at least 0. Scores it is
    /// told are "higher is better" (the metric's mode is already folded in).
    ///
    /// Refuses `grid_search` leaves, points naming keys the space lacks and `n_candidates = 0`.
    pub fn build(self, space: Space, num_samples: i64) -> Result<GpSearch, SpaceError> {
        let num_samples = numeric::parse_num_samples(num_samples)?;
        if self.n_candidates == 0 {
            return Err(SpaceError { path: "n_candidates".into(), rule: "must be at least 1, got 0".into() });
        }
        let (leaves, dims) = numeric::compile(&space, "GP search")?;
        let presets = numeric::compile_points(&space, &self.points_to_evaluate)?;
        let enc = Encoding::new(&dims);
        Ok(GpSearch {
            n_startup_trials: self.n_startup_trials,
            n_candidates: self.n_candidates,
            n_local_search: self.n_local_search,
            fit_noise: !self.deterministic_objective,
            space,
            leaves,
            dims,
            enc,
            presets,
            num_samples,
            trials: BTreeMap::new(),
            observed: Vec::new(),
            fits: Fits::default(),
        })
    }
}

/// What the searcher remembers of one trial.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    /// The config's point in the cube.
    x: Vec<f64>,
    /// `(progress, score)` of the furthest intermediate result.
    last: Option<(f64, Option<f64>)>,
    /// Whether it has ended.
    done: bool,
}

/// Fitted hyperparameters by number of observations: a cache of a function of the
/// observations, so it never makes two searchers differ.
#[derive(Clone, Debug, Default)]
struct Fits(BTreeMap<usize, Hyper>);

impl PartialEq for Fits {
    fn eq(&self, _: &Fits) -> bool {
        true
    }
}

/// Gaussian-process Bayesian optimisation over a [`Space`]: see the module docs for the
/// encoding, the model, the acquisition and how the state is rebuilt by replay.
///
/// `suggest` answers `Exhausted` once `num_samples` trials have been added; it never waits.
#[derive(Clone, Debug, PartialEq)]
pub struct GpSearch {
    n_startup_trials: usize,
    n_candidates: usize,
    n_local_search: usize,
    fit_noise: bool,
    space: Space,
    leaves: Vec<Leaf>,
    dims: Vec<Dim>,
    enc: Encoding,
    presets: Vec<Preset>,
    num_samples: Option<u64>,
    trials: BTreeMap<TrialId, Record>,
    /// Cube point and score of each trial that finished with one, in the order they finished.
    observed: Vec<(Vec<f64>, f64)>,
    fits: Fits,
}

impl GpSearch {
    /// A searcher with default options.
    pub fn new(space: Space, num_samples: i64) -> Result<Self, SpaceError> {
        GpConfig::default().build(space, num_samples)
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

    /// How many coordinates the GP's inputs have (one per numeric dimension, one per choice value).
    pub fn coordinates(&self) -> usize {
        self.enc.width
    }

    /// How many trials have finished with a score: the GP's observations.
    pub fn observations(&self) -> usize {
        self.observed.len()
    }

    /// The fitted length scales of the cube's coordinates (`None` before any observation).
    pub fn length_scales(&mut self) -> Option<Vec<f64>> {
        let n = self.observed.len();
        (n > 0 && self.enc.width > 0).then(|| self.hyper_at(n).inv_sq_ls.iter().map(|r| 1.0 / r.sqrt()).collect())
    }

    /// The hyperparameters fitted to the first `n >= 1` observations (see the module docs).
    fn hyper_at(&mut self, n: usize) -> Hyper {
        let mut chain = Vec::new();
        let mut k = n;
        while k > 0 && !self.fits.0.contains_key(&k) {
            chain.push(k);
            k = warm_from(k);
        }
        let mut start = self.fits.0.get(&k).cloned();
        for &k in chain.iter().rev() {
            let x: Vec<Vec<f64>> = self.observed[..k].iter().map(|(x, _)| x.clone()).collect();
            let y = warp::warp(&self.observed[..k].iter().map(|(_, s)| *s).collect::<Vec<_>>());
            let h = model::fit(&x, &y, start.as_ref(), self.enc.width, self.fit_noise);
            self.fits.0.insert(k, h.clone());
            start = Some(h);
        }
        self.fits.0[&n].clone()
    }

    /// The cube point maximising log-EI, running trials (but `trial`) as liars; `None` when the
    /// GP cannot be conditioned or the acquisition is undefined.
    fn gp_point(&mut self, trial: TrialId, rng: &mut Rng) -> Option<Vec<f64>> {
        let h = self.hyper_at(self.observed.len());
        let mut y = warp::warp(&self.observed.iter().map(|(_, s)| *s).collect::<Vec<_>>());
        let (mut best, mut incumbent, mut lie) = (f64::NEG_INFINITY, 0, f64::INFINITY);
        for (i, &v) in y.iter().enumerate() {
            if v > best {
                (best, incumbent) = (v, i);
            }
            lie = lie.min(v);
        }
        let mut x: Vec<Vec<f64>> = self.observed.iter().map(|(x, _)| x.clone()).collect();
        for (id, r) in &self.trials {
            if !r.done && *id != trial {
                x.push(r.x.clone());
                y.push(lie);
            }
        }
        let post = Posterior::new(x, &y, 0.0, h)?;
        let acq = acq::LogEi { post: &post, best };
        let start = self.observed[incumbent].0.clone();
        optim::maximise(&self.enc, &acq, rng, self.n_candidates, self.n_local_search, &[start])
    }

    /// The config of cube point `x`.
    fn config_at(&self, x: &[f64]) -> Config {
        let values = self.enc.decode(x);
        numeric::assemble(&self.space, &self.leaves, |j| self.dims[j].external(values[j]))
    }

    /// On a fully discrete space with configs still untried, a point some trial already has is
    /// replaced by a random untried one (as TPE does); anywhere else `x` is kept.
    fn avoid_repeat(&self, x: Vec<f64>, rng: &mut Rng) -> Vec<f64> {
        let size = self.dims.iter().try_fold(1u128, |acc, d| d.lattice_len().map(|n| acc.saturating_mul(n)));
        let Some(size) = size else { return x };
        if self.trials.len() as u128 >= size {
            return x;
        }
        let seen = |p: &[f64]| self.trials.values().any(|r| r.x.as_slice() == p);
        if !seen(&x) {
            return x;
        }
        for _ in 0..100 {
            let c = self.enc.random(rng);
            if !seen(&c) {
                return c;
            }
        }
        x
    }

    /// Point `index` of the Sobol' sequence scrambled by the experiment seed (random when the
    /// space has too many dimensions for it).
    fn startup_config(&self, index: u64, rng: &mut Rng) -> Config {
        match Sobol::scrambled(self.dims.len(), &mut Rng::from_seed(rng.get_seed())) {
            Ok(seq) => {
                let u = seq.point(index);
                numeric::assemble(&self.space, &self.leaves, |j| {
                    quantile(&self.space.params()[self.dims[j].param].domain, u[j])
                })
            }
            Err(_) => self.space.resolve(&[], rng),
        }
    }
}

/// The observation count whose fit starts the fit on the first `n` (0: none): `n` with its
/// lowest set bit cleared, or half of `n` when that is its only bit.
fn warm_from(n: usize) -> usize {
    if n.is_power_of_two() {
        n / 2
    } else {
        n & (n - 1)
    }
}

/// A fold over the calls: see the module docs.
impl Searcher for GpSearch {
    fn suggest(&mut self, trial: TrialId, rng: &mut Rng) -> Suggestion {
        let position = self.position();
        if self.num_samples.is_some_and(|n| position >= n) {
            return Suggestion::Exhausted;
        }
        if let Some(preset) = self.presets.get(position as usize) {
            return Suggestion::Config(numeric::preset_config(&self.space, preset, rng));
        }
        if self.dims.is_empty() || self.observed.len() < self.n_startup_trials.max(1) {
            return Suggestion::Config(self.startup_config(position - self.presets.len() as u64, rng));
        }
        match self.gp_point(trial, rng) {
            Some(x) => {
                let x = self.avoid_repeat(x, rng);
                Suggestion::Config(self.config_at(&x))
            }
            None => Suggestion::Config(self.space.resolve(&[], rng)),
        }
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
        if self.trials.contains_key(&trial) {
            return;
        }
        let values: Vec<Option<f64>> = self
            .dims
            .iter()
            .map(|d| get_path(config, &self.space.params()[d.param].path).and_then(|v| d.internal(v)))
            .collect();
        let x = self.enc.encode(&values);
        self.trials.insert(trial, Record { x, last: None, done: false });
    }

    fn on_result(&mut self, trial: TrialId, obs: &Observation) {
        let Some(record) = self.trials.get_mut(&trial) else { return };
        if obs.progress.is_nan() || record.done {
            return;
        }
        if record.last.map_or(true, |(step, _)| obs.progress > step) {
            record.last = Some((obs.progress, obs.score.filter(|s| s.is_finite())));
        }
    }

    fn on_complete(&mut self, trial: TrialId, outcome: &Outcome) {
        let Some(record) = self.trials.get_mut(&trial) else { return };
        if record.done {
            return;
        }
        record.done = true;
        let last = record.last.and_then(|(_, s)| s);
        let score = match outcome {
            Outcome::Completed { score } | Outcome::Pruned { score } => score.filter(|s| s.is_finite()).or(last),
            Outcome::Failed => None,
        };
        if let Some(s) = score {
            self.observed.push((record.x.clone(), s));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fit_chain_is_a_function_of_the_observations() {
        // Fitting at every count (a sequential run) or only at the end (a replay) agrees.
        let space = Space::parse(&serde_json::json!({"a": {"uniform": [0, 1]}, "b": {"randint": [0, 5]}})).unwrap();
        let mut every = GpSearch::new(space.clone(), -1).unwrap();
        let mut end = GpSearch::new(space, -1).unwrap();
        for t in 0..13u64 {
            let c: Config =
                serde_json::from_value(serde_json::json!({"a": (t as f64 * 0.37) % 1.0, "b": t % 5})).unwrap();
            for s in [&mut every, &mut end] {
                s.on_trial_add(TrialId(t), &c);
                s.on_complete(TrialId(t), &Outcome::Completed { score: Some((t as f64).sin()) });
            }
            every.hyper_at(t as usize + 1);
        }
        assert_eq!(every.hyper_at(13), end.hyper_at(13));
        assert!(every.fits.0.len() > end.fits.0.len());
        assert_eq!(end.fits.0.keys().copied().collect::<Vec<_>>(), vec![1, 2, 4, 8, 12, 13]);
    }
}
