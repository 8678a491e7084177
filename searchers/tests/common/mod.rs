//! Shared by the searchers' tests: random domains, the exact set of values each domain may
//! produce, and the small helpers every searcher's test file calls.
// Each test binary uses some of these, none uses all.
#![allow(dead_code)]

use hyperfleet_searchers::{trial_rng, Config, Domain, Searcher, Space, Suggestion, TrialId};
use proptest::prelude::*;
use serde_json::Value;

/// A space from its JSON form.
pub fn space(v: Value) -> Space {
    Space::parse(&v).unwrap()
}

/// A config from a JSON object.
pub fn obj(v: Value) -> Config {
    v.as_object().unwrap().clone()
}

/// What `s` suggests for trial `t`, with the generator the controller would hand it.
pub fn suggest(s: &mut impl Searcher, seed: u64, t: u64) -> Suggestion {
    s.suggest(TrialId(t), &mut trial_rng(seed, TrialId(t)))
}

/// The config of a suggestion that must be one.
pub fn config(s: Suggestion) -> Config {
    match s {
        Suggestion::Config(c) => c,
        other => panic!("expected a config, got {other:?}"),
    }
}

fn q_f64() -> impl Strategy<Value = f64> {
    prop::sample::select(vec![0.1, 0.25, 0.5, 1.0, 2.0, 5.0])
}

/// Every kind of domain Ray has (grid and sample_from aside), with random bounds.
pub fn domain() -> impl Strategy<Value = Domain> {
    prop_oneof![
        (-1e3..1e3f64, 1e-6..1e3f64).prop_map(|(low, w)| Domain::Uniform { low, high: low + w }),
        (-20..20i32, 1..20i32, q_f64()).prop_map(|(a, n, q)| Domain::Quniform {
            low: f64::from(a) * q,
            high: f64::from(a + n) * q,
            q
        }),
        (-6.0..3.0f64, 0.01..4.0f64).prop_map(|(e, d)| Domain::Loguniform {
            low: 10f64.powf(e),
            high: 10f64.powf(e + d),
            base: 10.0
        }),
        (1..50i32, 1..50i32, q_f64()).prop_map(|(a, n, q)| Domain::Qloguniform {
            low: f64::from(a) * q,
            high: f64::from(a + n) * q,
            q,
            base: 10.0
        }),
        (-100.0..100.0f64, 0.01..10.0f64).prop_map(|(mean, sd)| Domain::Randn { mean, sd }),
        (-100.0..100.0f64, 0.01..10.0f64, q_f64()).prop_map(|(mean, sd, q)| Domain::Qrandn { mean, sd, q }),
        (-1000..1000i64, 1..1000i64).prop_map(|(low, n)| Domain::Randint { low, high: low + n }),
        (-1000..1000i64, 1..1000i64, 1..20i64).prop_map(|(low, n, q)| Domain::Qrandint { low, high: low + n, q }),
        (1..1000i64, 1..10_000i64).prop_map(|(low, n)| Domain::Lograndint { low, high: low + n, base: 10.0 }),
        (1..100i64, 1..1000i64, 1..20i64).prop_map(|(low, n, q)| Domain::Qlograndint {
            low,
            high: low + n,
            q,
            base: 2.0
        }),
        prop::collection::vec(any::<i32>(), 1..6)
            .prop_map(|v| Domain::Choice { values: v.into_iter().map(Value::from).collect() }),
    ]
}

fn is_multiple(v: f64, q: f64) -> bool {
    let r = v / q;
    (r - r.round()).abs() < 1e-6
}

/// The exact set each domain may produce; a normal's draws lie within `normal_sd` standard
/// deviations of its mean when given (searchers that truncate them), else anywhere finite.
pub fn inside(d: &Domain, v: &Value, normal_sd: Option<f64>) -> bool {
    match *d {
        Domain::Uniform { low, high } | Domain::Loguniform { low, high, .. } => {
            v.is_f64() && (low..high).contains(&v.as_f64().unwrap())
        }
        Domain::Quniform { low, high, q } | Domain::Qloguniform { low, high, q, .. } => {
            v.as_f64().is_some_and(|x| v.is_f64() && (low..=high).contains(&x) && is_multiple(x, q))
        }
        Domain::Randn { mean, sd } => v.as_f64().is_some_and(|x| match normal_sd {
            Some(k) => (x - mean).abs() <= k * sd,
            None => x.is_finite(),
        }),
        Domain::Qrandn { q, .. } => v.is_f64() && is_multiple(v.as_f64().unwrap(), q),
        Domain::Randint { low, high } | Domain::Lograndint { low, high, .. } => {
            v.as_i64().is_some_and(|x| (low..high).contains(&x))
        }
        Domain::Qrandint { low, high, q } | Domain::Qlograndint { low, high, q, .. } => {
            v.as_i64().is_some_and(|x| (low..=high).contains(&x) && x % q == 0)
        }
        Domain::Choice { ref values } => values.contains(v),
        _ => false,
    }
}
