//! CMA-ES: the covariance matrix adaptation evolution strategy, over the trial stream.
//!
//! # Search space
//!
//! The space's searched dimensions are those of [`crate::TpeSearch`] (see the table in
//! [`crate::tpe`]). Numeric ones are searched by CMA-ES in the normalised cube `[0, 1]^n`:
//! `loguniform`, `qloguniform`, `lograndint` and `qlograndint` in log space; a discrete
//! dimension (quantized or integer) spans half a step beyond its lowest and highest values, so
//! that every value gets the same width, and a point is rounded to the nearest value when it is
//! turned into a config ("rounding at evaluation"; no margin correction, so a discrete
//! coordinate whose σ has become small next to its step stays on its value). `choice`
//! dimensions are not searched by CMA-ES: every suggestion draws them independently and
//! uniformly from the trial's rng, as random search does.
//!
//! # Generations over the trial stream
//!
//! A generation is λ trials. `suggest` draws a fresh point from the current distribution with
//! the rng it is handed (`N(m, σ²C)`; a point outside the cube is redrawn up to 100 times, then
//! the last draw is clipped into it), until λ trials of the generation have been added; then it
//! answers `Wait` until all λ have finished. On a fully discrete space (every dimension
//! integer, quantized or a choice) with configs still untried, a draw that repeats a trial's
//! config is redrawn (up to 100 times), then replaced by an untried random one, as TPE does. When the last one finishes the generation is told:
//! completed trials rank by their score, pruned ones by their last score, failed ones (and
//! trials without a score) rank last; mean, σ, paths and C are updated, and the next
//! generation starts.
//!
//! # State: a fold over the calls
//!
//! Resume rebuilds a searcher by replaying `on_trial_add` / `on_result` / `on_complete`, never
//! `suggest`. So nothing is kept of what `suggest` drew: `suggest` is a function of the state
//! and the rng only, and `on_trial_add` turns the config it is given back into a point of the
//! cube (through the same mapping, so a rounded value becomes the centre of its step) and
//! makes that trial a member of the current generation. The update uses these points: for a
//! continuous dimension they are the draws themselves, for a discrete one the rounded draws.
//! Because a rounded or clipped point is no longer an exact draw of the distribution, every
//! selected step `y = (x - m) / σ` is shortened to at most `sqrt(n) + 2n / (n + 2)` in the
//! distribution's metric (the tutorial's rule for injected solutions).
//!
//! Which role an added trial plays is decided from the state when it is added, by the rule
//! `suggest` used a moment before: the first `points_to_evaluate` are points, then trials are
//! random startup trials while fewer than `n_startup_trials` trials have finished with a score
//! (completed, or pruned), then generation members. Points and startup trials count as told observations,
//! not as members, and they are never ranked in a generation. The first generation's mean is the
//! best of the points with a score (the user's hint), else the centre of the cube (the usual
//! `x0` with no prior, as Optuna's `CmaEsSampler` does): a random startup trial is a worse
//! start on average, which measured side by side cost up to 4× the regret on Rosenbrock-5 at
//! 100 trials.
//!
//! # Restarts
//!
//! After each generation the run ends when σ·max(sqrt(diag C)) < 1e-12, when the condition
//! number of C exceeds 1e14, or when the run's best score has not improved for
//! `10 + ceil(30 n / λ)` generations. With `restart = "ipop"` (the default) a new run starts
//! with twice the population, σ₀, C = I and a mean drawn uniformly in the cube from a generator
//! seeded by `seed` (0 if unset) mixed with the bits of the last generation's points and scores
//! (so the restart point is a function of the observations, yet differs between experiments);
//! with `"none"` the run simply goes on.

mod linalg;
mod strategy;

use crate::numeric::{self, Dim, Leaf, Preset};
use crate::path::{get_path, set_path};
use crate::sample::unit;
use crate::searcher::{Observation, Outcome, Searcher, Suggestion, TrialId};
use crate::space::{Config, Space, SpaceError};
use crate::tpe::TpeDistribution;
use crate::Rng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
pub use strategy::Stop as CmaesStop;
use strategy::Strategy;

