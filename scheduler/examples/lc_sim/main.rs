//! Learning-curve simulator for the scheduler benchmarks (`bench/quality/lc.py`).
//!
//! ```text
//! lc_sim [JOB.json | -]                 simulate a job (stdin when no file is given)
//! lc_sim --cost [--trials N] [--sim-trials M] [--reps R] [--only asha,median,hyperband,asha_adaptive,asha_promotion]
//!                                       time `on_result` (prints one RESULT_JSON line)
//! ```
//!
//! A job gives precomputed loss curves (so the Python side sees the very same numbers),
//! the workers, the epoch budget and one scheduler (`"scheduler"`, a `SchedulerConfig` with
//! its `"kind"`) or several (`"runs"`: `[{"name", "scheduler", "max_configs"?}]`):
//!
//! ```text
//! {"max_t": 81, "n_workers": 4, "budget_epochs": 2430, "seed": 0,
//!  "curves": [[loss at t=1, ..., loss at t=max_t], ...],   one per config, used in order
//!  "f_inf": [true final loss per config],                  optional: adds "regret"
//!  "max_configs": 1000,                                    optional: configs on offer
//!  "scheduler": {"kind": "asha", "max_t": 81, "grace_period": 1, "reduction_factor": 3}}
//! ```
//!
//! It prints one JSON object: the outcome (see `sim::Outcome::to_json`), or for `"runs"`
//! `{"runs": {name: outcome}}`. The simulation is in `sim.rs`, the timing in `cost.rs`.

// The crate's clippy.toml bans clocks and file IO to keep the schedulers pure; this binary
// around them reads its job and times decisions, which is what it is for.
#![allow(clippy::disallowed_methods)]

mod cost;
mod sim;

use hyperfleet_scheduler::SchedulerConfig;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::io::Read;

/// One scheduler to run on the job's curves.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Run {
    name: String,
    scheduler: SchedulerConfig,
    /// Configs on offer for this run (default: the job's).
    #[serde(default)]
    max_configs: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Job {
    max_t: usize,
    n_workers: usize,
    budget_epochs: u64,
    #[serde(default)]
    seed: u64,
    curves: Vec<Vec<f64>>,
    #[serde(default)]
    f_inf: Option<Vec<f64>>,
    #[serde(default)]
    max_configs: Option<usize>,
    #[serde(default)]
    scheduler: Option<SchedulerConfig>,
    #[serde(default)]
    runs: Option<Vec<Run>>,
}

fn simulate(job: &Job, sched: &SchedulerConfig, max_configs: Option<usize>) -> Result<Value, String> {
    let n = max_configs.or(job.max_configs).unwrap_or(job.curves.len()).min(job.curves.len());
    let setup = sim::Setup {
        max_t: job.max_t,
        n_workers: job.n_workers,
        budget: job.budget_epochs,
        n_configs: n,
        seed: job.seed,
        time_decisions: false,
    };
    let built = sched.build().map_err(|e| e.to_string())?;
    let out = sim::run(&job.curves, &setup, built)?;
    let mut v = out.to_json();
    if let (Some(f), Some(best)) = (&job.f_inf, out.best_final) {
        v["regret"] = json!(f.get(best.1).copied());
    }
    Ok(v)
}

fn run_job(text: &str) -> Result<Value, String> {
    let job: Job = serde_json::from_str(text).map_err(|e| format!("job: {e}"))?;
    if job.n_workers == 0 || job.max_t == 0 {
        return Err("job: n_workers and max_t must be positive".into());
    }
    if let Some(bad) = job.curves.iter().position(|c| c.len() < job.max_t) {
        return Err(format!("job: curve {bad} has {} values, fewer than max_t={}", job.curves[bad].len(), job.max_t));
    }
    match (&job.scheduler, &job.runs) {
        (Some(s), None) => simulate(&job, s, None),
        (None, Some(runs)) => {
            let mut out = Map::new();
            for r in runs {
                let v = simulate(&job, &r.scheduler, r.max_configs).map_err(|e| format!("run {}: {e}", r.name))?;
                out.insert(r.name.clone(), v);
            }
            Ok(json!({ "runs": out }))
        }
        _ => Err("job: give exactly one of \"scheduler\" or \"runs\"".into()),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: lc_sim [JOB.json | -]\n       lc_sim --cost [--trials N] [--sim-trials M] [--reps R] \
         [--only asha,median,hyperband,asha_adaptive,asha_promotion]"
    );
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        usage();
    }
    if args.first().map(String::as_str) == Some("--cost") {
        let mut opts = cost::Options::default();
        let mut it = args[1..].iter();
        while let Some(a) = it.next() {
            let mut val = || it.next().cloned().unwrap_or_else(|| usage());
            match a.as_str() {
                "--trials" => opts.trials = val().parse().unwrap_or_else(|_| usage()),
                "--sim-trials" => opts.sim_trials = Some(val().parse().unwrap_or_else(|_| usage())),
                "--reps" => opts.reps = val().parse().unwrap_or_else(|_| usage()),
                "--only" => opts.only = Some(val().split(',').map(str::to_string).collect()),
                _ => usage(),
            }
        }
        match cost::run(&opts) {
            Ok(v) => println!("RESULT_JSON {v}"),
            Err(e) => {
                eprintln!("lc_sim: {e}");
                std::process::exit(1);
            }
        }
        return;
    }
    let text = match args.as_slice() {
        [] => read_stdin(),
        [p] if p == "-" => read_stdin(),
        [p] => std::fs::read_to_string(p).unwrap_or_else(|e| {
            eprintln!("lc_sim: {p}: {e}");
            std::process::exit(2)
        }),
        _ => usage(),
    };
    match run_job(&text) {
        Ok(v) => println!("{v}"),
        Err(e) => {
            eprintln!("lc_sim: {e}");
            std::process::exit(1);
        }
    }
}

fn read_stdin() -> String {
    let mut s = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut s) {
        eprintln!("lc_sim: stdin: {e}");
        std::process::exit(2);
    }
    s
}
