//! Optimisation quality of the searchers on standard test functions, in process.
//!
//! ```text
//! cargo run --release -p hyperfleet-searchers --example bbo -- \
//!     --funcs branin,hartmann6 --methods random,tpe --seeds 20 --trials 200
//! ```
//!
//! For each function, method and seed, runs `trials` trials one after another (suggest, then the
//! function's value is told as a completed trial) and prints one JSON line per run: the simple
//! regret (best value so far minus the known optimum) after each trial. The functions and
//! domains are the ones `bench/peers/bbo_optuna.py` gives Optuna, so runs pair by seed.
//!
//! Besides the six continuous functions, four variants test the other kinds of parameter:
//! `branin_int` (both coordinates integers), `hartmann6_log` (every coordinate log-uniform on
//! [0.001, 1]), `styblinski_tang10_cat` (the first five coordinates categorical over the integers
//! -5..5, unordered) and `ackley10_dummy` (ten more coordinates the function ignores). Each
//! variant's optimum is the best value its domain allows.

use hyperfleet_searchers::{
    trial_rng, CmaesConfig, Config, GpConfig, Outcome, QmcConfig, Searcher, Space, Suggestion, TpeConfig, TrialId,
};
use serde_json::{json, Value};
use std::f64::consts::PI;

/// One coordinate's domain.
#[derive(Clone)]
enum D {
    Uniform(f64, f64),
    /// Integers `lo..=hi`.
    Int(i64, i64),
    Log(f64, f64),
    /// Unordered choices among these values.
    Cat(Vec<f64>),
}

impl D {
    fn json(&self) -> Value {
        match self {
            D::Uniform(lo, hi) => json!({"uniform": [lo, hi]}),
            D::Int(lo, hi) => json!({"randint": [lo, hi + 1]}),
            D::Log(lo, hi) => json!({"loguniform": [lo, hi]}),
            D::Cat(v) => json!({"choice": v}),
        }
    }
}

/// A test function: name, its domain per coordinate (the function reads the first `used`), the
/// best value over that domain, and the value.
struct Func {
    name: &'static str,
    dims: Vec<D>,
    used: usize,
    optimum: f64,
    f: fn(&[f64]) -> f64,
}

fn uniform(bounds: &[(f64, f64)]) -> Vec<D> {
    bounds.iter().map(|(lo, hi)| D::Uniform(*lo, *hi)).collect()
}

fn branin(x: &[f64]) -> f64 {
    let (a, b, c, r, s, t) = (1.0, 5.1 / (4.0 * PI * PI), 5.0 / PI, 6.0, 10.0, 1.0 / (8.0 * PI));
    a * (x[1] - b * x[0] * x[0] + c * x[0] - r).powi(2) + s * (1.0 - t) * x[0].cos() + s
}

