//! The ASHA paper's promotion algorithm (Li et al., "A System for Massively Parallel
//! Hyperparameter Tuning", MLSys 2020, Algorithm 2), which Ray Tune lacks: a trial reaching a
//! rung pauses there with its score recorded; when capacity frees, the best promotable paused
//! trial (highest rung first, then best score) resumes from its checkpoint towards the next rung;
//! only when none is promotable does a new trial start (`choose_trial_to_run` returns `None`).
//!
//! Rungs sit at `grace_period * rf^k` below `max_t`; a trial reaching `max_t` stops. A trial is
//! promotable from rung `k` when it is in the top `⌊n/rf⌋` of the `n` scores recorded there
//! (ties: lower trial id first; NaN ranks last and is never promoted), has not been promoted from
//! it, and fewer than `⌊n/rf⌋` trials have been promoted from that rung. The last condition, not in
//! the paper, caps every rung at its successive-halving share: without it a trial that fell out of
//! the top after being promoted would leave room for another. One bracket is supported.

use crate::asha::{check_objective, check_time_attr, config_error, num, objective_of};
use crate::{Decision, Rng, SchedResult, SchedulerConfigError, TrialEnd, TrialId, TrialScheduler, TrialView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The most rungs allowed (a reduction factor barely above 1 would make millions).
const MAX_RUNGS: usize = 1000;

/// Parameters of the promotion scheduler, named as Ray's `ASHAScheduler`'s.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AshaPromotionConfig {
    /// Result key measuring progress (monotonic).
    pub time_attr: String,
    /// Metric to rank trials by, overriding the experiment's (needs `mode`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `"min"` or `"max"` for `metric`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Progress at which trials stop.
    pub max_t: f64,
    /// Progress of the first rung.
    pub grace_period: f64,
    /// Rung spacing; the top `1/rf` of a rung is promoted.
    pub reduction_factor: f64,
    /// Number of brackets: only 1 is supported.
    pub brackets: usize,
}

impl Default for AshaPromotionConfig {
    fn default() -> Self {
        AshaPromotionConfig {
            time_attr: "training_iteration".into(),
            metric: None,
            mode: None,
            max_t: 100.0,
            grace_period: 1.0,
            reduction_factor: 4.0,
            brackets: 1,
        }
    }
}

