//! PBT's explore step: perturb or resample each mutated hyperparameter of the donor's config.
//!
//! Random draws per hyperparameter, in path order (as Ray's `_explore`): one uniform draw
//! decides resampling (`< resample_probability`); otherwise one draw picks a factor from
//! `perturbation_factors` (domains, callables) or a direction (lists).
//!
//! Where this departs from Ray, on purpose:
//! - a perturbed value stays inside its domain: clipped to `[low, high)` for continuous domains,
//!   to the reachable multiples of `q` for quantized ones (Ray multiplies and leaves the domain);
//! - integers and quantized values round to the nearest step and move by at least one step
//!   when the factor would move them (Ray truncates with `int()`, so `int(1 × 1.2) = 1` and small
//!   integers never move); at 0 the direction is that of the factor;
//! - log domains multiply (a step of `ln factor` in log space) and need a value above 0, else
//!   they resample;
//! - a `choice` domain snaps the product to the nearest candidate, moving at least one candidate
//!   in the factor's direction (numbers only; other candidates are resampled): Ray multiplies
//!   the value and leaves the candidate set;
//! - a value that cannot be perturbed (missing, not a number) is resampled instead of failing.

use super::mutations::{get_path, set_path, Leaf, Mutation};
use crate::{Config, Rng};
use hyperfleet_searchers::Domain;
use rand::Rng as _;
use serde_json::{json, Value};

/// How values are explored: Ray's `resample_probability` and `perturbation_factors`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct ExploreParams {
    /// Chance of resampling instead of perturbing.
    pub resample_probability: f64,
    /// Factors drawn from, uniformly, when perturbing.
    pub factors: Vec<f64>,
}

/// Explores the donor's `config`: returns the new config and a note of what was changed,
/// e.g. `lr: 0.01 -> 0.012 (×1.2); momentum: 0.95 -> 0.9 (resampled)`.
pub(crate) fn explore(config: &Config, mutations: &[Mutation], p: &ExploreParams, rng: &mut Rng) -> (Config, String) {
    let mut out = config.clone();
    let mut notes = Vec::with_capacity(mutations.len());
    for m in mutations {
        let old = get_path(config, &m.path);
        let (new, op) = explore_leaf(&m.leaf, old, p, rng);
        let old_text = old.map_or_else(|| "(missing)".to_string(), Value::to_string);
        notes.push(format!("{}: {old_text} -> {new} ({op})", m.path.join(".")));
        set_path(&mut out, &m.path, new);
    }
    (out, notes.join("; "))
}

fn explore_leaf(leaf: &Leaf, old: Option<&Value>, p: &ExploreParams, rng: &mut Rng) -> (Value, String) {
    match leaf {
        Leaf::List(values) => {
            let at = old.and_then(|v| values.iter().position(|c| same(c, v)));
            let resample = rng.random::<f64>() < p.resample_probability;
            match at {
                Some(i) if !resample => {
                    let right = rng.random_range(0..2u64) == 1;
                    let j = if right { (i + 1).min(values.len() - 1) } else { i.saturating_sub(1) };
                    let side = if right { "shift right" } else { "shift left" };
                    (values[j].clone(), if i == j { format!("{side}, at the end") } else { side.into() })
                }
                _ => (values[rng.random_range(0..values.len() as u64) as usize].clone(), "resampled".into()),
            }
        }
        Leaf::Domain(d) => {
            if rng.random::<f64>() < p.resample_probability {
                return (d.sample(rng), "resampled".into());
            }
            let f = pick(&p.factors, rng);
            match old.and_then(|v| perturb_domain(d, v, f)) {
                Some((v, tag)) => (v, format!("×{f}{tag}")),
                None => (d.sample(rng), format!("resampled: cannot scale ×{f}")),
            }
        }
        Leaf::Callable(id) => {
            let call = json!({ "$call": id });
            if rng.random::<f64>() < p.resample_probability {
                return (call, "resampled by the callable".into());
            }
            let f = pick(&p.factors, rng);
            let grid = |v: &Value| Grid { step: if is_int(v) { 1.0 } else { 0.0 }, int: is_int(v), ..Grid::UNBOUNDED };
            match old.filter(|v| v.is_number()).and_then(|v| scale(grid(v), v, f)) {
                Some((v, tag)) => (v, format!("×{f}{tag}")),
                None => (call, format!("resampled by the callable: cannot scale ×{f}")),
            }
        }
    }
}

