//! Population-based bandits (Ray Tune's `PB2`; Parker-Holder et al. 2020).
//!
//! The exploit step is PBT's (same boundaries, quantiles, donor rule and time-multiplexing; see
//! [`crate::pbt`]). The explore step differs: the continuous hyperparameters of
//! `hyperparam_bounds` are chosen by a GP bandit. At every boundary each trial records
//! `(time, values, reward)`; the reward changes per unit of time become the GP's data, inputs
//! `(time, reward before, values)` normalised; the kernel is PB2's time-varying squared
//! exponential fitted by maximum likelihood; and the new values maximise `mean + κ · std` with
//! time and reward held at the donor's latest point (see the `acq` module: Ray adds `κ ·
//! variance`). The search runs argmin's L-BFGS from ten random starts drawn from the
//! experiment's stream plus the donor's own values, and the best point wins. The chosen values
//! are then recorded for the exploiting trial with the donor's time and reward, so its next
//! reward change is measured from the cloned weights (as Ray).
//!
//! Values are kept as `f64` (Ray rounds them to `f32`); a hyperparameter whose donor value is an
//! integer is rounded and kept inside the bounds. Before the donor has a reward change the
//! donor's config is kept unchanged (Ray). `synch = true` is PBT's synchronous mode (the same
//! barrier; each bottom-quantile trial's explore is the bandit's), and `custom_explore_fn` is a
//! flag for the controller. [`Pb2::fill_config`] draws missing
//! hyperparameters uniformly from their bounds, as Ray does when a trial is added.

mod acq;
mod data;
mod gp;

use crate::pbt::population::{
    check_common, check_objective, config_error, decide, objective, Barrier, Population, Step,
};
use crate::{Config, Decision, Rng, SchedResult, SchedulerConfigError, TrialEnd, TrialId, TrialScheduler, TrialView};
use data::Row;
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// PB2's settings, with Ray's names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pb2Config {
    /// Result key measuring progress (`"time_total_s"`).
    pub time_attr: String,
    /// The scheduler's own metric (with `mode`); the experiment's when absent.
    pub metric: Option<String>,
    /// `"min"` or `"max"`, given together with `metric`.
    pub mode: Option<String>,
    /// Progress between two perturbations of a trial (60.0).
    pub perturbation_interval: f64,
    /// Hyperparameters to choose: dotted path (or nested table) to `[low, high]` ({}).
    pub hyperparam_bounds: Value,
    /// Share of the population in each of the bottom and top quantiles, in [0, 0.5] (0.25).
    pub quantile_fraction: f64,
    /// Whether a Python explore function runs after the bandit (applied by the controller).
    pub custom_explore_fn: bool,
    /// Whether a result without the metric stops the trial (true) or is ignored.
    pub require_attrs: bool,
    /// Ray's synchronous mode: all trials meet at each boundary before any is perturbed (false).
    pub synch: bool,
}

impl Default for Pb2Config {
    fn default() -> Self {
        Pb2Config {
            time_attr: "time_total_s".into(),
            metric: None,
            mode: None,
            perturbation_interval: 60.0,
            hyperparam_bounds: Value::Object(Config::new()),
            quantile_fraction: 0.25,
            custom_explore_fn: false,
            require_attrs: true,
            synch: false,
        }
    }
}

/// One bounded hyperparameter.
#[derive(Clone, Debug, PartialEq)]
struct Bound {
    path: Vec<String>,
    low: f64,
    high: f64,
}

impl Pb2Config {
    /// Validates every setting and builds the scheduler.
    pub fn build(&self) -> Result<Pb2, SchedulerConfigError> {
        check_common(&self.time_attr, self.perturbation_interval, self.quantile_fraction)?;
        check_objective(self.metric.as_deref(), self.mode.as_deref())?;
        let bounds = parse_bounds(&self.hyperparam_bounds)?;
        let population = Population::new(self.perturbation_interval, 0.0, self.quantile_fraction, self.require_attrs);
        Ok(Pb2 {
            population: if self.synch { population.synchronous() } else { population },
            synch: self.synch,
            barrier: Barrier::default(),
            bandit: Bandit {
                bounds,
                rows: Vec::new(),
                pending: Vec::new(),
                last_exploration_time: 0.0,
                custom_explore_fn: self.custom_explore_fn,
            },
        })
    }

    /// The result key that measures progress.
    pub fn time_attr(&self) -> &str {
        &self.time_attr
    }

    /// The scheduler's own metric and whether higher is better, when it overrides the experiment's.
    pub fn objective(&self) -> Option<(&str, bool)> {
        objective(self.metric.as_deref(), self.mode.as_deref())
    }
}

