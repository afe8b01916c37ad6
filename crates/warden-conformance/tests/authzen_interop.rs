//! The OpenID AuthZEN interop scenarios against a real server on a loopback port.
//!
//! Each scenario of `examples/authzen-interop/` (model, tuples, settings) is loaded
//! into its own organization through the API; then every request of the scenario's
//! decision files is sent unchanged, with a checker key of that organization, and the
//! answer must equal the expected one (batch answers and search results included).
//! The older draft shapes (`todo/decisions-authorization-api-1_0-00.json` and
//! `todo/decisions.json`) are not supported and not run.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::{Value, json};
use warden_conformance::{authzen_root, workspace_root};
use warden_storage::testing::TestDb;

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn post(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }

    async fn put(&self, key: &str, path: &str, body: &Value) -> (u16, Value) {
        let res = self
            .http
            .put(format!("{}{path}", self.base))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap();
        (
            res.status().as_u16(),
            res.json().await.unwrap_or(Value::Null),
        )
    }
}

/// Loads one example scenario into organization `org`; returns a checker key for it.
async fn load(api: &Api, admin: &str, org: &str, dir: &Path) -> String {
    let (s, b) = api.post(admin, "/v1/orgs", &json!({"id": org})).await;
    assert_eq!(s, 201, "{b}");
    let dsl = std::fs::read_to_string(dir.join("model.fga")).unwrap();
    let (s, b) = api
        .post(
            admin,
            &format!("/v1/orgs/{org}/models"),
            &json!({"dsl": dsl}),
        )
        .await;
    assert_eq!(s, 201, "{org} model: {b}");
    let tuples: Vec<Value> =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("tuples.yaml")).unwrap()).unwrap();
    for chunk in tuples.chunks(500) {
        let (s, b) = api
            .post(
                admin,
                &format!("/v1/orgs/{org}/tuples/write"),
                &json!({"writes": chunk}),
            )
            .await;
        assert_eq!(s, 200, "{org} tuples: {b}");
    }
    let settings: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("settings.json")).unwrap()).unwrap();
    let (s, b) = api
        .put(admin, &format!("/v1/orgs/{org}/settings"), &settings)
        .await;
    assert_eq!(s, 200, "{org} settings: {b}");
    let (s, b) = api
        .post(
            admin,
            &format!("/v1/orgs/{org}/keys"),
            &json!({"role": "checker", "name": "interop"}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    b["token"].as_str().unwrap().to_string()
}

/// Search results compared as sets (order does not matter).
fn as_set(v: &Value) -> BTreeSet<String> {
    v["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|x| x.to_string())
        .collect()
}

struct Tally {
    name: String,
    passed: usize,
    total: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(name: &str) -> Tally {
        Tally {
            name: name.into(),
            passed: 0,
            total: 0,
            failures: Vec::new(),
        }
    }
    fn record(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.total += 1;
        if ok {
            self.passed += 1;
        } else {
            self.failures.push(what());
        }
    }
    fn finish(self, all: &mut Vec<String>) {
        println!(
            "authzen interop {}: passed {}/{}",
            self.name, self.passed, self.total
        );
        for f in &self.failures {
            println!("  FAIL {f}");
        }
        all.extend(self.failures);
    }
}

#[tokio::test]
async fn authzen_interop_decisions() {
    let Some(root) = authzen_root().unwrap() else {
        return;
    };
    let examples = workspace_root().join("examples/authzen-interop");
    let db = TestDb::sqlite();
    let server = warden_server::start(warden_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: db.url.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let admin = server.bootstrap_key.clone().unwrap();
    let api = Api {
        base: format!("http://{}", server.local_addr),
        http: reqwest::Client::new(),
    };
    let todo = load(&api, &admin, "todo", &examples.join("todo")).await;
    let gateway = load(&api, &admin, "gateway", &examples.join("gateway")).await;
    let search = load(&api, &admin, "search", &examples.join("search")).await;
    let mut failures = Vec::new();

    // Access evaluation(s): Todo (1.0 shapes) and the API gateway.
    for (file, key) in [
        ("todo/decisions-authorization-api-1_0-01.json", &todo),
        ("todo/decisions-authorization-api-1_0-02.json", &todo),
        ("gateway/decisions.json", &gateway),
    ] {
        let data: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join(file)).unwrap()).unwrap();
        let mut tally = Tally::new(file);
        for case in data["evaluation"].as_array().into_iter().flatten() {
            let (s, got) = api
                .post(key, "/access/v1/evaluation", &case["request"])
                .await;
            let ok = s == 200 && got == json!({"decision": case["expected"]});
            tally.record(ok, || {
                format!(
                    "{} -> {s} {got}, want {}",
                    case["request"], case["expected"]
                )
            });
        }
        for case in data["evaluations"].as_array().into_iter().flatten() {
            let (s, got) = api
                .post(key, "/access/v1/evaluations", &case["request"])
                .await;
            let ok = s == 200 && got["evaluations"] == case["expected"];
            tally.record(ok, || {
                format!(
                    "{} -> {s} {got}, want {}",
                    case["request"], case["expected"]
                )
            });
        }
        tally.finish(&mut failures);
    }

    // Search: subject, resource, action; and the IdP's resource searches.
    for (file, endpoint, list) in [
        (
            "search/subject/results.json",
            "/access/v1/search/subject",
            "evaluation",
        ),
        (
            "search/resource/results.json",
            "/access/v1/search/resource",
            "evaluation",
        ),
        (
            "search/action/results.json",
            "/access/v1/search/action",
            "evaluation",
        ),
        ("idp/results.json", "/access/v1/search/resource", "search"),
    ] {
        let data: Value =
            serde_json::from_str(&std::fs::read_to_string(root.join(file)).unwrap()).unwrap();
        let mut tally = Tally::new(file);
        for case in data[list].as_array().into_iter().flatten() {
            let (s, got) = api.post(&search, endpoint, &case["request"]).await;
            let ok = s == 200 && as_set(&got) == as_set(&case["expected"]);
            tally.record(ok, || {
                format!(
                    "{} -> {s} {got}, want {}",
                    case["request"], case["expected"]
                )
            });
        }
        tally.finish(&mut failures);
    }
    server.shutdown().await.unwrap();
    assert!(failures.is_empty(), "{} interop failures", failures.len());
}
