//! Properties of the ASHA paper's promotion scheduler (`asha_promotion.rs`), driven by a simulated
//! controller: a few trials run at a time; when one pauses, stops or fails, the scheduler picks a
//! waiting trial to promote, or a new trial starts.

use hyperfleet_scheduler::asha_promotion::{AshaPromotion, AshaPromotionConfig};
use hyperfleet_scheduler::{Decision, Rng, SchedResult, TrialEnd, TrialId, TrialScheduler, TrialView};
use proptest::prelude::*;
use rand::{Rng as _, SeedableRng};

/// Everything the scheduler answered, in order.
#[derive(Debug, PartialEq)]
enum Answer {
    Chose(Option<TrialId>),
    Decided(TrialId, Decision),
}

/// Checks the promotion invariants before a `choose_trial_to_run(waiting)` call answered `got`.
fn check_choice(s: &AshaPromotion, waiting: &[TrialId], got: Option<TrialId>) {
    for k in 0..s.milestones().len() {
        assert!(s.promoted(k).len() <= s.quota(k), "rung {k}: {:?} promoted, quota {}", s.promoted(k), s.quota(k));
    }
    let candidates: Vec<(usize, f64, TrialId)> = waiting
        .iter()
        .filter_map(|t| {
            let k = s.paused_at(*t)?;
            let score = s.recorded(k).iter().find(|(id, _)| id == t)?.1;
            s.is_promotable(*t, k).then_some((k, score, *t))
        })
        .collect();
    match got {
        None => assert!(candidates.is_empty(), "promotable but none chosen: {candidates:?}"),
        Some(t) => {
            let best = candidates.iter().fold(None::<(usize, f64, TrialId)>, |b, c| match b {
                Some(b) if (b.0, b.1) >= (c.0, c.1) => Some(b),
                _ => Some(*c),
            });
            assert_eq!(best.map(|b| b.2), Some(t), "chose {t:?} among {candidates:?}");
        }
    }
}

/// Checks that each rung's best trial, paused there and unpromoted, is promotable whenever the
/// rung's quota has room (in particular as soon as `n ≥ η` before any promotion).
fn check_best_promotable(s: &AshaPromotion) {
    for k in 0..s.milestones().len() {
        let rec = s.recorded(k);
        let best = rec.iter().filter(|(_, v)| !v.is_nan()).fold(None::<(TrialId, f64)>, |b, &(t, v)| match b {
            Some((_, bv)) if bv >= v => b,
            _ => Some((t, v)),
        });
        let Some((t, _)) = best else { continue };
        if s.paused_at(t) == Some(k) && !s.promoted(k).contains(&t) && s.promoted(k).len() < s.quota(k) {
            assert!(s.is_promotable(t, k), "rung {k}: best {t:?} of {rec:?} not promotable");
        }
    }
}

/// Simulates an experiment; returns the scheduler's answers.
fn simulate(cfg: &AshaPromotionConfig, seed: u64, trials: u64, slots: usize, checks: bool) -> Vec<Answer> {
    let mut s = cfg.build().unwrap();
    let mut r = Rng::seed_from_u64(seed);
    let mut rng = Rng::seed_from_u64(seed ^ 1);
    let map = Default::default();
    let (mut running, mut waiting, mut out) = (Vec::<TrialId>::new(), Vec::<TrialId>::new(), Vec::new());
    let mut progress = std::collections::BTreeMap::<TrialId, (f64, f64)>::new();
    let mut created = 0;
    loop {
        while running.len() < slots {
            let before = checks.then(|| s.clone());
            let got = if waiting.is_empty() { None } else { s.choose_trial_to_run(&waiting) };
            if let Some(before) = before {
                check_choice(&before, &waiting, got);
            }
            out.push(Answer::Chose(got));
            if let Some(t) = got {
                waiting.retain(|w| *w != t);
                running.push(t);
                continue;
            }
            if created == trials {
                break;
            }
            let t = TrialId(created);
            created += 1;
            s.on_trial_add(&TrialView { id: t, config: &map, has_checkpoint: false }, &mut rng);
            progress.insert(t, (0.0, r.random()));
            running.push(t);
        }
        if running.is_empty() {
            break;
        }
        let t = running[r.random_range(0..running.len())];
        if r.random::<f64>() < 0.01 {
            running.retain(|x| *x != t);
            s.on_trial_complete(t, TrialEnd::Failed, None);
            continue;
        }
        let (p, q) = progress.get_mut(&t).unwrap();
        *p += if r.random::<f64>() < 0.1 { 3.0 } else { 1.0 };
        let score = if r.random::<f64>() < 0.03 { Some(f64::NAN) } else { Some(*q + 0.01 * *p) };
        let res = SchedResult { progress: *p, score, queued: waiting.len() };
        let d = s.on_result(&TrialView { id: t, config: &map, has_checkpoint: true }, &res, &mut rng);
        if checks && res.progress >= cfg.max_t {
            assert!(matches!(d, Decision::Stop { .. }), "{t:?} at {} got {d:?}", res.progress);
        }
        match d {
            Decision::Pause => {
                running.retain(|x| *x != t);
                waiting.push(t);
            }
            Decision::Stop { .. } => {
                running.retain(|x| *x != t);
                s.on_trial_complete(t, TrialEnd::Stopped, Some(&res));
            }
            _ => {}
        }
        if checks {
            check_best_promotable(&s);
        }
        out.push(Answer::Decided(t, d));
    }
    if checks {
        // Whatever still waits at the end could not be promoted.
        for t in &waiting {
            let k = s.paused_at(*t).unwrap();
            assert!(!s.is_promotable(*t, k), "{t:?} left promotable at rung {k}");
        }
    }
    out
}

