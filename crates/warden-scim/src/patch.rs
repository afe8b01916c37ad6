//! PATCH (RFC 7644 §3.5.2) on a resource in canonical form.
//!
//! Besides the RFC's forms this accepts what Microsoft Entra ID and Okta send:
//! operation names in any case (`Add`, `Replace`, `Remove`); booleans as strings
//! (`"False"`); a path-less `replace` / `add` whose value keys are themselves paths
//! (`{"name.givenName": "Anne"}`, `{"urn:...:enterprise:2.0:User:department": "R&D"}`);
//! a path-less value carrying the resource's own `id` (Okta); `add` or `replace` on
//! `emails[type eq "work"].value` when no such email exists yet (the value is created,
//! as Entra ID expects); `remove` on `members` with a value listing the members to
//! remove (Entra ID); and removing a member that is not there (a no-op, so retries are
//! safe).

use serde_json::{Map, Value};

use crate::error::ScimError;
use crate::filter::{AttrPath, Filter, Op, PatchPath};
use crate::resource::{check_single, check_value, normalize_existing};
use crate::schema::{Kind, Mutability, Type};

/// The URN of PATCH request bodies.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Most operations in one request.
pub const MAX_OPERATIONS: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verb {
    Add,
    Replace,
    Remove,
}

/// Applies a PATCH request body to `doc` (canonical form, as stored, with `members`
/// for groups) and returns the resulting document, checked like a PUT body.
pub fn apply(kind: Kind, doc: &Value, id: &str, body: &Value) -> Result<Value, ScimError> {
    let Value::Object(req) = body else {
        return Err(ScimError::invalid_syntax("a PATCH body is a JSON object"));
    };
    let mut ops = None;
    for (k, v) in req {
        if k.eq_ignore_ascii_case("schemas") {
            let ok = v.as_array().is_some_and(|a| {
                a.iter()
                    .any(|s| s.as_str().is_some_and(|s| s.eq_ignore_ascii_case(PATCH_OP)))
            });
            if !ok {
                return Err(ScimError::invalid_syntax(format!(
                    "`schemas` must be [\"{PATCH_OP}\"]"
                )));
            }
        } else if k.eq_ignore_ascii_case("operations") {
            ops = Some(v);
        } else {
            return Err(ScimError::invalid_syntax(format!(
                "unknown member `{k}` of a PATCH request"
            )));
        }
    }
    let Some(Value::Array(ops)) = ops else {
        return Err(ScimError::invalid_syntax(
            "`Operations` (an array) is required",
        ));
    };
    if ops.is_empty() || ops.len() > MAX_OPERATIONS {
        return Err(ScimError::invalid_syntax(format!(
            "1 to {MAX_OPERATIONS} operations per request"
        )));
    }
    let mut out = doc.clone();
    for op in ops {
        let Value::Object(op) = op else {
            return Err(ScimError::invalid_syntax("each operation is a JSON object"));
        };
        let (mut verb, mut path, mut value) = (None, None, None);
        for (k, v) in op {
            match k.to_ascii_lowercase().as_str() {
                "op" => {
                    verb = Some(match v.as_str().map(str::to_ascii_lowercase).as_deref() {
                        Some("add") => Verb::Add,
                        Some("replace") => Verb::Replace,
                        Some("remove") => Verb::Remove,
                        _ => {
                            return Err(ScimError::invalid_syntax(format!(
                                "`op` is add, replace or remove, not {v}"
                            )));
                        }
                    })
                }
                "path" => {
                    path = Some(
                        v.as_str()
                            .ok_or_else(|| ScimError::invalid_path("`path` is a string"))?
                            .to_string(),
                    )
                }
                "value" => value = Some(v.clone()),
                _ => {
                    return Err(ScimError::invalid_syntax(format!(
                        "unknown member `{k}` of an operation"
                    )));
                }
            }
        }
        let verb = verb.ok_or_else(|| ScimError::invalid_syntax("`op` is required"))?;
        let path = path.filter(|p| !p.trim().is_empty());
        match path {
            Some(p) => {
                let target = PatchPath::parse(kind, &p)?;
                one(kind, &mut out, verb, &target, value.as_ref())?;
            }
            None => {
                if verb == Verb::Remove {
                    return Err(ScimError::no_target("`remove` needs a `path`"));
                }
                let Some(Value::Object(fields)) = &value else {
                    return Err(ScimError::invalid_value(
                        "without a `path`, `value` is an object of attributes",
                    ));
                };
                for (k, v) in fields {
                    if k.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    // Okta repeats the resource's id; only a different one is a change.
                    if k.eq_ignore_ascii_case("id") {
                        if v.as_str() == Some(id) {
                            continue;
                        }
                        return Err(ScimError::mutability("`id` cannot change"));
                    }
                    let target = PatchPath::parse(kind, k)
                        .map_err(|e| ScimError::invalid_value(e.detail))?;
                    one(kind, &mut out, verb, &target, Some(v))?;
                }
            }
        }
    }
    normalize_existing(kind, &out)
}

