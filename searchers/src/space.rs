//! The search space: a nested JSON object whose leaves are domains or constants.
//!
//! Two spellings of a domain leaf are accepted, freely mixed:
//! - canonical: `{"$domain": {"kind": "loguniform", "low": 1e-4, "high": 0.1}}`;
//! - shorthand: an object whose single key is a domain name and whose value is the argument
//!   array, e.g. `{"quniform": [0, 1, 0.25]}` or `{"grid_search": [1, 2]}` (Ray's JSON grid form).
//!   A single-key object keyed by a domain name is always read as a domain, so a wrong argument
//!   list is an error rather than a nested section.
//!
//! Any other object is a nested section; everything else (numbers, strings, bools, arrays, null)
//! is a constant copied into every config. Parameters are kept in path order (keys sorted at each
//! level), which is also the order Ray sorts grid variables in.

pub use crate::domain::Domain;
use crate::{shorthand, Rng};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A resolved config: a nested JSON object.
pub type Config = serde_json::Map<String, Value>;

/// The key marking a canonical domain leaf.
pub const DOMAIN_KEY: &str = "$domain";

/// A search-space (or preset) problem: the dotted path of the parameter and the rule broken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {rule}")]
pub struct SpaceError {
    /// Where: dotted parameter path (`optimizer.lr`), or a named place such as `(root)`.
    pub path: String,
    /// What: the rule broken, with the offending values.
    pub rule: String,
}

impl SpaceError {
    fn at(path: &[String], rule: impl Into<String>) -> Self {
        let path = if path.is_empty() { "(root)".to_string() } else { path.join(".") };
        SpaceError { path, rule: rule.into() }
    }
}

/// One domain leaf of a space: its path from the root and its domain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Param {
    /// Keys from the root to the leaf.
    pub path: Vec<String>,
    /// What the leaf may take.
    pub domain: Domain,
}

impl Param {
    /// The path joined with dots (`optimizer.lr`).
    pub fn dotted(&self) -> String {
        self.path.join(".")
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Node {
    /// Index into `Space::params`.
    Param(usize),
    Const(Value),
    Object(BTreeMap<String, Node>),
}

/// What a path designates inside a space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    Param,
    Const,
    Section,
}

/// A parsed, validated search space.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Space {
    root: BTreeMap<String, Node>,
    params: Vec<Param>,
    /// Indices into `params` of the grid leaves, in path order.
    grid: Vec<usize>,
}

impl Space {
    /// Parses and validates a space; the first problem in path order is reported.
    pub fn parse(value: &Value) -> Result<Space, SpaceError> {
        let Value::Object(map) = value else {
            return Err(SpaceError::at(&[], "the search space must be a JSON object"));
        };
        let mut params = Vec::new();
        let root = parse_object(map, &mut Vec::new(), &mut params)?;
        let grid = (0..params.len()).filter(|&i| params[i].domain.is_grid()).collect();
        Ok(Space { root, params, grid })
    }

    /// Every domain leaf, in path order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The `grid_search` leaves, in path order (the first varies fastest in a grid walk).
    pub fn grid_params(&self) -> Vec<&Param> {
        self.grid.iter().map(|&i| &self.params[i]).collect()
    }

    /// How many combinations the grid has (1 without grid leaves; saturates at `u64::MAX`).
    pub fn grid_size(&self) -> u64 {
        self.grid.iter().map(|&i| grid_len(&self.params[i].domain)).fold(1u64, u64::saturating_mul)
    }

    /// The `sample_from` leaves: path and callable id, in path order.
    pub fn sample_from_ids(&self) -> Vec<(Vec<String>, u64)> {
        self.params
            .iter()
            .filter_map(|p| match p.domain {
                Domain::SampleFrom { id } => Some((p.path.clone(), id)),
                _ => None,
            })
            .collect()
    }

