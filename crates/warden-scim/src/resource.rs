//! What a client sends, checked against the schema, and what is returned, shaped by
//! the schema and the request's `attributes` / `excludedAttributes`.
//!
//! Input: attribute names in any case (RFC 7643 §2.1) become canonical; read-only
//! attributes (`id`, `meta`, `groups`) are ignored; `null` means unassigned; unknown
//! attributes and values of the wrong type are errors; booleans sent as the strings
//! `"True"` / `"False"` (as Microsoft Entra ID does) are accepted.

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::filter::{AttrPath, resolve};
use crate::schema::{Attribute, Kind, Mutability, Returned, Type};

/// Longest string value accepted, in bytes.
pub const MAX_STRING: usize = 16 * 1024;

/// Checks a whole resource (the body of a POST or PUT) and returns it with canonical
/// names, without read-only attributes.
pub fn normalize(kind: Kind, body: &Value) -> Result<Value, ScimError> {
    if !body
        .as_object()
        .is_some_and(|o| o.keys().any(|k| k.eq_ignore_ascii_case("schemas")))
    {
        return Err(ScimError::invalid_syntax(format!(
            "`schemas` is required (\"{}\")",
            kind.core().id
        )));
    }
    normalize_existing(kind, body)
}

/// Checks a resource that need not name its schemas (one made by applying a PATCH).
pub fn normalize_existing(kind: Kind, body: &Value) -> Result<Value, ScimError> {
    let Value::Object(obj) = body else {
        return Err(ScimError::invalid_syntax("a resource is a JSON object"));
    };
    let mut out = Map::new();
    for (k, v) in obj {
        if k.eq_ignore_ascii_case("schemas") {
            check_schemas(kind, v)?;
            continue;
        }
        if let Some(ext) = kind.extension(k) {
            let Value::Object(inner) = v else {
                if v.is_null() {
                    continue;
                }
                return Err(ScimError::invalid_syntax(format!(
                    "`{k}` is an object of extension attributes"
                )));
            };
            for (ik, iv) in inner {
                let path = resolve(kind, &format!("{}:{ik}", ext.id))
                    .filter(|p| p.sub.is_none())
                    .ok_or_else(|| {
                        ScimError::invalid_syntax(format!(
                            "unknown attribute `{ik}` in `{}`",
                            ext.id
                        ))
                    })?;
                put(&mut out, &path, iv)?;
            }
            continue;
        }
        let path = resolve(kind, k)
            .filter(|p| p.sub.is_none())
            .ok_or_else(|| ScimError::invalid_syntax(format!("unknown attribute `{k}`")))?;
        put(&mut out, &path, v)?;
    }
    let doc = Value::Object(out);
    check_required(kind, &doc)?;
    Ok(doc)
}

fn put(out: &mut Map<String, Value>, path: &AttrPath, v: &Value) -> Result<(), ScimError> {
    if path.attr.mutability == Mutability::ReadOnly || v.is_null() {
        return Ok(());
    }
    let value = check_value(path.attr, v)?;
    if value.is_null() {
        return Ok(());
    }
    let target = match path.ext {
        Some(e) => out
            .entry(e)
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .ok_or_else(|| ScimError::invalid_syntax("bad extension"))?,
        None => out,
    };
    target.insert(path.attr.name.to_string(), value);
    Ok(())
}

fn check_schemas(kind: Kind, v: &Value) -> Result<(), ScimError> {
    let Value::Array(list) = v else {
        return Err(ScimError::invalid_syntax("`schemas` is an array of URNs"));
    };
    let mut core = false;
    for s in list {
        let Some(s) = s.as_str() else {
            return Err(ScimError::invalid_syntax("`schemas` is an array of URNs"));
        };
        if s.eq_ignore_ascii_case(kind.core().id) {
            core = true;
        } else if kind.extension(s).is_none() {
            return Err(ScimError::invalid_value(format!(
                "unknown schema `{s}` for a {}",
                kind.name()
            )));
        }
    }
    if !core {
        return Err(ScimError::invalid_value(format!(
            "`schemas` must include `{}`",
            kind.core().id
        )));
    }
    Ok(())
}

