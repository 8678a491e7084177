//! Parameter domains: what one leaf of a search space may take, and the rules it must obey.
//!
//! Sampling lives in `sample.rs`. Validation follows Ray Tune's refusals (`sample.py`), made
//! eager: bounds in order, log bounds above 0, `q`, `sd` and `base` sensible, float quantized
//! bounds multiples of `q`, and quantized integer ranges holding the multiples Ray samples from.

use serde::{Deserialize, Serialize};
use serde_json::Value;

fn ten() -> f64 {
    10.0
}

fn one() -> f64 {
    1.0
}

fn one_int() -> i64 {
    1
}

/// One leaf of a search space: a distribution, a grid to enumerate, or an outside callable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Domain {
    /// Float drawn uniformly from `[low, high)`.
    Uniform {
        /// Inclusive lower bound.
        low: f64,
        /// Exclusive upper bound.
        high: f64,
    },
    /// Float drawn uniformly, then rounded to a multiple of `q`; `high` is reachable.
    Quniform {
        /// Lower bound, a multiple of `q`.
        low: f64,
        /// Upper bound, a multiple of `q`.
        high: f64,
        /// Quantization step.
        q: f64,
    },
    /// Float drawn log-uniformly from `[low, high)`.
    Loguniform {
        /// Inclusive lower bound, above 0.
        low: f64,
        /// Exclusive upper bound.
        high: f64,
        /// Logarithm base (kept for fidelity; the distribution does not depend on it).
        #[serde(default = "ten")]
        base: f64,
    },
    /// Float drawn log-uniformly, then rounded to a multiple of `q`.
    Qloguniform {
        /// Lower bound, above 0 and a multiple of `q`.
        low: f64,
        /// Upper bound, a multiple of `q`.
        high: f64,
        /// Quantization step.
        q: f64,
        /// Logarithm base (kept for fidelity; the distribution does not depend on it).
        #[serde(default = "ten")]
        base: f64,
    },
    /// Float drawn from a normal distribution.
    Randn {
        /// Mean.
        #[serde(default)]
        mean: f64,
        /// Standard deviation, above 0.
        #[serde(default = "one")]
        sd: f64,
    },
    /// Float drawn from a normal distribution, then rounded to a multiple of `q`.
    Qrandn {
        /// Mean.
        mean: f64,
        /// Standard deviation, above 0.
        sd: f64,
        /// Quantization step.
        q: f64,
    },
    /// Integer drawn uniformly from `[low, high)`.
    Randint {
        /// Inclusive lower bound.
        low: i64,
        /// Exclusive upper bound.
        high: i64,
    },
    /// Integer drawn uniformly, then rounded to a multiple of `q`; `high` is reachable when `q > 1`.
    Qrandint {
        /// Lower bound.
        low: i64,
        /// Upper bound.
        high: i64,
        /// Quantization step.
        #[serde(default = "one_int")]
        q: i64,
    },
    /// Integer: the floor of a log-uniform draw from `[low, high)`.
    Lograndint {
        /// Inclusive lower bound, above 0.
        low: i64,
        /// Exclusive upper bound.
        high: i64,
        /// Logarithm base (kept for fidelity; the distribution does not depend on it).
        #[serde(default = "ten")]
        base: f64,
    },
    /// Integer: the floor of a log-uniform draw, then rounded to a multiple of `q`.
    Qlograndint {
        /// Lower bound, above 0.
        low: i64,
        /// Upper bound.
        high: i64,
        /// Quantization step.
        q: i64,
        /// Logarithm base (kept for fidelity; the distribution does not depend on it).
        #[serde(default = "ten")]
        base: f64,
    },
    /// One of `values`, each equally likely.
    Choice {
        /// The candidates.
        values: Vec<Value>,
    },
    /// Every one of `values`, enumerated by the grid (sampled like `Choice` when asked to sample).
    GridSearch {
        /// The grid's values, in order.
        values: Vec<Value>,
    },
    /// A callable resolved outside this crate; searchers emit `null` at this leaf.
    SampleFrom {
        /// The outside registry's handle for the callable.
        id: u64,
    },
}

