//! Ray Tune's synchronous `HyperBandScheduler`: trials fill brackets of successive halving as they
//! are added (band by band, bracket `s = 0, 1, …`, Ray's order); at each milestone a trial pauses
//! until every live trial of its bracket has reached it, then the top `1/η` go on (resumed from
//! their checkpoints through `choose_trial_to_run`) and the rest stop.
//!
//! Follows Ray 2.x (checked against Ray 2.60 by `tests/ray_differential.rs`): `s_max + 1 =
//! round(ln max_t / ln η) + 1` brackets per band (round half to even), bracket `s` holds
//! `ceil((s_max+1)/(s+1) · η^s)` trials starting at `int(max_t · η^-s)`; `choose_trial_to_run`
//! walks bands in order and their brackets by completion, least complete first; a trial reaching
//! `max_t` in bracket `s = 0` pauses until its bracket is done; the last halving stops everyone
//! left when `stop_last_trials` (otherwise the survivors run on unjudged).
//!
//! Departures: (1) Ray stops losing *paused* trials through the controller on the spot; a
//! scheduler here can only decide for the trial reporting, so losers are removed from their
//! bracket at once and queued in [`HyperBand::take_stopped`]; a controller that does not end them
//! gets them back from `choose_trial_to_run` (after every runnable trial) and their next result
//! stops them. (2) Ray re-checks a bracket when a trial leaves it only until its first halving (its
//! `is_being_processed` flag is never reset) and not when the departure finishes the bracket, which
//! can leave the others paused forever; here every departure re-checks, and one that finishes the
//! bracket stops its paused trials. (3) A score that is missing or NaN ranks below every other (Ray fails or
//! sorts arbitrarily). (4) Trials are created lazily here (Ray creates every trial up front), so a
//! bracket is filled with exactly its size in trials and halves only once all of them reached the
//! milestone, or once the controller says the searcher is exhausted (`on_no_more_trials`); with
//! trials created up front, as in the differential fixtures, the decisions are Ray's. New trials
//! are created only when nothing waiting may run, so a resumed trial goes before a new one.

use crate::asha::{check_objective, check_time_attr, config_error, num, objective_of, Label};
use crate::{Decision, Rng, SchedResult, SchedulerConfigError, TrialEnd, TrialId, TrialScheduler, TrialView};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

/// Ray's `HyperBandScheduler` parameters, with Ray's names and defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HyperBandConfig {
    /// Result key measuring progress (monotonic).
    pub time_attr: String,
    /// Metric to rank trials by, overriding the experiment's (needs `mode`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `"min"` or `"max"` for `metric`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Most progress a trial gets.
    pub max_t: f64,
    /// η: each halving keeps `1/η` of a bracket and multiplies its budget by η.
    pub reduction_factor: f64,
    /// Whether the last halving stops the survivors at `max_t`.
    pub stop_last_trials: bool,
}

impl Default for HyperBandConfig {
    fn default() -> Self {
        HyperBandConfig {
            time_attr: "training_iteration".into(),
            metric: None,
            mode: None,
            max_t: 81.0,
            reduction_factor: 3.0,
            stop_last_trials: true,
        }
    }
}

