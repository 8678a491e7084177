//! Replaying one trial's PBT schedule (Ray Tune's `PopulationBasedTrainingReplay`).
//!
//! PBT yields a schedule of configs rather than one config. Given that schedule (the change
//! points of a policy log, parsed by the controller: `{"iteration", "config"}` in order, plus the
//! config the trial started with), a single trial follows it: when its `training_iteration`
//! reaches the next change point it continues from its own latest checkpoint with that point's
//! config (`Decision::Exploit` with itself as the donor). One change is applied per result, as in
//! Ray, so every logged step is replayed even when two share an iteration.
//!
//! Ray saves a checkpoint at each change; here the trial's own latest checkpoint is cloned, so
//! the trainable should checkpoint at the change points. A change reached before the trial has
//! any checkpoint waits for its first one. Ray refuses a second trial; here any trial other than
//! the first one seen is stopped with a reason. The controller starts the trial with
//! `initial_config` (Ray overwrites the trial's config with it when the trial is added).

use crate::pbt::population::config_error;
use crate::{Config, Decision, Rng, SchedResult, SchedulerConfigError, TrialId, TrialScheduler, TrialView};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One change point: from `iteration` on, the trial runs with `config`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleStep {
    /// The `training_iteration` at which the config changes (the donor's checkpoint iteration).
    pub iteration: f64,
    /// The full config from then on.
    pub config: Config,
}

/// The replay's settings: the schedule read from a policy log.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PbtReplayConfig {
    /// The config the trial starts with (the first logged step's old config).
    pub initial_config: Config,
    /// The change points, in order of iteration.
    pub schedule: Vec<ScheduleStep>,
}

impl PbtReplayConfig {
    /// Checks the schedule (finite, non-negative iterations in order) and builds the scheduler.
    pub fn build(&self) -> Result<PbtReplay, SchedulerConfigError> {
        let mut previous = 0.0;
        for (i, step) in self.schedule.iter().enumerate() {
            let it = step.iteration;
            if !(it.is_finite() && it >= 0.0) {
                return Err(config_error(
                    format!("schedule[{i}].iteration"),
                    format!("expected a number >= 0, got {it}"),
                ));
            }
            if it < previous {
                return Err(config_error(
                    format!("schedule[{i}].iteration"),
                    format!("change points must be in order of iteration: {it} comes after {previous}"),
                ));
            }
            previous = it;
        }
        Ok(PbtReplay { schedule: self.schedule.clone(), next: 0, trial: None })
    }

    /// The result key that measures progress: Ray's replay always counts `training_iteration`.
    pub fn time_attr(&self) -> &str {
        "training_iteration"
    }

    /// The replay ranks nothing, so it has no objective of its own.
    pub fn objective(&self) -> Option<(&str, bool)> {
        None
    }
}

/// The running replay scheduler.
#[derive(Clone, Debug)]
pub struct PbtReplay {
    schedule: Vec<ScheduleStep>,
    next: usize,
    trial: Option<TrialId>,
}

impl PbtReplay {
    /// How many change points have been applied.
    pub fn applied(&self) -> usize {
        self.next
    }
}

impl TrialScheduler for PbtReplay {
    fn on_trial_add(&mut self, trial: &TrialView<'_>, _rng: &mut Rng) {
        self.trial.get_or_insert(trial.id);
    }

    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, _rng: &mut Rng) -> Decision {
        let followed = *self.trial.get_or_insert(trial.id);
        if followed != trial.id {
            return Decision::Stop {
                reason: format!("PBT replay follows one trial ({}); set num_samples = 1", followed.0),
            };
        }
        let Some(step) = self.schedule.get(self.next) else { return Decision::Continue };
        let reached = result.progress >= step.iteration;
        if !reached || !trial.has_checkpoint {
            return Decision::Continue;
        }
        self.next += 1;
        let mut changes = Vec::new();
        diff(trial.config, &step.config, &mut Vec::new(), &mut changes);
        let changes = if changes.is_empty() { "no change".to_string() } else { changes.join("; ") };
        let note =
            format!("replay step {}/{} (iteration {}): {changes}", self.next, self.schedule.len(), step.iteration);
        Decision::Exploit { donor: trial.id, config: step.config.clone(), note }
    }
}

