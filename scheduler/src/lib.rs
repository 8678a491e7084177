//! Trial schedulers: decide the fate of running trials. Pure: no IO, no clock, no async;
//! randomness is passed in, time arrives as each trial's progress value.
//!
//! ```
//! use hyperfleet_scheduler::{Decision, SchedulerConfig, SchedResult};
//! use hyperfleet_searchers::TrialId;
//! let mut fifo = SchedulerConfig::Fifo.build().unwrap();
//! let r = SchedResult { progress: 1.0, score: Some(0.5) };
//! assert_eq!(fifo.on_result(TrialId(0), &r), Decision::Continue);
//! ```

mod fifo;

pub use fifo::FifoScheduler;
pub use hyperfleet_searchers::{Config, TrialId};
use serde::{Deserialize, Serialize};

/// What the scheduler decides after a result.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Keep running.
    Continue,
    /// Stop for now and release resources; the trial may be resumed from its checkpoint later.
    Pause,
    /// Stop for good (early stopping).
    Stop,
    /// Continue from `donor`'s latest checkpoint with `config` (population-based training).
    Exploit {
        /// Trial whose checkpoint is cloned.
        donor: TrialId,
        /// The explored config to continue with.
        config: Config,
    },
}

/// One result as a scheduler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct SchedResult {
    /// The trial's progress in the scheduler's time unit (`time_attr`).
    pub progress: f64,
    /// The objective with the mode folded in (higher is better); `None` when missing or NaN.
    pub score: Option<f64>,
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

/// Decides the fate of running trials. State is a fold over the calls, so resume replays the stored log.
pub trait TrialScheduler: Send {
    /// A trial now exists (also called for trials replayed from the store).
    fn on_trial_add(&mut self, _trial: TrialId) {}
    /// A trial reported a result; returns what to do with it.
    fn on_result(&mut self, trial: TrialId, result: &SchedResult) -> Decision;
    /// A trial ended.
    fn on_trial_complete(&mut self, _trial: TrialId, _end: TrialEnd) {}
    /// Picks which waiting trial (paused or pending) to run next when capacity frees up.
    fn choose_trial_to_run(&mut self, waiting: &[TrialId]) -> Option<TrialId> {
        waiting.first().copied()
    }
}

/// A scheduler as written in an experiment file or built by the Python API.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SchedulerConfig {
    /// Run every trial to completion in creation order.
    #[default]
    Fifo,
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
        match self {
            SchedulerConfig::Fifo => Ok(Box::new(FifoScheduler)),
        }
    }
}
