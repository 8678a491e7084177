//! Asynchronous successive halving with Ray Tune's stopping rule (`ASHAScheduler` /
//! `AsyncHyperBandScheduler`): a trial reaching a rung milestone is stopped when its score is
//! below the rung's cut-off, the `(1 - 1/rf)` percentile of the scores recorded there.
//!
//! Matches Ray 2.x decision for decision (checked against Ray 2.60 by `tests/ray_differential.rs`),
//! including its quirks: rungs come from `int(ln(max_t/grace)/ln(rf) - s + 1)`, so floating
//! point can drop the top rung (max_t=1000, grace=1, rf=10 gives rungs 1, 10, 100); a trial that
//! skips a milestone is judged at the highest unrecorded milestone it passed, one per result; a
//! result without the metric is ignored (even past `max_t`); the last result of a completed or
//! stopped trial is recorded again. The only departure: with one bracket no random number is
//! drawn (Ray draws one it does not need).

use crate::stats::RankedScores;
pub use crate::stats::{nan_percentile, np_sum};
use crate::{Decision, Rng, SchedResult, SchedulerConfigError, TrialEnd, TrialId, TrialScheduler, TrialView};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The most rungs a bracket may have (a reduction factor barely above 1 would make millions).
const MAX_RUNGS: i64 = 1000;

/// Ray's `ASHAScheduler` parameters, with Ray's names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AshaConfig {
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
    /// Progress of the first rung; no trial stops before it.
    pub grace_period: f64,
    /// Spacing of rungs and share of survivors (`1/rf` continue).
    pub reduction_factor: f64,
    /// Number of brackets (bracket `s` starts at `grace_period * rf^s`).
    pub brackets: usize,
    /// Whether trials stop on reaching `max_t`.
    pub stop_last_trials: bool,
}

impl Default for AshaConfig {
    fn default() -> Self {
        AshaConfig {
            time_attr: "training_iteration".into(),
            metric: None,
            mode: None,
            max_t: 100.0,
            grace_period: 1.0,
            reduction_factor: 4.0,
            brackets: 1,
            stop_last_trials: true,
        }
    }
}

/// Builds a configuration error.
pub(crate) fn config_error(field: &str, message: impl Into<String>) -> SchedulerConfigError {
    SchedulerConfigError { field: field.into(), message: message.into() }
}

/// Checks that `metric` and `mode` come together and that `mode` is `min` or `max`.
pub(crate) fn check_objective(metric: &Option<String>, mode: &Option<String>) -> Result<(), SchedulerConfigError> {
    match (metric, mode.as_deref()) {
        (None, None) => Ok(()),
        (Some(m), Some("min" | "max")) if !m.is_empty() => Ok(()),
        (Some(_), Some("min" | "max")) => Err(config_error("metric", "expected a non-empty result key")),
        (None, Some(_)) => Err(config_error("metric", "required with `mode` (give both or neither)")),
        (Some(_), Some(other)) => Err(config_error("mode", format!("expected \"min\" or \"max\", got {other:?}"))),
        (Some(_), None) => Err(config_error("mode", "required with `metric`: \"min\" or \"max\"")),
    }
}

/// The `(metric, higher_is_better)` pair named by a validated `metric`/`mode`.
pub(crate) fn objective_of<'a>(metric: &'a Option<String>, mode: &Option<String>) -> Option<(&'a str, bool)> {
    Some((metric.as_deref()?, mode.as_deref()? == "max"))
}

/// Checks that a time key is set.
pub(crate) fn check_time_attr(time_attr: &str) -> Result<(), SchedulerConfigError> {
    if time_attr.is_empty() {
        return Err(config_error("time_attr", "expected a non-empty result key"));
    }
    Ok(())
}