fn pick(factors: &[f64], rng: &mut Rng) -> f64 {
    factors[rng.random_range(0..factors.len() as u64) as usize]
}

/// Python's `==` on JSON values: numbers compare by value (`1 == 1.0`).
fn same(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_number() && b.is_number() => x == y,
        _ => a == b,
    }
}

fn is_int(v: &Value) -> bool {
    v.is_i64() || v.is_u64()
}

/// The values a perturbation may land on: multiples of `step` (any value when 0) in `[lo, hi]`.
#[derive(Clone, Copy, Debug)]
struct Grid {
    step: f64,
    lo: f64,
    hi: f64,
    int: bool,
    positive: bool,
}

impl Grid {
    const UNBOUNDED: Grid = Grid { step: 0.0, lo: f64::NEG_INFINITY, hi: f64::INFINITY, int: false, positive: false };
}

/// The grid of a numeric domain (`None` for `choice`, grids and callables of the space).
fn grid_of(d: &Domain) -> Option<Grid> {
    // The reachable multiples of `q`; the slack absorbs float error in bounds that are multiples.
    let q_bounds = |low: f64, high: f64, q: f64| ((low / q - 1e-9).ceil() * q, (high / q + 1e-9).floor() * q);
    let g = |step, lo, hi, int, positive| Some(Grid { step, lo, hi, int, positive });
    match *d {
        Domain::Uniform { low, high } => g(0.0, low, before(high).max(low), false, false),
        Domain::Loguniform { low, high, .. } => g(0.0, low, before(high).max(low), false, true),
        Domain::Quniform { low, high, q } => {
            let (lo, hi) = q_bounds(low, high, q);
            g(q, lo, hi, false, false)
        }
        Domain::Qloguniform { low, high, q, .. } => {
            let (lo, hi) = q_bounds(low, high, q);
            g(q, lo, hi, false, true)
        }
        Domain::Randn { .. } => g(0.0, f64::NEG_INFINITY, f64::INFINITY, false, false),
        Domain::Qrandn { q, .. } => g(q, f64::NEG_INFINITY, f64::INFINITY, false, false),
        Domain::Randint { low, high } => g(1.0, low as f64, (high - 1) as f64, true, false),
        Domain::Lograndint { low, high, .. } => g(1.0, low as f64, (high - 1) as f64, true, true),
        Domain::Qrandint { low, high, q } => {
            let (lo, hi) = q_bounds(low as f64, high as f64, q as f64);
            g(q as f64, lo, hi, true, false)
        }
        Domain::Qlograndint { low, high, q, .. } => {
            let (lo, hi) = q_bounds(low as f64, high as f64, q as f64);
            g(q as f64, lo, hi, true, true)
        }
        Domain::Choice { .. } | Domain::GridSearch { .. } | Domain::SampleFrom { .. } => None,
    }
}

/// The largest float below `x` (so a half-open `[low, high)` stays half-open).
fn before(x: f64) -> f64 {
    if !x.is_finite() {
        x
    } else if x > 0.0 {
        f64::from_bits(x.to_bits() - 1)
    } else if x == 0.0 {
        -f64::from_bits(1)
    } else {
        f64::from_bits(x.to_bits() + 1)
    }
}

/// Multiplies `v` by `f` inside domain `d`; `None` when `v` cannot be scaled there.
pub(crate) fn perturb_domain(d: &Domain, v: &Value, f: f64) -> Option<(Value, String)> {
    match d {
        Domain::Choice { values } => snap_choice(values, v, f),
        _ => {
            let (value, tag) = scale(grid_of(d)?, v, f)?;
            // Float rounding at the edges (`q` multiples) must not leave the declared bounds.
            match (d, value.as_f64()) {
                (Domain::Quniform { low, high, .. } | Domain::Qloguniform { low, high, .. }, Some(x)) => {
                    Some((json!(x.clamp(*low, *high)), tag))
                }
                _ => Some((value, tag)),
            }
        }
    }
}

