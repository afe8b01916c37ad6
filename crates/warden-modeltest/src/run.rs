//! Runs a loaded store file: every assertion, counted per kind, failures kept with the
//! query, the expectation and the answer.

use serde::Serialize;
use warden_engine::{
    CheckRequest, Engine, ListObjectsRequest, ListUsersRequest, Model, TupleKey, TupleStore,
    UserFilter,
};

use crate::LoadedStore;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Check,
    ListObjects,
    ListUsers,
}

/// One assertion that did not hold.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    pub test: String,
    pub kind: Kind,
    /// The query, e.g. `document:1#viewer@user:anne`.
    pub query: String,
    pub expected: String,
    pub got: String,
}

/// The outcome of a store file: passes and totals per kind, and the failures.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub checks: (usize, usize),
    pub list_objects: (usize, usize),
    pub list_users: (usize, usize),
    pub failures: Vec<Failure>,
    /// A problem that stopped a test (an invalid model or tuple).
    pub errors: Vec<String>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.failures.is_empty() && self.errors.is_empty()
    }

    fn tally(&mut self, kind: Kind, test: &str, query: String, expected: String, got: String) {
        let slot = match kind {
            Kind::Check => &mut self.checks,
            Kind::ListObjects => &mut self.list_objects,
            Kind::ListUsers => &mut self.list_users,
        };
        slot.1 += 1;
        if expected == got {
            slot.0 += 1;
        } else {
            self.failures.push(Failure {
                test: test.to_string(),
                kind,
                query,
                expected,
                got,
            });
        }
    }

    /// Adds another file's counts and failures to this one.
    pub fn merge(&mut self, other: Report) {
        for (a, b) in [
            (&mut self.checks, other.checks),
            (&mut self.list_objects, other.list_objects),
            (&mut self.list_users, other.list_users),
        ] {
            a.0 += b.0;
            a.1 += b.1;
        }
        self.failures.extend(other.failures);
        self.errors.extend(other.errors);
    }
}

fn sorted(mut v: Vec<String>) -> String {
    v.sort();
    v.dedup();
    format!("[{}]", v.join(", "))
}

