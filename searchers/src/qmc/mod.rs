//! Quasi-random search: trial `i`'s config is point `i` of a low-discrepancy sequence.
//!
//! The space's searched dimensions (the same ones [`crate::TpeSearch`] searches: see the table
//! in [`crate::tpe`]; a domain with a single possible value is set to it, `sample_from` is
//! `null`, `grid_search` is refused) get one coordinate each, in the space's path order. A
//! coordinate `u` in `[0, 1)` becomes a value through the domain's inverse CDF, so that
//! uniform `u` would give exactly Ray Tune's distribution:
//!
//! | domain | value |
//! |---|---|
//! | `uniform` | `low + u (high - low)`, below `high` |
//! | `loguniform` | `exp(ln low + u (ln high - ln low))`, below `high` |
//! | `quniform`, `qloguniform` | the same on Ray's narrowed bounds, then rounded to a multiple of `q` (half to even, as Ray) |
//! | `randn`, `qrandn` | `mean + sd Φ⁻¹(u)` (then rounded to a multiple of `q`); `u` is kept in `[2^-53, 1 - 2^-53]`, so the origin gives `mean - 8.2 sd` |
//! | `randint` | `low + floor(u (high - low))`: `high` excluded, as Ray |
//! | `qrandint` | `ql + floor(u (qu - ql))` on Ray's bounds, then rounded to a multiple of `q` (Ray's weights) |
//! | `lograndint`, `qlograndint` | `floor(exp(ln low + u (ln high - ln low)))`, quantized as Ray |
//! | `choice` | `values[floor(u k)]` |
//!
//! Sequences ([`Sobol`], [`Halton`]): scrambled by default. The scramble is drawn from `seed`
//! when the config gives one; without it, from the key of the generator `suggest` is handed —
//! [`crate::trial_rng`] gives every trial of an experiment the same key (only the stream
//! differs), so the scramble is the experiment seed's: the same seed gives the same sequence,
//! another seed another one. The origin is not skipped when unscrambled (SciPy's default too:
//! dropping it spoils the balance of the first `2^k` points, Owen 2020); it maps to every
//! domain's lower end.
//!
//! The searcher is a fold over `on_trial_add`: its position is the number of trials added.
//! Positions `0..P` are the `points_to_evaluate` (leaves a point leaves unset drawn at random
//! from the trial's rng, as TPE does); position `p >= P` is point `p - P` of the sequence, so a
//! trial's config depends only on the scramble and its position, and a replay of the stored
//! trials resumes the sequence exactly.

mod normal;
mod sequence;
mod sobol_table;

pub use normal::ndtri;
pub use sequence::{Halton, QmcError, Sobol, SOBOL_MAX_DIMS};

use crate::domain::int_quantized_bounds;
use crate::numeric::{self, Dim, Leaf, Preset};
use crate::searcher::{Searcher, Suggestion, TrialId};
use crate::space::{Config, Space, SpaceError};
use crate::{Domain, Rng};
use rand::SeedableRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeSet;

/// Which low-discrepancy sequence [`QmcSearch`] walks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QmcKind {
    /// Sobol' with Joe & Kuo's direction numbers (at most [`SOBOL_MAX_DIMS`] searched dimensions).
    #[default]
    Sobol,
    /// Halton in the first primes.
    Halton,
}

fn yes() -> bool {
    true
}

/// Options of [`QmcSearch`]: scrambled Sobol' by default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QmcConfig {
    /// The sequence.
    #[serde(default)]
    pub kind: QmcKind,
    /// Scramble the sequence (random linear matrix and digital shift for Sobol', random digit
    /// permutations for Halton).
    #[serde(default = "yes")]
    pub scramble: bool,
    /// Seed of the scramble; without it, the scramble follows the experiment seed (see the module docs).
    #[serde(default)]
    pub seed: Option<u64>,
    /// Partial configs run first, in order, each counting as one of `num_samples`; leaves a
    /// point leaves unset are drawn at random.
    #[serde(default)]
    pub points_to_evaluate: Vec<Config>,
}

impl Default for QmcConfig {
    fn default() -> Self {
        QmcConfig { kind: QmcKind::Sobol, scramble: true, seed: None, points_to_evaluate: Vec::new() }
    }
}