/// What [`CmaesSearch`] does when a run ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CmaesRestart {
    /// Go on with the same run.
    None,
    /// Start a new run with twice the population (IPOP-CMA-ES).
    #[default]
    Ipop,
}

fn one() -> usize {
    1
}

/// Options of [`CmaesSearch`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CmaesConfig {
    /// Initial step size in the normalised cube (default 1/6 of its side); in `(0, 1]`.
    #[serde(default)]
    pub sigma0: Option<f64>,
    /// The first run's population λ (default `4 + floor(3 ln n)`); at least 2.
    #[serde(default)]
    pub popsize: Option<usize>,
    /// What happens when a run ends.
    #[serde(default)]
    pub restart: CmaesRestart,
    /// Draw configs at random until this many trials have finished with a score (completed or pruned).
    #[serde(default = "one")]
    pub n_startup_trials: usize,
    /// Seed mixed into the restart points.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Partial configs run first, in order, each counting as one of `num_samples`; leaves a
    /// point leaves unset are drawn at random.
    #[serde(default)]
    pub points_to_evaluate: Vec<Config>,
}

impl Default for CmaesConfig {
    fn default() -> Self {
        CmaesConfig {
            sigma0: None,
            popsize: None,
            restart: CmaesRestart::Ipop,
            n_startup_trials: 1,
            seed: None,
            points_to_evaluate: Vec::new(),
        }
    }
}

impl CmaesConfig {
    /// Builds the searcher; `num_samples` is -1 for unlimited, else at least 0. Scores it is
    /// told are "higher is better" (the metric's mode is already folded in).
    ///
    /// Refuses `grid_search` leaves, points naming keys the space lacks, `sigma0` outside
    /// `(0, 1]` and `popsize` below 2.
    pub fn build(self, space: Space, num_samples: i64) -> Result<CmaesSearch, SpaceError> {
        let err = |path: &str, rule: String| SpaceError { path: path.into(), rule };
        let num_samples = numeric::parse_num_samples(num_samples)?;
        let sigma0 = self.sigma0.unwrap_or(1.0 / 6.0);
        if !(sigma0 > 0.0 && sigma0 <= 1.0) {
            return Err(err("sigma0", format!("must be in (0, 1] (a fraction of the normalised range), got {sigma0}")));
        }
        if let Some(p) = self.popsize.filter(|&p| p < 2) {
            return Err(err("popsize", format!("must be at least 2, got {p}")));
        }
        let (leaves, dims) = numeric::compile(&space, "CMA-ES")?;
        let presets = numeric::compile_points(&space, &self.points_to_evaluate)?;
        let numeric: Vec<usize> =
            (0..dims.len()).filter(|&j| matches!(dims[j].dist, TpeDistribution::Numeric { .. })).collect();
        let bounds = numeric.iter().map(|&j| numeric::cube_bounds(&dims[j].dist)).collect();
        let discrete = numeric.iter().any(|&j| matches!(dims[j].dist, TpeDistribution::Numeric { step: Some(_), .. }));
        let n = numeric.len();
        let lambda0 = self.popsize.unwrap_or_else(|| 4 + (3.0 * (n.max(1) as f64).ln()).floor() as usize);
        let lattice = dims.iter().try_fold(1u128, |acc, d| d.lattice_len().map(|n| acc.saturating_mul(n)));
        Ok(CmaesSearch {
            sigma0,
            lambda0,
            restart: self.restart,
            n_startup_trials: self.n_startup_trials,
            seed: self.seed.unwrap_or(0),
            space,
            leaves,
            dims,
            numeric,
            bounds,
            discrete,
            presets,
            num_samples,
            trials: BTreeMap::new(),
            lattice,
            seen: BTreeSet::new(),
            run: None,
            restarts: 0,
            generations: 0,
            stops: Vec::new(),
        })
    }
}

/// The part an added trial plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// One of `points_to_evaluate`.
    Point,
    /// Drawn at random before enough trials had finished.
    Startup,
    /// A member of the generation that was current when it was added.
    Member,
    /// Added while its generation was already full (not suggested by this searcher).
    Extra,
}

