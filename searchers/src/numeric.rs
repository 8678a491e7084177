//! Ray Tune's domains as numeric dimensions: the mapping TPE, QMC search and CMA-ES share.
//!
//! See the table in [`crate::tpe`]'s module docs: each domain leaf becomes a searched dimension
//! (a [`TpeDistribution`] and how its internal value becomes a config value), a fixed value, a
//! `null` (`sample_from`), or is refused (`grid_search`).

use crate::path::point_leaves;
use crate::space::{Config, Space, SpaceError};
use crate::tpe::TpeDistribution;
use crate::Domain;
use serde_json::Value;

/// What a space leaf becomes.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Leaf {
    /// A searched dimension (index into `dims`).
    Dim(usize),
    /// A domain with one possible value.
    Fixed(Value),
    /// `sample_from`: left for the caller.
    Null,
}

/// How an internal value becomes a config value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Output {
    /// A float: rounded to a multiple of `q` Ray's way if given, kept in `[low, high]`, and below
    /// `high` when `high` is exclusive.
    Float { low: f64, high: f64, q: Option<f64>, exclusive: bool },
    /// An integer in `[low, high]`.
    Int { low: i64, high: i64 },
    /// One of the values, by index.
    Choice(Vec<Value>),
}

/// One searched dimension: the space leaf it fills, its distribution and how values come out.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Dim {
    pub(crate) param: usize,
    pub(crate) dist: TpeDistribution,
    pub(crate) out: Output,
}

impl Dim {
    /// How many values a discrete dimension has; `None` when continuous.
    pub(crate) fn lattice_len(&self) -> Option<u128> {
        match self.dist {
            TpeDistribution::Numeric { low, high, step: Some(step), .. } => {
                Some(((high - low) / step).round() as u128 + 1)
            }
            TpeDistribution::Numeric { step: None, .. } => None,
            TpeDistribution::Categorical { n_choices } => Some(n_choices as u128),
        }
    }

    /// The internal value of a config value: `None` when it cannot belong to this dimension.
    /// Numbers are clamped into the dimension's bounds.
    pub(crate) fn internal(&self, v: &Value) -> Option<f64> {
        match (&self.dist, &self.out) {
            (TpeDistribution::Numeric { low, high, .. }, _) => {
                let x = v.as_f64().filter(|x| x.is_finite())?;
                Some(x.clamp(*low, *high))
            }
            (TpeDistribution::Categorical { .. }, Output::Choice(values)) => {
                let exact = values.iter().position(|c| c == v);
                let numeric = || {
                    let x = v.as_f64()?;
                    values.iter().position(|c| c.as_f64() == Some(x))
                };
                exact.or_else(numeric).map(|i| i as f64)
            }
            (TpeDistribution::Categorical { .. }, _) => None,
        }
    }

    /// The config value of an internal value.
    pub(crate) fn external(&self, x: f64) -> Value {
        match &self.out {
            Output::Float { low, high, q, exclusive } => {
                let mut v = match q {
                    Some(q) => (x / q).round_ties_even() * q,
                    None => x,
                };
                v = v.clamp(*low, *high);
                if *exclusive && v >= *high {
                    v = below(*high).max(*low);
                }
                Value::from(v)
            }
            Output::Int { low, high } => Value::from((x.round_ties_even() as i64).clamp(*low, *high)),
            Output::Choice(values) => values[(x as usize).min(values.len() - 1)].clone(),
        }
    }

    /// The lattice index of an internal value (discrete dimensions).
    pub(crate) fn key(&self, x: f64) -> i64 {
        match self.dist {
            TpeDistribution::Numeric { low, step: Some(step), .. } => ((x - low) / step).round() as i64,
            _ => x as i64,
        }
    }

    /// Clamps a continuous candidate into the declared bounds (sampling can overshoot by an ulp).
    pub(crate) fn clamp(&self, x: f64) -> f64 {
        match self.dist {
            TpeDistribution::Numeric { low, high, step: None, .. } => x.clamp(low, high),
            _ => x,
        }
    }
}

