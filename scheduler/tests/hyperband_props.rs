//! HyperBand (`hyperband.rs`): a hand-computed scenario, and properties over simulated
//! experiments whose controller ends the paused trials the scheduler stops.

use hyperfleet_scheduler::hyperband::{HyperBand, HyperBandConfig};
use hyperfleet_scheduler::{Decision, Rng, SchedResult, TrialEnd, TrialId, TrialScheduler, TrialView};
use proptest::prelude::*;
use rand::{Rng as _, SeedableRng};
use std::collections::BTreeMap;

fn report(hb: &mut HyperBand, id: u64, t: f64, score: f64) -> Decision {
    let map = Default::default();
    let view = TrialView { id: TrialId(id), config: &map, has_checkpoint: true };
    hb.on_result(&view, &SchedResult { progress: t, score: Some(score), queued: 0 }, &mut Rng::seed_from_u64(0))
}

fn add(hb: &mut HyperBand, id: u64) {
    let map = Default::default();
    hb.on_trial_add(&TrialView { id: TrialId(id), config: &map, has_checkpoint: false }, &mut Rng::seed_from_u64(0));
}

fn stop(reason: &str) -> Decision {
    Decision::Stop { reason: reason.into() }
}

#[test]
fn max_t_4_eta_2_by_hand() {
    // s_max+1 = round(ln 4 / ln 2) + 1 = 3 brackets: s=0 (3 trials from 4), s=1 (3 from 2), s=2 (4 from 1).
    let mut hb = HyperBandConfig { max_t: 4.0, reduction_factor: 2.0, ..Default::default() }.build().unwrap();
    assert_eq!(hb.bracket_table(), vec![(3, 4.0), (3, 2.0), (4, 1.0)]);
    for id in 0..7 {
        add(&mut hb, id);
    }
    let brackets: Vec<_> = (0..7).map(|i| hb.bracket_of(TrialId(i)).unwrap()).collect();
    assert_eq!(brackets, vec![(0, 0), (0, 0), (0, 0), (0, 1), (0, 1), (0, 1), (0, 2)]);
    // Bracket s=1: everyone pauses at t=2 until all three are there.
    assert_eq!(report(&mut hb, 3, 1.0, 0.1), Decision::Continue);
    assert_eq!(report(&mut hb, 3, 2.0, 0.1), Decision::Pause);
    assert_eq!(report(&mut hb, 4, 2.0, 0.5), Decision::Pause);
    assert_eq!(hb.choose_trial_to_run(&[TrialId(3), TrialId(4)]), None);
    // The last one completes the rung: keep ceil(3/2) = 2, the next milestone is 4.
    assert_eq!(report(&mut hb, 5, 2.0, 0.3), Decision::Continue);
    let why = "band 0, bracket s=1, rung t=2: score 0.1 not in the top 2 of 3";
    assert_eq!(hb.take_stopped(), vec![(TrialId(3), why.to_string())]);
    // A controller that does not end trial 3 gets trial 4 first, then 3, whose next result stops it.
    assert_eq!(hb.choose_trial_to_run(&[TrialId(3), TrialId(4)]), Some(TrialId(4)));
    assert_eq!(hb.choose_trial_to_run(&[TrialId(3)]), Some(TrialId(3)));
    assert_eq!(report(&mut hb, 3, 3.0, 9.0), stop(why));
    hb.on_trial_complete(TrialId(3), TrialEnd::Stopped, None);
    // The last halving: both reach 4; the bracket is finished and everyone left stops.
    assert_eq!(report(&mut hb, 5, 4.0, 0.3), Decision::Pause);
    assert_eq!(report(&mut hb, 4, 4.0, 0.6), stop("band 0, bracket s=1 finished at t=4"));
    assert_eq!(hb.take_stopped(), vec![(TrialId(5), "band 0, bracket s=1 finished at t=4".to_string())]);
    // Bracket s=0 starts at max_t: its trials wait for each other there, then all stop.
    assert_eq!(report(&mut hb, 0, 4.0, 1.0), Decision::Pause);
    assert_eq!(report(&mut hb, 1, 4.0, 2.0), Decision::Pause);
    assert_eq!(report(&mut hb, 2, 4.0, 0.0), stop("band 0, bracket s=0 finished at t=4"));
    assert_eq!(hb.take_stopped().len(), 2);
    // Band 1 opens with a fresh bracket s=0.
    add(&mut hb, 7);
    add(&mut hb, 8);
    assert_eq!(hb.bracket_of(TrialId(7)), Some((0, 2)));
    for id in 9..12 {
        add(&mut hb, id);
    }
    assert_eq!(hb.bracket_of(TrialId(10)), Some((1, 0)));
}

#[test]
fn a_departure_re_checks_the_bracket() {
    let mut hb = HyperBandConfig { max_t: 4.0, reduction_factor: 2.0, ..Default::default() }.build().unwrap();
    for id in 0..6 {
        add(&mut hb, id);
    }
    // Bracket s=1 (trials 3, 4, 5): 3 and 4 wait at t=2; 5 fails before getting there.
    report(&mut hb, 3, 2.0, 0.1);
    report(&mut hb, 4, 2.0, 0.5);
    hb.on_trial_complete(TrialId(5), TrialEnd::Failed, None);
    // Halving among the two left: ceil(3/2) = 2 keep going, both resumable.
    assert_eq!(hb.take_stopped(), vec![]);
    assert_eq!(hb.choose_trial_to_run(&[TrialId(3), TrialId(4)]), Some(TrialId(3)));
    // After the halving, 4 waits at t=4; 3 fails: the bracket is finished, 4 stops (Ray leaves it paused).
    assert_eq!(report(&mut hb, 4, 4.0, 0.5), Decision::Pause);
    hb.on_trial_complete(TrialId(3), TrialEnd::Failed, None);
    assert_eq!(hb.take_stopped(), vec![(TrialId(4), "band 0, bracket s=1 finished at t=4".to_string())]);
}

