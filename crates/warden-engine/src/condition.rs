//! Conditions: CEL expressions with typed parameters, evaluated over a tuple's stored
//! context merged with the request's context (OpenFGA semantics).
//!
//! - Parameters come from the tuple's context and the request's; on a clash the value
//!   stored with the tuple wins (it was written by an administrator, the request comes
//!   from a caller).
//! - Every declared parameter that the expression references must be present, even
//!   where the expression could short-circuit without it; a missing one is an error,
//!   never a silent `false`.
//! - Values are converted to their declared type; one that does not convert (a string
//!   for an `int`, a fraction for an `int`, a negative `uint`, a non-finite `double`, a
//!   malformed duration, timestamp or IP address) is an error.
//! - `ipaddress` values are IP addresses in canonical text form; `ip.in_cidr("10.0.0.0/8")`
//!   tests membership and `ipaddress("10.0.0.1")` builds one.

use std::sync::Arc;

use cel::extractors::This;
use cel::{ExecutionError, Program, Value};
use indexmap::IndexMap;
use serde_json::{Map, Value as Json};
use thiserror::Error;
use warden_model::{AuthorizationModel, ConditionParamType, TypeName};

/// A JSON object of named values, as sent in requests and stored with tuples.
pub type Context = Map<String, Json>;

/// Why a condition could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConditionError {
    #[error("condition `{0}` is not defined in the model")]
    Undefined(String),
    #[error("condition `{condition}` is invalid: {reason}")]
    Invalid { condition: String, reason: String },
    #[error("condition `{condition}` is missing parameters: {}", missing.join(", "))]
    MissingParameters {
        condition: String,
        missing: Vec<String>,
    },
    #[error("condition `{condition}`: parameter `{parameter}` {reason}")]
    BadParameter {
        condition: String,
        parameter: String,
        reason: String,
    },
    #[error("condition `{condition}` failed to evaluate: {reason}")]
    Evaluation { condition: String, reason: String },
}

struct Compiled {
    name: String,
    parameters: IndexMap<String, ConditionParamType>,
    /// Declared parameters the expression references: these must be supplied.
    required: Vec<String>,
    program: Program,
}

/// The model's conditions, compiled once per model.
#[derive(Default)]
pub struct ConditionSet {
    conditions: IndexMap<String, Compiled>,
}

impl std::fmt::Debug for ConditionSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.conditions.keys()).finish()
    }
}

impl ConditionSet {
    /// Compiles every condition of `model`; an expression that does not parse is an error.
    pub fn compile(model: &AuthorizationModel) -> Result<Self, ConditionError> {
        let mut conditions = IndexMap::new();
        for (name, c) in &model.conditions {
            let program = Program::compile(&c.expression).map_err(|e| ConditionError::Invalid {
                condition: name.clone(),
                reason: e
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or("does not parse")
                    .to_string(),
            })?;
            let refs = program.references();
            let required = c
                .parameters
                .keys()
                .filter(|p| refs.has_variable(p.as_str()))
                .cloned()
                .collect();
            conditions.insert(
                name.clone(),
                Compiled {
                    name: name.clone(),
                    parameters: c.parameters.clone(),
                    required,
                    program,
                },
            );
        }
        Ok(ConditionSet { conditions })
    }

    /// Whether `name` is a condition of the model.
    pub fn contains(&self, name: &str) -> bool {
        self.conditions.contains_key(name)
    }

    fn get(&self, name: &str) -> Result<&Compiled, ConditionError> {
        self.conditions
            .get(name)
            .ok_or_else(|| ConditionError::Undefined(name.to_string()))
    }

    /// Checks a context stored with a tuple against the condition's parameters (used
    /// when a tuple is written): every key must be a declared parameter of its type.
    pub fn validate_tuple_context(
        &self,
        name: &str,
        context: &Context,
    ) -> Result<(), ConditionError> {
        let c = self.get(name)?;
        for (key, value) in context {
            let Some(ty) = c.parameters.get(key) else {
                return Err(ConditionError::BadParameter {
                    condition: c.name.clone(),
                    parameter: key.clone(),
                    reason: "is not a parameter of the condition".into(),
                });
            };
            convert(value, ty).map_err(|reason| bad(c, key, reason))?;
        }
        Ok(())
    }