    /// The paths of the `sample_from` leaves, in path order.
    pub fn sample_from_paths(&self) -> Vec<Vec<String>> {
        self.sample_from_ids().into_iter().map(|(p, _)| p).collect()
    }

    /// Whether the space has no domain leaf at all (only constants).
    pub fn is_empty_of_domains(&self) -> bool {
        self.params.is_empty()
    }

    /// Builds a config: grid leaf `j` (in `grid_params` order) takes value `grid_choice[j]`,
    /// other domains are sampled in path order, constants are copied, `sample_from` gives `null`.
    ///
    /// # Panics
    /// If `grid_choice` does not have one in-range index per grid leaf.
    pub fn resolve(&self, grid_choice: &[usize], rng: &mut Rng) -> Config {
        assert_eq!(grid_choice.len(), self.grid.len(), "one index per grid leaf");
        let mut values: Vec<Option<Value>> = vec![None; self.params.len()];
        for (&i, &choice) in self.grid.iter().zip(grid_choice) {
            values[i] = Some(grid_value(&self.params[i].domain, choice as u64));
        }
        for (value, param) in values.iter_mut().zip(&self.params) {
            if value.is_none() {
                *value = Some(param.domain.sample(rng));
            }
        }
        let values: Vec<Value> = values.into_iter().map(Option::unwrap_or_default).collect();
        self.assemble(&values)
    }

    /// The canonical JSON form (`{"$domain": ...}` leaves); `parse` of it gives back this space.
    pub fn to_canonical_json(&self) -> Value {
        Value::Object(self.canonical_object(&self.root))
    }