/// The range of a numeric dimension that the unit interval spans, in its internal scale (log for
/// log dimensions), half a step wider at each end for discrete ones so that every value gets the
/// same width (CMA-ES's cube and the GP's inputs).
pub(crate) fn cube_bounds(dist: &TpeDistribution) -> (f64, f64) {
    match *dist {
        TpeDistribution::Numeric { low, high, step, log } => {
            let (lo, hi) = match step {
                Some(s) => (low - s / 2.0, high + s / 2.0),
                None => (low, high),
            };
            if log {
                (lo.ln(), hi.ln())
            } else {
                (lo, hi)
            }
        }
        TpeDistribution::Categorical { .. } => (0.0, 1.0),
    }
}

/// The largest float below `x` (finite `x`).
pub(crate) fn below(x: f64) -> f64 {
    if x > 0.0 {
        f64::from_bits(x.to_bits() - 1)
    } else if x == 0.0 {
        -f64::from_bits(1)
    } else {
        f64::from_bits(x.to_bits() + 1)
    }
}

pub(crate) enum Mapped {
    Dim(TpeDistribution, Output),
    Fixed(Value),
    Null,
    Grid,
}

fn num(low: f64, high: f64, step: Option<f64>, log: bool) -> TpeDistribution {
    TpeDistribution::Numeric { low, high, step, log }
}

fn float_out(low: f64, high: f64, q: Option<f64>, exclusive: bool) -> Output {
    Output::Float { low, high, q, exclusive }
}

/// An integer dimension on `low, low + q, ..., high`, or a fixed value when that is one point.
fn int_dim(low: i128, high: i128, q: i64, log: bool) -> Mapped {
    let clamp = |v: i128| v.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64;
    let (low, high) = (clamp(low), clamp(high));
    if low >= high {
        return Mapped::Fixed(Value::from(low));
    }
    Mapped::Dim(num(low as f64, high as f64, Some(q as f64), log), Output::Int { low, high })
}

/// Ray's domain as a TPE dimension (see the module docs for the table).
pub(crate) fn map_domain(d: &Domain) -> Mapped {
    use crate::domain::int_quantized_bounds;
    match *d {
        Domain::Uniform { low, high } => Mapped::Dim(num(low, high, None, false), float_out(low, high, None, true)),
        Domain::Loguniform { low, high, .. } => {
            Mapped::Dim(num(low, high, None, true), float_out(low, high, None, true))
        }
        Domain::Quniform { low, high, q } | Domain::Qloguniform { low, high, q, .. } => {
            let log = matches!(d, Domain::Qloguniform { .. });
            let (ql, qu) = ((low / q).ceil() * q, (high / q).floor() * q);
            if ql >= qu {
                return Mapped::Fixed(Value::from(ql.clamp(low, high)));
            }
            Mapped::Dim(num(ql, qu, Some(q), log), float_out(low, high, Some(q), false))
        }
        Domain::Randn { mean, sd } => {
            let (low, high) = (mean - 10.0 * sd, mean + 10.0 * sd);
            if low >= high {
                return Mapped::Fixed(Value::from(mean));
            }
            Mapped::Dim(num(low, high, None, false), float_out(low, high, None, false))
        }
        Domain::Qrandn { mean, sd, q } => {
            let (ql, qu) = (((mean - 10.0 * sd) / q).ceil() * q, ((mean + 10.0 * sd) / q).floor() * q);
            if ql >= qu {
                let only = if ql == qu { ql } else { (mean / q).round_ties_even() * q };
                return Mapped::Fixed(Value::from(only));
            }
            Mapped::Dim(num(ql, qu, Some(q), false), float_out(ql, qu, Some(q), false))
        }
        Domain::Randint { low, high } => int_dim(i128::from(low), i128::from(high) - 1, 1, false),
        Domain::Lograndint { low, high, .. } => int_dim(i128::from(low), i128::from(high) - 1, 1, true),
        Domain::Qrandint { low, high, q } => {
            let (ql, qu) = int_quantized_bounds(low, high, q);
            int_dim(ql, qu, q, false)
        }
        Domain::Qlograndint { low, high, q, .. } => {
            let (ql, qu) = int_quantized_bounds(low, high, q);
            int_dim(ql, qu, q, true)
        }
        Domain::Choice { ref values } => {
            if values.len() == 1 {
                return Mapped::Fixed(values[0].clone());
            }
            Mapped::Dim(TpeDistribution::Categorical { n_choices: values.len() }, Output::Choice(values.clone()))
        }
        Domain::GridSearch { .. } => Mapped::Grid,
        Domain::SampleFrom { .. } => Mapped::Null,
    }
}

