//! The `.fga.yaml` file format, as the OpenFGA CLI defines it (unknown keys are errors).

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use warden_engine::{TupleCondition, TupleKey};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoreFile {
    #[serde(default)]
    pub name: Option<String>,
    /// Inline DSL; wins over `model_file`.
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub model_file: Option<String>,
    /// Inline tuples; win over `tuple_file`.
    #[serde(default)]
    pub tuples: Option<Vec<TestTuple>>,
    #[serde(default)]
    pub tuple_file: Option<String>,
    #[serde(default)]
    pub tuple_files: Vec<String>,
    pub tests: Vec<Test>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestTuple {
    pub user: String,
    pub relation: String,
    pub object: String,
    #[serde(default)]
    pub condition: Option<TestCondition>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TestCondition {
    pub name: String,
    #[serde(default)]
    pub context: Option<Map<String, Value>>,
}

impl TestTuple {
    pub fn key(&self) -> TupleKey {
        TupleKey {
            user: self.user.clone(),
            relation: self.relation.clone(),
            object: self.object.clone(),
            condition: self.condition.as_ref().map(|c| TupleCondition {
                name: c.name.clone(),
                context: c.context.clone(),
            }),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// Tuples added to the file's tuples for this test only.
    #[serde(default)]
    pub tuples: Option<Vec<TestTuple>>,
    #[serde(default)]
    pub tuple_file: Option<String>,
    #[serde(default)]
    pub check: Vec<CheckTest>,
    #[serde(default)]
    pub list_objects: Vec<ListObjectsTest>,
    #[serde(default)]
    pub list_users: Vec<ListUsersTest>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CheckTest {
    pub user: String,
    pub object: String,
    #[serde(default)]
    pub context: Map<String, Value>,
    pub assertions: IndexMap<String, bool>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListObjectsTest {
    pub user: String,
    #[serde(rename = "type")]
    pub object_type: String,
    #[serde(default)]
    pub context: Map<String, Value>,
    pub assertions: IndexMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListUsersTest {
    pub object: String,
    pub user_filter: Vec<UserFilterSpec>,
    #[serde(default)]
    pub context: Map<String, Value>,
    pub assertions: IndexMap<String, UsersAssertion>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct UserFilterSpec {
    #[serde(rename = "type")]
    pub type_name: String,
    #[serde(default)]
    pub relation: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UsersAssertion {
    #[serde(default)]
    pub users: Vec<String>,
}

/// Parses the fga CLI's CSV tuple format.
pub fn parse_csv(text: &str) -> Result<Vec<TestTuple>, String> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .ok_or("empty CSV file")?
        .split(',')
        .map(str::trim)
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let (ut, ui, rel, ot, oi) = match (
        col("user_type"),
        col("user_id"),
        col("relation"),
        col("object_type"),
        col("object_id"),
    ) {
        (Some(a), Some(b), Some(c), Some(d), Some(e)) => (a, b, c, d, e),
        _ => {
            return Err(
                "CSV header must name user_type, user_id, relation, object_type, object_id".into(),
            );
        }
    };
    let ur = col("user_relation");
    let cn = col("condition_name");
    let mut out = Vec::new();
    for (n, line) in lines.enumerate() {
        let f: Vec<&str> = line.split(',').map(str::trim).collect();
        let get = |i: usize| {
            f.get(i)
                .copied()
                .ok_or_else(|| format!("line {}: too few columns", n + 2))
        };
        let mut user = format!("{}:{}", get(ut)?, get(ui)?);
        if let Some(r) = ur.and_then(|i| f.get(i)).filter(|r| !r.is_empty()) {
            user = format!("{user}#{r}");
        }
        let condition = cn
            .and_then(|i| f.get(i))
            .filter(|c| !c.is_empty())
            .map(|c| TestCondition {
                name: c.to_string(),
                context: None,
            });
        out.push(TestTuple {
            user,
            relation: get(rel)?.to_string(),
            object: format!("{}:{}", get(ot)?, get(oi)?),
            condition,
        });
    }
    Ok(out)
}
