//! Properties of adaptive ASHA (`asha_adaptive.rs`) over simulated runs whose learning curves
//! cross by a random amount.

use hyperfleet_scheduler::asha_adaptive::{AshaAdaptive, AshaAdaptiveConfig};
use hyperfleet_scheduler::{Decision, Rng, SchedResult, TrialEnd, TrialId, TrialScheduler, TrialView};
use proptest::prelude::*;
use rand::{Rng as _, SeedableRng};

/// What the scheduler answered: a bracket per add, a decision per result.
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    Bracket(usize),
    Decision(Decision),
}

/// Runs `trials` trials, `slots` at a time, on curves `loss(q, t) = q + a · e^(-t / τ(q))` with
/// `τ(q) = 1 + 20 · cross · (1 - q)²` (good trials learn slowly when `cross > 0`), a trial
/// reporting every step until the scheduler stops it. Checks the invariants as it goes.
fn simulate(s: &mut AshaAdaptive, seed: u64, trials: u64, slots: usize, cross: f64, max_t: u64) -> Vec<Answer> {
    let cfg = Default::default();
    let mut rng = Rng::seed_from_u64(seed);
    let mut draw = Rng::seed_from_u64(seed ^ 0x5eed);
    let full = s.full_bracket();
    let mut out = Vec::new();
    let mut running: Vec<(u64, u64, f64, usize)> = Vec::new(); // (id, t, q, bracket)
    let mut next = 0;
    while next < trials || !running.is_empty() {
        while running.len() < slots && next < trials {
            s.on_trial_add(&TrialView { id: TrialId(next), config: &cfg, has_checkpoint: false }, &mut rng);
            let b = s.bracket_of(TrialId(next)).expect("an added trial has a bracket");
            assert!(b <= full);
            out.push(Answer::Bracket(b));
            running.push((next, 0, draw.random(), b));
            next += 1;
        }
        let k = draw.random_range(0..running.len());
        let (id, t, q, b) = &mut running[k];
        *t += 1;
        let tau = 1.0 + 20.0 * cross * (1.0 - *q) * (1.0 - *q);
        let loss = *q + 4.0 * (-(*t as f64) / tau).exp() + 0.01 * draw.random::<f64>();
        let res = SchedResult { progress: *t as f64, score: Some(-loss), queued: 0 };
        let view = TrialView { id: TrialId(*id), config: &cfg, has_checkpoint: false };
        let d = s.on_result(&view, &res, &mut rng);
        assert!(*t <= max_t, "trial {id} ran past max_t");
        let stopped = matches!(d, Decision::Stop { .. });
        if stopped && *b == full {
            assert_eq!(*t, max_t, "a calibration trial was stopped early: {d:?}");
        }
        assert!(!matches!(d, Decision::Pause | Decision::Exploit { .. }));
        out.push(Answer::Decision(d));
        if stopped {
            let id = *id;
            s.on_trial_complete(TrialId(id), TrialEnd::Stopped, Some(&res));
            running.swap_remove(k);
        }
    }
    out
}

fn build(max_t: u64, rf: f64, calibration: usize) -> AshaAdaptive {
    AshaAdaptiveConfig {
        max_t: max_t as f64,
        grace_period: 1.0,
        reduction_factor: rf,
        calibration_trials: calibration,
        ..Default::default()
    }
    .build()
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn runs_are_bounded_and_replay_exactly(
        seed in any::<u64>(), trials in 1u64..80, slots in 1usize..5, cross in 0.0f64..1.5,
        rf in prop_oneof![Just(2.0), Just(3.0), Just(4.0)], max_t in 4u64..40, calibration in 0usize..8,
    ) {
        let a = simulate(&mut build(max_t, rf, calibration), seed, trials, slots, cross, max_t);
        let b = simulate(&mut build(max_t, rf, calibration), seed, trials, slots, cross, max_t);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn the_working_bracket_follows_how_much_curves_cross() {
    // Many trials, so that calibration finishes and the working bracket settles.
    let last_bracket = |cross: f64| {
        let mut s = build(81, 3.0, 6);
        simulate(&mut s, 7, 400, 4, cross, 81);
        s.working_bracket()
    };
    assert_eq!(last_bracket(0.0), 0, "rank-consistent curves: plain ASHA");
    let crossing = last_bracket(1.0);
    assert!(crossing >= 2, "strongly crossing curves need a later first rung, got bracket {crossing}");
}
