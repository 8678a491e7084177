//! The population bookkeeping PBT and PB2 share: perturbation boundaries, the quantile split,
//! donor choice and time-multiplexing. Ray's rules (`pbt.py`), with these choices made explicit:
//!
//! - A trial at a boundary is compared with the trials that reached the same boundary, on their
//!   scores there. Ray compares it with each trial's score at that trial's own last boundary, so
//!   when trials take turns over the capacity a trial is ranked against others up to an interval
//!   behind (whose lower scores shield it) or ahead (whose extra training dooms it). A trial is
//!   ranked at its latest boundary that at least half the live population has reached, so the
//!   first to arrive at a boundary is judged on the previous one. Finished trials are not ranked.
//! - A NaN score ranks below every number, so a diverged trial is the first to be replaced.
//! - The quantile size is `ceil(n · quantile_fraction)`, at most `floor(n / 2)`; fewer than two
//!   ranked trials means no split. Ties keep trial-id order (Ray keeps insertion order).
//! - A donor is drawn uniformly among the top-quantile trials that have a checkpoint (Ray draws
//!   among all of them and skips the exploit when the draw has none).

use crate::{Config, Decision, Rng, SchedResult, SchedulerConfigError, TrialId, TrialView};
use rand::Rng as _;
use std::collections::{BTreeMap, BTreeSet};

/// What the scheduler knows of one member of the population.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Member {
    /// Its latest config (updated on every result and on exploit).
    pub config: Config,
    /// Whether it has ever had a checkpoint (a donor needs one).
    pub has_checkpoint: bool,
    /// Its latest score, higher is better.
    pub last_score: Option<f64>,
    /// Its progress at its last perturbation boundary (Ray's `last_train_time`).
    pub last_train_time: f64,
    /// Its progress when it was last considered for perturbation.
    pub last_perturbation_time: f64,
    /// Its latest reported progress.
    pub progress: f64,
    /// Whether it has ended.
    pub finished: bool,
    /// Its score when it reached each boundary (index `floor((t - burn_in) / interval)`).
    pub at_boundary: BTreeMap<i64, f64>,
}

impl Member {
    fn new(config: &Config, has_checkpoint: bool) -> Self {
        Member {
            config: config.clone(),
            has_checkpoint,
            last_score: None,
            last_train_time: 0.0,
            last_perturbation_time: 0.0,
            progress: 0.0,
            finished: false,
            at_boundary: BTreeMap::new(),
        }
    }
}

/// What the population rule says about one result.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Step {
    /// Not at a boundary (or ignored): keep running.
    Continue,
    /// The result breaks `require_attrs`.
    Stop(String),
    /// At a perturbation boundary: `donor` is set when the trial should exploit it, `pause` when
    /// it should yield its slot to waiting trials.
    Boundary {
        /// The top-quantile trial to clone, when this one is in the bottom quantile.
        donor: Option<TrialId>,
        /// Whether to pause (trials are queued and no exploit happens).
        pause: bool,
    },
}

/// The population: one record per trial, ordered by id.
#[derive(Clone, Debug)]
pub(crate) struct Population {
    interval: f64,
    burn_in: f64,
    quantile_fraction: f64,
    require_attrs: bool,
    /// Synchronous mode: a boundary only records the score; the caller ranks at the barrier.
    synch: bool,
    members: BTreeMap<TrialId, Member>,
}

impl Population {
    /// A population with the given perturbation rules (validated by the caller).
    pub fn new(interval: f64, burn_in: f64, quantile_fraction: f64, require_attrs: bool) -> Self {
        Population { interval, burn_in, quantile_fraction, require_attrs, synch: false, members: BTreeMap::new() }
    }

    /// The same population in synchronous mode (see [`Population::on_result`]).
    pub fn synchronous(mut self) -> Self {
        self.synch = true;
        self
    }

