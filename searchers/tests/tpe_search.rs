//! `TpeSearch` as a `Searcher`: replay rebuilds it, proposals stay in their domains, discrete
//! spaces are not revisited, configs keep the space's constants, and it beats random search on
//! an easy problem.

mod common;
use common::{config, domain, inside, obj, space, suggest};
use hyperfleet_searchers::{
    trial_rng, BasicVariantGenerator, Config, Observation, Outcome, Searcher, Space, Suggestion, TpeConfig, TpeSearch,
    TrialId,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Runs `n` trials one after another, scoring each with `f`; returns the configs and the best score.
fn sequential(s: &mut impl Searcher, seed: u64, n: u64, f: impl Fn(&Config) -> f64) -> (Vec<Config>, f64) {
    let mut configs = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for t in 0..n {
        let c = config(suggest(s, seed, t));
        s.on_trial_add(TrialId(t), &c);
        let score = f(&c);
        s.on_result(TrialId(t), &Observation { score: Some(score), progress: 1.0 });
        s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score) });
        best = best.max(score);
        configs.push(c);
    }
    (configs, best)
}

fn quadratic(c: &Config) -> f64 {
    let (x, y) = (c["x"].as_f64().unwrap(), c["y"].as_f64().unwrap());
    -(x - 0.3).powi(2) - (y + 1.0).powi(2)
}

#[test]
fn beats_random_search_on_a_quadratic() {
    let box2 = || space(json!({"x": {"uniform": [-5, 5]}, "y": {"uniform": [-5, 5]}}));
    let (_, tpe) = sequential(&mut TpeSearch::new(box2(), 100).unwrap(), 0, 100, quadratic);
    let (_, random) = sequential(&mut BasicVariantGenerator::new(box2(), 100).unwrap(), 0, 100, quadratic);
    assert!(tpe > random, "TPE best {tpe} vs random best {random}");
    assert!(tpe > -0.05, "TPE best {tpe}");
    let univariate = TpeConfig { multivariate: false, ..Default::default() };
    let (_, uni) = sequential(&mut univariate.build(box2(), 100).unwrap(), 0, 100, quadratic);
    assert!(uni > random, "independent TPE best {uni} vs random best {random}");
}

/// One call made to a searcher, to replay.
#[derive(Clone, Debug)]
enum Call {
    Add(TrialId, Config),
    Result(TrialId, Observation),
    Complete(TrialId, Outcome),
}

fn apply(s: &mut TpeSearch, call: &Call) {
    match call {
        Call::Add(t, c) => s.on_trial_add(*t, c),
        Call::Result(t, o) => s.on_result(*t, o),
        Call::Complete(t, o) => s.on_complete(*t, o),
    }
}