/// Required attributes must have a value.
pub fn check_required(kind: Kind, doc: &Value) -> Result<(), ScimError> {
    for a in &kind.core().attributes {
        if a.required && a.mutability != Mutability::ReadOnly {
            let ok = match doc.get(a.name) {
                Some(Value::String(s)) => !s.trim().is_empty(),
                Some(Value::Null) | None => false,
                Some(_) => true,
            };
            if !ok {
                return Err(ScimError::invalid_value(format!(
                    "`{}` is required",
                    a.name
                )));
            }
        }
    }
    Ok(())
}

/// Checks `v` as a value of `def` (all values of a multi-valued attribute), returning
/// it in canonical form (`null` when nothing is left).
pub fn check_value(def: &Attribute, v: &Value) -> Result<Value, ScimError> {
    if !def.multi {
        return check_single(def, v);
    }
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        Value::Null => return Ok(Value::Null),
        other => vec![other],
    };
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        let c = check_single(def, i)?;
        if !c.is_null() && !out.contains(&c) {
            out.push(c);
        }
    }
    let primaries = out
        .iter()
        .filter(|i| i.get("primary") == Some(&Value::Bool(true)))
        .count();
    if primaries > 1 {
        return Err(ScimError::invalid_value(format!(
            "at most one value of `{}` may be primary",
            def.name
        )));
    }
    Ok(if out.is_empty() {
        Value::Null
    } else {
        Value::Array(out)
    })
}

/// One value of `def`.
pub fn check_single(def: &Attribute, v: &Value) -> Result<Value, ScimError> {
    let wrong = || {
        ScimError::invalid_value(format!(
            "`{}` takes a {} value",
            def.name,
            match def.ty {
                Type::Boolean => "boolean",
                Type::Integer => "integer",
                Type::Decimal => "number",
                Type::Complex => "complex (object)",
                _ => "string",
            }
        ))
    };
    if v.is_null() {
        return Ok(Value::Null);
    }
    match def.ty {
        Type::Complex => {
            let obj = match v {
                Value::Object(o) => o.clone(),
                // Entra ID sends a manager as its bare id.
                Value::String(_) if def.sub_attr("value").is_some() => {
                    let mut m = Map::new();
                    m.insert("value".into(), v.clone());
                    m
                }
                _ => return Err(wrong()),
            };
            let mut out = Map::new();
            for (k, sv) in &obj {
                let Some(sub) = def.sub_attr(k) else {
                    if def.ignored.iter().any(|n| n.eq_ignore_ascii_case(k)) {
                        continue;
                    }
                    return Err(ScimError::invalid_syntax(format!(
                        "unknown sub-attribute `{k}` of `{}`",
                        def.name
                    )));
                };
                if sub.mutability == Mutability::ReadOnly {
                    continue;
                }
                let c = check_single(sub, sv)?;
                if !c.is_null() {
                    out.insert(sub.name.to_string(), c);
                }
            }
            Ok(if out.is_empty() {
                Value::Null
            } else {
                Value::Object(out)
            })
        }
        Type::Boolean => match v {
            Value::Bool(_) => Ok(v.clone()),
            Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(Value::Bool(true)),
            Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(Value::Bool(false)),
            _ => Err(wrong()),
        },
        Type::Integer => match v {
            Value::Number(n) if n.is_i64() => Ok(v.clone()),
            _ => Err(wrong()),
        },
        Type::Decimal => match v {
            Value::Number(_) => Ok(v.clone()),
            _ => Err(wrong()),
        },
        Type::String | Type::Reference | Type::Binary | Type::DateTime => {
            let Value::String(s) = v else {
                return Err(wrong());
            };
            if s.len() > MAX_STRING {
                return Err(ScimError::invalid_value(format!(
                    "`{}` is longer than {MAX_STRING} bytes",
                    def.name
                )));
            }
            if s.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
            {
                return Err(ScimError::invalid_value(format!(
                    "`{}` holds control characters",
                    def.name
                )));
            }
            if def.ty == Type::DateTime && !looks_like_datetime(s) {
                return Err(ScimError::invalid_value(format!(
                    "`{}` is an RFC 3339 date-time",
                    def.name
                )));
            }
            Ok(v.clone())
        }
    }
}