    /// Records a trial (or refreshes one replayed from the store).
    pub fn add(&mut self, trial: &TrialView<'_>) {
        self.observe(trial);
    }

    fn observe(&mut self, trial: &TrialView<'_>) -> &mut Member {
        let m = self.members.entry(trial.id).or_insert_with(|| Member::new(trial.config, trial.has_checkpoint));
        if &m.config != trial.config {
            m.config = trial.config.clone();
        }
        m.has_checkpoint |= trial.has_checkpoint;
        m
    }

    /// Applies Ray's per-result rule: skip results without the metric, wait for burn-in and the
    /// perturbation interval, then rank and pick a donor for a bottom-quantile trial.
    pub fn on_result(&mut self, trial: &TrialView<'_>, r: &SchedResult, rng: &mut Rng) -> Step {
        let (interval, burn_in, require_attrs) = (self.interval, self.burn_in, self.require_attrs);
        let m = self.observe(trial);
        if r.progress.is_finite() {
            m.progress = r.progress;
        }
        let Some(score) = r.score else {
            return if require_attrs {
                Step::Stop("the result lacks the scheduler's metric (require_attrs = true)".into())
            } else {
                Step::Continue
            };
        };
        m.last_score = Some(score);
        let t = r.progress;
        if !t.is_finite() || t < burn_in || t - m.last_perturbation_time < interval {
            return Step::Continue;
        }
        m.last_train_time = t;
        m.last_perturbation_time = t;
        let boundary = ((t - burn_in) / interval).floor() as i64;
        m.at_boundary.insert(boundary, score);
        let has_checkpoint = m.has_checkpoint;
        if self.synch {
            return Step::Boundary { donor: None, pause: false };
        }
        let (lower, upper) = match self.ranking_boundary(trial.id) {
            Some(b) => self.quantiles_at(b),
            None => (Vec::new(), Vec::new()),
        };
        let donor = if lower.contains(&trial.id) { self.pick_donor(&upper, trial.id, rng) } else { None };
        let pause = donor.is_none() && r.queued > 0 && has_checkpoint;
        Step::Boundary { donor, pause }
    }

    /// The bottom and top quantiles (worst first, best last), each of the same size.
    #[cfg(test)]
    pub fn quantiles(&self) -> (Vec<TrialId>, Vec<TrialId>) {
        let scores =
            self.members.iter().filter(|(_, m)| !m.finished).filter_map(|(&id, m)| m.last_score.map(|s| (id, s)));
        split(scores.collect(), self.quantile_fraction)
    }

    /// The boundary to rank `trial` at: its most recent one that at least half of the live
    /// population (and at least two trials) has reached, so trials are compared at equal progress
    /// and the first to arrive at a boundary is judged on the previous one.
    fn ranking_boundary(&self, trial: TrialId) -> Option<i64> {
        let live = self.members.values().filter(|m| !m.finished && m.last_score.is_some()).count();
        let need = live.div_ceil(2).max(2);
        let me = self.members.get(&trial)?;
        me.at_boundary
            .keys()
            .rev()
            .copied()
            .find(|b| self.members.values().filter(|m| !m.finished && m.at_boundary.contains_key(b)).count() >= need)
    }

    /// The quantiles among the trials that have reached `boundary`, ranked by their score there:
    /// a trial is compared with others at the same progress, never with trials still behind it
    /// (whose lower scores would shield it) nor ahead (whose extra training would doom it).
    pub fn quantiles_at(&self, boundary: i64) -> (Vec<TrialId>, Vec<TrialId>) {
        let scores = self
            .members
            .iter()
            .filter(|(_, m)| !m.finished)
            .filter_map(|(&id, m)| m.at_boundary.get(&boundary).map(|s| (id, *s)));
        split(scores.collect(), self.quantile_fraction)
    }

    /// The latest boundary `trial` has reached.
    pub fn last_boundary(&self, trial: TrialId) -> Option<i64> {
        self.members.get(&trial)?.at_boundary.keys().next_back().copied()
    }