fn hartmann6(x: &[f64]) -> f64 {
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    -(0..4).map(|i| ALPHA[i] * (-(0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum::<f64>()).exp()).sum::<f64>()
}

fn rosenbrock(x: &[f64]) -> f64 {
    x.windows(2).map(|w| 100.0 * (w[1] - w[0] * w[0]).powi(2) + (1.0 - w[0]).powi(2)).sum()
}

fn levy(x: &[f64]) -> f64 {
    let w: Vec<f64> = x.iter().map(|v| 1.0 + (v - 1.0) / 4.0).collect();
    let d = w.len();
    let mid: f64 = w[..d - 1].iter().map(|wi| (wi - 1.0).powi(2) * (1.0 + 10.0 * (PI * wi + 1.0).sin().powi(2))).sum();
    (PI * w[0]).sin().powi(2) + mid + (w[d - 1] - 1.0).powi(2) * (1.0 + (2.0 * PI * w[d - 1]).sin().powi(2))
}

fn styblinski_tang(x: &[f64]) -> f64 {
    x.iter().map(|v| v.powi(4) - 16.0 * v * v + 5.0 * v).sum::<f64>() / 2.0
}

fn ackley(x: &[f64]) -> f64 {
    let d = x.len() as f64;
    let s1 = x.iter().map(|v| v * v).sum::<f64>() / d;
    let s2 = x.iter().map(|v| (2.0 * PI * v).cos()).sum::<f64>() / d;
    -20.0 * (-0.2 * s1.sqrt()).exp() - s2.exp() + 20.0 + std::f64::consts::E
}

fn funcs() -> Vec<Func> {
    let f = |name, bounds: Vec<(f64, f64)>, optimum, f| Func {
        name,
        used: bounds.len(),
        dims: uniform(&bounds),
        optimum,
        f,
    };
    let st_one = |v: f64| (v.powi(4) - 16.0 * v * v + 5.0 * v) / 2.0;
    let ints: Vec<f64> = (-5..=5).map(f64::from).collect();
    let st_int_best = ints.iter().map(|v| st_one(*v)).fold(f64::INFINITY, f64::min);
    let branin_int_best = (-5..=10)
        .flat_map(|a| (0..=15).map(move |b| branin(&[f64::from(a), f64::from(b)])))
        .fold(f64::INFINITY, f64::min);
    let mut ackley_dummy = uniform(&[(-32.768, 32.768); 10]);
    ackley_dummy.extend(uniform(&[(0.0, 1.0); 10]));
    let mut st_cat: Vec<D> = (0..5).map(|_| D::Cat(ints.clone())).collect();
    st_cat.extend(uniform(&[(-5.0, 5.0); 5]));
    vec![
        f("branin", vec![(-5.0, 10.0), (0.0, 15.0)], 0.397_887_357_729_738, branin),
        f("hartmann6", vec![(0.0, 1.0); 6], -3.322_368_011_415_51, hartmann6),
        f("rosenbrock5", vec![(-5.0, 10.0); 5], 0.0, rosenbrock),
        f("levy10", vec![(-10.0, 10.0); 10], 0.0, levy),
        f("styblinski_tang10", vec![(-5.0, 5.0); 10], -39.166_165_703_771_42 * 10.0, styblinski_tang),
        f("ackley10", vec![(-32.768, 32.768); 10], 0.0, ackley),
        Func {
            name: "branin_int",
            dims: vec![D::Int(-5, 10), D::Int(0, 15)],
            used: 2,
            optimum: branin_int_best,
            f: branin,
        },
        Func {
            name: "hartmann6_log",
            dims: vec![D::Log(1e-3, 1.0); 6],
            used: 6,
            optimum: -3.322_368_011_415_51,
            f: hartmann6,
        },
        Func {
            name: "styblinski_tang10_cat",
            dims: st_cat,
            used: 10,
            optimum: 5.0 * st_int_best - 39.166_165_703_771_42 * 5.0,
            f: styblinski_tang,
        },
        Func { name: "ackley10_dummy", dims: ackley_dummy, used: 10, optimum: 0.0, f: ackley },
    ]
}

fn searcher(method: &str, space: &Space) -> Box<dyn Searcher> {
    match method {
        "random" => Box::new(hyperfleet_searchers::BasicVariantGenerator::new(space.clone(), -1).unwrap()),
        "tpe" => Box::new(TpeConfig::default().build(space.clone(), -1).unwrap()),
        "tpe_independent" => {
            Box::new(TpeConfig { multivariate: false, ..Default::default() }.build(space.clone(), -1).unwrap())
        }
        "qmc" => Box::new(QmcConfig::default().build(space.clone(), -1).unwrap()),
        "cmaes" => Box::new(CmaesConfig::default().build(space.clone(), -1).unwrap()),
        "gp" => Box::new(GpConfig::default().build(space.clone(), -1).unwrap()),
        "bohb" => Box::new(hyperfleet_searchers::BohbConfig::default().build(space.clone(), -1).unwrap()),
        other => panic!("unknown method {other} (known: random, tpe, tpe_independent, qmc, cmaes, gp, bohb)"),
    }
}

fn run(func: &Func, method: &str, seed: u64, trials: u64) -> Vec<f64> {
    let mut space = serde_json::Map::new();
    for (i, d) in func.dims.iter().enumerate() {
        space.insert(format!("x{i}"), d.json());
    }
    let space = Space::parse(&Value::Object(space)).unwrap();
    let mut s = searcher(method, &space);
    let mut best = f64::INFINITY;
    let mut regrets = Vec::with_capacity(trials as usize);
    for t in 0..trials {
        let id = TrialId(t);
        let Suggestion::Config(c) = s.suggest(id, &mut trial_rng(seed, id)) else {
            panic!("{method} did not suggest at trial {t}")
        };
        s.on_trial_add(id, &c);
        let x: Vec<f64> = (0..func.used).map(|i| value(&c, i)).collect();
        let y = (func.f)(&x);
        s.on_complete(id, &Outcome::Completed { score: Some(-y) });
        best = best.min(y);
        regrets.push(best - func.optimum);
    }
    regrets
}

fn value(c: &Config, i: usize) -> f64 {
    c[&format!("x{i}")].as_f64().expect("a number")
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let get = |k: &str, d: &str| -> String {
        args.iter().position(|a| a == k).and_then(|i| args.get(i + 1)).cloned().unwrap_or_else(|| d.to_string())
    };
    let all = funcs();
    let names = get("--funcs", &all.iter().map(|f| f.name).collect::<Vec<_>>().join(","));
    let methods = get("--methods", "random,tpe");
    let seeds: u64 = get("--seeds", "20").parse().expect("--seeds N");
    let trials: u64 = get("--trials", "200").parse().expect("--trials N");
    for name in names.split(',') {
        let func = all.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("unknown function {name}"));
        for method in methods.split(',') {
            for seed in 0..seeds {
                let r = run(func, method, seed, trials);
                println!(
                    "{}",
                    json!({"tool": "hyperfleet", "func": name, "method": method, "seed": seed, "regret": r})
                );
            }
        }
    }
}