fn looks_like_datetime(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 19
        && b[4] == b'-'
        && b[7] == b'-'
        && (b[10] == b'T' || b[10] == b't')
        && b[13] == b':'
        && b[16] == b':'
        && b.iter()
            .take(19)
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16].contains(&i) || c.is_ascii_digit())
}

/// Parses an `attributes` or `excludedAttributes` list (comma-separated paths).
pub fn parse_attribute_list(kind: Kind, text: &str) -> Result<Vec<AttrPath>, ScimError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            resolve(kind, s)
                .ok_or_else(|| ScimError::invalid_value(format!("unknown attribute `{s}`")))
        })
        .collect()
}

/// Shapes a full resource for a response: never-returned attributes dropped, then
/// `attributes` (only these, plus `id` and `schemas`) or `excludedAttributes` (all but
/// these; `id` and `schemas` always stay) applied.
pub fn project(kind: Kind, full: &Value, attributes: &[AttrPath], excluded: &[AttrPath]) -> Value {
    let Value::Object(obj) = full else {
        return full.clone();
    };
    let mut out = Map::new();
    for (k, v) in obj {
        if k == "schemas" {
            out.insert(k.clone(), v.clone());
            continue;
        }
        if let Some(ext) = kind.extension(k) {
            let Value::Object(inner) = v else { continue };
            let mut kept = Map::new();
            for (ik, iv) in inner {
                if let Some(p) = resolve(kind, &format!("{}:{ik}", ext.id))
                    && let Some(val) = keep(&p, iv, attributes, excluded)
                {
                    kept.insert(ik.clone(), val);
                }
            }
            if !kept.is_empty() {
                out.insert(k.clone(), Value::Object(kept));
            }
            continue;
        }
        let Some(p) = resolve(kind, k) else { continue };
        if let Some(val) = keep(&p, v, attributes, excluded) {
            out.insert(k.clone(), val);
        }
    }
    // `schemas` names the extensions the resource still carries.
    let mut schemas = vec![Value::String(kind.core().id.into())];
    for e in kind.extensions() {
        if out.contains_key(e.id) {
            schemas.push(Value::String(e.id.into()));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    Value::Object(out)
}

fn same(a: &AttrPath, b: &AttrPath) -> bool {
    a.ext == b.ext && std::ptr::eq(a.attr, b.attr)
}

/// What of attribute `p` (value `v`) is returned.
fn keep(p: &AttrPath, v: &Value, attributes: &[AttrPath], excluded: &[AttrPath]) -> Option<Value> {
    let a = p.attr;
    if a.returned == Returned::Never || a.mutability == Mutability::WriteOnly {
        return None;
    }
    if a.returned == Returned::Always {
        return Some(v.clone());
    }
    if !attributes.is_empty() {
        let asked: Vec<&AttrPath> = attributes.iter().filter(|x| same(x, p)).collect();
        if asked.is_empty() {
            return None;
        }
        if asked.iter().any(|x| x.sub.is_none()) {
            return Some(v.clone());
        }
        let subs: Vec<&str> = asked.iter().filter_map(|x| x.sub.map(|s| s.name)).collect();
        return only_subs(v, |name| subs.contains(&name));
    }
    let dropped: Vec<&AttrPath> = excluded.iter().filter(|x| same(x, p)).collect();
    if dropped.iter().any(|x| x.sub.is_none()) {
        return None;
    }
    if dropped.is_empty() {
        return Some(v.clone());
    }
    let subs: Vec<&str> = dropped
        .iter()
        .filter_map(|x| x.sub.map(|s| s.name))
        .collect();
    only_subs(v, |name| !subs.contains(&name))
}

fn only_subs(v: &Value, wanted: impl Fn(&str) -> bool + Copy) -> Option<Value> {
    let pick = |o: &Map<String, Value>| -> Map<String, Value> {
        o.iter()
            .filter(|(k, _)| wanted(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    match v {
        Value::Object(o) => {
            let m = pick(o);
            (!m.is_empty()).then_some(Value::Object(m))
        }
        Value::Array(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter_map(|i| i.as_object().map(pick))
                .filter(|m| !m.is_empty())
                .map(Value::Object)
                .collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => Some(other.clone()),
    }
}

/// Removes and returns the write-only password, which is never stored in the
/// resource (the server keeps only its hash).
pub fn take_password(doc: &mut Value) -> Option<String> {
    doc.as_object_mut()?
        .remove("password")
        .and_then(|v| v.as_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_in_any_case_become_canonical_and_read_only_is_ignored() {
        let doc = normalize(
            Kind::User,
            &json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
                "USERNAME": "anne", "id": "forged", "meta": {"created": "x"},
                "Name": {"GivenName": "Anne"}, "active": "False",
                "emails": [{"Value": "a@x.example", "type": "work", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"Department": "R&D", "manager": "m1"},
                "groups": [{"value": "g"}], "title": null
            }),
        )
        .unwrap();
        assert_eq!(
            doc,
            json!({
                "userName": "anne", "name": {"givenName": "Anne"}, "active": false,
                "emails": [{"value": "a@x.example", "type": "work", "primary": true}],
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "m1"}}
            })
        );
    }

    #[test]
    fn bad_input_is_a_scim_error() {
        let cases = [
            (json!([1]), "invalidSyntax"),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "shoeSize": 42}),
                "invalidSyntax",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": 5}),
                "invalidValue",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "active": "yes"}),
                "invalidValue",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"]}),
                "invalidValue",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "a"}),
                "invalidValue",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "emails": [{"value": "a", "primary": true}, {"value": "b", "primary": true}]}),
                "invalidValue",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a", "name": {"nickname": "x"}}),
                "invalidSyntax",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "a\u{0}b"}),
                "invalidValue",
            ),
            (
                json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "userName": "x".repeat(MAX_STRING + 1)}),
                "invalidValue",
            ),
        ];
        for (body, t) in cases {
            let e = normalize(Kind::User, &body).unwrap_err();
            assert_eq!(e.scim_type, Some(t), "{body}: {e}");
            assert_eq!(e.status, 400);
        }
    }

    #[test]
    fn projection() {
        let full = json!({
            "schemas": [], "id": "1", "userName": "anne", "password": "secret",
            "name": {"givenName": "A", "familyName": "S"},
            "emails": [{"value": "a@x", "type": "work"}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}
        });
        let all = project(Kind::User, &full, &[], &[]);
        assert!(all.get("password").is_none());
        assert_eq!(all["schemas"].as_array().unwrap().len(), 2);
        let a = parse_attribute_list(Kind::User, "userName,name.givenName").unwrap();
        let some = project(Kind::User, &full, &a, &[]);
        assert_eq!(
            some,
            json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "id": "1", "userName": "anne", "name": {"givenName": "A"}})
        );
        let x = parse_attribute_list(
            Kind::User,
            "emails.type, urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        )
        .unwrap();
        let less = project(Kind::User, &full, &[], &x);
        assert_eq!(less["emails"], json!([{"value": "a@x"}]));
        assert!(
            less.get("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User")
                .is_none()
        );
        assert_eq!(less["schemas"].as_array().unwrap().len(), 1);
        assert!(parse_attribute_list(Kind::User, "nosuch").is_err());
    }
}