    /// Whether every live member has reached `boundary` (or a later one).
    pub fn all_reached(&self, boundary: i64) -> bool {
        self.members
            .values()
            .filter(|m| !m.finished)
            .all(|m| m.at_boundary.keys().next_back().is_some_and(|b| *b >= boundary))
    }

    pub(crate) fn pick_donor(&self, upper: &[TrialId], trial: TrialId, rng: &mut Rng) -> Option<TrialId> {
        let eligible: Vec<TrialId> = upper
            .iter()
            .copied()
            .filter(|id| *id != trial && self.members.get(id).is_some_and(|m| m.has_checkpoint && !m.finished))
            .collect();
        if eligible.is_empty() {
            return None;
        }
        Some(eligible[rng.random_range(0..eligible.len() as u64) as usize])
    }

    /// Records that `trial` now continues from `donor`'s checkpoint with `config`: it takes over
    /// the donor's boundary times (as Ray) and progress. It keeps its own (low) score until it
    /// reports again, so it is not picked as a donor before its clone is in place.
    pub fn exploited(&mut self, trial: TrialId, donor: TrialId, config: Config) {
        let Some(d) = self.members.get(&donor) else { return };
        let (perturbed, trained, progress) = (d.last_perturbation_time, d.last_train_time, d.progress);
        if let Some(m) = self.members.get_mut(&trial) {
            m.config = config;
            m.has_checkpoint = true;
            m.last_perturbation_time = perturbed;
            m.last_train_time = trained;
            m.progress = progress;
        }
    }

    /// The member record of `trial`.
    pub fn member(&self, trial: TrialId) -> Option<&Member> {
        self.members.get(&trial)
    }

    /// Marks a trial as ended: it is no longer ranked nor chosen as a donor.
    pub fn complete(&mut self, trial: TrialId) {
        if let Some(m) = self.members.get_mut(&trial) {
            m.finished = true;
        }
    }

    /// Ray's fair share: the waiting trial with the least progress (the first one on ties).
    pub fn choose(&self, waiting: &[TrialId]) -> Option<TrialId> {
        let progress = |id: &TrialId| self.members.get(id).map_or(0.0, |m| m.progress);
        let mut best: Option<(TrialId, f64)> = None;
        for id in waiting {
            let p = progress(id);
            match best {
                Some((_, b)) if b <= p => {}
                _ => best = Some((*id, p)),
            }
        }
        best.map(|(id, _)| id)
    }
}

/// Splits ranked scores into the bottom and top quantiles (worst first, best last), each of the
/// same size `ceil(n · q)`, at most `floor(n / 2)`; NaN ranks lowest, ties keep trial-id order.
fn split(scores: Vec<(TrialId, f64)>, q: f64) -> (Vec<TrialId>, Vec<TrialId>) {
    let mut ranked: Vec<(TrialId, f64)> =
        scores.into_iter().map(|(id, s)| (id, if s.is_nan() { f64::NEG_INFINITY } else { s })).collect();
    if ranked.len() <= 1 {
        return (Vec::new(), Vec::new());
    }
    ranked.sort_by(|a, b| a.1.total_cmp(&b.1));
    let n = ranked.len();
    // The tiny slack keeps e.g. 10 × 0.3 from rounding up to 4.
    let k = ((n as f64 * q - 1e-9).ceil().max(0.0) as usize).min(n / 2);
    let ids: Vec<TrialId> = ranked.into_iter().map(|(id, _)| id).collect();
    (ids[..k].to_vec(), ids[n - k..].to_vec())
}

/// An explore step: the config (and what changed) for `trial` cloning `donor`.
pub(crate) type Explore<'a> = dyn FnMut(&Population, TrialId, TrialId, &mut Rng) -> (Config, String) + 'a;