/// The object `path` lives in (the resource, or its extension object).
fn container<'a>(
    doc: &'a mut Value,
    ext: Option<&str>,
    create: bool,
) -> Option<&'a mut Map<String, Value>> {
    let obj = doc.as_object_mut()?;
    match ext {
        None => Some(obj),
        Some(e) => {
            if create && !obj.get(e).is_some_and(Value::is_object) {
                obj.insert(e.to_string(), Value::Object(Map::new()));
            }
            obj.get_mut(e)?.as_object_mut()
        }
    }
}

fn one(
    kind: Kind,
    doc: &mut Value,
    verb: Verb,
    target: &PatchPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let (path, filter) = match target {
        PatchPath::Extension(urn) => {
            if verb == Verb::Remove {
                if let Some(o) = doc.as_object_mut() {
                    o.remove(*urn);
                }
                return Ok(());
            }
            let Some(Value::Object(fields)) = value else {
                return Err(ScimError::invalid_value(format!(
                    "`{urn}` takes an object of its attributes"
                )));
            };
            for (k, v) in fields {
                if k.eq_ignore_ascii_case("schemas") {
                    continue;
                }
                let t = PatchPath::parse(kind, &format!("{urn}:{k}"))?;
                one(kind, doc, verb, &t, Some(v))?;
            }
            return Ok(());
        }
        PatchPath::Attr { path, filter } => (path, filter.as_ref()),
    };
    if path.attr.mutability == Mutability::ReadOnly
        || path
            .sub
            .is_some_and(|s| s.mutability == Mutability::ReadOnly)
    {
        return Err(ScimError::mutability(format!("`{path}` is read-only")));
    }
    if verb != Verb::Remove && value.is_none() {
        return Err(ScimError::invalid_value(format!(
            "`{}` needs a `value`",
            match verb {
                Verb::Add => "add",
                _ => "replace",
            }
        )));
    }
    let Some(c) = container(doc, path.ext, verb != Verb::Remove) else {
        // Removing from an extension the resource does not carry: nothing to do.
        return Ok(());
    };
    match filter {
        None => plain(c, verb, path, value),
        Some(f) => filtered(c, verb, path, f, value),
    }
}

/// A path without a value filter.
fn plain(
    c: &mut Map<String, Value>,
    verb: Verb,
    path: &AttrPath,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let a = path.attr;
    let name = a.name;
    if let Some(sub) = path.sub {
        // `name.givenName`, or a sub-attribute of every value of a multi-valued one.
        match verb {
            Verb::Remove => match c.get_mut(name) {
                Some(Value::Object(o)) => {
                    o.remove(sub.name);
                }
                Some(Value::Array(items)) => {
                    for i in items.iter_mut().filter_map(Value::as_object_mut) {
                        i.remove(sub.name);
                    }
                }
                _ => {}
            },
            _ => {
                let v = check_single(sub, value.unwrap_or(&Value::Null))?;
                if a.multi {
                    if let Some(Value::Array(items)) = c.get_mut(name) {
                        for i in items.iter_mut().filter_map(Value::as_object_mut) {
                            i.insert(sub.name.to_string(), v.clone());
                        }
                    }
                } else {
                    let o = c.entry(name).or_insert_with(|| Value::Object(Map::new()));
                    if !o.is_object() {
                        *o = Value::Object(Map::new());
                    }
                    if let Some(o) = o.as_object_mut() {
                        o.insert(sub.name.to_string(), v);
                    }
                }
            }
        }
        return Ok(());
    }
    match verb {
        Verb::Remove => {
            if a.required {
                return Err(ScimError::mutability(format!(
                    "`{name}` is required and cannot be removed"
                )));
            }
            match (value, c.get_mut(name)) {
                // Entra ID: remove the listed values only.
                (Some(v), Some(Value::Array(items))) if a.multi && !v.is_null() => {
                    let gone = check_value(a, v)?;
                    let gone: Vec<Value> = gone.as_array().cloned().unwrap_or_default();
                    items.retain(|i| !gone.iter().any(|g| same_value(a.ty, i, g)));
                }
                _ => {
                    c.remove(name);
                }
            }
        }
        Verb::Add | Verb::Replace => {
            let v = check_value(a, value.unwrap_or(&Value::Null))?;
            if v.is_null() {
                if verb == Verb::Replace {
                    c.remove(name);
                }
                return Ok(());
            }
            match (verb, a.multi, a.ty) {
                (Verb::Add, true, _) => {
                    let items = c.entry(name).or_insert_with(|| Value::Array(Vec::new()));
                    if !items.is_array() {
                        *items = Value::Array(Vec::new());
                    }
                    if let (Some(items), Some(new)) = (items.as_array_mut(), v.as_array()) {
                        for n in new {
                            if n.get("primary") == Some(&Value::Bool(true)) {
                                for i in items.iter_mut().filter_map(Value::as_object_mut) {
                                    i.remove("primary");
                                }
                            }
                            match items.iter_mut().find(|i| same_value(a.ty, i, n)) {
                                Some(existing) => *existing = n.clone(),
                                None => items.push(n.clone()),
                            }
                        }
                    }
                }
                (_, false, Type::Complex) => {
                    // Sub-attributes given replace theirs; the others stay.
                    let o = c.entry(name).or_insert_with(|| Value::Object(Map::new()));
                    if !o.is_object() {
                        *o = Value::Object(Map::new());
                    }
                    if let (Some(o), Some(new)) = (o.as_object_mut(), v.as_object()) {
                        for (k, x) in new {
                            o.insert(k.clone(), x.clone());
                        }
                    }
                }
                _ => {
                    c.insert(name.to_string(), v);
                }
            }
        }
    }
    Ok(())
}

