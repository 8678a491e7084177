//! Drawing values from domains.
//!
//! Follows Ray Tune's `sample.py`: quantized domains first narrow the bounds to
//! `ceil(low / q) * q` and `floor(high / q) * q`, sample inside, then round `value / q` half to
//! even (like `np.round`) and multiply by `q`. Integer domains keep Ray's bounds: `randint` and
//! `lograndint` exclude `high`; their quantized forms can reach `high` when it is a multiple of `q`.
//! Results are clamped into the declared bounds, which only matters for rounding at the edges.
//! The random streams are this crate's own (not NumPy's), so values differ from Ray's for a seed.

use crate::domain::{int_quantized_bounds, Domain};
use crate::Rng;
use rand::RngCore;
use serde_json::Value;

impl Domain {
    /// Draws one value (a JSON integer for integer domains, a float for float ones).
    ///
    /// Assumes `validate` passed. `sample_from` gives `null` and draws nothing.
    pub fn sample(&self, rng: &mut Rng) -> Value {
        match *self {
            Domain::Uniform { low, high } => float(uniform_below(rng, low, high)),
            Domain::Quniform { low, high, q } => {
                let (ql, qu) = ((low / q).ceil() * q, (high / q).floor() * q);
                float(quantize(uniform_raw(rng, ql, qu), q).clamp(low, high))
            }
            Domain::Loguniform { low, high, .. } => {
                let v = uniform_raw(rng, low.ln(), high.ln()).exp();
                float(v.max(low).min(prev_float(high)))
            }
            Domain::Qloguniform { low, high, q, .. } => {
                let (ql, qu) = ((low / q).ceil() * q, (high / q).floor() * q);
                let v = uniform_raw(rng, ql.ln(), qu.ln()).exp();
                float(quantize(v, q).clamp(low, high))
            }
            Domain::Randn { mean, sd } => float(mean + sd * standard_normal(rng)),
            Domain::Qrandn { mean, sd, q } => float(quantize(mean + sd * standard_normal(rng), q)),
            Domain::Randint { low, high } => Value::from(int_below(rng, low, high)),
            Domain::Qrandint { low, high, q } => {
                let (ql, qu) = int_quantized_bounds(low, high, q);
                let v = i128::from(int_below(rng, clamp_i64(ql), clamp_i64(qu)));
                Value::from(clamp_i64(round_div_half_even(v, i128::from(q)) * i128::from(q)))
            }
            Domain::Lograndint { low, high, .. } => {
                let x = uniform_raw(rng, (low as f64).ln(), (high as f64).ln()).exp();
                Value::from(floor_clamped(x, low, high - 1))
            }
            Domain::Qlograndint { low, high, q, .. } => {
                let (ql, qu) = int_quantized_bounds(low, high, q);
                let (ql, qu) = (clamp_i64(ql), clamp_i64(qu));
                let x = uniform_raw(rng, (ql as f64).ln(), (qu as f64).ln()).exp();
                let v = i128::from(floor_clamped(x, ql, (qu - 1).max(ql)));
                let r = round_div_half_even(v, i128::from(q)) * i128::from(q);
                Value::from(clamp_i64(r).clamp(ql, qu))
            }
            Domain::Choice { ref values } | Domain::GridSearch { ref values } => {
                values[below(rng, values.len() as u64) as usize].clone()
            }
            Domain::SampleFrom { .. } => Value::Null,
        }
    }

    /// Whether `value` could belong to this domain (bounds inclusive, as Ray's `is_valid`).
    pub fn contains(&self, value: &Value) -> bool {
        match *self {
            Domain::Uniform { low, high }
            | Domain::Quniform { low, high, .. }
            | Domain::Loguniform { low, high, .. }
            | Domain::Qloguniform { low, high, .. } => value.as_f64().is_some_and(|v| low <= v && v <= high),
            Domain::Randn { .. } | Domain::Qrandn { .. } => value.as_f64().is_some_and(f64::is_finite),
            Domain::Randint { low, high }
            | Domain::Qrandint { low, high, .. }
            | Domain::Lograndint { low, high, .. }
            | Domain::Qlograndint { low, high, .. } => value.as_i64().is_some_and(|v| low <= v && v <= high),
            Domain::Choice { ref values } | Domain::GridSearch { ref values } => values.contains(value),
            Domain::SampleFrom { .. } => true,
        }
    }
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
    // `as` saturates, and NaN maps to 0 before the clamp.
    (x.floor() as i64).clamp(lo, hi)
}

/// `np.round(v / q) * q`.
fn quantize(v: f64, q: f64) -> f64 {
    (v / q).round_ties_even() * q
}

fn float(v: f64) -> Value {
    Value::from(v)
}

/// The largest float below `x` (finite `x`).
fn prev_float(x: f64) -> f64 {
    if x > 0.0 {
        f64::from_bits(x.to_bits() - 1)
    } else if x == 0.0 {
        -f64::from_bits(1)
    } else {
        f64::from_bits(x.to_bits() + 1)
    }
}

