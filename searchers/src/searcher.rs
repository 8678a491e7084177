//! The `Searcher` seam: proposes configs and learns from results.

use crate::{space::Config, Rng};
use serde::{Deserialize, Serialize};

/// A trial's position in its experiment: 0, 1, 2, ... in creation order; never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TrialId(pub u64);

/// What a searcher answers when asked for a config.
#[derive(Clone, Debug, PartialEq)]
pub enum Suggestion {
    /// Run this config (nested object, all domains resolved except `sample_from` leaves, which are `null`).
    Config(Config),
    /// Nothing now; ask again after a trial completes.
    Wait,
    /// Nothing ever again (sticky).
    Exhausted,
}

/// One intermediate result as a searcher sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    /// The experiment's objective with the mode folded in: higher is better; `None` when absent or NaN.
    pub score: Option<f64>,
    /// The trial's progress (`training_iteration` unless told otherwise).
    pub progress: f64,
}

/// How a trial ended.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Ran to the end; its last score (higher is better), if any.
    Completed {
        /// The last score reported, higher is better.
        score: Option<f64>,
    },
    /// Stopped early by the scheduler; its last score, if any.
    Pruned {
        /// The last score reported, higher is better.
        score: Option<f64>,
    },
    /// Errored.
    Failed,
}

/// Proposes configs. State is a fold over `on_trial_add`/`on_result`/`on_complete`, so resume replays them.
pub trait Searcher: Send {
    /// Proposes a config for `trial`. `rng` is derived from the experiment seed and the trial id,
    /// so the same seed gives the same configs even after a resume.
    fn suggest(&mut self, trial: TrialId, rng: &mut Rng) -> Suggestion;
    /// Called for every trial that exists, including ones replayed from the store on resume.
    fn on_trial_add(&mut self, _trial: TrialId, _config: &Config) {}
    /// Called for every intermediate result.
    fn on_result(&mut self, _trial: TrialId, _obs: &Observation) {}
    /// Every objective of a trial's last result (modes folded in: higher is better), called once
    /// when it ends, before on_complete; only in multi-objective experiments.
    fn on_objectives(&mut self, _trial: TrialId, _values: &[f64]) {}
    /// Called once when a trial ends.
    fn on_complete(&mut self, _trial: TrialId, _outcome: &Outcome) {}
}

/// Lets a boxed searcher (`Box<dyn Searcher>`) stand wherever a searcher is expected.
impl<S: Searcher + ?Sized> Searcher for Box<S> {
    fn suggest(&mut self, trial: TrialId, rng: &mut Rng) -> Suggestion {
        (**self).suggest(trial, rng)
    }
    fn on_trial_add(&mut self, trial: TrialId, config: &Config) {
        (**self).on_trial_add(trial, config)
    }
    fn on_result(&mut self, trial: TrialId, obs: &Observation) {
        (**self).on_result(trial, obs)
    }
    fn on_objectives(&mut self, trial: TrialId, values: &[f64]) {
        (**self).on_objectives(trial, values)
    }
    fn on_complete(&mut self, trial: TrialId, outcome: &Outcome) {
        (**self).on_complete(trial, outcome)
    }
}
