//! SCIM filters (RFC 7644 §3.4.2.2) and PATCH paths (§3.5.2): a tokenizer, a parser
//! that resolves every attribute name against the schema (unknown names are
//! `invalidFilter` / `invalidPath`, never guessed), and the evaluator.
//!
//! Precedence: `not` binds tightest, then `and`, then `or`; parentheses group;
//! `attr[filter]` filters the values of a multi-valued attribute. Operators and
//! keywords are case-insensitive; string comparisons follow each attribute's
//! `caseExact`.

use std::cmp::Ordering;

use serde_json::Value;

use crate::error::ScimError;
use crate::schema::{Attribute, Kind, Type};

/// Longest filter or path accepted, in bytes.
pub const MAX_LEN: usize = 4096;
/// Deepest nesting of parentheses and `not`.
const MAX_DEPTH: usize = 32;

/// A resolved attribute path: `[urn:]attr[.sub]`, names in their canonical case.
#[derive(Debug, Clone, Copy)]
pub struct AttrPath {
    /// The extension schema holding the attribute (`None` for the core schema).
    pub ext: Option<&'static str>,
    pub attr: &'static Attribute,
    pub sub: Option<&'static Attribute>,
}

impl AttrPath {
    /// The definition of what the path names (the sub-attribute when there is one).
    pub fn def(&self) -> &'static Attribute {
        self.sub.unwrap_or(self.attr)
    }
}

impl std::fmt::Display for AttrPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(e) = self.ext {
            write!(f, "{e}:")?;
        }
        write!(f, "{}", self.attr.name)?;
        if let Some(s) = self.sub {
            write!(f, ".{}", s.name)?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A parsed filter.
#[derive(Debug, Clone)]
pub enum Filter {
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
    Not(Box<Filter>),
    Present(AttrPath),
    Compare(AttrPath, Op, Value),
    /// `attr[filter]`: some value of the multi-valued complex `attr` matches `filter`,
    /// whose paths are relative to one value (their `attr` is the sub-attribute).
    Values(AttrPath, Box<Filter>),
}

/// A PATCH operation's target.
#[derive(Debug, Clone)]
pub enum PatchPath {
    /// A bare extension URN: the extension's attributes as one object.
    Extension(&'static str),
    /// `attr[.sub]`, or `attr[filter][.sub]`.
    Attr {
        path: AttrPath,
        filter: Option<Filter>,
    },
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Open,
    Close,
    LBracket,
    RBracket,
    Str(String),
    Word(String),
}

fn tokenize(s: &str, err: fn(String) -> ScimError) -> Result<Vec<Tok>, ScimError> {
    if s.len() > MAX_LEN {
        return Err(err(format!("longer than {MAX_LEN} bytes")));
    }
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            c if c.is_ascii_whitespace() => i += 1,
            b'(' => {
                out.push(Tok::Open);
                i += 1
            }
            b')' => {
                out.push(Tok::Close);
                i += 1
            }
            b'[' => {
                out.push(Tok::LBracket);
                i += 1
            }
            b']' => {
                out.push(Tok::RBracket);
                i += 1
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err(err("unterminated string".into()));
                }
                i += 1;
                let v: String = serde_json::from_str(&s[start..i])
                    .map_err(|_| err(format!("bad string {}", &s[start..i])))?;
                out.push(Tok::Str(v));
            }
            _ => {
                let start = i;
                while i < b.len() && !b[i].is_ascii_whitespace() && !b"()[]\"".contains(&b[i]) {
                    i += 1;
                }
                out.push(Tok::Word(s[start..i].to_string()));
            }
        }
    }
    Ok(out)
}

/// Where names resolve: the resource's schemas, or one complex attribute's values.
#[derive(Clone, Copy)]
enum Scope {
    Top(Kind),
    Within(Option<&'static str>, &'static Attribute),
}