/// A float in `[0, 1)` with 53 random bits.
pub(crate) fn unit(rng: &mut Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// NumPy's `uniform(a, b)`: `a + (b - a) * u`; no clamping, `a > b` allowed.
fn uniform_raw(rng: &mut Rng, a: f64, b: f64) -> f64 {
    a + (b - a) * unit(rng)
}

/// Uniform in `[low, high)`, guarding against rounding up to `high`.
fn uniform_below(rng: &mut Rng, low: f64, high: f64) -> f64 {
    let v = uniform_raw(rng, low, high);
    if v >= high {
        prev_float(high).max(low)
    } else {
        v.max(low)
    }
}

/// A standard normal draw (Box-Muller, two uniforms per draw).
fn standard_normal(rng: &mut Rng) -> f64 {
    let u1 = 1.0 - unit(rng);
    let u2 = unit(rng);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// An unbiased integer in `[0, n)` (multiply-and-reject); `n` must be above 0.
pub(crate) fn below(rng: &mut Rng, n: u64) -> u64 {
    assert!(n > 0, "below(0)");
    let threshold = n.wrapping_neg() % n;
    loop {
        let m = u128::from(rng.next_u64()) * u128::from(n);
        if (m as u64) >= threshold {
            return (m >> 64) as u64;
        }
    }
}

/// An unbiased integer in `[low, high)`; `low < high`.
fn int_below(rng: &mut Rng, low: i64, high: i64) -> i64 {
    let n = (i128::from(high) - i128::from(low)) as u64;
    (i128::from(low) + i128::from(below(rng, n))) as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::BTreeMap;

    fn counts(d: &Domain, n: usize) -> BTreeMap<i64, usize> {
        let mut rng = Rng::seed_from_u64(7);
        let mut out = BTreeMap::new();
        for _ in 0..n {
            *out.entry(d.sample(&mut rng).as_i64().unwrap()).or_default() += 1;
        }
        out
    }

    #[test]
    fn qrandint_0_10_5_yields_only_0_5_10_with_ray_weights() {
        // Ray: integers(0, 10) then np.round(v / 5) * 5: 0..=2 -> 0, 3..=7 -> 5, 8..=9 -> 10.
        let c = counts(&Domain::Qrandint { low: 0, high: 10, q: 5 }, 10_000);
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![0, 5, 10]);
        assert!((2_700..3_300).contains(&c[&0]), "{c:?}");
        assert!((4_700..5_300).contains(&c[&5]), "{c:?}");
        assert!((1_700..2_300).contains(&c[&10]), "{c:?}");
    }

    #[test]
    fn randint_excludes_high() {
        let c = counts(&Domain::Randint { low: 0, high: 3 }, 3_000);
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn qrandint_with_q_1_is_randint() {
        let c = counts(&Domain::Qrandint { low: 0, high: 3, q: 1 }, 3_000);
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![0, 1, 2]);
    }

    #[test]
    fn lograndint_stays_in_low_to_high_minus_one() {
        let c = counts(&Domain::Lograndint { low: 1, high: 4, base: 10.0 }, 5_000);
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![1, 2, 3]);
        // P(1) = ln 2 / ln 4 = 0.5.
        assert!((2_300..2_700).contains(&c[&1]), "{c:?}");
    }

    #[test]
    fn qlograndint_single_multiple() {
        let c = counts(&Domain::Qlograndint { low: 3, high: 7, q: 5, base: 10.0 }, 100);
        assert_eq!(c.keys().copied().collect::<Vec<_>>(), vec![5]);
    }

    #[test]
    fn quniform_quarter_steps_include_high() {
        let d = Domain::Quniform { low: 0.0, high: 1.0, q: 0.25 };
        let mut rng = Rng::seed_from_u64(1);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..2_000 {
            let v = d.sample(&mut rng).as_f64().unwrap();
            assert_eq!(v * 4.0, (v * 4.0).round(), "{v}");
            seen.insert((v * 4.0) as i64);
        }
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn loguniform_in_half_open_range_and_floats() {
        let d = Domain::Loguniform { low: 1e-4, high: 1e-1, base: 10.0 };
        let mut rng = Rng::seed_from_u64(3);
        for _ in 0..2_000 {
            let v = d.sample(&mut rng);
            assert!(v.is_f64());
            let v = v.as_f64().unwrap();
            assert!((1e-4..1e-1).contains(&v), "{v}");
        }
    }

    #[test]
    fn round_half_even_matches_np_round() {
        // np.round: 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> -0, -1.5 -> -2.
        assert_eq!(round_div_half_even(1, 2), 0);
        assert_eq!(round_div_half_even(3, 2), 2);
        assert_eq!(round_div_half_even(5, 2), 2);
        assert_eq!(round_div_half_even(-1, 2), 0);
        assert_eq!(round_div_half_even(-3, 2), -2);
        assert_eq!(round_div_half_even(7, 5), 1);
        assert_eq!(quantize(2.5, 1.0), 2.0);
        assert_eq!(quantize(0.375, 0.25), 0.5);
        assert_eq!(quantize(0.125, 0.25), 0.0);
    }

    #[test]
    fn int_and_float_json_types() {
        let mut rng = Rng::seed_from_u64(0);
        assert!(Domain::Qrandint { low: 0, high: 10, q: 5 }.sample(&mut rng).is_i64());
        assert!(Domain::Qrandn { mean: 0.0, sd: 1.0, q: 1.0 }.sample(&mut rng).is_f64());
        assert!(Domain::SampleFrom { id: 3 }.sample(&mut rng).is_null());
    }

    #[test]
    fn below_is_unbiased_on_small_n() {
        let mut rng = Rng::seed_from_u64(11);
        let mut c = [0usize; 3];
        for _ in 0..30_000 {
            c[below(&mut rng, 3) as usize] += 1;
        }
        assert!(c.iter().all(|&n| (9_500..10_500).contains(&n)), "{c:?}");
    }
}
