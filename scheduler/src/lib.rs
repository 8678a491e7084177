//! Trial schedulers: decide the fate of running trials. Pure: no IO, no clock, no async;
//! randomness is passed in, time arrives as each trial's progress value.
//!
//! ```
//! use hyperfleet_scheduler::{Decision, SchedResult, SchedulerConfig, TrialId, TrialView};
//! use rand::SeedableRng;
//! let mut fifo = SchedulerConfig::Fifo.build().unwrap();
//! let mut rng = hyperfleet_scheduler::Rng::seed_from_u64(0);
//! let config = Default::default();
//! let trial = TrialView { id: TrialId(0), config: &config, has_checkpoint: false };
//! let r = SchedResult { progress: 1.0, score: Some(0.5), queued: 0 };
//! assert_eq!(fifo.on_result(&trial, &r, &mut rng), Decision::Continue);
//! ```

pub mod asha;
pub mod asha_adaptive;
pub mod asha_promotion;
mod fifo;
pub mod hyperband;
pub mod median;
pub mod pb2;
pub mod pbt;
pub mod pbt_replay;
mod stats;

pub use asha::{Asha, AshaConfig};
pub use asha_adaptive::{AshaAdaptive, AshaAdaptiveConfig};
pub use asha_promotion::{AshaPromotion, AshaPromotionConfig};
pub use fifo::FifoScheduler;
pub use hyperband::{HyperBand, HyperBandConfig};
pub use hyperfleet_searchers::{Config, Rng, TrialId};
pub use median::{MedianStopping, MedianStoppingConfig};
pub use pb2::{Pb2, Pb2Config};
pub use pbt::{Pbt, PbtConfig};
pub use pbt_replay::{PbtReplay, PbtReplayConfig};
use serde::{Deserialize, Serialize};

/// What the scheduler decides after a result.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Keep running.
    Continue,
    /// Stop for now and release resources; the trial may be resumed from its checkpoint later
    /// (when `choose_trial_to_run` picks it).
    Pause,
    /// Stop for good (early stopping); `reason` says why (rung, cut-off) for the record.
    Stop {
        /// Human-readable reason, stored with the trial.
        reason: String,
    },
    /// Continue from `donor`'s latest checkpoint with `config` (population-based training).
    Exploit {
        /// Trial whose checkpoint is cloned.
        donor: TrialId,
        /// The explored config to continue with.
        config: Config,
        /// What was changed and how, for the policy log.
        note: String,
    },
}

/// What a scheduler sees of a trial when it decides.
#[derive(Clone, Copy, Debug)]
pub struct TrialView<'a> {
    /// The trial.
    pub id: TrialId,
    /// Its current config.
    pub config: &'a Config,
    /// Whether it has a checkpoint that could be cloned or resumed from.
    pub has_checkpoint: bool,
}

/// One result as a scheduler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedResult {
    /// The trial's progress in the scheduler's time unit (`time_attr`).
    pub progress: f64,
    /// The objective with the mode folded in (higher is better): `None` when the result lacks
    /// the metric, `Some(NaN)` when it reported NaN (or a non-number).
    pub score: Option<f64>,
    /// Trials waiting for capacity when this result arrived (for time-multiplexing).
    pub queued: usize,
}

/// How a trial ended, as a scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrialEnd {
    /// Ran to the end (or met a stop criterion).
    Completed,
    /// Stopped by this scheduler.
    Stopped,
    /// Errored.
    Failed,
}

