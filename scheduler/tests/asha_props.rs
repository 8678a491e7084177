//! Properties of Ray's ASHA rule (`asha.rs`) over random interleaved result streams.

use hyperfleet_scheduler::asha::{Asha, AshaConfig};
use hyperfleet_scheduler::{Decision, Rng, SchedResult, TrialEnd, TrialId, TrialScheduler, TrialView};
use proptest::prelude::*;
use rand::{Rng as _, SeedableRng};

/// One call of a stream.
#[derive(Clone, Debug)]
enum Call {
    Add(u64),
    Result(u64, SchedResult),
    Complete(u64, TrialEnd, Option<SchedResult>),
}

/// What a scheduler answered to each call (bracket for adds, decision for results).
#[derive(Clone, Debug, PartialEq)]
enum Answer {
    Bracket(Option<usize>),
    Decision(Decision),
    Nothing,
}

/// A random stream: trials are added, report interleaved with random steps, some fail.
fn stream(seed: u64, trials: u64, max_t: f64) -> Vec<Call> {
    let mut r = Rng::seed_from_u64(seed);
    let mut calls = Vec::new();
    let mut live: Vec<(u64, f64, f64)> = Vec::new(); // (id, progress, quality)
    let mut next = 0;
    while next < trials || !live.is_empty() {
        if next < trials && (live.len() < 3 || r.random::<f64>() < 0.2) {
            calls.push(Call::Add(next));
            live.push((next, 0.0, r.random()));
            next += 1;
            continue;
        }
        let k = r.random_range(0..live.len());
        let (id, t, q) = &mut live[k];
        *t += r.random_range(1..4) as f64;
        let u: f64 = r.random();
        let score = if u < 0.05 {
            None
        } else if u < 0.1 {
            Some(f64::NAN)
        } else {
            Some(*q * *t + r.random::<f64>())
        };
        let res = SchedResult { progress: *t, score, queued: 0 };
        calls.push(Call::Result(*id, res.clone()));
        if *t >= 1.5 * max_t || r.random::<f64>() < 0.02 {
            let end = if r.random::<f64>() < 0.5 { TrialEnd::Completed } else { TrialEnd::Failed };
            calls.push(Call::Complete(*id, end, Some(res)));
            live.swap_remove(k);
        }
    }
    calls
}

/// Runs `calls` on `s`; a trial stopped by the scheduler reports no more (its later calls are skipped)
/// and is completed with its last result, as the controller does.
fn run(
    s: &mut Asha,
    calls: &[Call],
    seed: u64,
    mut check: impl FnMut(&Asha, &Asha, u64, &SchedResult, &Decision),
) -> Vec<Answer> {
    let cfg = Default::default();
    let mut rng = Rng::seed_from_u64(seed);
    let mut stopped = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for call in calls {
        match call {
            Call::Add(id) => {
                s.on_trial_add(&TrialView { id: TrialId(*id), config: &cfg, has_checkpoint: false }, &mut rng);
                out.push(Answer::Bracket(s.bracket_of(TrialId(*id))));
            }
            Call::Result(id, res) if !stopped.contains(id) => {
                let before = s.clone();
                let view = TrialView { id: TrialId(*id), config: &cfg, has_checkpoint: false };
                let d = s.on_result(&view, res, &mut rng);
                check(&before, s, *id, res, &d);
                if matches!(d, Decision::Stop { .. }) {
                    stopped.insert(*id);
                    s.on_trial_complete(TrialId(*id), TrialEnd::Stopped, Some(res));
                }
                out.push(Answer::Decision(d));
            }
            Call::Complete(id, end, last) if !stopped.contains(id) => {
                s.on_trial_complete(TrialId(*id), *end, last.as_ref());
                out.push(Answer::Nothing);
            }
            _ => out.push(Answer::Nothing),
        }
    }
    out
}

fn config() -> impl Strategy<Value = AshaConfig> {
    (2u32..60, 1u32..4, prop::sample::select(vec![2.0, 3.0, 4.0, 2.5]), 1usize..4, any::<bool>()).prop_map(
        |(max_t, grace, rf, brackets, stop_last_trials)| AshaConfig {
            max_t: f64::from(max_t.max(grace)),
            grace_period: f64::from(grace),
            reduction_factor: rf,
            brackets,
            stop_last_trials,
            ..Default::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn no_trial_runs_past_max_t_when_stop_last_trials(cfg in config(), seed in any::<u64>(), trials in 1u64..16) {
        let calls = stream(seed, trials, cfg.max_t);
        let mut s = cfg.build().unwrap();
        run(&mut s, &calls, seed, |_, _, _, res, d| {
            if cfg.stop_last_trials && res.score.is_some() && res.progress >= cfg.max_t {
                assert!(matches!(d, Decision::Stop { .. }), "t={} got {d:?}", res.progress);
            }
        });
    }

    #[test]
    fn the_best_of_a_rung_is_never_stopped_there(cfg in config(), seed in any::<u64>(), trials in 1u64..16) {
        let calls = stream(seed, trials, cfg.max_t);
        let mut s = cfg.build().unwrap();
        run(&mut s, &calls, seed, |before, after, id, res, d| {
            let Some(b) = after.bracket_of(TrialId(id)) else { return };
            // The rung this result was recorded at, if any, with the scores it held before.
            let (old, new) = (before.recorded(b), after.recorded(b));
            let Some(k) = (0..new.len()).find(|&k| new[k].1.len() > old[k].1.len()) else { return };
            let score = res.score.unwrap();
            let best_before = old[k].1.iter().map(|(_, s)| *s).filter(|s| !s.is_nan()).fold(f64::NEG_INFINITY, f64::max);
            if score >= best_before {
                assert!(!matches!(d, Decision::Stop { .. }), "best {score} at rung {k} over {:?} stopped: {d:?}", old[k].1);
            }
            if let Decision::Stop { reason } = d {
                if !reason.starts_with("reached max_t") {
                    assert!(score < best_before, "{reason}");
                }
            }
        });
    }

    #[test]
    fn replay_reproduces_every_decision(cfg in config(), seed in any::<u64>(), trials in 1u64..16) {
        let calls = stream(seed, trials, cfg.max_t);
        let first = run(&mut cfg.build().unwrap(), &calls, seed, |_, _, _, _, _| {});
        let second = run(&mut cfg.build().unwrap(), &calls, seed, |_, _, _, _, _| {});
        prop_assert_eq!(first, second);
    }
}

#[test]
fn brackets_are_drawn_with_rays_weights() {
    // Rung counts 4, 3, 2 (max_t=100, grace=2, rf=3): weights e^0, e^-1, e^-2, normalised.
    let cfg = AshaConfig { max_t: 100.0, grace_period: 2.0, reduction_factor: 3.0, brackets: 3, ..Default::default() };
    let mut s = cfg.build().unwrap();
    let mut rng = Rng::seed_from_u64(3);
    let map = Default::default();
    let mut counts = [0usize; 3];
    let n = 30_000;
    for id in 0..n {
        s.on_trial_add(&TrialView { id: TrialId(id), config: &map, has_checkpoint: false }, &mut rng);
        counts[s.bracket_of(TrialId(id)).unwrap()] += 1;
    }
    for (c, p) in counts.iter().zip(s.bracket_probabilities()) {
        let freq = *c as f64 / n as f64;
        assert!((freq - p).abs() < 0.01, "{counts:?} vs {:?}", s.bracket_probabilities());
    }
}
