//! `CmaesSearch` as a `Searcher`: it converges on the sphere and on Rosenbrock's function,
//! hands out λ trials per generation and waits in between, restarts with a doubled population
//! on a plateau, is rebuilt by replaying its calls, honours `num_samples` and points, and its
//! configs stay in their domains.

mod common;
use common::{config, domain, inside, obj, space, suggest};
use hyperfleet_searchers::{
    trial_rng, CmaesConfig, CmaesRestart, CmaesSearch, CmaesStop, Config, Observation, Outcome, Searcher, Space,
    Suggestion, TrialId,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// Runs trials one after another, scoring each with `f` (higher is better), until the score
/// reaches `target` or `n` trials ran; returns how many ran and the best score.
fn sequential(s: &mut CmaesSearch, seed: u64, n: u64, target: f64, f: impl Fn(&Config) -> f64) -> (u64, f64) {
    let mut best = f64::NEG_INFINITY;
    for t in 0..n {
        let c = config(suggest(s, seed, t));
        s.on_trial_add(TrialId(t), &c);
        let score = f(&c);
        s.on_result(TrialId(t), &Observation { score: Some(score), progress: 1.0 });
        s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score) });
        best = best.max(score);
        if best >= target {
            return (t + 1, best);
        }
    }
    (n, best)
}

fn cube(n: usize, low: f64, high: f64) -> Space {
    let mut m = serde_json::Map::new();
    for i in 0..n {
        m.insert(format!("x{i}"), json!({"uniform": [low, high]}));
    }
    space(Value::Object(m))
}

fn xs(c: &Config, n: usize) -> Vec<f64> {
    (0..n).map(|i| c[&format!("x{i}")].as_f64().unwrap()).collect()
}

#[test]
fn sphere_5d_reaches_1e_6() {
    let mut s = CmaesSearch::new(cube(5, -5.0, 5.0), -1).unwrap();
    let (evals, best) =
        sequential(&mut s, 0, 1500, -1e-6, |c| -xs(c, 5).iter().map(|x| (x - 0.3).powi(2)).sum::<f64>());
    eprintln!("sphere: {evals} evaluations, f = {}", -best);
    assert!(best >= -1e-6, "after {evals} evaluations f = {}", -best);
}

#[test]
fn rosenbrock_2d_reaches_1e_4() {
    let mut s = CmaesSearch::new(cube(2, -5.0, 5.0), -1).unwrap();
    let rosen = |c: &Config| {
        let x = xs(c, 2);
        -(100.0 * (x[1] - x[0] * x[0]).powi(2) + (1.0 - x[0]).powi(2))
    };
    let (evals, best) = sequential(&mut s, 0, 3000, -1e-4, rosen);
    eprintln!("rosenbrock: {evals} evaluations, f = {}, restarts {}", -best, s.restarts());
    assert!(best >= -1e-4, "after {evals} evaluations f = {}", -best);
}

#[test]
fn generations_hand_out_lambda_trials_then_wait() {
    let cfg = CmaesConfig { n_startup_trials: 2, ..Default::default() };
    let mut s = cfg.build(cube(3, 0.0, 1.0), -1).unwrap();
    let lambda = s.population_size();
    assert_eq!(lambda, 4 + (3.0 * 3f64.ln()).floor() as usize);
    let score = |c: &Config| -xs(c, 3).iter().map(|x| (x - 0.5).powi(2)).sum::<f64>();
    // Startup: random configs, never a wait, until two trials have finished.
    let mut t = 0u64;
    let mut startup = Vec::new();
    for _ in 0..3 {
        let c = config(suggest(&mut s, 1, t));
        s.on_trial_add(TrialId(t), &c);
        startup.push((TrialId(t), c));
        t += 1;
    }
    for (id, c) in startup.iter().take(2) {
        s.on_complete(*id, &Outcome::Completed { score: Some(score(c)) });
    }
    for generation in 0..4u64 {
        assert_eq!(s.generations(), generation);
        let mut out = Vec::new();
        loop {
            match suggest(&mut s, 1, t) {
                Suggestion::Config(c) => {
                    s.on_trial_add(TrialId(t), &c);
                    out.push((TrialId(t), c));
                    t += 1;
                }
                Suggestion::Wait => break,
                Suggestion::Exhausted => panic!("unlimited"),
            }
        }
        assert_eq!(out.len(), lambda, "generation {generation}");
        // Finishing all but one keeps it waiting; each way of ending counts.
        for (k, (id, c)) in out.iter().enumerate().skip(1) {
            let outcome = match k % 3 {
                0 => Outcome::Failed,
                1 => Outcome::Pruned { score: None },
                _ => Outcome::Completed { score: Some(score(c)) },
            };
            s.on_result(*id, &Observation { score: Some(score(c)), progress: 1.0 });
            s.on_complete(*id, &outcome);
            assert_eq!(suggest(&mut s, 1, t), Suggestion::Wait);
        }
        assert_eq!(s.generations(), generation);
        // The straggling startup trial ending changes nothing.
        if generation == 0 {
            s.on_complete(startup[2].0, &Outcome::Completed { score: Some(10.0) });
            assert_eq!(suggest(&mut s, 1, t), Suggestion::Wait);
        }
        let (id, c) = &out[0];
        s.on_complete(*id, &Outcome::Completed { score: Some(score(c)) });
        assert_eq!(s.generations(), generation + 1);
    }
    assert_eq!(s.restarts(), 0);
}