impl AshaPromotionConfig {
    /// Validates the configuration and builds the scheduler.
    pub fn build(&self) -> Result<AshaPromotion, SchedulerConfigError> {
        check_time_attr(&self.time_attr)?;
        check_objective(&self.metric, &self.mode)?;
        if !(self.max_t.is_finite() && self.max_t > 0.0) {
            return Err(config_error("max_t", format!("expected a positive number, got {}", self.max_t)));
        }
        if !(self.grace_period.is_finite() && self.grace_period > 0.0 && self.grace_period <= self.max_t) {
            return Err(config_error(
                "grace_period",
                format!("expected a positive number at most max_t ({}), got {}", self.max_t, self.grace_period),
            ));
        }
        if !(self.reduction_factor.is_finite() && self.reduction_factor > 1.0) {
            return Err(config_error(
                "reduction_factor",
                format!("expected a number greater than 1, got {}", self.reduction_factor),
            ));
        }
        if self.brackets != 1 {
            return Err(config_error("brackets", format!("only 1 bracket is supported, got {}", self.brackets)));
        }
        let mut rungs = Vec::new();
        loop {
            let milestone = self.grace_period * self.reduction_factor.powf(rungs.len() as f64);
            if milestone >= self.max_t {
                break;
            }
            if rungs.len() == MAX_RUNGS {
                return Err(config_error(
                    "reduction_factor",
                    format!("too close to 1 for max_t/grace_period: more than {MAX_RUNGS} rungs"),
                ));
            }
            rungs.push(Rung { milestone, recorded: BTreeMap::new(), promoted: BTreeSet::new() });
        }
        Ok(AshaPromotion {
            max_t: self.max_t,
            eta: self.reduction_factor,
            rungs,
            trials: BTreeMap::new(),
            exhausted: false,
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

/// One rung: its milestone, the scores recorded there and the trials promoted from it.
#[derive(Clone, Debug)]
struct Rung {
    milestone: f64,
    recorded: BTreeMap<TrialId, f64>,
    promoted: BTreeSet<TrialId>,
}

/// Where a trial stands.
#[derive(Clone, Copy, Debug, Default)]
struct Trial {
    /// The rung it waits at, when paused there.
    paused_at: Option<usize>,
    /// The first rung it has not reached yet.
    next: usize,
    /// It has ended and can no longer run.
    ended: bool,
}

/// The ASHA paper's promotion scheduler at run time (built by [`AshaPromotionConfig::build`]).
#[derive(Clone, Debug)]
pub struct AshaPromotion {
    max_t: f64,
    eta: f64,
    rungs: Vec<Rung>,
    trials: BTreeMap<TrialId, Trial>,
    /// The searcher has no more configs: rungs then promote `⌈n/rf⌉` instead of `⌊n/rf⌋`.
    exhausted: bool,
}

impl AshaPromotion {
    /// Rung milestones, lowest first.
    pub fn milestones(&self) -> Vec<f64> {
        self.rungs.iter().map(|r| r.milestone).collect()
    }

    /// Scores recorded at rung `k` (empty past the last rung).
    pub fn recorded(&self, k: usize) -> Vec<(TrialId, f64)> {
        self.rungs.get(k).map(|r| r.recorded.iter().map(|(t, s)| (*t, *s)).collect()).unwrap_or_default()
    }

    /// Trials promoted from rung `k`.
    pub fn promoted(&self, k: usize) -> Vec<TrialId> {
        self.rungs.get(k).map(|r| r.promoted.iter().copied().collect()).unwrap_or_default()
    }

    /// How many trials rung `k` may promote: `⌊n/rf⌋` of its `n` recorded scores while new
    /// configs keep coming (the paper's rule); `⌈n/rf⌉` once the searcher is exhausted, so that
    /// with a finite number of configs the best of every rung still goes on and at least one
    /// trial reaches `max_t` (with `⌊n/rf⌋`, a rung of fewer than `rf` trials promotes nobody).
    pub fn quota(&self, k: usize) -> usize {
        self.rungs.get(k).map_or(0, |r| {
            let x = r.recorded.len() as f64 / self.eta;
            (if self.exhausted { x.ceil() } else { x.floor() }) as usize
        })
    }

    /// The rung a trial is paused at, if any.
    pub fn paused_at(&self, trial: TrialId) -> Option<usize> {
        self.trials.get(&trial).filter(|t| !t.ended).and_then(|t| t.paused_at)
    }

    /// Whether `trial`, paused at rung `k`, may be promoted now.
    pub fn is_promotable(&self, trial: TrialId, k: usize) -> bool {
        let Some(rung) = self.rungs.get(k) else { return false };
        let Some(&score) = rung.recorded.get(&trial) else { return false };
        let quota = self.quota(k);
        if score.is_nan() || rung.promoted.contains(&trial) || rung.promoted.len() >= quota {
            return false;
        }
        // Rank: trials with a better score, or an equal one and a lower id, come first.
        let ahead = rung.recorded.iter().filter(|(t, s)| **s > score || (**s == score && **t < trial)).count();
        ahead < quota
    }
}

impl TrialScheduler for AshaPromotion {
    fn on_no_more_trials(&mut self) {
        self.exhausted = true;
    }

    fn on_trial_add(&mut self, trial: &TrialView<'_>, _rng: &mut Rng) {
        self.trials.entry(trial.id).or_default();
    }

    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, _rng: &mut Rng) -> Decision {
        let state = self.trials.entry(trial.id).or_default();
        if let Some(k) = state.paused_at.take() {
            // Running again: it was promoted (by us, or resumed from outside).
            self.rungs[k].promoted.insert(trial.id);
        }
        if result.progress >= self.max_t {
            return Decision::Stop { reason: format!("reached max_t={}", num(self.max_t)) };
        }
        let Some(score) = result.score else { return Decision::Continue };
        let Some(k) = (state.next..self.rungs.len()).rev().find(|&k| self.rungs[k].milestone <= result.progress) else {
            return Decision::Continue;
        };
        self.rungs[k].recorded.insert(trial.id, score);
        state.paused_at = Some(k);
        state.next = k + 1;
        Decision::Pause
    }

    fn on_trial_complete(&mut self, trial: TrialId, _end: TrialEnd, _last: Option<&SchedResult>) {
        let state = self.trials.entry(trial).or_default();
        state.ended = true;
        state.paused_at = None;
    }

    fn choose_trial_to_run(&mut self, waiting: &[TrialId]) -> Option<TrialId> {
        // 1. Promoted trials that have not run since (their start failed and they wait again).
        let mut best: Option<(usize, f64, TrialId)> = None;
        let mut pending = None;
        for &t in waiting {
            let Some(state) = self.trials.get(&t).filter(|s| !s.ended) else { continue };
            let Some(k) = state.paused_at else {
                pending = pending.or(Some(t));
                continue;
            };
            if self.rungs[k].promoted.contains(&t) {
                return Some(t);
            }
            if !self.is_promotable(t, k) {
                continue;
            }
            // 2. The highest rung, then the best score, then the lowest id.
            let score = self.rungs[k].recorded[&t];
            if best.is_none_or(|(bk, bs, _)| k > bk || (k == bk && score > bs)) {
                best = Some((k, score, t));
            }
        }
        if let Some((k, _, t)) = best {
            self.rungs[k].promoted.insert(t);
            return Some(t);
        }
        // 3. Trials that wait without being paused at a rung (e.g. requeued after a failure).
        pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sched(max_t: f64, grace: f64, rf: f64) -> AshaPromotion {
        AshaPromotionConfig { max_t, grace_period: grace, reduction_factor: rf, ..Default::default() }.build().unwrap()
    }

    fn report(s: &mut AshaPromotion, id: u64, t: f64, score: Option<f64>) -> Decision {
        let cfg = Default::default();
        let view = TrialView { id: TrialId(id), config: &cfg, has_checkpoint: true };
        s.on_result(&view, &SchedResult { progress: t, score, queued: 0 }, &mut Rng::seed_from_u64(0))
    }

    #[test]
    fn rungs_sit_below_max_t() {
        assert_eq!(sched(100.0, 1.0, 4.0).milestones(), vec![1.0, 4.0, 16.0, 64.0]);
        assert_eq!(sched(81.0, 1.0, 3.0).milestones(), vec![1.0, 3.0, 9.0, 27.0]);
        assert_eq!(sched(10.0, 10.0, 2.0).milestones(), Vec::<f64>::new());
    }

    #[test]
    fn pauses_at_rungs_and_promotes_the_top_quarter() {
        let mut s = sched(100.0, 1.0, 4.0);
        let mut waiting: Vec<TrialId> = (0..8).map(TrialId).collect();
        for (i, score) in [0.3, 0.9, 0.1, 0.5, 0.7, 0.2, 0.8, 0.4].into_iter().enumerate() {
            assert_eq!(report(&mut s, i as u64, 1.0, Some(score)), Decision::Pause);
            if i == 2 {
                assert_eq!(s.choose_trial_to_run(&waiting[..3]), None); // 3 recorded: ⌊3/4⌋ = 0
            }
        }
        // 8 recorded: quota 2, top two are 1 (0.9) and 6 (0.8).
        for want in [Some(TrialId(1)), Some(TrialId(6)), None] {
            let got = s.choose_trial_to_run(&waiting);
            assert_eq!(got, want);
            waiting.retain(|t| Some(*t) != got);
        }
        assert_eq!(s.promoted(0), vec![TrialId(1), TrialId(6)]);
        // Trial 1 resumes, runs past 2 and 3, pauses at 4.
        assert_eq!(report(&mut s, 1, 2.0, Some(0.9)), Decision::Continue);
        assert_eq!(report(&mut s, 1, 4.0, Some(0.95)), Decision::Pause);
        assert_eq!(s.paused_at(TrialId(1)), Some(1));
        assert_eq!(report(&mut s, 6, 100.0, Some(1.0)), Decision::Stop { reason: "reached max_t=100".into() });
    }

    #[test]
    fn higher_rungs_come_first_and_nan_is_never_promoted() {
        let mut s = sched(100.0, 1.0, 2.0);
        for (id, score) in [(0, 0.1), (1, 0.2), (2, f64::NAN), (3, 0.3)] {
            report(&mut s, id, 1.0, Some(score));
        }
        assert_eq!(s.choose_trial_to_run(&[TrialId(2)]), None); // NaN: never
        assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(3)]), Some(TrialId(3)));
        assert_eq!(report(&mut s, 3, 2.0, Some(0.0)), Decision::Pause); // rung 1 (t=2)
        report(&mut s, 9, 2.0, Some(5.0)); // a trial that jumped straight to rung 1
                                           // Rung 1: two scores, quota 1: trial 9 (5.0) goes before rung 0's trial 1.
        assert_eq!(s.choose_trial_to_run(&[TrialId(1), TrialId(3), TrialId(9)]), Some(TrialId(9)));
        assert_eq!(s.choose_trial_to_run(&[TrialId(1), TrialId(3)]), Some(TrialId(1)));
    }

    #[test]
    fn quota_holds_when_the_top_changes() {
        let mut s = sched(100.0, 1.0, 2.0);
        report(&mut s, 0, 1.0, Some(1.0));
        report(&mut s, 1, 1.0, Some(0.0));
        assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(1)]), Some(TrialId(0)));
        report(&mut s, 2, 1.0, Some(2.0)); // n = 3, quota 1, already used
        assert!(!s.is_promotable(TrialId(2), 0));
        report(&mut s, 3, 1.0, Some(-1.0)); // n = 4, quota 2: trial 2 is the best unpromoted
        assert_eq!(s.choose_trial_to_run(&[TrialId(1), TrialId(2), TrialId(3)]), Some(TrialId(2)));
    }

    #[test]
    fn ended_and_unknown_trials_are_skipped_and_pending_ones_run_last() {
        let mut s = sched(100.0, 1.0, 2.0);
        report(&mut s, 0, 1.0, Some(1.0));
        report(&mut s, 1, 1.0, Some(0.0));
        s.on_trial_complete(TrialId(0), TrialEnd::Stopped, None);
        assert_eq!(s.paused_at(TrialId(0)), None);
        assert_eq!(s.choose_trial_to_run(&[TrialId(0), TrialId(1), TrialId(42)]), None); // 0 held the top slot
        let cfg = Default::default();
        s.on_trial_add(&TrialView { id: TrialId(5), config: &cfg, has_checkpoint: false }, &mut Rng::seed_from_u64(0));
        assert_eq!(s.choose_trial_to_run(&[TrialId(1), TrialId(5)]), Some(TrialId(5)));
    }

    #[test]
    fn a_promoted_trial_that_waits_again_is_chosen_first() {
        let mut s = sched(100.0, 1.0, 2.0);
        report(&mut s, 0, 1.0, Some(1.0));
        report(&mut s, 1, 1.0, Some(0.0));
        assert_eq!(s.choose_trial_to_run(&[TrialId(0)]), Some(TrialId(0)));
        assert_eq!(s.choose_trial_to_run(&[TrialId(1), TrialId(0)]), Some(TrialId(0))); // start failed
        assert_eq!(s.promoted(0), vec![TrialId(0)]);
    }

    #[test]
    fn missing_metric_continues_and_config_is_validated() {
        let mut s = sched(100.0, 1.0, 2.0);
        assert_eq!(report(&mut s, 0, 1.0, None), Decision::Continue);
        let bad = |c: AshaPromotionConfig| c.build().unwrap_err().field;
        assert_eq!(bad(AshaPromotionConfig { brackets: 2, ..Default::default() }), "brackets");
        assert_eq!(bad(AshaPromotionConfig { grace_period: 0.0, ..Default::default() }), "grace_period");
        assert_eq!(bad(AshaPromotionConfig { reduction_factor: 0.5, ..Default::default() }), "reduction_factor");
        assert_eq!(bad(AshaPromotionConfig { reduction_factor: 1.000001, ..Default::default() }), "reduction_factor");
        assert_eq!(bad(AshaPromotionConfig { max_t: f64::INFINITY, ..Default::default() }), "max_t");
        let c: AshaPromotionConfig = serde_json::from_str(r#"{"metric": "loss", "mode": "min"}"#).unwrap();
        assert_eq!((c.objective(), c.time_attr()), (Some(("loss", false)), "training_iteration"));
    }

    #[test]
    fn an_exhausted_searcher_lets_the_best_of_a_small_rung_go_on() {
        use rand::SeedableRng;
        let mut s = sched(9.0, 1.0, 3.0);
        let mut rng = Rng::seed_from_u64(0);
        let cfg = crate::Config::new();
        for id in 0..2 {
            let v = TrialView { id: TrialId(id), config: &cfg, has_checkpoint: true };
            s.on_trial_add(&v, &mut rng);
            let r = SchedResult { progress: 1.0, score: Some(id as f64), queued: 0 };
            assert_eq!(s.on_result(&v, &r, &mut rng), Decision::Pause);
        }
        let waiting = [TrialId(0), TrialId(1)];
        assert_eq!(s.choose_trial_to_run(&waiting), None, "⌊2/3⌋ = 0 while configs keep coming");
        s.on_no_more_trials();
        assert_eq!(s.choose_trial_to_run(&waiting), Some(TrialId(1)), "⌈2/3⌉ = 1: the best goes on");
    }
}