/// Whether two values of a multi-valued attribute are the same value: complex values
/// by their `value` sub-attribute when they have one.
fn same_value(ty: Type, a: &Value, b: &Value) -> bool {
    if ty == Type::Complex
        && let (Some(x), Some(y)) = (a.get("value"), b.get("value"))
    {
        return x == y;
    }
    a == b
}

/// `attr[filter]` or `attr[filter].sub`.
fn filtered(
    c: &mut Map<String, Value>,
    verb: Verb,
    path: &AttrPath,
    f: &Filter,
    value: Option<&Value>,
) -> Result<(), ScimError> {
    let a = path.attr;
    let items = c.entry(a.name).or_insert_with(|| Value::Array(Vec::new()));
    if !items.is_array() {
        *items = Value::Array(Vec::new());
    }
    let Some(items) = items.as_array_mut() else {
        return Ok(());
    };
    let hits: Vec<usize> = (0..items.len()).filter(|i| f.matches(&items[*i])).collect();
    match verb {
        Verb::Remove => {
            match path.sub {
                Some(sub) => {
                    for i in &hits {
                        if let Some(o) = items[*i].as_object_mut() {
                            o.remove(sub.name);
                        }
                    }
                }
                None => {
                    let mut k = 0;
                    items.retain(|_| {
                        let keep = !hits.contains(&k);
                        k += 1;
                        keep
                    });
                }
            }
            if items.is_empty() {
                c.remove(a.name);
            }
            Ok(())
        }
        Verb::Add | Verb::Replace => {
            let v = value.unwrap_or(&Value::Null);
            let patch: Map<String, Value> = match path.sub {
                Some(sub) => {
                    let mut m = Map::new();
                    m.insert(sub.name.to_string(), check_single(sub, v)?);
                    m
                }
                None => match check_single(a, v)? {
                    Value::Object(o) => o,
                    Value::Null => Map::new(),
                    _ => {
                        return Err(ScimError::invalid_value(format!(
                            "`{}` values are objects",
                            a.name
                        )));
                    }
                },
            };
            if hits.is_empty() {
                // Create the value the filter describes, when it only names values.
                let Some(mut seed) = equalities(f) else {
                    return Err(ScimError::no_target(format!(
                        "no value of `{}` matches the filter",
                        a.name
                    )));
                };
                seed.extend(patch);
                items.push(Value::Object(seed));
                return Ok(());
            }
            for i in hits {
                if let Some(o) = items[i].as_object_mut() {
                    for (k, x) in &patch {
                        o.insert(k.clone(), x.clone());
                    }
                }
            }
            Ok(())
        }
    }
}

