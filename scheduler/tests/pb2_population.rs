//! PB2 driven through its public API by a simulated controller.

mod pbt_sim;

use hyperfleet_scheduler::pb2::Pb2Config;
use hyperfleet_scheduler::{Decision, TrialScheduler};
use pbt_sim::{run, spread, Event};
use proptest::prelude::*;
use serde_json::{json, Value};

fn pb2(extra: Value) -> Box<dyn TrialScheduler> {
    let mut v = json!({
        "time_attr": "training_iteration", "perturbation_interval": 5,
        "hyperparam_bounds": {"lr": [0.0001, 0.02]},
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    Box::new(serde_json::from_value::<Pb2Config>(v).unwrap().build().unwrap())
}

fn explored(events: &[Event]) -> Vec<(u64, &Decision)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Result { trial, decision: d @ Decision::Exploit { .. }, .. } => Some((*trial, d)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_bandit_moves_the_population_towards_the_good_learning_rate() {
    let (events, trials) = run(pb2(json!({})).as_mut(), spread(6), 6, 5, 60, 1);
    let ex = explored(&events);
    assert!(ex.len() >= 5, "{} exploits", ex.len());
    let mut bandit = 0;
    for (trial, d) in &ex {
        let Decision::Exploit { donor, config, note } = d else { unreachable!() };
        assert_ne!(donor.0, *trial);
        let lr = config["lr"].as_f64().unwrap();
        assert!((0.0001..=0.02).contains(&lr), "{lr}");
        bandit += usize::from(note.contains("GP-UCB"));
    }
    assert!(bandit >= 3, "{bandit}");
    let distance = |lrs: Vec<f64>| lrs.iter().map(|lr| (lr - 0.01).abs()).sum::<f64>() / lrs.len() as f64;
    let before = distance(spread(6).iter().map(|c| c["lr"].as_f64().unwrap()).collect());
    let after = distance(trials.iter().map(|t| t.config["lr"].as_f64().unwrap()).collect());
    assert!(after < before, "{before} -> {after}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4))]

    /// The same calls with the same seed give the same decisions; chosen values stay in bounds.
    #[test]
    fn replaying_the_calls_reproduces_every_decision(
        n in 2usize..6, capacity in 1usize..6, seed in any::<u64>(), q in 0.1f64..0.5,
    ) {
        let extra = json!({"quantile_fraction": q, "hyperparam_bounds": {"lr": [0.0001, 0.02], "net.width": [4, 64]}});
        let configs: Vec<Value> = spread(n).into_iter().enumerate().map(|(i, mut c)| {
            c["net"] = json!({"width": 4 + 12 * i});
            c
        }).collect();
        let (a, _) = run(pb2(extra.clone()).as_mut(), configs.clone(), capacity, 5, 25, seed);
        let (b, _) = run(pb2(extra).as_mut(), configs, capacity, 5, 25, seed);
        prop_assert_eq!(&a, &b);
        for (_, d) in explored(&a) {
            let Decision::Exploit { config, .. } = d else { unreachable!() };
            prop_assert!((0.0001..=0.02).contains(&config["lr"].as_f64().unwrap()));
            let w = config["net"]["width"].as_i64().unwrap();
            prop_assert!((4..=64).contains(&w), "{}", w);
        }
    }
}

/// The specs the Python classes send parse through an internally tagged enum like
/// `SchedulerConfig` (tag `kind`, unknown keys refused).
#[test]
fn python_specs_parse_through_a_tagged_enum() {
    use hyperfleet_scheduler::pbt::PbtConfig;
    use hyperfleet_scheduler::pbt_replay::PbtReplayConfig;

    #[derive(Debug, serde::Deserialize)]
    #[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
    #[allow(dead_code)]
    enum Spec {
        Pbt(PbtConfig),
        PbtReplay(PbtReplayConfig),
        Pb2(Pb2Config),
    }
    let pbt = json!({
        "kind": "pbt", "time_attr": "training_iteration", "metric": "acc", "mode": "max",
        "perturbation_interval": 5, "burn_in_period": 0.0,
        "hyperparam_mutations": {"lr": {"$domain": {"kind": "uniform", "low": 0.0001, "high": 0.02}},
                                  "b": [16, 32], "f": {"$callable": 0}, "n": {"m": {"loguniform": [1e-4, 0.1]}}},
        "quantile_fraction": 0.25, "resample_probability": 0.25, "perturbation_factors": [1.2, 0.8],
        "custom_explore_fn": false, "require_attrs": true, "synch": false,
    });
    let Spec::Pbt(c) = serde_json::from_value(pbt).unwrap() else { panic!() };
    assert_eq!(c.objective(), Some(("acc", true)));
    c.build().unwrap();
    let pb2 = json!({
        "kind": "pb2", "time_attr": "training_iteration", "perturbation_interval": 20,
        "hyperparam_bounds": {"lr": [0.0001, 0.1], "opt.m": [0.8, 0.99]}, "quantile_fraction": 0.25,
        "require_attrs": true, "synch": false,
    });
    let Spec::Pb2(c) = serde_json::from_value(pb2).unwrap() else { panic!() };
    c.build().unwrap();
    let replay = json!({"kind": "pbt_replay", "initial_config": {"lr": 0.1},
                        "schedule": [{"iteration": 5, "config": {"lr": 0.2}}]});
    let Spec::PbtReplay(c) = serde_json::from_value(replay).unwrap() else { panic!() };
    c.build().unwrap();
    assert!(serde_json::from_value::<Spec>(json!({"kind": "pbt", "log_config": true})).is_err());
}
