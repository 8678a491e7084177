//! `BohbSearch` as a `Searcher`: its model follows the largest budget with enough results and
//! concentrates proposals where that budget's good results lie; it is deterministic given the
//! seed, rebuilt by replaying its calls, honours `num_samples`, points and finite spaces, and its
//! configs stay in their domains.

mod common;
use common::{config, domain, inside, space, suggest};
use hyperfleet_searchers::{
    BohbConfig, BohbSearch, Config, Observation, Outcome, Searcher, Space, Suggestion, TrialId,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn xy(c: &Config) -> (f64, f64) {
    (c["x"].as_f64().unwrap(), c["y"].as_f64().unwrap())
}

fn square() -> Space {
    space(json!({"x": {"uniform": [0, 1]}, "y": {"uniform": [0, 1]}}))
}

/// Adds 40 random trials, each reporting at budget 1 a score that favours the corner (0, 0);
/// the first `at_9` of them also report at budget 9 a score that favours (1, 1).
fn observed(cfg: BohbConfig, at_9: u64) -> BohbSearch {
    let mut s = cfg.build(square(), -1).unwrap();
    let mut random = BohbSearch::new(square(), -1).unwrap();
    for t in 0..40u64 {
        let c = config(suggest(&mut random, 9, t));
        let (x, y) = xy(&c);
        s.on_trial_add(TrialId(t), &c);
        s.on_result(TrialId(t), &Observation { score: Some(-(x * x + y * y)), progress: 1.0 });
        if t < at_9 {
            let score = -((x - 1.0).powi(2) + (y - 1.0).powi(2));
            s.on_result(TrialId(t), &Observation { score: Some(score), progress: 9.0 });
        }
        s.on_complete(TrialId(t), &Outcome::Pruned { score: None });
    }
    s
}

/// The share of 100 suggestions (not added) in the quadrant `(x > 0.5) == high, (y > 0.5) == high`.
fn share_in_quadrant(s: &mut BohbSearch, high: bool) -> f64 {
    let hits = (0..100u64)
        .filter(|&k| {
            let (x, y) = xy(&config(suggest(s, 5, 40 + k)));
            (x > 0.5) == high && (y > 0.5) == high
        })
        .count();
    hits as f64 / 100.0
}

#[test]
fn the_model_follows_the_largest_budget_with_enough_results() {
    let model_only = BohbConfig { random_fraction: 0.0, ..Default::default() };
    // 20 results at budget 9 favour (1, 1); 40 at budget 1 favour (0, 0): budget 9 wins.
    let mut s = observed(model_only.clone(), 20);
    assert_eq!(s.budgets(), vec![(1.0, 40), (9.0, 20)]);
    assert_eq!(s.model_budget(), Some(9.0));
    let share = share_in_quadrant(&mut s, true);
    assert!(share > 0.8, "only {share} of the model's suggestions near (1, 1)");
    // Five results at budget 9 are too few (3 good and 3 bad needed): budget 1's model, near (0, 0).
    let mut s = observed(model_only, 5);
    assert_eq!(s.model_budget(), Some(1.0));
    let share = share_in_quadrant(&mut s, false);
    assert!(share > 0.8, "only {share} of the model's suggestions near (0, 0)");
    // With the default random fraction, about a third of them are random.
    let mut s = observed(BohbConfig::default(), 20);
    let share = share_in_quadrant(&mut s, true);
    assert!((0.55..0.95).contains(&share), "{share} near (1, 1)");
    // Before any budget has enough results, suggestions are the space's random draws.
    let mut random = BohbSearch::new(square(), -1).unwrap();
    let mut few = BohbSearch::new(square(), -1).unwrap();
    for t in 0..5u64 {
        let c = config(suggest(&mut random, 2, t));
        few.on_trial_add(TrialId(t), &c);
        few.on_result(TrialId(t), &Observation { score: Some(t as f64), progress: 1.0 });
    }
    assert_eq!(few.model_budget(), None);
    assert_eq!(suggest(&mut few, 4, 5), suggest(&mut BohbSearch::new(square(), -1).unwrap(), 4, 5));
}

#[test]
fn a_finite_space_gets_no_duplicates_until_it_is_exhausted() {
    let sp = || space(json!({"a": {"choice": ["p", "q", "r"]}, "b": {"randint": [0, 3]}, "c": 7}));
    let cfg = BohbConfig { random_fraction: 0.0, ..Default::default() };
    let mut s = cfg.build(sp(), -1).unwrap();
    let mut seen = BTreeSet::new();
    for t in 0..9u64 {
        let c = config(suggest(&mut s, 3, t));
        assert_eq!(c["c"], json!(7));
        assert!(seen.insert(serde_json::to_string(&c).unwrap()), "trial {t} repeats {c:?}");
        s.on_trial_add(TrialId(t), &c);
        let score = c["b"].as_f64().unwrap() + if c["a"] == "q" { 1.0 } else { 0.0 };
        s.on_result(TrialId(t), &Observation { score: Some(score), progress: 1.0 });
        s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score) });
    }
    assert_eq!(s.model_budget(), Some(1.0));
    // Every config tried: duplicates are allowed again.
    assert!(matches!(suggest(&mut s, 3, 9), Suggestion::Config(_)));
}

