//! Runs OpenFGA's own engine test suite (`engine/*.yaml`: staged Check, ListObjects and
//! ListUsers assertions) against the Warden engine. One summary line per file; any
//! failure not listed in `conformance/openfga-known-differences.yaml` fails the test.

use std::path::Path;

use serde::Deserialize;
use serde_json::{Map, Value};
use warden_conformance::{FileReport, KnownDifferences, openfga_root};
use warden_engine::{
    CheckRequest, Engine, EngineError, ListObjectsRequest, ListUsersRequest, Model, TupleCondition,
    TupleKey, TupleStore, UserFilter,
};

#[derive(Deserialize)]
struct Suite {
    tests: Vec<Test>,
}

#[derive(Deserialize)]
struct Test {
    name: String,
    stages: Vec<Stage>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stage {
    model: Option<String>,
    #[serde(default)]
    tuples: Vec<Tuple>,
    #[serde(default)]
    check_assertions: Vec<CheckAssertion>,
    #[serde(default)]
    list_objects_assertions: Vec<ListObjectsAssertion>,
    #[serde(default)]
    list_users_assertions: Vec<ListUsersAssertion>,
}

#[derive(Deserialize, Clone, Default)]
struct Tuple {
    #[serde(default)]
    user: String,
    #[serde(default)]
    relation: String,
    #[serde(default)]
    object: String,
    condition: Option<Cond>,
}

#[derive(Deserialize, Clone)]
struct Cond {
    name: String,
    context: Option<Map<String, Value>>,
}

impl Tuple {
    fn key(&self) -> TupleKey {
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

/// `contextualTuples` is a list, but one OpenFGA case gives a single mapping.
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum Tuples {
    #[default]
    None,
    Many(Vec<Tuple>),
    One(Tuple),
}

impl Tuples {
    fn keys(&self) -> Vec<TupleKey> {
        match self {
            Tuples::None => Vec::new(),
            Tuples::Many(v) => v.iter().map(Tuple::key).collect(),
            Tuples::One(t) => vec![t.key()],
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CheckAssertion {
    tuple: Tuple,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    contextual_tuples: Tuples,
    expectation: Option<bool>,
    error_code: Option<u32>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListObjectsAssertion {
    request: ListObjectsReq,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    contextual_tuples: Tuples,
    expectation: Option<Vec<String>>,
    error_code: Option<u32>,
}

#[derive(Deserialize)]
struct ListObjectsReq {
    user: String,
    #[serde(rename = "type")]
    object_type: String,
    relation: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListUsersAssertion {
    request: ListUsersReq,
    #[serde(default)]
    context: Map<String, Value>,
    #[serde(default)]
    contextual_tuples: Tuples,
    expectation: Option<Vec<String>>,
    error_code: Option<u32>,
}

#[derive(Deserialize)]
struct ListUsersReq {
    object: String,
    relation: String,
    #[serde(default)]
    filters: Vec<String>,
}

/// Compares an answer with an expectation (a value or an error code).
fn compare<T: PartialEq + std::fmt::Debug>(
    got: Result<T, EngineError>,
    expected: Option<T>,
    error_code: Option<u32>,
) -> Result<(), String> {
    match (got, error_code) {
        (Err(e), Some(code)) if e.code().as_u32() == code => Ok(()),
        (Err(e), Some(code)) => Err(format!(
            "expected error {code}, got error {} ({e})",
            e.code().as_u32()
        )),
        (Ok(v), Some(code)) => Err(format!("expected error {code}, got {v:?}")),
        (Err(e), None) => Err(format!(
            "expected {expected:?}, got error {} ({e})",
            e.code().as_u32()
        )),
        (Ok(v), None) => match expected {
            Some(exp) if exp == v => Ok(()),
            exp => Err(format!("expected {exp:?}, got {v:?}")),
        },
    }
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v.dedup();
    v
}

fn run_file(root: &Path, rel: &str, known: &KnownDifferences) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(root.join(rel))?;
    let suite: Suite = serde_yaml::from_str(&text)?;
    let mut report = FileReport::new(rel);
    for test in &suite.tests {
        let mut model: Option<Model> = None;
        let mut store = TupleStore::new();
        for (si, stage) in test.stages.iter().enumerate() {
            let case = |kind: &str, i: usize| format!("{} / {si}.{kind}.{i}", test.name);
            if let Some(dsl) = &stage.model {
                match warden_model::parse_dsl(dsl)
                    .map_err(|e| e.to_string())
                    .and_then(|m| Model::new(m).map_err(|e| e.to_string()))
                {
                    Ok(m) => model = Some(m),
                    Err(e) => {
                        report.record(known, &case("model", 0), Err(format!("model: {e}")));
                        model = None;
                    }
                }
            }
            let Some(model) = &model else { continue };
            let writes: Vec<TupleKey> = stage.tuples.iter().map(Tuple::key).collect();
            if let Err(e) = store.write(model, &writes, &[]) {
                report.record(
                    known,
                    &case("tuples", 0),
                    Err(format!("write refused: {e}")),
                );
            }
            run_assertions(&mut report, known, model, &store, stage, &[], &|kind, i| {
                case(kind, i)
            });
            // OpenFGA's harness also replays one-stage tests with every tuple sent as a
            // contextual tuple instead of stored.
            if test.stages.len() == 1 {
                let empty = TupleStore::new();
                run_assertions(
                    &mut report,
                    known,
                    model,
                    &empty,
                    stage,
                    &writes,
                    &|kind, i| format!("{} (contextual)", case(kind, i)),
                );
            }
        }
    }
    Ok(report.finish())
}

/// Runs one stage's assertions against `store` (plus `extra` contextual tuples).
fn run_assertions(
    report: &mut FileReport,
    known: &KnownDifferences,
    model: &Model,
    store: &TupleStore,
    stage: &Stage,
    extra: &[TupleKey],
    case: &dyn Fn(&str, usize) -> String,
) {
    let engine = Engine::new(model, store);
    let with_extra = |t: &Tuples| {
        let mut v = t.keys();
        v.extend(extra.iter().cloned());
        v
    };
    for (i, a) in stage.check_assertions.iter().enumerate() {
        let req = CheckRequest {
            user: a.tuple.user.clone(),
            relation: a.tuple.relation.clone(),
            object: a.tuple.object.clone(),
            context: a.context.clone(),
            contextual_tuples: with_extra(&a.contextual_tuples),
            explain: false,
        };
        let got = engine.check(&req).map(|r| r.allowed);
        report.record(
            known,
            &case("check", i),
            compare(got, a.expectation, a.error_code),
        );
    }
    for (i, a) in stage.list_objects_assertions.iter().enumerate() {
        let req = ListObjectsRequest {
            user: a.request.user.clone(),
            relation: a.request.relation.clone(),
            object_type: a.request.object_type.clone(),
            context: a.context.clone(),
            contextual_tuples: with_extra(&a.contextual_tuples),
        };
        let got = engine.list_objects(&req).map(sorted);
        let expected = Some(sorted(a.expectation.clone().unwrap_or_default()));
        let mut outcome = compare(got.clone(), expected, a.error_code);
        // Every object listed must also pass Check.
        if outcome.is_ok() {
            for obj in got.unwrap_or_default() {
                let c = CheckRequest {
                    user: req.user.clone(),
                    relation: req.relation.clone(),
                    object: obj.clone(),
                    context: req.context.clone(),
                    contextual_tuples: req.contextual_tuples.clone(),
                    explain: false,
                };
                if !matches!(engine.check(&c), Ok(r) if r.allowed) {
                    outcome = Err(format!("listed {obj} but Check denies it"));
                }
            }
        }
        report.record(known, &case("list_objects", i), outcome);
    }
    for (i, a) in stage.list_users_assertions.iter().enumerate() {
        let req = ListUsersRequest {
            object: a.request.object.clone(),
            relation: a.request.relation.clone(),
            user_filters: a
                .request
                .filters
                .iter()
                .map(|f| UserFilter::parse(f))
                .collect(),
            context: a.context.clone(),
            contextual_tuples: with_extra(&a.contextual_tuples),
        };
        let got = engine.list_users(&req).map(sorted);
        let expected = Some(sorted(a.expectation.clone().unwrap_or_default()));
        report.record(
            known,
            &case("list_users", i),
            compare(got, expected, a.error_code),
        );
    }
}

#[test]
fn openfga_engine_conformance() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let known = KnownDifferences::load()?;
    let mut failures = Vec::new();
    for file in [
        "engine/consolidated_1_1_tests.yaml",
        "engine/abac_tests.yaml",
    ] {
        failures.extend(run_file(&root, file, &known)?);
    }
    assert!(
        failures.is_empty(),
        "{} unexpected failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}
