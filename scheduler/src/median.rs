//! Ray Tune's `MedianStoppingRule` (the Vizier paper's median rule): past the grace period, a
//! trial whose best score so far is worse than the median of the other trials' running means up
//! to the same time stops (or pauses, with `hard_stop = false`).
//!
//! As in Ray 2.x (checked against Ray 2.60 by `tests/ray_differential.rs`): "other trials" are all
//! trials, running or finished, whose latest recorded result is at or past the current time, not
//! only completed ones; a running mean averages an other trial's results between the grace period
//! and the current time, and means that are NaN or infinite are left out; the best score folds the
//! way Python's `max` does, so a NaN first result stays the best and stops the trial once there are
//! enough samples; a trial's last result is recorded again when it completes or is stopped; a
//! result without the metric is ignored; a trial with too few samples yields (pauses) when other
//! trials wait (`queued > 0`) and at least `min_time_slice` has passed since it last yielded.
//!
//! Departures, forced by trials being created lazily here (Ray creates pending trials ahead):
//! `choose_trial_to_run` resumes yielded and pending trials first-in first-out before a new trial
//! starts (Ray starts pending trials first); trials paused by the rule (`hard_stop = false`) are
//! never chosen, so new trials start instead, and when none can start the controller ends them
//! (Ray resumes them first-in first-out once nothing else is left).

use crate::asha::{check_objective, check_time_attr, config_error, np_sum, num, objective_of, Label};
use crate::{Decision, Rng, SchedResult, SchedulerConfigError, TrialEnd, TrialId, TrialScheduler, TrialView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Ray's `MedianStoppingRule` parameters, with Ray's names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MedianStoppingConfig {
    /// Result key measuring progress (monotonic).
    pub time_attr: String,
    /// Metric to judge trials by, overriding the experiment's (needs `mode`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `"min"` or `"max"` for `metric`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// No trial stops before this progress; running means start here.
    pub grace_period: f64,
    /// Fewest other trials' running means needed to judge.
    pub min_samples_required: usize,
    /// Least progress between two yields of one trial.
    pub min_time_slice: f64,
    /// Stop trials below the median (`false`: pause them).
    pub hard_stop: bool,
}

impl Default for MedianStoppingConfig {
    fn default() -> Self {
        MedianStoppingConfig {
            time_attr: "time_total_s".into(),
            metric: None,
            mode: None,
            grace_period: 60.0,
            min_samples_required: 3,
            min_time_slice: 0.0,
            hard_stop: true,
        }
    }
}

impl MedianStoppingConfig {
    /// Validates the configuration and builds the scheduler.
    pub fn build(&self) -> Result<MedianStopping, SchedulerConfigError> {
        check_time_attr(&self.time_attr)?;
        check_objective(&self.metric, &self.mode)?;
        if !(self.grace_period.is_finite() && self.grace_period >= 0.0) {
            return Err(config_error("grace_period", format!("expected a number ≥ 0, got {}", self.grace_period)));
        }
        if self.min_samples_required == 0 {
            // Ray would take the median of nothing (NaN) and stop every trial.
            return Err(config_error("min_samples_required", "expected a positive integer, got 0"));
        }
        if !(self.min_time_slice.is_finite() && self.min_time_slice >= 0.0) {
            return Err(config_error("min_time_slice", format!("expected a number ≥ 0, got {}", self.min_time_slice)));
        }
        Ok(MedianStopping {
            grace: self.grace_period,
            min_samples: self.min_samples_required,
            min_time_slice: self.min_time_slice,
            hard_stop: self.hard_stop,
            results: BTreeMap::new(),
            stopped: BTreeSet::new(),
            last_pause: BTreeMap::new(),
            label: Label::new(&self.metric, &self.mode),
        })
    }

    /// The result key that measures progress.
    pub fn time_attr(&self) -> &str {
        &self.time_attr
    }

    /// `(metric, higher_is_better)` when this scheduler overrides the experiment's objective.
    pub fn objective(&self) -> Option<(&str, bool)> {
        objective_of(&self.metric, &self.mode)
    }
}

/// Ray's `MedianStoppingRule` at run time (built by [`MedianStoppingConfig::build`]).
#[derive(Clone, Debug)]
pub struct MedianStopping {
    grace: f64,
    min_samples: usize,
    min_time_slice: f64,
    hard_stop: bool,
    /// Every recorded `(progress, score)` per trial, in order.
    results: BTreeMap<TrialId, Vec<(f64, f64)>>,
    /// Trials the rule has stopped or paused.
    stopped: BTreeSet<TrialId>,
    /// Progress at which each trial last yielded.
    last_pause: BTreeMap<TrialId, f64>,
    label: Label,
}

/// `np.median` of finite values, bit for bit.
pub fn np_median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        np_sum(&v[n / 2 - 1..n / 2 + 1]) / 2.0
    }
}

