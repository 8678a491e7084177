//! `QmcSearch` and its sequences: plain Sobol' and Halton equal SciPy's points, the inverse
//! normal CDF equals SciPy's `ndtri`, plain and scrambled Sobol' keep the net property,
//! scrambling beats random points on discrepancy, seeds give distinct reproducible sequences,
//! the searcher resumes by replay, honours `num_samples` and points, and stays in its domains.
//!
//! The SciPy values are in `fixtures/qmc.json`, written by `fixtures/gen_qmc_fixtures.py`.

mod common;
use common::{domain, inside};
use hyperfleet_searchers::qmc::{ndtri, quantile, Halton, Sobol, SOBOL_MAX_DIMS};
use hyperfleet_searchers::{
    trial_rng, Config, Domain, QmcConfig, QmcKind, QmcSearch, Rng, Searcher, Space, Suggestion, TrialId,
};
use proptest::prelude::*;
use rand::{RngCore, SeedableRng};
use serde_json::{json, Value};
use std::collections::BTreeSet;

fn fixture() -> Value {
    let text = include_str!("fixtures/qmc.json");
    serde_json::from_str(text).unwrap()
}

fn space(v: Value) -> Space {
    Space::parse(&v).unwrap()
}

fn config(s: Suggestion) -> Config {
    match s {
        Suggestion::Config(c) => c,
        other => panic!("expected a config, got {other:?}"),
    }
}

/// Suggests and adds `n` trials in order.
fn run(s: &mut QmcSearch, seed: u64, n: u64) -> Vec<Config> {
    (0..n)
        .map(|t| {
            let c = config(s.suggest(TrialId(t), &mut trial_rng(seed, TrialId(t))));
            s.on_trial_add(TrialId(t), &c);
            c
        })
        .collect()
}

#[test]
fn plain_sobol_equals_scipy() {
    let f = fixture();
    let dims = f["sobol"]["dims"].as_u64().unwrap() as usize;
    assert_eq!(dims, SOBOL_MAX_DIMS);
    let sobol = Sobol::new(dims).unwrap();
    let indices = f["sobol"]["indices"].as_array().unwrap();
    let points = f["sobol"]["points"].as_array().unwrap();
    for (i, want) in indices.iter().zip(points) {
        let i = i.as_u64().unwrap();
        let got: Vec<u64> = sobol.point_bits(i).into_iter().map(|x| x >> 34).collect();
        let want: Vec<u64> = want.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
        assert_eq!(got, want, "point {i}");
        // 30 bits are all SciPy keeps: below 2^30 points, the lower bits are zero.
        assert!(sobol.point_bits(i).iter().all(|x| x & ((1 << 34) - 1) == 0));
    }
    let two = Sobol::new(2).unwrap();
    let first: Vec<Vec<f64>> = (0..8).map(|i| two.point(i)).collect();
    assert_eq!(
        first,
        [
            [0.0, 0.0],
            [0.5, 0.5],
            [0.75, 0.25],
            [0.25, 0.75],
            [0.375, 0.375],
            [0.875, 0.875],
            [0.625, 0.125],
            [0.125, 0.625]
        ]
    );
    assert!(Sobol::new(SOBOL_MAX_DIMS + 1).is_err());
}

#[test]
fn plain_halton_and_ndtri_equal_scipy() {
    let f = fixture();
    let halton = Halton::new(8);
    assert_eq!(halton.bases(), [2, 3, 5, 7, 11, 13, 17, 19]);
    for (i, want) in f["halton"]["points"].as_array().unwrap().iter().enumerate() {
        for (x, w) in halton.point(i as u64).iter().zip(want.as_array().unwrap()) {
            assert!((x - w.as_f64().unwrap()).abs() <= 1e-15, "point {i}: {x} vs {w}");
        }
    }
    let ps = f["ndtri"]["p"].as_array().unwrap();
    for (p, want) in ps.iter().zip(f["ndtri"]["x"].as_array().unwrap()) {
        let (p, want) = (p.as_f64().unwrap(), want.as_f64().unwrap());
        let got = ndtri(p);
        assert!((got - want).abs() <= 1e-15 * want.abs().max(1.0), "ndtri({p}) = {got}, SciPy {want}");
    }
}