/// `trial` clones `donor` with `explore`'s config, recorded in the population; returns it.
fn exploit(
    population: &mut Population,
    trial: TrialId,
    donor: TrialId,
    rng: &mut Rng,
    explore: &mut Explore<'_>,
) -> (Config, String) {
    let (config, note) = explore(population, trial, donor, rng);
    population.exploited(trial, donor, config.clone());
    (config, note)
}

/// The asynchronous modes' decision on a result's step (PBT and PB2).
pub(crate) fn decide(
    step: Step,
    population: &mut Population,
    trial: TrialId,
    rng: &mut Rng,
    explore: &mut Explore<'_>,
) -> Decision {
    match step {
        Step::Continue | Step::Boundary { donor: None, pause: false } => Decision::Continue,
        Step::Stop(reason) => Decision::Stop { reason },
        Step::Boundary { donor: None, pause: true } => Decision::Pause,
        Step::Boundary { donor: Some(donor), .. } => {
            let (config, note) = exploit(population, trial, donor, rng, explore);
            Decision::Exploit { donor, config, note }
        }
    }
}

/// Synchronous mode's barrier (PBT and PB2): trials that reached a boundary wait, paused, until
/// every live trial has; the exploits decided for waiting trials go to the controller.
#[derive(Clone, Debug, Default)]
pub(crate) struct Barrier {
    /// Trials paused at the barrier.
    held: BTreeSet<TrialId>,
    /// Exploits decided for held trials: `(trial, donor, config, note)`.
    pending: Vec<(TrialId, TrialId, Config, String)>,
}

impl Barrier {
    /// `trial` has reached a boundary. `Err(decision)`: it waits there (paused), or continues
    /// when it has no checkpoint to resume from; `Ok((lower, upper))`: it is the last live trial
    /// to arrive, the barrier is open, and these are the quantiles at that boundary.
    #[allow(clippy::type_complexity)]
    fn arrive(
        &mut self,
        population: &Population,
        trial: &TrialView<'_>,
    ) -> Result<(Vec<TrialId>, Vec<TrialId>), Decision> {
        let Some(b) = population.last_boundary(trial.id) else { return Err(Decision::Continue) };
        if !population.all_reached(b) {
            // A trial without a checkpoint cannot wait: pausing would start it over.
            if trial.has_checkpoint || population.member(trial.id).is_some_and(|m| m.has_checkpoint) {
                self.held.insert(trial.id);
                return Err(Decision::Pause);
            }
            return Err(Decision::Continue);
        }
        self.held.clear();
        Ok(population.quantiles_at(b))
    }

    /// `trial` has reached a boundary: it waits there (see [`Barrier::arrive`]), or, the last to
    /// arrive, each bottom-quantile trial gets a top-quantile donor and `explore`'s config. The
    /// arriving trial's exploit is its decision; the others go to the controller.
    pub(crate) fn open(
        &mut self,
        population: &mut Population,
        trial: &TrialView<'_>,
        rng: &mut Rng,
        explore: &mut Explore<'_>,
    ) -> Decision {
        let (lower, upper) = match self.arrive(population, trial) {
            Ok(quantiles) => quantiles,
            Err(wait) => return wait,
        };
        let mut own = Decision::Continue;
        for t in lower {
            let Some(donor) = population.pick_donor(&upper, t, rng) else { continue };
            let (config, note) = exploit(population, t, donor, rng, explore);
            if t == trial.id {
                own = Decision::Exploit { donor, config, note };
            } else {
                self.pending.push((t, donor, config, note));
            }
        }
        own
    }

    /// `trial` ended; if everyone else still live is waiting, the barrier opens without
    /// perturbing (this call gets no generator to draw donors with).
    pub(crate) fn complete(&mut self, population: &Population, trial: TrialId) {
        self.held.remove(&trial);
        if !self.held.is_empty() {
            let lowest = self.held.iter().filter_map(|t| population.last_boundary(*t)).min();
            if lowest.is_some_and(|b| population.all_reached(b)) {
                self.held.clear();
            }
        }
    }