/// What the searcher remembers of one trial.
#[derive(Clone, Debug, PartialEq)]
struct Record {
    role: Role,
    /// The config's point in the cube, per numeric dimension (`None` where the config has no usable value).
    x: Vec<Option<f64>>,
    /// `(progress, score)` of the furthest intermediate result.
    last: Option<(f64, Option<f64>)>,
    /// Set when it ends: its score for ranking (`-inf` when failed or without a score).
    score: Option<f64>,
}

/// The current run and its generation's members.
#[derive(Clone, Debug, PartialEq)]
struct Run {
    strategy: Strategy,
    members: Vec<TrialId>,
}

/// CMA-ES over a [`Space`], with IPOP restarts: see the module docs for the mapping, the
/// generations and how the state is rebuilt by replay.
///
/// `suggest` answers `Exhausted` once `num_samples` trials have been added, and `Wait` while a
/// generation's λ trials are all out and not all finished.
#[derive(Clone, Debug, PartialEq)]
pub struct CmaesSearch {
    sigma0: f64,
    lambda0: usize,
    restart: CmaesRestart,
    n_startup_trials: usize,
    seed: u64,
    space: Space,
    leaves: Vec<Leaf>,
    dims: Vec<Dim>,
    /// Indices into `dims` of the numeric dimensions: the cube's axes.
    numeric: Vec<usize>,
    /// Per axis, the internal range `[0, 1]` spans.
    bounds: Vec<(f64, f64)>,
    /// Whether some axis is discrete (its values are rounded).
    discrete: bool,
    presets: Vec<Preset>,
    num_samples: Option<u64>,
    trials: BTreeMap<TrialId, Record>,
    /// On a fully discrete space, the number of distinct configs (`None` otherwise).
    lattice: Option<u128>,
    /// The configs of the trials added (JSON), to avoid repeats on a discrete space.
    seen: BTreeSet<String>,
    run: Option<Run>,
    restarts: u32,
    generations: u64,
    /// Why each run that ended did, in order.
    stops: Vec<CmaesStop>,
}

impl CmaesSearch {
    /// A searcher with default options.
    pub fn new(space: Space, num_samples: i64) -> Result<Self, SpaceError> {
        CmaesConfig::default().build(space, num_samples)
    }

    /// How many trials have been added: the index of the next suggestion.
    pub fn position(&self) -> u64 {
        self.trials.len() as u64
    }

    /// The space searched.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// How many dimensions CMA-ES searches (the numeric ones).
    pub fn dims(&self) -> usize {
        self.numeric.len()
    }

    /// The current run's population λ.
    pub fn population_size(&self) -> usize {
        self.run.as_ref().map_or(self.lambda0, |r| r.strategy.params.lambda)
    }

    /// How many restarts there have been.
    pub fn restarts(&self) -> u32 {
        self.restarts
    }

    /// Why each run that ended did, in order (with `restart = "none"`, runs never end).
    pub fn stops(&self) -> &[CmaesStop] {
        &self.stops
    }

    /// How many generations have been told, over all runs.
    pub fn generations(&self) -> u64 {
        self.generations
    }

    /// The current step size in the cube (σ₀ before the first generation).
    pub fn sigma(&self) -> f64 {
        self.run.as_ref().map_or(self.sigma0, |r| r.strategy.sigma)
    }

    /// Trials finished with a score (completed, or pruned), of any role.
    fn finished(&self) -> usize {
        self.trials.values().filter(|r| r.score.is_some_and(f64::is_finite)).count()
    }

    /// Whether the next trial (at `position`) is drawn at random rather than by CMA-ES.
    fn startup(&self) -> bool {
        self.numeric.is_empty() || self.finished() < self.n_startup_trials
    }

    /// The first run: its mean is the best point with a score, else the centre.
    fn first_run(&self) -> Run {
        let best = self
            .trials
            .values()
            .filter(|r| matches!(r.role, Role::Point))
            .filter_map(|r| r.score.filter(|s| s.is_finite()).map(|s| (s, r)))
            .fold(None, |acc: Option<(f64, &Record)>, (s, r)| match acc {
                Some((b, _)) if b >= s => acc,
                _ => Some((s, r)),
            });
        let mean = match best {
            Some((_, r)) => r.x.iter().map(|v| v.unwrap_or(0.5)).collect(),
            None => vec![0.5; self.numeric.len()],
        };
        Run { strategy: Strategy::new(mean, self.sigma0, self.lambda0), members: Vec::new() }
    }

