//! The questions the engine answers, and the shapes of its answers.

use serde::{Deserialize, Serialize};

use crate::condition::Context;
use crate::tuple::TupleKey;

/// Does `user` have `relation` on `object`?
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckRequest {
    pub user: String,
    pub relation: String,
    pub object: String,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleKey>,
    /// Collect the resolution path of an allowed answer (costs a few allocations).
    #[serde(default)]
    pub explain: bool,
}

impl CheckRequest {
    pub fn new(
        user: impl Into<String>,
        relation: impl Into<String>,
        object: impl Into<String>,
    ) -> Self {
        CheckRequest {
            user: user.into(),
            relation: relation.into(),
            object: object.into(),
            ..Default::default()
        }
    }
}

/// The answer to a check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    pub allowed: bool,
    /// When asked for and allowed: the chain of relationships that granted, from the
    /// requested `object#relation` down to the tuple that matched the user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub path: Vec<String>,
}

/// Which objects of `object_type` does `user` have `relation` on?
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListObjectsRequest {
    pub user: String,
    pub relation: String,
    pub object_type: String,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleKey>,
}

/// Which users (of the filter types) have `relation` on `object`?
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListUsersRequest {
    pub object: String,
    pub relation: String,
    pub user_filters: Vec<UserFilter>,
    #[serde(default)]
    pub context: Context,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleKey>,
}

/// `type` (objects and wildcards of that type) or `type#relation` (usersets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserFilter {
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relation: Option<String>,
}

impl UserFilter {
    /// Parses `type` or `type#relation`.
    pub fn parse(s: &str) -> UserFilter {
        match s.split_once('#') {
            Some((t, r)) => UserFilter {
                type_name: t.to_string(),
                relation: Some(r.to_string()),
            },
            None => UserFilter {
                type_name: s.to_string(),
                relation: None,
            },
        }
    }
}

/// Expand `object#relation` one level: the userset tree of its rewrite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ExpandRequest {
    pub object: String,
    pub relation: String,
    #[serde(default)]
    pub contextual_tuples: Vec<TupleKey>,
}

/// A node of an expanded userset tree (the shape of OpenFGA's Expand answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsersetTree {
    /// Users assigned directly (`type:id`, `type:*`, `type:id#relation`).
    Leaf { name: String, users: Vec<String> },
    /// Another relation on the same object.
    Computed { name: String, userset: String },
    /// `relation from tupleset`: the usersets reached through the tupleset's objects.
    TupleToUserset {
        name: String,
        tupleset: String,
        computed: Vec<String>,
    },
    Union {
        name: String,
        nodes: Vec<UsersetTree>,
    },
    Intersection {
        name: String,
        nodes: Vec<UsersetTree>,
    },
    Difference {
        name: String,
        base: Box<UsersetTree>,
        subtract: Box<UsersetTree>,
    },
}