/// The leaves that differ between `old` and `new`, as `path: old -> new`.
fn diff(old: &Config, new: &Config, path: &mut Vec<String>, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = old.keys().chain(new.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        path.push(k.clone());
        match (old.get(k), new.get(k)) {
            (Some(Value::Object(a)), Some(Value::Object(b))) => diff(a, b, path, out),
            (a, b) if a != b => {
                let show = |v: Option<&Value>| v.map_or_else(|| "(missing)".to_string(), Value::to_string);
                out.push(format!("{}: {} -> {}", path.join("."), show(a), show(b)));
            }
            _ => {}
        }
        path.pop();
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

    fn replay(steps: Value) -> PbtReplay {
        let c: PbtReplayConfig =
            serde_json::from_value(json!({"initial_config": {"lr": 0.1}, "schedule": steps})).unwrap();
        c.build().unwrap()
    }

    #[test]
    fn follows_the_schedule_one_step_per_result() {
        let mut s = replay(json!([
            {"iteration": 3, "config": {"lr": 0.2, "o": {"m": 1}}},
            {"iteration": 3, "config": {"lr": 0.3, "o": {"m": 1}}},
            {"iteration": 6, "config": {"lr": 0.4, "o": {"m": 2}}},
        ]));
        let mut rng = Rng::seed_from_u64(0);
        let mut config = cfg(json!({"lr": 0.1, "o": {"m": 1}}));
        let mut out = Vec::new();
        for it in 1..=8 {
            let v = TrialView { id: TrialId(4), config: &config, has_checkpoint: it >= 2 };
            let d = s.on_result(&v, &SchedResult { progress: it as f64, score: None, queued: 0 }, &mut rng);
            if let Decision::Exploit { donor, config: c, note } = d {
                assert_eq!(donor, TrialId(4));
                out.push((it, note));
                config = c;
            }
        }
        assert_eq!(
            out,
            vec![
                (3, "replay step 1/3 (iteration 3): lr: 0.1 -> 0.2".to_string()),
                (4, "replay step 2/3 (iteration 3): lr: 0.2 -> 0.3".to_string()),
                (6, "replay step 3/3 (iteration 6): lr: 0.3 -> 0.4; o.m: 1 -> 2".to_string()),
            ]
        );
        assert_eq!(s.applied(), 3);
    }

    #[test]
    fn waits_for_a_checkpoint_and_stops_extra_trials() {
        let mut s = replay(json!([{"iteration": 1, "config": {"lr": 0.2}}]));
        let mut rng = Rng::seed_from_u64(0);
        let c = cfg(json!({"lr": 0.1}));
        let r = SchedResult { progress: 2.0, score: Some(1.0), queued: 0 };
        s.on_trial_add(&TrialView { id: TrialId(0), config: &c, has_checkpoint: false }, &mut rng);
        let no = TrialView { id: TrialId(0), config: &c, has_checkpoint: false };
        assert_eq!(s.on_result(&no, &r, &mut rng), Decision::Continue);
        let yes = TrialView { id: TrialId(0), config: &c, has_checkpoint: true };
        assert!(matches!(s.on_result(&yes, &r, &mut rng), Decision::Exploit { .. }));
        assert_eq!(s.on_result(&yes, &r, &mut rng), Decision::Continue, "schedule done");
        let other = TrialView { id: TrialId(1), config: &c, has_checkpoint: true };
        assert!(matches!(s.on_result(&other, &r, &mut rng), Decision::Stop { .. }));
    }

    #[test]
    fn schedule_must_be_ordered() {
        let c: PbtReplayConfig = serde_json::from_value(json!({"schedule": [
            {"iteration": 5, "config": {}}, {"iteration": 4, "config": {}},
        ]}))
        .unwrap();
        let e = c.build().unwrap_err();
        assert_eq!(e.field, "schedule[1].iteration");
        assert_eq!(e.message, "change points must be in order of iteration: 4 comes after 5");
        let c: PbtReplayConfig =
            serde_json::from_value(json!({"schedule": [{"iteration": -1, "config": {}}]})).unwrap();
        assert_eq!(c.build().unwrap_err().field, "schedule[0].iteration");
        assert!(serde_json::from_value::<PbtReplayConfig>(json!({"policy_file": "x"})).is_err());
        assert_eq!(PbtReplayConfig::default().time_attr(), "training_iteration");
        assert_eq!(PbtReplayConfig::default().objective(), None);
    }
}