/// The core rule: scale, round to the grid, move at least one step, clip to the bounds; a value
/// pinned at a bound by the factor is reflected instead (scaled by `1/f`), so a perturbation
/// always explores: a population that starts at a bound is not stuck there until it resamples.
fn scale(g: Grid, v: &Value, f: f64) -> Option<(Value, String)> {
    let (out, tag) = scale_once(g, v, f)?;
    if out == *v && f != 1.0 && f > 0.0 {
        if let Some((back, _)) = scale_once(g, v, 1.0 / f) {
            if back != *v {
                return Some((back, format!(" (×{:.4}, reflected at the bound)", 1.0 / f)));
            }
        }
    }
    Some((out, tag))
}

fn scale_once(g: Grid, v: &Value, f: f64) -> Option<(Value, String)> {
    let x = v.as_f64().filter(|x| x.is_finite())?;
    if g.positive && x <= 0.0 {
        return None;
    }
    let target = x * f;
    if !target.is_finite() {
        return None;
    }
    let dir = direction(x, f);
    let (mut y, mut stepped) = (target, false);
    if g.step > 0.0 {
        let k = (x / g.step).round_ties_even();
        let mut j = (target / g.step).round_ties_even();
        if (dir > 0 && j <= k) || (dir < 0 && j >= k) {
            j = k + f64::from(dir);
            stepped = true;
        }
        y = j * g.step;
    }
    let clipped = y.clamp(g.lo, g.hi);
    let tag = if clipped != y {
        ", clipped to the domain"
    } else if stepped {
        ", moved one step"
    } else {
        ""
    };
    let out = if g.int { json!(clipped as i64) } else { json!(clipped) };
    Some((out, tag.into()))
}

/// Which way `x × f` moves `x` (+1, -1 or 0); at 0, the factor's side of 1.
fn direction(x: f64, f: f64) -> i8 {
    let d = if x == 0.0 { f - 1.0 } else { x * f - x };
    if d > 0.0 {
        1
    } else if d < 0.0 {
        -1
    } else {
        0
    }
}

