//! Population-based training (Ray Tune's `PopulationBasedTraining`, asynchronous mode).
//!
//! Every `perturbation_interval` units of `time_attr` (after `burn_in_period`), a trial that
//! reports is ranked with the population by each trial's latest score (Ray uses the score at
//! each trial's last boundary, up to one interval stale; see the population module). A
//! trial in the bottom `quantile_fraction` clones the checkpoint of a random top-quantile trial
//! that has one (`Decision::Exploit`) and continues with that donor's config, explored: each
//! hyperparameter of `hyperparam_mutations` is resampled with `resample_probability`, otherwise
//! a domain or callable value is multiplied by one of `perturbation_factors` and a list value
//! moves to a neighbouring entry. Explored values stay inside their domains, integers always
//! move, log domains scale geometrically (see the explore module for each rule and how it
//! differs from Ray's).
//!
//! Time-multiplexing: when more trials exist than can run (`SchedResult::queued > 0`), a trial
//! that passes a boundary without exploiting is paused so the waiting ones get their turn (an
//! exploiting trial is requeued anyway), and `choose_trial_to_run` picks the waiting trial with
//! the least progress, so the population advances evenly (Ray's rule). A trial without a
//! checkpoint is never paused: it would have to start over.
//!
//! A result without the metric stops the trial when `require_attrs` (Ray raises), and is
//! ignored otherwise; a NaN score ranks below every number.
//!
//! `synch = true` is Ray's synchronous mode: a trial reaching a boundary pauses (when it has a
//! checkpoint) until every live trial has reached it; the last to arrive ranks the whole
//! population at that boundary, each bottom-quantile trial gets a top-quantile donor, and all
//! resume. The reporter's own exploit is its decision; those of trials paused at the barrier
//! are handed to the controller through [`TrialScheduler::take_exploits`]. Held trials are never
//! chosen to run while the barrier stands. When the last arrival is a trial ending rather than a
//! result, the barrier opens without perturbing (this call gets no generator to draw donors
//! with). `custom_explore_fn` is a flag: the controller
//! applies the Python function to the explored config. Ray fills hyperparameters missing from a
//! new trial's config from the mutations; here that is [`Pbt::fill_config`], for the controller.

mod explore;
mod mutations;
pub(crate) mod population;

use crate::{Config, Decision, Rng, SchedResult, SchedulerConfigError, TrialEnd, TrialId, TrialScheduler, TrialView};
use explore::{explore, ExploreParams};
use mutations::Mutation;
use population::{check_common, check_objective, config_error, decide, objective, Barrier, Population, Step};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// PBT's settings, with Ray's names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PbtConfig {
    /// Result key measuring progress (`"time_total_s"`).
    pub time_attr: String,
    /// The scheduler's own metric (with `mode`); the experiment's when absent.
    pub metric: Option<String>,
    /// `"min"` or `"max"`, given together with `metric`.
    pub mode: Option<String>,
    /// Progress between two perturbations of a trial (60.0).
    pub perturbation_interval: f64,
    /// Progress before a trial is first considered (0.0).
    pub burn_in_period: f64,
    /// Hyperparameters to explore: nested tables of lists, domains and `{"$callable": id}` ({}).
    pub hyperparam_mutations: Value,
    /// Share of the population in each of the bottom and top quantiles, in [0, 0.5] (0.25).
    pub quantile_fraction: f64,
    /// Chance of resampling a hyperparameter instead of perturbing it (0.25).
    pub resample_probability: f64,
    /// Factors a perturbed value is multiplied by, one drawn uniformly ([1.2, 0.8]).
    pub perturbation_factors: Vec<f64>,
    /// Whether a Python explore function runs after the built-in one (applied by the controller).
    pub custom_explore_fn: bool,
    /// Ray's synchronous mode: all trials meet at each boundary before any is perturbed (false).
    pub synch: bool,
    /// Whether a result without the metric stops the trial (true) or is ignored.
    pub require_attrs: bool,
}

impl Default for PbtConfig {
    fn default() -> Self {
        PbtConfig {
            time_attr: "time_total_s".into(),
            metric: None,
            mode: None,
            perturbation_interval: 60.0,
            burn_in_period: 0.0,
            hyperparam_mutations: Value::Object(Config::new()),
            quantile_fraction: 0.25,
            resample_probability: 0.25,
            perturbation_factors: vec![1.2, 0.8],
            custom_explore_fn: false,
            synch: false,
            require_attrs: true,
        }
    }
}

