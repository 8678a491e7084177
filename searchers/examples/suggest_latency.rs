//! Time per suggestion of the searchers with N completed trials on a 5-D continuous space.
//!
//! ```text
//! cargo run --release -p hyperfleet-searchers --example suggest_latency -- --sizes 100,1000,3000 --asks 21
//! ```
//!
//! For each N and method, a fresh searcher is told N completed trials at uniform random points
//! of `x0..x4 ~ uniform(-5, 5)` with value `sum(x_i^2)` (minimised), as
//! `bench/peers/suggest_optuna.py` pre-fills Optuna's study. Then `asks` times: suggest a
//! config, add it and tell its value; each ask is timed from suggest to the end of the tell
//! (the whole per-trial cost). The first ask is reported apart (it builds caches over all N
//! trials); the median is over the rest. Prints `RESULT_JSON {...}`.

use hyperfleet_searchers::{trial_rng, Config, GpConfig, Outcome, Searcher, Space, Suggestion, TpeConfig, TrialId};
use rand::Rng as _;
use rand::SeedableRng;
use serde_json::{json, Map, Value};
use std::time::Instant;

fn f(c: &Config) -> f64 {
    (0..5).map(|i| c[&format!("x{i}")].as_f64().unwrap().powi(2)).sum()
}

fn make(method: &str, space: &Space) -> Box<dyn Searcher> {
    match method {
        "tpe" => Box::new(TpeConfig::default().build(space.clone(), -1).unwrap()),
        "tpe_independent" => {
            Box::new(TpeConfig { multivariate: false, ..Default::default() }.build(space.clone(), -1).unwrap())
        }
        "random" => Box::new(hyperfleet_searchers::BasicVariantGenerator::new(space.clone(), -1).unwrap()),
        "gp" => Box::new(GpConfig::default().build(space.clone(), -1).unwrap()),
        other => panic!("unknown method {other}"),
    }
}

#[allow(clippy::disallowed_methods)] // a benchmark reads the clock; the library never does
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str, d: &str| -> String {
        args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| d.to_string())
    };
    let sizes: Vec<u64> = get("--sizes", "100,1000,3000").split(',').map(|s| s.parse().unwrap()).collect();
    let asks: u64 = get("--asks", "21").parse().unwrap();
    let methods = get("--methods", "tpe,tpe_independent,random");
    let mut space = Map::new();
    for i in 0..5 {
        space.insert(format!("x{i}"), json!({"uniform": [-5.0, 5.0]}));
    }
    let space = Space::parse(&Value::Object(space)).unwrap();
    let mut results = Vec::new();
    for &n in &sizes {
        let mut prng = rand_chacha::ChaCha8Rng::seed_from_u64(n);
        let prefill: Vec<Config> =
            (0..n).map(|_| (0..5).map(|i| (format!("x{i}"), json!(prng.random_range(-5.0..5.0)))).collect()).collect();
        for method in methods.split(',') {
            let mut s = make(method, &space);
            for (t, c) in prefill.iter().enumerate() {
                let id = TrialId(t as u64);
                s.on_trial_add(id, c);
                s.on_complete(id, &Outcome::Completed { score: Some(-f(c)) });
            }
            let mut times = Vec::new();
            for k in 0..asks {
                let id = TrialId(n + k);
                let start = Instant::now();
                let Suggestion::Config(c) = s.suggest(id, &mut trial_rng(0, id)) else { panic!("no suggestion") };
                s.on_trial_add(id, &c);
                s.on_complete(id, &Outcome::Completed { score: Some(-f(&c)) });
                times.push(start.elapsed().as_secs_f64() * 1e3);
            }
            let mut rest = times[1..].to_vec();
            rest.sort_by(f64::total_cmp);
            let median = rest[rest.len() / 2];
            println!("{method:16} N={n:5} first={:8.3} ms  median={median:8.3} ms", times[0]);
            results.push(json!({"method": method, "n_completed": n, "first_ask_ms": times[0], "median_ask_ms": median,
                                "min_ask_ms": rest[0], "max_ask_ms": rest[rest.len() - 1]}));
        }
    }
    println!("RESULT_JSON {}", json!({"dim": 5, "results": results}));
}