/// `a eq "x" and b eq "y"` as `{a: "x", b: "y"}`; `None` for any other filter.
fn equalities(f: &Filter) -> Option<Map<String, Value>> {
    match f {
        Filter::Compare(p, Op::Eq, v) if p.sub.is_none() && !v.is_null() => {
            let mut m = Map::new();
            m.insert(p.attr.name.to_string(), v.clone());
            Some(m)
        }
        Filter::And(x, y) => {
            let mut m = equalities(x)?;
            m.extend(equalities(y)?);
            Some(m)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn patch(kind: Kind, doc: Value, ops: Value) -> Result<Value, ScimError> {
        apply(
            kind,
            &doc,
            "id1",
            &json!({"schemas": [PATCH_OP], "Operations": ops}),
        )
    }

    fn user() -> Value {
        json!({"userName": "anne", "active": true, "emails": [{"value": "a@work", "type": "work", "primary": true}]})
    }

    #[test]
    fn entra_id_user_operations() {
        let out = patch(Kind::User, user(), json!([
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"home\"].value", "value": "a@home"},
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "anne@work"},
            {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "boss"},
            {"op": "Replace", "path": "name.givenName", "value": "Anne"},
            {"op": "Replace", "value": {"displayName": "Anne S", "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D", "name.familyName": "S"}}
        ])).unwrap();
        assert_eq!(out["active"], json!(false));
        assert_eq!(
            out["emails"],
            json!([{"value": "anne@work", "type": "work", "primary": true}, {"type": "home", "value": "a@home"}])
        );
        let ext = &out["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"];
        assert_eq!(ext["manager"], json!({"value": "boss"}));
        assert_eq!(ext["department"], json!("R&D"));
        assert_eq!(out["name"], json!({"givenName": "Anne", "familyName": "S"}));
        assert_eq!(out["displayName"], json!("Anne S"));
    }

    #[test]
    fn okta_and_entra_group_member_operations() {
        let g = json!({"displayName": "eng", "members": [{"value": "u1"}, {"value": "u2"}]});
        // Okta: add with display, remove by filter, rename with the id repeated.
        let out = patch(
            Kind::Group,
            g.clone(),
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u3", "display": "Carol"}]},
                {"op": "remove", "path": "members[value eq \"u1\"]"},
                {"op": "replace", "value": {"id": "id1", "displayName": "engineering"}}
            ]),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u2"}, {"value": "u3"}]));
        assert_eq!(out["displayName"], json!("engineering"));
        // Entra ID: remove with a value list; removing an absent member is a no-op.
        let out = patch(
            Kind::Group,
            g.clone(),
            json!([
                {"op": "Remove", "path": "members", "value": [{"value": "u2"}, {"value": "zz"}]},
                {"op": "Remove", "path": "members[value eq \"nobody\"]"}
            ]),
        )
        .unwrap();
        assert_eq!(out["members"], json!([{"value": "u1"}]));
        // Adding a member twice keeps one.
        let out = patch(
            Kind::Group,
            g.clone(),
            json!([{"op": "add", "path": "members", "value": [{"value": "u1"}]}]),
        )
        .unwrap();
        assert_eq!(out["members"].as_array().unwrap().len(), 2);
        // Remove all members.
        let out = patch(Kind::Group, g, json!([{"op": "remove", "path": "members"}])).unwrap();
        assert!(out.get("members").is_none());
    }

    #[test]
    fn rejected_operations() {
        let cases = [
            (json!([{"op": "remove", "path": "userName"}]), "mutability"),
            (
                json!([{"op": "replace", "path": "id", "value": "x"}]),
                "mutability",
            ),
            (
                json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
                "mutability",
            ),
            (
                json!([{"op": "replace", "value": {"id": "other"}}]),
                "mutability",
            ),
            (json!([{"op": "remove"}]), "noTarget"),
            (
                json!([{"op": "copy", "path": "userName", "value": "x"}]),
                "invalidSyntax",
            ),
            (
                json!([{"op": "add", "path": "nosuch", "value": "x"}]),
                "invalidPath",
            ),
            (
                json!([{"op": "add", "path": "active", "value": "maybe"}]),
                "invalidValue",
            ),
            (
                json!([{"op": "replace", "path": "userName", "value": ""}]),
                "invalidValue",
            ),
            (json!([]), "invalidSyntax"),
            (json!([{"op": "replace", "value": "x"}]), "invalidValue"),
            (
                json!([{"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}]),
                "invalidPath",
            ),
        ];
        for (ops, t) in cases {
            let e = patch(Kind::User, user(), ops.clone()).unwrap_err();
            assert_eq!(e.scim_type, Some(t), "{ops}: {e}");
        }
        // A filter that matches nothing and does not describe a value to create.
        let e = patch(Kind::User, user(), json!([{"op": "replace", "path": "emails[type eq \"x\" or type eq \"y\"].value", "value": "v"}])).unwrap_err();
        assert_eq!(e.scim_type, Some("noTarget"));
        assert!(
            apply(
                Kind::User,
                &user(),
                "id1",
                &json!({"Operations": [{"op": "add", "path": "title", "value": "x"}], "extra": 1})
            )
            .is_err()
        );
        assert!(apply(Kind::User, &user(), "id1", &json!({"schemas": ["urn:x"], "Operations": [{"op": "add", "path": "title", "value": "x"}]})).is_err());
    }
}