/// Resolves `text` (`name`, `name.sub`, `urn:...:name[.sub]`) in `kind`'s schemas.
pub fn resolve(kind: Kind, text: &str) -> Option<AttrPath> {
    let (ext, rest) = split_urn(kind, text)?;
    let schema = match ext {
        Some(e) => kind.extension(e)?,
        None => kind.core(),
    };
    let (name, sub) = match rest.split_once('.') {
        Some((n, s)) => (n, Some(s)),
        None => (rest, None),
    };
    let attr = schema.attr(name)?;
    let sub = match sub {
        Some(s) => Some(attr.sub_attr(s)?),
        None => None,
    };
    Some(AttrPath {
        ext: ext.map(|_| schema.id),
        attr,
        sub,
    })
}

/// Splits a schema URN prefix off `text`: `(Some(urn), rest)` for an extension,
/// `(None, rest)` for the core schema (its URN may be written or not).
fn split_urn(kind: Kind, text: &str) -> Option<(Option<&'static str>, &str)> {
    if !text
        .get(..4)
        .is_some_and(|p| p.eq_ignore_ascii_case("urn:"))
    {
        return Some((None, text));
    }
    let core = kind.core().id;
    let schemas =
        std::iter::once((None, core)).chain(kind.extensions().iter().map(|s| (Some(s.id), s.id)));
    for (ext, id) in schemas {
        if text.len() > id.len()
            && text.is_char_boundary(id.len())
            && text[..id.len()].eq_ignore_ascii_case(id)
            && text.as_bytes()[id.len()] == b':'
        {
            return Some((ext, &text[id.len() + 1..]));
        }
    }
    None
}

struct Parser<'a> {
    toks: &'a [Tok],
    pos: usize,
    depth: usize,
}

fn bad(detail: String) -> ScimError {
    ScimError::invalid_filter(detail)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Tok> {
        self.toks.get(self.pos)
    }
    fn next(&mut self) -> Option<&'a Tok> {
        let t = self.toks.get(self.pos);
        self.pos += 1;
        t
    }
    fn keyword(&self, k: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
    }

    fn or(&mut self, scope: Scope) -> Result<Filter, ScimError> {
        let mut left = self.and(scope)?;
        while self.keyword("or") {
            self.pos += 1;
            let right = self.and(scope)?;
            left = Filter::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn and(&mut self, scope: Scope) -> Result<Filter, ScimError> {
        let mut left = self.unary(scope)?;
        while self.keyword("and") {
            self.pos += 1;
            let right = self.unary(scope)?;
            left = Filter::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn unary(&mut self, scope: Scope) -> Result<Filter, ScimError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(bad("nested too deeply".into()));
        }
        let f = if self.keyword("not") {
            self.pos += 1;
            if self.next() != Some(&Tok::Open) {
                return Err(bad("`not` must be followed by `(`".into()));
            }
            let inner = self.or(scope)?;
            if self.next() != Some(&Tok::Close) {
                return Err(bad("missing `)`".into()));
            }
            Filter::Not(Box::new(inner))
        } else if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            let inner = self.or(scope)?;
            if self.next() != Some(&Tok::Close) {
                return Err(bad("missing `)`".into()));
            }
            inner
        } else {
            self.attr_exp(scope)?
        };
        self.depth -= 1;
        Ok(f)
    }

    fn attr_exp(&mut self, scope: Scope) -> Result<Filter, ScimError> {
        let Some(Tok::Word(name)) = self.next() else {
            return Err(bad("expected an attribute name".into()));
        };
        let path =
            resolve_in(scope, name).ok_or_else(|| bad(format!("unknown attribute `{name}`")))?;
        if self.peek() == Some(&Tok::LBracket) {
            self.pos += 1;
            if path.sub.is_some() || path.attr.ty != Type::Complex {
                return Err(bad(format!("`{name}` has no values to filter")));
            }
            let inner = self.or(Scope::Within(path.ext, path.attr))?;
            if self.next() != Some(&Tok::RBracket) {
                return Err(bad("missing `]`".into()));
            }
            return Ok(Filter::Values(path, Box::new(inner)));
        }
        let Some(Tok::Word(op)) = self.next() else {
            return Err(bad(format!("expected an operator after `{name}`")));
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "pr" => return Ok(Filter::Present(path)),
            "eq" => Op::Eq,
            "ne" => Op::Ne,
            "co" => Op::Co,
            "sw" => Op::Sw,
            "ew" => Op::Ew,
            "gt" => Op::Gt,
            "ge" => Op::Ge,
            "lt" => Op::Lt,
            "le" => Op::Le,
            other => return Err(bad(format!("unknown operator `{other}`"))),
        };
        let value = match self.next() {
            Some(Tok::Str(s)) => Value::String(s.clone()),
            Some(Tok::Word(w)) => match w.to_ascii_lowercase().as_str() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                "null" => Value::Null,
                _ => serde_json::from_str::<serde_json::Number>(w)
                    .map(Value::Number)
                    .map_err(|_| bad(format!("`{w}` is not a value (strings are quoted)")))?,
            },
            _ => return Err(bad(format!("expected a value after `{name}`"))),
        };
        check_comparable(path.def(), op, &value)?;
        Ok(Filter::Compare(path, op, value))
    }
}

