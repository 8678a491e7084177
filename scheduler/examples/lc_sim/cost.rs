//! Decision cost: wall-clock nanoseconds per `on_result` call with many trials, in two settings.
//!
//! - "waves" (ASHA, median stopping): `trials` trials are added, then every one of them reports
//!   at t = 1, 3, 9, 27 and 81 (one wave per milestone, trials in id order), whatever the
//!   decisions: every rung ends up holding every trial, the worst case for rung bookkeeping. One
//!   clock reading around each wave; no other work inside it.
//! - "sim" (ASHA, ASHA promotion, HyperBand): the event simulation of `sim.rs` with `sim_trials`
//!   configs, 4 workers and no epoch budget, so every trial reports each epoch it is allowed to
//!   run; each `on_result` and each `choose_trial_to_run` call is timed on its own (the clock's
//!   own cost, `timer_overhead_ns`, is included in those figures and reported beside them).
//!
//! Curves are synthetic (final loss q ~ U(0, 3.3) reached as q + 4·e^(-t/τ), τ from 1 for the
//! worst configs to 21 for the best, plus noise), drawn from a fixed seed. Each figure is the
//! median over `reps` repetitions, each with a freshly built scheduler.

use crate::sim;
use hyperfleet_scheduler::{Config, Rng, SchedResult, SchedulerConfig, TrialId, TrialView};
use rand::{Rng as _, SeedableRng};
use serde_json::{json, Map, Value};
use std::hint::black_box;
use std::time::Instant;

const MAX_T: usize = 81;
const MILESTONES: [usize; 5] = [1, 3, 9, 27, 81];
const WAVES: [&str; 2] = ["asha", "median"];
const SIMS: [&str; 4] = ["asha", "asha_adaptive", "asha_promotion", "hyperband"];

pub struct Options {
    pub trials: usize,
    /// Configs in the "sim" setting (default: `trials`).
    pub sim_trials: Option<usize>,
    pub reps: usize,
    pub only: Option<Vec<String>>,
}

impl Default for Options {
    fn default() -> Self {
        Options { trials: 10_000, sim_trials: None, reps: 5, only: None }
    }
}

/// The benchmark's scheduler settings (those of `bench/quality/lc.py`).
fn config(kind: &str) -> Result<SchedulerConfig, String> {
    let v = match kind {
        "asha" => json!({"kind": "asha", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 3}),
        "asha_adaptive" => json!({"kind": "asha_adaptive", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 3}),
        "asha_promotion" => json!({"kind": "asha_promotion", "max_t": MAX_T, "grace_period": 1, "reduction_factor": 3}),
        "hyperband" => json!({"kind": "hyperband", "max_t": MAX_T, "reduction_factor": 3}),
        "median" => json!({"kind": "median", "time_attr": "training_iteration", "grace_period": 1,
                           "min_samples_required": 3}),
        other => return Err(format!("unknown scheduler {other:?}")),
    };
    serde_json::from_value(v).map_err(|e| e.to_string())
}

fn curves(n: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = Rng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let q: f64 = rng.random::<f64>() * 3.3;
            let tau = 1.0 + 20.0 * (1.0 - q / 3.3).powi(2);
            (1..=MAX_T)
                .map(|t| {
                    let noise = (rng.random::<f64>() - 0.5) * 0.04 / (t as f64).sqrt();
                    q + 4.0 * (-(t as f64) / tau).exp() + noise
                })
                .collect()
        })
        .collect()
}

/// One repetition of the waves: ns per result overall and per milestone.
fn waves(kind: &str, curves: &[Vec<f64>]) -> Result<(f64, Vec<f64>), String> {
    let n = curves.len();
    let mut s = config(kind)?.build().map_err(|e| e.to_string())?;
    let mut rng = Rng::seed_from_u64(0);
    let cfg = Config::new();
    for i in 0..n as u64 {
        s.on_trial_add(&TrialView { id: TrialId(i), config: &cfg, has_checkpoint: false }, &mut rng);
    }
    let mut per = Vec::new();
    let mut total = 0.0;
    for m in MILESTONES {
        let results: Vec<SchedResult> =
            curves.iter().map(|c| SchedResult { progress: m as f64, score: Some(-c[m - 1]), queued: 0 }).collect();
        let t0 = Instant::now();
        for (i, r) in results.iter().enumerate() {
            let view = TrialView { id: TrialId(i as u64), config: &cfg, has_checkpoint: true };
            black_box(s.on_result(&view, r, &mut rng));
        }
        let ns = t0.elapsed().as_nanos() as f64;
        total += ns;
        per.push(ns / n as f64);
    }
    Ok((total / (n * MILESTONES.len()) as f64, per))
}