#[test]
fn num_samples_points_and_refusals() {
    let sp = || {
        space(json!({
            "opt": {"lr": {"loguniform": [1e-4, 1e-1]}, "name": "adam"},
            "f": {"$domain": {"kind": "sample_from", "id": 2}},
            "n": {"qrandint": [16, 128, 16]},
        }))
    };
    let cfg: BohbConfig = serde_json::from_value(json!({
        "points_to_evaluate": [{"opt": {"lr": 0.01}}],
        "top_n_percent": 30,
    }))
    .unwrap();
    let mut s = cfg.build(sp(), 3).unwrap();
    assert_eq!((s.dims(), s.min_points_in_model()), (2, 3));
    let first = config(suggest(&mut s, 1, 0));
    assert_eq!(first["opt"], json!({"lr": 0.01, "name": "adam"}));
    assert_eq!(first["f"], Value::Null);
    for t in 0..3u64 {
        let c = config(suggest(&mut s, 1, t));
        s.on_trial_add(TrialId(t), &c);
    }
    assert_eq!(suggest(&mut s, 1, 3), Suggestion::Exhausted);

    let d: BohbConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(d, BohbConfig::default());
    assert_eq!(
        (d.min_points_in_model, d.top_n_percent, d.num_samples, d.bandwidth_factor, d.min_bandwidth),
        (None, 15, 64, 3.0, 1e-3)
    );
    assert_eq!(d.random_fraction, 1.0 / 3.0);
    assert!(serde_json::from_value::<BohbConfig>(json!({"eta": 3})).is_err());
    let e = |cfg: BohbConfig| cfg.build(sp(), -1).unwrap_err().to_string();
    assert_eq!(e(BohbConfig { top_n_percent: 0, ..Default::default() }), "top_n_percent: must be in 1..=99, got 0");
    assert_eq!(e(BohbConfig { top_n_percent: 100, ..Default::default() }), "top_n_percent: must be in 1..=99, got 100");
    assert!(e(BohbConfig { num_samples: 0, ..Default::default() }).starts_with("num_samples: must be at least 1"));
    assert!(e(BohbConfig { random_fraction: 1.5, ..Default::default() }).starts_with("random_fraction:"));
    assert!(e(BohbConfig { random_fraction: f64::NAN, ..Default::default() }).starts_with("random_fraction:"));
    assert!(e(BohbConfig { bandwidth_factor: 0.0, ..Default::default() }).starts_with("bandwidth_factor:"));
    assert!(e(BohbConfig { min_bandwidth: f64::INFINITY, ..Default::default() }).starts_with("min_bandwidth:"));
    let e = BohbSearch::new(space(json!({"m": {"grid_search": [1, 2]}})), 4).unwrap_err();
    assert_eq!(e.to_string(), "m: grid_search is not supported by BOHB; use random/grid search");
    assert_eq!(
        BohbSearch::new(sp(), -2).unwrap_err().to_string(),
        "num_samples: must be -1 (unlimited) or at least 0, got -2"
    );
    let cfg: BohbConfig = serde_json::from_value(json!({"points_to_evaluate": [{"y": 1}]})).unwrap();
    assert_eq!(cfg.build(sp(), 4).unwrap_err().to_string(), "points_to_evaluate[0].y: no such key in the search space");
}