impl QmcConfig {
    /// Builds the searcher; `num_samples` is -1 for unlimited, else at least 0.
    ///
    /// Refuses `grid_search` leaves, points naming keys the space lacks, and Sobol' over more
    /// than [`SOBOL_MAX_DIMS`] searched dimensions.
    pub fn build(self, space: Space, num_samples: i64) -> Result<QmcSearch, SpaceError> {
        let num_samples = numeric::parse_num_samples(num_samples)?;
        let (leaves, dims) = numeric::compile(&space, "QMC search")?;
        let presets = numeric::compile_points(&space, &self.points_to_evaluate)?;
        if self.kind == QmcKind::Sobol && dims.len() > SOBOL_MAX_DIMS {
            let e = QmcError::TooManyDimensions { dims: dims.len(), max: SOBOL_MAX_DIMS };
            return Err(SpaceError { path: "kind".into(), rule: format!("{e} (the space's searched dimensions)") });
        }
        let mut search = QmcSearch {
            kind: self.kind,
            scramble: self.scramble,
            seed: self.seed,
            space,
            leaves,
            dims,
            presets,
            num_samples,
            fixed: None,
            added: BTreeSet::new(),
        };
        search.fixed = match (self.scramble, self.seed) {
            (false, _) => Some(search.sequence(None)),
            (true, Some(seed)) => Some(search.sequence(Some(&mut Rng::seed_from_u64(seed)))),
            (true, None) => None,
        };
        Ok(search)
    }
}

/// A built sequence.
#[derive(Clone, Debug, PartialEq)]
enum Sequence {
    Sobol(Sobol),
    Halton(Halton),
}

impl Sequence {
    fn point(&self, index: u64) -> Vec<f64> {
        match self {
            Sequence::Sobol(s) => s.point(index),
            Sequence::Halton(h) => h.point(index),
        }
    }
}

/// Quasi-random search over a [`Space`]: see the module docs for the mapping and the order.
///
/// `suggest` answers `Exhausted` once `num_samples` trials have been added; it never waits.
#[derive(Clone, Debug, PartialEq)]
pub struct QmcSearch {
    kind: QmcKind,
    scramble: bool,
    seed: Option<u64>,
    space: Space,
    leaves: Vec<Leaf>,
    dims: Vec<Dim>,
    presets: Vec<Preset>,
    num_samples: Option<u64>,
    /// The sequence, when it does not depend on the generator `suggest` is handed.
    fixed: Option<Sequence>,
    added: BTreeSet<TrialId>,
}

impl QmcSearch {
    /// A searcher with default options (scrambled Sobol', scramble from the experiment seed).
    pub fn new(space: Space, num_samples: i64) -> Result<Self, SpaceError> {
        QmcConfig::default().build(space, num_samples)
    }

    /// How many trials have been added: the position of the next suggestion.
    pub fn position(&self) -> u64 {
        self.added.len() as u64
    }

    /// The space searched.
    pub fn space(&self) -> &Space {
        &self.space
    }

    /// How many coordinates each point has (the searched dimensions).
    pub fn dims(&self) -> usize {
        self.dims.len()
    }

    /// The sequence, scrambled with `rng` if given.
    fn sequence(&self, rng: Option<&mut Rng>) -> Sequence {
        let d = self.dims.len();
        match (self.kind, rng) {
            (QmcKind::Sobol, None) => Sequence::Sobol(Sobol::new(d).expect("checked at build")),
            (QmcKind::Sobol, Some(rng)) => Sequence::Sobol(Sobol::scrambled(d, rng).expect("checked at build")),
            (QmcKind::Halton, None) => Sequence::Halton(Halton::new(d)),
            (QmcKind::Halton, Some(rng)) => Sequence::Halton(Halton::scrambled(d, rng)),
        }
    }

    /// The config of sequence point `index` (the scramble keyed by `rng` unless fixed).
    fn config_at(&self, index: u64, rng: &Rng) -> Config {
        let u = match &self.fixed {
            Some(seq) => seq.point(index),
            None => self.sequence(Some(&mut Rng::from_seed(rng.get_seed()))).point(index),
        };
        numeric::assemble(&self.space, &self.leaves, |j| {
            quantile(&self.space.params()[self.dims[j].param].domain, u[j])
        })
    }
}

/// A fold over `on_trial_add`: see the module docs.
impl Searcher for QmcSearch {
    fn suggest(&mut self, _trial: TrialId, rng: &mut Rng) -> Suggestion {
        let position = self.position();
        if self.num_samples.is_some_and(|n| position >= n) {
            return Suggestion::Exhausted;
        }
        if let Some(preset) = self.presets.get(position as usize) {
            return Suggestion::Config(numeric::preset_config(&self.space, preset, rng));
        }
        Suggestion::Config(self.config_at(position - self.presets.len() as u64, rng))
    }

    fn on_trial_add(&mut self, trial: TrialId, _config: &Config) {
        self.added.insert(trial);
    }
}

