//! The audit log over HTTP, on SQLite and PostgreSQL: records of delegated decisions
//! name both principals and the chain, queries find them, outcomes join, tampering
//! done directly in the database is caught at the first bad record, webhooks deliver
//! every record in order through failures and restarts, and decisions fail closed
//! when the log cannot be written.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Client, start};
use serde_json::{Value, json};
use sqlx::Connection;
use warden_storage::testing::TestDb;

const DSL: &str = "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype document\n  relations\n    define viewer: [user, agent]\n    define editor: [user, agent]\n";

async fn setup(admin: &Client, org: &str) -> Client {
    let c = admin.org_with_model(org, DSL).await;
    let (s, b) = c
        .put(
            &format!("/v1/orgs/{org}/settings"),
            json!({"scopes": {"docs.read": ["document#viewer"]}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for (path, body) in [
        ("users/anne", json!({"display_name": "Anne"})),
        ("users/bob", json!({})),
        (
            "agents/bot",
            json!({"owner": "user:anne", "allowed_scopes": ["docs.read"]}),
        ),
        (
            "agents/helper",
            json!({"owner": "user:anne", "allowed_scopes": ["docs.read"]}),
        ),
    ] {
        let (s, b) = c.put(&format!("/v1/orgs/{org}/{path}"), body).await;
        assert_eq!(s, 200, "{path}: {b}");
    }
    let (s, b) = c
        .post(
            &format!("/v1/orgs/{org}/tuples/write"),
            json!({"writes": [
                {"user": "user:anne", "relation": "viewer", "object": "document:plan"},
                {"user": "agent:bot", "relation": "viewer", "object": "document:plan"},
                {"user": "agent:helper", "relation": "viewer", "object": "document:plan"},
                {"user": "agent:bot", "relation": "viewer", "object": "document:memo"},
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    c
}

async fn query(c: &Client, org: &str, q: &str) -> Vec<Value> {
    let (s, b) = c.get(&format!("/v1/orgs/{org}/audit?{q}")).await;
    assert_eq!(s, 200, "{q}: {b}");
    b["records"].as_array().unwrap().clone()
}

async fn suite(url: &str) {
    let server = start(url).await;
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = setup(&admin, "acme").await;
    let other = setup(&admin, "globex").await;

    // A delegated decision with a sub-agent, sent with our own request id.
    let res = reqwest::Client::new()
        .post(format!("{}/v1/orgs/acme/authorize", acme.base))
        .header("authorization", format!("Bearer {}", acme.key))
        .header("x-request-id", "req-42")
        .json(
            &json!({"agent": "bot", "on_behalf_of": "anne", "actors": ["helper"],
                      "relation": "viewer", "object": "document:plan"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "req-42");
    let allowed: Value = res.json().await.unwrap();
    assert_eq!(allowed["allowed"], json!(true), "{allowed}");
    let allowed_id = allowed["decision_id"].as_str().unwrap().to_string();
    // Anne cannot see the memo: denied, for her.
    let (_, denied) = acme
        .post(
            "/v1/orgs/acme/authorize",
            json!({"agent": "bot", "on_behalf_of": "anne", "relation": "viewer",
                   "object": "document:memo"}),
        )
        .await;
    assert_eq!(denied["allowed"], json!(false));
    let denied_id = denied["decision_id"].as_str().unwrap().to_string();

    // The record names both principals, the chain and how it was decided.
    let recs = query(&acme, "acme", &format!("id={allowed_id}")).await;
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r["kind"], "decision");
    assert_eq!(r["user"], "user:anne");
    assert_eq!(r["agent"], "agent:bot");
    assert_eq!(r["actors"], json!(["agent:helper"]));
    assert_eq!(r["action"], "viewer");
    assert_eq!(r["resource"], "document:plan");
    assert_eq!(r["allowed"], json!(true));
    assert_eq!(r["request_id"], "req-42");
    assert_eq!(r["client_addr"], "127.0.0.1");
    assert!(r["caller"].as_str().unwrap().starts_with("key:"));
    assert!(r["revision"].as_i64().unwrap() > 0);
    assert!(r["model_id"].is_string());
    let checks: Vec<&str> = r["detail"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["check"].as_str().unwrap())
        .collect();
    assert!(
        checks.contains(&"user_holds") && checks.contains(&"actor_holds"),
        "{r}"
    );
    let d = &query(&acme, "acme", &format!("id={denied_id}")).await[0];
    assert_eq!(d["allowed"], json!(false));
    let failed: Vec<&Value> = d["detail"]["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["ok"] == json!(false))
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["check"], "user_holds");

    // Queries by agent, user, actor anywhere in the chain, resource, decision, text.
    let by_agent = query(&acme, "acme", "agent=bot&kind=decision").await;
    assert_eq!(by_agent.len(), 2);
    let by_user = query(&acme, "acme", "user=user:anne&kind=decision").await;
    assert_eq!(by_user.len(), 2);
    let by_actor = query(&acme, "acme", "actor=helper").await;
    assert_eq!(by_actor.len(), 1);
    assert_eq!(by_actor[0]["id"], json!(allowed_id));
    let by_resource = query(&acme, "acme", "resource=document:memo").await;
    assert_eq!(by_resource.len(), 1);
    assert_eq!(by_resource[0]["id"], json!(denied_id));
    let denials = query(&acme, "acme", "decision=deny").await;
    assert!(!denials.is_empty());
    assert!(denials.iter().all(|x| x["allowed"] == json!(false)));
    assert_eq!(
        query(&acme, "acme", "q=NO+RELATIONSHIP+grants").await.len(),
        1
    );
    let future = query(&acme, "acme", "from=2999-01-01T00:00:00Z").await;
    assert!(future.is_empty());
    // Bad queries are clear errors.
    for bad in [
        "limit=0",
        "order=sideways",
        "from=yesterday",
        "kind=gossip",
        "decision=maybe",
        "colour=red",
    ] {
        let (s, b) = acme.get(&format!("/v1/orgs/acme/audit?{bad}")).await;
        assert_eq!(s, 400, "{bad}: {b}");
    }

    // Changes are on the record with who made them.
    let changes = query(&acme, "acme", "kind=change").await;
    let actions: Vec<&str> = changes
        .iter()
        .map(|x| x["action"].as_str().unwrap())
        .collect();
    for a in [
        "org.create",
        "key.create",
        "model.write",
        "settings.replace",
        "principal.put",
        "tuples.write",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }

    // Native check, batch and AuthZEN decisions: each with its id, each recorded.
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "document:plan"}),
        )
        .await;
    let check_id = b["decision_id"].as_str().unwrap().to_string();
    let rec = &query(&acme, "acme", &format!("id={check_id}")).await[0];
    assert_eq!(rec["subject"], "user:anne");
    assert_eq!(rec["user"], "user:anne");
    assert!(
        rec["detail"]["path"]
            .as_array()
            .is_some_and(|p| !p.is_empty()),
        "an allowed check records its granting path: {rec}"
    );
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/batch-check",
            json!({"checks": [
                {"correlation_id": "a", "user": "user:bob", "relation": "viewer", "object": "document:plan"},
                {"correlation_id": "b", "user": "agent:bot", "relation": "viewer", "object": "document:memo"},
            ]}),
        )
        .await;
    for item in b["results"].as_array().unwrap() {
        let id = item["decision_id"].as_str().unwrap();
        let rec = &query(&acme, "acme", &format!("id={id}")).await[0];
        assert_eq!(rec["detail"]["correlation_id"], item["correlation_id"]);
        assert_eq!(rec["allowed"], item["allowed"]);
    }
    let res = reqwest::Client::new()
        .post(format!("{}/access/v1/evaluation", acme.base))
        .header("authorization", format!("Bearer {}", acme.key))
        .json(&json!({"subject": {"type": "agent", "id": "bot",
                                  "properties": {"on_behalf_of": "anne"}},
                      "action": {"name": "viewer"},
                      "resource": {"type": "document", "id": "plan"}}))
        .send()
        .await
        .unwrap();
    let id = res.headers()["x-warden-decision-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"decision": true})
    );
    let rec = &query(&acme, "acme", &format!("id={id}")).await[0];
    assert_eq!(
        (rec["agent"].as_str(), rec["user"].as_str()),
        (Some("agent:bot"), Some("user:anne"))
    );

    // Outcomes: joined to the allowed decision, once; refused otherwise.
    let path = format!("/v1/orgs/acme/audit/{allowed_id}/outcome");
    let (s, b) = acme
        .post(&path, json!({"result": "success", "detail": {"rows": 3}}))
        .await;
    assert_eq!(s, 201, "{b}");
    let (s, _) = acme.post(&path, json!({"result": "failure"})).await;
    assert_eq!(s, 409, "one outcome per decision");
    let (s, _) = acme
        .post(
            &format!("/v1/orgs/acme/audit/{denied_id}/outcome"),
            json!({"result": "success"}),
        )
        .await;
    assert_eq!(s, 409, "no outcome for a denied decision");
    let (s, _) = acme
        .post(
            "/v1/orgs/acme/audit/nope/outcome",
            json!({"result": "success"}),
        )
        .await;
    assert_eq!(s, 404);
    let (s, _) = acme.post(&path, json!({"result": "maybe"})).await;
    assert_eq!(s, 400);
    let (s, b) = acme
        .post(
            &path,
            json!({"result": "failure", "detail": "x".repeat(9000)}),
        )
        .await;
    assert_eq!(s, 400, "an oversized detail: {b}");
    let (s, _) = other.post(&path, json!({"result": "success"})).await;
    assert_eq!(s, 403, "another organization's key");
    let (s, _) = other
        .post(
            &format!("/v1/orgs/globex/audit/{allowed_id}/outcome"),
            json!({"result": "success"}),
        )
        .await;
    assert_eq!(s, 404, "a decision of another organization is not found");
    let r = &query(&acme, "acme", &format!("id={allowed_id}")).await[0];
    assert_eq!(r["outcome"]["result"], "success");
    assert_eq!(r["outcome"]["detail"], json!({"rows": 3}));
    let o = &query(&acme, "acme", "kind=outcome").await[0];
    assert_eq!(o["refers_to"], json!(allowed_id));
    assert_eq!(o["agent"], "agent:bot");

    // Checker keys and other organizations cannot read the log.
    let (_, k) = acme
        .post(
            "/v1/orgs/acme/keys",
            json!({"role": "checker", "name": "pep"}),
        )
        .await;
    let checker = acme.with_key(k["token"].as_str().unwrap());
    assert_eq!(checker.get("/v1/orgs/acme/audit").await.0, 403);
    assert_eq!(other.get("/v1/orgs/acme/audit").await.0, 403);
    assert_eq!(other.get("/v1/orgs/acme/audit/export").await.0, 403);
    assert!(
        query(&other, "globex", "agent=bot&kind=decision")
            .await
            .is_empty()
    );

    // Cursor pagination walks everything once.
    let all = query(&acme, "acme", "limit=1000").await;
    let mut seen = Vec::new();
    let mut cursor: Option<u64> = None;
    loop {
        let q = match cursor {
            Some(c) => format!("limit=4&cursor={c}"),
            None => "limit=4".into(),
        };
        let (_, b) = acme.get(&format!("/v1/orgs/acme/audit?{q}")).await;
        seen.extend(
            b["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["seq"].as_u64().unwrap()),
        );
        match b["next_cursor"].as_u64() {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen.len(), all.len());
    assert!(seen.windows(2).all(|w| w[0] < w[1]));

    // Verification on the server and offline on the export.
    let (s, b) = acme.post("/v1/orgs/acme/audit/checkpoint", json!({})).await;
    assert_eq!(s, 200, "{b}");
    let (_, v) = acme.get("/v1/orgs/acme/audit/verify").await;
    assert_eq!(v["ok"], json!(true), "{v}");
    let export = export_text(&acme, "acme").await;
    let jwks: Value = reqwest::get(format!("{}/oauth2/jwks", acme.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap().clone();
    let report = warden_audit::verify_export(export.as_bytes(), Some(&keys)).unwrap();
    assert!(report.ok(), "{report:?}");
    assert_eq!(report.records as usize, all.len());
    // The one taken above, and the one the export signs over the head.
    assert_eq!(report.checkpoints, 2);

    // Nothing secret is ever on the record: tokens, client secrets, API key tokens.
    let (_, cred) = acme
        .post(
            "/v1/orgs/acme/agents/bot/credentials",
            json!({"kind": "secret"}),
        )
        .await;
    let secret = cred["secret"].as_str().unwrap().to_string();
    let (s, tok) = acme
        .post_form(
            "/oauth2/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "acme:bot"),
                ("client_secret", &secret),
            ],
        )
        .await;
    assert_eq!(s, 200, "{tok}");
    let token = tok["access_token"].as_str().unwrap().to_string();
    let (_, d) = acme
        .post(
            "/v1/orgs/acme/authorize",
            json!({"token": token, "relation": "viewer", "object": "document:plan"}),
        )
        .await;
    let r = &query(
        &acme,
        "acme",
        &format!("id={}", d["decision_id"].as_str().unwrap()),
    )
    .await[0];
    assert!(r["jti"].is_string() && r["client_id"] == "acme:bot", "{r}");
    let issued = query(&acme, "acme", "action=token.issue").await;
    assert_eq!(issued.len(), 1);
    assert_eq!(issued[0]["jti"], r["jti"]);
    let export = export_text(&acme, "acme").await;
    for secret_value in [&token, &secret, &acme.key, &checker.key] {
        assert!(
            !export.contains(secret_value.as_str()),
            "a secret leaked into the audit log"
        );
    }

    // Fail closed: when the log cannot be written, no decision is given.
    break_the_log(url).await;
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "document:plan"}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{b}"
    );
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/authorize",
            json!({"agent": "bot", "relation": "viewer", "object": "document:plan"}),
        )
        .await;
    assert_eq!(s, 503, "{b}");
    assert!(b.get("allowed").is_none());
    // The node says it is not ready, so that a load balancer sends traffic elsewhere.
    let res = reqwest::get(format!("{}/readyz", acme.base)).await.unwrap();
    assert_eq!(res.status().as_u16(), 503);
    // A change that committed but could not be recorded says so.
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [{"user": "user:bob", "relation": "viewer", "object": "document:memo"}]}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{b}"
    );
    assert!(
        b["message"]
            .as_str()
            .unwrap()
            .contains("committed (revision"),
        "{b}"
    );
    server.shutdown().await.unwrap();
}

async fn export_text(c: &Client, org: &str) -> String {
    reqwest::Client::new()
        .get(format!("{}/v1/orgs/{org}/audit/export", c.base))
        .header("authorization", format!("Bearer {}", c.key))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn sql(url: &str, statements: &[&str]) {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    for s in statements {
        sqlx::query(sqlx::AssertSqlSafe(s.to_string()))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
}

async fn break_the_log(url: &str) {
    sql(url, &["DROP TABLE audit_records"]).await;
}

#[tokio::test]
async fn audit_on_sqlite() {
    let db = TestDb::sqlite();
    suite(&db.url).await;
}

#[tokio::test]
async fn audit_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    suite(&db.url).await;
}

/// Twelve checks in `org`, so its chain has records to tamper with.
async fn decisions(c: &Client, org: &str, n: usize) {
    for i in 0..n {
        let (s, b) = c
            .post(
                &format!("/v1/orgs/{org}/check"),
                json!({"user": format!("user:u{i}"), "relation": "viewer", "object": "document:plan"}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
}

async fn verdict(c: &Client, org: &str) -> (Value, Option<u64>) {
    let (_, v) = c.get(&format!("/v1/orgs/{org}/audit/verify")).await;
    let offline = warden_audit::verify_export(export_text(c, org).await.as_bytes(), None).unwrap();
    (v, offline.problem.map(|p| p.seq()))
}

async fn tamper_suite(url: &str) {
    let server = start(url).await;
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let mut clients = Vec::new();
    for org in ["clean", "edit", "del", "swap", "ins", "trunc"] {
        let c = admin.org_with_model(org, DSL).await;
        decisions(&c, org, 12).await;
        let (s, _) = c
            .post(&format!("/v1/orgs/{org}/audit/checkpoint"), json!({}))
            .await;
        assert_eq!(s, 200);
        clients.push(c);
    }
    let c = &admin;
    // Records 1-3 are the organization's creation, its key and its model; 4-15 checks.
    sql(
        url,
        &[
            "UPDATE audit_records SET allowed = 1 WHERE org_id = 'edit' AND seq = 9",
            "DELETE FROM audit_records WHERE org_id = 'del' AND seq = 7",
            "UPDATE audit_records SET seq = -5 WHERE org_id = 'swap' AND seq = 5",
            "UPDATE audit_records SET seq = 5 WHERE org_id = 'swap' AND seq = 6",
            "UPDATE audit_records SET seq = 6 WHERE org_id = 'swap' AND seq = -5",
            // The end removed, the checkpoint at 15 left: a truncation.
            "DELETE FROM audit_records WHERE org_id = 'trunc' AND seq > 12",
        ],
    )
    .await;
    // Insertion: a well-formed forged record (hash and link computed as the server
    // would) slipped in after record 10, the later rows renumbered.
    let mut conn = {
        sqlx::any::install_default_drivers();
        sqlx::AnyConnection::connect(url).await.unwrap()
    };
    use sqlx::Row;
    let row = sqlx::query("SELECT hash FROM audit_records WHERE org_id = 'ins' AND seq = 10")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let prev: String = row.try_get("hash").unwrap();
    let mut forged = warden_audit::AuditRecord {
        org: "ins".into(),
        id: "forged".into(),
        time_ms: 1,
        kind: "decision".into(),
        action: "viewer".into(),
        resource: Some("document:plan".into()),
        user: Some("user:mallory".into()),
        allowed: Some(true),
        ..Default::default()
    };
    forged.seal(Some((10, &prev)));
    drop(conn);
    let insert = format!(
        "INSERT INTO audit_records (org_id, seq, id, time_ms, kind, action, resource, user_id, allowed, detail, prev_hash, hash) \
         VALUES ('ins', 11, 'forged', 1, 'decision', 'viewer', 'document:plan', 'user:mallory', 1, 'null', '{}', '{}')",
        forged.prev_hash, forged.hash
    );
    sql(
        url,
        &[
            "UPDATE audit_records SET seq = seq + 1000 WHERE org_id = 'ins' AND seq > 10",
            "UPDATE audit_records SET seq = seq - 999 WHERE org_id = 'ins' AND seq > 1000",
            &insert,
        ],
    )
    .await;
    let (v, offline) = verdict(c, "clean").await;
    assert_eq!((v["ok"].clone(), offline), (json!(true), None), "{v}");
    for (org, seq, word) in [
        ("edit", 9, "changed"),
        ("del", 7, "missing"),
        ("swap", 5, "out of place"),
        ("ins", 11, "inserted"),
        ("trunc", 13, "removed"),
    ] {
        let (v, offline) = verdict(c, org).await;
        assert_eq!(v["ok"], json!(false), "{org}: {v}");
        assert_eq!(v["report"]["problem"]["seq"], json!(seq), "{org}: {v}");
        let msg = v["report"]["problem"]["message"].as_str().unwrap();
        assert!(msg.contains(word), "{org}: {msg}");
        assert_eq!(offline, Some(seq), "{org}: offline verification agrees");
    }
    // The server signs nothing over the shortened log, even once it grows again: not
    // on demand, not as an export's head; so dropping the checkpoint lines that tell
    // does not make the export verify.
    let trunc = &clients[5];
    decisions(trunc, "trunc", 1).await;
    let (s, b) = trunc
        .post("/v1/orgs/trunc/audit/checkpoint", json!({}))
        .await;
    assert_eq!(s, 409, "{b}");
    let text = export_text(trunc, "trunc").await;
    assert!(!text.contains("\"kind\":\"export\""), "{text}");
    let stripped: String = text
        .lines()
        .filter(|l| !l.starts_with("{\"checkpoint\""))
        .map(|l| format!("{l}\n"))
        .collect();
    let r = warden_audit::verify_export(stripped.as_bytes(), None).unwrap();
    assert!(
        matches!(r.problem, Some(warden_audit::Tamper::Unsigned { seq: 13 })),
        "{r:?}"
    );
    // Grown back to the signed position, the record there is another one: refused too.
    decisions(trunc, "trunc", 2).await;
    let (s, b) = trunc
        .post("/v1/orgs/trunc/audit/checkpoint", json!({}))
        .await;
    assert_eq!(s, 409, "{b}");
    assert!(b["message"].as_str().unwrap().contains("differs"), "{b}");
    // An untouched chain still gets its checkpoint on demand.
    let (s, _) = clients[0]
        .post("/v1/orgs/clean/audit/checkpoint", json!({}))
        .await;
    assert_eq!(s, 200);
    server.shutdown().await.unwrap();
}

/// What a hostile or careless client sends: a NUL character in a recorded field (which
/// PostgreSQL cannot store, and which once failed the whole group commit, other
/// organizations' decisions with it), NUL in filters, unknown organizations, racing
/// outcome reports, free text with quotes, a last page that is exactly full.
async fn abuse_suite(url: &str) {
    let server = start(url).await;
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = setup(&admin, "acme").await;
    let other = setup(&admin, "globex").await;

    // NUL in the object: a clean 400 for the sender, and the other organization's
    // decisions unharmed while it happens.
    let twenty = |c: &Client, org: &'static str, object: &'static str| {
        let c = c.clone();
        async move {
            let mut codes = Vec::new();
            for _ in 0..20 {
                let (s, _) = c
                    .post(
                        &format!("/v1/orgs/{org}/check"),
                        json!({"user": "user:anne", "relation": "viewer", "object": object}),
                    )
                    .await;
                codes.push(s);
            }
            codes
        }
    };
    let (nul, fine) = tokio::join!(
        twenty(&acme, "acme", "document:a\u{0}b"),
        twenty(&other, "globex", "document:plan")
    );
    assert!(nul.iter().all(|s| *s == 400), "{nul:?}");
    assert!(fine.iter().all(|s| *s == 200), "{fine:?}");
    // Refused as a malformed request, like any other: no decision, no record. NUL
    // reaching a record by another way is stored as U+FFFD (warden-audit's tests).
    let recs = query(&acme, "acme", "resource=document:a%EF%BF%BDb").await;
    assert_eq!(recs.len(), 0);
    // Nor anywhere else a NUL could reach PostgreSQL.
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/users/nul",
            json!({"display_name": "a\u{0}b"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, b) = acme
        .post_form(
            "/oauth2/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", "acme:b\u{0}t"),
            ],
        )
        .await;
    assert_eq!(
        (s, b["error"].as_str()),
        (400, Some("invalid_request")),
        "{b}"
    );
    // In a path, and in Basic credentials.
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/audit/a%00/outcome",
            json!({"result": "success"}),
        )
        .await;
    assert_eq!(s, 400, "{b}");
    let (s, _) = acme.get("/v1/orgs/acme/users/a%00").await;
    assert_eq!(s, 400);
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("acme:b\0t:secret");
    let res = reqwest::Client::new()
        .post(format!("{}/oauth2/token", acme.base))
        .header("authorization", format!("Basic {basic}"))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    for p in ["q=%00", "user=a%00", "resource=%00", "id=%00"] {
        let (s, b) = acme.get(&format!("/v1/orgs/acme/audit?{p}")).await;
        assert_eq!(s, 400, "{p}: {b}");
    }
    for p in ["from=-5", "to=1969-12-31T23:59:59Z"] {
        let (s, _) = acme.get(&format!("/v1/orgs/acme/audit?{p}")).await;
        assert_eq!(s, 400, "{p}");
    }

    // Unknown organizations are not found, even for the server administrator.
    for path in ["audit", "audit/export", "audit/verify"] {
        let (s, b) = admin.get(&format!("/v1/orgs/nope/{path}")).await;
        assert_eq!(s, 404, "{path}: {b}");
    }
    let (s, _) = admin.get("/v1/orgs/_system/audit").await;
    assert_eq!(s, 200, "the server's own chain");

    // Ten outcome reports for one decision at once: one is recorded.
    let (_, d) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "document:plan"}),
        )
        .await;
    let id = d["decision_id"].as_str().unwrap().to_string();
    let reports = (0..10).map(|i| {
        let (acme, id) = (&acme, &id);
        async move {
            let result = if i % 2 == 0 { "success" } else { "failure" };
            acme.post(
                &format!("/v1/orgs/acme/audit/{id}/outcome"),
                json!({ "result": result }),
            )
            .await
            .0
        }
    });
    let codes = futures_util::future::join_all(reports).await;
    assert_eq!(codes.iter().filter(|s| **s == 201).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|s| **s == 409).count(), 9, "{codes:?}");
    assert_eq!(query(&acme, "acme", "kind=outcome").await.len(), 1);

    // Free text as it reads, quotes and all.
    let (_, d) = acme
        .post(
            "/v1/orgs/acme/authorize",
            json!({"agent": "bot", "on_behalf_of": "anne", "scopes": ["docs.read"],
                   "relation": "editor", "object": "document:plan"}),
        )
        .await;
    assert_eq!(d["allowed"], json!(false), "{d}");
    let q = urlencode("among [\"docs.read\"] grants");
    assert_eq!(query(&acme, "acme", &format!("q={q}")).await.len(), 1);

    // A last page that is exactly full has no next cursor.
    let all = query(&acme, "acme", "kind=outcome&limit=1").await;
    assert_eq!(all.len(), 1);
    let (_, b) = acme.get("/v1/orgs/acme/audit?kind=outcome&limit=1").await;
    assert_eq!(b["next_cursor"], Value::Null, "{b}");
    let (_, b) = acme.get("/v1/orgs/acme/audit?kind=decision&limit=1").await;
    assert!(b["next_cursor"].is_u64(), "{b}");
    server.shutdown().await.unwrap();
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[tokio::test]
async fn hostile_input_is_refused_cleanly_on_sqlite() {
    let db = TestDb::sqlite();
    abuse_suite(&db.url).await;
}

#[tokio::test]
async fn hostile_input_is_refused_cleanly_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    abuse_suite(&db.url).await;
}

