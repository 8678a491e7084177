//! Differential tests against Ray Tune 2.60: the call streams in `fixtures/*.json` (made by
//! `fixtures/gen_ray_fixtures.py`, which drives Ray's own scheduler objects) are replayed through
//! ours, and every decision must be Ray's.

use hyperfleet_scheduler::asha::{nan_percentile, np_sum, AshaConfig};
use hyperfleet_scheduler::hyperband::{HyperBand, HyperBandConfig};
use hyperfleet_scheduler::median::{np_median, MedianStoppingConfig};
use hyperfleet_scheduler::{Decision, Rng, SchedResult, TrialEnd, TrialId, TrialScheduler, TrialView};
use rand::SeedableRng;
use serde_json::Value;

fn fixture(text: &str) -> Value {
    serde_json::from_str(text).expect("fixture parses")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn bits(v: &Value) -> f64 {
    f64::from_bits(v.as_u64().expect("float bits"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(bits).collect()
}

/// The metric as the scheduler sees it: `None` when absent, mode folded in.
fn score(v: &Value, higher: bool) -> Option<f64> {
    match v {
        Value::Null => None,
        Value::String(s) => {
            let x: f64 = s.parse().unwrap_or_else(|_| panic!("not a float: {s}")); // nan, inf, -inf
            Some(if higher { x } else { -x })
        }
        v => Some(if higher { f(v) } else { -f(v) }),
    }
}

fn code(d: &Decision) -> &'static str {
    match d {
        Decision::Continue => "C",
        Decision::Pause => "P",
        Decision::Stop { .. } => "S",
        Decision::Exploit { .. } => "E",
    }
}

fn end(e: &Value) -> TrialEnd {
    match e.as_str() {
        Some("completed") => TrialEnd::Completed,
        Some("stopped") => TrialEnd::Stopped,
        Some("failed") => TrialEnd::Failed,
        other => panic!("unknown end {other:?}"),
    }
}

fn ids(v: Option<&Value>) -> Vec<TrialId> {
    v.and_then(Value::as_array).map(|a| a.iter().map(|x| TrialId(x.as_u64().unwrap())).collect()).unwrap_or_default()
}

/// Replays one stream through `s`; `on_add` runs after each add, `after` after each result or
/// completion (HyperBand's stops of paused trials).
fn replay<S: TrialScheduler>(
    name: &str,
    calls: &Value,
    higher: bool,
    s: &mut S,
    mut on_add: impl FnMut(&mut S, &Value, &str),
    mut after: impl FnMut(&mut S, &Value, &str),
) {
    let cfg = Default::default();
    let mut rng = Rng::seed_from_u64(7);
    // Ray creates every trial up front; we create them lazily and say when the last one came.
    let last_add = calls.as_array().expect("calls").iter().rposition(|c| c["o"] == "a");
    for (n, call) in calls.as_array().expect("calls").iter().enumerate() {
        let at = format!("{name}, call {n}: {call}");
        let id = TrialId(call["i"].as_u64().unwrap_or(0));
        let view = TrialView { id, config: &cfg, has_checkpoint: true };
        match call["o"].as_str().unwrap() {
            "a" => {
                s.on_trial_add(&view, &mut rng);
                on_add(s, call, &at);
                if Some(n) == last_add {
                    s.on_no_more_trials();
                }
            }
            "r" => {
                let queued = call["q"].as_u64().unwrap_or(0) as usize;
                let r = SchedResult { progress: f(&call["t"]), score: score(&call["v"], higher), queued };
                let d = s.on_result(&view, &r, &mut rng);
                assert_eq!(code(&d), call["d"].as_str().unwrap(), "{at}: we decided {d:?}");
                after(s, call, &at);
            }
            "c" => {
                let e = end(&call["e"]);
                let last = (e != TrialEnd::Failed).then(|| SchedResult {
                    progress: f(&call["t"]),
                    score: score(&call["v"], higher),
                    queued: 0,
                });
                s.on_trial_complete(id, e, last.as_ref());
                after(s, call, &at);
            }
            "ch" => {
                let got = s.choose_trial_to_run(&ids(call.get("w")));
                assert_eq!(got, call["r"].as_u64().map(TrialId), "{at}");
            }
            other => panic!("unknown op {other}"),
        }
    }
}

#[test]
fn asha_decides_as_ray_does() {
    let fx = fixture(include_str!("fixtures/asha.json"));
    let streams = fx["streams"].as_array().unwrap();
    assert!(streams.len() >= 8);
    for case in streams {
        let name = case["name"].as_str().unwrap();
        let cfg: AshaConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let higher = cfg.objective().expect("metric and mode").1;
        let mut s = cfg.build().unwrap();
        let rungs: Vec<Vec<f64>> = serde_json::from_value(case["rungs"].clone()).unwrap();
        assert_eq!(s.rung_milestones(), rungs, "{name}");
        let probs: Vec<f64> = serde_json::from_value(case["probs"].clone()).unwrap();
        for (ours, ray) in s.bracket_probabilities().iter().zip(&probs) {
            assert!((ours - ray).abs() <= 1e-15, "{name}: {:?} vs Ray's {probs:?}", s.bracket_probabilities());
        }
        // Ray's bracket draws come from numpy's generator: its choices are forced.
        let force = |s: &mut hyperfleet_scheduler::asha::Asha, call: &Value, at: &str| {
            let id = TrialId(call["i"].as_u64().unwrap());
            let b = call["b"].as_u64().unwrap_or(0) as usize;
            s.assign_bracket(id, b);
            assert_eq!(s.bracket_of(id), Some(b), "{at}");
        };
        replay(name, &case["calls"], higher, &mut s, force, |_, _, _| {});
    }
}

#[test]
fn asha_rung_counts_match_rays_float_arithmetic() {
    let fx = fixture(include_str!("fixtures/asha.json"));
    let grid = fx["rung_grid"].as_array().unwrap();
    assert!(grid.len() > 300);
    for row in grid {
        let cfg = AshaConfig {
            max_t: f(&row[0]),
            grace_period: f(&row[1]),
            reduction_factor: f(&row[2]),
            brackets: 3,
            ..Default::default()
        };
        let counts: Vec<usize> = serde_json::from_value(row[3].clone()).unwrap();
        let ours: Vec<usize> = cfg.build().unwrap().rung_milestones().iter().map(Vec::len).collect();
        assert_eq!(ours, counts, "{row}");
    }
}

#[test]
fn hyperband_decides_as_ray_does() {
    let fx = fixture(include_str!("fixtures/hyperband.json"));
    for row in fx["tables"].as_array().unwrap() {
        let cfg = HyperBandConfig { max_t: f(&row[0]), reduction_factor: f(&row[1]), ..Default::default() };
        let table: Vec<(usize, f64)> = serde_json::from_value(row[2].clone()).unwrap();
        assert_eq!(cfg.build().unwrap().bracket_table(), table, "{row}");
    }
    let streams = fx["streams"].as_array().unwrap();
    assert!(streams.len() >= 5);
    for case in streams {
        let name = case["name"].as_str().unwrap();
        let cfg: HyperBandConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let higher = cfg.objective().expect("metric and mode").1;
        let mut hb = cfg.build().unwrap();
        let check_bracket = |hb: &mut HyperBand, call: &Value, at: &str| {
            let id = TrialId(call["i"].as_u64().unwrap());
            let want = (call["hb"][0].as_u64().unwrap() as usize, call["hb"][1].as_u64().unwrap() as usize);
            assert_eq!(hb.bracket_of(id), Some(want), "{at}");
        };
        // Paused trials Ray stopped through its controller during the call; ended as ours would be.
        let stops = |hb: &mut HyperBand, call: &Value, at: &str| {
            let stopped = hb.take_stopped();
            let got: Vec<TrialId> = stopped.iter().map(|(t, _)| *t).collect();
            assert_eq!(got, ids(call.get("x")), "{at}: we stopped {stopped:?}");
            for (t, _) in stopped {
                hb.on_trial_complete(t, TrialEnd::Stopped, None);
            }
        };
        replay(name, &case["calls"], higher, &mut hb, check_bracket, stops);
    }
}

#[test]
fn median_stopping_decides_as_ray_does() {
    let fx = fixture(include_str!("fixtures/median.json"));
    let streams = fx["streams"].as_array().unwrap();
    assert!(streams.len() >= 4);
    for case in streams {
        let name = case["name"].as_str().unwrap();
        let cfg: MedianStoppingConfig = serde_json::from_value(case["config"].clone()).unwrap();
        let higher = cfg.objective().expect("metric and mode").1;
        let mut s = cfg.build().unwrap();
        replay(name, &case["calls"], higher, &mut s, |_, _, _| {}, |_, _, _| {});
    }
}

#[test]
fn numpy_statistics_are_bit_exact() {
    let fx = fixture(include_str!("fixtures/numpy.json"));
    for case in fx["nanpercentile"].as_array().unwrap() {
        let (vals, q, want) = (floats(&case[0]), bits(&case[1]), bits(&case[2]));
        let got = nan_percentile(vals.iter().copied(), q);
        assert!(got.to_bits() == want.to_bits() || got.is_nan() && want.is_nan(), "{vals:?} q={q}: {got} vs {want}");
    }
    for case in fx["mean"].as_array().unwrap() {
        let (vals, want) = (floats(&case[0]), bits(&case[1]));
        assert_eq!((np_sum(&vals) / vals.len() as f64).to_bits(), want.to_bits(), "{} values", vals.len());
    }
    for case in fx["median"].as_array().unwrap() {
        let (vals, want) = (floats(&case[0]), bits(&case[1]));
        assert_eq!(np_median(vals.clone()).to_bits(), want.to_bits(), "{vals:?}");
    }
}
