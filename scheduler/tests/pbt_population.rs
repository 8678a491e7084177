//! PBT driven through its public API by a simulated controller.

mod pbt_sim;

use hyperfleet_scheduler::pbt::PbtConfig;
use hyperfleet_scheduler::pbt_replay::PbtReplayConfig;
use hyperfleet_scheduler::{Decision, TrialScheduler};
use hyperfleet_searchers::{Domain, Space};
use pbt_sim::{run, spread, Event};
use proptest::prelude::*;
use serde_json::{json, Value};

fn pbt(extra: Value) -> Box<dyn TrialScheduler> {
    let mut v = json!({
        "time_attr": "training_iteration", "perturbation_interval": 5,
        "hyperparam_mutations": {"lr": {"uniform": [0.0001, 0.02]}},
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    Box::new(serde_json::from_value::<PbtConfig>(v).unwrap().build().unwrap())
}

fn exploits(events: &[Event]) -> Vec<(u64, u64, &Decision)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Result { trial, iteration, decision: d @ Decision::Exploit { .. } } => Some((*trial, *iteration, d)),
            _ => None,
        })
        .collect()
}

#[test]
fn the_population_moves_towards_the_good_learning_rate() {
    let (events, trials) = run(pbt(json!({})).as_mut(), spread(8), 8, 5, 150, 3);
    let ex = exploits(&events);
    assert!(ex.len() >= 10, "{} exploits", ex.len());
    for (trial, _, d) in &ex {
        let Decision::Exploit { donor, config, note } = d else { unreachable!() };
        assert_ne!(donor.0, *trial);
        let lr = config["lr"].as_f64().unwrap();
        assert!((0.0001..0.02).contains(&lr), "{lr}");
        assert!(note.starts_with("lr: "), "{note}");
    }
    let distance = |lrs: Vec<f64>| lrs.iter().map(|lr| (lr - 0.01).abs()).sum::<f64>() / lrs.len() as f64;
    let before = distance(spread(8).iter().map(|c| c["lr"].as_f64().unwrap()).collect());
    let after = distance(trials.iter().map(|t| t.config["lr"].as_f64().unwrap()).collect());
    assert!(after < before / 2.0, "{before} -> {after}");
}

#[test]
fn time_multiplexing_gives_every_trial_its_turn() {
    // Eight trials, two slots: trials pause at boundaries and the least-progressed runs next.
    let (events, trials) = run(pbt(json!({"quantile_fraction": 0.0})).as_mut(), spread(8), 2, 5, 30, 0);
    assert!(trials.iter().all(|t| t.done && t.iteration == 30));
    let pauses = events.iter().filter(|e| matches!(e, Event::Result { decision: Decision::Pause, .. })).count();
    assert!(pauses >= 8 * 5, "{pauses}");
    // Each trial pauses at every boundary while others wait (the last ones run out the clock).
    let mut at_pause: Vec<Vec<u64>> = vec![Vec::new(); 8];
    for e in &events {
        if let Event::Result { trial, iteration, decision: Decision::Pause } = e {
            at_pause[*trial as usize].push(*iteration);
        }
    }
    for (t, its) in at_pause.iter().enumerate() {
        assert!(its.starts_with(&[5, 10, 15, 20, 25]), "trial {t}: {its:?}");
    }
}

#[test]
fn replay_follows_a_policy_derived_from_a_pbt_run() {
    let (events, _) = run(pbt(json!({})).as_mut(), spread(4), 4, 5, 60, 9);
    let (trial, _, _) = *exploits(&events).last().expect("some exploit");
    let steps: Vec<Value> = exploits(&events)
        .into_iter()
        .filter(|(t, _, _)| *t == trial)
        .map(|(_, it, d)| match d {
            Decision::Exploit { config, .. } => json!({"iteration": it, "config": config}),
            _ => unreachable!(),
        })
        .collect();
    let cfg: PbtReplayConfig =
        serde_json::from_value(json!({"initial_config": spread(4)[trial as usize], "schedule": steps})).unwrap();
    let mut replay = cfg.build().unwrap();
    let (events, trials) = run(&mut replay, vec![spread(4)[trial as usize].clone()], 1, 1, 60, 0);
    let replayed: Vec<Value> = exploits(&events)
        .into_iter()
        .map(|(_, _, d)| match d {
            Decision::Exploit { config, .. } => Value::Object(config.clone()),
            _ => unreachable!(),
        })
        .collect();
    let wanted: Vec<Value> = cfg.schedule.iter().map(|s| Value::Object(s.config.clone())).collect();
    assert_eq!(replayed, wanted);
    assert_eq!(Value::Object(trials[0].config.clone()), *wanted.last().unwrap());
}

fn domains() -> Vec<Value> {
    vec![
        json!({"loguniform": [1e-4, 0.1]}),
        json!({"quniform": [0.0, 1.0, 0.1]}),
        json!({"randint": [1, 5]}),
        json!({"qlograndint": [1, 64, 1]}),
        json!({"choice": [8, 16, 32, 64]}),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// The same calls with the same seed give the same decisions, and every explored value lies
    /// in its domain, whatever the population, capacity and settings.
    #[test]
    fn replaying_the_calls_reproduces_every_decision(
        n in 2usize..9, capacity in 1usize..9, seed in any::<u64>(), which in 0usize..5,
        q in 0.0f64..0.5, p in 0.0f64..1.0, ckpt_every in 1u64..7,
    ) {
        let domain = domains()[which].clone();
        let extra = json!({
            "quantile_fraction": q, "resample_probability": p, "perturbation_interval": 4,
            "hyperparam_mutations": {"lr": {"uniform": [0.0001, 0.02]}, "x": domain.clone(), "opt": {"m": [0.9, 0.99]}},
        });
        let d: Domain = Space::parse(&json!({"x": domain})).unwrap().params()[0].domain.clone();
        let configs: Vec<Value> = spread(n).into_iter().enumerate().map(|(i, mut c)| {
            let mut r = <hyperfleet_scheduler::Rng as rand::SeedableRng>::seed_from_u64(i as u64);
            c["x"] = d.sample(&mut r);
            c["opt"] = json!({"m": 0.9});
            c
        }).collect();
        let (a, ta) = run(pbt(extra.clone()).as_mut(), configs.clone(), capacity, ckpt_every, 24, seed);
        let (b, _) = run(pbt(extra).as_mut(), configs, capacity, ckpt_every, 24, seed);
        prop_assert_eq!(&a, &b);
        prop_assert!(ta.iter().all(|t| t.done));
        for (_, _, e) in exploits(&a) {
            let Decision::Exploit { config, .. } = e else { unreachable!() };
            prop_assert!(d.contains(&config["x"]), "{} not in {:?}", config["x"], d);
            prop_assert!((0.0001..0.02).contains(&config["lr"].as_f64().unwrap()));
        }
    }
}
