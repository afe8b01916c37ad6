//! Principals and the delegated decision over HTTP: the answer is the intersection of
//! scope, agent and user (and every actor), and a suspension counts at the next decision.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

mod common;

use common::{Client, start};
use serde_json::{Value, json};
use warden_storage::testing::TestDb;

const DSL: &str = "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype group\n  relations\n    define member: [user, agent]\n\ntype document\n  relations\n    define viewer: [user, agent, group#member]\n    define editor: [user, agent]\n";

async fn authorize(c: &Client, body: Value) -> Value {
    let (s, b) = c.post("/v1/orgs/acme/authorize", body).await;
    assert_eq!(s, 200, "{b}");
    b
}

fn failed(decision: &Value) -> Vec<String> {
    decision["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ok"] == json!(false))
        .map(|r| r["check"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn the_delegated_decision_is_the_intersection() {
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin.org_with_model("acme", DSL).await;
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"scopes": {"docs.read": ["document#viewer"], "docs.write": ["document#editor"]}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");

    // Principals.
    for (path, body) in [
        (
            "/v1/orgs/acme/users/anne",
            json!({"display_name": "Anne", "password": "correct horse battery"}),
        ),
        ("/v1/orgs/acme/users/bob", json!({"display_name": "Bob"})),
        (
            "/v1/orgs/acme/groups/eng",
            json!({"display_name": "Engineering"}),
        ),
        (
            "/v1/orgs/acme/agents/mailer",
            json!({"owner": "user:anne", "purpose": "send summaries",
            "allowed_scopes": ["docs.read"]}),
        ),
        (
            "/v1/orgs/acme/agents/sub",
            json!({"owner": "group:eng", "allowed_scopes": ["docs.read", "docs.write"]}),
        ),
    ] {
        let (s, b) = acme.put(path, body).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    // Bad principals are refused with reasons.
    for (path, body, why) in [
        (
            "/v1/orgs/acme/agents/x",
            json!({"allowed_scopes": []}),
            "owner",
        ),
        (
            "/v1/orgs/acme/agents/x",
            json!({"owner": "user:nobody"}),
            "does not exist",
        ),
        (
            "/v1/orgs/acme/agents/x",
            json!({"owner": "agent:mailer"}),
            "owner",
        ),
        (
            "/v1/orgs/acme/agents/x",
            json!({"owner": "user:anne", "allowed_scopes": ["admin.all"]}),
            "catalog",
        ),
        (
            "/v1/orgs/acme/agents/x",
            json!({"owner": "user:anne", "status": "deprovisioned"}),
            "cannot be",
        ),
        (
            "/v1/orgs/acme/users/x",
            json!({"password": "short"}),
            "12 characters",
        ),
        (
            "/v1/orgs/acme/users/x",
            json!({"owner": "user:anne"}),
            "for agents",
        ),
        ("/v1/orgs/acme/users/a:b", json!({}), "id"),
        ("/v1/orgs/acme/robots/x", json!({}), "route"),
    ] {
        let (s, b) = acme.put(path, body).await;
        assert!((400..=404).contains(&s), "{path}: {s} {b}");
        assert!(b["message"].as_str().unwrap().contains(why), "{path}: {b}");
    }
    let (_, b) = acme.get("/v1/orgs/acme/agents").await;
    assert_eq!(b["agents"].as_array().unwrap().len(), 2);
    let (_, b) = acme.get("/v1/orgs/acme/users/anne").await;
    assert!(
        b.get("password").is_none() && b.get("password_hash").is_none(),
        "{b}"
    );

    let (_, w) = acme
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [
                {"user": "user:anne", "relation": "viewer", "object": "document:1"},
                {"user": "agent:mailer", "relation": "viewer", "object": "document:1"},
                {"user": "agent:mailer", "relation": "viewer", "object": "document:2"},
                {"user": "user:anne", "relation": "viewer", "object": "document:3"},
                {"user": "user:anne", "relation": "editor", "object": "document:1"},
                {"user": "agent:mailer", "relation": "editor", "object": "document:1"},
                {"user": "agent:sub", "relation": "member", "object": "group:eng"},
                {"user": "group:eng#member", "relation": "viewer", "object": "document:1"},
            ]}),
        )
        .await;
    let rev = w["revision"].clone();
    let ask = |relation: &str, object: &str| {
        json!({"agent": "mailer", "on_behalf_of": "anne", "relation": relation, "object": object,
               "consistency": {"at_least_revision": rev}})
    };

    // Everyone holds it and a scope grants it: allowed, with the granting paths.
    let d = authorize(&acme, ask("viewer", "document:1")).await;
    assert_eq!(d["allowed"], json!(true), "{d}");
    assert!(d["decision_id"].as_str().unwrap().len() >= 32);
    assert!(failed(&d).is_empty());
    // The user lacks it: denied, whatever the agent holds.
    let d = authorize(&acme, ask("viewer", "document:2")).await;
    assert_eq!(
        (d["allowed"].clone(), failed(&d)),
        (json!(false), vec!["user_holds".to_string()])
    );
    // The agent lacks it: denied, whatever the user holds.
    let d = authorize(&acme, ask("viewer", "document:3")).await;
    assert_eq!(failed(&d), ["agent_holds"]);
    // Both hold `editor`, but no scope the agent may use grants it.
    let d = authorize(&acme, ask("editor", "document:1")).await;
    assert_eq!(failed(&d), ["scope"]);
    // A narrower scope set (a token's) narrows further.
    let mut body = ask("viewer", "document:1");
    body["scopes"] = json!(["docs.write"]);
    assert_eq!(failed(&authorize(&acme, body).await), ["scope"]);
    // Every actor in the chain must hold it too.
    let mut body = ask("viewer", "document:1");
    body["actors"] = json!(["sub"]);
    assert_eq!(authorize(&acme, body).await["allowed"], json!(true));
    let mut body = ask("viewer", "document:2");
    body["actors"] = json!(["sub"]);
    let d = authorize(&acme, body).await;
    assert_eq!(failed(&d), ["user_holds", "actor_holds"]);
    // Unknown principals are denials, not errors.
    let mut body = ask("viewer", "document:1");
    body["agent"] = json!("ghost");
    assert!(failed(&authorize(&acme, body).await).contains(&"principal_active".to_string()));

    // AuthZEN for trusted enforcement points: the agent subject with `on_behalf_of`.
    let ev = |obj: &str| {
        json!({"subject": {"type": "agent", "id": "mailer", "properties": {"on_behalf_of": "anne"}},
               "action": {"name": "viewer"}, "resource": {"type": "document", "id": obj}})
    };
    let (s, b) = acme.post("/access/v1/evaluation", ev("1")).await;
    assert_eq!((s, &b), (200, &json!({"decision": true})), "{b}");
    let (_, b) = acme.post("/access/v1/evaluation", ev("2")).await;
    assert_eq!(b["decision"], json!(false), "Anne lacks document:2: {b}");
    let (_, b) = acme.post("/access/v1/evaluation", ev("3")).await;
    assert_eq!(
        b["decision"],
        json!(false),
        "the agent lacks document:3: {b}"
    );
    let (s, _) = acme
        .post(
            "/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": "bob", "properties": {"on_behalf_of": "anne"}},
                   "action": {"name": "viewer"}, "resource": {"type": "document", "id": "1"}}),
        )
        .await;
    assert_eq!(s, 400, "on_behalf_of is for agents");

    // Suspension takes effect at the next decision; reactivation too.
    let (s, st) = acme
        .post(
            "/v1/orgs/acme/agents/mailer/status",
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(s, 200, "{st}");
    let d = authorize(&acme, ask("viewer", "document:1")).await;
    assert_eq!(failed(&d), ["principal_active"]);
    acme.post(
        "/v1/orgs/acme/agents/mailer/status",
        json!({"status": "active"}),
    )
    .await;
    assert_eq!(
        authorize(&acme, ask("viewer", "document:1")).await["allowed"],
        json!(true)
    );
    acme.post(
        "/v1/orgs/acme/users/anne/status",
        json!({"status": "suspended"}),
    )
    .await;
    assert_eq!(
        failed(&authorize(&acme, ask("viewer", "document:1")).await),
        ["principal_active"]
    );
    let (s, _) = acme
        .post(
            "/v1/orgs/acme/users/anne/status",
            json!({"status": "retired"}),
        )
        .await;
    assert_eq!(s, 400, "users are not retired, they are deprovisioned");
    acme.post(
        "/v1/orgs/acme/users/anne/status",
        json!({"status": "active"}),
    )
    .await;
    // An expired agent is refused.
    let (s, _) = acme
        .put(
            "/v1/orgs/acme/agents/mailer",
            json!({"owner": "user:anne", "allowed_scopes": ["docs.read"], "expires_at": 1000}),
        )
        .await;
    assert_eq!(s, 200);
    let d = authorize(&acme, ask("viewer", "document:1")).await;
    assert_eq!(failed(&d), ["principal_active"]);

    // Another organization's key cannot ask.
    let other = admin.org_with_model("other", DSL).await;
    let (s, _) = other
        .post("/v1/orgs/acme/authorize", ask("viewer", "document:1"))
        .await;
    assert_eq!(s, 403);
    let (s, _) = other.put("/v1/orgs/acme/users/eve", json!({})).await;
    assert_eq!(s, 403);
    server.shutdown().await.unwrap();
}