fn resolve_in(scope: Scope, name: &str) -> Option<AttrPath> {
    match scope {
        Scope::Top(kind) => resolve(kind, name),
        Scope::Within(ext, parent) => {
            let sub = parent.sub_attr(name)?;
            Some(AttrPath {
                ext,
                attr: sub,
                sub: None,
            })
        }
    }
}

fn check_comparable(def: &Attribute, op: Op, value: &Value) -> Result<(), ScimError> {
    let ordering = matches!(op, Op::Gt | Op::Ge | Op::Lt | Op::Le);
    let substring = matches!(op, Op::Co | Op::Sw | Op::Ew);
    match def.ty {
        Type::Boolean if ordering || substring => Err(bad(format!(
            "`{}` is a boolean: only eq and ne apply",
            def.name
        ))),
        Type::Binary | Type::Complex if ordering => {
            Err(bad(format!("`{}` cannot be ordered", def.name)))
        }
        Type::Integer | Type::Decimal if substring => Err(bad(format!(
            "`{}` is a number: co, sw and ew do not apply",
            def.name
        ))),
        _ if value.is_null() && !matches!(op, Op::Eq | Op::Ne) => {
            Err(bad("null only compares with eq and ne".into()))
        }
        _ => Ok(()),
    }
}

impl Filter {
    /// Parses a `filter` query parameter for resources of `kind`.
    pub fn parse(kind: Kind, text: &str) -> Result<Filter, ScimError> {
        let toks = tokenize(text, bad)?;
        let mut p = Parser {
            toks: &toks,
            pos: 0,
            depth: 0,
        };
        let f = p.or(Scope::Top(kind))?;
        if p.pos != toks.len() {
            return Err(bad(format!("unexpected text after position {}", p.pos)));
        }
        Ok(f)
    }

    /// Whether `resource` (canonical names) matches.
    pub fn matches(&self, resource: &Value) -> bool {
        match self {
            Filter::And(a, b) => a.matches(resource) && b.matches(resource),
            Filter::Or(a, b) => a.matches(resource) || b.matches(resource),
            Filter::Not(a) => !a.matches(resource),
            Filter::Present(p) => values(resource, p).iter().any(|v| present(v)),
            Filter::Compare(p, Op::Ne, v) => {
                !Filter::Compare(*p, Op::Eq, v.clone()).matches(resource)
            }
            Filter::Compare(p, op, v) => {
                let found = values(resource, p);
                if v.is_null() {
                    return !found.iter().any(|x| present(x));
                }
                found.iter().any(|x| compare(p.def(), x, *op, v))
            }
            Filter::Values(p, inner) => container(resource, p)
                .and_then(|c| c.get(p.attr.name))
                .map(|v| match v {
                    Value::Array(items) => items.iter().any(|i| inner.matches(i)),
                    other => inner.matches(other),
                })
                .unwrap_or(false),
        }
    }
}