/// Whether every coordinate of the first `2^k` points puts one point in each `[j/2^k, (j+1)/2^k)`.
fn balanced(points: &[Vec<f64>], cells: usize) -> bool {
    (0..points[0].len()).all(|j| {
        let cellset: BTreeSet<usize> = points.iter().map(|p| (p[j] * cells as f64) as usize).collect();
        cellset.len() == cells
    })
}

#[test]
fn sobol_first_powers_of_two_are_balanced() {
    let plain = Sobol::new(SOBOL_MAX_DIMS).unwrap();
    for k in 0..=10 {
        let n = 1u64 << k;
        let pts: Vec<Vec<f64>> = (0..n).map(|i| plain.point(i)).collect();
        // Plain: each coordinate is exactly a permutation of {j / 2^k}.
        for j in 0..SOBOL_MAX_DIMS {
            let mut col: Vec<u64> = pts.iter().map(|p| p[j] * n as f64).map(|x| x as u64).collect();
            assert!(pts.iter().all(|p| (p[j] * n as f64).fract() == 0.0));
            col.sort_unstable();
            assert_eq!(col, (0..n).collect::<Vec<_>>(), "k = {k}, dim {j}");
        }
    }
    for seed in 0..4 {
        let scrambled = Sobol::scrambled(SOBOL_MAX_DIMS, &mut Rng::seed_from_u64(seed)).unwrap();
        for k in 0..=10 {
            let pts: Vec<Vec<f64>> = (0..1u64 << k).map(|i| scrambled.point(i)).collect();
            assert!(balanced(&pts, 1 << k), "seed {seed}, k = {k}");
        }
        // Scrambled points are not dyadic with few bits, and not the plain ones.
        assert!(scrambled.point(0).iter().all(|&x| x != 0.0));
    }
}

#[test]
fn scrambled_halton_is_balanced_per_base() {
    let h = Halton::scrambled(6, &mut Rng::seed_from_u64(3));
    for (j, &b) in h.bases().iter().enumerate() {
        for k in 1..=3u32 {
            let n = b.pow(k);
            if n > 3000 {
                continue;
            }
            let cells: BTreeSet<u64> = (0..n).map(|i| (h.point(i)[j] * n as f64) as u64).collect();
            assert_eq!(cells.len() as u64, n, "base {b}, k = {k}");
        }
    }
}

/// Warnock's formula for the squared L2-star discrepancy.
fn l2_star_discrepancy(points: &[Vec<f64>]) -> f64 {
    let (n, d) = (points.len() as f64, points[0].len() as i32);
    let mut a = 0.0;
    for p in points {
        a += p.iter().map(|x| 1.0 - x * x).product::<f64>();
    }
    let mut b = 0.0;
    for p in points {
        for q in points {
            b += p.iter().zip(q).map(|(x, y)| 1.0 - x.max(*y)).product::<f64>();
        }
    }
    (3f64.powi(-d) - 2f64.powi(1 - d) / n * a + b / (n * n)).sqrt()
}

#[test]
fn scrambled_sobol_and_halton_beat_random_points_on_discrepancy() {
    for seed in 0..3 {
        let mut rng = Rng::seed_from_u64(100 + seed);
        let random: Vec<Vec<f64>> =
            (0..256).map(|_| (0..4).map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64).collect()).collect();
        let s = Sobol::scrambled(4, &mut Rng::seed_from_u64(seed)).unwrap();
        let sobol: Vec<Vec<f64>> = (0..256).map(|i| s.point(i)).collect();
        let h = Halton::scrambled(4, &mut Rng::seed_from_u64(seed));
        let halton: Vec<Vec<f64>> = (0..256).map(|i| h.point(i)).collect();
        let (dr, ds, dh) = (l2_star_discrepancy(&random), l2_star_discrepancy(&sobol), l2_star_discrepancy(&halton));
        eprintln!("seed {seed}: random {dr}, sobol {ds}, halton {dh}");
        assert!(ds < dr / 2.0, "seed {seed}: sobol {ds} vs random {dr}");
        assert!(dh < dr / 2.0, "seed {seed}: halton {dh} vs random {dr}");
    }
}

