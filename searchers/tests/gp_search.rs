//! `GpSearch` as a `Searcher`: it optimises Branin well within 40 trials and beats random
//! search, finds integer and choice optima, starts with the Sobol' points `QmcSearch` gives,
//! spreads parallel suggestions, learns from completed and pruned scores only, survives
//! degenerate scores, is rebuilt by replaying its calls, honours `num_samples` and points, and
//! its configs stay in their domains.

mod common;
use common::{config, domain, inside, obj, space, suggest};
use hyperfleet_searchers::{
    trial_rng, BasicVariantGenerator, Config, Domain, GpConfig, GpSearch, Observation, Outcome, QmcSearch, Searcher,
    Space, Suggestion, TrialId,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::f64::consts::PI;

/// Runs `n` trials one after another, scoring each with `f` (higher is better); returns the configs.
fn sequential(s: &mut impl Searcher, seed: u64, n: u64, f: impl Fn(&Config) -> f64) -> Vec<(Config, f64)> {
    (0..n)
        .map(|t| {
            let c = config(suggest(s, seed, t));
            s.on_trial_add(TrialId(t), &c);
            let score = f(&c);
            s.on_result(TrialId(t), &Observation { score: Some(score), progress: 1.0 });
            s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score) });
            (c, score)
        })
        .collect()
}

fn branin(c: &Config) -> f64 {
    let (x, y) = (c["x"].as_f64().unwrap(), c["y"].as_f64().unwrap());
    let (b, cc, t) = (5.1 / (4.0 * PI * PI), 5.0 / PI, 1.0 / (8.0 * PI));
    (y - b * x * x + cc * x - 6.0).powi(2) + 10.0 * (1.0 - t) * x.cos() + 10.0
}

fn branin_space() -> Space {
    space(json!({"x": {"uniform": [-5, 10]}, "y": {"uniform": [0, 15]}}))
}