impl Domain {
    /// The domain's name as written in specs (`"uniform"`, `"grid_search"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Domain::Uniform { .. } => "uniform",
            Domain::Quniform { .. } => "quniform",
            Domain::Loguniform { .. } => "loguniform",
            Domain::Qloguniform { .. } => "qloguniform",
            Domain::Randn { .. } => "randn",
            Domain::Qrandn { .. } => "qrandn",
            Domain::Randint { .. } => "randint",
            Domain::Qrandint { .. } => "qrandint",
            Domain::Lograndint { .. } => "lograndint",
            Domain::Qlograndint { .. } => "qlograndint",
            Domain::Choice { .. } => "choice",
            Domain::GridSearch { .. } => "grid_search",
            Domain::SampleFrom { .. } => "sample_from",
        }
    }

    /// Whether this leaf is enumerated by the grid rather than sampled.
    pub fn is_grid(&self) -> bool {
        matches!(self, Domain::GridSearch { .. })
    }

    /// Checks the domain's rules; the error names the rule broken and the offending values.
    pub fn validate(&self) -> Result<(), String> {
        let k = self.kind();
        match *self {
            Domain::Uniform { low, high } => {
                finite_range(k, low, high)?;
                less(k, low, high)
            }
            Domain::Quniform { low, high, q } => {
                finite_range(k, low, high)?;
                less(k, low, high)?;
                positive_q(k, q)?;
                multiple_of_q(k, "low", low, q)?;
                multiple_of_q(k, "high", high, q)
            }
            Domain::Loguniform { low, high, base } => {
                finite_range(k, low, high)?;
                log_low(k, low)?;
                less(k, low, high)?;
                valid_base(k, base)
            }
            Domain::Qloguniform { low, high, q, base } => {
                finite_range(k, low, high)?;
                log_low(k, low)?;
                less(k, low, high)?;
                positive_q(k, q)?;
                valid_base(k, base)?;
                multiple_of_q(k, "low", low, q)?;
                multiple_of_q(k, "high", high, q)
            }
            Domain::Randn { mean, sd } => normal(k, mean, sd),
            Domain::Qrandn { mean, sd, q } => {
                normal(k, mean, sd)?;
                positive_q(k, q)
            }
            Domain::Randint { low, high } => less(k, low, high),
            Domain::Qrandint { low, high, q } => {
                less(k, low, high)?;
                positive_int_q(k, q)?;
                let (ql, qu) = int_quantized_bounds(low, high, q);
                if ql < qu {
                    Ok(())
                } else {
                    Err(format!(
                        "{k} needs two multiples of q between low and high, \
                         got low = {low}, high = {high}, q = {q}"
                    ))
                }
            }
            Domain::Lograndint { low, high, base } => {
                log_low(k, low)?;
                less(k, low, high)?;
                valid_base(k, base)
            }
            Domain::Qlograndint { low, high, q, base } => {
                log_low(k, low)?;
                less(k, low, high)?;
                positive_int_q(k, q)?;
                valid_base(k, base)?;
                let (ql, qu) = int_quantized_bounds(low, high, q);
                if ql <= qu {
                    Ok(())
                } else {
                    Err(format!(
                        "{k} needs a multiple of q between low and high, \
                         got low = {low}, high = {high}, q = {q}"
                    ))
                }
            }
            Domain::Choice { ref values } | Domain::GridSearch { ref values } => {
                if values.is_empty() {
                    Err(format!("{k} needs at least one value"))
                } else {
                    Ok(())
                }
            }
            Domain::SampleFrom { .. } => Ok(()),
        }
    }
}

fn finite_range(k: &str, low: f64, high: f64) -> Result<(), String> {
    for (name, v) in [("low", low), ("high", high)] {
        if !v.is_finite() {
            return Err(format!("{k} needs a finite {name}, got {name} = {v}"));
        }
    }
    if !(high - low).is_finite() {
        return Err(format!("{k} needs high - low to be finite, got low = {low}, high = {high}"));
    }
    Ok(())
}

fn less<T: PartialOrd + std::fmt::Display>(k: &str, low: T, high: T) -> Result<(), String> {
    if low < high {
        Ok(())
    } else {
        Err(format!("{k} needs low < high, got low = {low}, high = {high}"))
    }
}

fn log_low<T: PartialOrd + Default + std::fmt::Display>(k: &str, low: T) -> Result<(), String> {
    if low > T::default() {
        Ok(())
    } else {
        Err(format!("{k} needs low > 0, got low = {low}"))
    }
}

fn positive_q(k: &str, q: f64) -> Result<(), String> {
    if !q.is_finite() {
        Err(format!("{k} needs a finite q, got q = {q}"))
    } else if q > 0.0 {
        Ok(())
    } else {
        Err(format!("{k} needs q > 0, got q = {q}"))
    }
}