#[test]
fn replaying_the_calls_rebuilds_the_same_searcher() {
    let sp = || {
        space(json!({
            "lr": {"loguniform": [1e-4, 1e-1]},
            "layers": {"randint": [1, 6]},
            "act": {"choice": ["relu", "tanh", "gelu"]},
            "batch": {"qrandint": [16, 128, 16]},
            "fixed": {"nested": 3},
        }))
    };
    let cfg = TpeConfig { n_startup_trials: 5, ..Default::default() };
    let mut live = cfg.clone().build(sp(), -1).unwrap();
    let mut log = Vec::new();
    let mut running: Vec<TrialId> = Vec::new();
    let score = |c: &Config| -> f64 {
        let lr = c["lr"].as_f64().unwrap().log10();
        -(lr + 2.5).powi(2) - 0.1 * c["layers"].as_f64().unwrap() + if c["act"] == "gelu" { 0.3 } else { 0.0 }
    };
    let mut configs = std::collections::BTreeMap::new();
    for t in 0..40u64 {
        let c = config(suggest(&mut live, 11, t));
        let call = Call::Add(TrialId(t), c.clone());
        apply(&mut live, &call);
        log.push(call);
        configs.insert(TrialId(t), c);
        running.push(TrialId(t));
        // Three trials run at once; the oldest ends, in one of several ways.
        if running.len() == 3 {
            let done = running.remove(0);
            let s = score(&configs[&done]);
            let mut calls = vec![
                Call::Result(done, Observation { score: Some(s - 1.0), progress: 1.0 }),
                Call::Result(done, Observation { score: Some(s), progress: 2.0 }),
            ];
            calls.push(Call::Complete(
                done,
                match done.0 % 7 {
                    3 => Outcome::Pruned { score: Some(s) },
                    5 => Outcome::Failed,
                    6 => Outcome::Completed { score: None },
                    _ => Outcome::Completed { score: Some(s) },
                },
            ));
            for call in calls {
                apply(&mut live, &call);
                log.push(call);
            }
        }
    }
    // Rebuilding from any prefix of the calls gives the searcher as it was at that point, and
    // the same next suggestion as the uninterrupted one (same trial id, same derived rng).
    for cut in (0..=log.len()).step_by(9).chain([log.len()]) {
        let mut replayed = cfg.clone().build(sp(), -1).unwrap();
        let mut straight = cfg.clone().build(sp(), -1).unwrap();
        for call in &log[..cut] {
            apply(&mut replayed, call);
            apply(&mut straight, call);
            // The uninterrupted one was also asked for suggestions along the way.
            let t = TrialId(straight.position());
            let _ = straight.suggest(t, &mut trial_rng(11, t));
        }
        assert_eq!(replayed, straight, "cut {cut}");
        let next = TrialId(straight.position());
        assert_eq!(replayed.suggest(next, &mut trial_rng(11, next)), straight.suggest(next, &mut trial_rng(11, next)));
    }
    let mut replayed = cfg.clone().build(sp(), -1).unwrap();
    for call in &log {
        apply(&mut replayed, call);
    }
    assert_eq!(replayed, live);
    // A duplicate add, result or completion changes nothing.
    let before = live.clone();
    for call in &log[log.len() - 3..] {
        apply(&mut live, call);
    }
    assert_eq!(live, before);
    // The TPE phase was reached and configs keep the constant.
    assert!(configs.values().all(|c| c["fixed"] == json!({"nested": 3})));
}

#[test]
fn discrete_space_is_not_revisited_until_exhausted() {
    // 3 x 3 = 9 configs; two are known, TPE must find the 7 others without repeats (the scores
    // pull it towards the best corner, where it would otherwise keep proposing the same config).
    let sp = space(json!({"a": {"choice": [0, 1, 2]}, "b": {"randint": [0, 3]}}));
    let score = |c: &Config| c["a"].as_f64().unwrap() + c["b"].as_f64().unwrap();
    for multivariate in [true, false] {
        let cfg = TpeConfig { n_startup_trials: 2, multivariate, ..Default::default() };
        let mut s = cfg.build(sp.clone(), -1).unwrap();
        let mut seen = BTreeSet::new();
        for t in 0..9u64 {
            let c = if t < 2 { obj(json!({"a": 2 - t, "b": 2})) } else { config(suggest(&mut s, 5, t)) };
            assert!(seen.insert(Value::Object(c.clone()).to_string()), "multivariate = {multivariate}: {c:?} again");
            s.on_trial_add(TrialId(t), &c);
            s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score(&c)) });
        }
        // Once everything has been tried, proposals may repeat.
        assert!(matches!(suggest(&mut s, 5, 9), Suggestion::Config(_)));
    }
}

#[test]
fn num_samples_points_and_space_shape() {
    let sp = space(json!({
        "opt": {"lr": {"uniform": [0, 1]}, "name": "adam"},
        "f": {"$domain": {"kind": "sample_from", "id": 2}},
        "one": {"choice": ["only"]},
        "n": {"randint": [4, 5]},
    }));
    let cfg: TpeConfig = serde_json::from_value(json!({
        "n_startup_trials": 1,
        "points_to_evaluate": [{"opt": {"lr": 0.25}}],
    }))
    .unwrap();
    let mut s = cfg.build(sp, 3).unwrap();
    let (configs, _) = sequential(&mut s, 1, 3, |c| c["opt"]["lr"].as_f64().unwrap());
    assert_eq!(configs[0]["opt"], json!({"lr": 0.25, "name": "adam"}));
    for c in &configs {
        assert_eq!(c["f"], Value::Null);
        assert_eq!(c["one"], json!("only"));
        assert_eq!(c["n"], json!(4));
        assert_eq!(c["opt"]["name"], json!("adam"));
    }
    assert_eq!(suggest(&mut s, 1, 3), Suggestion::Exhausted);
    assert_eq!(suggest(&mut s, 1, 4), Suggestion::Exhausted);
}