/// Decides the fate of running trials. Pure: state is a fold over the calls, randomness comes
/// from the `rng` passed in (one stream per experiment, advanced in log order), so replaying a
/// stored log through a fresh scheduler reproduces every decision.
pub trait TrialScheduler: Send {
    /// A trial now exists (also called for trials replayed from the store).
    fn on_trial_add(&mut self, _trial: &TrialView<'_>, _rng: &mut Rng) {}
    /// A trial reported a result; returns what to do with it.
    fn on_result(&mut self, trial: &TrialView<'_>, result: &SchedResult, rng: &mut Rng) -> Decision;
    /// A trial ended; `last` is its last result, if any.
    fn on_trial_complete(&mut self, _trial: TrialId, _end: TrialEnd, _last: Option<&SchedResult>) {}
    /// Picks which waiting trial (paused or pending) runs next when capacity frees up; `None`
    /// means none of them should run now.
    fn choose_trial_to_run(&mut self, waiting: &[TrialId]) -> Option<TrialId> {
        waiting.first().copied()
    }
    /// Whether a brand-new trial may start now (promotion-based schedulers hold new trials back
    /// while a paused one is promotable).
    fn may_start_new_trial(&self) -> bool {
        true
    }
    /// Whether the whole population should exist from the start (PBT: trials waiting for capacity
    /// take turns, so they must be known before the first perturbation).
    fn wants_population_up_front(&self) -> bool {
        false
    }
    /// The searcher will propose no more trials (schedulers that wait for trials still to come stop waiting).
    fn on_no_more_trials(&mut self) {}
    /// Paused trials this scheduler has decided to stop (with the reason); the controller ends them.
    fn take_stopped(&mut self) -> Vec<(TrialId, String)> {
        Vec::new()
    }
    /// Paused trials this scheduler has decided should exploit a donor (synchronous PBT's
    /// barrier): `(trial, donor, explored config, note)`; the controller clones and requeues them.
    fn take_exploits(&mut self) -> Vec<(TrialId, TrialId, Config, String)> {
        Vec::new()
    }
    /// What the scheduler has to say about its own course (adaptive ASHA moving new trials to
    /// another bracket, and why); the controller reads it after each `on_trial_add` and records
    /// each note as an event of that trial, so notes are left in `on_trial_add` only.
    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Fills hyperparameters the scheduler needs but a new trial's config lacks (PBT's mutations),
    /// drawing from `rng`, before the trial is recorded.
    fn fill_config(&mut self, _config: &mut Config, _rng: &mut Rng) {}
}

/// A scheduler as written in an experiment file (`[scheduler] kind = "..."`) or built by the Python API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SchedulerConfig {
    /// Run every trial to completion in creation order.
    #[default]
    Fifo,
    /// Asynchronous successive halving with Ray's stopping rule.
    Asha(asha::AshaConfig),
    /// The ASHA paper's promotion algorithm (pause at rungs, promote the top 1/η).
    AshaPromotion(asha_promotion::AshaPromotionConfig),
    /// ASHA that measures how well each rung predicts the end and stops only at rungs that do.
    AshaAdaptive(asha_adaptive::AshaAdaptiveConfig),
    /// Synchronous HyperBand.
    #[serde(rename = "hyperband")]
    HyperBand(hyperband::HyperBandConfig),
    /// The median stopping rule.
    Median(median::MedianStoppingConfig),
    /// Population-based training.
    Pbt(pbt::PbtConfig),
    /// Replays one trial's PBT schedule.
    PbtReplay(pbt_replay::PbtReplayConfig),
    /// Population-based bandits (GP-UCB explore).
    Pb2(pb2::Pb2Config),
}

/// A scheduler configuration that cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("scheduler.{field}: {message}")]
pub struct SchedulerConfigError {
    /// The offending key.
    pub field: String,
    /// What was expected.
    pub message: String,
}

impl SchedulerConfig {
    /// Validates the configuration and builds the runtime scheduler.
    pub fn build(&self) -> Result<Box<dyn TrialScheduler>, SchedulerConfigError> {
        Ok(match self {
            SchedulerConfig::Fifo => Box::new(FifoScheduler),
            SchedulerConfig::Asha(c) => Box::new(c.build()?),
            SchedulerConfig::AshaPromotion(c) => Box::new(c.build()?),
            SchedulerConfig::AshaAdaptive(c) => Box::new(c.build()?),
            SchedulerConfig::HyperBand(c) => Box::new(c.build()?),
            SchedulerConfig::Median(c) => Box::new(c.build()?),
            SchedulerConfig::Pbt(c) => Box::new(c.build()?),
            SchedulerConfig::PbtReplay(c) => Box::new(c.build()?),
            SchedulerConfig::Pb2(c) => Box::new(c.build()?),
        })
    }