fn positive_int_q(k: &str, q: i64) -> Result<(), String> {
    if q > 0 {
        Ok(())
    } else {
        Err(format!("{k} needs q > 0, got q = {q}"))
    }
}

fn valid_base(k: &str, base: f64) -> Result<(), String> {
    if base.is_finite() && base > 0.0 && base != 1.0 {
        Ok(())
    } else {
        Err(format!("{k} needs base > 0 and base != 1, got base = {base}"))
    }
}

fn normal(k: &str, mean: f64, sd: f64) -> Result<(), String> {
    if !mean.is_finite() {
        return Err(format!("{k} needs a finite mean, got mean = {mean}"));
    }
    if sd.is_finite() && sd > 0.0 {
        Ok(())
    } else {
        Err(format!("{k} needs sd > 0, got sd = {sd}"))
    }
}

/// Ray refuses float bounds that are not multiples of `q` (`math.isclose`, relative 1e-9).
fn multiple_of_q(k: &str, name: &str, v: f64, q: f64) -> Result<(), String> {
    let a = v / q;
    let b = a.round_ties_even();
    if (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) {
        Ok(())
    } else {
        Err(format!("{k} needs {name} to be a multiple of q, got {name} = {v}, q = {q}"))
    }
}

/// `(ceil(low / q) * q, floor(high / q) * q)` in exact integer arithmetic.
pub(crate) fn int_quantized_bounds(low: i64, high: i64, q: i64) -> (i128, i128) {
    let (low, high, q) = (i128::from(low), i128::from(high), i128::from(q));
    (-((-low).div_euclid(q)) * q, high.div_euclid(q) * q)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantized_int_bounds() {
        assert_eq!(int_quantized_bounds(1, 10, 3), (3, 9));
        assert_eq!(int_quantized_bounds(-7, -1, 3), (-6, -3));
    }

    #[test]
    fn validation_messages() {
        let cases = [
            (Domain::Uniform { low: 1.0, high: 1.0 }, "uniform needs low < high, got low = 1, high = 1"),
            (Domain::Loguniform { low: 0.0, high: 1.0, base: 10.0 }, "loguniform needs low > 0, got low = 0"),
            (Domain::Quniform { low: 0.0, high: 1.0, q: 0.0 }, "quniform needs q > 0, got q = 0"),
            (
                Domain::Quniform { low: 0.1, high: 1.0, q: 0.25 },
                "quniform needs low to be a multiple of q, got low = 0.1, q = 0.25",
            ),
            (Domain::Randn { mean: 0.0, sd: 0.0 }, "randn needs sd > 0, got sd = 0"),
            (Domain::Randint { low: 3, high: 3 }, "randint needs low < high, got low = 3, high = 3"),
            (
                Domain::Lograndint { low: 1, high: 9, base: 1.0 },
                "lograndint needs base > 0 and base != 1, got base = 1",
            ),
            (
                Domain::Qrandint { low: 0, high: 4, q: 5 },
                "qrandint needs two multiples of q between low and high, got low = 0, high = 4, q = 5",
            ),
            (Domain::Choice { values: vec![] }, "choice needs at least one value"),
            (Domain::Uniform { low: f64::NEG_INFINITY, high: 0.0 }, "uniform needs a finite low, got low = -inf"),
        ];
        for (d, msg) in cases {
            assert_eq!(d.validate().unwrap_err(), msg);
        }
        assert!(Domain::Qrandint { low: 0, high: 10, q: 5 }.validate().is_ok());
        assert!(Domain::Qloguniform { low: 1e-4, high: 1e-1, q: 1e-5, base: 10.0 }.validate().is_ok());
    }

    #[test]
    fn serde_tagged_with_defaults() {
        let d: Domain =
            serde_json::from_value(serde_json::json!({"kind": "loguniform", "low": 1e-4, "high": 1})).unwrap();
        assert_eq!(d, Domain::Loguniform { low: 1e-4, high: 1.0, base: 10.0 });
        let d: Domain = serde_json::from_value(serde_json::json!({"kind": "randn"})).unwrap();
        assert_eq!(d, Domain::Randn { mean: 0.0, sd: 1.0 });
        let v = serde_json::to_value(Domain::GridSearch { values: vec![1.into()] }).unwrap();
        assert_eq!(v, serde_json::json!({"kind": "grid_search", "values": [1]}));
        let bad = serde_json::from_value::<Domain>(serde_json::json!({"kind": "randint", "low": 0, "high": 1, "x": 2}));
        assert!(bad.is_err());
    }
}