fn present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        _ => true,
    }
}

fn container<'a>(resource: &'a Value, p: &AttrPath) -> Option<&'a Value> {
    match p.ext {
        Some(e) => resource.get(e),
        None => Some(resource),
    }
}

/// The values a path names in `resource`: every value of a multi-valued attribute;
/// for a complex attribute without a sub-attribute, its `value` sub-attributes.
pub fn values<'a>(resource: &'a Value, p: &AttrPath) -> Vec<&'a Value> {
    let Some(v) = container(resource, p).and_then(|c| c.get(p.attr.name)) else {
        return Vec::new();
    };
    let items: Vec<&Value> = match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    };
    match (p.sub, p.attr.ty) {
        (Some(s), _) => items.into_iter().filter_map(|i| i.get(s.name)).collect(),
        (None, Type::Complex) if p.attr.multi => {
            items.into_iter().filter_map(|i| i.get("value")).collect()
        }
        _ => items,
    }
}

/// `actual op expected` under `def`'s type and case rule.
fn compare(def: &Attribute, actual: &Value, op: Op, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(a), Value::String(e)) => {
            let (a, e) = if def.case_exact || matches!(def.ty, Type::Binary) {
                (a.clone(), e.clone())
            } else {
                (a.to_lowercase(), e.to_lowercase())
            };
            let ord = if def.ty == Type::DateTime {
                cmp_datetime(&a, &e)
            } else {
                a.cmp(&e)
            };
            match op {
                Op::Eq => ord == Ordering::Equal,
                Op::Ne => ord != Ordering::Equal,
                Op::Co => a.contains(&e),
                Op::Sw => a.starts_with(&e),
                Op::Ew => a.ends_with(&e),
                Op::Gt => ord == Ordering::Greater,
                Op::Ge => ord != Ordering::Less,
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
            }
        }
        (Value::Bool(a), Value::Bool(e)) => match op {
            Op::Eq => a == e,
            Op::Ne => a != e,
            _ => false,
        },
        (Value::Number(a), Value::Number(e)) => {
            let (Some(a), Some(e)) = (a.as_f64(), e.as_f64()) else {
                return false;
            };
            let Some(ord) = a.partial_cmp(&e) else {
                return false;
            };
            match op {
                Op::Eq => ord == Ordering::Equal,
                Op::Ne => ord != Ordering::Equal,
                Op::Gt => ord == Ordering::Greater,
                Op::Ge => ord != Ordering::Less,
                Op::Lt => ord == Ordering::Less,
                Op::Le => ord != Ordering::Greater,
                _ => false,
            }
        }
        _ => false,
    }
}

/// Orders two RFC 3339 times; Warden writes them in UTC with milliseconds, so the
/// text order is the time order once both are cut to seconds and fractions padded.
fn cmp_datetime(a: &str, e: &str) -> Ordering {
    fn key(s: &str) -> String {
        let s = s.trim_end_matches(['z', 'Z']);
        match s.split_once('.') {
            Some((secs, frac)) => format!("{secs}.{frac:0<9}"),
            None => format!("{s}.000000000"),
        }
    }
    key(a).cmp(&key(e))
}

/// Orders two resources by `path` for `sortBy` (RFC 7644 §3.4.2.3): missing values
/// last, strings by `caseExact`, multi-valued attributes by their primary (or first)
/// value.
pub fn sort_key(resource: &Value, path: &AttrPath) -> Option<Value> {
    let v = values(resource, path);
    let pick = v.first().copied()?;
    Some(match pick {
        Value::String(s) if !path.def().case_exact => Value::String(s.to_lowercase()),
        other => other.clone(),
    })
}