fn parse_bounds(v: &Value) -> Result<Vec<Bound>, SchedulerConfigError> {
    fn walk(map: &Config, prefix: &[String], out: &mut Vec<Bound>) -> Result<(), SchedulerConfigError> {
        for (key, v) in map {
            let mut path = prefix.to_vec();
            path.extend(key.split('.').map(String::from));
            let field = format!("hyperparam_bounds.{}", path.join("."));
            if path.iter().any(String::is_empty) {
                return Err(config_error(field, "empty key in the path"));
            }
            match v {
                Value::Object(m) => walk(m, &path, out)?,
                Value::Array(a) => match a.iter().map(Value::as_f64).collect::<Option<Vec<f64>>>().as_deref() {
                    Some(&[low, high]) if low.is_finite() && high.is_finite() && low < high => {
                        out.push(Bound { path, low, high })
                    }
                    _ => return Err(config_error(field, format!("expected [low, high] with low < high, got {v}"))),
                },
                other => {
                    return Err(config_error(field, format!("expected [low, high] or a nested table, got {other}")))
                }
            }
        }
        Ok(())
    }
    let Value::Object(map) = v else {
        return Err(config_error("hyperparam_bounds", format!("expected a table of [low, high] bounds, got {v}")));
    };
    let mut out = Vec::new();
    walk(map, &[], &mut out)?;
    if out.is_empty() {
        return Err(config_error("hyperparam_bounds", "give at least one hyperparameter, e.g. {\"lr\": [1e-4, 0.1]}"));
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    for w in out.windows(2) {
        if w[1].path.starts_with(&w[0].path) {
            let field = format!("hyperparam_bounds.{}", w[1].path.join("."));
            return Err(config_error(field, format!("overlaps hyperparam_bounds.{}", w[0].path.join("."))));
        }
    }
    Ok(out)
}

/// The running PB2 scheduler.
#[derive(Clone, Debug)]
pub struct Pb2 {
    population: Population,
    synch: bool,
    /// Synchronous mode: the trials waiting at the boundary and the exploits decided for them.
    barrier: Barrier,
    bandit: Bandit,
}

/// The GP bandit's data and settings: what the explore step reads and records.
#[derive(Clone, Debug)]
struct Bandit {
    bounds: Vec<Bound>,
    rows: Vec<Row>,
    /// Values chosen since time last advanced (Ray's `current`).
    pending: Vec<Vec<f64>>,
    last_exploration_time: f64,
    custom_explore_fn: bool,
}

use hyperfleet_searchers::{get_path as get, set_path as set};

impl Pb2 {
    /// Draws each bounded hyperparameter missing from `config` uniformly from its bounds (Ray's
    /// `_fill_config`); returns whether anything was filled.
    pub fn fill_config(&self, config: &mut Config, rng: &mut Rng) -> bool {
        let mut filled = false;
        for b in &self.bandit.bounds {
            if get(config, &b.path).is_none() {
                set(config, &b.path, json!(b.low + (b.high - b.low) * rng.random::<f64>()));
                filled = true;
            }
        }
        filled
    }

    /// Whether the controller must apply the Python explore function after each exploit.
    pub fn custom_explore_fn(&self) -> bool {
        self.bandit.custom_explore_fn
    }
}

impl Bandit {
    fn values(&self, config: &Config) -> Option<Vec<f64>> {
        self.bounds.iter().map(|b| get(config, &b.path)?.as_f64().filter(|v| v.is_finite())).collect()
    }

    fn max_time(&self) -> f64 {
        self.rows.iter().map(|r| r.time).fold(f64::NEG_INFINITY, f64::max)
    }

    /// The bandit's explore step for `trial` cloning `donor`.
    fn explore(&mut self, population: &Population, trial: TrialId, donor: TrialId, rng: &mut Rng) -> (Config, String) {
        let base = population.member(donor).map(|m| m.config.clone()).unwrap_or_default();
        if self.max_time() > self.last_exploration_time {
            self.pending.clear();
        }
        let limits: Vec<(f64, f64)> = self.bounds.iter().map(|b| (b.low, b.high)).collect();
        let start: Vec<f64> = self
            .bounds
            .iter()
            .map(|b| get(&base, &b.path).and_then(Value::as_f64).map_or(0.5, |v| (v - b.low) / (b.high - b.low)))
            .collect();
        let Some(choice) = data::select(&self.rows, donor, &limits, &self.pending, start, rng) else {
            return (base, "no reward change recorded for the donor yet: its config is kept".into());
        };
        let mut config = base.clone();
        let mut values = Vec::with_capacity(self.bounds.len());
        let mut notes = Vec::with_capacity(self.bounds.len());
        for (b, x) in self.bounds.iter().zip(&choice.x) {
            let raw = (b.low + x * (b.high - b.low)).clamp(b.low, b.high);
            let old = get(&base, &b.path);
            let (value, as_f64) = match old {
                Some(v) if (v.is_i64() || v.is_u64()) && b.low.ceil() <= b.high.floor() => {
                    let i = raw.round().clamp(b.low.ceil(), b.high.floor());
                    (json!(i as i64), i)
                }
                _ => (json!(raw), raw),
            };
            let old_text = old.map_or_else(|| "(missing)".to_string(), Value::to_string);
            notes.push(format!("{}: {old_text} -> {value}", b.path.join(".")));
            set(&mut config, &b.path, value);
            values.push(as_f64);
        }
        self.rows.push(Row { trial, time: choice.time, values: values.clone(), reward: choice.reward });
        let max = self.max_time();
        if max > self.last_exploration_time {
            self.last_exploration_time = max;
            self.pending = vec![values];
        } else {
            self.pending.push(values);
        }
        let mut note = format!("{} (GP-UCB on {} reward changes)", notes.join("; "), choice.n);
        if self.custom_explore_fn {
            note.push_str("; then custom_explore_fn");
        }
        (config, note)
    }
}

impl TrialScheduler for Pb2 {
    fn wants_population_up_front(&self) -> bool {
        true
    }

    fn fill_config(&mut self, config: &mut Config, rng: &mut Rng) {
        Pb2::fill_config(self, config, rng);
    }

    fn on_trial_add(&mut self, trial: &TrialView<'_>, _rng: &mut Rng) {
        self.population.add(trial);
    }

    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, rng: &mut Rng) -> Decision {
        let step = self.population.on_result(trial, result, rng);
        if let (Step::Boundary { .. }, Some(reward)) = (&step, result.score) {
            if let Some(values) = self.bandit.values(trial.config).filter(|_| reward.is_finite()) {
                self.bandit.rows.push(Row { trial: trial.id, time: result.progress, values, reward });
            }
        }
        let bandit = &mut self.bandit;
        let mut explore = |population: &Population, t: TrialId, donor: TrialId, rng: &mut Rng| {
            bandit.explore(population, t, donor, rng)
        };
        if self.synch {
            if let Step::Boundary { .. } = step {
                return self.barrier.open(&mut self.population, trial, rng, &mut explore);
            }
        }
        decide(step, &mut self.population, trial.id, rng, &mut explore)
    }

    fn on_trial_complete(&mut self, trial: TrialId, _end: TrialEnd, _last: Option<&SchedResult>) {
        self.population.complete(trial);
        self.barrier.complete(&self.population, trial);
    }

    fn choose_trial_to_run(&mut self, waiting: &[TrialId]) -> Option<TrialId> {
        self.population.choose(&self.barrier.free(waiting))
    }

    fn take_exploits(&mut self) -> Vec<(TrialId, TrialId, Config, String)> {
        self.barrier.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn build(v: Value) -> Result<Pb2, SchedulerConfigError> {
        serde_json::from_value::<Pb2Config>(v).unwrap().build()
    }

    #[test]
    fn defaults_and_refusals() {
        let c = Pb2Config::default();
        assert_eq!((c.time_attr(), c.perturbation_interval, c.quantile_fraction), ("time_total_s", 60.0, 0.25));
        assert!(c.require_attrs && !c.synch && c.objective().is_none());
        let cases = [
            (json!({}), "hyperparam_bounds"),
            (json!({"hyperparam_bounds": {"lr": [1, 0]}}), "hyperparam_bounds.lr"),
            (json!({"hyperparam_bounds": {"lr": [0, 1, 2]}}), "hyperparam_bounds.lr"),
            (json!({"hyperparam_bounds": {"o": {"lr": "x"}}}), "hyperparam_bounds.o.lr"),
            (json!({"hyperparam_bounds": {"o": [0, 1], "o.lr": [0, 1]}}), "hyperparam_bounds.o.lr"),
            (json!({"hyperparam_bounds": {"lr": [0, 1]}, "quantile_fraction": -0.1}), "quantile_fraction"),
        ];
        for (v, field) in cases {
            assert_eq!(build(v.clone()).unwrap_err().field, field, "{v}");
        }
        let ok = build(json!({"hyperparam_bounds": {"opt.lr": [0.001, 0.1], "net": {"width": [8, 64]}}})).unwrap();
        let paths: Vec<String> = ok.bandit.bounds.iter().map(|b| b.path.join(".")).collect();
        assert_eq!(paths, ["net.width", "opt.lr"]);
        let mut c = Config::new();
        assert!(ok.fill_config(&mut c, &mut Rng::seed_from_u64(0)));
        assert!((0.001..0.1).contains(&c["opt"]["lr"].as_f64().unwrap()));
    }

    /// Drives four trials reporting every iteration, boundaries every 10: the worst ones exploit
    /// with bandit-chosen values inside the bounds (integers stay integers). Gain peaks at lr 0.9,
    /// with a little deterministic noise, and the reporting order rotates.
    fn drive(seed: u64) -> Vec<Decision> {
        let mut s = build(json!({
            "time_attr": "training_iteration", "perturbation_interval": 10, "quantile_fraction": 0.25,
            "hyperparam_bounds": {"lr": [0.0, 1.0], "width": [4, 32]},
        }))
        .unwrap();
        let mut rng = Rng::seed_from_u64(seed);
        let mut configs: Vec<Config> = (0..4)
            .map(|i| json!({"lr": 0.2 * i as f64 + 0.1, "width": 8 * i + 4}).as_object().unwrap().clone())
            .collect();
        let mut rewards = [0.0f64; 4];
        let mut out = Vec::new();
        for step in 1..=60 {
            for k in 0..4 {
                let i = (k + step) % 4;
                let lr = configs[i]["lr"].as_f64().unwrap();
                rewards[i] += 1.0 - (lr - 0.9) * (lr - 0.9) + 0.05 * ((7 * i + step) as f64).sin();
                let v = TrialView { id: TrialId(i as u64), config: &configs[i], has_checkpoint: true };
                let r = SchedResult { progress: step as f64, score: Some(rewards[i]), queued: 0 };
                let d = s.on_result(&v, &r, &mut rng);
                if let Decision::Exploit { config, donor, .. } = &d {
                    rewards[i] = rewards[donor.0 as usize];
                    configs[i] = config.clone();
                }
                out.push(d);
            }
        }
        out
    }

    #[test]
    fn bandit_exploits_inside_bounds_deterministically() {
        let a = drive(5);
        let exploits: Vec<(&Config, &String)> = a
            .iter()
            .filter_map(|d| match d {
                Decision::Exploit { config, note, .. } => Some((config, note)),
                _ => None,
            })
            .collect();
        // The first boundary has no reward change yet: the donor's config is copied.
        let (first, note) = exploits[0];
        assert!(note.starts_with("no reward change"), "{note}");
        assert_eq!(Value::Object(first.clone()), json!({"lr": 0.7000000000000001, "width": 28}));
        let bandit: Vec<_> = exploits.iter().filter(|(_, note)| note.contains("GP-UCB")).collect();
        assert!(bandit.len() >= 2, "{a:?}");
        for (config, note) in bandit {
            let lr = config["lr"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&lr), "{lr}");
            let w = config["width"].as_i64().expect("width stays an integer");
            assert!((4..=32).contains(&w), "{w}");
            assert!(note.starts_with("lr: ") && note.contains("; width: "), "{note}");
        }
        assert_eq!(a, drive(5));
    }

    #[test]
    fn synchronous_mode_waits_for_everyone_then_explores_with_the_bandit() {
        let mut s = build(json!({"time_attr": "training_iteration", "perturbation_interval": 5,
                                 "hyperparam_bounds": {"lr": [0.0001, 0.02]}, "synch": true}))
        .unwrap();
        let mut rng = Rng::seed_from_u64(5);
        let configs: Vec<Config> =
            (0..4).map(|i| json!({"lr": 0.001 * (i + 1) as f64}).as_object().unwrap().clone()).collect();
        let views: Vec<TrialView> =
            (0..4).map(|i| TrialView { id: TrialId(i as u64), config: &configs[i], has_checkpoint: true }).collect();
        for v in &views {
            s.on_trial_add(v, &mut rng);
        }
        let r = |progress, score| SchedResult { progress, score: Some(score), queued: 0 };
        // Two boundaries, so that the bandit has reward changes to fit; the first three wait at each.
        for (boundary, scores) in [(5.0, [0.1, 0.2, 0.3, 0.4]), (10.0, [0.9, 0.3, 0.5, 0.8])] {
            for i in 0..3 {
                assert_eq!(s.on_result(&views[i], &r(boundary, scores[i]), &mut rng), Decision::Pause, "trial {i}");
            }
            assert!(s.take_exploits().is_empty(), "nothing decided before everyone arrives");
            assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(1), TrialId(2)]), None, "held trials wait");
            let own = s.on_result(&views[3], &r(boundary, scores[3]), &mut rng);
            let ex = s.take_exploits();
            if boundary == 10.0 {
                // Trial 1 is worst at t = 10 and clones trial 0, the best; trial 3 continues.
                assert_eq!(own, Decision::Continue);
                assert_eq!(ex.len(), 1, "{ex:?}");
                let (t, donor, config, note) = &ex[0];
                assert_eq!((*t, *donor), (TrialId(1), TrialId(0)));
                let lr = config["lr"].as_f64().unwrap();
                assert!((0.0001..=0.02).contains(&lr), "{lr}");
                assert!(note.contains("GP-UCB"), "{note}");
            }
            assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(2)]), Some(TrialId(0)), "the barrier is open");
        }
    }
}