/// A numeric `choice`: the candidate nearest `v × f`, at least one candidate away in the
/// factor's direction (when there is one).
fn snap_choice(values: &[Value], v: &Value, f: f64) -> Option<(Value, String)> {
    let x = v.as_f64().filter(|x| v.is_number() && x.is_finite())?;
    let mut nums: Vec<(f64, &Value)> = values.iter().map(|c| Some((c.as_f64()?, c))).collect::<Option<_>>()?;
    nums.sort_by(|a, b| a.0.total_cmp(&b.0));
    let target = x * f;
    let nearest = |pool: &mut dyn Iterator<Item = &(f64, &Value)>| {
        pool.min_by(|a, b| (a.0 - target).abs().total_cmp(&(b.0 - target).abs())).map(|c| c.1.clone())
    };
    let pick = nearest(&mut nums.iter()).expect("choice has values");
    let dir = direction(x, f);
    let moved = pick.as_f64().is_some_and(|p| (dir > 0 && p > x) || (dir < 0 && p < x) || dir == 0);
    if moved {
        return Some((pick, ", nearest candidate".into()));
    }
    let beyond = if dir > 0 { nums.iter().find(|c| c.0 > x) } else { nums.iter().rev().find(|c| c.0 < x) };
    Some(match beyond {
        Some(c) => (c.1.clone(), ", next candidate".into()),
        None => (pick, ", at the end".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::super::mutations::parse;
    use super::*;
    use crate::Rng;
    use proptest::prelude::*;
    use rand::SeedableRng;

    fn dom(v: Value) -> Domain {
        match &parse(&json!({ "x": v })).unwrap()[0].leaf {
            Leaf::Domain(d) => d.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn per(d: Value, v: Value, f: f64) -> Value {
        perturb_domain(&dom(d), &v, f).unwrap().0
    }

    #[test]
    fn integers_always_move() {
        // Ray: int(1 × 1.2) = 1 and int(2 × 0.8) = 1; here 1 -> 2 and 2 -> 1.
        assert_eq!(per(json!({"randint": [1, 10]}), json!(1), 1.2), json!(2));
        assert_eq!(per(json!({"randint": [1, 10]}), json!(2), 0.8), json!(1));
        assert_eq!(per(json!({"randint": [1, 10]}), json!(7), 0.8), json!(6), "5.6 rounds to 6");
        assert_eq!(per(json!({"randint": [0, 10]}), json!(0), 1.2), json!(1), "0 moves the factor's way");
        assert_eq!(per(json!({"randint": [1, 10]}), json!(9), 1.2), json!(8), "high is excluded: reflected");
        assert_eq!(per(json!({"qrandint": [0, 100, 10]}), json!(10), 1.2), json!(20));
        assert_eq!(per(json!({"lograndint": [1, 100]}), json!(1), 0.8), json!(2), "pinned at low: reflected up");
        assert_eq!(per(json!({"qlograndint": [2, 64, 2]}), json!(2), 1.2), json!(4));
    }

    #[test]
    fn continuous_domains_clip() {
        let u = json!({"uniform": [0.0, 1.0]});
        assert_eq!(per(u.clone(), json!(0.5), 1.2), json!(0.6));
        let top = per(u, json!(0.9), 1.2).as_f64().unwrap();
        assert!(top < 1.0 && top > 0.9999999, "[low, high): {top}");
        assert_eq!(per(json!({"uniform": [0.3, 1.0]}), json!(0.35), 0.8), json!(0.3));
        assert_eq!(per(json!({"quniform": [0.0, 1.0, 0.25]}), json!(0.25), 1.2), json!(0.5), "moved one step");
        assert_eq!(
            per(json!({"quniform": [0.0, 1.0, 0.25]}), json!(1.0), 1.2),
            json!(0.75),
            "pinned at high: reflected"
        );
        assert_eq!(
            per(json!({"uniform": [0.0001, 0.02]}), json!(0.0001), 0.8),
            json!(0.0001 / 0.8),
            "reflected at low"
        );
        assert_eq!(per(json!({"randn": [0, 1]}), json!(-2.0), 1.2), json!(-2.4), "unbounded");
    }

    #[test]
    fn log_domains_scale_geometrically_inside_bounds() {
        let lr = json!({"loguniform": [1e-4, 1e-1]});
        assert_eq!(per(lr.clone(), json!(0.01), 1.2), json!(0.012));
        assert_eq!(per(lr.clone(), json!(0.01), 0.8), json!(0.008));
        assert_eq!(per(lr.clone(), json!(1.1e-4), 0.8), json!(1e-4), "clipped at low");
        assert!(per(lr.clone(), json!(0.095), 1.2).as_f64().unwrap() < 0.1);
        assert_eq!(perturb_domain(&dom(lr), &json!(0.0), 1.2), None, "not positive: resample");
        assert_eq!(per(json!({"qloguniform": [1, 1000, 1]}), json!(1.0), 1.2), json!(2.0));
    }

    #[test]
    fn choice_snaps_to_candidates() {
        let c = json!({"choice": [1, 10, 100, 1000]});
        assert_eq!(per(c.clone(), json!(10), 1.2), json!(100), "12 is nearest 10: next one up");
        assert_eq!(per(c.clone(), json!(100), 0.8), json!(10));
        assert_eq!(per(c.clone(), json!(1000), 1.2), json!(1000), "at the end");
        assert_eq!(per(c, json!(100), 9.0), json!(1000), "900 is nearest 1000");
        assert_eq!(perturb_domain(&dom(json!({"choice": ["a", "b"]})), &json!("a"), 1.2), None);
    }

    fn run(mutations: Value, config: Value, p: f64, seed: u64) -> (Config, String) {
        let m = parse(&mutations).unwrap();
        let params = ExploreParams { resample_probability: p, factors: vec![1.2, 0.8] };
        explore(config.as_object().unwrap(), &m, &params, &mut Rng::seed_from_u64(seed))
    }

    #[test]
    fn list_neighbours_and_resampling() {
        let muts = json!({"b": [16, 32, 64, 128]});
        let seen: std::collections::BTreeSet<i64> =
            (0..40).map(|s| run(muts.clone(), json!({"b": 32}), 0.0, s).0["b"].as_i64().unwrap()).collect();
        assert_eq!(seen, [16, 64].into(), "neighbours only without resampling");
        let (c, note) = run(muts.clone(), json!({"b": 16.0}), 0.0, 1);
        assert!(c["b"] == json!(16) || c["b"] == json!(32), "16.0 is found as 16: {note}");
        let (_, note) = run(muts.clone(), json!({"b": 17}), 0.0, 1);
        assert!(note.ends_with("(resampled)"), "not in the list: {note}");
        let (_, note) = run(muts, json!({"b": 32}), 1.0, 1);
        assert!(note.ends_with("(resampled)"), "{note}");
    }

    #[test]
    fn seeded_explore_is_exact() {
        // Pins the draws of two seeds (a change here means the draw order changed).
        let muts = json!({"lr": {"loguniform": [1e-4, 0.1]}, "opt": {"m": [0.9, 0.95, 0.99]}, "f": {"$callable": 2}});
        let cfg = json!({"lr": 0.01, "opt": {"m": 0.95}, "f": 3, "keep": "me"});
        let (c, note) = run(muts.clone(), cfg.clone(), 0.25, 6);
        assert_eq!(note, "f: 3 -> 4 (×1.2); lr: 0.01 -> 0.008 (×0.8); opt.m: 0.95 -> 0.99 (shift right)");
        assert_eq!(Value::Object(c), json!({"lr": 0.008, "opt": {"m": 0.99}, "f": 4, "keep": "me"}));
        let (c, note) = run(muts.clone(), cfg.clone(), 0.25, 5);
        assert_eq!(
            note,
            "f: 3 -> {\"$call\":2} (resampled by the callable); lr: 0.01 -> 0.008 (×0.8); opt.m: 0.95 -> 0.9 (shift left)"
        );
        assert_eq!(Value::Object(c), json!({"lr": 0.008, "opt": {"m": 0.9}, "f": {"$call": 2}, "keep": "me"}));
        let (c, note) = run(muts.clone(), cfg.clone(), 0.25, 14);
        assert!(note.contains("lr: 0.01 -> 0.07231693376605433 (resampled)"), "{note}");
        assert_eq!(c, run(muts, cfg, 0.25, 14).0, "same seed, same config");
    }

    #[test]
    fn callables_resample_through_the_controller() {
        let (c, note) = run(json!({"f": {"$callable": 5}}), json!({"f": "text"}), 0.0, 0);
        assert_eq!(c["f"], json!({"$call": 5}));
        assert!(note.contains("resampled by the callable"), "{note}");
        let (c, _) = run(json!({"f": {"$callable": 5}}), json!({"f": 2.5}), 1.0, 0);
        assert_eq!(c["f"], json!({"$call": 5}));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn explored_values_stay_in_their_domain(
            which in 0usize..9, seed in any::<u64>(), p in 0.0f64..1.0, f in 0.05f64..20.0, start in any::<u64>(),
        ) {
            let spaces = [
                json!({"uniform": [-1.0, 2.0]}), json!({"loguniform": [1e-4, 0.1]}),
                json!({"quniform": [0.5, 3.0, 0.25]}), json!({"qloguniform": [1e-3, 1.0, 1e-3]}),
                json!({"randint": [1, 4]}), json!({"qrandint": [3, 20, 3]}), json!({"lograndint": [1, 1000]}),
                json!({"qlograndint": [2, 50, 4]}), json!({"choice": [0.5, 1, 8, 64]}),
            ];
            let d = dom(spaces[which].clone());
            let mut rng = Rng::seed_from_u64(start);
            let mut cfg = json!({"x": d.sample(&mut rng)}).as_object().unwrap().clone();
            let m = vec![Mutation { path: vec!["x".into()], leaf: Leaf::Domain(d.clone()) }];
            let params = ExploreParams { resample_probability: p, factors: vec![f, 1.0 / f] };
            let mut rng = Rng::seed_from_u64(seed);
            for _ in 0..20 {
                cfg = explore(&cfg, &m, &params, &mut rng).0;
                prop_assert!(d.contains(&cfg["x"]), "{} left {:?}", cfg["x"], d);
                if let Domain::Uniform { high, .. } | Domain::Loguniform { high, .. } = d {
                    prop_assert!(cfg["x"].as_f64().unwrap() < high);
                }
                if matches!(d, Domain::Randint { .. } | Domain::Qrandint { .. }) {
                    prop_assert!(cfg["x"].is_i64());
                }
            }
        }
    }
}
