//! `hyperparam_mutations`: what each explored hyperparameter may become.
//!
//! A JSON object whose nested objects are sections of the config and whose leaves are:
//! - a list of values (moved to an adjacent entry, or resampled);
//! - a domain, canonical `{"$domain": {...}}` or shorthand such as `{"loguniform": [1e-4, 0.1]}`;
//! - `{"$callable": id}`: a Python function the controller calls to resample.
//!
//! `sample_from` and `grid_search` domains are refused, as Ray refuses `tune.sample_from` (and a
//! grid is not a distribution: write a list instead).

use super::population::config_error;
use crate::{Config, Rng, SchedulerConfigError};
use hyperfleet_searchers::{Domain, Space};
use rand::Rng as _;
use serde_json::{json, Value};

/// How one hyperparameter is explored.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Leaf {
    /// Ordered candidates: move to a neighbour or resample.
    List(Vec<Value>),
    /// A distribution: perturb by a factor inside it, or resample from it.
    Domain(Domain),
    /// An outside callable: perturb numerically, or resample by emitting `{"$call": id}`.
    Callable(u64),
}

/// One explored hyperparameter: its path in the config and its rule.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Mutation {
    /// Keys from the config root to the value.
    pub path: Vec<String>,
    /// How it is explored.
    pub leaf: Leaf,
}

/// Parses and validates `hyperparam_mutations`; leaves come out in path order.
pub(crate) fn parse(value: &Value) -> Result<Vec<Mutation>, SchedulerConfigError> {
    let Value::Object(map) = value else {
        return Err(config_error("hyperparam_mutations", format!("expected a table of hyperparameters, got {value}")));
    };
    let mut out = Vec::new();
    walk(map, &mut Vec::new(), &mut out)?;
    Ok(out)
}

fn field(path: &[String]) -> String {
    format!("hyperparam_mutations.{}", path.join("."))
}

fn walk(map: &Config, path: &mut Vec<String>, out: &mut Vec<Mutation>) -> Result<(), SchedulerConfigError> {
    for (key, value) in map {
        path.push(key.clone());
        match value {
            Value::Array(values) if values.is_empty() => {
                return Err(config_error(field(path), "an empty list has nothing to explore"));
            }
            Value::Array(values) => out.push(Mutation { path: path.clone(), leaf: Leaf::List(values.clone()) }),
            Value::Object(m) if m.contains_key("$callable") => {
                let id = m.get("$callable").and_then(Value::as_u64).filter(|_| m.len() == 1);
                let id = id.ok_or_else(|| {
                    config_error(
                        field(path),
                        format!("expected {{\"$callable\": <non-negative integer>}}, got {value}"),
                    )
                })?;
                out.push(Mutation { path: path.clone(), leaf: Leaf::Callable(id) });
            }
            Value::Object(m) => match domain_leaf(value).map_err(|e| config_error(field(path), e))? {
                Some(domain) => {
                    check_domain(&domain).map_err(|e| config_error(field(path), e))?;
                    out.push(Mutation { path: path.clone(), leaf: Leaf::Domain(domain) });
                }
                None => walk(m, path, out)?,
            },
            other => {
                return Err(config_error(
                    field(path),
                    format!(
                        "expected a list of values, a domain (e.g. {{\"uniform\": [0, 1]}}), \
                         {{\"$callable\": id}} or a nested table, got {other}"
                    ),
                ));
            }
        }
        path.pop();
    }
    Ok(())
}

/// `Some(domain)` when `value` is a domain leaf, `None` when it is a nested section.
fn domain_leaf(value: &Value) -> Result<Option<Domain>, String> {
    let probe = json!({ "x": value });
    match Space::parse(&probe) {
        Ok(space) => Ok(space.params().iter().find(|p| p.path == ["x"]).map(|p| p.domain.clone())),
        // A problem with the leaf itself; problems further down are found by walking into it.
        Err(e) if e.path == "x" => Err(e.rule),
        Err(_) => Ok(None),
    }
}