/// A tiny deterministic generator (no test may depend on a random seed it cannot replay).
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// The drift test: one agent id acts for many users in two organizations with
/// generated data. Every delegated decision must equal (agent holds ∧ user holds ∧ a
/// usable scope grants it ∧ both active), computed independently from plain checks,
/// and nothing of one organization may show in the other.
#[tokio::test]
async fn no_drift_across_users_and_organizations() {
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let mut rng = Lcg(0x5eed);
    let relations = ["viewer", "editor"];
    for org in ["alpha", "beta"] {
        let c = admin.org_with_model(org, DSL).await;
        c.put(
            &format!("/v1/orgs/{org}/settings"),
            json!({"scopes": {"docs.read": ["document#viewer"], "docs.write": ["document#editor"]}}),
        )
        .await;
        for u in 0..8 {
            c.put(&format!("/v1/orgs/{org}/users/u{u}"), json!({}))
                .await;
        }
        // The same agent id in both organizations, with different allowed scopes.
        let scopes = if org == "alpha" {
            json!(["docs.read"])
        } else {
            json!(["docs.read", "docs.write"])
        };
        let (s, b) = c
            .put(
                &format!("/v1/orgs/{org}/agents/a1"),
                json!({"owner": "user:u0", "allowed_scopes": scopes}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        let mut writes = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..120 {
            let who = match rng.below(10) {
                0..=2 => "agent:a1".to_string(),
                n => format!("user:u{}", n % 8),
            };
            let t = (
                who,
                relations[rng.below(2)],
                format!("document:d{}", rng.below(12)),
            );
            if seen.insert(t.clone()) {
                writes.push(json!({"user": t.0, "relation": t.1, "object": t.2}));
            }
        }
        let (s, b) = c
            .post(
                &format!("/v1/orgs/{org}/tuples/write"),
                json!({"writes": writes}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
        // One user is suspended in each organization.
        c.post(
            &format!("/v1/orgs/{org}/users/u3/status"),
            json!({"status": "suspended"}),
        )
        .await;

        let check = |user: String, relation: &'static str, object: String| {
            let c = &c;
            async move {
                let (_, b) = c
                    .post(
                        &format!("/v1/orgs/{org}/check"),
                        json!({"user": user, "relation": relation, "object": object}),
                    )
                    .await;
                b["allowed"].as_bool().unwrap()
            }
        };
        let mut decisions = 0;
        let mut allowed = 0;
        for u in 0..8 {
            for d in 0..12 {
                for rel in relations {
                    let object = format!("document:d{d}");
                    let agent = check("agent:a1".into(), rel, object.clone()).await;
                    let user = check(format!("user:u{u}"), rel, object.clone()).await;
                    let scope = rel == "viewer" || org == "beta";
                    let active = u != 3;
                    let expected = agent && user && scope && active;
                    let (s, got) = c
                        .post(
                            &format!("/v1/orgs/{org}/authorize"),
                            json!({"agent": "a1", "on_behalf_of": format!("u{u}"),
                                   "relation": rel, "object": object}),
                        )
                        .await;
                    assert_eq!(s, 200);
                    assert_eq!(
                        got["allowed"].as_bool().unwrap(),
                        expected,
                        "{org}: a1 for u{u} {rel} {object}: agent {agent} user {user} scope {scope} active {active}: {got}"
                    );
                    decisions += 1;
                    allowed += usize::from(expected);
                }
            }
        }
        assert_eq!(decisions, 8 * 12 * 2);
        assert!(
            allowed > 5 && allowed < decisions / 2,
            "{org}: a meaningful mix ({allowed} allowed)"
        );
    }
    server.shutdown().await.unwrap();
}