/// One call made to a searcher, to replay.
#[derive(Clone, Debug)]
enum Call {
    Add(TrialId, Config),
    Result(TrialId, Observation),
    Complete(TrialId, Outcome),
}

fn apply(s: &mut BohbSearch, call: &Call) {
    match call {
        Call::Add(t, c) => s.on_trial_add(*t, c),
        Call::Result(t, o) => s.on_result(*t, o),
        Call::Complete(t, o) => s.on_complete(*t, o),
    }
}

/// A HyperBand-like run of `n` trials: every trial reports at budget 1, two in three at 3, one
/// in three at 9 (scored by `score`, lower budgets noisier); returns the configs and the calls.
fn run(s: &mut BohbSearch, seed: u64, n: u64, score: impl Fn(&Config) -> f64) -> (Vec<Config>, Vec<Call>) {
    let mut configs = Vec::new();
    let mut log = Vec::new();
    for t in 0..n {
        let id = TrialId(t);
        let c = config(suggest(s, seed, t));
        let mut calls = vec![Call::Add(id, c.clone())];
        let f = score(&c);
        let rungs: &[f64] = match t % 3 {
            0 => &[1.0],
            1 => &[1.0, 3.0],
            _ => &[1.0, 3.0, 9.0],
        };
        for &b in rungs {
            let noise = ((t as f64) * 0.618).fract() / b;
            calls.push(Call::Result(id, Observation { score: Some(f + noise), progress: b }));
        }
        calls.push(Call::Complete(
            id,
            match t % 5 {
                3 => Outcome::Failed,
                4 => Outcome::Pruned { score: Some(f) },
                _ => Outcome::Completed { score: Some(f) },
            },
        ));
        for call in calls {
            apply(s, &call);
            log.push(call);
        }
        configs.push(c);
    }
    (configs, log)
}

/// Scores that push towards the domains' upper ends, so that clipping and rounding happen.
fn toward_high(c: &Config) -> f64 {
    c.values().map(|v| v.as_f64().unwrap_or(0.0).clamp(-1e6, 1e6)).sum()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn configs_stay_inside_and_runs_repeat_and_replay(
        domains in prop::collection::vec(domain(), 1..5),
        seed in any::<u64>(),
        random_fraction in prop::sample::select(vec![0.0, 1.0 / 3.0]),
    ) {
        prop_assume!(domains.iter().all(|d| d.validate().is_ok()));
        let mut m = serde_json::Map::new();
        for (i, d) in domains.iter().enumerate() {
            m.insert(format!("p{i}"), json!({"$domain": d}));
        }
        let sp = Space::parse(&Value::Object(m)).unwrap();
        let cfg = BohbConfig { random_fraction, ..Default::default() };
        let mut s = cfg.clone().build(sp.clone(), -1).unwrap();
        let (configs, log) = run(&mut s, seed, 30, toward_high);
        for c in &configs {
            for (i, d) in domains.iter().enumerate() {
                let v = &c[&format!("p{i}")];
                prop_assert!(inside(d, v, Some(10.0 * (1.0 + 1e-12))), "{:?} gave {}", d, v);
            }
        }
        prop_assert!(s.dims() == 0 || s.model_budget().is_some(), "no model after 30 trials: {:?}", s.budgets());
        // The same seed gives the same run.
        let mut again = cfg.clone().build(sp.clone(), -1).unwrap();
        let (configs_again, _) = run(&mut again, seed, 30, toward_high);
        prop_assert_eq!(&configs, &configs_again);
        prop_assert_eq!(&s, &again);
        // Replaying any prefix of the calls gives the searcher that made them, and its next suggestion.
        for cut in (0..=log.len()).step_by(17).chain([log.len()]) {
            let mut replayed = cfg.clone().build(sp.clone(), -1).unwrap();
            let mut straight = cfg.clone().build(sp.clone(), -1).unwrap();
            for call in &log[..cut] {
                apply(&mut replayed, call);
                apply(&mut straight, call);
                let t = straight.position();
                let _ = suggest(&mut straight, seed, t);
            }
            prop_assert_eq!(&replayed, &straight);
            let t = straight.position();
            prop_assert_eq!(suggest(&mut replayed, seed, t), suggest(&mut straight, seed, t));
        }
    }
}