#[test]
fn seeds_give_distinct_reproducible_sequences() {
    let sp = || space(json!({"x": {"uniform": [0, 1]}, "y": {"randn": [0, 1]}, "n": {"randint": [0, 1000000]}}));
    for kind in [QmcKind::Sobol, QmcKind::Halton] {
        let with = |seed: Option<u64>| QmcConfig { kind, seed, ..Default::default() }.build(sp(), -1).unwrap();
        // An explicit seed: the experiment seed does not matter.
        let a = run(&mut with(Some(1)), 0, 16);
        assert_eq!(a, run(&mut with(Some(1)), 5, 16));
        let b = run(&mut with(Some(2)), 0, 16);
        assert!(a.iter().zip(&b).all(|(p, q)| p["x"] != q["x"] && p["y"] != q["y"]), "{kind:?}");
        // No seed: the experiment seed (the key of the trials' generators) keys the scramble.
        let c = run(&mut with(None), 7, 16);
        assert_eq!(c, run(&mut with(None), 7, 16));
        let d = run(&mut with(None), 8, 16);
        assert!(c.iter().zip(&d).all(|(p, q)| p["x"] != q["x"]), "{kind:?}");
        // Still balanced: 16 points, one in each sixteenth of x.
        if kind == QmcKind::Sobol {
            let cells: BTreeSet<u64> = c.iter().map(|p| (p["x"].as_f64().unwrap() * 16.0) as u64).collect();
            assert_eq!(cells.len(), 16);
        }
    }
    // Unscrambled: SciPy's points through the inverse CDFs, whatever the seed.
    let mut plain = QmcConfig { scramble: false, ..Default::default() }.build(sp(), 4).unwrap();
    let got = run(&mut plain, 3, 4);
    assert_eq!(got[0]["n"], json!(0));
    assert_eq!(got[1], *json!({"n": 500000, "x": 0.5, "y": 0.0}).as_object().unwrap());
    assert_eq!((&got[2]["n"], &got[2]["x"]), (&json!(750000), &json!(0.25)));
    assert_eq!((&got[3]["n"], &got[3]["x"]), (&json!(250000), &json!(0.75)));
}