    /// A random config, with a point's values over it when `preset` is given.
    fn random_config(&self, rng: &mut Rng, preset: Option<&[(Vec<String>, Value)]>) -> Config {
        let mut config = self.space.resolve(&[], rng);
        for (path, v) in preset.unwrap_or_default() {
            set_path(&mut config, path, v.clone());
        }
        config
    }

    /// On a fully discrete space with configs still untried, `config` when no trial has it yet,
    /// else the first untried of up to 100 more `draw`s, then of up to 100 random configs
    /// (the last draw when all repeat); anywhere else `config` itself.
    fn untried(&self, config: Config, mut draw: impl FnMut(&Self, &mut Rng) -> Config, rng: &mut Rng) -> Config {
        let Some(size) = self.lattice else { return config };
        if self.seen.len() as u128 >= size {
            return config;
        }
        let tried = |c: &Config| self.seen.contains(&serde_json::to_string(c).unwrap_or_default());
        let mut c = config;
        for i in 0..200 {
            if !tried(&c) {
                break;
            }
            c = if i < 100 { draw(self, rng) } else { self.random_config(rng, None) };
        }
        c
    }

    /// The config of cube point `x`, choices drawn from `rng`.
    fn config_at(&self, x: &[f64], rng: &mut Rng) -> Config {
        let mut values: Vec<Option<Value>> = vec![None; self.dims.len()];
        for ((&j, &(lo, hi)), &u) in self.numeric.iter().zip(&self.bounds).zip(x) {
            let dim = &self.dims[j];
            let TpeDistribution::Numeric { low, high, step, log } = dim.dist else { unreachable!("numeric axis") };
            let t = lo + u.clamp(0.0, 1.0) * (hi - lo);
            let mut v = if log { t.exp() } else { t };
            if let Some(s) = step {
                v = low + ((v - low) / s).round() * s;
            }
            values[j] = Some(dim.external(v.clamp(low, high)));
        }
        for (j, dim) in self.dims.iter().enumerate() {
            if values[j].is_none() {
                values[j] = Some(self.space.params()[dim.param].domain.sample(rng));
            }
        }
        numeric::assemble(&self.space, &self.leaves, |j| values[j].take().unwrap_or_default())
    }

    /// The cube point of a config (per axis, `None` where it has no usable value).
    fn point_of(&self, config: &Config) -> Vec<Option<f64>> {
        self.numeric
            .iter()
            .zip(&self.bounds)
            .map(|(&j, &(lo, hi))| {
                let dim = &self.dims[j];
                let v = get_path(config, &self.space.params()[dim.param].path).and_then(|v| dim.internal(v))?;
                let TpeDistribution::Numeric { log, .. } = dim.dist else { return None };
                let t = if log { v.ln() } else { v };
                Some(((t - lo) / (hi - lo)).clamp(0.0, 1.0))
            })
            .collect()
    }

    /// Whether a member's point can be an exact draw: every axis continuous, every value
    /// present, none on a face of the cube (where out-of-bounds draws end up clipped).
    fn exact(&self, x: &[Option<f64>]) -> bool {
        !self.discrete && x.iter().all(|v| v.is_some_and(|v| (1e-12..=1.0 - 1e-12).contains(&v)))
    }