#[tokio::test]
async fn tampering_is_caught_on_sqlite() {
    let db = TestDb::sqlite();
    tamper_suite(&db.url).await;
}

#[tokio::test]
async fn tampering_is_caught_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    tamper_suite(&db.url).await;
}

/// A receiver that fails its first `fail_first` deliveries, then records each one.
struct Receiver {
    addr: std::net::SocketAddr,
    got: Arc<parking_lot::Mutex<Vec<Value>>>,
    attempts: Arc<std::sync::atomic::AtomicUsize>,
    signatures_ok: Arc<std::sync::atomic::AtomicBool>,
}

async fn receiver(fail_first: usize, secret: &'static str) -> Receiver {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let got = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let attempts = Arc::new(AtomicUsize::new(0));
    let signatures_ok = Arc::new(AtomicBool::new(true));
    let (g, a, ok) = (got.clone(), attempts.clone(), signatures_ok.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (g, a, ok) = (g.clone(), a.clone(), ok.clone());
                async move {
                    let n = a.fetch_add(1, Ordering::SeqCst);
                    if n < fail_first {
                        return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                    }
                    let sig = headers
                        .get("x-warden-signature")
                        .and_then(|v| v.to_str().ok());
                    if sig != Some(warden_server::audit::tasks::signature(secret, &body).as_str()) {
                        ok.store(false, Ordering::SeqCst);
                    }
                    let v: Value = serde_json::from_slice(&body).unwrap();
                    g.lock()
                        .extend(v["records"].as_array().unwrap().iter().cloned());
                    axum::http::StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver {
        addr,
        got,
        attempts,
        signatures_ok,
    }
}

async fn start_fast(url: &str) -> warden_server::Server {
    let config = warden_server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: url.to_string(),
        poll_interval: Duration::from_millis(100),
        audit_tasks: warden_server::audit::tasks::TaskConfig {
            checkpoint_every: Duration::from_millis(200),
            retention_every: Duration::from_secs(3600),
            webhook_poll: Duration::from_millis(50),
        },
        ..Default::default()
    };
    warden_server::start(config).await.unwrap()
}

/// Waits up to a minute (a loaded CI machine can be slow; a pass returns at once).
async fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..1200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn webhook_suite(url: &str) {
    const SECRET: &str = "a-webhook-secret-of-some-length";
    let rx = receiver(3, SECRET).await;
    let server = start_fast(url).await;
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin.org_with_model("acme", DSL).await;
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"audit": {"webhook": {"url": format!("http://{}/hook", rx.addr), "secret": SECRET}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    // Bad audit settings are refused.
    for (bad, why) in [
        (json!({"audit": {"retention_days": 0}}), "retention_days"),
        (
            json!({"audit": {"webhook": {"url": "http://siem.example.com/in"}}}),
            "https",
        ),
        (json!({"audit": {"webhook": {"url": "not a url"}}}), "url"),
        (
            json!({"audit": {"webhook": {"url": "https://siem.example.com/in", "secret": "short"}}}),
            "16",
        ),
    ] {
        let (s, b) = acme.put("/v1/orgs/acme/settings", bad).await;
        assert_eq!(s, 400, "{b}");
        assert!(b["message"].as_str().unwrap().contains(why), "{b}");
    }
    // The secret is not shown back, and writing back what was read keeps it.
    let (_, read) = acme.get("/v1/orgs/acme/settings").await;
    assert_eq!(read["audit"]["webhook"]["secret"], "(set)");
    let (s, _) = acme.put("/v1/orgs/acme/settings", read).await;
    assert_eq!(s, 200);
    decisions(&acme, "acme", 30).await;
    let head = |srv: &warden_server::Server| {
        let db = srv.state.db.clone();
        async move { db.audit_head("acme").await.unwrap().unwrap().0 }
    };
    let n = head(&server).await;
    let got = rx.got.clone();
    wait_until("first deliveries", || got.lock().len() as u64 >= n).await;
    assert!(
        rx.attempts.load(std::sync::atomic::Ordering::SeqCst) > 3,
        "it retried"
    );
    // Periodic checkpoints were signed meanwhile.
    let cps = server.state.db.audit_checkpoints("acme").await.unwrap();
    assert!(!cps.is_empty());
    // Restart Warden; more decisions; delivery resumes where it stopped.
    server.shutdown().await.unwrap();
    let server = start_fast(url).await;
    let acme = Client::new(&server, &acme.key);
    decisions(&acme, "acme", 20).await;
    let n = head(&server).await;
    wait_until("deliveries after the restart", || {
        got.lock().iter().filter_map(|r| r["seq"].as_u64()).max() == Some(n)
    })
    .await;
    let seqs: Vec<u64> = got
        .lock()
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    // At least once, in order: the distinct sequence numbers are 1..=n, each first
    // seen after the one before it.
    let mut first_seen = Vec::new();
    for s in &seqs {
        if !first_seen.contains(s) {
            first_seen.push(*s);
        }
    }
    assert_eq!(first_seen, (1..=n).collect::<Vec<_>>());
    assert!(
        rx.signatures_ok.load(std::sync::atomic::Ordering::SeqCst),
        "every delivery was signed"
    );
    // The receiver has everything; Warden stores its cursor just after the 2xx.
    for _ in 0..300 {
        let url = format!("http://{}/hook", rx.addr);
        if server
            .state
            .db
            .audit_sink_delivered("acme", &url)
            .await
            .unwrap()
            >= n
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Retention never removes what the webhook has not acknowledged, and the cut
    // leaves a log that still verifies.
    let removed = warden_server::audit::tasks::apply_retention(
        &server.state,
        "acme",
        warden_storage::now_ms() + 1,
    )
    .await
    .unwrap();
    assert_eq!(removed, n);
    decisions(&acme, "acme", 2).await;
    let (_, v) = acme.get("/v1/orgs/acme/audit/verify").await;
    assert_eq!(v["ok"], json!(true), "{v}");
    assert_eq!(v["report"]["first_seq"], json!(n + 1));
    let offline =
        warden_audit::verify_export(export_text(&acme, "acme").await.as_bytes(), None).unwrap();
    assert!(offline.ok(), "{offline:?}");
    // A new receiver starts from the first retained record, not where the old one was.
    let rx2 = receiver(0, SECRET).await;
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"audit": {"webhook": {"url": format!("http://{}/hook", rx2.addr), "secret": SECRET}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let end = head(&server).await;
    let got2 = rx2.got.clone();
    let mut caught_up = false;
    for _ in 0..1200 {
        if got2.lock().iter().filter_map(|r| r["seq"].as_u64()).max() >= Some(end) {
            caught_up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if !caught_up {
        let seqs: Vec<u64> = got2
            .lock()
            .iter()
            .filter_map(|r| r["seq"].as_u64())
            .collect();
        let delivered = server
            .state
            .db
            .audit_sink_delivered("acme", &format!("http://{}/hook", rx2.addr))
            .await;
        let head_now = head(&server).await;
        let (_, settings) = acme.get("/v1/orgs/acme/settings").await;
        panic!(
            "the new receiver did not catch up: end {end}, head now {head_now}, n {n}, got {seqs:?}, \
             attempts {}, delivered {delivered:?}, settings {settings}",
            rx2.attempts.load(std::sync::atomic::Ordering::SeqCst)
        );
    }
    let first = got2.lock()[0]["seq"].as_u64();
    assert_eq!(first, Some(n + 1), "the whole retained log, from its start");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn webhook_delivers_everything_in_order_on_sqlite() {
    let db = TestDb::sqlite();
    webhook_suite(&db.url).await;
}

#[tokio::test]
async fn webhook_delivers_everything_in_order_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    webhook_suite(&db.url).await;
}
