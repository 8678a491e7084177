//! ASHA that measures, while it runs, how well each rung predicts the end, and starts new trials
//! in the most aggressive bracket whose rungs can be trusted.
//!
//! Early stopping assumes that a trial's rank at a rung is its rank at `max_t`. When learning
//! curves cross (the best configs learn slowly: high learning rates look good early, large models
//! late), ASHA with a small grace period stops exactly the trials it should keep and does worse
//! than no early stopping at all. The remedy users are told to apply, a larger grace period, needs
//! knowing how much the curves cross. This scheduler finds out.
//!
//! # Rule
//!
//! The brackets are those of [`crate::Asha`] with one bracket per rung level: bracket `s` first
//! judges trials at `grace_period · rf^s`, and the last bracket, `S`, has no rung below `max_t`
//! (no early stopping). Within a bracket, stopping is Ray's ASHA rule, unchanged.
//!
//! - **Calibration.** Every other trial added (trials 0, 2, 4, ...) goes to bracket `S` until
//!   `calibration_trials` have: they train to `max_t` whatever their early scores, and compete
//!   for the best result like any trial.
//! - **Measurement.** Each trial's score is recorded at every level `m_j = grace_period · rf^j`
//!   it passes and at `max_t` (level `S`). A trial in bracket `b` is never judged below level
//!   `b`, so its scores at levels `j < k ≤ b` are an unbiased sample of how level `j` ranks
//!   against level `k` (a trial that survived a cut at `j` would not be). For each pair of levels
//!   with at least `min_pairs` such samples (the latest 64), Kendall's τ-b between the two
//!   levels' scores is computed; the trust of level `j` is the least τ between it and any later
//!   level. Only calibration trials give samples against `max_t`; trials of the working bracket
//!   add samples for the levels up to their first rung. So once calibration is over, a level's
//!   τ with the end is fixed: a level found not to predict the end is not used again.
//! - **Choice.** Every trial that is not a calibration trial goes to bracket `s*`, chosen when
//!   it is added: the lowest `s` such that every level from `s` up to `S − 1` is unmeasured or
//!   has trust at least `min_rank_correlation`. With nothing measured yet that is bracket 0
//!   (plain ASHA); on rank-consistent curves it stays there (or one rung up); on crossing curves
//!   (the trials that end best look bad early) it rises to the first rung whose order agrees
//!   with the end; when none does, new trials run to `max_t`.
//!
//! The threshold is high (0.8 by default) on purpose: curves can agree on the order of the many
//! bad trials, which dominates τ, while reversing the order of the few good ones, which is all
//! that early stopping can get wrong. Measured on synthetic crossing curves
//! (`bench/quality/lc.py`), the cost on rank-consistent curves is the calibration trials' epochs
//! and, at times, a first rung one level later than plain ASHA's.
//!
//! The state is a fold over the calls and no random number is drawn, so replaying a stored log
//! reproduces every choice. Stop reasons are ASHA's (`bracket 3, rung 0 (t=27): loss ... above
//! cut-off ...`).

use crate::asha::{check_objective, check_time_attr, config_error, objective_of, Asha, AshaConfig};
use crate::{Decision, Rng, SchedResult, SchedulerConfigError, TrialEnd, TrialId, TrialScheduler, TrialView};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// The most recent unbiased samples kept per pair of levels (τ costs `O(WINDOW²)` per sample).
const WINDOW: usize = 64;

/// `asha_adaptive` parameters (ASHA's names and defaults, plus the measurement's).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AshaAdaptiveConfig {
    /// Result key measuring progress (monotonic).
    pub time_attr: String,
    /// Metric to judge trials by, overriding the experiment's (needs `mode`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `"min"` or `"max"` for `metric`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Progress at which trials stop.
    pub max_t: f64,
    /// Progress of the lowest rung.
    pub grace_period: f64,
    /// Spacing of rungs and share of survivors (`1/rf` continue).
    pub reduction_factor: f64,
    /// Trials trained to `max_t` without early stopping to measure the rungs.
    pub calibration_trials: usize,
    /// Trials that must have scores at both of two levels before their agreement is measured.
    pub min_pairs: usize,
    /// Kendall's τ a rung needs with every later level measured to be used for stopping.
    pub min_rank_correlation: f64,
}