    fn canonical_object(&self, map: &BTreeMap<String, Node>) -> Config {
        map.iter()
            .map(|(k, node)| {
                let v = match node {
                    Node::Param(i) => {
                        let domain = serde_json::to_value(&self.params[*i].domain).expect("a domain always serializes");
                        let mut leaf = Config::new();
                        leaf.insert(DOMAIN_KEY.to_string(), domain);
                        Value::Object(leaf)
                    }
                    Node::Const(v) => v.clone(),
                    Node::Object(m) => Value::Object(self.canonical_object(m)),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Indices into `params` of the grid leaves, in path order.
    pub(crate) fn grid_indices(&self) -> &[usize] {
        &self.grid
    }

    /// Builds the config tree with `values[i]` at param `i`'s leaf.
    pub(crate) fn assemble(&self, values: &[Value]) -> Config {
        fn walk(map: &BTreeMap<String, Node>, values: &[Value]) -> Config {
            map.iter()
                .map(|(k, node)| {
                    let v = match node {
                        Node::Param(i) => values[*i].clone(),
                        Node::Const(v) => v.clone(),
                        Node::Object(m) => Value::Object(walk(m, values)),
                    };
                    (k.clone(), v)
                })
                .collect()
        }
        walk(&self.root, values)
    }

    /// What `path` designates: a domain leaf, a constant leaf, a section, or nothing.
    pub(crate) fn find(&self, path: &[String]) -> Option<Found> {
        let (first, rest) = path.split_first()?;
        let mut node = self.root.get(first)?;
        for key in rest {
            match node {
                Node::Object(m) => node = m.get(key)?,
                _ => return None,
            }
        }
        Some(match node {
            Node::Param(_) => Found::Param,
            Node::Const(_) => Found::Const,
            Node::Object(_) => Found::Section,
        })
    }
}

/// The number of values of a grid leaf (1 for any other domain).
pub(crate) fn grid_len(d: &Domain) -> u64 {
    match d {
        Domain::GridSearch { values } => values.len() as u64,
        _ => 1,
    }
}

/// The `index`-th value of a grid leaf.
pub(crate) fn grid_value(d: &Domain, index: u64) -> Value {
    match d {
        Domain::GridSearch { values } => values[index as usize].clone(),
        other => panic!("{} is not a grid leaf", other.kind()),
    }
}

impl TryFrom<Value> for Space {
    type Error = SpaceError;

    fn try_from(value: Value) -> Result<Self, Self::Error> {
        Space::parse(&value)
    }
}

impl From<Space> for Value {
    fn from(space: Space) -> Self {
        space.to_canonical_json()
    }
}

fn parse_object(
    map: &Config,
    path: &mut Vec<String>,
    params: &mut Vec<Param>,
) -> Result<BTreeMap<String, Node>, SpaceError> {
    let mut out = BTreeMap::new();
    for (key, value) in map {
        path.push(key.clone());
        let node = parse_node(value, path, params)?;
        path.pop();
        out.insert(key.clone(), node);
    }
    Ok(out)
}

fn parse_node(value: &Value, path: &mut Vec<String>, params: &mut Vec<Param>) -> Result<Node, SpaceError> {
    let domain = match value {
        Value::Object(map) if map.contains_key(DOMAIN_KEY) => {
            if map.len() != 1 {
                return Err(SpaceError::at(path, format!("{DOMAIN_KEY} must be the only key")));
            }
            serde_json::from_value::<Domain>(map[DOMAIN_KEY].clone())
                .map_err(|e| SpaceError::at(path, format!("invalid domain: {e}")))?
        }
        Value::Object(map) if map.len() == 1 => {
            let (name, args) = map.iter().next().expect("one entry");
            if !shorthand::is_name(name) {
                return Ok(Node::Object(parse_object(map, path, params)?));
            }
            shorthand::parse(name, args).map_err(|rule| SpaceError::at(path, rule))?
        }
        Value::Object(map) => return Ok(Node::Object(parse_object(map, path, params)?)),
        Value::Array(items) => {
            if items.iter().any(holds_domain_key) {
                return Err(SpaceError::at(path, "domains inside arrays are not supported; use a nested object"));
            }
            return Ok(Node::Const(value.clone()));
        }
        other => return Ok(Node::Const(other.clone())),
    };
    domain.validate().map_err(|rule| SpaceError::at(path, rule))?;
    params.push(Param { path: path.clone(), domain });
    Ok(Node::Param(params.len() - 1))
}

fn holds_domain_key(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key(DOMAIN_KEY) || m.values().any(holds_domain_key),
        Value::Array(a) => a.iter().any(holds_domain_key),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use serde_json::json;

    fn err(v: Value) -> String {
        Space::parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn shorthand_and_canonical_parse_equal() {
        let short = json!({
            "optimizer": {"lr": {"loguniform": [1e-4, 0.1]}, "momentum": {"uniform": [0.8, 0.99]}},
            "layers": {"grid_search": [2, 4]},
            "batch": {"qrandint": [16, 128, 16]},
            "act": {"choice": ["relu", "tanh"]},
            "noise": {"randn": []},
            "epochs": 10,
            "tags": ["a", "b"],
        });
        let canonical = json!({
            "optimizer": {
                "lr": {"$domain": {"kind": "loguniform", "low": 1e-4, "high": 0.1, "base": 10}},
                "momentum": {"$domain": {"kind": "uniform", "low": 0.8, "high": 0.99}},
            },
            "layers": {"$domain": {"kind": "grid_search", "values": [2, 4]}},
            "batch": {"$domain": {"kind": "qrandint", "low": 16, "high": 128, "q": 16}},
            "act": {"$domain": {"kind": "choice", "values": ["relu", "tanh"]}},
            "noise": {"$domain": {"kind": "randn"}},
            "epochs": 10,
            "tags": ["a", "b"],
        });
        let a = Space::parse(&short).unwrap();
        let b = Space::parse(&canonical).unwrap();
        assert_eq!(a, b);
        assert_eq!(Space::parse(&a.to_canonical_json()).unwrap(), a);
        let paths: Vec<String> = a.params().iter().map(Param::dotted).collect();
        assert_eq!(paths, ["act", "batch", "layers", "noise", "optimizer.lr", "optimizer.momentum"]);
        assert_eq!(a.grid_size(), 2);
        assert_eq!(a.grid_params()[0].dotted(), "layers");
        assert!(!a.is_empty_of_domains());
        let text = serde_json::to_string(&a).unwrap();
        assert_eq!(serde_json::from_str::<Space>(&text).unwrap(), a);
    }

    #[test]
    fn errors_carry_dotted_paths() {
        assert_eq!(
            err(json!({"optimizer": {"lr": {"loguniform": [0, 0.1]}}})),
            "optimizer.lr: loguniform needs low > 0, got low = 0"
        );
        assert_eq!(
            err(json!({"optimizer": {"lr": {"uniform": [0.5, 0.5]}}})),
            "optimizer.lr: uniform needs low < high, got low = 0.5, high = 0.5"
        );
        assert_eq!(
            err(json!({"optimizer": {"lr": {"$domain": {"kind": "quniform", "low": 0, "high": 1, "q": -0.5}}}})),
            "optimizer.lr: quniform needs q > 0, got q = -0.5"
        );
        assert_eq!(err(json!({"model": {"act": {"choice": []}}})), "model.act: choice needs at least one value");
        assert_eq!(
            err(json!({"a": {"randint": [5, 2]}, "b": {"choice": []}})),
            "a: randint needs low < high, got low = 5, high = 2"
        );
        assert_eq!(err(json!({"x": {"uniform": [1]}})), "x: uniform takes [low, high], got 1 arguments");
        assert!(err(json!({"x": {"$domain": {"kind": "nope"}}})).starts_with("x: invalid domain: "));
        assert_eq!(err(json!({"x": {"$domain": {"kind": "randn"}, "y": 1}})), "x: $domain must be the only key");
        assert_eq!(err(json!([1])), "(root): the search space must be a JSON object");
        assert!(err(json!({"x": [{"$domain": {"kind": "randn"}}]})).starts_with("x: domains inside arrays"));
    }

    #[test]
    fn resolve_fills_grid_samples_domains_copies_constants() {
        let space = Space::parse(&json!({
            "a": {"grid_search": [1, 2]},
            "b": {"grid_search": ["x", "y", "z"]},
            "c": {"randint": [0, 3]},
            "f": {"$domain": {"kind": "sample_from", "id": 4}},
            "k": {"nested": true, "empty": {}},
        }))
        .unwrap();
        let mut rng = Rng::seed_from_u64(5);
        let c = space.resolve(&[1, 2], &mut rng);
        assert_eq!(c["a"], json!(2));
        assert_eq!(c["b"], json!("z"));
        assert!((0..3).contains(&c["c"].as_i64().unwrap()));
        assert_eq!(c["f"], Value::Null);
        assert_eq!(c["k"], json!({"nested": true, "empty": {}}));
        assert_eq!(space.sample_from_ids(), vec![(vec!["f".to_string()], 4)]);
        assert_eq!(space.sample_from_paths(), vec![vec!["f".to_string()]]);
        assert_eq!(space.grid_size(), 6);
    }

    #[test]
    fn single_key_objects_that_are_not_domains_nest() {
        let space = Space::parse(&json!({"model": {"depth": {"randint": [1, 4]}}, "x": {"y": 1}})).unwrap();
        assert_eq!(space.params()[0].dotted(), "model.depth");
        assert_eq!(space.find(&["x".into(), "y".into()]), Some(Found::Const));
        assert_eq!(space.find(&["x".into()]), Some(Found::Section));
        assert_eq!(space.find(&["model".into(), "depth".into()]), Some(Found::Param));
        assert_eq!(space.find(&["model".into(), "depth".into(), "z".into()]), None);
        let consts = Space::parse(&json!({"a": 1})).unwrap();
        assert!(consts.is_empty_of_domains());
        assert_eq!(consts.grid_size(), 1);
    }
}
