//! One storage suite, run on SQLite and on PostgreSQL: the same behaviour on both.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

use warden_engine::TupleKey;
use warden_storage::testing::TestDb;
use warden_storage::{ChangeKind, Db, ReadFilter, Role, StorageError};

fn t(user: &str, relation: &str, object: &str) -> TupleKey {
    TupleKey::new(user, relation, object)
}

async fn suite(db: Db) {
    // Organizations.
    assert_eq!(db.current_revision().await.unwrap(), 0);
    let (org, r1) = db.create_org("acme").await.unwrap();
    assert_eq!(org.id, "acme");
    assert_eq!(r1, 1);
    assert!(matches!(
        db.create_org("acme").await,
        Err(StorageError::Conflict { .. })
    ));
    for bad in [
        "",
        "Acme",
        "a b",
        "-x",
        "a;drop table orgs",
        &"x".repeat(64),
    ] {
        assert!(
            matches!(db.create_org(bad).await, Err(StorageError::Invalid(_))),
            "{bad}"
        );
    }
    db.create_org("other").await.unwrap();
    assert_eq!(db.list_orgs().await.unwrap().len(), 2);
    assert!(matches!(
        db.get_org("nope").await,
        Err(StorageError::NotFound { .. })
    ));

    // Models: versioned, the latest last.
    let m1 = db
        .write_model("acme", "{\"schema_version\":\"1.1\"}")
        .await
        .unwrap();
    let m2 = db
        .write_model("acme", "{\"schema_version\":\"1.1\",\"x\":1}")
        .await
        .unwrap();
    assert!(m2.revision > m1.revision);
    assert!(m2.id > m1.id, "model ids sort by time");
    let ms = db.models("acme").await.unwrap();
    assert_eq!(
        ms.iter().map(|m| &m.id).collect::<Vec<_>>(),
        [&m1.id, &m2.id]
    );
    assert_eq!(
        db.model("acme", &m1.id).await.unwrap().model_json,
        m1.model_json
    );
    assert!(
        db.model("other", &m1.id).await.is_err(),
        "models are per organization"
    );
    assert!(db.write_model("nope", "{}").await.is_err());

    // Tuples: atomic batches under one revision.
    let mut cond = t("user:dana", "viewer", "doc:2");
    cond.condition = Some(warden_engine::tuple::TupleCondition {
        name: "not_expired".into(),
        context: Some(serde_json::from_str(r#"{"expires":"2030-01-01T00:00:00Z"}"#).unwrap()),
    });
    let w1 = db
        .write_tuples(
            "acme",
            &[
                t("user:anne", "viewer", "doc:1"),
                t("user:bob", "viewer", "doc:1"),
                t("group:eng#member", "viewer", "doc:1"),
                cond.clone(),
            ],
            &[],
        )
        .await
        .unwrap();
    assert_eq!(w1, m2.revision + 1);
    // A batch with one duplicate writes nothing.
    let before = db.current_revision().await.unwrap();
    assert!(matches!(
        db.write_tuples(
            "acme",
            &[
                t("user:carl", "viewer", "doc:9"),
                t("user:anne", "viewer", "doc:1")
            ],
            &[]
        )
        .await,
        Err(StorageError::Conflict { .. })
    ));
    // A batch deleting a missing tuple writes nothing either.
    assert!(matches!(
        db.write_tuples(
            "acme",
            &[t("user:carl", "viewer", "doc:9")],
            &[t("user:zed", "viewer", "doc:1")]
        )
        .await,
        Err(StorageError::NotFound { .. })
    ));
    assert_eq!(
        db.current_revision().await.unwrap(),
        before,
        "failed batches take no revision"
    );
    let page = db
        .read_tuples(
            "acme",
            &ReadFilter {
                object: Some("doc:9".into()),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap();
    assert!(
        page.tuples.is_empty(),
        "nothing of a failed batch is stored"
    );

    // Same keys in another organization are separate.
    db.write_tuples("other", &[t("user:anne", "viewer", "doc:1")], &[])
        .await
        .unwrap();

    // Reads: filters, pagination, conditions round-trip.
    let all = db
        .read_tuples("acme", &ReadFilter::default(), 100, None)
        .await
        .unwrap();
    assert_eq!(all.tuples.len(), 4);
    assert!(all.continuation_token.is_none());
    let got_cond = all
        .tuples
        .iter()
        .find(|s| s.key.user == "user:dana")
        .unwrap();
    assert_eq!(got_cond.key, cond);
    let mut seen = Vec::new();
    let mut token = None;
    loop {
        let p = db
            .read_tuples("acme", &ReadFilter::default(), 1, token.as_deref())
            .await
            .unwrap();
        seen.extend(p.tuples.iter().map(|s| s.key.clone()));
        match p.continuation_token {
            Some(tk) => token = Some(tk),
            None => break,
        }
    }
    assert_eq!(
        seen.len(),
        4,
        "pages of one cover everything once: {seen:?}"
    );
    let by_user = db
        .read_tuples(
            "acme",
            &ReadFilter {
                user: Some("user:anne".into()),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_user.tuples.len(), 1);
    let by_type = db
        .read_tuples(
            "acme",
            &ReadFilter {
                object: Some("doc".into()),
                relation: Some("viewer".into()),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap();
    assert_eq!(by_type.tuples.len(), 4);
    // Filter values are data, never SQL.
    let evil = db
        .read_tuples(
            "acme",
            &ReadFilter {
                user: Some("x' OR '1'='1".into()),
                ..Default::default()
            },
            100,
            None,
        )
        .await
        .unwrap();
    assert!(evil.tuples.is_empty());
    assert!(
        db.read_tuples("acme", &ReadFilter::default(), 10, Some("zz"))
            .await
            .is_err()
    );

    // Deletes, and the changes feed.
    let w2 = db
        .write_tuples("acme", &[], &[t("user:bob", "viewer", "doc:1")])
        .await
        .unwrap();
    let changes = db.changes(Some("acme"), 0, 100).await.unwrap();
    let kinds: Vec<ChangeKind> = changes.iter().map(|c| c.kind).collect();
    assert_eq!(kinds[0], ChangeKind::Org);
    assert_eq!(kinds[1], ChangeKind::Model);
    assert_eq!(kinds.last(), Some(&ChangeKind::Delete));
    assert_eq!(changes.last().unwrap().revision, w2);
    assert_eq!(
        changes
            .iter()
            .filter(|c| c.kind == ChangeKind::Write)
            .count(),
        4
    );
    assert!(
        changes
            .windows(2)
            .all(|w| (w[0].revision, w[0].seq) < (w[1].revision, w[1].seq))
    );
    let after = db.changes(Some("acme"), w1, 100).await.unwrap();
    assert_eq!(after.len(), 1);
    let global = db.changes(None, 0, 1000).await.unwrap();
    assert!(global.iter().any(|c| c.org_id == "other"));

    // Loading everything at start.
    let mut loaded = Vec::new();
    let rev = db
        .load_tuples(|org, k| loaded.push((org.to_string(), k)))
        .await
        .unwrap();
    assert_eq!(rev, db.current_revision().await.unwrap());
    assert_eq!(loaded.len(), 4);
    assert!(
        loaded.iter().any(|(o, k)| o == "acme" && *k == cond),
        "conditions and their context load back exactly"
    );
    assert!(loaded.iter().any(|(o, _)| o == "other"));

    // API keys: shown once, verified by hash, revocable, scoped.
    assert!(!db.has_admin_key().await.unwrap());
    let admin = db.create_key(None, Role::Admin, "bootstrap").await.unwrap();
    assert!(db.has_admin_key().await.unwrap());
    let k = db
        .create_key(Some("acme"), Role::Checker, "ci")
        .await
        .unwrap();
    let v = db.verify_key(&k.token).await.unwrap().unwrap();
    assert_eq!(v.org_id.as_deref(), Some("acme"));
    assert_eq!(v.role, Role::Checker);
    let mut forged = k.token.clone();
    forged.pop();
    forged.push(if k.token.ends_with('0') { '1' } else { '0' });
    assert!(db.verify_key(&forged).await.unwrap().is_none());
    assert!(db.verify_key("wdn_garbage").await.unwrap().is_none());
    assert!(
        db.revoke_key(Some("other"), &k.key.id).await.is_err(),
        "another org cannot revoke it"
    );
    db.revoke_key(Some("acme"), &k.key.id).await.unwrap();
    assert!(db.verify_key(&k.token).await.unwrap().is_none());
    assert_eq!(db.list_keys(Some("acme")).await.unwrap().len(), 1);
    assert_eq!(db.list_keys(None).await.unwrap()[0].id, admin.key.id);
}

#[tokio::test]
async fn storage_suite_on_sqlite() {
    let tdb = TestDb::sqlite();
    let db = Db::connect(&tdb.url).await.unwrap();
    suite(db.clone()).await;
    db.close().await;
    // Reopening runs migrations again harmlessly and finds the data.
    let db = Db::connect(&tdb.url).await.unwrap();
    assert_eq!(db.list_orgs().await.unwrap().len(), 2);
    db.close().await;
}

#[tokio::test]
async fn storage_suite_on_postgres() {
    let Some(tdb) = TestDb::postgres().await else {
        return;
    };
    let db = Db::connect(&tdb.url).await.unwrap();
    suite(db.clone()).await;
    db.close().await;
    let db = Db::connect(&tdb.url).await.unwrap();
    assert_eq!(db.list_orgs().await.unwrap().len(), 2);
    db.close().await;
}

#[tokio::test]
async fn concurrent_writers_get_distinct_increasing_revisions() {
    for tdb in [Some(TestDb::sqlite()), TestDb::postgres().await]
        .into_iter()
        .flatten()
    {
        let db = Db::connect(&tdb.url).await.unwrap();
        db.create_org("acme").await.unwrap();
        let mut tasks = Vec::new();
        for i in 0..20 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                db.write_tuples("acme", &[t(&format!("user:u{i}"), "viewer", "doc:1")], &[])
                    .await
                    .unwrap()
            }));
        }
        let mut revs = Vec::new();
        for task in tasks {
            revs.push(task.await.unwrap());
        }
        revs.sort();
        revs.dedup();
        assert_eq!(revs.len(), 20, "{}: {revs:?}", tdb.url);
        assert_eq!(db.current_revision().await.unwrap(), 21);
        db.close().await;
    }
}