/// One call made to a searcher, to replay.
#[derive(Clone, Debug)]
enum Call {
    Add(TrialId, Config),
    Result(TrialId, Observation),
    Complete(TrialId, Outcome),
}

fn apply(s: &mut CmaesSearch, call: &Call) {
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
            "drop": {"uniform": [0, 0.5]},
            "fixed": {"nested": 3},
        }))
    };
    let cfg = CmaesConfig {
        popsize: Some(5),
        n_startup_trials: 2,
        points_to_evaluate: vec![obj(json!({"lr": 0.01}))],
        ..Default::default()
    };
    let score = |c: &Config| -> f64 {
        let lr = c["lr"].as_f64().unwrap().log10();
        -(lr + 2.5).powi(2) - 0.1 * c["layers"].as_f64().unwrap() + if c["act"] == "gelu" { 0.3 } else { 0.0 }
            - (c["drop"].as_f64().unwrap() - 0.2).powi(2)
    };
    let mut live = cfg.clone().build(sp(), -1).unwrap();
    let mut log = Vec::new();
    let mut running: Vec<TrialId> = Vec::new();
    let mut configs = BTreeMap::new();
    let mut t = 0u64;
    let mut waits = 0;
    // Up to three trials at once; when the searcher waits (or three run), the oldest ends.
    while t < 120 {
        match suggest(&mut live, 11, t) {
            Suggestion::Config(c) if running.len() < 3 => {
                let call = Call::Add(TrialId(t), c.clone());
                apply(&mut live, &call);
                log.push(call);
                configs.insert(TrialId(t), c);
                running.push(TrialId(t));
                t += 1;
                continue;
            }
            Suggestion::Wait => waits += 1,
            _ => {}
        }
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
                4 => Outcome::Pruned { score: None },
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
    assert!(waits > 0 && live.generations() > 10, "waits {waits}, generations {}", live.generations());
    for cut in (0..=log.len()).step_by(7).chain([log.len()]) {
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
    assert!(configs.values().all(|c| c["fixed"] == json!({"nested": 3})));
    assert_eq!(configs[&TrialId(0)]["lr"], json!(0.01));
}

#[test]
fn a_plateau_restarts_with_twice_the_population() {
    // Flat everywhere except a corner the search never finds: the best never improves.
    let plateau = |c: &Config| if xs(c, 3).iter().all(|&x| x > 0.999) { 1.0 } else { 0.0 };
    let mut s = CmaesSearch::new(cube(3, 0.0, 1.0), -1).unwrap();
    let lambda0 = s.population_size();
    sequential(&mut s, 2, 400, f64::INFINITY, plateau);
    assert!(s.restarts() >= 1, "no restart after {} generations", s.generations());
    assert!(s.stops().iter().all(|&stop| stop == CmaesStop::Stagnation));
    assert_eq!(s.population_size(), lambda0 << s.restarts());
    // Without restarts the run goes on with the same population.
    let cfg = CmaesConfig { restart: CmaesRestart::None, ..Default::default() };
    let mut s = cfg.build(cube(3, 0.0, 1.0), -1).unwrap();
    sequential(&mut s, 2, 400, f64::INFINITY, plateau);
    assert_eq!((s.restarts(), s.population_size()), (0, lambda0));
    assert!(s.generations() > 40);
}

#[test]
fn a_collapsed_step_size_restarts() {
    // Sphere: the best keeps improving until σ falls below 1e-12 of the range.
    let mut s = CmaesConfig { popsize: Some(6), ..Default::default() }.build(cube(2, 0.0, 1.0), -1).unwrap();
    let sphere = |c: &Config| -xs(c, 2).iter().map(|x| (x - 0.4).powi(2)).sum::<f64>();
    let (_, best) = sequential(&mut s, 3, 3000, f64::INFINITY, sphere);
    assert!(best > -1e-20, "best {best}");
    assert_eq!(s.stops().first(), Some(&CmaesStop::TolX));
    assert_eq!(s.population_size(), 6 << s.restarts());
}

#[test]
fn integers_and_choices() {
    // Rounding at evaluation: CMA-ES finds an integer optimum and a log-scale float; the
    // choice is drawn uniformly, whatever the scores.
    let sp = space(json!({
        "n": {"randint": [0, 100]},
        "lr": {"loguniform": [1e-5, 1.0]},
        "act": {"choice": ["a", "b", "c"]},
    }));
    let mut s = CmaesSearch::new(sp, -1).unwrap();
    assert_eq!(s.dims(), 2);
    let mut seen = BTreeMap::new();
    let mut on_target = 0;
    for t in 0..600u64 {
        let c = config(suggest(&mut s, 5, t));
        s.on_trial_add(TrialId(t), &c);
        *seen.entry(c["act"].as_str().unwrap().to_string()).or_insert(0) += 1;
        let n = c["n"].as_i64().unwrap();
        assert!((0..100).contains(&n));
        let score = -((n - 37) as f64).powi(2) - (c["lr"].as_f64().unwrap().log10() + 3.0).powi(2)
            + if c["act"] == "a" { 1.0 } else { 0.0 };
        s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score) });
        if t >= 500 && n == 37 {
            on_target += 1;
        }
    }
    assert!(on_target >= 90, "only {on_target} of the last 100 proposals have n = 37");
    assert_eq!(seen.len(), 3);
    assert!(seen.values().all(|&k| k > 150), "{seen:?}");
}

