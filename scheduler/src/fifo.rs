//! First in, first out: every trial runs to completion.

use crate::{Decision, SchedResult, TrialId, TrialScheduler};

/// Runs trials in creation order and never stops one early.
#[derive(Clone, Copy, Debug, Default)]
pub struct FifoScheduler;

impl TrialScheduler for FifoScheduler {
    fn on_result(&mut self, _trial: TrialId, _result: &SchedResult) -> Decision {
        Decision::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_continues_and_picks_the_oldest_waiting_trial() {
        let mut s = FifoScheduler;
        let r = SchedResult { progress: 3.0, score: None };
        assert_eq!(s.on_result(TrialId(4), &r), Decision::Continue);
        assert_eq!(s.choose_trial_to_run(&[TrialId(2), TrialId(1)]), Some(TrialId(2)));
        assert_eq!(s.choose_trial_to_run(&[]), None);
    }
}