    /// The waiting trials that may run (those not held at the barrier).
    pub(crate) fn free(&self, waiting: &[TrialId]) -> Vec<TrialId> {
        waiting.iter().copied().filter(|t| !self.held.contains(t)).collect()
    }

    /// The exploits decided for held trials since the last call.
    pub(crate) fn take(&mut self) -> Vec<(TrialId, TrialId, Config, String)> {
        std::mem::take(&mut self.pending)
    }
}

/// A config error for `field`.
pub(crate) fn config_error(field: impl Into<String>, message: impl Into<String>) -> SchedulerConfigError {
    SchedulerConfigError { field: field.into(), message: message.into() }
}

/// Checks the optional `metric`/`mode` override: both or neither, mode `min` or `max`.
pub(crate) fn check_objective(metric: Option<&str>, mode: Option<&str>) -> Result<(), SchedulerConfigError> {
    match (metric, mode) {
        (None, None) => Ok(()),
        (Some(""), _) => Err(config_error("metric", "expected a non-empty result key")),
        (_, Some(m)) if m != "min" && m != "max" => {
            Err(config_error("mode", format!("expected \"min\" or \"max\", got {m:?}")))
        }
        (Some(_), Some(_)) => Ok(()),
        (Some(_), None) => Err(config_error("mode", "expected \"min\" or \"max\" alongside metric")),
        (None, Some(_)) => Err(config_error("metric", "expected a result key alongside mode")),
    }
}

/// The override as `(metric, higher_is_better)`, when both are given.
pub(crate) fn objective<'a>(metric: Option<&'a str>, mode: Option<&str>) -> Option<(&'a str, bool)> {
    Some((metric?, mode? == "max"))
}