/// One repetition in the simulation.
struct SimRep {
    /// ns per `on_result` call.
    result_ns: f64,
    results: u64,
    /// ns per `choose_trial_to_run` call, and the waiting trials shown per call.
    choose_ns: f64,
    choose_calls: u64,
    mean_waiting: f64,
    /// The whole simulation, scheduler and simulator.
    wall_s: f64,
}

fn in_sim(kind: &str, curves: &[Vec<f64>]) -> Result<SimRep, String> {
    let setup = sim::Setup {
        max_t: MAX_T,
        n_workers: 4,
        budget: u64::MAX,
        n_configs: curves.len(),
        seed: 0,
        time_decisions: true,
    };
    let sched = config(kind)?.build().map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let out = sim::run(curves, &setup, sched)?;
    let wall_s = t0.elapsed().as_secs_f64();
    let calls = out.choose_calls.max(1) as f64;
    Ok(SimRep {
        result_ns: out.decision_time.as_nanos() as f64 / out.results.max(1) as f64,
        results: out.results,
        choose_ns: out.choose_time.as_nanos() as f64 / calls,
        choose_calls: out.choose_calls,
        mean_waiting: out.choose_shown as f64 / calls,
        wall_s,
    })
}

fn timer_overhead_ns() -> f64 {
    let n = 200_000;
    let t0 = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        black_box(t.elapsed());
    }
    t0.elapsed().as_nanos() as f64 / n as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn summary(v: Vec<f64>) -> Map<String, Value> {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut m = Map::new();
    m.insert("ns_per_result".into(), json!(median(v)));
    m.insert("ns_min".into(), json!(lo));
    m.insert("ns_max".into(), json!(hi));
    m
}

pub fn run(opts: &Options) -> Result<Value, String> {
    if opts.trials == 0 || opts.reps == 0 {
        return Err("--trials and --reps must be positive".into());
    }
    let wanted = |k: &str| opts.only.as_ref().is_none_or(|o| o.iter().any(|x| x == k));
    let curves = curves(opts.trials, 7);
    let sim_curves = &curves[..opts.sim_trials.unwrap_or(opts.trials).min(opts.trials)];
    let mut out = Map::new();
    out.insert("trials".into(), json!(opts.trials));
    out.insert("reps".into(), json!(opts.reps));
    out.insert("milestones".into(), json!(MILESTONES));
    out.insert("timer_overhead_ns".into(), json!(timer_overhead_ns()));
    for kind in WAVES.into_iter().filter(|k| wanted(k)) {
        let mut all = Vec::new();
        let mut per_m: Vec<Vec<f64>> = vec![Vec::new(); MILESTONES.len()];
        for _ in 0..opts.reps {
            let (ns, per) = waves(kind, &curves)?;
            all.push(ns);
            for (acc, x) in per_m.iter_mut().zip(per) {
                acc.push(x);
            }
        }
        let mut m = summary(all);
        m.insert("results".into(), json!(opts.trials * MILESTONES.len()));
        m.insert("by_milestone_ns".into(), json!(per_m.into_iter().map(median).collect::<Vec<_>>()));
        out.insert(format!("{kind}_waves"), Value::Object(m));
    }
    for kind in SIMS.into_iter().filter(|k| wanted(k)) {
        let reps: Vec<SimRep> = (0..opts.reps).map(|_| in_sim(kind, sim_curves)).collect::<Result<_, _>>()?;
        let mut m = summary(reps.iter().map(|r| r.result_ns).collect());
        m.insert("results".into(), json!(reps[0].results));
        m.insert("choose_ns_per_call".into(), json!(median(reps.iter().map(|r| r.choose_ns).collect())));
        m.insert("choose_calls".into(), json!(reps[0].choose_calls));
        m.insert("choose_mean_waiting".into(), json!(reps[0].mean_waiting));
        m.insert("wall_s".into(), json!(median(reps.iter().map(|r| r.wall_s).collect())));
        m.insert("trials".into(), json!(sim_curves.len()));
        out.insert(format!("{kind}_sim"), Value::Object(m));
    }
    Ok(Value::Object(out))
}