/// Everything the scheduler answered, in order.
#[derive(Debug, PartialEq)]
enum Answer {
    Chose(Option<TrialId>),
    Decided(TrialId, Decision),
    Stopped(Vec<(TrialId, String)>),
}

/// Simulates an experiment with unit steps; checks invariants when `checks`; returns the answers.
fn simulate(cfg: &HyperBandConfig, seed: u64, trials: u64, slots: usize, checks: bool) -> Vec<Answer> {
    let mut hb = cfg.build().unwrap();
    let mut r = Rng::seed_from_u64(seed);
    let (mut running, mut waiting, mut out) = (Vec::<TrialId>::new(), Vec::<TrialId>::new(), Vec::new());
    let mut state = BTreeMap::<TrialId, (f64, f64, bool)>::new(); // progress, quality, ended
    let mut created = 0;
    let mut closed = false;
    // The controller ends the paused trials the scheduler stopped.
    fn drain(
        hb: &mut HyperBand,
        waiting: &mut Vec<TrialId>,
        state: &mut BTreeMap<TrialId, (f64, f64, bool)>,
        out: &mut Vec<Answer>,
    ) {
        let stopped = hb.take_stopped();
        for (t, _) in &stopped {
            assert!(waiting.contains(t), "{t:?} stopped but not paused");
            waiting.retain(|w| w != t);
            hb.on_trial_complete(*t, TrialEnd::Stopped, None);
            state.get_mut(t).expect("known trial").2 = true;
        }
        out.push(Answer::Stopped(stopped));
    }
    loop {
        while running.len() < slots {
            let got = if waiting.is_empty() { None } else { hb.choose_trial_to_run(&waiting) };
            out.push(Answer::Chose(got));
            if let Some(t) = got {
                assert!(waiting.contains(&t));
                if checks {
                    // Synchronous: everyone still in its bracket has caught up with it.
                    let at = state[&t].0;
                    for (o, (p, _, ended)) in &state {
                        if !ended && hb.bracket_of(*o) == hb.bracket_of(t) {
                            assert!(*p >= at, "{t:?} resumed at {at} while {o:?} is at {p}");
                        }
                    }
                }
                waiting.retain(|w| *w != t);
                running.push(t);
                continue;
            }
            if created == trials {
                if !closed {
                    // The controller tells the scheduler when the searcher has nothing more.
                    closed = true;
                    hb.on_no_more_trials();
                    drain(&mut hb, &mut waiting, &mut state, &mut out);
                    continue;
                }
                break;
            }
            let t = TrialId(created);
            created += 1;
            let map = Default::default();
            hb.on_trial_add(&TrialView { id: t, config: &map, has_checkpoint: false }, &mut Rng::seed_from_u64(0));
            state.insert(t, (0.0, r.random(), false));
            running.push(t);
        }
        if running.is_empty() {
            break;
        }
        let t = running[r.random_range(0..running.len())];
        if r.random::<f64>() < 0.01 {
            running.retain(|x| *x != t);
            state.get_mut(&t).unwrap().2 = true;
            hb.on_trial_complete(t, TrialEnd::Failed, None);
            drain(&mut hb, &mut waiting, &mut state, &mut out);
            continue;
        }
        let (p, q, _) = state.get_mut(&t).unwrap();
        *p += 1.0;
        let res = SchedResult { progress: *p, score: Some(*q + 0.01 * *p), queued: waiting.len() };
        let map = Default::default();
        let d =
            hb.on_result(&TrialView { id: t, config: &map, has_checkpoint: true }, &res, &mut Rng::seed_from_u64(0));
        if checks && cfg.stop_last_trials && res.progress >= cfg.max_t {
            assert!(d != Decision::Continue, "{t:?} continues at {}", res.progress);
        }
        match &d {
            Decision::Pause => {
                running.retain(|x| *x != t);
                waiting.push(t);
            }
            Decision::Stop { .. } => {
                running.retain(|x| *x != t);
                state.get_mut(&t).unwrap().2 = true;
                hb.on_trial_complete(t, TrialEnd::Stopped, Some(&res));
            }
            _ if res.progress >= 1.5 * cfg.max_t => {
                running.retain(|x| *x != t);
                state.get_mut(&t).unwrap().2 = true;
                hb.on_trial_complete(t, TrialEnd::Completed, Some(&res));
            }
            _ => {}
        }
        out.push(Answer::Decided(t, d));
        drain(&mut hb, &mut waiting, &mut state, &mut out);
    }
    if checks {
        assert!(waiting.is_empty(), "stranded: {waiting:?}");
    }
    out
}

fn config() -> impl Strategy<Value = HyperBandConfig> {
    (2u32..30, prop::sample::select(vec![2.0, 3.0, 4.0, 2.5]), any::<bool>()).prop_map(
        |(max_t, eta, stop_last_trials)| HyperBandConfig {
            max_t: f64::from(max_t),
            reduction_factor: eta,
            stop_last_trials,
            ..Default::default()
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn brackets_halve_synchronously_and_nothing_is_stranded(
        cfg in config(), seed in any::<u64>(), trials in 1u64..40, slots in 1usize..8
    ) {
        simulate(&cfg, seed, trials, slots, true);
    }

    #[test]
    fn replay_reproduces_every_answer(cfg in config(), seed in any::<u64>(), trials in 1u64..30, slots in 1usize..6) {
        prop_assert_eq!(simulate(&cfg, seed, trials, slots, false), simulate(&cfg, seed, trials, slots, false));
    }
}
