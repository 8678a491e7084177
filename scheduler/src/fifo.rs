//! First in, first out: every trial runs to completion.

use crate::{Decision, Rng, SchedResult, TrialScheduler, TrialView};

/// Runs trials in creation order and never stops one early.
#[derive(Clone, Copy, Debug, Default)]
pub struct FifoScheduler;

impl TrialScheduler for FifoScheduler {
    fn on_result(&mut self, _trial: &TrialView<'_>, _result: &SchedResult, _rng: &mut Rng) -> Decision {
        Decision::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TrialId;
    use rand::SeedableRng;

    #[test]
    fn fifo_continues_and_picks_the_oldest_waiting_trial() {
        let mut s = FifoScheduler;
        let r = SchedResult { progress: 3.0, score: None, queued: 0 };
        let cfg = Default::default();
        let view = TrialView { id: TrialId(4), config: &cfg, has_checkpoint: false };
        let mut rng = Rng::seed_from_u64(1);
        assert_eq!(s.on_result(&view, &r, &mut rng), Decision::Continue);
        assert_eq!(s.choose_trial_to_run(&[TrialId(2), TrialId(1)]), Some(TrialId(2)));
        assert_eq!(s.choose_trial_to_run(&[]), None);
    }
}