#[test]
fn num_samples_points_and_first_mean() {
    let sp = space(json!({
        "opt": {"x": {"uniform": [0, 10]}, "name": "adam"},
        "f": {"$domain": {"kind": "sample_from", "id": 2}},
        "one": {"choice": ["only"]},
    }));
    let cfg: CmaesConfig = serde_json::from_value(json!({
        "n_startup_trials": 1,
        "sigma0": 0.001,
        "popsize": 4,
        "points_to_evaluate": [{"opt": {"x": 9.0}}, {"opt": {"x": 2.0}}],
    }))
    .unwrap();
    let mut s = cfg.build(sp, 8).unwrap();
    let mut configs = Vec::new();
    for t in 0..8u64 {
        let c = config(suggest(&mut s, 1, t));
        s.on_trial_add(TrialId(t), &c);
        let x = c["opt"]["x"].as_f64().unwrap();
        s.on_complete(TrialId(t), &Outcome::Completed { score: Some(-(x - 2.5).abs()) });
        configs.push(c);
    }
    assert_eq!(configs[0]["opt"], json!({"x": 9.0, "name": "adam"}));
    assert_eq!(configs[1]["opt"]["x"], json!(2.0));
    // The points count as observations: the first generation is centred on the best (x = 2).
    for c in &configs[2..6] {
        assert!((c["opt"]["x"].as_f64().unwrap() - 2.0).abs() < 0.1, "{c:?}");
    }
    for c in &configs {
        assert_eq!(c["f"], Value::Null);
        assert_eq!(c["one"], json!("only"));
        assert_eq!(c["opt"]["name"], json!("adam"));
    }
    assert_eq!(s.generations(), 1);
    assert_eq!(suggest(&mut s, 1, 8), Suggestion::Exhausted);
}

