//! Differential tests against Optuna 5.0.0's TPE: `fixtures/optuna_tpe.json` (made by
//! `fixtures/gen_optuna_fixtures.py` from Optuna's own `_ParzenEstimator`, `_split_trials`,
//! `default_gamma`, `default_weights` and `_truncnorm`) must be reproduced to 1e-9, relative or
//! absolute, whichever is larger; infinities and NaNs exactly.
//!
//! Values are in Optuna's internal representation: numbers in their own scale, categorical values
//! as choice indices; kernel centres and bandwidths in log scale for log domains.

use hyperfleet_searchers::tpe::{
    default_gamma, default_weights, log_gauss_mass, log_ndtr, ppf, split_trials, ParzenEstimator, ParzenParams,
    TpeDistribution, TrialStatus,
};
use hyperfleet_searchers::TrialId;
use serde_json::Value;
use std::sync::OnceLock;

const TOL: f64 = 1e-9;

fn fixture() -> &'static Value {
    static DATA: OnceLock<Value> = OnceLock::new();
    DATA.get_or_init(|| serde_json::from_str(include_str!("fixtures/optuna_tpe.json")).expect("fixture parses"))
}

fn f(v: &Value) -> f64 {
    match v {
        Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not a float: {s}")),
        v => v.as_f64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

fn fs(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(f).collect()
}

fn close(got: f64, want: f64) -> bool {
    if want.is_nan() {
        return got.is_nan();
    }
    if want.is_infinite() || got.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= TOL * want.abs().max(1.0)
}

fn assert_all_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(close(*g, *w), "{what}[{i}]: got {g:e}, Optuna {w:e}\n  got  {got:?}\n  want {want:?}");
    }
}

fn dist(v: &Value) -> TpeDistribution {
    match v["kind"].as_str().unwrap() {
        "categorical" => TpeDistribution::Categorical { n_choices: v["n_choices"].as_u64().unwrap() as usize },
        _ => TpeDistribution::Numeric {
            low: f(&v["low"]),
            high: f(&v["high"]),
            step: v["step"].as_f64(),
            log: v["log"].as_bool().unwrap(),
        },
    }
}

#[test]
fn parzen_estimators_match_optuna() {
    let cases = fixture()["estimators"].as_array().unwrap();
    assert!(cases.len() > 80);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let dists: Vec<TpeDistribution> = case["dists"].as_array().unwrap().iter().map(dist).collect();
        let p = &case["params"];
        let params = ParzenParams {
            prior_weight: f(&p["prior_weight"]),
            consider_magic_clip: p["consider_magic_clip"].as_bool().unwrap(),
            consider_endpoints: p["consider_endpoints"].as_bool().unwrap(),
        };
        let rows = case["obs"].as_array().unwrap();
        let obs: Vec<f64> = rows.iter().flat_map(fs).collect();
        let e = ParzenEstimator::new(&obs, &default_weights(rows.len()), &dists, &params)
            .unwrap_or_else(|err| panic!("{name}: {err}"));
        assert_all_close(&format!("{name} weights"), e.weights(), &fs(&case["weights"]));
        for (j, dim) in case["dims"].as_array().unwrap().iter().enumerate() {
            if let Some(rows) = dim.get("cat") {
                let got = e.categorical_probs(j).expect("categorical");
                let want = rows.as_array().unwrap();
                assert_eq!(got.len(), want.len(), "{name} dim {j}: kernels");
                for (k, (g, w)) in got.iter().zip(want).enumerate() {
                    assert_all_close(&format!("{name} dim {j} kernel {k}"), g, &fs(w));
                }
            } else {
                assert_all_close(&format!("{name} dim {j} mus"), e.mus(j).unwrap(), &fs(&dim["mus"]));
                assert_all_close(&format!("{name} dim {j} sigmas"), e.sigmas(j).unwrap(), &fs(&dim["sigmas"]));
            }
        }
        let points: Vec<f64> = case["points"].as_array().unwrap().iter().flat_map(fs).collect();
        assert_all_close(&format!("{name} log_pdf"), &e.log_pdf(&points), &fs(&case["log_pdf"]));

        let s = &case["sample"];
        let mut uniforms = fs(&s["uniforms"]).into_iter();
        let n = s["n"].as_u64().unwrap() as usize;
        let got = e.sample_with(n, &mut || uniforms.next().expect("enough uniforms"));
        assert!(uniforms.next().is_none(), "{name}: sample used fewer uniforms than Optuna");
        let want: Vec<f64> = s["samples"].as_array().unwrap().iter().flat_map(fs).collect();
        assert_all_close(&format!("{name} sample"), &got, &want);
    }
}

#[test]
fn split_matches_optuna() {
    for case in fixture()["split"].as_array().unwrap() {
        let sign = if case["direction"] == "maximize" { 1.0 } else { -1.0 };
        let trials: Vec<(TrialId, TrialStatus)> = case["trials"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let id = TrialId(t[0].as_u64().unwrap());
                let status = match t[1].as_str().unwrap() {
                    "COMPLETE" => TrialStatus::Complete { score: sign * f(&t[2]) },
                    "PRUNED" => {
                        let last = t[3].as_array().unwrap().last().map(|sv| (f(&sv[0]), sign * f(&sv[1])));
                        TrialStatus::Pruned { last }
                    }
                    "RUNNING" => TrialStatus::Running,
                    "FAIL" => TrialStatus::Failed,
                    other => panic!("state {other}"),
                };
                (id, status)
            })
            .collect();
        for (key, liar) in [("plain", false), ("liar", true)] {
            let ids = |v: &Value| -> Vec<TrialId> {
                v.as_array().unwrap().iter().map(|n| TrialId(n.as_u64().unwrap())).collect()
            };
            let split = split_trials(trials.iter().copied(), liar);
            let what = format!("{} trials, {}, constant_liar = {liar}", trials.len(), case["direction"]);
            assert_eq!(split.below, ids(&case[key]["below"]), "{what}: below");
            assert_eq!(split.above, ids(&case[key]["above"]), "{what}: above");
        }
    }
}

#[test]
fn gamma_and_weights_match_optuna() {
    let gamma = fixture()["gamma"].as_array().unwrap();
    let weights = fixture()["weights"].as_array().unwrap();
    assert_eq!((gamma.len(), weights.len()), (100, 100));
    for n in 1..=100 {
        assert_eq!(default_gamma(n) as u64, gamma[n - 1].as_u64().unwrap(), "gamma({n})");
        assert_all_close(&format!("weights({n})"), &default_weights(n), &fs(&weights[n - 1]));
    }
}

#[test]
fn truncated_normal_helpers_match_optuna() {
    let t = &fixture()["truncnorm"];
    let xs = fs(&t["log_ndtr"]["x"]);
    let got: Vec<f64> = xs.iter().map(|&x| log_ndtr(x)).collect();
    assert_all_close("log_ndtr", &got, &fs(&t["log_ndtr"]["y"]));
    let m = &t["log_gauss_mass"];
    let got: Vec<f64> = fs(&m["a"]).into_iter().zip(fs(&m["b"])).map(|(a, b)| log_gauss_mass(a, b)).collect();
    assert_all_close("log_gauss_mass", &got, &fs(&m["y"]));
    for case in t["ppf"].as_array().unwrap() {
        let q = fs(&case["q"]);
        let (a, b) = (vec![f(&case["a"]); q.len()], vec![f(&case["b"]); q.len()]);
        assert_all_close(&format!("ppf on [{}, {}]", a[0], b[0]), &ppf(&q, &a, &b), &fs(&case["x"]));
    }
}