/// One of `points_to_evaluate`: the leaves it sets and their values.
pub(crate) type Preset = Vec<(Vec<String>, Value)>;

/// `num_samples` as a limit: -1 is unlimited (`None`), anything below is refused.
pub(crate) fn parse_num_samples(num_samples: i64) -> Result<Option<u64>, SpaceError> {
    match num_samples {
        -1 => Ok(None),
        n if n >= 0 => Ok(Some(n as u64)),
        n => Err(SpaceError {
            path: "num_samples".into(),
            rule: format!("must be -1 (unlimited) or at least 0, got {n}"),
        }),
    }
}

/// Every leaf of the space and the searched dimensions; `who` names the searcher in the
/// refusal of `grid_search` leaves.
pub(crate) fn compile(space: &Space, who: &str) -> Result<(Vec<Leaf>, Vec<Dim>), SpaceError> {
    let mut leaves = Vec::with_capacity(space.params().len());
    let mut dims = Vec::new();
    for (i, param) in space.params().iter().enumerate() {
        let leaf = match map_domain(&param.domain) {
            Mapped::Dim(dist, out) => {
                dims.push(Dim { param: i, dist, out });
                Leaf::Dim(dims.len() - 1)
            }
            Mapped::Fixed(v) => Leaf::Fixed(v),
            Mapped::Null => Leaf::Null,
            Mapped::Grid => {
                return Err(SpaceError {
                    path: param.dotted(),
                    rule: format!("grid_search is not supported by {who}; use random/grid search"),
                })
            }
        };
        leaves.push(leaf);
    }
    Ok((leaves, dims))
}

/// `points_to_evaluate` as leaf overrides; a key the space lacks is refused with its index.
pub(crate) fn compile_points(space: &Space, points: &[Config]) -> Result<Vec<Preset>, SpaceError> {
    let mut presets = Vec::with_capacity(points.len());
    for (i, point) in points.iter().enumerate() {
        let mut overrides = Vec::new();
        point_leaves(point, &mut Vec::new(), &mut overrides);
        if let Some((path, _)) = overrides.iter().find(|(path, _)| space.find(path).is_none()) {
            return Err(SpaceError {
                path: format!("points_to_evaluate[{i}].{}", path.join(".")),
                rule: "no such key in the search space".into(),
            });
        }
        presets.push(overrides);
    }
    Ok(presets)
}

/// A `points_to_evaluate` config: the space sampled from `rng`, then the preset's leaves set.
pub(crate) fn preset_config(space: &Space, preset: &Preset, rng: &mut crate::Rng) -> Config {
    let mut config = space.resolve(&[], rng);
    for (path, v) in preset {
        crate::path::set_path(&mut config, path, v.clone());
    }
    config
}

/// The config with `value(j)` at searched dimension `j`, fixed values and `null`s elsewhere.
pub(crate) fn assemble(space: &Space, leaves: &[Leaf], mut value: impl FnMut(usize) -> Value) -> Config {
    let values: Vec<Value> = leaves
        .iter()
        .map(|leaf| match leaf {
            Leaf::Dim(j) => value(*j),
            Leaf::Fixed(v) => v.clone(),
            Leaf::Null => Value::Null,
        })
        .collect();
    space.assemble(&values)
}
