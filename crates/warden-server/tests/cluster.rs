//! Two servers on one PostgreSQL database: each follows the other's writes, and a
//! request that names a revision is never answered from older data.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

mod common;

use common::{Client, start};
use serde_json::json;
use warden_storage::testing::TestDb;

const DSL: &str =
    "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n";

#[tokio::test]
async fn a_write_on_one_node_is_seen_on_the_other() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let a = start(&db.url).await;
    let b = start(&db.url).await;
    assert!(b.bootstrap_key.is_none(), "one bootstrap key per database");
    let admin_a = Client::new(&a, a.bootstrap_key.as_deref().unwrap());
    let acme_a = admin_a.org_with_model("acme", DSL).await;
    let acme_b = Client::new(&b, &acme_a.key);

    for i in 0..20 {
        let (s, w) = acme_a
            .post(
                "/v1/orgs/acme/tuples/write",
                json!({"writes": [{"user": format!("user:u{i}"), "relation": "viewer", "object": "doc:1"}]}),
            )
            .await;
        assert_eq!(s, 200, "{w}");
        let rev = w["revision"].as_i64().unwrap();
        // Node B, asked for the write's revision, answers from at least that revision.
        let (s, r) = acme_b
            .post(
                "/v1/orgs/acme/check",
                json!({"user": format!("user:u{i}"), "relation": "viewer", "object": "doc:1",
                       "consistency": {"at_least_revision": rev}}),
            )
            .await;
        assert_eq!(s, 200, "{r}");
        assert_eq!(
            r["allowed"],
            json!(true),
            "write {i} at revision {rev} not seen on B: {r}"
        );
        assert!(r["revision"].as_i64().unwrap() >= rev);
    }

    // Deletes and new models travel too; B also catches up on its own (notify/poll).
    let (_, w) = acme_b
        .post(
            "/v1/orgs/acme/tuples/delete",
            json!({"tuples": [{"user": "user:u0", "relation": "viewer", "object": "doc:1"}]}),
        )
        .await;
    let rev = w["revision"].as_i64().unwrap();
    let mut seen = false;
    for _ in 0..50 {
        if a.state.applied() >= rev {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "node A followed B's delete without being asked");
    let (_, r) = acme_a
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:u0", "relation": "viewer", "object": "doc:1"}),
        )
        .await;
    assert_eq!(r["allowed"], json!(false));
    let (s, m) = acme_a
        .post(
            "/v1/orgs/acme/models",
            json!({"dsl": "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n    define editor: [user]\n"}),
        )
        .await;
    assert_eq!(s, 201, "{m}");
    let (s, r) = acme_b
        .post(
            "/v1/orgs/acme/check",
            json!({"user": "user:u1", "relation": "editor", "object": "doc:1",
                   "consistency": {"at_least_revision": m["revision"]}}),
        )
        .await;
    assert_eq!(
        (s, &r["allowed"]),
        (200, &json!(false)),
        "B knows the new relation: {r}"
    );

    // Organizations and keys created on A work on B.
    let (s, o) = Client::new(&b, a.bootstrap_key.as_deref().unwrap())
        .post("/v1/orgs", json!({"id": "beta"}))
        .await;
    assert_eq!(s, 201, "{o}");
    let (s, _) = admin_a
        .post("/v1/orgs/beta/models", json!({"dsl": DSL}))
        .await;
    assert_eq!(s, 201);

    // Both nodes append to the same organization's audit chain at once: it stays one
    // linear, verifiable chain (a node whose idea of the chain's end is stale retries).
    let mut tasks = Vec::new();
    for (n, c) in [(0, acme_a.clone()), (1, acme_b.clone())] {
        tasks.push(tokio::spawn(async move {
            for i in 0..40 {
                let (s, b) = c
                    .post(
                        "/v1/orgs/acme/check",
                        json!({"user": format!("user:n{n}-{i}"), "relation": "viewer", "object": "doc:1"}),
                    )
                    .await;
                assert_eq!(s, 200, "{b}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for c in [&acme_a, &acme_b] {
        let (s, v) = c.get("/v1/orgs/acme/audit/verify").await;
        assert_eq!((s, &v["ok"]), (200, &json!(true)), "{v}");
        assert!(v["report"]["records"].as_u64().unwrap() >= 80, "{v}");
    }
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}