/// Formats a number for a stop reason: short, without trailing zeros.
pub(crate) fn num(x: f64) -> String {
    if x.is_nan() || x.is_infinite() || x == x.trunc() && x.abs() < 1e15 {
        return format!("{x}");
    }
    if x.abs() < 1e-3 || x.abs() >= 1e7 {
        return format!("{x:.3e}");
    }
    let s = format!("{x:.4}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// How stop reasons name scores: the user's metric and sign when known, else "score".
#[derive(Clone, Debug, Default)]
pub(crate) struct Label {
    metric: Option<(String, bool)>,
}

impl Label {
    /// A label for a validated `metric`/`mode`.
    pub(crate) fn new(metric: &Option<String>, mode: &Option<String>) -> Self {
        Label { metric: objective_of(metric, mode).map(|(m, hi)| (m.to_string(), hi)) }
    }

    /// `"<name> <value> <below|above> <what> <bound>"` for a score that lost against `bound`.
    pub(crate) fn worse(&self, score: f64, what: &str, bound: f64) -> String {
        match &self.metric {
            Some((m, false)) => format!("{m} {} above {what} {}", num(-score), num(-bound)),
            Some((m, true)) => format!("{m} {} below {what} {}", num(score), num(bound)),
            None => format!("score {} below {what} {}", num(score), num(bound)),
        }
    }

    /// A score in the user's sign (the metric's value when known).
    pub(crate) fn value(&self, score: f64) -> f64 {
        match &self.metric {
            Some((_, false)) => -score,
            _ => score,
        }
    }

    /// `"<name> <value>"` in the user's sign.
    pub(crate) fn show(&self, score: f64) -> String {
        match &self.metric {
            Some((m, hi)) => format!("{m} {}", num(if *hi { score } else { -score })),
            None => format!("score {}", num(score)),
        }
    }
}

/// Ray's softmax over bracket sizes: `e^(rungs - max rungs)`, normalised.
pub(crate) fn softmax_weights(rung_counts: &[usize]) -> Vec<f64> {
    let max = rung_counts.iter().copied().max().unwrap_or(0) as f64;
    let probs: Vec<f64> = rung_counts.iter().map(|&c| std::f64::consts::E.powf(c as f64 - max)).collect();
    let sum = np_sum(&probs);
    probs.iter().map(|p| p / sum).collect()
}

/// numpy's `choice(len(p), p=p)` given the uniform draw `u`: cumulative sums, normalised, then
/// the number of them at or below `u`.
pub(crate) fn choose_index(p: &[f64], u: f64) -> usize {
    let mut cdf = Vec::with_capacity(p.len());
    let mut acc = 0.0;
    for x in p {
        acc += x;
        cdf.push(acc);
    }
    let last = acc;
    cdf.iter().filter(|c| *c / last <= u).count().min(p.len() - 1)
}

impl AshaConfig {
    /// Validates the configuration and builds the scheduler.
    pub fn build(&self) -> Result<Asha, SchedulerConfigError> {
        check_time_attr(&self.time_attr)?;
        check_objective(&self.metric, &self.mode)?;
        if !(self.max_t.is_finite() && self.max_t > 0.0) {
            return Err(config_error("max_t", format!("expected a positive number, got {}", self.max_t)));
        }
        if !(self.grace_period.is_finite() && self.grace_period > 0.0) {
            return Err(config_error("grace_period", format!("expected a positive number, got {}", self.grace_period)));
        }
        if self.grace_period > self.max_t {
            return Err(config_error(
                "grace_period",
                format!("expected at most max_t ({}), got {}", self.max_t, self.grace_period),
            ));
        }
        if !(self.reduction_factor.is_finite() && self.reduction_factor > 1.0) {
            return Err(config_error(
                "reduction_factor",
                format!("expected a number greater than 1, got {}", self.reduction_factor),
            ));
        }
        if self.brackets == 0 {
            return Err(config_error("brackets", "expected a positive integer, got 0"));
        }
        let mut brackets = Vec::with_capacity(self.brackets);
        for s in 0..self.brackets {
            let count = rung_count(self.max_t, self.grace_period, self.reduction_factor, s);
            if count > MAX_RUNGS {
                return Err(config_error(
                    "reduction_factor",
                    format!("too close to 1 for max_t/grace_period: {count} rungs (at most {MAX_RUNGS})"),
                ));
            }
            // Ray's rungs, highest milestone first; `k` is the rung's number within its bracket.
            let rungs = (0..count.max(0) as usize)
                .rev()
                .map(|k| Rung {
                    k,
                    milestone: self.grace_period * self.reduction_factor.powf((k + s) as f64),
                    recorded: BTreeMap::new(),
                    ranked: RankedScores::default(),
                })
                .collect();
            brackets.push(Bracket { rungs });
        }
        Ok(Asha {
            max_t: self.max_t,
            rf: self.reduction_factor,
            stop_last_trials: self.stop_last_trials,
            brackets,
            trials: BTreeMap::new(),
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

/// Ray's rung count for bracket `s`: `int(ln(max_t / grace) / ln(rf) - s + 1)` (may be ≤ 0).
fn rung_count(max_t: f64, grace: f64, rf: f64, s: usize) -> i64 {
    let x = (max_t / grace).ln() / rf.ln() - s as f64 + 1.0;
    x.trunc().clamp(-1e9, 1e9) as i64
}

/// One rung: its milestone and the scores recorded there.
#[derive(Clone, Debug)]
struct Rung {
    k: usize,
    milestone: f64,
    recorded: BTreeMap<TrialId, f64>,
    /// The same scores (NaN left out), split for an O(log n) percentile.
    ranked: RankedScores,
}

/// One bracket's rungs, highest milestone first (Ray's order).
#[derive(Clone, Debug)]
struct Bracket {
    rungs: Vec<Rung>,
}

/// Ray's `ASHAScheduler` at run time (built by [`AshaConfig::build`]).
#[derive(Clone, Debug)]
pub struct Asha {
    max_t: f64,
    rf: f64,
    stop_last_trials: bool,
    brackets: Vec<Bracket>,
    trials: BTreeMap<TrialId, usize>,
    label: Label,
}

impl Asha {
    /// Rung milestones per bracket, lowest first.
    pub fn rung_milestones(&self) -> Vec<Vec<f64>> {
        self.brackets.iter().map(|b| b.rungs.iter().rev().map(|r| r.milestone).collect()).collect()
    }

    /// The probability of each bracket for a new trial (Ray's softmax over rung counts).
    pub fn bracket_probabilities(&self) -> Vec<f64> {
        softmax_weights(&self.brackets.iter().map(|b| b.rungs.len()).collect::<Vec<_>>())
    }

    /// Places a trial in bracket `bracket` without drawing one: for reproducing an assignment
    /// made elsewhere (e.g. by Ray). Out-of-range brackets are clamped to the last one.
    pub fn assign_bracket(&mut self, trial: TrialId, bracket: usize) {
        self.trials.insert(trial, bracket.min(self.brackets.len() - 1));
    }

    /// The bracket a live trial belongs to.
    pub fn bracket_of(&self, trial: TrialId) -> Option<usize> {
        self.trials.get(&trial).copied()
    }

    /// Scores recorded per rung of `bracket` as `(milestone, [(trial, score)])`, lowest rung first.
    pub fn recorded(&self, bracket: usize) -> Vec<(f64, Vec<(TrialId, f64)>)> {
        let Some(b) = self.brackets.get(bracket) else { return Vec::new() };
        b.rungs.iter().rev().map(|r| (r.milestone, r.recorded.iter().map(|(t, s)| (*t, *s)).collect())).collect()
    }

    /// Ray's `_Bracket.on_result`: records the score at the highest milestone passed and not
    /// yet recorded; returns the stop reason when it is below that rung's cut-off.
    fn judge(&mut self, bracket: usize, trial: TrialId, progress: f64, score: f64) -> Option<String> {
        let pct = (1.0 - 1.0 / self.rf) * 100.0;
        let many = self.brackets.len() > 1;
        for rung in self.brackets[bracket].rungs.iter_mut() {
            let seen = rung.recorded.contains_key(&trial);
            if progress >= rung.milestone && seen && !self.stop_last_trials {
                return None;
            }
            if progress < rung.milestone || seen {
                continue;
            }
            let cutoff = (!rung.recorded.is_empty()).then(|| rung.ranked.percentile(pct));
            rung.recorded.insert(trial, score);
            rung.ranked.insert(score, pct);
            let cutoff = cutoff?;
            if score < cutoff {
                let at = if many { format!("bracket {bracket}, rung {}", rung.k) } else { format!("rung {}", rung.k) };
                return Some(format!(
                    "{at} (t={}): {}",
                    num(rung.milestone),
                    self.label.worse(score, "cut-off", cutoff)
                ));
            }
            return None;
        }
        None
    }
}

impl TrialScheduler for Asha {
    fn on_trial_add(&mut self, trial: &TrialView<'_>, rng: &mut Rng) {
        let idx = if self.brackets.len() > 1 { choose_index(&self.bracket_probabilities(), rng.random()) } else { 0 };
        self.trials.insert(trial.id, idx);
    }

    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, _rng: &mut Rng) -> Decision {
        let Some(score) = result.score else { return Decision::Continue };
        if result.progress >= self.max_t && self.stop_last_trials {
            return Decision::Stop { reason: format!("reached max_t={}", num(self.max_t)) };
        }
        let Some(&bracket) = self.trials.get(&trial.id) else { return Decision::Continue };
        match self.judge(bracket, trial.id, result.progress, score) {
            Some(reason) => Decision::Stop { reason },
            None => Decision::Continue,
        }
    }

    fn on_trial_complete(&mut self, trial: TrialId, end: TrialEnd, last: Option<&SchedResult>) {
        // Ray: errors leave the scheduler untouched; other ends record the last result again.
        if end == TrialEnd::Failed {
            return;
        }
        let Some(score) = last.and_then(|l| l.score.map(|s| (l.progress, s))) else { return };
        if let Some(bracket) = self.trials.remove(&trial) {
            let _ = self.judge(bracket, trial, score.0, score.1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn asha(max_t: f64, grace: f64, rf: f64, brackets: usize) -> Asha {
        AshaConfig { max_t, grace_period: grace, reduction_factor: rf, brackets, ..Default::default() }.build().unwrap()
    }

    fn step(s: &mut Asha, id: u64, t: f64, score: Option<f64>) -> Decision {
        let cfg = Default::default();
        let view = TrialView { id: TrialId(id), config: &cfg, has_checkpoint: false };
        s.on_result(&view, &SchedResult { progress: t, score, queued: 0 }, &mut Rng::seed_from_u64(0))
    }

    #[test]
    fn cutoff_of_0_to_19_with_rf_4_is_14_25() {
        assert_eq!(nan_percentile((0..20).map(f64::from), (1.0 - 1.0 / 4.0) * 100.0), 14.25);
        assert_eq!(nan_percentile([1.0, f64::NAN, 3.0], 50.0), 2.0);
        assert!(nan_percentile([f64::NAN], 50.0).is_nan());
        assert!(nan_percentile([f64::NEG_INFINITY], 75.0).is_nan()); // numpy's lerp(-inf, -inf, 1)
        assert_eq!(nan_percentile([7.0], 75.0), 7.0);
    }

    #[test]
    fn bracket_weights_are_rays_softmax() {
        // rung counts 4, 3, 2: e^0, e^-1, e^-2 normalised (numpy's values).
        let p = asha(100.0, 2.0, 3.0, 3).bracket_probabilities();
        let e = std::f64::consts::E;
        let z = 1.0 + 1.0 / e + 1.0 / (e * e);
        for (got, want) in p.iter().zip([1.0 / z, 1.0 / e / z, 1.0 / (e * e) / z]) {
            assert!((got - want).abs() < 1e-15, "{p:?}");
        }
        assert_eq!(choose_index(&p, 0.0), 0);
        assert_eq!(choose_index(&p, 0.67), 1);
        assert_eq!(choose_index(&p, 0.99), 2);
    }

    #[test]
    fn below_cutoff_stops_with_a_reason() {
        let mut s =
            AshaConfig { metric: Some("loss".into()), mode: Some("min".into()), ..Default::default() }.build().unwrap();
        for id in 0..3 {
            s.assign_bracket(TrialId(id), 0);
        }
        assert_eq!(step(&mut s, 0, 1.0, Some(-1.0)), Decision::Continue); // first at rung: no cut-off
        assert_eq!(
            step(&mut s, 1, 1.0, Some(-3.0)),
            Decision::Stop { reason: "rung 0 (t=1): loss 3 above cut-off 1".into() }
        );
        // cut-off of [-1, -3] at 75% is -1.5: -1.2 survives.
        assert_eq!(step(&mut s, 2, 1.0, Some(-1.2)), Decision::Continue);
        assert_eq!(step(&mut s, 2, 2.0, Some(-9.0)), Decision::Continue); // between rungs
        assert_eq!(step(&mut s, 2, 100.0, Some(-9.0)), Decision::Stop { reason: "reached max_t=100".into() });
        assert_eq!(step(&mut s, 2, 100.0, None), Decision::Continue); // no metric: no decision
    }
}