impl Default for AshaAdaptiveConfig {
    fn default() -> Self {
        AshaAdaptiveConfig {
            time_attr: "training_iteration".into(),
            metric: None,
            mode: None,
            max_t: 100.0,
            grace_period: 1.0,
            reduction_factor: 4.0,
            calibration_trials: 6,
            min_pairs: 5,
            min_rank_correlation: 0.8,
        }
    }
}

impl AshaAdaptiveConfig {
    /// Validates the configuration and builds the scheduler.
    pub fn build(&self) -> Result<AshaAdaptive, SchedulerConfigError> {
        check_time_attr(&self.time_attr)?;
        check_objective(&self.metric, &self.mode)?;
        if self.min_pairs < 3 {
            return Err(config_error("min_pairs", format!("expected at least 3, got {}", self.min_pairs)));
        }
        if !(self.min_rank_correlation.is_finite() && (-1.0..=1.0).contains(&self.min_rank_correlation)) {
            return Err(config_error(
                "min_rank_correlation",
                format!("expected a number in [-1, 1], got {}", self.min_rank_correlation),
            ));
        }
        let base = AshaConfig {
            time_attr: self.time_attr.clone(),
            metric: self.metric.clone(),
            mode: self.mode.clone(),
            max_t: self.max_t,
            grace_period: self.grace_period,
            reduction_factor: self.reduction_factor,
            brackets: 1,
            stop_last_trials: true,
        };
        // Validates max_t, grace_period and reduction_factor (and bounds the rung count).
        let one = base.build()?;
        // Levels below max_t; bracket S (= their count) has no rung below max_t.
        let levels: Vec<f64> = one.rung_milestones()[0].iter().copied().filter(|m| *m < self.max_t).collect();
        let full = levels.len();
        let inner = AshaConfig { brackets: full + 1, ..base }.build()?;
        Ok(AshaAdaptive {
            inner,
            max_t: self.max_t,
            calibration_trials: self.calibration_trials,
            min_pairs: self.min_pairs,
            min_tau: self.min_rank_correlation,
            added: 0,
            calibrating: 0,
            tracks: BTreeMap::new(),
            working: 0,
            notes: Vec::new(),
            pairs: vec![vec![VecDeque::new(); full + 1]; full + 1],
            tau: vec![vec![None; full + 1]; full + 1],
            levels,
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

/// What is recorded of a live trial: its bracket and its score at each level passed.
#[derive(Clone, Debug)]
struct Track {
    bracket: usize,
    /// Score at level `j` (`j = S` is `max_t`), when passed.
    at: Vec<Option<f64>>,
}

/// The adaptive scheduler at run time (built by [`AshaAdaptiveConfig::build`]).
#[derive(Clone, Debug)]
pub struct AshaAdaptive {
    inner: Asha,
    /// Milestones below `max_t`, lowest first; index `S = levels.len()` stands for `max_t`.
    levels: Vec<f64>,
    max_t: f64,
    calibration_trials: usize,
    min_pairs: usize,
    min_tau: f64,
    /// Trials added so far.
    added: usize,
    /// Calibration trials added so far.
    calibrating: usize,
    tracks: BTreeMap<TrialId, Track>,
    /// The working bracket the last non-calibration trial went to.
    working: usize,
    /// Changes of the working bracket not yet taken by the controller.
    notes: Vec<String>,
    /// `pairs[j][k]` (`j < k`): the latest unbiased `(score at j, score at k)` samples.
    pairs: Vec<Vec<VecDeque<(f64, f64)>>>,
    /// Kendall's τ-b of each pair of levels with at least `min_pairs` samples.
    tau: Vec<Vec<Option<f64>>>,
}

impl AshaAdaptive {
    /// The bracket without early stopping (`S`).
    pub fn full_bracket(&self) -> usize {
        self.levels.len()
    }

    /// Rung milestones per bracket, lowest first (as [`Asha::rung_milestones`]).
    pub fn rung_milestones(&self) -> Vec<Vec<f64>> {
        self.inner.rung_milestones()
    }

    /// The bracket a live trial belongs to.
    pub fn bracket_of(&self, trial: TrialId) -> Option<usize> {
        self.tracks.get(&trial).map(|t| t.bracket)
    }

    /// Kendall's τ-b between the scores at level `j` and at level `k > j` (`k = S` is `max_t`),
    /// once `min_pairs` unbiased samples exist.
    pub fn rank_correlation(&self, j: usize, k: usize) -> Option<f64> {
        self.tau.get(j)?.get(k).copied().flatten()
    }

    /// Level `j`'s trust: the least τ measured between it and any later level (`None`: none yet).
    pub fn trust(&self, j: usize) -> Option<f64> {
        self.tau.get(j)?.iter().skip(j + 1).flatten().copied().reduce(f64::min)
    }

    /// The bracket new (non-calibration) trials go to now: the lowest whose rungs below `max_t`
    /// are all untested or trusted.
    pub fn working_bracket(&self) -> usize {
        let full = self.full_bracket();
        let mut s = full;
        while s > 0 && self.trust(s - 1).is_none_or(|t| t >= self.min_tau) {
            s -= 1;
        }
        s
    }

    /// Why new trials move from bracket `from` to bracket `to`, for the record.
    fn why(&self, from: usize, to: usize) -> String {
        let t = |j: usize| crate::asha::num(self.levels.get(j).copied().unwrap_or(self.max_t));
        let first = if to == self.full_bracket() {
            format!("bracket {to} (no early stopping)")
        } else {
            format!("bracket {to} (first rung t={})", t(to))
        };
        let reason = if to > from {
            let j = to - 1;
            format!(
                "the scores at t={} agree with later ones only with Kendall tau {:.2} (below {})",
                t(j),
                self.trust(j).unwrap_or(f64::NAN),
                self.min_tau
            )
        } else {
            let least = (to..self.full_bracket()).filter_map(|j| self.trust(j)).reduce(f64::min);
            match least {
                Some(tau) => {
                    format!("every rung from t={} agrees with later levels (least Kendall tau {tau:.2})", t(to))
                }
                None => format!("the rungs from t={} are not measured yet", t(to)),
            }
        };
        format!("adaptive ASHA: new trials go to {first}, not bracket {from}: {reason}")
    }

    /// Records `score` at every level `progress` passes that `trial` has not recorded yet, and
    /// the unbiased pairs that completes.
    fn record(&mut self, trial: TrialId, progress: f64, score: f64) {
        let full = self.levels.len();
        let Some(track) = self.tracks.get_mut(&trial) else { return };
        for k in 0..=full {
            let milestone = if k == full { self.max_t } else { self.levels[k] };
            if progress < milestone || track.at[k].is_some() {
                continue;
            }
            track.at[k] = Some(score);
            // A trial is judged at levels from its bracket's up: what it scores there after
            // surviving a cut is a biased sample.
            if k > track.bracket || score.is_nan() {
                continue;
            }
            for j in 0..k {
                if let Some(v) = track.at[j].filter(|v| !v.is_nan()) {
                    let p = &mut self.pairs[j][k];
                    if p.len() == WINDOW {
                        p.pop_front();
                    }
                    p.push_back((v, score));
                    self.tau[j][k] = (p.len() >= self.min_pairs).then(|| kendall_tau_b(p.iter().copied())).flatten();
                }
            }
        }
    }
}

/// Kendall's τ-b of paired samples (`None` when either side is constant).
pub fn kendall_tau_b(pairs: impl IntoIterator<Item = (f64, f64)>) -> Option<f64> {
    let p: Vec<(f64, f64)> = pairs.into_iter().collect();
    let (mut concordant, mut discordant, mut tie_x, mut tie_y) = (0i64, 0i64, 0i64, 0i64);
    use std::cmp::Ordering::Equal;
    for a in 0..p.len() {
        for b in a + 1..p.len() {
            // Compared, not subtracted: two equal infinite scores (diverged losses) are a tie.
            let (Some(dx), Some(dy)) = (p[a].0.partial_cmp(&p[b].0), p[a].1.partial_cmp(&p[b].1)) else { continue };
            if dx == Equal && dy == Equal {
                tie_x += 1;
                tie_y += 1;
            } else if dx == Equal {
                tie_x += 1;
            } else if dy == Equal {
                tie_y += 1;
            } else if dx == dy {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    let n0 = (p.len() * p.len().saturating_sub(1) / 2) as i64;
    let denom = (((n0 - tie_x) as f64) * ((n0 - tie_y) as f64)).sqrt();
    (denom > 0.0).then(|| (concordant - discordant) as f64 / denom)
}

impl TrialScheduler for AshaAdaptive {
    fn on_trial_add(&mut self, trial: &TrialView<'_>, _rng: &mut Rng) {
        let full = self.full_bracket();
        let calibrate = self.calibrating < self.calibration_trials && self.added.is_multiple_of(2) && full > 0;
        let bracket = if calibrate {
            self.calibrating += 1;
            full
        } else {
            let s = self.working_bracket();
            if s != self.working {
                let note = self.why(self.working, s);
                self.notes.push(note);
                self.working = s;
            }
            s
        };
        self.added += 1;
        self.inner.assign_bracket(trial.id, bracket);
        self.tracks.insert(trial.id, Track { bracket, at: vec![None; full + 1] });
    }

    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, rng: &mut Rng) -> Decision {
        if let Some(score) = result.score {
            self.record(trial.id, result.progress, score);
        }
        self.inner.on_result(trial, result, rng)
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.notes)
    }

    fn on_trial_complete(&mut self, trial: TrialId, end: TrialEnd, last: Option<&SchedResult>) {
        if end != TrialEnd::Failed {
            if let Some((progress, score)) = last.and_then(|l| l.score.map(|s| (l.progress, s))) {
                self.record(trial, progress, score);
            }
        }
        self.tracks.remove(&trial);
        self.inner.on_trial_complete(trial, end, last);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sched(max_t: f64, grace: f64, rf: f64, calibration: usize) -> AshaAdaptive {
        AshaAdaptiveConfig {
            max_t,
            grace_period: grace,
            reduction_factor: rf,
            calibration_trials: calibration,
            metric: Some("loss".into()),
            mode: Some("min".into()),
            ..Default::default()
        }
        .build()
        .unwrap()
    }

    fn add(s: &mut AshaAdaptive, id: u64) -> usize {
        let cfg = Default::default();
        s.on_trial_add(&TrialView { id: TrialId(id), config: &cfg, has_checkpoint: false }, &mut Rng::seed_from_u64(0));
        s.bracket_of(TrialId(id)).unwrap()
    }

    fn report(s: &mut AshaAdaptive, id: u64, t: f64, loss: f64) -> Decision {
        let cfg = Default::default();
        let view = TrialView { id: TrialId(id), config: &cfg, has_checkpoint: false };
        s.on_result(&view, &SchedResult { progress: t, score: Some(-loss), queued: 0 }, &mut Rng::seed_from_u64(0))
    }

    #[test]
    fn brackets_are_one_per_level_and_the_last_never_stops_early() {
        let s = sched(81.0, 1.0, 3.0, 5);
        assert_eq!(s.full_bracket(), 4);
        let m = s.rung_milestones();
        assert_eq!(m[0], vec![1.0, 3.0, 9.0, 27.0, 81.0]);
        assert_eq!(m[3], vec![27.0, 81.0]);
        assert_eq!(m[4], vec![81.0]);
        // max_t = 100, rf = 4: levels 1, 4, 16, 64; bracket 4 has no rung at all.
        let s = sched(100.0, 1.0, 4.0, 5);
        assert_eq!(s.full_bracket(), 4);
        assert!(s.rung_milestones()[4].is_empty());
    }

    #[test]
    fn calibration_takes_every_other_trial_until_done() {
        let mut s = sched(81.0, 1.0, 3.0, 3);
        let got: Vec<usize> = (0..8).map(|i| add(&mut s, i)).collect();
        assert_eq!(got, vec![4, 0, 4, 0, 4, 0, 0, 0]);
        let mut none = sched(81.0, 1.0, 3.0, 0);
        assert!((0..4).all(|i| add(&mut none, i) == 0));
    }

    /// Calibration trials report `curve(i, t)` at every t up to 81; returns the scheduler.
    fn calibrate(curve: impl Fn(u64, f64) -> f64) -> AshaAdaptive {
        let mut s = sched(81.0, 1.0, 3.0, 6);
        for i in 0..12u64 {
            add(&mut s, i);
        }
        for i in (0..12u64).step_by(2) {
            for t in 1..=81 {
                let d = report(&mut s, i, t as f64, curve(i, t as f64));
                if t < 81 {
                    assert_eq!(d, Decision::Continue, "calibration trials run to max_t");
                }
            }
        }
        s
    }

    #[test]
    fn kendall_tau_b_by_hand() {
        assert_eq!(kendall_tau_b([(1.0, 1.0), (2.0, 2.0), (3.0, 3.0)]), Some(1.0));
        assert_eq!(kendall_tau_b([(1.0, 3.0), (2.0, 2.0), (3.0, 1.0)]), Some(-1.0));
        // (1,1) (2,3) (3,2): pairs 12 C, 13 C, 23 D → (2 - 1) / 3.
        assert!((kendall_tau_b([(1.0, 1.0), (2.0, 3.0), (3.0, 2.0)]).unwrap() - 1.0 / 3.0).abs() < 1e-15);
        // A tie in x: (1,1) (1,2) (2,3): n0 = 3, ties_x = 1, ties_y = 0, C = 2, D = 0 → 2 / √6.
        let t = kendall_tau_b([(1.0, 1.0), (1.0, 2.0), (2.0, 3.0)]).unwrap();
        assert!((t - 2.0 / 6f64.sqrt()).abs() < 1e-15);
        assert_eq!(kendall_tau_b([(1.0, 1.0), (1.0, 2.0)]), None);
        // Equal infinite scores are ties, not concordant or discordant pairs: as the tie in x above.
        let inf = f64::NEG_INFINITY;
        let t = kendall_tau_b([(inf, 1.0), (inf, 2.0), (2.0, 3.0)]).unwrap();
        assert!((t - 2.0 / 6f64.sqrt()).abs() < 1e-15);
        assert_eq!(kendall_tau_b([]), None);
    }

    #[test]
    fn nothing_measured_is_plain_asha() {
        let mut s = sched(81.0, 1.0, 3.0, 6);
        for i in 0..12u64 {
            add(&mut s, i);
        }
        assert_eq!((0..4).map(|j| s.trust(j)).collect::<Vec<_>>(), vec![None; 4]);
        assert_eq!(s.working_bracket(), 0);
    }

    #[test]
    fn consistent_curves_keep_the_first_bracket() {
        // loss = quality + decay: the order never changes.
        let s = calibrate(|i, t| i as f64 + 5.0 / t);
        for j in 0..4 {
            assert_eq!(s.rank_correlation(j, 4), Some(1.0), "level {j}");
        }
        assert_eq!(s.working_bracket(), 0);
    }

    #[test]
    fn crossing_curves_move_to_the_first_predictive_rung() {
        // Trial i's final loss is i, but the better a trial, the slower it learns: until t = 20
        // the order is reversed; from t = 27 on it is the final one.
        let mut s = calibrate(|i, t| if t < 20.0 { 100.0 - i as f64 } else { i as f64 });
        assert_eq!(s.rank_correlation(0, 4), Some(-1.0));
        assert_eq!(s.rank_correlation(2, 3), Some(-1.0));
        assert_eq!(s.rank_correlation(3, 4), Some(1.0));
        assert_eq!(s.trust(2), Some(-1.0));
        assert_eq!(s.working_bracket(), 3);
        assert!(s.take_notes().is_empty(), "no trial has moved yet");
        // New trials go there; a bracket-3 trial is not judged before t = 27, then by the scores
        // recorded at t = 27 in its bracket.
        for id in [100, 101, 102] {
            assert_eq!(add(&mut s, id), 3);
        }
        assert_eq!(
            s.take_notes(),
            vec!["adaptive ASHA: new trials go to bracket 3 (first rung t=27), not bracket 0: the scores at t=9 \
                  agree with later ones only with Kendall tau -1.00 (below 0.8)"
                .to_string()]
        );
        for id in [101, 102] {
            assert_eq!(report(&mut s, id, 27.0, (102 - id) as f64), Decision::Continue);
        }
        for t in 1..27 {
            assert_eq!(report(&mut s, 100, t as f64, 1e9), Decision::Continue);
        }
        assert!(
            matches!(report(&mut s, 100, 27.0, 1e9), Decision::Stop { reason } if reason.contains("bracket 3, rung 0 (t=27)"))
        );
        // Bracket-3 trials add unbiased pairs for the levels below 27 (never judged there).
        let before = s.pairs[0][3].len();
        assert_eq!(add(&mut s, 103), 3);
        report(&mut s, 103, 1.0, 5.0);
        report(&mut s, 103, 27.0, 5.0);
        assert_eq!(s.pairs[0][3].len(), before + 1);
        assert_eq!(s.pairs[3][4].len(), 6, "a score at max_t after a cut at 27 is not a sample");
    }

    #[test]
    fn trust_is_the_least_tau_with_later_levels_by_hand() {
        // Six calibration trials with final loss i = 0, 2, .., 10. At t = 1 the losses are
        // 0, 2, 4, 6, 10, 8 (one swapped pair: τ = (14 - 1) / 15); from t = 3 on they are final.
        let early = |i: u64| [0.0, 2.0, 4.0, 6.0, 10.0, 8.0][i as usize / 2];
        let s = calibrate(|i, t| if t < 3.0 { early(i) } else { i as f64 });
        assert!((s.rank_correlation(0, 4).unwrap() - 13.0 / 15.0).abs() < 1e-12);
        assert!((s.trust(0).unwrap() - 13.0 / 15.0).abs() < 1e-12);
        assert_eq!(s.trust(1), Some(1.0));
        assert_eq!(s.working_bracket(), 0, "13/15 is above 0.8");
        let strict = AshaAdaptive { min_tau: 0.9, ..s };
        assert_eq!(strict.working_bracket(), 1);
    }

    #[test]
    fn a_rung_that_never_predicts_means_no_early_stopping() {
        let s = calibrate(|i, t| if t < 81.0 { 100.0 - i as f64 } else { i as f64 });
        assert_eq!(s.trust(3), Some(-1.0));
        assert_eq!(s.working_bracket(), 4);
    }

    #[test]
    fn rejects_bad_settings() {
        let bad = |c: AshaAdaptiveConfig| c.build().unwrap_err().field;
        assert_eq!(bad(AshaAdaptiveConfig { min_pairs: 2, ..Default::default() }), "min_pairs");
        assert_eq!(bad(AshaAdaptiveConfig { min_rank_correlation: 1.5, ..Default::default() }), "min_rank_correlation");
        assert_eq!(bad(AshaAdaptiveConfig { grace_period: 0.0, ..Default::default() }), "grace_period");
        assert_eq!(bad(AshaAdaptiveConfig { reduction_factor: 1.0, ..Default::default() }), "reduction_factor");
    }
}