    /// Evaluates condition `name` over `tuple_context` (which wins on a clash) merged
    /// with `request_context`.
    pub fn evaluate(
        &self,
        name: &str,
        tuple_context: Option<&Context>,
        request_context: &Context,
    ) -> Result<bool, ConditionError> {
        let c = self.get(name)?;
        let lookup = |p: &str| {
            tuple_context
                .and_then(|t| t.get(p))
                .or_else(|| request_context.get(p))
        };
        let missing: Vec<String> = c
            .required
            .iter()
            .filter(|p| lookup(p).is_none())
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(ConditionError::MissingParameters {
                condition: c.name.clone(),
                missing,
            });
        }
        let mut ctx = cel::Context::default();
        ctx.add_function("in_cidr", in_cidr)
            .map_err(|e| eval_err(c, e))?;
        ctx.add_function("ipaddress", ipaddress)
            .map_err(|e| eval_err(c, e))?;
        for (p, ty) in &c.parameters {
            if let Some(v) = lookup(p) {
                let value = convert(v, ty).map_err(|reason| bad(c, p, reason))?;
                ctx.add_variable_from_value(p.clone(), value);
            }
        }
        match c.program.execute(&ctx) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(ConditionError::Evaluation {
                condition: c.name.clone(),
                reason: format!("the expression gave {:?}, not a bool", other.type_of()),
            }),
            Err(e) => Err(eval_err(c, e)),
        }
    }
}

fn bad(c: &Compiled, parameter: &str, reason: String) -> ConditionError {
    ConditionError::BadParameter {
        condition: c.name.clone(),
        parameter: parameter.to_string(),
        reason,
    }
}

fn eval_err(c: &Compiled, e: impl std::fmt::Display) -> ConditionError {
    ConditionError::Evaluation {
        condition: c.name.clone(),
        reason: e.to_string(),
    }
}

/// `ip.in_cidr(cidr)`.
fn in_cidr(This(ip): This<Arc<String>>, cidr: Arc<String>) -> Result<bool, ExecutionError> {
    let addr: std::net::IpAddr = ip
        .parse()
        .map_err(|_| ExecutionError::function_error("in_cidr", "not an IP address"))?;
    let net: ipnet::IpNet = cidr.parse().map_err(|_| {
        ExecutionError::function_error("in_cidr", format!("`{cidr}` is not a CIDR"))
    })?;
    Ok(net.contains(&addr))
}

/// `ipaddress("10.0.0.1")`.
fn ipaddress(s: Arc<String>) -> Result<Value, ExecutionError> {
    let addr: std::net::IpAddr = s.parse().map_err(|_| {
        ExecutionError::function_error("ipaddress", format!("`{s}` is not an IP address"))
    })?;
    Ok(Value::String(Arc::new(addr.to_string())))
}

/// Converts a JSON value to the CEL value of the declared type.
fn convert(v: &Json, ty: &ConditionParamType) -> Result<Value, String> {
    let want = |what: &str| format!("must be {what}, got `{v}`");
    Ok(match ty.type_name {
        TypeName::Any => any(v),
        TypeName::Bool => match v {
            Json::Bool(b) => Value::Bool(*b),
            _ => return Err(want("a bool")),
        },
        TypeName::String => match v {
            Json::String(s) => Value::String(Arc::new(s.clone())),
            _ => return Err(want("a string")),
        },
        TypeName::Int => {
            let n = number(v).ok_or_else(|| want("an integer"))?;
            match n {
                Num::Int(i) => Value::Int(i),
                Num::Uint(u) => Value::Int(i64::try_from(u).map_err(|_| want("an int64"))?),
                Num::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Value::Int(f as i64),
                Num::Float(_) => return Err(want("an integer")),
            }
        }
        TypeName::Uint => {
            let n = number(v).ok_or_else(|| want("an unsigned integer"))?;
            match n {
                Num::Uint(u) => Value::UInt(u),
                Num::Int(i) if i >= 0 => Value::UInt(i as u64),
                Num::Float(f) if f >= 0.0 && f.fract() == 0.0 && f < 1.8e19 => {
                    Value::UInt(f as u64)
                }
                _ => return Err(want("an unsigned integer")),
            }
        }
        TypeName::Double => {
            let f = match number(v).ok_or_else(|| want("a number"))? {
                Num::Int(i) => i as f64,
                Num::Uint(u) => u as f64,
                Num::Float(f) => f,
            };
            if !f.is_finite() {
                return Err(want("a finite number"));
            }
            Value::Float(f)
        }
        TypeName::Duration => match v {
            Json::String(s) => Value::Duration(
                parse_duration(s).ok_or_else(|| want("a duration such as `1h30m`"))?,
            ),
            _ => return Err(want("a duration string")),
        },
        TypeName::Timestamp => match v {
            Json::String(s) => Value::Timestamp(
                chrono::DateTime::parse_from_rfc3339(s)
                    .map_err(|_| want("an RFC 3339 timestamp"))?,
            ),
            _ => return Err(want("an RFC 3339 timestamp string")),
        },
        TypeName::IpAddress => match v {
            Json::String(s) => {
                let addr: std::net::IpAddr = s.parse().map_err(|_| want("an IP address"))?;
                Value::String(Arc::new(addr.to_string()))
            }
            _ => return Err(want("an IP address string")),
        },
        TypeName::List => {
            let Json::Array(items) = v else {
                return Err(want("a list"));
            };
            let elem = ty.generic_types.first();
            let out: Result<Vec<Value>, String> = items
                .iter()
                .map(|i| elem.map_or(Ok(any(i)), |t| convert(i, t)))
                .collect();
            Value::List(Arc::new(out?))
        }
        TypeName::Map => {
            let Json::Object(entries) = v else {
                return Err(want("a map"));
            };
            let elem = ty.generic_types.first();
            let mut out = std::collections::HashMap::new();
            for (k, i) in entries {
                out.insert(
                    cel::objects::Key::String(Arc::new(k.clone())),
                    elem.map_or(Ok(any(i)), |t| convert(i, t))?,
                );
            }
            Value::Map(out.into())
        }
    })
}