/// Runs every test of a loaded store file.
pub fn run(store: &LoadedStore) -> Report {
    let mut report = Report::default();
    let model = match Model::new(store.model.clone()) {
        Ok(m) => m,
        Err(e) => {
            report
                .errors
                .push(format!("{}: invalid model: {e}", store.path.display()));
            return report;
        }
    };
    let base: Vec<TupleKey> = store.tuples.iter().map(|t| t.key()).collect();
    for test in &store.file.tests {
        let mut tuples = TupleStore::new();
        let extra: Vec<TupleKey> = test.tuples.iter().flatten().map(|t| t.key()).collect();
        let all: Vec<TupleKey> = base.iter().chain(&extra).cloned().collect();
        let mut written = true;
        for t in &all {
            // Write one by one so a duplicate between file and test tuples is harmless.
            if let Err(e) = tuples.write(&model, std::slice::from_ref(t), &[])
                && !tuples.contains(t)
            {
                report
                    .errors
                    .push(format!("test `{}`: tuple refused: {e}", test.name));
                written = false;
            }
        }
        if !written {
            continue;
        }
        let engine = Engine::new(&model, &tuples);
        for c in &test.check {
            for (relation, expected) in &c.assertions {
                let mut req = CheckRequest::new(c.user.clone(), relation.clone(), c.object.clone());
                req.context = c.context.clone();
                let got = match engine.check(&req) {
                    Ok(r) => r.allowed.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                let query = format!("{}#{relation}@{}", c.object, c.user);
                report.tally(Kind::Check, &test.name, query, expected.to_string(), got);
            }
        }
        for l in &test.list_objects {
            for (relation, expected) in &l.assertions {
                let req = ListObjectsRequest {
                    user: l.user.clone(),
                    relation: relation.clone(),
                    object_type: l.object_type.clone(),
                    context: l.context.clone(),
                    contextual_tuples: Vec::new(),
                };
                let got = match engine.list_objects(&req) {
                    Ok(v) => sorted(v),
                    Err(e) => format!("error: {e}"),
                };
                let query = format!("{}#{relation}@{}", l.object_type, l.user);
                report.tally(
                    Kind::ListObjects,
                    &test.name,
                    query,
                    sorted(expected.clone()),
                    got,
                );
            }
        }
        for l in &test.list_users {
            let filters: Vec<UserFilter> = l
                .user_filter
                .iter()
                .map(|f| UserFilter {
                    type_name: f.type_name.clone(),
                    relation: f.relation.clone(),
                })
                .collect();
            for (relation, expected) in &l.assertions {
                let req = ListUsersRequest {
                    object: l.object.clone(),
                    relation: relation.clone(),
                    user_filters: filters.clone(),
                    context: l.context.clone(),
                    contextual_tuples: Vec::new(),
                };
                let got = match engine.list_users(&req) {
                    Ok(v) => sorted(v),
                    Err(e) => format!("error: {e}"),
                };
                let filter: Vec<String> = filters
                    .iter()
                    .map(|f| match &f.relation {
                        Some(r) => format!("{}#{r}", f.type_name),
                        None => f.type_name.clone(),
                    })
                    .collect();
                let query = format!("{}#{relation} users of {}", l.object, filter.join(","));
                report.tally(
                    Kind::ListUsers,
                    &test.name,
                    query,
                    sorted(expected.users.clone()),
                    got,
                );
            }
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::StoreFile;

    fn store(yaml: &str) -> LoadedStore {
        let file: StoreFile = serde_yaml::from_str(yaml).unwrap();
        let model = warden_model::parse_dsl(file.model.as_deref().unwrap()).unwrap();
        let tuples = file.tuples.clone().unwrap_or_default();
        LoadedStore {
            path: "t.fga.yaml".into(),
            file,
            model,
            tuples,
        }
    }

    const FILE: &str = r#"
model: |
  model
    schema 1.1
  type user
  type doc
    relations
      define viewer: [user, user with small]
  condition small(x: int) {
    x < 10
  }
tuples:
  - {user: user:anne, relation: viewer, object: doc:1}
tests:
  - name: direct
    tuples:
      - {user: user:bob, relation: viewer, object: doc:2, condition: {name: small}}
    check:
      - user: user:anne
        object: doc:1
        assertions: {viewer: true}
      - user: user:bob
        object: doc:2
        context: {x: 3}
        assertions: {viewer: true}
    list_objects:
      - user: user:anne
        type: doc
        assertions: {viewer: [doc:1]}
    list_users:
      - object: doc:1
        user_filter: [{type: user}]
        assertions: {viewer: {users: [user:anne]}}
  - name: per-test tuples do not leak
    check:
      - user: user:bob
        object: doc:2
        context: {x: 3}
        assertions: {viewer: false}
"#;

    #[test]
    fn counts_passes_per_kind() {
        let r = run(&store(FILE));
        assert_eq!(r.checks, (3, 3));
        assert_eq!(r.list_objects, (1, 1));
        assert_eq!(r.list_users, (1, 1));
        assert!(r.passed(), "{r:?}");
    }

    #[test]
    fn reports_expected_and_got() {
        let r = run(&store(&FILE.replace(
            "assertions: {viewer: [doc:1]}",
            "assertions: {viewer: [doc:9]}",
        )));
        assert_eq!(r.list_objects, (0, 1));
        let f = &r.failures[0];
        assert_eq!(
            (f.expected.as_str(), f.got.as_str()),
            ("[doc:9]", "[doc:1]")
        );
        assert!(!r.passed());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let bad = FILE.replace("tests:", "surprise: 1\ntests:");
        assert!(serde_yaml::from_str::<StoreFile>(&bad).is_err());
    }
}