/// A `choose_trial_to_run` wrapper that checks the choice against the state before it.
struct Checked(AshaPromotion);

impl Checked {
    fn choose(&mut self, waiting: &[TrialId]) -> Option<TrialId> {
        let before = self.0.clone();
        let got = self.0.choose_trial_to_run(waiting);
        check_choice(&before, waiting, got);
        got
    }
}

fn config() -> impl Strategy<Value = AshaPromotionConfig> {
    (4u32..40, 1u32..3, prop::sample::select(vec![2.0, 3.0, 4.0])).prop_map(|(max_t, grace, rf)| AshaPromotionConfig {
        max_t: f64::from(max_t),
        grace_period: f64::from(grace),
        reduction_factor: rf,
        ..Default::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn promotions_respect_quota_order_and_max_t(cfg in config(), seed in any::<u64>(), trials in 1u64..40, slots in 1usize..5) {
        simulate(&cfg, seed, trials, slots, true);
    }

    #[test]
    fn each_choice_is_the_best_promotable(cfg in config(), seed in any::<u64>(), trials in 1u64..30) {
        // Pause everyone at the first rung, then promote one at a time, checking every choice.
        let mut s = Checked(cfg.build().unwrap());
        let mut r = Rng::seed_from_u64(seed);
        let mut rng = Rng::seed_from_u64(seed);
        let map = Default::default();
        let mut waiting = Vec::new();
        for id in 0..trials {
            let t = TrialId(id);
            s.0.on_trial_add(&TrialView { id: t, config: &map, has_checkpoint: false }, &mut rng);
            let score = if r.random::<f64>() < 0.1 { f64::NAN } else { (r.random::<f64>() * 8.0).round() };
            let res = SchedResult { progress: cfg.grace_period, score: Some(score), queued: 0 };
            let d = s.0.on_result(&TrialView { id: t, config: &map, has_checkpoint: false }, &res, &mut rng);
            prop_assert!(d == Decision::Pause || cfg.grace_period >= cfg.max_t);
            waiting.push(t);
            if r.random::<f64>() < 0.3 {
                if let Some(c) = s.choose(&waiting) {
                    waiting.retain(|w| *w != c);
                }
            }
        }
        while let Some(c) = s.choose(&waiting) {
            waiting.retain(|w| *w != c);
        }
        // Promoting until nothing is promotable fills the quota, unless NaN scores leave too few.
        let valid = s.0.recorded(0).iter().filter(|(_, v)| !v.is_nan()).count();
        prop_assert_eq!(s.0.promoted(0).len(), s.0.quota(0).min(valid));
    }

    #[test]
    fn replay_reproduces_every_answer(cfg in config(), seed in any::<u64>(), trials in 1u64..30, slots in 1usize..5) {
        prop_assert_eq!(simulate(&cfg, seed, trials, slots, false), simulate(&cfg, seed, trials, slots, false));
    }
}