/// The best Branin value minus the optimum after `n` trials.
fn branin_regret(s: &mut impl Searcher, seed: u64, n: u64) -> f64 {
    let best = sequential(s, seed, n, |c| -branin(c)).iter().map(|(_, v)| -v).fold(f64::INFINITY, f64::min);
    best - 0.397_887_357_729_738
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[test]
fn branin_within_40_trials_and_better_than_random() {
    let mut gp = Vec::new();
    let mut random = Vec::new();
    for seed in 0..5 {
        gp.push(branin_regret(&mut GpSearch::new(branin_space(), -1).unwrap(), seed, 40));
        random.push(branin_regret(&mut BasicVariantGenerator::new(branin_space(), -1).unwrap(), seed, 40));
    }
    eprintln!("branin regret after 40 trials: gp {gp:?}, random {random:?}");
    assert!(gp[0] < 0.1, "seed 0: regret {}", gp[0]);
    assert!(median(gp.clone()) < median(random.clone()), "gp {gp:?} vs random {random:?}");
    assert!(median(gp) < 0.1);
}

#[test]
fn integers_log_floats_and_choices() {
    let sp = space(json!({
        "n": {"randint": [0, 50]},
        "lr": {"loguniform": [1e-5, 1.0]},
        "act": {"choice": ["a", "b", "c"]},
        "batch": {"qrandint": [16, 256, 16]},
    }));
    let score = |c: &Config| -> f64 {
        let n = c["n"].as_i64().unwrap() as f64;
        let lr = c["lr"].as_f64().unwrap().log10();
        let batch = c["batch"].as_i64().unwrap() as f64;
        -((n - 37.0) / 10.0).powi(2) - (lr + 3.0).powi(2) - ((batch - 64.0) / 64.0).powi(2)
            + if c["act"] == "b" { 1.0 } else { 0.0 }
    };
    let mut s = GpSearch::new(sp, -1).unwrap();
    assert_eq!((s.dims(), s.coordinates()), (4, 6));
    let runs = sequential(&mut s, 3, 40, score);
    let (best, v) = runs.iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    eprintln!("best {v}: {best:?}");
    assert!(*v > 0.8, "best {v}: {best:?}");
    assert_eq!(best["act"], json!("b"));
    // The later suggestions concentrate on the good choice.
    let late_b = runs[25..].iter().filter(|(c, _)| c["act"] == "b").count();
    assert!(late_b >= 10, "{late_b} of the last 15 chose b");
}

#[test]
fn startup_is_the_sobol_sequence_of_qmc_search() {
    let sp = || space(json!({"a": {"uniform": [0, 1]}, "b": {"randint": [0, 9]}, "c": {"choice": [1, 2, 3]}}));
    let mut gp = GpSearch::new(sp(), -1).unwrap();
    let mut qmc = QmcSearch::new(sp(), -1).unwrap();
    for t in 0..10 {
        let c = config(suggest(&mut gp, 7, t));
        assert_eq!(c, config(suggest(&mut qmc, 7, t)), "trial {t}");
        gp.on_trial_add(TrialId(t), &c);
        qmc.on_trial_add(TrialId(t), &c);
        gp.on_complete(TrialId(t), &Outcome::Completed { score: Some(c["a"].as_f64().unwrap()) });
    }
    assert_eq!(gp.observations(), 10);
    assert!(gp.length_scales().is_some_and(|l| l.len() == 5 && l.iter().all(|v| v.is_finite() && *v > 0.0)));
}

#[test]
fn running_trials_spread_parallel_suggestions() {
    let cfg = GpConfig { n_startup_trials: 5, ..Default::default() };
    let mut s = cfg.build(branin_space(), -1).unwrap();
    sequential(&mut s, 1, 12, |c| -branin(c));
    let mut out = Vec::new();
    for t in 12..16 {
        let c = config(suggest(&mut s, 1, t));
        s.on_trial_add(TrialId(t), &c);
        out.push(serde_json::to_string(&c).unwrap());
    }
    let distinct: BTreeSet<&String> = out.iter().collect();
    assert_eq!(distinct.len(), 4, "{out:?}");
    // Asking twice with the same state and generator gives the same config.
    let a = suggest(&mut s, 1, 16);
    assert_eq!(a, suggest(&mut s, 1, 16));
}

#[test]
fn scores_come_from_completed_and_pruned_trials() {
    let cfg = GpConfig { n_startup_trials: 3, ..Default::default() };
    let mut s = cfg.build(branin_space(), -1).unwrap();
    let outcomes: Vec<(Option<f64>, Outcome)> = vec![
        (Some(1.0), Outcome::Completed { score: Some(2.0) }),
        (Some(1.0), Outcome::Completed { score: None }),
        (None, Outcome::Completed { score: None }),
        (Some(3.0), Outcome::Pruned { score: None }),
        (Some(3.0), Outcome::Failed),
        (Some(f64::NAN), Outcome::Completed { score: Some(f64::NAN) }),
        (None, Outcome::Pruned { score: Some(f64::INFINITY) }),
        (None, Outcome::Pruned { score: Some(-1.0) }),
    ];
    let mut observed = Vec::new();
    for (t, (inter, outcome)) in outcomes.into_iter().enumerate() {
        let t = t as u64;
        let c = config(suggest(&mut s, 0, t));
        s.on_trial_add(TrialId(t), &c);
        s.on_result(TrialId(t), &Observation { score: inter, progress: 1.0 });
        s.on_complete(TrialId(t), &outcome);
        observed.push(s.observations());
    }
    assert_eq!(observed, [1, 2, 2, 3, 3, 3, 3, 4]);
    // Results and completions after the end change nothing.
    let before = s.clone();
    s.on_result(TrialId(0), &Observation { score: Some(9.0), progress: 2.0 });
    s.on_complete(TrialId(0), &Outcome::Completed { score: Some(9.0) });
    s.on_complete(TrialId(99), &Outcome::Completed { score: Some(9.0) });
    assert_eq!(s, before);
}

#[test]
fn degenerate_scores_and_foreign_configs() {
    let sp = space(json!({"x": {"uniform": [0, 1]}, "k": {"randint": [0, 4]}, "c": {"choice": ["p", "q"]}}));
    let d = [
        Domain::Uniform { low: 0.0, high: 1.0 },
        Domain::Randint { low: 0, high: 4 },
        Domain::Choice { values: vec![json!("p"), json!("q")] },
    ];
    let cfg = GpConfig { n_startup_trials: 2, n_candidates: 256, ..Default::default() };
    let mut s = cfg.build(sp, -1).unwrap();
    // Configs the searcher did not suggest: duplicates, out of bounds, wrong types, missing keys.
    let foreign = [
        json!({"x": 0.5, "k": 1, "c": "p"}),
        json!({"x": 0.5, "k": 1, "c": "p"}),
        json!({"x": 7.0, "k": -3, "c": "zzz"}),
        json!({"x": "no", "c": 1}),
        json!({}),
    ];
    for (t, c) in foreign.iter().enumerate() {
        s.on_trial_add(TrialId(t as u64), &obj(c.clone()));
        s.on_complete(TrialId(t as u64), &Outcome::Completed { score: Some(1.0) });
    }
    // All scores equal, then more duplicates of the same point.
    for t in 5..25u64 {
        let c = config(suggest(&mut s, 2, t));
        for (i, dom) in d.iter().enumerate() {
            let key = ["x", "k", "c"][i];
            assert!(inside(dom, &c[key], None), "{key}: {}", c[key]);
        }
        s.on_trial_add(TrialId(t), &c);
        s.on_complete(TrialId(t), &Outcome::Completed { score: Some(1.0) });
    }
    assert_eq!(s.observations(), 25);
    assert!(s.length_scales().unwrap().iter().all(|l| l.is_finite()));
}

/// One call made to a searcher, to replay.
#[derive(Clone, Debug)]
enum Call {
    Add(TrialId, Config),
    Result(TrialId, Observation),
    Complete(TrialId, Outcome),
}

fn apply(s: &mut GpSearch, call: &Call) {
    match call {
        Call::Add(t, c) => s.on_trial_add(*t, c),
        Call::Result(t, o) => s.on_result(*t, o),
        Call::Complete(t, o) => s.on_complete(*t, o),
    }
}

/// Runs `n` trials, up to `parallel` at once (the oldest ends when the cap is reached), with a
/// mix of outcomes; returns the calls made and the searcher's clone after each of them.
fn parallel_run(
    s: &mut GpSearch,
    seed: u64,
    n: u64,
    parallel: usize,
    score: impl Fn(&Config) -> f64,
) -> (Vec<Call>, Vec<GpSearch>, Vec<Config>) {
    let mut log = Vec::new();
    let mut snapshots = Vec::new();
    let mut configs = Vec::new();
    let mut running: Vec<(TrialId, f64)> = Vec::new();
    let mut t = 0u64;
    let push = |s: &mut GpSearch, call: Call, log: &mut Vec<Call>, snapshots: &mut Vec<GpSearch>| {
        apply(s, &call);
        log.push(call);
        snapshots.push(s.clone());
    };
    while t < n || !running.is_empty() {
        if t < n && running.len() < parallel {
            let c = config(suggest(s, seed, t));
            configs.push(c.clone());
            running.push((TrialId(t), score(&c)));
            push(s, Call::Add(TrialId(t), c), &mut log, &mut snapshots);
            t += 1;
            continue;
        }
        let (done, v) = running.remove(0);
        push(s, Call::Result(done, Observation { score: Some(v - 1.0), progress: 1.0 }), &mut log, &mut snapshots);
        let outcome = match done.0 % 6 {
            3 => Outcome::Pruned { score: None },
            4 => Outcome::Failed,
            5 => Outcome::Completed { score: None },
            _ => Outcome::Completed { score: Some(v) },
        };
        push(s, Call::Complete(done, outcome), &mut log, &mut snapshots);
    }
    (log, snapshots, configs)
}

#[test]
fn replaying_the_calls_rebuilds_the_same_searcher() {
    let sp = || {
        space(json!({
            "lr": {"loguniform": [1e-4, 1e-1]},
            "layers": {"randint": [1, 6]},
            "act": {"choice": ["relu", "tanh", "gelu"]},
            "batch": {"qrandint": [16, 128, 16]},
            "drop": {"uniform": [0, 0.5]},
            "fixed": {"nested": 3},
        }))
    };
    let cfg = GpConfig {
        n_startup_trials: 4,
        n_candidates: 512,
        points_to_evaluate: vec![obj(json!({"lr": 0.01}))],
        ..Default::default()
    };
    let score = |c: &Config| -> f64 {
        let lr = c["lr"].as_f64().unwrap().log10();
        -(lr + 2.5).powi(2) - 0.1 * c["layers"].as_f64().unwrap() + if c["act"] == "gelu" { 0.3 } else { 0.0 }
            - (c["drop"].as_f64().unwrap() - 0.2).powi(2)
    };
    let mut live = cfg.clone().build(sp(), -1).unwrap();
    let (log, snapshots, configs) = parallel_run(&mut live, 11, 30, 3, score);
    // Rebuilt from a prefix of the calls, the searcher equals the uninterrupted one at that
    // point (which fitted along the way) and suggests the same next config.
    for cut in [1, 20, 41, 57, log.len() - 9, log.len()] {
        let mut replayed = cfg.clone().build(sp(), -1).unwrap();
        for call in &log[..cut] {
            apply(&mut replayed, call);
        }
        let mut straight = snapshots[cut - 1].clone();
        assert_eq!(replayed, straight, "cut {cut}");
        let next = TrialId(straight.position());
        assert_eq!(replayed.suggest(next, &mut trial_rng(11, next)), straight.suggest(next, &mut trial_rng(11, next)));
    }
    // A duplicate add, result or completion changes nothing.
    let before = live.clone();
    for call in &log[log.len() - 3..] {
        apply(&mut live, call);
    }
    assert_eq!(live, before);
    assert!(configs.iter().all(|c| c["fixed"] == json!({"nested": 3})));
    assert_eq!(configs[0]["lr"], json!(0.01));
}

#[test]
fn num_samples_points_and_exhaustion() {
    let sp = space(json!({
        "opt": {"x": {"uniform": [0, 10]}, "name": "adam"},
        "f": {"$domain": {"kind": "sample_from", "id": 2}},
        "one": {"choice": ["only"]},
    }));
    let cfg: GpConfig = serde_json::from_value(json!({
        "n_startup_trials": 2,
        "n_candidates": 128,
        "points_to_evaluate": [{"opt": {"x": 9.0}}, {"opt": {"x": 2.0}}],
    }))
    .unwrap();
    let mut s = cfg.build(sp, 6).unwrap();
    let runs = sequential(&mut s, 1, 6, |c| -(c["opt"]["x"].as_f64().unwrap() - 2.5).abs());
    assert_eq!(runs[0].0["opt"], json!({"x": 9.0, "name": "adam"}));
    assert_eq!(runs[1].0["opt"]["x"], json!(2.0));
    for (c, _) in &runs {
        assert_eq!(c["f"], Value::Null);
        assert_eq!(c["one"], json!("only"));
    }
    assert_eq!(suggest(&mut s, 1, 6), Suggestion::Exhausted);
    assert_eq!(suggest(&mut s, 1, 7), Suggestion::Exhausted);
    // Nothing to search: every config is the same, none waits.
    let mut s = GpSearch::new(space(json!({"c": {"choice": [1]}, "k": 5})), 3).unwrap();
    let runs = sequential(&mut s, 0, 3, |_| 1.0);
    assert!(runs.iter().all(|(c, _)| c == &obj(json!({"c": 1, "k": 5}))));
    assert_eq!(suggest(&mut s, 0, 3), Suggestion::Exhausted);
}

#[test]
fn refusals_and_defaults() {
    let e = GpSearch::new(space(json!({"m": {"layers": {"grid_search": [1, 2]}}})), 4).unwrap_err();
    assert_eq!(e.to_string(), "m.layers: grid_search is not supported by GP search; use random/grid search");
    let sp = || space(json!({"x": {"uniform": [0, 1]}}));
    assert_eq!(
        GpSearch::new(sp(), -2).unwrap_err().to_string(),
        "num_samples: must be -1 (unlimited) or at least 0, got -2"
    );
    let cfg: GpConfig = serde_json::from_value(json!({"points_to_evaluate": [{"y": 1}]})).unwrap();
    assert_eq!(cfg.build(sp(), 4).unwrap_err().to_string(), "points_to_evaluate[0].y: no such key in the search space");
    let cfg = GpConfig { n_candidates: 0, ..Default::default() };
    assert_eq!(cfg.build(sp(), 4).unwrap_err().to_string(), "n_candidates: must be at least 1, got 0");
    assert!(serde_json::from_value::<GpConfig>(json!({"kernel": "rbf"})).is_err());
    let d: GpConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(d, GpConfig::default());
    assert_eq!(
        (d.n_startup_trials, d.n_candidates, d.n_local_search, d.deterministic_objective),
        (10, 2048, 10, false)
    );
    assert!(d.points_to_evaluate.is_empty());
}

#[test]
fn a_deterministic_objective_is_fitted_without_noise() {
    let cfg = GpConfig { deterministic_objective: true, n_startup_trials: 5, n_candidates: 512, ..Default::default() };
    let mut s = cfg.build(branin_space(), -1).unwrap();
    let regret = branin_regret(&mut s, 4, 25);
    assert!(regret < 1.0, "regret {regret}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn configs_stay_inside_and_runs_reproduce_and_replay(
        domains in prop::collection::vec(domain(), 1..4),
        seed in any::<u64>(),
    ) {
        prop_assume!(domains.iter().all(|d| d.validate().is_ok()));
        let mut m = serde_json::Map::new();
        for (i, d) in domains.iter().enumerate() {
            m.insert(format!("p{i}"), json!({"$domain": d}));
        }
        let sp = Space::parse(&Value::Object(m)).unwrap();
        let cfg = GpConfig { n_startup_trials: 3, n_candidates: 128, n_local_search: 2, ..Default::default() };
        // Scores that push towards the edges, so rounding at the bounds happens.
        let score = |c: &Config| -> f64 { c.values().map(|v| v.as_f64().unwrap_or(0.0)).sum() };
        let mut a = cfg.clone().build(sp.clone(), -1).unwrap();
        let (log, _, configs) = parallel_run(&mut a, seed, 14, 2, score);
        for c in &configs {
            for (i, d) in domains.iter().enumerate() {
                let v = &c[&format!("p{i}")];
                prop_assert!(inside(d, v, Some(10.0 * (1.0 + 1e-12))), "{:?} gave {}", d, v);
            }
        }
        // Same seed, same calls: same configs.
        let mut b = cfg.clone().build(sp.clone(), -1).unwrap();
        let (_, _, again) = parallel_run(&mut b, seed, 14, 2, score);
        prop_assert_eq!(&configs, &again);
        // Rebuilt by replay: the same next suggestion.
        let mut replayed = cfg.build(sp, -1).unwrap();
        for call in &log {
            apply(&mut replayed, call);
        }
        prop_assert_eq!(&replayed, &a);
        prop_assert_eq!(suggest(&mut replayed, seed, 14), suggest(&mut a, seed, 14));
    }
}

#[test]
fn a_discrete_space_is_not_suggested_the_same_config_twice() {
    // 3 x 3 configs, a bowl at the middle: a GP would keep returning to the best point it has
    // seen; until every config is tried it is given an untried one instead.
    let sp = space(json!({"a": {"choice": [0, 1, 2]}, "b": {"randint": [0, 3]}}));
    let mut s = GpConfig { n_startup_trials: 2, ..Default::default() }.build(sp, -1).unwrap();
    let runs = sequential(&mut s, 5, 9, |c| {
        let (a, b) = (c["a"].as_f64().unwrap(), c["b"].as_f64().unwrap());
        -((a - 1.0).powi(2) + (b - 1.0).powi(2))
    });
    let mut seen: Vec<(i64, i64)> =
        runs.iter().map(|(c, _)| (c["a"].as_i64().unwrap(), c["b"].as_i64().unwrap())).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 9, "{runs:?}");
}
