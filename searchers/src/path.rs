//! Paths into nested configs: walk the leaves of a partial config, read and write one leaf.

use crate::space::Config;
use serde_json::Value;

/// The leaves of a preset: objects are walked, anything else is a value (arrays included).
pub(crate) fn point_leaves(map: &Config, prefix: &mut Vec<String>, out: &mut Vec<(Vec<String>, Value)>) {
    for (k, v) in map {
        prefix.push(k.clone());
        match v {
            Value::Object(m) => point_leaves(m, prefix, out),
            other => out.push((prefix.clone(), other.clone())),
        }
        prefix.pop();
    }
}

/// The value at `path`, if every step is an object holding the next key.
pub fn get_path<'a>(config: &'a Config, path: &[String]) -> Option<&'a Value> {
    let (last, init) = path.split_last()?;
    let mut map = config;
    for k in init {
        map = map.get(k)?.as_object()?;
    }
    map.get(last)
}

/// Puts `value` at `path`, making (or replacing with) objects along the way.
pub fn set_path(config: &mut Config, path: &[String], value: Value) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut map = config;
    for k in init {
        let slot = map.entry(k.clone()).or_insert_with(|| Value::Object(Config::new()));
        if !slot.is_object() {
            *slot = Value::Object(Config::new());
        }
        map = slot.as_object_mut().expect("just made an object");
    }
    map.insert(last.clone(), value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Config {
        v.as_object().unwrap().clone()
    }

    fn p(s: &str) -> Vec<String> {
        s.split('.').map(String::from).collect()
    }

    #[test]
    fn leaves_walk_objects_but_not_arrays() {
        let mut out = Vec::new();
        point_leaves(&obj(json!({"a": {"b": 1, "c": [1, {"d": 2}]}, "e": {}, "f": null})), &mut Vec::new(), &mut out);
        assert_eq!(out, vec![(p("a.b"), json!(1)), (p("a.c"), json!([1, {"d": 2}])), (p("f"), Value::Null)]);
    }

    #[test]
    fn get_and_set() {
        let mut c = obj(json!({"a": {"b": 1}, "x": 2}));
        assert_eq!(get_path(&c, &p("a.b")), Some(&json!(1)));
        assert_eq!(get_path(&c, &p("x.y")), None);
        set_path(&mut c, &p("a.b"), json!(5));
        set_path(&mut c, &p("x.y"), json!(6));
        set_path(&mut c, &p("n.m"), json!(7));
        assert_eq!(Value::Object(c), json!({"a": {"b": 5}, "x": {"y": 6}, "n": {"m": 7}}));
    }
}