impl PbtConfig {
    /// Validates every setting and builds the scheduler.
    pub fn build(&self) -> Result<Pbt, SchedulerConfigError> {
        check_common(&self.time_attr, self.perturbation_interval, self.quantile_fraction)?;
        check_objective(self.metric.as_deref(), self.mode.as_deref())?;
        let burn_in = self.burn_in_period;
        if !(burn_in.is_finite() && burn_in >= 0.0) {
            return Err(config_error("burn_in_period", format!("expected a number >= 0, got {burn_in}")));
        }
        let p = self.resample_probability;
        if !(0.0..=1.0).contains(&p) {
            return Err(config_error("resample_probability", format!("expected a probability in [0, 1], got {p}")));
        }
        if self.perturbation_factors.is_empty() {
            return Err(config_error("perturbation_factors", "expected at least one factor, e.g. [1.2, 0.8]"));
        }
        if let Some(f) = self.perturbation_factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
            return Err(config_error("perturbation_factors", format!("expected factors > 0, got {f}")));
        }
        let mutations = mutations::parse(&self.hyperparam_mutations)?;
        if mutations.is_empty() && !self.custom_explore_fn {
            return Err(config_error(
                "hyperparam_mutations",
                "give at least one hyperparameter to explore (or custom_explore_fn)",
            ));
        }
        let population =
            Population::new(self.perturbation_interval, burn_in, self.quantile_fraction, self.require_attrs);
        Ok(Pbt {
            population: if self.synch { population.synchronous() } else { population },
            synch: self.synch,
            barrier: Barrier::default(),
            mutations,
            params: ExploreParams { resample_probability: p, factors: self.perturbation_factors.clone() },
            custom_explore_fn: self.custom_explore_fn,
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

/// The running PBT scheduler.
#[derive(Clone, Debug)]
pub struct Pbt {
    population: Population,
    synch: bool,
    /// Synchronous mode: the trials waiting at the boundary and the exploits decided for them.
    barrier: Barrier,
    mutations: Vec<Mutation>,
    params: ExploreParams,
    custom_explore_fn: bool,
}

impl Pbt {
    /// Gives each mutated hyperparameter missing from `config` an initial value, as Ray does when
    /// a trial is added (callables become `{"$call": id}`); returns whether anything was filled.
    pub fn fill_config(&self, config: &mut Config, rng: &mut Rng) -> bool {
        mutations::fill_missing(config, &self.mutations, rng)
    }

    /// Whether the controller must apply the Python explore function after each exploit.
    pub fn custom_explore_fn(&self) -> bool {
        self.custom_explore_fn
    }
}

impl TrialScheduler for Pbt {
    fn wants_population_up_front(&self) -> bool {
        true
    }

    fn fill_config(&mut self, config: &mut Config, rng: &mut Rng) {
        Pbt::fill_config(self, config, rng);
    }

    fn on_trial_add(&mut self, trial: &TrialView<'_>, _rng: &mut Rng) {
        self.population.add(trial);
    }

    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, rng: &mut Rng) -> Decision {
        let step = self.population.on_result(trial, result, rng);
        let (mutations, params, custom) = (&self.mutations, &self.params, self.custom_explore_fn);
        let mut explore = |population: &Population, _trial: TrialId, donor: TrialId, rng: &mut Rng| {
            let base = population.member(donor).map(|m| m.config.clone()).unwrap_or_default();
            let (config, note) = explore(&base, mutations, params, rng);
            let note = match (custom, note.is_empty()) {
                (false, _) => note,
                (true, true) => "custom_explore_fn".into(),
                (true, false) => note + "; then custom_explore_fn",
            };
            (config, note)
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
    use serde_json::json;

    fn cfg(v: Value) -> Config {
        v.as_object().unwrap().clone()
    }

    fn pbt(extra: Value) -> Pbt {
        let mut base = json!({
            "time_attr": "training_iteration", "perturbation_interval": 5,
            "hyperparam_mutations": {"lr": {"uniform": [0.0001, 0.02]}},
        });
        base.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<PbtConfig>(base).unwrap().build().unwrap()
    }

    #[test]
    fn defaults_match_ray() {
        let c = PbtConfig::default();
        assert_eq!(c.time_attr(), "time_total_s");
        assert_eq!((c.perturbation_interval, c.burn_in_period, c.quantile_fraction), (60.0, 0.0, 0.25));
        assert_eq!((c.resample_probability, c.perturbation_factors.clone()), (0.25, vec![1.2, 0.8]));
        assert!(c.require_attrs && !c.synch && !c.custom_explore_fn);
        assert_eq!(c.objective(), None);
        let parsed: PbtConfig = serde_json::from_value(json!({})).unwrap();
        assert_eq!(parsed, c);
        assert!(serde_json::from_value::<PbtConfig>(json!({"log_confg": true})).is_err());
    }

    #[test]
    fn build_refusals_name_the_field() {
        let cases = [
            (json!({"perturbation_interval": 0}), "perturbation_interval"),
            (json!({"burn_in_period": -1}), "burn_in_period"),
            (json!({"quantile_fraction": 0.75}), "quantile_fraction"),
            (json!({"resample_probability": 1.5}), "resample_probability"),
            (json!({"perturbation_factors": []}), "perturbation_factors"),
            (json!({"perturbation_factors": [1.2, -1]}), "perturbation_factors"),
            (json!({"metric": "acc"}), "mode"),
            (json!({"metric": "acc", "mode": "best"}), "mode"),
            (json!({"hyperparam_mutations": {}}), "hyperparam_mutations"),
            (json!({"hyperparam_mutations": {"lr": 3}}), "hyperparam_mutations.lr"),
        ];
        for (extra, field) in cases {
            let mut v = json!({"hyperparam_mutations": {"lr": [1, 2]}});
            v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            let err = serde_json::from_value::<PbtConfig>(v).unwrap().build().unwrap_err();
            assert_eq!(err.field, field, "{extra}: {err}");
        }
        let ok: PbtConfig =
            serde_json::from_value(json!({"custom_explore_fn": true, "metric": "acc", "mode": "min"})).unwrap();
        assert!(ok.build().unwrap().custom_explore_fn());
        assert_eq!(ok.objective(), Some(("acc", false)));
    }

    /// Four trials with checkpoints report at iteration 5; the worst exploits one of the best.
    #[test]
    fn bottom_trial_exploits_a_top_trial_and_explores_inside_the_domain() {
        let mut s = pbt(json!({}));
        let mut rng = Rng::seed_from_u64(11);
        let configs: Vec<Config> = (0..4).map(|i| cfg(json!({"lr": 0.001 * (i + 1) as f64}))).collect();
        let mut decisions = Vec::new();
        for (i, score) in [0.9, 0.1, 0.5, 0.7].into_iter().enumerate() {
            let v = TrialView { id: TrialId(i as u64), config: &configs[i], has_checkpoint: true };
            s.on_trial_add(&v, &mut rng);
            decisions.push(s.on_result(&v, &SchedResult { progress: 5.0, score: Some(score), queued: 0 }, &mut rng));
        }
        // At trial 1's report the ranking is [1, 0] (one each); trial 3's report ranks
        // [1, 2, 3, 0]: trial 1 is not the reporter, so nothing more happens.
        assert_eq!(decisions[0], Decision::Continue);
        let Decision::Exploit { donor, config, note } = &decisions[1] else { panic!("{decisions:?}") };
        assert_eq!(*donor, TrialId(0));
        let lr = config["lr"].as_f64().unwrap();
        assert!((0.0001..0.02).contains(&lr), "{lr}");
        assert!(note.starts_with("lr: 0.001 -> "), "{note}");
        assert_eq!(&decisions[2..], &[Decision::Continue, Decision::Continue]);
        // The exploiting trial took over the donor's clock: its next boundary is at 10.
        let v = TrialView { id: TrialId(1), config, has_checkpoint: true };
        let r = SchedResult { progress: 9.0, score: Some(0.95), queued: 0 };
        assert_eq!(s.on_result(&v, &r, &mut rng), Decision::Continue);
    }

    #[test]
    fn pauses_at_a_boundary_when_trials_wait_and_picks_the_least_progressed() {
        let mut s = pbt(json!({"quantile_fraction": 0.0}));
        let mut rng = Rng::seed_from_u64(0);
        let c = cfg(json!({"lr": 0.01}));
        let v = |id| TrialView { id: TrialId(id), config: &c, has_checkpoint: true };
        let r = |progress, queued| SchedResult { progress, score: Some(1.0), queued };
        assert_eq!(s.on_result(&v(0), &r(4.0, 3), &mut rng), Decision::Continue, "mid-interval");
        assert_eq!(s.on_result(&v(0), &r(5.0, 3), &mut rng), Decision::Pause);
        assert_eq!(s.on_result(&v(1), &r(5.0, 0), &mut rng), Decision::Continue, "nobody waits");
        s.on_result(&v(2), &r(2.0, 0), &mut rng);
        assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(2), TrialId(7)]), Some(TrialId(7)));
        assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(2)]), Some(TrialId(2)));
        let no_ckpt = TrialView { id: TrialId(3), config: &c, has_checkpoint: false };
        assert_eq!(s.on_result(&no_ckpt, &r(5.0, 3), &mut rng), Decision::Continue, "would start over");
    }

    #[test]
    fn missing_metric_and_custom_explore_note() {
        let mut s = pbt(json!({"require_attrs": false}));
        let c = cfg(json!({"lr": 0.01}));
        let v = TrialView { id: TrialId(0), config: &c, has_checkpoint: true };
        let mut rng = Rng::seed_from_u64(0);
        assert_eq!(
            s.on_result(&v, &SchedResult { progress: 9.0, score: None, queued: 0 }, &mut rng),
            Decision::Continue
        );
        let mut s = pbt(json!({}));
        let d = s.on_result(&v, &SchedResult { progress: 9.0, score: None, queued: 0 }, &mut rng);
        assert!(matches!(d, Decision::Stop { reason } if reason.contains("require_attrs")));
        let mut s = pbt(json!({"custom_explore_fn": true, "quantile_fraction": 0.5}));
        let c1 = cfg(json!({"lr": 0.02}));
        let top = TrialView { id: TrialId(1), config: &c1, has_checkpoint: true };
        s.on_result(&top, &SchedResult { progress: 5.0, score: Some(2.0), queued: 0 }, &mut rng);
        let d = s.on_result(&v, &SchedResult { progress: 5.0, score: Some(1.0), queued: 0 }, &mut rng);
        assert!(matches!(d, Decision::Exploit { note, .. } if note.ends_with("; then custom_explore_fn")));
    }

    #[test]
    fn fill_config_samples_missing_hyperparameters() {
        let s = pbt(json!({"hyperparam_mutations": {"lr": {"uniform": [0.1, 0.2]}, "b": [1, 2]}}));
        let mut c = cfg(json!({"b": 2}));
        assert!(s.fill_config(&mut c, &mut Rng::seed_from_u64(0)));
        assert!((0.1..0.2).contains(&c["lr"].as_f64().unwrap()));
        assert_eq!(c["b"], json!(2));
    }

    /// Synchronous mode: three trials wait at the boundary; the fourth, arriving last, ranks all
    /// four there. Its own exploit (if any) is its decision; the held ones' come from take_exploits.
    #[test]
    fn synchronous_barrier_holds_then_perturbs_everyone_at_once() {
        let mut s = pbt(json!({"synch": true}));
        let mut rng = Rng::seed_from_u64(3);
        let configs: Vec<Config> = (0..4).map(|i| cfg(json!({"lr": 0.001 * (i + 1) as f64}))).collect();
        let views: Vec<TrialView> =
            (0..4).map(|i| TrialView { id: TrialId(i as u64), config: &configs[i], has_checkpoint: true }).collect();
        for v in &views {
            s.on_trial_add(v, &mut rng);
        }
        let r = |progress, score| SchedResult { progress, score: Some(score), queued: 0 };
        // Mid-interval results pass; at the boundary the first three wait, even with nobody queued.
        assert_eq!(s.on_result(&views[1], &r(3.0, 0.1), &mut rng), Decision::Continue);
        for (i, score) in [(1, 0.1), (0, 0.9), (2, 0.5)] {
            assert_eq!(s.on_result(&views[i], &r(5.0, score), &mut rng), Decision::Pause, "trial {i}");
        }
        assert!(s.take_exploits().is_empty(), "nothing decided before everyone arrives");
        // Held trials are not chosen while the barrier stands.
        assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(1), TrialId(2)]), None);
        // Trial 3 arrives last with the second-best score: it continues, and trial 1 (the worst)
        // is told to clone trial 0 (the best) through take_exploits.
        assert_eq!(s.on_result(&views[3], &r(5.0, 0.7), &mut rng), Decision::Continue);
        let ex = s.take_exploits();
        assert_eq!(ex.len(), 1, "{ex:?}");
        let (t, donor, config, note) = &ex[0];
        assert_eq!((*t, *donor), (TrialId(1), TrialId(0)));
        assert!((0.0001..0.02).contains(&config["lr"].as_f64().unwrap()) && note.starts_with("lr: 0.001 -> "));
        assert!(s.take_exploits().is_empty(), "handed over once");
        assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(2)]), Some(TrialId(0)), "the barrier is open");
        // When the reporter itself is worst at the next boundary, its exploit is its decision.
        for (i, score) in [(0, 0.9), (1, 0.8), (2, 0.7)] {
            assert_eq!(s.on_result(&views[i], &r(10.0, score), &mut rng), Decision::Pause);
        }
        assert!(matches!(s.on_result(&views[3], &r(10.0, 0.1), &mut rng), Decision::Exploit { donor: TrialId(0), .. }));
        assert!(s.take_exploits().is_empty());
        // A trial that ends while the others wait opens the barrier (without perturbing).
        for v in &views[..3] {
            assert_eq!(s.on_result(v, &r(15.0, 0.5), &mut rng), Decision::Pause);
        }
        s.on_trial_complete(TrialId(3), TrialEnd::Completed, None);
        assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(1), TrialId(2)]), Some(TrialId(0)));
        assert!(s.take_exploits().is_empty());
    }
}