    /// The result key that measures progress (`time_attr`).
    pub fn time_attr(&self) -> &str {
        match self {
            SchedulerConfig::Fifo => "training_iteration",
            SchedulerConfig::Asha(c) => c.time_attr(),
            SchedulerConfig::AshaPromotion(c) => c.time_attr(),
            SchedulerConfig::AshaAdaptive(c) => c.time_attr(),
            SchedulerConfig::HyperBand(c) => c.time_attr(),
            SchedulerConfig::Median(c) => c.time_attr(),
            SchedulerConfig::Pbt(c) => c.time_attr(),
            SchedulerConfig::PbtReplay(c) => c.time_attr(),
            SchedulerConfig::Pb2(c) => c.time_attr(),
        }
    }

    /// The scheduler's own metric and whether higher is better, when it overrides the experiment's.
    pub fn objective(&self) -> Option<(&str, bool)> {
        match self {
            SchedulerConfig::Fifo => None,
            SchedulerConfig::Asha(c) => c.objective(),
            SchedulerConfig::AshaPromotion(c) => c.objective(),
            SchedulerConfig::AshaAdaptive(c) => c.objective(),
            SchedulerConfig::HyperBand(c) => c.objective(),
            SchedulerConfig::Median(c) => c.objective(),
            SchedulerConfig::Pbt(c) => c.objective(),
            SchedulerConfig::PbtReplay(c) => c.objective(),
            SchedulerConfig::Pb2(c) => c.objective(),
        }
    }

    /// Gives the scheduler the experiment's objective when it has none of its own (same decisions;
    /// its stop reasons then speak in the user's metric, e.g. `loss 0.54 above cut-off 0.52`).
    pub fn with_objective(mut self, metric: &str, higher_is_better: bool) -> Self {
        let mode = if higher_is_better { "max" } else { "min" };
        let fill = |m: &mut Option<String>, md: &mut Option<String>| {
            if m.is_none() && md.is_none() {
                *m = Some(metric.to_string());
                *md = Some(mode.to_string());
            }
        };
        match &mut self {
            SchedulerConfig::Fifo | SchedulerConfig::PbtReplay(_) => {}
            SchedulerConfig::Asha(c) => fill(&mut c.metric, &mut c.mode),
            SchedulerConfig::AshaPromotion(c) => fill(&mut c.metric, &mut c.mode),
            SchedulerConfig::AshaAdaptive(c) => fill(&mut c.metric, &mut c.mode),
            SchedulerConfig::HyperBand(c) => fill(&mut c.metric, &mut c.mode),
            SchedulerConfig::Median(c) => fill(&mut c.metric, &mut c.mode),
            SchedulerConfig::Pbt(c) => fill(&mut c.metric, &mut c.mode),
            SchedulerConfig::Pb2(c) => fill(&mut c.metric, &mut c.mode),
        }
        self
    }

    /// Whether the scheduler needs the driver's Python explore function (`custom_explore_fn`).
    pub fn needs_python(&self) -> bool {
        match self {
            SchedulerConfig::Pbt(c) => c.custom_explore_fn || has_callable(&c.hyperparam_mutations),
            SchedulerConfig::Pb2(c) => c.custom_explore_fn,
            _ => false,
        }
    }
}

/// Whether a mutation table holds a `{"$callable": id}` leaf (a Python function).
fn has_callable(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(m) => m.contains_key("$callable") || m.values().any(has_callable),
        _ => false,
    }
}
