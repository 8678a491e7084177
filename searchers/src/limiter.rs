//! Caps how many trials any searcher has live at once, as Ray's `ConcurrencyLimiter` does.

use crate::searcher::{Observation, Outcome, Searcher, Suggestion, TrialId};
use crate::{space::Config, Rng};
use std::collections::{BTreeMap, BTreeSet};

/// Why a limiter could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LimiterError {
    /// `max_concurrent` was 0; a limiter needs room for at least one trial.
    #[error("max_concurrent must be at least 1, got 0")]
    ZeroMaxConcurrent,
}

/// Wraps a searcher and answers `Wait` while `max_concurrent` trials are live.
///
/// A trial is live from `on_trial_add` until its `on_complete`. With `batch`, completions are
/// held back: the inner searcher hears of them (in completion order) only once every live trial
/// has completed, and the live set empties at that moment, so trials run in whole batches.
/// `on_result` always passes straight through; a completion of a trial that is not live is
/// ignored, as in Ray. `on_objectives` of a live trial goes with its completion: straight
/// through, or held with it in batch mode.
#[derive(Clone, Debug)]
pub struct ConcurrencyLimiter<S> {
    inner: S,
    max_concurrent: usize,
    batch: bool,
    live: BTreeSet<TrialId>,
    /// Live trials not yet completed (differs from `live.len()` only in batch mode).
    unfinished: usize,
    /// Batch mode: completions waiting for the rest of the batch.
    held: Vec<(TrialId, Outcome)>,
    /// Batch mode: objectives of live trials, told just before their held completions.
    objectives: BTreeMap<TrialId, Vec<f64>>,
}

impl<S: Searcher> ConcurrencyLimiter<S> {
    /// Wraps `inner`; `max_concurrent` must be at least 1.
    pub fn new(inner: S, max_concurrent: usize, batch: bool) -> Result<Self, LimiterError> {
        if max_concurrent == 0 {
            return Err(LimiterError::ZeroMaxConcurrent);
        }
        Ok(ConcurrencyLimiter {
            inner,
            max_concurrent,
            batch,
            live: BTreeSet::new(),
            unfinished: 0,
            held: Vec::new(),
            objectives: BTreeMap::new(),
        })
    }

    /// The wrapped searcher.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Unwraps the searcher.
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The cap.
    pub fn max_concurrent(&self) -> usize {
        self.max_concurrent
    }

    /// Whether completions are released batch by batch.
    pub fn batch(&self) -> bool {
        self.batch
    }

    /// Trials counted against the cap now.
    pub fn live(&self) -> usize {
        self.live.len()
    }
}

impl<S: Searcher> Searcher for ConcurrencyLimiter<S> {
    fn suggest(&mut self, trial: TrialId, rng: &mut Rng) -> Suggestion {
        if self.live.len() >= self.max_concurrent {
            return Suggestion::Wait;
        }
        self.inner.suggest(trial, rng)
    }

    fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
        if self.live.insert(trial) {
            self.unfinished += 1;
        }
        self.inner.on_trial_add(trial, config);
    }

    fn on_result(&mut self, trial: TrialId, obs: &Observation) {
        self.inner.on_result(trial, obs);
    }

    fn on_objectives(&mut self, trial: TrialId, values: &[f64]) {
        if !self.live.contains(&trial) || self.held.iter().any(|(t, _)| *t == trial) {
            return;
        }
        if self.batch {
            self.objectives.insert(trial, values.to_vec());
        } else {
            self.inner.on_objectives(trial, values);
        }
    }

    fn on_complete(&mut self, trial: TrialId, outcome: &Outcome) {
        if !self.live.contains(&trial) {
            return;
        }
        if !self.batch {
            self.live.remove(&trial);
            self.unfinished -= 1;
            self.inner.on_complete(trial, outcome);
            return;
        }
        if self.held.iter().any(|(t, _)| *t == trial) {
            return;
        }
        self.held.push((trial, outcome.clone()));
        self.unfinished -= 1;
        if self.unfinished == 0 {
            for (t, o) in std::mem::take(&mut self.held) {
                self.live.remove(&t);
                if let Some(values) = self.objectives.remove(&t) {
                    self.inner.on_objectives(t, &values);
                }
                self.inner.on_complete(t, &o);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// Always proposes an empty config; records what it hears.
    #[derive(Debug, Default)]
    struct Probe {
        completed: Vec<TrialId>,
        added: Vec<TrialId>,
        /// Objectives heard, and how many completions had been heard before each.
        objectives: Vec<(TrialId, Vec<f64>, usize)>,
    }

    impl Searcher for Probe {
        fn suggest(&mut self, _trial: TrialId, _rng: &mut Rng) -> Suggestion {
            Suggestion::Config(Config::new())
        }
        fn on_trial_add(&mut self, trial: TrialId, _config: &Config) {
            self.added.push(trial);
        }
        fn on_objectives(&mut self, trial: TrialId, values: &[f64]) {
            self.objectives.push((trial, values.to_vec(), self.completed.len()));
        }
        fn on_complete(&mut self, trial: TrialId, _outcome: &Outcome) {
            self.completed.push(trial);
        }
    }

    fn start(l: &mut ConcurrencyLimiter<Probe>, t: u64) -> bool {
        let mut rng = Rng::seed_from_u64(t);
        match l.suggest(TrialId(t), &mut rng) {
            Suggestion::Config(c) => {
                l.on_trial_add(TrialId(t), &c);
                true
            }
            _ => false,
        }
    }

    const DONE: Outcome = Outcome::Completed { score: None };

    #[test]
    fn zero_is_refused() {
        let e = ConcurrencyLimiter::new(Probe::default(), 0, false).unwrap_err();
        assert_eq!(e.to_string(), "max_concurrent must be at least 1, got 0");
    }

    #[test]
    fn waits_at_cap_and_frees_on_completion() {
        let mut l = ConcurrencyLimiter::new(Probe::default(), 2, false).unwrap();
        assert!(start(&mut l, 0) && start(&mut l, 1));
        assert!(!start(&mut l, 2));
        l.on_complete(TrialId(0), &DONE);
        assert_eq!(l.inner().completed, vec![TrialId(0)]);
        assert!(start(&mut l, 2));
        assert!(!start(&mut l, 3));
        // Unknown and repeated completions change nothing.
        l.on_complete(TrialId(0), &DONE);
        l.on_complete(TrialId(42), &DONE);
        assert_eq!(l.live(), 2);
        assert_eq!(l.into_inner().completed, vec![TrialId(0)]);
    }

    #[test]
    fn batch_waits_for_the_whole_batch() {
        let mut l = ConcurrencyLimiter::new(Probe::default(), 3, true).unwrap();
        assert!(start(&mut l, 0) && start(&mut l, 1) && start(&mut l, 2));
        l.on_complete(TrialId(1), &DONE);
        l.on_complete(TrialId(1), &DONE);
        l.on_complete(TrialId(0), &Outcome::Failed);
        assert!(!start(&mut l, 3));
        assert!(l.inner().completed.is_empty());
        l.on_complete(TrialId(2), &DONE);
        assert_eq!(l.inner().completed, vec![TrialId(1), TrialId(0), TrialId(2)]);
        assert_eq!(l.live(), 0);
        assert!(start(&mut l, 3));
        assert_eq!(l.inner().added.len(), 4);
    }

    #[test]
    fn objectives_travel_with_their_completion() {
        let mut l = ConcurrencyLimiter::new(Probe::default(), 2, false).unwrap();
        assert!(start(&mut l, 0));
        l.on_objectives(TrialId(0), &[1.0, 2.0]);
        l.on_objectives(TrialId(9), &[3.0, 4.0]);
        l.on_complete(TrialId(0), &DONE);
        assert_eq!(l.inner().objectives, vec![(TrialId(0), vec![1.0, 2.0], 0)]);
        let mut l = ConcurrencyLimiter::new(Probe::default(), 2, true).unwrap();
        assert!(start(&mut l, 0) && start(&mut l, 1));
        l.on_objectives(TrialId(1), &[5.0, 6.0]);
        l.on_complete(TrialId(1), &DONE);
        l.on_objectives(TrialId(0), &[7.0, 8.0]);
        assert!(l.inner().objectives.is_empty(), "held with the batch");
        l.on_complete(TrialId(0), &DONE);
        assert_eq!(l.inner().objectives, vec![(TrialId(1), vec![5.0, 6.0], 0), (TrialId(0), vec![7.0, 8.0], 1)]);
        assert_eq!(l.inner().completed, vec![TrialId(1), TrialId(0)]);
    }

    #[test]
    fn inner_exhaustion_passes_through_below_cap() {
        let s = crate::Space::parse(&serde_json::json!({})).unwrap();
        let gen = crate::BasicVariantGenerator::new(s, 1).unwrap();
        let mut l = ConcurrencyLimiter::new(gen, 1, false).unwrap();
        let mut rng = Rng::seed_from_u64(0);
        let Suggestion::Config(c) = l.suggest(TrialId(0), &mut rng) else { panic!() };
        l.on_trial_add(TrialId(0), &c);
        assert_eq!(l.suggest(TrialId(1), &mut rng), Suggestion::Wait);
        l.on_complete(TrialId(0), &DONE);
        assert_eq!(l.suggest(TrialId(1), &mut rng), Suggestion::Exhausted);
    }
}
