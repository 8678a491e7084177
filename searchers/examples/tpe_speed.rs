//! Time per TPE suggestion with 100, 1000 and 3000 completed trials on a 5-D mixed space.
//!
//! `cargo run -p hyperfleet-searchers --release --example tpe_speed`

use hyperfleet_searchers::{trial_rng, Config, Outcome, Searcher, Space, Suggestion, TpeConfig, TrialId};
use serde_json::json;
use std::time::Instant;

fn score(c: &Config) -> f64 {
    let x = c["x"].as_f64().unwrap();
    let lr = c["lr"].as_f64().unwrap().log10();
    let n = c["n"].as_f64().unwrap();
    let b = c["batch"].as_f64().unwrap();
    -(x - 0.3).powi(2) - (lr + 2.0).powi(2) - (n - 7.0).abs() / 10.0 - (b - 64.0).abs() / 100.0
        + if c["act"] == "gelu" { 0.2 } else { 0.0 }
}

#[allow(clippy::disallowed_methods)] // a benchmark reads the clock; the library never does
fn main() {
    let space = Space::parse(&json!({
        "x": {"uniform": [-5, 5]},
        "lr": {"loguniform": [1e-5, 1e-1]},
        "n": {"randint": [1, 33]},
        "batch": {"qrandint": [16, 256, 16]},
        "act": {"choice": ["relu", "tanh", "gelu", "silu"]},
    }))
    .unwrap();
    for multivariate in [true, false] {
        for n in [100u64, 1000, 3000] {
            let cfg = TpeConfig { multivariate, n_startup_trials: n as usize, ..Default::default() };
            let mut s = cfg.build(space.clone(), -1).unwrap();
            // n random trials, completed: the history.
            for t in 0..n {
                let Suggestion::Config(c) = s.suggest(TrialId(t), &mut trial_rng(1, TrialId(t))) else { panic!() };
                s.on_trial_add(TrialId(t), &c);
                s.on_complete(TrialId(t), &Outcome::Completed { score: Some(score(&c)) });
            }
            let reps = 200;
            let start = Instant::now();
            for r in 0..reps {
                let t = TrialId(n + r);
                let out = s.suggest(t, &mut trial_rng(2, t));
                assert!(matches!(out, Suggestion::Config(_)));
            }
            let per = start.elapsed().as_secs_f64() / reps as f64;
            println!("multivariate = {multivariate:5}: {n:5} observations: {:8.1} µs per suggestion", per * 1e6);
        }
    }
}