enum Num {
    Int(i64),
    Uint(u64),
    Float(f64),
}

/// A JSON number, or a string holding one (JSON loses precision on large integers, so
/// callers may send them as strings).
fn number(v: &Json) -> Option<Num> {
    match v {
        Json::Number(n) => n
            .as_i64()
            .map(Num::Int)
            .or_else(|| n.as_u64().map(Num::Uint))
            .or_else(|| n.as_f64().map(Num::Float)),
        Json::String(s) => s
            .parse::<i64>()
            .map(Num::Int)
            .or_else(|_| s.parse::<u64>().map(Num::Uint))
            .or_else(|_| s.parse::<f64>().map(Num::Float))
            .ok(),
        _ => None,
    }
}

/// JSON to CEL without a declared type.
fn any(v: &Json) -> Value {
    match v {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Value::Int(i),
            (_, Some(u), _) => Value::UInt(u),
            (_, _, f) => Value::Float(f.unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(a) => Value::List(Arc::new(a.iter().map(any).collect())),
        Json::Object(o) => {
            let m: std::collections::HashMap<cel::objects::Key, Value> = o
                .iter()
                .map(|(k, v)| (cel::objects::Key::String(Arc::new(k.clone())), any(v)))
                .collect();
            Value::Map(m.into())
        }
    }
}

/// Parses a Go duration string (`300ms`, `-1.5h`, `2h45m`; units ns, us, µs, ms, s, m, h).
pub fn parse_duration(s: &str) -> Option<chrono::Duration> {
    let (neg, mut rest) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if rest == "0" {
        return Some(chrono::Duration::zero());
    }
    if rest.is_empty() {
        return None;
    }
    let mut total_ns: f64 = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let n: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total_ns += n * scale;
    }
    if !total_ns.is_finite() || total_ns > i64::MAX as f64 {
        return None;
    }
    let d = chrono::Duration::nanoseconds(total_ns.round() as i64);
    Some(if neg { -d } else { d })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn set(name: &str, params: Json, expr: &str) -> ConditionSet {
        let model: AuthorizationModel = serde_json::from_value(json!({
            "schema_version": "1.1", "type_definitions": [],
            "conditions": {name: {"name": name, "expression": expr, "parameters": params}}
        }))
        .unwrap();
        ConditionSet::compile(&model).unwrap()
    }

    fn ctx(v: Json) -> Context {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn evaluates_typed_parameters() {
        let c = set("c", json!({"x": {"type_name": "TYPE_NAME_INT"}}), "x < 100");
        assert_eq!(c.evaluate("c", None, &ctx(json!({"x": 10}))), Ok(true));
        assert_eq!(c.evaluate("c", None, &ctx(json!({"x": 101}))), Ok(false));
        assert!(matches!(
            c.evaluate("c", None, &ctx(json!({}))),
            Err(ConditionError::MissingParameters { .. })
        ));
        assert!(matches!(
            c.evaluate("c", None, &ctx(json!({"x": 1.5}))),
            Err(ConditionError::BadParameter { .. })
        ));
        assert!(matches!(
            c.evaluate("c", None, &ctx(json!({"x": "abc"}))),
            Err(ConditionError::BadParameter { .. })
        ));
        assert!(matches!(
            c.evaluate("c", None, &ctx(json!({"x": true}))),
            Err(ConditionError::BadParameter { .. })
        ));
    }

    #[test]
    fn missing_parameter_is_an_error_even_if_it_could_short_circuit() {
        let c = set(
            "c",
            json!({"x": {"type_name": "TYPE_NAME_INT"}, "y": {"type_name": "TYPE_NAME_INT"}}),
            "x < 100 || y < 50",
        );
        assert!(c.evaluate("c", None, &ctx(json!({"x": 10}))).is_err());
        assert_eq!(
            c.evaluate("c", None, &ctx(json!({"x": 10, "y": 99}))),
            Ok(true)
        );
    }

    #[test]
    fn tuple_context_wins_over_request_context() {
        let c = set("c", json!({"x": {"type_name": "TYPE_NAME_INT"}}), "x == 1");
        let stored = ctx(json!({"x": 1}));
        assert_eq!(
            c.evaluate("c", Some(&stored), &ctx(json!({"x": 2}))),
            Ok(true)
        );
    }

    #[test]
    fn timestamps_durations_and_ip_addresses() {
        let c = set(
            "c",
            json!({"now": {"type_name": "TYPE_NAME_TIMESTAMP"}, "granted": {"type_name": "TYPE_NAME_TIMESTAMP"},
                   "ttl": {"type_name": "TYPE_NAME_DURATION"}}),
            "now < granted + ttl",
        );
        let stored = ctx(json!({"granted": "2023-01-01T00:00:00Z", "ttl": "1h30m"}));
        assert_eq!(
            c.evaluate(
                "c",
                Some(&stored),
                &ctx(json!({"now": "2023-01-01T01:00:00Z"}))
            ),
            Ok(true)
        );
        assert_eq!(
            c.evaluate(
                "c",
                Some(&stored),
                &ctx(json!({"now": "2023-01-01T02:00:00Z"}))
            ),
            Ok(false)
        );
        assert!(
            c.evaluate("c", Some(&stored), &ctx(json!({"now": "yesterday"})))
                .is_err()
        );

        let ip = set(
            "ip",
            json!({"cidr": {"type_name": "TYPE_NAME_STRING"}, "user_ip": {"type_name": "TYPE_NAME_IPADDRESS"}}),
            "user_ip.in_cidr(cidr)",
        );
        let net = ctx(json!({"cidr": "192.168.0.0/24"}));
        assert_eq!(
            ip.evaluate("ip", Some(&net), &ctx(json!({"user_ip": "192.168.0.7"}))),
            Ok(true)
        );
        assert_eq!(
            ip.evaluate("ip", Some(&net), &ctx(json!({"user_ip": "10.0.0.1"}))),
            Ok(false)
        );
        assert!(
            ip.evaluate("ip", Some(&net), &ctx(json!({"user_ip": "not-an-ip"})))
                .is_err()
        );
    }

    #[test]
    fn lists_maps_uint_double_and_non_bool_results() {
        let c = set(
            "c",
            json!({"xs": {"type_name": "TYPE_NAME_LIST", "generic_types": [{"type_name": "TYPE_NAME_STRING"}]},
                   "m": {"type_name": "TYPE_NAME_MAP", "generic_types": [{"type_name": "TYPE_NAME_INT"}]},
                   "u": {"type_name": "TYPE_NAME_UINT"}, "d": {"type_name": "TYPE_NAME_DOUBLE"}}),
            "\"a\" in xs && m[\"k\"] == 3 && u > 1u && d > 0.5",
        );
        let good = ctx(json!({"xs": ["a", "b"], "m": {"k": 3}, "u": 2, "d": 0.75}));
        assert_eq!(c.evaluate("c", None, &good), Ok(true));
        let neg = ctx(json!({"xs": ["a"], "m": {"k": 3}, "u": -1, "d": 0.75}));
        assert!(c.evaluate("c", None, &neg).is_err());
        let wrong_elem = ctx(json!({"xs": [1], "m": {"k": 3}, "u": 2, "d": 0.75}));
        assert!(c.evaluate("c", None, &wrong_elem).is_err());
        let not_bool = set("n", json!({"x": {"type_name": "TYPE_NAME_INT"}}), "x + 1");
        assert!(matches!(
            not_bool.evaluate("n", None, &ctx(json!({"x": 1}))),
            Err(ConditionError::Evaluation { .. })
        ));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("1h30m"), Some(chrono::Duration::minutes(90)));
        assert_eq!(parse_duration("1.5h"), Some(chrono::Duration::minutes(90)));
        assert_eq!(parse_duration("-10s"), Some(chrono::Duration::seconds(-10)));
        assert_eq!(
            parse_duration("300ms"),
            Some(chrono::Duration::milliseconds(300))
        );
        assert_eq!(parse_duration("0"), Some(chrono::Duration::zero()));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("1d"), None);
        assert_eq!(parse_duration(""), None);
    }
}
