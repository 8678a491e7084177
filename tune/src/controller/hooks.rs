//! Callbacks into the driver's language (Python stoppers, `sample_from`, callbacks, display).

use crate::progress::Progress;
use serde_json::{Map, Value};

/// What the driver may plug into the controller. Every method has a do-nothing default.
pub trait Hooks: Send {
    /// A Python `Stopper` or callable: stop this trial after this result?
    fn stop_trial(&mut self, _trial_id: &str, _result: &Map<String, Value>) -> bool {
        false
    }
    /// A `Stopper.stop_all()`: end the whole experiment now?
    fn stop_all(&mut self) -> bool {
        false
    }
    /// Fills `sample_from` leaves (given as path and callable id) of a fresh config.
    fn resolve(&mut self, _config: &mut Map<String, Value>, leaves: &[(Vec<String>, u64)]) -> Result<(), String> {
        if leaves.is_empty() {
            Ok(())
        } else {
            Err("`sample_from` leaves need the Python API".into())
        }
    }
    /// Fills `{"$call": id}` leaves (Python mutation functions) and, with `custom`, applies
    /// `custom_explore_fn` (the end of a PBT explore step).
    fn explore(&mut self, config: &mut Map<String, Value>, _custom: bool) -> Result<(), String> {
        if has_call(&Value::Object(config.clone())) {
            Err("hyperparam_mutations with functions need the Python API".into())
        } else {
            Ok(())
        }
    }
    /// A custom trial name (`trial_name_creator`).
    fn trial_name(&mut self, _trial_id: &str, _config: &Map<String, Value>) -> Option<String> {
        None
    }
    /// A custom folder name under `trials/` (`trial_dirname_creator`); refused when it is not a plain name.
    fn trial_dirname(&mut self, _trial_id: &str, _config: &Map<String, Value>) -> Option<String> {
        None
    }
    /// Every recorded result (user callbacks).
    fn on_result(&mut self, _trial_id: &str, _result: &Map<String, Value>) {}
    /// A trial reached TERMINATED or ERROR.
    fn on_trial_end(&mut self, _trial_id: &str, _status: &str) {}
    /// Shows progress; `last` is the final call.
    fn progress(&mut self, _p: &Progress, _last: bool) {}
}

/// Hooks that only print progress to the terminal (the CLI).
pub struct TerminalHooks {
    /// Progress printer.
    pub printer: crate::progress::Printer,
}

impl Hooks for TerminalHooks {
    fn progress(&mut self, p: &Progress, last: bool) {
        self.printer.show(p, last);
    }
    fn on_result(&mut self, trial_id: &str, result: &Map<String, Value>) {
        self.printer.result(trial_id, result);
    }
}

/// Whether a config holds a `{"$call": id}` leaf left for the driver to fill.
pub fn has_call(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key("$call") || m.values().any(has_call),
        Value::Array(a) => a.iter().any(has_call),
        _ => false,
    }
}