impl MedianStopping {
    /// `np.mean` of the trial's scores between the grace period and `time` (NaN when none).
    fn running_mean(&self, scores: &[(f64, f64)], time: f64) -> f64 {
        let scoped: Vec<f64> = scores.iter().filter(|(t, _)| self.grace <= *t && *t <= time).map(|(_, s)| *s).collect();
        if scoped.is_empty() {
            return f64::NAN;
        }
        np_sum(&scoped) / scoped.len() as f64
    }
}

impl TrialScheduler for MedianStopping {
    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, _rng: &mut Rng) -> Decision {
        let Some(score) = result.score else { return Decision::Continue };
        if self.stopped.contains(&trial.id) {
            return Decision::Continue; // paused by the rule and resumed: runs on unjudged
        }
        let time = result.progress;
        let mine = self.results.entry(trial.id).or_default();
        mine.push((time, score));
        if time < self.grace {
            return Decision::Continue;
        }
        // Python's max/min: the first value, replaced only by a strictly better one.
        let best = mine.iter().skip(1).fold(mine[0].1, |b, &(_, s)| if s > b { s } else { b });
        let means: Vec<f64> = self
            .results
            .iter()
            .filter(|(id, r)| **id != trial.id && r.last().is_some_and(|l| l.0 >= time))
            .map(|(_, r)| self.running_mean(r, time))
            .filter(|m| m.is_finite())
            .collect();
        if means.len() < self.min_samples {
            let last = self.last_pause.get(&trial.id).copied().unwrap_or(f64::NEG_INFINITY);
            if time - last > self.min_time_slice && result.queued > 0 {
                self.last_pause.insert(trial.id, time);
                return Decision::Pause;
            }
            return Decision::Continue;
        }
        let n = means.len();
        let median = np_median(means);
        // Ray: `compare_op(median, best) != best`.
        if best > median || median == best {
            return Decision::Continue;
        }
        self.stopped.insert(trial.id);
        if !self.hard_stop {
            return Decision::Pause;
        }
        let reason = format!(
            "t={}: best {} worse than the median {} of {n} other trials' running means",
            num(time),
            self.label.show(best),
            num(self.label.value(median)),
        );
        Decision::Stop { reason }
    }

    fn on_trial_complete(&mut self, trial: TrialId, end: TrialEnd, last: Option<&SchedResult>) {
        // Ray records the last result again on completion and stop; errors change nothing.
        if end == TrialEnd::Failed {
            return;
        }
        if let Some((t, Some(s))) = last.map(|l| (l.progress, l.score)) {
            self.results.entry(trial).or_default().push((t, s));
        }
    }

    fn choose_trial_to_run(&mut self, waiting: &[TrialId]) -> Option<TrialId> {
        waiting.iter().find(|t| !self.stopped.contains(t)).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rule(grace: f64, min_samples: usize, hard_stop: bool) -> MedianStopping {
        MedianStoppingConfig {
            grace_period: grace,
            min_samples_required: min_samples,
            hard_stop,
            metric: Some("loss".into()),
            mode: Some("min".into()),
            ..Default::default()
        }
        .build()
        .unwrap()
    }

    /// Reports `loss` (the scheduler sees `-loss`).
    fn report(s: &mut MedianStopping, id: u64, t: f64, loss: f64, queued: usize) -> Decision {
        let cfg = Default::default();
        let view = TrialView { id: TrialId(id), config: &cfg, has_checkpoint: false };
        s.on_result(&view, &SchedResult { progress: t, score: Some(-loss), queued }, &mut Rng::seed_from_u64(0))
    }

    #[test]
    fn stops_below_the_median_of_running_means() {
        let mut s = rule(1.0, 2, true);
        // Trial 0: losses 1, 3 at t=1,2 -> running mean at t=2: 2. Trial 1: 2, 4 -> mean 3.
        for (id, a, b) in [(0, 1.0, 3.0), (1, 2.0, 4.0)] {
            assert_eq!(report(&mut s, id, 1.0, a, 0), Decision::Continue);
            assert_eq!(report(&mut s, id, 2.0, b, 0), Decision::Continue);
        }
        // Median of [2, 3] = 2.5: best loss 2.4 survives; then median of [2, 2.4, 3] = 2.4.
        assert_eq!(report(&mut s, 2, 2.0, 2.4, 0), Decision::Continue);
        assert_eq!(
            report(&mut s, 3, 2.0, 2.6, 0),
            Decision::Stop {
                reason: "t=2: best loss 2.6 worse than the median 2.4 of 3 other trials' running means".into()
            }
        );
    }

    #[test]
    fn before_grace_and_with_few_samples_it_continues_or_yields() {
        let mut s = rule(5.0, 2, true);
        assert_eq!(report(&mut s, 0, 4.0, 9.0, 3), Decision::Continue); // before grace
        assert_eq!(report(&mut s, 0, 5.0, 9.0, 0), Decision::Continue); // nobody waits
        assert_eq!(report(&mut s, 0, 6.0, 9.0, 1), Decision::Pause); // yields to a waiting trial
        assert_eq!(s.choose_trial_to_run(&[TrialId(0)]), Some(TrialId(0)));
    }

    #[test]
    fn min_time_slice_spaces_yields() {
        let mut s =
            MedianStoppingConfig { grace_period: 0.0, min_time_slice: 10.0, ..Default::default() }.build().unwrap();
        let cfg = Default::default();
        let view = TrialView { id: TrialId(0), config: &cfg, has_checkpoint: false };
        let mut rng = Rng::seed_from_u64(0);
        let mut at = |t: f64| s.on_result(&view, &SchedResult { progress: t, score: Some(1.0), queued: 1 }, &mut rng);
        assert_eq!(at(1.0), Decision::Pause); // 1 - (-inf) > 10
        assert_eq!(at(5.0), Decision::Continue); // 4 since the last yield
        assert_eq!(at(11.5), Decision::Pause);
    }

    #[test]
    fn only_trials_that_got_as_far_count_and_means_start_at_grace() {
        let mut s = rule(2.0, 1, true);
        report(&mut s, 0, 1.0, 100.0, 0); // before grace: not in the mean
        report(&mut s, 0, 2.0, 1.0, 0);
        report(&mut s, 0, 3.0, 3.0, 0); // mean at t=3: 2
        report(&mut s, 1, 1.0, 0.0, 0); // last at t=1 < 3: not counted
        assert_eq!(report(&mut s, 2, 3.0, 2.0, 0), Decision::Continue); // 2 == median: survives
        assert!(matches!(report(&mut s, 3, 3.0, 2.01, 0), Decision::Stop { .. }));
    }

    #[test]
    fn completion_records_the_last_result_again() {
        let mut s = rule(0.0, 1, true);
        report(&mut s, 0, 1.0, 1.0, 0);
        report(&mut s, 0, 2.0, 4.0, 0);
        let last = SchedResult { progress: 2.0, score: Some(-4.0), queued: 0 };
        s.on_trial_complete(TrialId(0), TrialEnd::Completed, Some(&last));
        // mean of [1, 4, 4] at t=2 is 3: a trial with best loss 3.1 stops, 3 survives.
        assert_eq!(report(&mut s, 1, 2.0, 3.0, 0), Decision::Continue);
        assert!(matches!(report(&mut s, 2, 2.0, 3.1, 0), Decision::Stop { .. }));
        s.on_trial_complete(TrialId(1), TrialEnd::Failed, Some(&last)); // errors record nothing
        assert_eq!(s.results[&TrialId(1)].len(), 1);
    }

    #[test]
    fn soft_stop_pauses_once_and_is_not_chosen() {
        let mut s = rule(0.0, 1, false);
        report(&mut s, 0, 1.0, 1.0, 0);
        assert_eq!(report(&mut s, 1, 1.0, 5.0, 0), Decision::Pause);
        assert_eq!(report(&mut s, 1, 2.0, 50.0, 0), Decision::Continue); // resumed: never judged again
        assert_eq!(s.choose_trial_to_run(&[TrialId(1), TrialId(7)]), Some(TrialId(7)));
        assert_eq!(s.choose_trial_to_run(&[TrialId(1)]), None);
    }

    #[test]
    fn infinite_running_means_are_left_out() {
        let mut s = rule(0.0, 1, true);
        report(&mut s, 0, 1.0, f64::NEG_INFINITY, 0); // loss -inf: running mean +inf, left out
        assert_eq!(report(&mut s, 1, 1.0, 0.5, 0), Decision::Continue); // no sample left: no judgement
        report(&mut s, 2, 1.0, 0.25, 0);
        // Median of the finite means [0.5, 0.25]: 0.375, beaten by a best loss of 0.5.
        assert!(matches!(report(&mut s, 3, 1.0, 0.5, 0), Decision::Stop { .. }));
    }

    #[test]
    fn a_nan_first_result_stays_best_and_stops() {
        let mut s = rule(0.0, 1, true);
        report(&mut s, 0, 1.0, 1.0, 0);
        report(&mut s, 1, 0.5, f64::NAN, 0);
        assert!(matches!(report(&mut s, 1, 1.0, 0.0, 0), Decision::Stop { .. }));
    }

    #[test]
    fn config_is_validated_with_field_names() {
        let bad = |c: MedianStoppingConfig| c.build().unwrap_err().field;
        assert_eq!(bad(MedianStoppingConfig { grace_period: -1.0, ..Default::default() }), "grace_period");
        assert_eq!(bad(MedianStoppingConfig { min_samples_required: 0, ..Default::default() }), "min_samples_required");
        assert_eq!(bad(MedianStoppingConfig { min_time_slice: f64::NAN, ..Default::default() }), "min_time_slice");
        assert_eq!(bad(MedianStoppingConfig { metric: Some("m".into()), ..Default::default() }), "mode");
        let c: MedianStoppingConfig = serde_json::from_str(r#"{"grace_period": 3, "hard_stop": false}"#).unwrap();
        assert_eq!((c.time_attr(), c.objective(), c.hard_stop), ("time_total_s", None, false));
    }
}