#[test]
fn refusals_name_the_problem() {
    let e = TpeSearch::new(space(json!({"m": {"layers": {"grid_search": [1, 2]}}})), 4).unwrap_err();
    assert_eq!(e.to_string(), "m.layers: grid_search is not supported by TPE; use random/grid search");
    let sp = || space(json!({"x": {"uniform": [0, 1]}}));
    assert_eq!(
        TpeSearch::new(sp(), -2).unwrap_err().to_string(),
        "num_samples: must be -1 (unlimited) or at least 0, got -2"
    );
    let cfg: TpeConfig = serde_json::from_value(json!({"points_to_evaluate": [{"y": 1}]})).unwrap();
    assert_eq!(cfg.build(sp(), 4).unwrap_err().to_string(), "points_to_evaluate[0].y: no such key in the search space");
    let cfg = TpeConfig { n_ei_candidates: 0, ..Default::default() };
    assert!(cfg.build(sp(), 4).unwrap_err().to_string().starts_with("n_ei_candidates:"));
    let cfg = TpeConfig { consider_prior: false, ..Default::default() };
    assert!(cfg.build(sp(), 4).unwrap_err().to_string().starts_with("consider_prior:"));
    assert!(serde_json::from_value::<TpeConfig>(json!({"gamma": 0.2})).is_err());
    let d: TpeConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(d, TpeConfig::default());
    assert!(d.multivariate && d.constant_liar && !d.consider_endpoints && d.n_ei_candidates == 24);
}

#[test]
fn constant_liar_spreads_parallel_proposals() {
    // With many trials running near the optimum, a liar's next proposal avoids them.
    let sp = || space(json!({"x": {"uniform": [0, 10]}}));
    let mut with = TpeConfig { n_startup_trials: 3, ..Default::default() }.build(sp(), -1).unwrap();
    let mut without =
        TpeConfig { n_startup_trials: 3, constant_liar: false, ..Default::default() }.build(sp(), -1).unwrap();
    for s in [&mut with, &mut without] {
        for (t, x) in [(0u64, 1.0), (1, 5.0), (2, 9.0), (3, 4.0), (4, 6.0)] {
            s.on_trial_add(TrialId(t), &obj(json!({"x": x})));
            if t < 3 {
                let score = -(x - 5.0f64).abs();
                s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score) });
            }
        }
    }
    let near = |c: &Config| (c["x"].as_f64().unwrap() - 5.0).abs();
    let mut closer = 0;
    for t in 5..45 {
        let a = config(suggest(&mut with, t, 5));
        let b = config(suggest(&mut without, t, 5));
        if near(&b) < near(&a) {
            closer += 1;
        }
    }
    assert!(closer > 25, "without the liar, proposals were closer to the running trials only {closer}/40 times");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn proposals_stay_inside_their_domains(
        domains in prop::collection::vec(domain(), 1..4),
        seed in any::<u64>(),
        multivariate in any::<bool>(),
    ) {
        prop_assume!(domains.iter().all(|d| d.validate().is_ok()));
        let mut m = serde_json::Map::new();
        for (i, d) in domains.iter().enumerate() {
            m.insert(format!("p{i}"), json!({"$domain": d}));
        }
        let cfg = TpeConfig { n_startup_trials: 3, n_ei_candidates: 8, multivariate, ..Default::default() };
        let mut s = cfg.build(Space::parse(&Value::Object(m)).unwrap(), -1).unwrap();
        let score = |c: &Config| -> f64 {
            c.values().map(|v| v.as_f64().unwrap_or(0.0).abs().ln_1p()).sum::<f64>().sin()
        };
        let (configs, _) = sequential(&mut s, seed, 14, score);
        for c in &configs {
            for (i, d) in domains.iter().enumerate() {
                let v = &c[&format!("p{i}")];
                prop_assert!(inside(d, v, Some(10.0 * (1.0 + 1e-12))), "{:?} gave {}", d, v);
            }
        }
    }
}
