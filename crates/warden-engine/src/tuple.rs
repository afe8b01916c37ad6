//! Relationship tuples as callers give them (strings), and their parsed parts.
//!
//! A tuple says `user` has `relation` on `object`, optionally only when a named
//! condition holds. `object` is `type:id`; `user` is `type:id`, `type:*` (everyone of
//! that type) or `type:id#relation` (a userset).

use serde::{Deserialize, Serialize};

use crate::condition::Context;
use crate::error::EngineError;

/// A relationship tuple in its external (string) form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct TupleKey {
    pub user: String,
    pub relation: String,
    pub object: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<TupleCondition>,
}

impl TupleKey {
    pub fn new(
        user: impl Into<String>,
        relation: impl Into<String>,
        object: impl Into<String>,
    ) -> Self {
        TupleKey {
            user: user.into(),
            relation: relation.into(),
            object: object.into(),
            condition: None,
        }
    }

    pub fn with_condition(mut self, name: impl Into<String>, context: Context) -> Self {
        self.condition = Some(TupleCondition {
            name: name.into(),
            context: Some(context),
        });
        self
    }
}

impl std::fmt::Display for TupleKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}@{}", self.object, self.relation, self.user)?;
        if let Some(c) = &self.condition {
            write!(f, " (with {})", c.name)?;
        }
        Ok(())
    }
}

/// The condition attached to a tuple and the context stored with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema)]
pub struct TupleCondition {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
}

/// A parsed object reference `type:id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectStr<'a> {
    pub type_name: &'a str,
    pub id: &'a str,
}

/// A parsed user: an object, a wildcard, or a userset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStr<'a> {
    Object(ObjectStr<'a>),
    Wildcard {
        type_name: &'a str,
    },
    Userset {
        object: ObjectStr<'a>,
        relation: &'a str,
    },
}

/// Longest accepted object (`type:id`), in bytes, as OpenFGA's server.
pub const MAX_OBJECT_LEN: usize = 256;
/// Longest accepted user (`type:id`, `type:*` or `type:id#relation`), in bytes.
pub const MAX_USER_LEN: usize = 512;

/// Parses `type:id`. Both parts must be non-empty and free of whitespace and control
/// characters, at most [`MAX_OBJECT_LEN`] bytes in all; the id may not be `*` and may
/// not contain `#`. (This is the id set OpenFGA's server accepts; the modelling
/// language's narrower rule is `warden_model::validate::valid_object_id`.)
pub fn parse_object(s: &str) -> Result<ObjectStr<'_>, EngineError> {
    let bad = |reason: &str| EngineError::InvalidInput {
        what: "object",
        value: s.to_string(),
        reason: reason.to_string(),
    };
    let (type_name, id) = s.split_once(':').ok_or_else(|| bad("expected `type:id`"))?;
    if type_name.is_empty() || id.is_empty() {
        return Err(bad("type and id must not be empty"));
    }
    if id == "*" {
        return Err(bad("an object id cannot be `*`"));
    }
    if s.contains('#') || s.chars().any(char::is_whitespace) {
        return Err(bad("contains `#` or whitespace"));
    }
    if s.len() > MAX_OBJECT_LEN || s.chars().any(char::is_control) {
        return Err(bad("longer than 256 bytes, or contains control characters"));
    }
    Ok(ObjectStr { type_name, id })
}

/// Parses a user: `type:id`, `type:*` or `type:id#relation`.
pub fn parse_user(s: &str) -> Result<UserStr<'_>, EngineError> {
    let bad = |reason: &str| EngineError::InvalidInput {
        what: "user",
        value: s.to_string(),
        reason: reason.to_string(),
    };
    if s.chars().any(char::is_whitespace) {
        return Err(bad("contains whitespace"));
    }
    let (object, relation) = match s.split_once('#') {
        Some((o, r)) => (o, Some(r)),
        None => (s, None),
    };
    let (type_name, id) = object
        .split_once(':')
        .ok_or_else(|| bad("expected `type:id`"))?;
    if type_name.is_empty() || id.is_empty() {
        return Err(bad("type and id must not be empty"));
    }
    if s.len() > MAX_USER_LEN || s.chars().any(char::is_control) {
        return Err(bad("longer than 512 bytes, or contains control characters"));
    }
    match relation {
        Some(r) if r.is_empty() || r.contains('#') => Err(bad("empty or repeated relation")),
        Some(_) if id == "*" => Err(bad("a wildcard cannot have a relation")),
        Some(relation) => Ok(UserStr::Userset {
            object: ObjectStr { type_name, id },
            relation,
        }),
        None if id == "*" => Ok(UserStr::Wildcard { type_name }),
        None => Ok(UserStr::Object(ObjectStr { type_name, id })),
    }
}