    /// Tells the current generation if all λ members have finished; restarts if the run ended.
    fn maybe_tell(&mut self) {
        let Some(run) = &self.run else { return };
        let lambda = run.strategy.params.lambda;
        if run.members.len() < lambda || run.members.iter().any(|t| self.trials[t].score.is_none()) {
            return;
        }
        let mean = run.strategy.mean.clone();
        let mut ranked: Vec<(f64, Vec<f64>, bool)> = run
            .members
            .iter()
            .map(|t| {
                let r = &self.trials[t];
                let x = r.x.iter().zip(&mean).map(|(v, m)| v.unwrap_or(*m)).collect();
                (r.score.unwrap_or(f64::NEG_INFINITY), x, self.exact(&r.x))
            })
            .collect();
        // Best first; ties keep the order the members were added in.
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
        let mut hash = Fnv::default();
        for (s, x, _) in &ranked {
            hash.add(s.to_bits());
            x.iter().for_each(|v| hash.add(v.to_bits()));
        }
        let best = ranked[0].0;
        let scored = ranked.iter().filter(|(s, _, _)| s.is_finite()).count();
        let points: Vec<(Vec<f64>, bool)> = ranked.into_iter().map(|(_, x, exact)| (x, exact)).collect();
        let run = self.run.as_mut().expect("checked above");
        run.strategy.tell(&points, scored, best);
        run.members.clear();
        self.generations += 1;
        let stop = if self.restart == CmaesRestart::Ipop { run.strategy.stop() } else { None };
        if let Some(stop) = stop {
            self.stops.push(stop);
            self.restarts += 1;
            let mut rng = Rng::seed_from_u64(self.seed ^ hash.0);
            rng.set_stream(u64::from(self.restarts));
            let mean = (0..self.numeric.len()).map(|_| unit(&mut rng)).collect();
            let lambda = run.strategy.params.lambda.saturating_mul(2);
            self.run = Some(Run { strategy: Strategy::new(mean, self.sigma0, lambda), members: Vec::new() });
        }
    }
}

/// FNV-1a over 64-bit words.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn add(&mut self, word: u64) {
        for byte in word.to_le_bytes() {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// A fold over the calls: see the module docs.
impl Searcher for CmaesSearch {
    fn suggest(&mut self, _trial: TrialId, rng: &mut Rng) -> Suggestion {
        let position = self.position();
        if self.num_samples.is_some_and(|n| position >= n) {
            return Suggestion::Exhausted;
        }
        if let Some(preset) = self.presets.get(position as usize) {
            return Suggestion::Config(self.random_config(rng, Some(preset)));
        }
        if self.startup() {
            let config = self.random_config(rng, None);
            return Suggestion::Config(self.untried(config, |s, rng| s.random_config(rng, None), rng));
        }
        let first;
        let run = match &self.run {
            Some(run) => run,
            None => {
                first = self.first_run();
                &first
            }
        };
        if run.members.len() >= run.strategy.params.lambda {
            return Suggestion::Wait;
        }
        let config = self.config_at(&run.strategy.sample(rng), rng);
        Suggestion::Config(self.untried(config, |s, rng| s.config_at(&run.strategy.sample(rng), rng), rng))
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
        if self.trials.contains_key(&trial) {
            return;
        }
        let role = if (self.position() as usize) < self.presets.len() {
            Role::Point
        } else if self.startup() {
            Role::Startup
        } else {
            if self.run.is_none() {
                self.run = Some(self.first_run());
            }
            let run = self.run.as_mut().expect("just made");
            if run.members.len() < run.strategy.params.lambda {
                run.members.push(trial);
                Role::Member
            } else {
                Role::Extra
            }
        };
        let x = self.point_of(config);
        self.trials.insert(trial, Record { role, x, last: None, score: None });
        if self.lattice.is_some() {
            self.seen.insert(serde_json::to_string(config).unwrap_or_default());
        }
    }

    fn on_result(&mut self, trial: TrialId, obs: &Observation) {
        let Some(record) = self.trials.get_mut(&trial) else { return };
        if obs.progress.is_nan() || record.score.is_some() {
            return;
        }
        if record.last.map_or(true, |(step, _)| obs.progress > step) {
            record.last = Some((obs.progress, obs.score.filter(|s| !s.is_nan())));
        }
    }

    fn on_complete(&mut self, trial: TrialId, outcome: &Outcome) {
        let Some(record) = self.trials.get_mut(&trial) else { return };
        if record.score.is_some() {
            return;
        }
        let score = match outcome {
            Outcome::Completed { score } => *score,
            Outcome::Pruned { score } => score.or(record.last.and_then(|(_, s)| s)),
            Outcome::Failed => None,
        };
        record.score = Some(score.filter(|s| !s.is_nan()).unwrap_or(f64::NEG_INFINITY));
        if record.role == Role::Member {
            self.maybe_tell();
        }
    }
}