/// The value of `domain` at quantile `u` in `[0, 1)`: Ray's distribution when `u` is uniform.
pub fn quantile(domain: &Domain, u: f64) -> Value {
    let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0 - f64::EPSILON / 2.0) };
    let lerp = |a: f64, b: f64| a + (b - a) * u;
    match *domain {
        Domain::Uniform { low, high } => float(below_high(lerp(low, high), low, high)),
        Domain::Loguniform { low, high, .. } => float(below_high(lerp(low.ln(), high.ln()).exp(), low, high)),
        Domain::Quniform { low, high, q } => {
            let (ql, qu) = ((low / q).ceil() * q, (high / q).floor() * q);
            float(quantize(lerp(ql, qu), q).clamp(low, high))
        }
        Domain::Qloguniform { low, high, q, .. } => {
            let (ql, qu) = ((low / q).ceil() * q, (high / q).floor() * q);
            float(quantize(lerp(ql.ln(), qu.ln()).exp(), q).clamp(low, high))
        }
        Domain::Randn { mean, sd } => float(mean + sd * normal_at(u)),
        Domain::Qrandn { mean, sd, q } => float(quantize(mean + sd * normal_at(u), q)),
        Domain::Randint { low, high } => Value::from(int_at(u, i128::from(low), i128::from(high))),
        Domain::Qrandint { low, high, q } => {
            let (ql, qu) = int_quantized_bounds(low, high, q);
            let v = int_at(u, ql, qu.max(ql + 1));
            Value::from(clamp_i64(round_div_half_even(i128::from(v), i128::from(q)) * i128::from(q)))
        }
        Domain::Lograndint { low, high, .. } => {
            let x = lerp((low as f64).ln(), (high as f64).ln()).exp();
            Value::from(floor_clamped(x, low, high - 1))
        }
        Domain::Qlograndint { low, high, q, .. } => {
            let (ql, qu) = int_quantized_bounds(low, high, q);
            let (ql, qu) = (clamp_i64(ql), clamp_i64(qu));
            let x = lerp((ql as f64).ln(), (qu as f64).ln()).exp();
            let v = i128::from(floor_clamped(x, ql, (qu - 1).max(ql)));
            Value::from(clamp_i64(round_div_half_even(v, i128::from(q)) * i128::from(q)).clamp(ql, qu))
        }
        Domain::Choice { ref values } | Domain::GridSearch { ref values } => {
            values[((u * values.len() as f64) as usize).min(values.len() - 1)].clone()
        }
        Domain::SampleFrom { .. } => Value::Null,
    }
}

fn float(v: f64) -> Value {
    Value::from(v)
}

/// `Φ⁻¹(u)` with `u` kept off 0 and 1.
fn normal_at(u: f64) -> f64 {
    ndtri(u.clamp(f64::EPSILON / 2.0, 1.0 - f64::EPSILON / 2.0))
}

/// `v` kept in `[low, high)`.
fn below_high(v: f64, low: f64, high: f64) -> f64 {
    if v >= high {
        numeric::below(high).max(low)
    } else {
        v.max(low)
    }
}

/// `low + floor(u (high - low))`, in `[low, high)`.
fn int_at(u: f64, low: i128, high: i128) -> i64 {
    let n = high - low;
    let k = ((u * n as f64) as i128).clamp(0, n - 1);
    clamp_i64(low + k)
}

/// `np.round(v / q) * q` for floats.
fn quantize(v: f64, q: f64) -> f64 {
    (v / q).round_ties_even() * q
}

/// `np.round(v / q)` for integers: the nearest integer, ties to the even one.
fn round_div_half_even(v: i128, q: i128) -> i128 {
    let (d, r) = (v.div_euclid(q), v.rem_euclid(q));
    match (2 * r).cmp(&q) {
        std::cmp::Ordering::Less => d,
        std::cmp::Ordering::Greater => d + 1,
        std::cmp::Ordering::Equal if d % 2 == 0 => d,
        std::cmp::Ordering::Equal => d + 1,
    }
}

fn clamp_i64(v: i128) -> i64 {
    v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

fn floor_clamped(x: f64, lo: i64, hi: i64) -> i64 {
    (x.floor() as i64).clamp(lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn quantiles_follow_ray_bounds() {
        let q = |d: Domain, u: f64| quantile(&d, u);
        assert_eq!(q(Domain::Randint { low: 0, high: 3 }, 0.999_999), json!(2));
        assert_eq!(q(Domain::Randint { low: 0, high: 3 }, 0.34), json!(1));
        assert_eq!(q(Domain::Qrandint { low: 0, high: 10, q: 5 }, 0.0), json!(0));
        assert_eq!(q(Domain::Qrandint { low: 0, high: 10, q: 5 }, 0.35), json!(5));
        assert_eq!(q(Domain::Qrandint { low: 0, high: 10, q: 5 }, 0.85), json!(10));
        assert_eq!(q(Domain::Uniform { low: 1.0, high: 2.0 }, 0.25), json!(1.25));
        assert!(q(Domain::Uniform { low: 1.0, high: 2.0 }, 1.0).as_f64().unwrap() < 2.0);
        assert_eq!(q(Domain::Lograndint { low: 1, high: 100, base: 10.0 }, 0.5), json!(10));
        assert_eq!(q(Domain::Choice { values: vec![json!("a"), json!("b")] }, 0.5), json!("b"));
        assert_eq!(q(Domain::Randn { mean: 1.0, sd: 2.0 }, 0.5), json!(1.0));
        assert_eq!(q(Domain::Quniform { low: 0.0, high: 1.0, q: 0.25 }, 0.99), json!(1.0));
    }
}
