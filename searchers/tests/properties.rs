//! Property tests: sampled values stay in their domains, seeds reproduce, grids are walked
//! exactly once per sample, the limiter holds its cap, and replay resumes where it left off.

mod common;
use common::{domain, inside};
use hyperfleet_searchers::{
    trial_rng, BasicVariantConfig, BasicVariantGenerator, ConcurrencyLimiter, Config, Outcome, Rng, Searcher, Space,
    Suggestion, TrialId,
};
use proptest::prelude::*;
use rand::SeedableRng;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Suggests and adds up to `limit` trials with per-trial generators from `seed`.
fn run(gen: &mut impl Searcher, seed: u64, limit: u64) -> Vec<Config> {
    let mut out = Vec::new();
    for t in 0..limit {
        match gen.suggest(TrialId(t), &mut trial_rng(seed, TrialId(t))) {
            Suggestion::Config(c) => {
                gen.on_trial_add(TrialId(t), &c);
                out.push(c);
            }
            _ => break,
        }
    }
    out
}

fn grid_space(sizes: &[usize]) -> Space {
    let mut m = serde_json::Map::new();
    for (i, &n) in sizes.iter().enumerate() {
        let values: Vec<usize> = (0..n).collect();
        m.insert(format!("g{i}"), json!({ "grid_search": values }));
    }
    m.insert("r".into(), json!({"uniform": [0, 1]}));
    m.insert("k".into(), json!({"nested": {"c": 1}}));
    Space::parse(&Value::Object(m)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn samples_stay_inside_their_domain(d in domain(), seed in any::<u64>()) {
        prop_assume!(d.validate().is_ok());
        let mut rng = Rng::seed_from_u64(seed);
        for _ in 0..200 {
            let v = d.sample(&mut rng);
            prop_assert!(inside(&d, &v, None), "{:?} gave {}", d, v);
            prop_assert!(d.contains(&v), "{:?} does not contain {}", d, v);
        }
    }

    #[test]
    fn canonical_form_round_trips(d in domain()) {
        prop_assume!(d.validate().is_ok());
        let space = Space::parse(&json!({"s": {"p": {"$domain": d}}, "c": [1, 2]})).unwrap();
        prop_assert_eq!(Space::parse(&space.to_canonical_json()).unwrap(), space);
    }

    #[test]
    fn same_seed_same_sequence(seed in any::<u64>(), sizes in prop::collection::vec(1..4usize, 0..3), n in 1..4i64, constant in any::<bool>()) {
        let cfg = BasicVariantConfig { constant_grid_search: constant, ..Default::default() };
        let a = run(&mut cfg.clone().build(grid_space(&sizes), n).unwrap(), seed, 100);
        let b = run(&mut cfg.build(grid_space(&sizes), n).unwrap(), seed, 100);
        prop_assert_eq!(a, b);
    }

    #[test]
    fn grid_walked_once_per_sample(sizes in prop::collection::vec(1..5usize, 0..4), n in 1..4i64) {
        let space = grid_space(&sizes);
        let g = space.grid_size() as usize;
        let mut gen = BasicVariantGenerator::new(space, n).unwrap();
        let configs = run(&mut gen, 3, 1_000);
        prop_assert_eq!(configs.len(), g * n as usize);
        prop_assert_eq!(gen.suggest(TrialId(999), &mut Rng::seed_from_u64(0)), Suggestion::Exhausted);
        for block in configs.chunks(g) {
            let combos: BTreeSet<Vec<u64>> = block
                .iter()
                .map(|c| (0..sizes.len()).map(|i| c[&format!("g{i}")].as_u64().unwrap()).collect())
                .collect();
            prop_assert_eq!(combos.len(), g);
        }
    }

    #[test]
    fn limiter_never_exceeds_its_cap(cap in 1..5usize, batch in any::<bool>(), ops in prop::collection::vec((any::<bool>(), any::<usize>()), 1..80)) {
        let gen = BasicVariantGenerator::new(grid_space(&[2]), -1).unwrap();
        let mut lim = ConcurrencyLimiter::new(gen, cap, batch).unwrap();
        let mut running: Vec<TrialId> = Vec::new();
        let mut next = 0u64;
        for (start, pick) in ops {
            if start || running.is_empty() {
                let t = TrialId(next);
                if let Suggestion::Config(c) = lim.suggest(t, &mut trial_rng(1, t)) {
                    lim.on_trial_add(t, &c);
                    running.push(t);
                    next += 1;
                }
            } else {
                let t = running.remove(pick % running.len());
                lim.on_complete(t, &Outcome::Completed { score: Some(1.0) });
            }
            prop_assert!(running.len() <= cap);
            prop_assert!(lim.live() <= cap);
        }
    }

    #[test]
    fn replay_then_suggest_equals_uninterrupted(seed in any::<u64>(), sizes in prop::collection::vec(1..4usize, 0..3), n in 1..4i64, constant in any::<bool>(), cut in 0..20usize, with_point in any::<bool>()) {
        let mut cfg = BasicVariantConfig { constant_grid_search: constant, ..Default::default() };
        if with_point {
            cfg.points_to_evaluate = vec![json!({"r": 0.5}).as_object().unwrap().clone()];
        }
        let straight = run(&mut cfg.clone().build(grid_space(&sizes), n).unwrap(), seed, 100);
        let cut = cut.min(straight.len());
        let mut resumed = cfg.build(grid_space(&sizes), n).unwrap();
        for (t, c) in straight.iter().enumerate().take(cut) {
            resumed.on_trial_add(TrialId(t as u64), c);
            if t % 2 == 0 {
                resumed.on_complete(TrialId(t as u64), &Outcome::Failed);
            }
        }
        let t = TrialId(cut as u64);
        let next = resumed.suggest(t, &mut trial_rng(seed, t));
        match straight.get(cut) {
            Some(c) => prop_assert_eq!(next, Suggestion::Config(c.clone())),
            None => prop_assert_eq!(next, Suggestion::Exhausted),
        }
    }
}
