//! The HTTP API against a real server on a loopback port, the same suite on SQLite and
//! on PostgreSQL: data, decisions, consistency tokens, access control and bad input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

mod common;

use common::{Client, start};
use serde_json::json;
use warden_storage::testing::TestDb;

const DSL: &str = "model\n  schema 1.1\n\ntype user\n\ntype group\n  relations\n    define member: [user, group#member]\n\ntype doc\n  relations\n    define owner: [user]\n    define blocked: [user]\n    define viewer: [user, user:*, group#member with in_office] or owner\n    define can_view: viewer but not blocked\n\ncondition in_office(ip: ipaddress) {\n  ip.in_cidr(\"10.0.0.0/8\")\n}\n";

async fn suite(url: &str) {
    let server = start(url).await;
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin.org_with_model("acme", DSL).await;

    // Writes return a revision; checks asking for it see the write.
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [
                {"user": "user:anne", "relation": "owner", "object": "doc:1"},
                {"user": "user:bob", "relation": "member", "object": "group:eng"},
                {"user": "group:eng#member", "relation": "viewer", "object": "doc:2",
                 "condition": {"name": "in_office"}},
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let rev = b["revision"].as_i64().unwrap();
    let check = |user: &str, rel: &str, obj: &str, ctx: serde_json::Value| {
        json!({"user": user, "relation": rel, "object": obj, "context": ctx,
               "consistency": {"at_least_revision": rev}})
    };
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/check",
            check("user:anne", "can_view", "doc:1", json!({})),
        )
        .await;
    assert_eq!((s, &b["allowed"]), (200, &json!(true)), "{b}");
    assert!(b["revision"].as_i64().unwrap() >= rev);
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/check",
            check("user:bob", "viewer", "doc:2", json!({"ip": "10.1.1.1"})),
        )
        .await;
    assert_eq!(b["allowed"], json!(true), "{b}");
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/check",
            check("user:bob", "viewer", "doc:2", json!({"ip": "192.168.1.1"})),
        )
        .await;
    assert_eq!(b["allowed"], json!(false), "{b}");
    // A missing condition parameter is an error, not a silent false.
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/check",
            check("user:bob", "viewer", "doc:2", json!({})),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("validation_error")),
        "{b}"
    );
    // Explanations.
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "doc:1", "explain": true}),
        )
        .await;
    assert!(!b["path"].as_array().unwrap().is_empty(), "{b}");

    // Batch check, lists, expand.
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/batch-check",
            json!({"checks": [
                {"correlation_id": "a", "user": "user:anne", "relation": "owner", "object": "doc:1"},
                {"correlation_id": "b", "user": "user:zed", "relation": "owner", "object": "doc:1"},
                {"correlation_id": "c", "user": "user:anne", "relation": "nosuch", "object": "doc:1"},
            ]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["results"][0]["allowed"], json!(true));
    assert_eq!(b["results"][1]["allowed"], json!(false));
    assert_eq!(b["results"][2]["error"]["code"], json!("validation_error"));
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/list-objects",
            json!({"user": "user:anne", "relation": "can_view", "type": "doc"}),
        )
        .await;
    assert_eq!(b["objects"], json!(["doc:1"]), "{b}");
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/list-users",
            json!({"object": "doc:1", "relation": "viewer", "user_filters": ["user"]}),
        )
        .await;
    assert_eq!(b["users"], json!(["user:anne"]), "{b}");
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/expand",
            json!({"object": "doc:1", "relation": "viewer"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    assert!(b["tree"].is_object());

    // Read with filters and pagination; the changes feed.
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/tuples/read",
            json!({"filter": {"object": "doc"}, "page_size": 1}),
        )
        .await;
    assert_eq!(b["tuples"].as_array().unwrap().len(), 1);
    let token = b["continuation_token"].as_str().unwrap().to_string();
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/tuples/read",
            json!({"filter": {"object": "doc"}, "page_size": 10, "continuation_token": token}),
        )
        .await;
    assert_eq!(b["tuples"].as_array().unwrap().len(), 1, "{b}");
    let (_, b) = acme.get("/v1/orgs/acme/tuples/changes?after=0").await;
    assert!(b["changes"].as_array().unwrap().len() >= 5, "{b}");

    // Deletes are atomic with writes; a batch with one bad tuple writes nothing.
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [
                {"user": "user:carl", "relation": "owner", "object": "doc:3"},
                {"user": "user:carl", "relation": "owner", "object": "nosuch:3"},
            ]}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_tuple")), "{b}");
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [{"user": "user:carl", "relation": "owner", "object": "doc:3"}],
                   "deletes": [{"user": "user:nobody", "relation": "owner", "object": "doc:1"}]}),
        )
        .await;
    assert_eq!(s, 404, "{b}");
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [{"user": "user:anne", "relation": "owner", "object": "doc:1"}]}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (409, Some("conflict")), "{b}");
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:carl", "relation": "owner", "object": "doc:3",
                   "consistency": "fully_consistent"}),
        )
        .await;
    assert_eq!(
        b["allowed"],
        json!(false),
        "nothing of the failed batches landed: {b}"
    );
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/tuples/delete",
            json!({"tuples": [{"user": "user:anne", "relation": "owner", "object": "doc:1"}]}),
        )
        .await;
    let rev = b["revision"].as_i64().unwrap();
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "doc:1",
                   "consistency": {"at_least_revision": rev}}),
        )
        .await;
    assert_eq!(b["allowed"], json!(false));

    // A revision nobody has written yet is an error after the wait, not stale data.
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "doc:1",
                   "consistency": {"at_least_revision": rev + 1000}}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (503, Some("revision_unavailable")),
        "{b}"
    );

    // Models: versions, invalid models refused with every error placed.
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/models",
            json!({"dsl": "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define a: [nosuch]\n    define b: missing\n"}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_model")), "{b}");
    assert_eq!(b["errors"].as_array().unwrap().len(), 2, "{b}");
    assert_eq!(b["errors"][0]["line"], json!(6));
    let (_, b) = acme.get("/v1/orgs/acme/models").await;
    assert_eq!(b["models"].as_array().unwrap().len(), 1);
    let (s, b) = acme.get("/v1/orgs/acme/models/latest").await;
    assert_eq!(s, 200);
    assert!(b["dsl"].as_str().unwrap().contains("define can_view"));

    // Roles and organizations: a key acts only within its organization and role.
    let other = admin.org_with_model("other", DSL).await;
    for (method, path) in [
        ("post", "/v1/orgs/acme/check"),
        ("post", "/v1/orgs/acme/tuples/write"),
        ("post", "/v1/orgs/acme/tuples/read"),
        ("get", "/v1/orgs/acme/models"),
        ("get", "/v1/orgs/acme/keys"),
        ("get", "/v1/orgs/acme"),
        ("get", "/v1/orgs/nosuch"),
    ] {
        let body = json!({"user": "user:anne", "relation": "owner", "object": "doc:1",
                          "writes": [{"user": "user:x", "relation": "owner", "object": "doc:9"}]});
        let (s, b) = match method {
            "post" => other.post(path, body).await,
            _ => other.get(path).await,
        };
        assert_eq!(
            (s, b["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}: {b}"
        );
    }
    // AuthZEN takes the organization from the key: another organization's key sees
    // only its own data, and cannot name someone else's organization.
    let eval = json!({"subject": {"type": "user", "id": "bob"}, "action": {"name": "member"},
                      "resource": {"type": "group", "id": "eng"}});
    let (s, b) = acme.post("/access/v1/evaluation", eval.clone()).await;
    assert_eq!((s, &b), (200, &json!({"decision": true})), "{b}");
    let (s, b) = other.post("/access/v1/evaluation", eval.clone()).await;
    assert_eq!((s, &b), (200, &json!({"decision": false})), "{b}");
    let res = reqwest::Client::new()
        .post(format!("{}/access/v1/evaluation", other.base))
        .bearer_auth(&other.key)
        .header("x-warden-org", "acme")
        .json(&eval)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let (s, b) = admin.post("/access/v1/evaluation", eval.clone()).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_request")),
        "admin must name an org: {b}"
    );
    let (s, b) = acme
        .post_raw("/access/v1/evaluation", "{\"subject\":")
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("invalid_json")), "{b}");
    let (s, b) = acme
        .post(
            "/access/v1/evaluation",
            json!({"subject": {"type": "user", "id": "bob"},
            "action": {"name": "nosuch"}, "resource": {"type": "group", "id": "eng"}}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(b["decision"], json!(false));
    assert!(b["context"]["reason_admin"]["code"].is_string(), "{b}");

    let (_, b) = acme
        .post(
            "/v1/orgs/acme/keys",
            json!({"role": "checker", "name": "svc"}),
        )
        .await;
    let checker = acme.with_key(b["token"].as_str().unwrap());
    let checker_id = b["id"].as_str().unwrap().to_string();
    let (s, _) = checker
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:a", "relation": "owner", "object": "doc:1"}),
        )
        .await;
    assert_eq!(s, 200);
    let (s, b) = checker
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [{"user": "user:x", "relation": "owner", "object": "doc:9"}]}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (403, Some("forbidden")));
    let (s, _) = checker.post("/v1/orgs", json!({"id": "mine"})).await;
    assert_eq!(s, 403, "only server administrators create organizations");
    let (s, _) = acme
        .delete(&format!("/v1/orgs/acme/keys/{checker_id}"))
        .await;
    assert_eq!(s, 204);
    let (s, b) = checker
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:a", "relation": "owner", "object": "doc:1"}),
        )
        .await;
    assert_eq!(
        (s, b["code"].as_str()),
        (401, Some("unauthenticated")),
        "revoked: {b}"
    );
    for bad in [
        "",
        "wdn_",
        "Bearer",
        "wdn_0000000000000000_00",
        &format!("{}x", acme.key),
    ] {
        let (s, b) = acme.with_key(bad).get("/v1/orgs/acme").await;
        assert_eq!(
            (s, b["code"].as_str()),
            (401, Some("unauthenticated")),
            "{bad}"
        );
    }

    // Bad input: JSON errors with stable codes; nothing panics.
    for (body, code) in [
        ("{", "invalid_json"),
        ("[]", "invalid_json"),
        ("{\"user\": 1}", "invalid_json"),
        (
            "{\"user\":\"user:a\",\"relation\":\"owner\",\"object\":\"doc:1\",\"extra\":1}",
            "invalid_json",
        ),
        (
            "{\"user\":\"user:a\",\"relation\":\"owner\",\"object\":\"nosuch:1\"}",
            "validation_error",
        ),
        (
            "{\"user\":\"user:a\",\"relation\":\"nosuch\",\"object\":\"doc:1\"}",
            "validation_error",
        ),
        (
            "{\"user\":\"a\",\"relation\":\"owner\",\"object\":\"doc:1\"}",
            "validation_error",
        ),
        (
            "{\"user\":\"user:a\",\"relation\":\"owner\",\"object\":\"doc:1\",\"model_id\":\"nope\"}",
            "not_found",
        ),
    ] {
        let (s, b) = acme.post_raw("/v1/orgs/acme/check", body.to_string()).await;
        assert!((400..500).contains(&s), "{body}: {s} {b}");
        assert_eq!(b["code"].as_str(), Some(code), "{body}: {b}");
    }
    let big = format!(
        "{{\"writes\": [], \"pad\": \"{}\"}}",
        "x".repeat(100 * 1024)
    );
    let (s, b) = acme.post_raw("/v1/orgs/acme/tuples/write", big).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (413, Some("payload_too_large")),
        "{b}"
    );
    let (s, b) = acme.post("/v1/orgs/nosuch/check", json!({})).await;
    assert_eq!(
        s, 403,
        "another org's path is forbidden before it is looked up: {b}"
    );
    let (s, b) = admin
        .post(
            "/v1/orgs/nosuch/check",
            json!({"user": "user:a", "relation": "r", "object": "doc:1"}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (404, Some("not_found")), "{b}");
    // An organization without a model answers decisions with `no_model`.
    admin.post("/v1/orgs", json!({"id": "empty"})).await;
    let (s, b) = admin
        .post(
            "/v1/orgs/empty/check",
            json!({"user": "user:a", "relation": "r", "object": "doc:1"}),
        )
        .await;
    assert_eq!((s, b["code"].as_str()), (400, Some("no_model")), "{b}");
    let (s, b) = admin.get("/no/such/route").await;
    assert_eq!((s, b["code"].as_str()), (404, Some("not_found")));
    let (s, b) = admin.post("/v1/orgs", json!({"id": "Bad Name"})).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (400, Some("invalid_request")),
        "{b}"
    );
    let (s, _) = admin.post("/v1/orgs", json!({"id": "acme"})).await;
    assert_eq!(s, 409);

    // Operations.
    let (s, _) = admin.get("/healthz").await;
    assert_eq!(s, 200);
    let (s, b) = admin.get("/readyz").await;
    assert_eq!((s, &b["status"]), (200, &json!("ready")));
    let (_, metrics) = admin.get("/metrics").await;
    let metrics = metrics.as_str().unwrap().to_string();
    assert!(metrics.contains(
        "warden_http_requests_total{method=\"POST\",route=\"/v1/orgs/{org}/check\",status=\"200\"}"
    ));
    assert!(metrics.contains("warden_decisions_total{outcome=\"allowed\"}"));
    assert!(metrics.contains("warden_http_request_duration_seconds_bucket"));

    // The OpenAPI document lists every route, and every listed route is served.
    let (_, doc) = admin.get("/openapi.json").await;
    assert_eq!(doc["openapi"], json!("3.1.0"));
    let check_body = &doc["paths"]["/v1/orgs/{org}/check"]["post"]["requestBody"]["content"]["application/json"]
        ["schema"];
    let name = check_body["$ref"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let props = &doc["components"]["schemas"][name]["properties"];
    assert!(
        props["user"].is_object() && props["consistency"].is_object(),
        "{props}"
    );
    for route in warden_server::routes::ROUTES {
        let (method, path) = (&route.method, &route.path);
        assert!(doc["paths"][*path][*method].is_object(), "{method} {path}");
        let concrete = path
            .replace("{org}", "acme")
            .replace("{kind}", "users")
            .replace("{id}", "x");
        let (s, b) = match *method {
            "get" => admin.get(&concrete).await,
            "delete" => admin.delete(&concrete).await,
            "put" => admin.put(&concrete, json!({})).await,
            _ => admin.post(&concrete, json!({})).await,
        };
        assert!(
            s != 405 && !(s == 404 && b["message"] == json!("no such route")),
            "{method} {path}: {s} {b}"
        );
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn api_on_sqlite() {
    let db = TestDb::sqlite();
    suite(&db.url).await;
}

#[tokio::test]
async fn api_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    suite(&db.url).await;
}

#[tokio::test]
async fn restart_keeps_everything_and_bootstraps_once() {
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let key = server.bootstrap_key.clone().unwrap();
    let admin = Client::new(&server, &key);
    let acme = admin.org_with_model("acme", DSL).await;
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [{"user": "user:anne", "relation": "owner", "object": "doc:1"}]}),
    )
    .await;
    let acme_key = acme.key.clone();
    server.shutdown().await.unwrap();

    let server = start(&db.url).await;
    assert!(
        server.bootstrap_key.is_none(),
        "the bootstrap key is made once"
    );
    let acme = Client::new(&server, &acme_key);
    let (_, b) = acme
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:anne", "relation": "viewer", "object": "doc:1"}),
        )
        .await;
    assert_eq!(b["allowed"], json!(true), "{b}");
    server.shutdown().await.unwrap();
}