impl HyperBandConfig {
    /// Validates the configuration and builds the scheduler.
    pub fn build(&self) -> Result<HyperBand, SchedulerConfigError> {
        check_time_attr(&self.time_attr)?;
        check_objective(&self.metric, &self.mode)?;
        if !(self.max_t.is_finite() && self.max_t >= 1.0) {
            return Err(config_error("max_t", format!("expected a number ≥ 1, got {}", self.max_t)));
        }
        let eta = self.reduction_factor;
        if !(eta.is_finite() && eta > 1.0) {
            return Err(config_error("reduction_factor", format!("expected a number greater than 1, got {eta}")));
        }
        let s_max_1 = (self.max_t.ln() / eta.ln()).round_ties_even() + 1.0;
        if s_max_1 > 64.0 {
            return Err(config_error(
                "reduction_factor",
                format!("too close to 1 for max_t: {s_max_1} brackets per band (at most 64)"),
            ));
        }
        Ok(HyperBand {
            max_t: self.max_t,
            eta,
            s_max_1: s_max_1.max(1.0) as usize,
            stop_last_trials: self.stop_last_trials,
            bands: vec![Vec::new()],
            brackets: Vec::new(),
            current: None,
            trials: BTreeMap::new(),
            stopped: Vec::new(),
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

/// What the scheduler knows of a trial's state.
#[derive(Clone, Debug, PartialEq)]
enum Status {
    /// Added, no result yet.
    Pending,
    /// Reported last and was not paused.
    Running,
    /// Paused by this scheduler.
    Paused,
    /// Stopped while paused: its next result stops it.
    Doomed(String),
    /// Ended.
    Ended,
}

/// A trial's bracket and state.
#[derive(Clone, Debug)]
struct TrialInfo {
    bracket: usize,
    status: Status,
}

/// A live trial's latest `(progress, score)`, `None` before its first result.
type Latest = Option<(f64, Option<f64>)>;

/// One bracket of successive halving (Ray's `_Bracket`).
#[derive(Clone, Debug)]
struct Bracket {
    band: usize,
    s: usize,
    /// Live trials in insertion order with their latest `(progress, score)`.
    live: Vec<(TrialId, Latest)>,
    n: usize,
    r: f64,
    cumul_r: f64,
    halves: usize,
    total_work: f64,
    completed_progress: f64,
    is_being_processed: bool,
    to_unpause: BTreeSet<TrialId>,
    /// Trials ever assigned here.
    added: usize,
    /// No more trials will come (the searcher is exhausted).
    closed: bool,
}

impl Bracket {
    fn time_of(&self, t: TrialId) -> f64 {
        self.live.iter().find(|(id, _)| *id == t).and_then(|(_, r)| r.map(|r| r.0)).unwrap_or(0.0)
    }
    /// Every trial of the bracket reached the current milestone. Trials are created lazily here
    /// (Ray creates them all up front), so a bracket that is not full yet waits for the trials
    /// still to come, unless the searcher has none left.
    fn cur_iter_done(&self) -> bool {
        (self.closed || self.added >= self.n) && self.live.iter().all(|(_, r)| r.map_or(0.0, |r| r.0) >= self.cumul_r)
    }
    fn finished(&self, stop_last: bool) -> bool {
        stop_last && self.halves == 0 && self.cur_iter_done()
    }
    fn continue_trial(&self, t: TrialId, stop_last: bool) -> bool {
        (!stop_last && self.halves == 0) || self.time_of(t) < self.cumul_r
    }
    fn remove(&mut self, t: TrialId) -> bool {
        let before = self.live.len();
        self.live.retain(|(id, _)| *id != t);
        self.live.len() != before
    }
    fn completion(&self, stop_last: bool) -> f64 {
        if self.finished(stop_last) {
            return 1.0;
        }
        (self.completed_progress / self.total_work).min(1.0)
    }
}

/// Ray's `HyperBandScheduler` at run time (built by [`HyperBandConfig::build`]).
#[derive(Clone, Debug)]
pub struct HyperBand {
    max_t: f64,
    eta: f64,
    s_max_1: usize,
    stop_last_trials: bool,
    /// Per band, its brackets (`None` where a bracket would start at 0).
    bands: Vec<Vec<Option<usize>>>,
    brackets: Vec<Bracket>,
    /// The bracket new trials join.
    current: Option<usize>,
    trials: BTreeMap<TrialId, TrialInfo>,
    stopped: Vec<(TrialId, String)>,
    label: Label,
}

/// Ranks scores, missing and NaN ones lowest.
fn rank(a: Option<f64>, b: Option<f64>) -> Ordering {
    let key = |x: Option<f64>| x.filter(|v| !v.is_nan());
    match (key(a), key(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        (x, y) => x.is_some().cmp(&y.is_some()),
    }
}

impl HyperBand {
    /// Bracket `s`'s initial size `n` and first milestone `r`, for `s = 0, 1, …` (filling order).
    pub fn bracket_table(&self) -> Vec<(usize, f64)> {
        (0..self.s_max_1).map(|s| (self.n0(s), self.r0(s))).collect()
    }

    /// Paused trials stopped since the last call, with reasons: end them without resuming.
    pub fn take_stopped(&mut self) -> Vec<(TrialId, String)> {
        std::mem::take(&mut self.stopped)
    }

    /// The `(band, s)` of a trial's bracket.
    pub fn bracket_of(&self, trial: TrialId) -> Option<(usize, usize)> {
        self.trials.get(&trial).map(|i| (self.brackets[i.bracket].band, self.brackets[i.bracket].s))
    }

    fn n0(&self, s: usize) -> usize {
        (self.s_max_1 as f64 / (s + 1) as f64 * self.eta.powf(s as f64)).ceil() as usize
    }

    fn r0(&self, s: usize) -> f64 {
        (self.max_t * self.eta.powf(-(s as f64))).trunc()
    }

    fn new_bracket(&mut self, band: usize, s: usize) -> usize {
        let (n, r) = (self.n0(s), self.r0(s));
        // Ray's `_calculate_total_work`, its fixed `cumulative_r` included.
        let (mut work, mut nn, mut rr) = (0.0, n as f64, r);
        for _ in 0..=s {
            work += nn.trunc() * rr.trunc();
            nn = (nn / self.eta).ceil();
            rr = (rr * self.eta).min(self.max_t - r).trunc();
        }
        self.brackets.push(Bracket {
            band,
            s,
            live: Vec::new(),
            n,
            r,
            cumul_r: r,
            halves: s,
            total_work: work,
            completed_progress: 0.0,
            is_being_processed: false,
            to_unpause: BTreeSet::new(),
            added: 0,
            closed: false,
        });
        self.brackets.len() - 1
    }

    fn status(&self, t: TrialId) -> Status {
        self.trials.get(&t).map_or(Status::Ended, |i| i.status.clone())
    }

    /// Stops a trial other than the one reporting: out of its bracket now, ended by the controller.
    fn doom(&mut self, b: usize, t: TrialId, reason: String) {
        self.brackets[b].remove(t);
        if let Some(info) = self.trials.get_mut(&t) {
            info.status = Status::Doomed(reason.clone());
        }
        self.stopped.push((t, reason));
    }

    /// Ray's `_process_bracket`: halves the bracket once all its live trials reached the
    /// milestone; returns the decision for `current`, the trial reporting (if any).
    fn process(&mut self, b: usize, current: Option<TrialId>) -> Decision {
        let stop_last = self.stop_last_trials;
        let mut action = Decision::Pause;
        let br = &self.brackets[b];
        if !br.cur_iter_done() {
            return action;
        }
        let place = format!("band {}, bracket s={}", br.band, br.s);
        let done = format!("{place} finished at t={}", num(br.cumul_r));
        if br.finished(stop_last) {
            // Ray's `cleanup_full`; reached on a departure only here (Ray leaves those paused).
            let paused: Vec<TrialId> =
                br.live.iter().map(|(t, _)| *t).filter(|t| self.status(*t) == Status::Paused).collect();
            for t in paused {
                self.doom(b, t, done.clone());
            }
            return Decision::Stop { reason: done };
        }
        let br = &mut self.brackets[b];
        br.is_being_processed = true;
        let milestone = br.cumul_r;
        let (good, bad) = if br.halves == 0 && !stop_last {
            (br.live.clone(), Vec::new())
        } else {
            br.halves -= 1;
            br.n = (br.n as f64 / self.eta).ceil() as usize;
            br.r = (br.r * self.eta).min(self.max_t).trunc();
            br.cumul_r = br.r;
            let mut sorted = br.live.clone();
            sorted.sort_by(|x, y| rank(x.1.and_then(|r| r.1), y.1.and_then(|r| r.1)));
            let cut = sorted.len().saturating_sub(br.n);
            let good = sorted.split_off(cut);
            (good, sorted)
        };
        let kept = (good.len(), good.len() + bad.len());
        for (t, res) in bad {
            let score = res.and_then(|r| r.1).map_or("score missing".to_string(), |s| self.label.show(s));
            let why = format!("{place}, rung t={}: {score} not in the top {} of {}", num(milestone), kept.0, kept.1);
            if Some(t) == current {
                self.brackets[b].remove(t);
                action = Decision::Stop { reason: why };
            } else {
                self.doom(b, t, why);
            }
        }
        for (t, _) in good {
            let status = self.status(t);
            if self.brackets[b].continue_trial(t, stop_last) {
                if status == Status::Paused {
                    self.brackets[b].to_unpause.insert(t);
                } else if Some(t) == current {
                    action = Decision::Continue;
                }
            } else if self.brackets[b].finished(stop_last) {
                let why = format!("{place} finished at t={}", num(self.brackets[b].cumul_r));
                if Some(t) == current {
                    self.brackets[b].remove(t);
                    action = Decision::Stop { reason: why };
                } else if status == Status::Paused {
                    self.doom(b, t, why);
                }
            }
        }
        action
    }
}

impl TrialScheduler for HyperBand {
    fn on_no_more_trials(&mut self) {
        for b in 0..self.brackets.len() {
            self.brackets[b].closed = true;
            if !self.brackets[b].live.is_empty() {
                let _ = self.process(b, None);
            }
        }
    }

    fn take_stopped(&mut self) -> Vec<(TrialId, String)> {
        HyperBand::take_stopped(self)
    }

    fn on_trial_add(&mut self, trial: &TrialView<'_>, _rng: &mut Rng) {
        if self.trials.contains_key(&trial.id) {
            return;
        }
        if self.current.is_none_or(|c| self.brackets[c].added >= self.brackets[c].n) {
            loop {
                if self.bands.last().is_some_and(|b| b.len() == self.s_max_1) {
                    self.bands.push(Vec::new());
                }
                let band = self.bands.len() - 1;
                let s = self.bands[band].len();
                if self.r0(s) == 0.0 {
                    self.bands[band].push(None);
                    self.current = None;
                    continue;
                }
                let b = self.new_bracket(band, s);
                self.bands[band].push(Some(b));
                self.current = Some(b);
                break;
            }
        }
        let b = self.current.expect("a bracket was just made");
        self.brackets[b].live.push((trial.id, None));
        self.brackets[b].added += 1;
        self.trials.insert(trial.id, TrialInfo { bracket: b, status: Status::Pending });
    }

    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, _rng: &mut Rng) -> Decision {
        let Some(info) = self.trials.get_mut(&trial.id) else { return Decision::Continue };
        if let Status::Doomed(reason) = &info.status {
            return Decision::Stop { reason: reason.clone() };
        }
        let b = info.bracket;
        let br = &mut self.brackets[b];
        let Some(slot) = br.live.iter_mut().find(|(id, _)| *id == trial.id) else { return Decision::Continue };
        info.status = Status::Running;
        // Ray's `update_trial_stats`.
        br.completed_progress += result.progress - slot.1.map_or(0.0, |r| r.0);
        slot.1 = Some((result.progress, result.score));
        br.to_unpause.remove(&trial.id);
        if br.continue_trial(trial.id, self.stop_last_trials) {
            return Decision::Continue;
        }
        let decision = self.process(b, Some(trial.id));
        if let Some(info) = self.trials.get_mut(&trial.id) {
            info.status = match decision {
                Decision::Pause => Status::Paused,
                Decision::Continue => Status::Running,
                _ => Status::Ended,
            };
        }
        decision
    }

    fn on_trial_complete(&mut self, trial: TrialId, _end: TrialEnd, _last: Option<&SchedResult>) {
        let Some(info) = self.trials.get_mut(&trial) else { return };
        info.status = Status::Ended;
        let b = info.bracket;
        if self.brackets[b].remove(trial) {
            // Ray: re-check unless finished (and only before the first halving; see the module doc).
            let _ = self.process(b, None);
        }
    }

    fn choose_trial_to_run(&mut self, waiting: &[TrialId]) -> Option<TrialId> {
        let stop_last = self.stop_last_trials;
        for band in &self.bands {
            let mut order: Vec<usize> = band.iter().flatten().copied().collect();
            order.sort_by(|a, b| {
                let (x, y) = (self.brackets[*a].completion(stop_last), self.brackets[*b].completion(stop_last));
                x.partial_cmp(&y).unwrap_or(Ordering::Equal)
            });
            for b in order {
                let br = &self.brackets[b];
                for (t, _) in &br.live {
                    if !waiting.contains(t) {
                        continue;
                    }
                    match self.status(*t) {
                        Status::Paused if br.to_unpause.contains(t) => return Some(*t),
                        Status::Pending | Status::Running => return Some(*t),
                        _ => {}
                    }
                }
            }
        }
        waiting.iter().find(|t| matches!(self.status(**t), Status::Doomed(_))).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_table_for_81_and_3_is_the_papers() {
        let hb = HyperBandConfig::default().build().unwrap();
        let mut table = hb.bracket_table();
        table.reverse();
        assert_eq!(table, vec![(81, 1.0), (34, 3.0), (15, 9.0), (8, 27.0), (5, 81.0)]);
        let hb = HyperBandConfig { max_t: 16.0, reduction_factor: 2.0, ..Default::default() }.build().unwrap();
        assert_eq!(hb.bracket_table(), vec![(5, 16.0), (5, 8.0), (7, 4.0), (10, 2.0), (16, 1.0)]);
    }

    #[test]
    fn missing_and_nan_scores_rank_lowest() {
        let mut v = vec![Some(1.0), None, Some(f64::NAN), Some(-5.0), Some(2.0)];
        v.sort_by(|a, b| rank(*a, *b));
        assert_eq!(format!("{v:?}"), "[None, Some(NaN), Some(-5.0), Some(1.0), Some(2.0)]");
    }

    #[test]
    fn config_is_validated_with_field_names() {
        let bad = |c: HyperBandConfig| c.build().unwrap_err().field;
        assert_eq!(bad(HyperBandConfig { max_t: 0.5, ..Default::default() }), "max_t");
        assert_eq!(bad(HyperBandConfig { reduction_factor: 1.0, ..Default::default() }), "reduction_factor");
        assert_eq!(bad(HyperBandConfig { reduction_factor: 1.001, ..Default::default() }), "reduction_factor");
        assert_eq!(bad(HyperBandConfig { mode: Some("min".into()), ..Default::default() }), "metric");
        let c: HyperBandConfig = serde_json::from_str(r#"{"max_t": 27, "stop_last_trials": false}"#).unwrap();
        assert_eq!((c.time_attr(), c.objective(), c.max_t), ("training_iteration", None, 27.0));
    }
}