#[test]
fn replay_num_samples_points_and_refusals() {
    let sp = || {
        space(json!({
            "opt": {"lr": {"loguniform": [1e-4, 1e-1]}, "name": "adam"},
            "act": {"choice": ["relu", "tanh"]},
            "one": {"randint": [4, 5]},
            "f": {"$domain": {"kind": "sample_from", "id": 1}},
        }))
    };
    let cfg: QmcConfig =
        serde_json::from_value(json!({"kind": "halton", "points_to_evaluate": [{"opt": {"lr": 0.01}}]})).unwrap();
    let mut live = cfg.clone().build(sp(), 6).unwrap();
    assert_eq!(live.dims(), 2);
    let all = run(&mut live, 4, 6);
    assert_eq!(all[0]["opt"], json!({"lr": 0.01, "name": "adam"}));
    assert!(all.iter().all(|c| c["one"] == json!(4) && c["f"].is_null() && c["opt"]["name"] == "adam"));
    assert_eq!(live.suggest(TrialId(6), &mut trial_rng(4, TrialId(6))), Suggestion::Exhausted);
    for n in 0..6 {
        let mut resumed = cfg.clone().build(sp(), 6).unwrap();
        for (t, c) in all.iter().enumerate().take(n) {
            resumed.on_trial_add(TrialId(t as u64), c);
            resumed.on_trial_add(TrialId(t as u64), c);
        }
        let t = TrialId(n as u64);
        assert_eq!(resumed.suggest(t, &mut trial_rng(4, t)), Suggestion::Config(all[n].clone()), "n = {n}");
    }
    // The first point of the sequence follows the preset: trial 1 is point 0.
    let seq = Halton::scrambled(2, &mut Rng::from_seed(trial_rng(4, TrialId(0)).get_seed()));
    let lr = all[1]["opt"]["lr"].as_f64().unwrap();
    let want = quantile(&Domain::Loguniform { low: 1e-4, high: 1e-1, base: 10.0 }, seq.point(0)[1]);
    assert_eq!(json!(lr), want);

    let e = QmcSearch::new(space(json!({"m": {"g": {"grid_search": [1, 2]}}})), 4).unwrap_err();
    assert_eq!(e.to_string(), "m.g: grid_search is not supported by QMC search; use random/grid search");
    assert_eq!(
        QmcSearch::new(sp(), -2).unwrap_err().to_string(),
        "num_samples: must be -1 (unlimited) or at least 0, got -2"
    );
    let cfg: QmcConfig = serde_json::from_value(json!({"points_to_evaluate": [{"y": 1}]})).unwrap();
    assert_eq!(cfg.build(sp(), 4).unwrap_err().to_string(), "points_to_evaluate[0].y: no such key in the search space");
    let mut wide = serde_json::Map::new();
    for i in 0..=SOBOL_MAX_DIMS {
        wide.insert(format!("p{i:03}"), json!({"uniform": [0, 1]}));
    }
    let e = QmcSearch::new(Space::parse(&Value::Object(wide.clone())).unwrap(), 4).unwrap_err();
    assert!(e.to_string().starts_with("kind: sobol supports at most 128 dimensions, got 129"), "{e}");
    let halton = QmcConfig { kind: QmcKind::Halton, ..Default::default() };
    assert!(halton.build(Space::parse(&Value::Object(wide)).unwrap(), 4).is_ok());
    assert!(serde_json::from_value::<QmcConfig>(json!({"kind": "latin"})).is_err());
    assert!(serde_json::from_value::<QmcConfig>(json!({"skip": 1})).is_err());
    let d: QmcConfig = serde_json::from_value(json!({})).unwrap();
    assert_eq!(d, QmcConfig::default());
    assert!(d.scramble && d.kind == QmcKind::Sobol && d.seed.is_none());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn configs_stay_inside_their_domains(
        domains in prop::collection::vec(domain(), 1..5),
        seed in any::<u64>(),
        halton in any::<bool>(),
        scramble in any::<bool>(),
    ) {
        prop_assume!(domains.iter().all(|d| d.validate().is_ok()));
        let mut m = serde_json::Map::new();
        for (i, d) in domains.iter().enumerate() {
            m.insert(format!("p{i}"), json!({"$domain": d}));
        }
        let kind = if halton { QmcKind::Halton } else { QmcKind::Sobol };
        let cfg = QmcConfig { kind, scramble, ..Default::default() };
        let mut s = cfg.build(Space::parse(&Value::Object(m)).unwrap(), -1).unwrap();
        for c in run(&mut s, seed, 40) {
            for (i, d) in domains.iter().enumerate() {
                let v = &c[&format!("p{i}")];
                prop_assert!(inside(d, v, Some(8.3)), "{:?} gave {}", d, v);
            }
        }
    }

    #[test]
    fn quantile_edges_stay_inside(d in domain(), u in prop::sample::select(vec![0.0, 1e-300, 0.5, 1.0 - 1e-16, 1.0])) {
        prop_assume!(d.validate().is_ok());
        let v = quantile(&d, u);
        prop_assert!(inside(&d, &v, Some(8.3)), "{:?} at {} gave {}", d, u, v);
    }
}