/// Compares two sort keys of the same attribute.
pub fn cmp_keys(a: &Option<Value>, b: &Option<Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .partial_cmp(&y.as_f64())
            .unwrap_or(Ordering::Equal),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Bool(x)), Some(Value::Bool(y))) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

impl PatchPath {
    /// Parses a PATCH `path` for resources of `kind`.
    pub fn parse(kind: Kind, text: &str) -> Result<PatchPath, ScimError> {
        let ip = |d: String| ScimError::invalid_path(d);
        let text = text.trim();
        if let Some(ext) = kind.extension(text) {
            return Ok(PatchPath::Extension(ext.id));
        }
        let toks = tokenize(text, ScimError::invalid_path)?;
        let Some(Tok::Word(name)) = toks.first() else {
            return Err(ip(format!("`{text}` is not a path")));
        };
        let unknown = || ScimError::invalid_path(format!("`{text}`: no such attribute"));
        match toks.len() {
            1 => Ok(PatchPath::Attr {
                path: resolve(kind, name).ok_or_else(unknown)?,
                filter: None,
            }),
            _ => {
                let base = resolve(kind, name).ok_or_else(unknown)?;
                if base.sub.is_some() || base.attr.ty != Type::Complex || !base.attr.multi {
                    return Err(ip(format!("`{name}` has no values to filter")));
                }
                if toks.get(1) != Some(&Tok::LBracket) {
                    return Err(ip(format!("`{text}` is not a path")));
                }
                let close = toks
                    .iter()
                    .rposition(|t| *t == Tok::RBracket)
                    .ok_or_else(|| ip("missing `]`".into()))?;
                let mut p = Parser {
                    toks: &toks[2..close],
                    pos: 0,
                    depth: 0,
                };
                let filter = p
                    .or(Scope::Within(base.ext, base.attr))
                    .map_err(|e| ScimError::invalid_path(e.detail))?;
                if p.pos != close - 2 {
                    return Err(ip(format!("`{text}`: unexpected text in the filter")));
                }
                let sub = match &toks[close + 1..] {
                    [] => None,
                    [Tok::Word(s)] if s.starts_with('.') => {
                        Some(base.attr.sub_attr(&s[1..]).ok_or_else(|| {
                            ip(format!("`{text}`: no sub-attribute `{}`", &s[1..]))
                        })?)
                    }
                    _ => return Err(ip(format!("`{text}`: unexpected text after `]`"))),
                };
                Ok(PatchPath::Attr {
                    path: AttrPath { sub, ..base },
                    filter: Some(filter),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user() -> Value {
        json!({
            "userName": "Anne@Example.com",
            "active": true,
            "emails": [
                {"value": "anne@work.example", "type": "work", "primary": true},
                {"value": "anne@home.example", "type": "home"}
            ],
            "name": {"givenName": "Anne", "familyName": "Smith"},
            "meta": {"lastModified": "2026-01-02T03:04:05.123Z"},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D", "manager": {"value": "m1"}},
            "externalId": "Ext-1"
        })
    }

    fn m(f: &str) -> bool {
        Filter::parse(Kind::User, f).unwrap().matches(&user())
    }

    #[test]
    fn operators() {
        assert!(m(r#"userName eq "anne@example.com""#)); // caseExact false
        assert!(!m(r#"externalId eq "ext-1""#)); // caseExact true
        assert!(m(r#"externalId eq "Ext-1""#));
        assert!(m(r#"USERNAME Eq "ANNE@EXAMPLE.COM""#));
        assert!(m(r#"userName ne "bob""#));
        assert!(m(r#"userName co "@example""#));
        assert!(m(r#"userName sw "anne""#));
        assert!(m(r#"userName ew ".com""#));
        assert!(m(r#"userName gt "a" and userName lt "b""#));
        assert!(m(
            r#"userName ge "anne@example.com" and userName le "anne@example.com""#
        ));
        assert!(!m("title pr"));
        assert!(m("name.givenName pr"));
        assert!(m("active eq true"));
        assert!(!m("active eq false"));
        assert!(m(r#"meta.lastModified gt "2026-01-02T03:04:05Z""#));
        assert!(m(r#"meta.lastModified lt "2026-01-02T03:04:05.2Z""#));
        assert!(m("title eq null"));
    }

    #[test]
    fn logic_grouping_and_value_paths() {
        assert!(m(r#"userName eq "x" or name.familyName eq "smith""#));
        assert!(!m(
            r#"userName eq "x" or name.familyName eq "smith" and active eq false"#
        ));
        assert!(m(
            r#"(userName eq "x" or name.familyName eq "smith") and not (active eq false)"#
        ));
        assert!(m(r#"emails[type eq "work" and value co "@work"]"#));
        assert!(!m(r#"emails[type eq "home" and primary eq true]"#));
        assert!(m(r#"emails co "home.example""#));
        assert!(m(r#"emails.type eq "home""#));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "r&d""#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value eq "m1""#
        ));
        assert!(m(
            r#"urn:ietf:params:scim:schemas:core:2.0:User:userName sw "A""#
        ));
    }

    #[test]
    fn bad_filters_are_invalid_filter() {
        for f in [
            "",
            "userName",
            r#"userName eq"#,
            r#"userName xx "a""#,
            r#"nosuch eq "a""#,
            r#"userName eq anne"#,
            r#"userName eq "a" and"#,
            r#"(userName eq "a""#,
            r#"emails[type eq "work""#,
            r#"active gt true"#,
            r#"userName eq "a"; DROP TABLE users"#,
            r#"userName eq "a' OR '1'='1""#.trim_end_matches('"'),
            r#"not userName eq "a""#,
            r#"userName eq "unterminated"#,
        ] {
            let e = Filter::parse(Kind::User, f).unwrap_err();
            assert_eq!(e.scim_type, Some("invalidFilter"), "{f}");
            assert_eq!(e.status, 400);
        }
        let deep = format!("{}userName pr{}", "(".repeat(100), ")".repeat(100));
        assert!(Filter::parse(Kind::User, &deep).is_err());
        assert!(Filter::parse(Kind::User, &"a".repeat(MAX_LEN + 1)).is_err());
        // A multi-byte character where a schema URN would end is an error, not a panic.
        let tricky = format!("urn:{}é pr", "a".repeat(37));
        assert!(Filter::parse(Kind::User, &tricky).is_err());
        assert!(PatchPath::parse(Kind::User, &tricky).is_err());
        assert!(
            resolve(
                Kind::User,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:Useré"
            )
            .is_none()
        );
        // Injection text inside a string is just a value.
        assert!(!m(r#"userName eq "x' OR '1'='1""#));
    }

    #[test]
    fn patch_paths() {
        let p = PatchPath::parse(Kind::Group, r#"members[value eq "2819c223"]"#).unwrap();
        let PatchPath::Attr { path, filter } = p else {
            panic!()
        };
        assert_eq!(path.attr.name, "members");
        assert!(filter.unwrap().matches(&json!({"value": "2819c223"})));
        let p = PatchPath::parse(Kind::User, r#"emails[type eq "work"].value"#).unwrap();
        let PatchPath::Attr { path, .. } = p else {
            panic!()
        };
        assert_eq!(path.sub.unwrap().name, "value");
        assert!(matches!(
            PatchPath::parse(
                Kind::User,
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
            )
            .unwrap(),
            PatchPath::Extension(_)
        ));
        let PatchPath::Attr { path, .. } = PatchPath::parse(
            Kind::User,
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(path.ext, Some(crate::ENTERPRISE_USER));
        for bad in [
            "nosuch",
            "emails[",
            "userName[value eq \"x\"]",
            "emails[type eq \"work\"].nosuch",
            "name.nosuch",
        ] {
            assert_eq!(
                PatchPath::parse(Kind::User, bad).unwrap_err().scim_type,
                Some("invalidPath"),
                "{bad}"
            );
        }
    }
}
