//! The compact spelling of a domain used in TOML files: `{ uniform = [0.0, 1.0] }`.

use crate::domain::Domain;
use serde_json::Value;

/// Domain names accepted as the single key of a shorthand object.
const NAMES: [&str; 12] = [
    "uniform",
    "quniform",
    "loguniform",
    "qloguniform",
    "randn",
    "qrandn",
    "randint",
    "qrandint",
    "lograndint",
    "qlograndint",
    "choice",
    "grid_search",
];

/// Whether `key` names a domain in the shorthand spelling.
pub(crate) fn is_name(key: &str) -> bool {
    NAMES.contains(&key)
}

/// Builds the domain named `name` from its argument array (not yet validated).
pub(crate) fn parse(name: &str, args: &Value) -> Result<Domain, String> {
    let Value::Array(args) = args else {
        return Err(format!("{name} takes an array of arguments, got {args}"));
    };
    let a = Args { name, args };
    let d = match name {
        "uniform" => {
            a.arity("[low, high]", 2, 2)?;
            Domain::Uniform { low: a.f(0)?, high: a.f(1)? }
        }
        "quniform" => {
            a.arity("[low, high, q]", 3, 3)?;
            Domain::Quniform { low: a.f(0)?, high: a.f(1)?, q: a.f(2)? }
        }
        "loguniform" => {
            a.arity("[low, high] or [low, high, base]", 2, 3)?;
            Domain::Loguniform { low: a.f(0)?, high: a.f(1)?, base: a.f_or(2, 10.0)? }
        }
        "qloguniform" => {
            a.arity("[low, high, q] or [low, high, q, base]", 3, 4)?;
            Domain::Qloguniform { low: a.f(0)?, high: a.f(1)?, q: a.f(2)?, base: a.f_or(3, 10.0)? }
        }
        "randn" => {
            a.arity("[], [mean] or [mean, sd]", 0, 2)?;
            Domain::Randn { mean: a.f_or(0, 0.0)?, sd: a.f_or(1, 1.0)? }
        }
        "qrandn" => {
            a.arity("[mean, sd, q]", 3, 3)?;
            Domain::Qrandn { mean: a.f(0)?, sd: a.f(1)?, q: a.f(2)? }
        }
        "randint" => {
            a.arity("[low, high]", 2, 2)?;
            Domain::Randint { low: a.i(0)?, high: a.i(1)? }
        }
        "qrandint" => {
            a.arity("[low, high] or [low, high, q]", 2, 3)?;
            let q = if args.len() > 2 { a.i(2)? } else { 1 };
            Domain::Qrandint { low: a.i(0)?, high: a.i(1)?, q }
        }
        "lograndint" => {
            a.arity("[low, high] or [low, high, base]", 2, 3)?;
            Domain::Lograndint { low: a.i(0)?, high: a.i(1)?, base: a.f_or(2, 10.0)? }
        }
        "qlograndint" => {
            a.arity("[low, high, q] or [low, high, q, base]", 3, 4)?;
            Domain::Qlograndint { low: a.i(0)?, high: a.i(1)?, q: a.i(2)?, base: a.f_or(3, 10.0)? }
        }
        "choice" => Domain::Choice { values: args.clone() },
        "grid_search" => Domain::GridSearch { values: args.clone() },
        other => return Err(format!("unknown domain {other}")),
    };
    Ok(d)
}

struct Args<'a> {
    name: &'a str,
    args: &'a [Value],
}

impl Args<'_> {
    fn arity(&self, usage: &str, min: usize, max: usize) -> Result<(), String> {
        let n = self.args.len();
        if (min..=max).contains(&n) {
            Ok(())
        } else {
            Err(format!("{} takes {usage}, got {n} arguments", self.name))
        }
    }

    fn f(&self, i: usize) -> Result<f64, String> {
        let v = &self.args[i];
        v.as_f64().ok_or_else(|| format!("{} needs numeric arguments, got {v}", self.name))
    }

    fn f_or(&self, i: usize, default: f64) -> Result<f64, String> {
        if i < self.args.len() {
            self.f(i)
        } else {
            Ok(default)
        }
    }

    fn i(&self, i: usize) -> Result<i64, String> {
        let v = &self.args[i];
        v.as_i64().ok_or_else(|| format!("{} needs integer arguments, got {v}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_form() {
        assert_eq!(parse("uniform", &json!([0, 1])), Ok(Domain::Uniform { low: 0.0, high: 1.0 }));
        assert_eq!(
            parse("loguniform", &json!([1e-4, 0.1])),
            Ok(Domain::Loguniform { low: 1e-4, high: 0.1, base: 10.0 })
        );
        assert_eq!(
            parse("qloguniform", &json!([1, 100, 1, 2])),
            Ok(Domain::Qloguniform { low: 1.0, high: 100.0, q: 1.0, base: 2.0 })
        );
        assert_eq!(parse("randn", &json!([])), Ok(Domain::Randn { mean: 0.0, sd: 1.0 }));
        assert_eq!(parse("randn", &json!([2, 3])), Ok(Domain::Randn { mean: 2.0, sd: 3.0 }));
        assert_eq!(parse("qrandint", &json!([0, 10])), Ok(Domain::Qrandint { low: 0, high: 10, q: 1 }));
        assert_eq!(
            parse("qlograndint", &json!([1, 64, 2])),
            Ok(Domain::Qlograndint { low: 1, high: 64, q: 2, base: 10.0 })
        );
        assert_eq!(
            parse("grid_search", &json!(["a", 1])),
            Ok(Domain::GridSearch { values: vec![json!("a"), json!(1)] })
        );
    }

    #[test]
    fn wrong_arity_and_types() {
        assert_eq!(parse("uniform", &json!([0, 1, 2])).unwrap_err(), "uniform takes [low, high], got 3 arguments");
        assert_eq!(parse("randint", &json!([0, 1.5])).unwrap_err(), "randint needs integer arguments, got 1.5");
        assert_eq!(
            parse("quniform", &json!([0, "1", 0.5])).unwrap_err(),
            "quniform needs numeric arguments, got \"1\""
        );
        assert_eq!(parse("choice", &json!(3)).unwrap_err(), "choice takes an array of arguments, got 3");
        assert!(!is_name("sample_from"));
    }
}