#[test]
fn refusals_and_defaults() {
    let e = CmaesSearch::new(space(json!({"m": {"layers": {"grid_search": [1, 2]}}})), 4).unwrap_err();
    assert_eq!(e.to_string(), "m.layers: grid_search is not supported by CMA-ES; use random/grid search");
    let sp = || space(json!({"x": {"uniform": [0, 1]}}));
    assert_eq!(
        CmaesSearch::new(sp(), -2).unwrap_err().to_string(),
        "num_samples: must be -1 (unlimited) or at least 0, got -2"
    );
    let cfg: CmaesConfig = serde_json::from_value(json!({"points_to_evaluate": [{"y": 1}]})).unwrap();
    assert_eq!(cfg.build(sp(), 4).unwrap_err().to_string(), "points_to_evaluate[0].y: no such key in the search space");
    for bad in [0.0, -1.0, 1.5, f64::NAN] {
        let cfg = CmaesConfig { sigma0: Some(bad), ..Default::default() };
        assert!(cfg.build(sp(), 4).unwrap_err().to_string().starts_with("sigma0: must be in (0, 1]"));
    }
    let cfg = CmaesConfig { popsize: Some(1), ..Default::default() };
    assert_eq!(cfg.build(sp(), 4).unwrap_err().to_string(), "popsize: must be at least 2, got 1");
    assert!(serde_json::from_value::<CmaesConfig>(json!({"x0": [0.5]})).is_err());
    assert!(serde_json::from_value::<CmaesConfig>(json!({"restart": "bipop"})).is_err());
    let d: CmaesConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(d, CmaesConfig::default());
    assert_eq!((d.restart, d.n_startup_trials, d.sigma0, d.popsize), (CmaesRestart::Ipop, 1, None, None));
    let s = CmaesSearch::new(cube(10, 0.0, 1.0), -1).unwrap();
    assert_eq!((s.population_size(), s.sigma()), (10, 1.0 / 6.0));
    // Only choices: nothing for CMA-ES to search, every config is random, none waits.
    let mut s = CmaesSearch::new(space(json!({"c": {"choice": [1, 2, 3]}})), 30).unwrap();
    for t in 0..30u64 {
        let c = config(suggest(&mut s, 0, t));
        s.on_trial_add(TrialId(t), &c);
    }
    assert_eq!(suggest(&mut s, 0, 30), Suggestion::Exhausted);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn configs_stay_inside_their_domains(
        domains in prop::collection::vec(domain(), 1..5),
        seed in any::<u64>(),
        sigma0 in prop::sample::select(vec![0.05, 1.0 / 6.0, 1.0]),
    ) {
        prop_assume!(domains.iter().all(|d| d.validate().is_ok()));
        let mut m = serde_json::Map::new();
        for (i, d) in domains.iter().enumerate() {
            m.insert(format!("p{i}"), json!({"$domain": d}));
        }
        let cfg = CmaesConfig { sigma0: Some(sigma0), popsize: Some(4), ..Default::default() };
        let mut s = cfg.build(Space::parse(&Value::Object(m)).unwrap(), -1).unwrap();
        // Scores that push towards the edges, so clipping and rounding at the bounds happen.
        let score = |c: &Config| -> f64 { c.values().map(|v| v.as_f64().unwrap_or(0.0)).sum() };
        let (n, _) = sequential(&mut s, seed, 60, f64::INFINITY, |c| {
            for (i, d) in domains.iter().enumerate() {
                let v = &c[&format!("p{i}")];
                assert!(inside(d, v, Some(10.0 * (1.0 + 1e-12))), "{d:?} gave {v}");
            }
            score(c)
        });
        prop_assert_eq!(n, 60);
    }
}

#[test]
fn a_finite_space_gets_no_duplicates_until_it_is_exhausted() {
    // 5 × 5 integers and a choice: 50 configs. CMA-ES concentrates on the optimum (2, 2), so its
    // draws repeat there; each repeat is redrawn, then replaced by an untried random config.
    let sp = space(json!({"a": {"randint": [0, 5]}, "b": {"randint": [0, 5]}, "c": {"choice": ["x", "y"]}}));
    let cfg = CmaesConfig { n_startup_trials: 3, ..Default::default() };
    let mut s = cfg.build(sp, -1).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for t in 0..50u64 {
        let Suggestion::Config(c) = suggest(&mut s, 11, t) else { panic!("trial {t}: no config") };
        assert!(seen.insert(serde_json::to_string(&c).unwrap()), "trial {t} repeats {c:?}");
        s.on_trial_add(TrialId(t), &c);
        let (a, b) = (c["a"].as_f64().unwrap(), c["b"].as_f64().unwrap());
        let score = -((a - 2.0).powi(2) + (b - 2.0).powi(2));
        s.on_result(TrialId(t), &Observation { score: Some(score), progress: 1.0 });
        s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score) });
    }
    // Every config tried: repeats are allowed again.
    assert!(matches!(suggest(&mut s, 11, 50), Suggestion::Config(_)));
}