/// Checks the settings both PBT and PB2 take.
pub(crate) fn check_common(time_attr: &str, interval: f64, quantile_fraction: f64) -> Result<(), SchedulerConfigError> {
    if time_attr.is_empty() {
        return Err(config_error("time_attr", "expected a non-empty result key"));
    }
    if !(interval.is_finite() && interval > 0.0) {
        return Err(config_error("perturbation_interval", format!("expected a number > 0, got {interval}")));
    }
    if !(0.0..=0.5).contains(&quantile_fraction) {
        return Err(config_error(
            "quantile_fraction",
            format!("expected a number in [0, 0.5], got {quantile_fraction}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn feed(p: &mut Population, id: u64, progress: f64, score: f64, ckpt: bool, rng: &mut Rng) -> Step {
        let cfg = Config::new();
        let view = TrialView { id: TrialId(id), config: &cfg, has_checkpoint: ckpt };
        p.on_result(&view, &SchedResult { progress, score: Some(score), queued: 0 }, rng)
    }

    fn ids(v: &[u64]) -> Vec<TrialId> {
        v.iter().map(|&i| TrialId(i)).collect()
    }

    #[test]
    fn quantile_split_by_hand() {
        // Scores 0.5, 0.1, 0.9, 0.3, NaN, 0.7, 0.2, 0.8: sorted ascending (NaN lowest) the ids
        // are 4, 1, 6, 3, 0, 5, 7, 2; ceil(8 × 0.25) = 2 per quantile.
        let mut p = Population::new(1.0, 0.0, 0.25, true);
        let mut rng = Rng::seed_from_u64(0);
        for (id, s) in [0.5, 0.1, 0.9, 0.3, f64::NAN, 0.7, 0.2, 0.8].into_iter().enumerate() {
            feed(&mut p, id as u64, 1.0, s, true, &mut rng);
        }
        assert_eq!(p.quantiles(), (ids(&[4, 1]), ids(&[7, 2])));
        // With 0.5 the halves split 4/4; with 0.3, ceil(2.4) = 3; with 0.0 nothing moves.
        p.quantile_fraction = 0.5;
        assert_eq!(p.quantiles(), (ids(&[4, 1, 6, 3]), ids(&[0, 5, 7, 2])));
        p.quantile_fraction = 0.3;
        assert_eq!(p.quantiles(), (ids(&[4, 1, 6]), ids(&[5, 7, 2])));
        p.quantile_fraction = 0.0;
        assert_eq!(p.quantiles(), (vec![], vec![]));
        // Finished trials leave the ranking: 7 left; ceil(1.75) = 2.
        p.quantile_fraction = 0.25;
        p.complete(TrialId(2));
        assert_eq!(p.quantiles(), (ids(&[4, 1]), ids(&[5, 7])));
    }

    #[test]
    fn three_trials_make_one_each_and_one_trial_none() {
        let mut p = Population::new(1.0, 0.0, 0.5, true);
        let mut rng = Rng::seed_from_u64(0);
        feed(&mut p, 0, 1.0, 3.0, true, &mut rng);
        assert_eq!(p.quantiles(), (vec![], vec![]));
        feed(&mut p, 1, 1.0, 1.0, true, &mut rng);
        feed(&mut p, 2, 1.0, 2.0, true, &mut rng);
        // ceil(1.5) = 2 > floor(3 / 2) = 1.
        assert_eq!(p.quantiles(), (ids(&[1]), ids(&[0])));
    }

    #[test]
    fn trials_are_ranked_against_others_at_the_same_boundary() {
        let mut p = Population::new(5.0, 0.0, 0.25, true);
        let mut rng = Rng::seed_from_u64(0);
        // 1 is ahead (boundary 2, score 50); 0 and 2 reach boundary 1.
        feed(&mut p, 1, 5.0, 20.0, true, &mut rng);
        feed(&mut p, 1, 10.0, 50.0, true, &mut rng);
        let first = feed(&mut p, 2, 5.0, 30.0, true, &mut rng);
        // At boundary 1: 1 had 20, 2 has 30: 2 is not in the bottom.
        assert_eq!(first, Step::Boundary { donor: None, pause: false });
        // 0 has 10 at boundary 1: the worst there, so it clones the best at boundary 1 (trial 2),
        // not trial 1, whose 50 came an interval later.
        let second = feed(&mut p, 0, 5.0, 10.0, true, &mut rng);
        assert_eq!(second, Step::Boundary { donor: Some(TrialId(2)), pause: false });
        // 1 alone at boundary 3 is judged at boundary 2 (the latest most trials reached): it led there.
        assert_eq!(feed(&mut p, 1, 15.0, 1.0, true, &mut rng), Step::Boundary { donor: None, pause: false });
        // 2 reaches boundary 2 with 5: at boundary 2 only 1 (50) and 2 (5): 2 clones 1.
        assert_eq!(
            feed(&mut p, 2, 10.0, 5.0, true, &mut rng),
            Step::Boundary { donor: Some(TrialId(1)), pause: false }
        );
    }

    #[test]
    fn boundaries_respect_interval_and_burn_in() {
        let mut p = Population::new(5.0, 12.0, 0.5, true);
        let mut rng = Rng::seed_from_u64(0);
        assert_eq!(feed(&mut p, 0, 5.0, 1.0, true, &mut rng), Step::Continue, "burn-in");
        assert!(matches!(feed(&mut p, 0, 12.0, 1.0, true, &mut rng), Step::Boundary { .. }));
        assert_eq!(feed(&mut p, 0, 16.0, 1.0, true, &mut rng), Step::Continue, "16 - 12 < 5");
        assert!(matches!(feed(&mut p, 0, 17.0, 1.0, true, &mut rng), Step::Boundary { .. }));
        assert_eq!(p.member(TrialId(0)).unwrap().last_perturbation_time, 17.0);
    }

    #[test]
    fn donors_need_a_checkpoint() {
        let mut p = Population::new(1.0, 0.0, 0.5, true);
        let mut rng = Rng::seed_from_u64(3);
        // Top half: 2 and 3, only 3 has a checkpoint; everyone reaches each boundary before 0.
        for round in 1..=20 {
            let t = f64::from(round);
            feed(&mut p, 2, t, 9.0, false, &mut rng);
            feed(&mut p, 3, t, 8.0, true, &mut rng);
            feed(&mut p, 1, t, 2.0, true, &mut rng);
            let Step::Boundary { donor, .. } = feed(&mut p, 0, t, 1.0, true, &mut rng) else {
                panic!("boundary expected");
            };
            assert_eq!(donor, Some(TrialId(3)));
        }
        p.complete(TrialId(3));
        feed(&mut p, 2, 100.0, 9.0, false, &mut rng);
        feed(&mut p, 1, 100.0, 2.0, true, &mut rng);
        let step = feed(&mut p, 0, 100.0, 1.0, true, &mut rng);
        assert_eq!(step, Step::Boundary { donor: None, pause: false }, "no eligible donor: continue");
    }

    #[test]
    fn missing_metric_follows_require_attrs_and_pause_needs_queue() {
        let cfg = Config::new();
        let view = TrialView { id: TrialId(0), config: &cfg, has_checkpoint: true };
        let mut rng = Rng::seed_from_u64(0);
        let none = SchedResult { progress: 1.0, score: None, queued: 0 };
        assert!(matches!(Population::new(1.0, 0.0, 0.25, true).on_result(&view, &none, &mut rng), Step::Stop(_)));
        assert_eq!(Population::new(1.0, 0.0, 0.25, false).on_result(&view, &none, &mut rng), Step::Continue);
        let queued = SchedResult { progress: 1.0, score: Some(1.0), queued: 2 };
        let mut p = Population::new(1.0, 0.0, 0.25, true);
        assert_eq!(p.on_result(&view, &queued, &mut rng), Step::Boundary { donor: None, pause: true });
    }

    #[test]
    fn exploit_transfers_times_and_choose_prefers_least_progress() {
        let mut p = Population::new(1.0, 0.0, 0.5, true);
        let mut rng = Rng::seed_from_u64(0);
        feed(&mut p, 0, 7.0, 9.0, true, &mut rng);
        feed(&mut p, 1, 3.0, 1.0, true, &mut rng);
        feed(&mut p, 2, 5.0, 1.0, true, &mut rng);
        assert_eq!(p.choose(&ids(&[0, 2, 1])), Some(TrialId(1)));
        assert_eq!(p.choose(&ids(&[9, 1])), Some(TrialId(9)), "never seen: progress 0");
        assert_eq!(p.choose(&[]), None);
        p.exploited(TrialId(1), TrialId(0), Config::new());
        let m = p.member(TrialId(1)).unwrap();
        assert_eq!((m.last_perturbation_time, m.last_train_time, m.progress), (7.0, 7.0, 7.0));
        assert_eq!(p.choose(&ids(&[0, 2, 1])), Some(TrialId(2)));
    }

    #[test]
    fn objective_rules() {
        assert!(check_objective(None, None).is_ok());
        assert!(check_objective(Some("loss"), Some("min")).is_ok());
        assert_eq!(check_objective(Some("loss"), Some("best")).unwrap_err().field, "mode");
        assert_eq!(check_objective(Some("loss"), None).unwrap_err().field, "mode");
        assert_eq!(check_objective(None, Some("max")).unwrap_err().field, "metric");
        assert_eq!(objective(Some("acc"), Some("max")), Some(("acc", true)));
        assert_eq!(objective(None, None), None);
        assert_eq!(check_common("t", 0.0, 0.25).unwrap_err().field, "perturbation_interval");
        assert_eq!(check_common("t", 1.0, 0.6).unwrap_err().field, "quantile_fraction");
        assert!(check_common("t", 1.0, 0.25).is_ok());
        assert_eq!(check_common("", 1.0, 0.25).unwrap_err().field, "time_attr");
    }
}