fn check_domain(d: &Domain) -> Result<(), String> {
    match d {
        Domain::SampleFrom { .. } => Err("sample_from domains are not supported (as in Ray): \
                                          give a function (it becomes {\"$callable\": id}) or a domain"
            .into()),
        Domain::GridSearch { .. } => Err("grid_search is not a mutation: give a list of values instead".into()),
        _ => Ok(()),
    }
}

pub(crate) use hyperfleet_searchers::{get_path, set_path};

/// Ray's `_fill_config`: gives every mutated hyperparameter missing from `config` an initial
/// value (list: uniform pick; domain: a sample; callable: `{"$call": id}` for the controller).
/// Returns whether anything was filled.
pub(crate) fn fill_missing(config: &mut Config, mutations: &[Mutation], rng: &mut Rng) -> bool {
    let mut filled = false;
    for m in mutations {
        if get_path(config, &m.path).is_some() {
            continue;
        }
        let value = match &m.leaf {
            Leaf::List(values) => values[rng.random_range(0..values.len() as u64) as usize].clone(),
            Leaf::Domain(d) => d.sample(rng),
            Leaf::Callable(id) => json!({ "$call": id }),
        };
        set_path(config, &m.path, value);
        filled = true;
    }
    filled
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn every_leaf_form() {
        let m = parse(&json!({
            "lr": {"loguniform": [1e-4, 0.1]},
            "opt": {
                "momentum": {"$domain": {"kind": "uniform", "low": 0.8, "high": 0.99}},
                "name": ["sgd", "adam"],
                "deep": {"f": {"$callable": 3}},
            },
        }))
        .unwrap();
        assert_eq!(
            m,
            vec![
                Mutation { path: p("lr"), leaf: Leaf::Domain(Domain::Loguniform { low: 1e-4, high: 0.1, base: 10.0 }) },
                Mutation { path: p("opt.deep.f"), leaf: Leaf::Callable(3) },
                Mutation { path: p("opt.momentum"), leaf: Leaf::Domain(Domain::Uniform { low: 0.8, high: 0.99 }) },
                Mutation { path: p("opt.name"), leaf: Leaf::List(vec![json!("sgd"), json!("adam")]) },
            ]
        );
        assert_eq!(parse(&json!({})).unwrap(), vec![]);
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (json!({"lr": 0.1}), "hyperparam_mutations.lr"),
            (json!({"a": {"b": "x"}}), "hyperparam_mutations.a.b"),
            (json!({"a": []}), "hyperparam_mutations.a"),
            (json!({"a": {"$callable": -1}}), "hyperparam_mutations.a"),
            (json!({"a": {"$callable": 1, "x": 2}}), "hyperparam_mutations.a"),
            (json!({"a": {"$domain": {"kind": "sample_from", "id": 1}}}), "hyperparam_mutations.a"),
            (json!({"a": {"grid_search": [1, 2]}}), "hyperparam_mutations.a"),
            (json!(["x"]), "hyperparam_mutations"),
        ];
        for (v, f) in cases {
            assert_eq!(parse(&v).unwrap_err().field, f, "{v}");
        }
        let e = parse(&json!({"s": {"lr": {"uniform": [1, 0]}}})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scheduler.hyperparam_mutations.s.lr: uniform needs low < high, got low = 1, high = 0"
        );
    }

    #[test]
    fn fill_missing_samples_only_what_is_absent() {
        let m = parse(&json!({"a": [1, 2, 3], "b": {"c": {"randint": [0, 10]}}, "f": {"$callable": 0}})).unwrap();
        let mut cfg = json!({"a": 2}).as_object().unwrap().clone();
        let mut rng = Rng::seed_from_u64(1);
        assert!(fill_missing(&mut cfg, &m, &mut rng));
        assert_eq!(cfg["a"], json!(2));
        assert!((0..10).contains(&cfg["b"]["c"].as_i64().unwrap()));
        assert_eq!(cfg["f"], json!({"$call": 0}));
        assert!(!fill_missing(&mut cfg, &m, &mut rng));
    }
}
