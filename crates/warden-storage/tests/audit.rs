//! The audit tables on SQLite and PostgreSQL: concurrent appends stay one verifiable
//! chain per organization, queries filter, retention cuts behind a checkpoint, and a
//! webhook delivery lease is held by one node at a time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

use warden_audit::{AuditRecord, Checkpoint, Prepared, verify};
use warden_storage::testing::TestDb;
use warden_storage::{AuditFilter, Db};

fn record(org: &str, i: usize) -> AuditRecord {
    AuditRecord {
        org: org.into(),
        id: format!("{org}-{i}"),
        time_ms: 1_000 + i as i64,
        kind: "decision".into(),
        action: if i.is_multiple_of(2) {
            "viewer"
        } else {
            "editor"
        }
        .into(),
        resource: Some(format!("doc:{}", i % 5)),
        user: Some(format!("user:u{}", i % 3)),
        agent: Some("agent:bot".into()),
        actors: if i.is_multiple_of(4) {
            vec!["agent:helper".into()]
        } else {
            Vec::new()
        },
        allowed: Some(i.is_multiple_of(2)),
        detail: serde_json::json!({"reasons": [{"check": "user_holds", "detail": format!("Path {i} 100%")}]}),
        revision: Some(i as i64),
        ..Default::default()
    }
}

async fn all(db: &Db, org: &str) -> Vec<AuditRecord> {
    db.audit_page(org, 0, 100_000).await.unwrap()
}

async fn suite(db: Db) {
    // 8 writers x 25 batches of 1-5 records, across two organizations, at once.
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..8 {
        let db = db.clone();
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            // Each writer has its own idea of the chains' ends, as nodes do.
            let mut heads = std::collections::HashMap::new();
            for b in 0..25 {
                // Sizes 1..=5 (padded to 1, 2, 4 and 8 rows in the statement).
                let mut batch: Vec<Prepared> = (0..1 + (w + b) % 5)
                    .map(|k| {
                        let org = if (w + k) % 2 == 0 { "acme" } else { "globex" };
                        record(org, w * 1000 + b * 10 + k).into()
                    })
                    .collect();
                db.audit_append(&mut batch, &mut heads).await.unwrap();
                sent.fetch_add(batch.len(), std::sync::atomic::Ordering::Relaxed);
                assert!(
                    batch
                        .iter()
                        .all(|p| p.record.seq > 0 && p.record.hash == p.record.compute_hash())
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let acme = all(&db, "acme").await;
    let globex = all(&db, "globex").await;
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(acme.len() + globex.len(), sent);
    assert_eq!(verify(&acme, None).unwrap().unwrap().0, acme.len() as u64);
    assert_eq!(
        verify(&globex, None).unwrap().unwrap().0,
        globex.len() as u64
    );
    let head = db.audit_head("acme").await.unwrap().unwrap();
    assert_eq!(head, (acme.len() as u64, acme.last().unwrap().hash.clone()));

    // Queries.
    let q = |f: AuditFilter| {
        let db = db.clone();
        async move { db.audit_query("acme", &f, None, false, 1000).await.unwrap() }
    };
    let by_user = q(AuditFilter {
        user: Some("u1".into()),
        ..Default::default()
    })
    .await;
    assert!(!by_user.is_empty());
    assert!(by_user.iter().all(|r| r.user.as_deref() == Some("user:u1")));
    let actor = q(AuditFilter {
        actor: Some("helper".into()),
        ..Default::default()
    })
    .await;
    assert!(!actor.is_empty());
    assert!(
        actor
            .iter()
            .all(|r| r.actors == vec!["agent:helper".to_string()])
    );
    assert_eq!(
        q(AuditFilter {
            actor: Some("bot".into()),
            ..Default::default()
        })
        .await
        .len(),
        acme.len()
    );
    let denied_doc1 = q(AuditFilter {
        resource: Some("doc:1".into()),
        decision: Some("deny".into()),
        ..Default::default()
    })
    .await;
    assert!(!denied_doc1.is_empty());
    assert!(
        denied_doc1
            .iter()
            .all(|r| r.allowed == Some(false) && r.resource.as_deref() == Some("doc:1"))
    );
    // Free text is case-insensitive and `%` / `_` are literal.
    let text = q(AuditFilter {
        text: Some("path 10 100%".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(text.iter().all(|r| r.id.ends_with("-10")), "{text:?}");
    assert!(
        q(AuditFilter {
            text: Some("u_er".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    // An injection attempt is just text.
    assert!(
        q(AuditFilter {
            user: Some("x' OR '1'='1".into()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    // Cursor pagination, both directions.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = db
            .audit_query("acme", &AuditFilter::default(), cursor, false, 7)
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        cursor = Some(last.seq);
        seen.extend(page.iter().map(|r| r.seq));
    }
    assert_eq!(seen, (1..=acme.len() as u64).collect::<Vec<_>>());
    let newest = db
        .audit_query("acme", &AuditFilter::default(), None, true, 3)
        .await
        .unwrap();
    assert_eq!(newest[0].seq, acme.len() as u64);
    assert!(
        db.audit_query(
            "acme",
            &AuditFilter {
                decision: Some("maybe".into()),
                ..Default::default()
            },
            None,
            false,
            5
        )
        .await
        .is_err()
    );

    // Retention: cut after record 10 behind a signed checkpoint.
    let key = warden_oauth::keys::SigningKey::generate().unwrap();
    let (seq, hash) = (acme[9].seq, acme[9].hash.clone());
    let cut =
        Checkpoint::sign("acme", seq, &hash, 5, "cut", &key.kid, &key.encoding_key()).unwrap();
    assert_eq!(db.audit_prune(&cut).await.unwrap(), 10);
    let rest = all(&db, "acme").await;
    assert_eq!(rest[0].seq, 11);
    let anchor = db.audit_anchor("acme").await.unwrap().unwrap();
    anchor.verify(&[key.public_jwk()]).unwrap();
    assert!(verify(&rest, Some((anchor.seq, anchor.hash.clone()))).is_ok());
    // Appending goes on after the cut.
    let mut more = vec![record("acme", 99_999).into()];
    db.audit_append(&mut more, &mut Default::default())
        .await
        .unwrap();
    assert_eq!(more[0].record.seq, acme.len() as u64 + 1);
    // A batch larger than one statement holds is one transaction of several.
    let mut big: Vec<Prepared> = (0..1500)
        .map(|k| record("acme", 200_000 + k).into())
        .collect();
    db.audit_append(&mut big, &mut Default::default())
        .await
        .unwrap();
    let after = all(&db, "acme").await;
    assert_eq!(after.len(), rest.len() + 1 + 1500);
    assert_eq!(after.last().unwrap().seq, acme.len() as u64 + 1501);
    assert!(verify(&after, Some((anchor.seq, anchor.hash.clone()))).is_ok());

    // Delivery lease: one holder at a time; the cursor only moves forward.
    const A: &str = "https://siem-a.example.com/in";
    const B: &str = "https://siem-b.example.com/in";
    let lease = |node: &'static str, now: i64, url: &'static str| {
        let db = db.clone();
        async move {
            db.audit_sink_lease("acme", node, now, 30_000, url)
                .await
                .unwrap()
        }
    };
    assert_eq!(lease("n1", 1000, A).await, Some(0));
    assert_eq!(lease("n2", 2000, A).await, None);
    assert!(db.audit_sink_advance("acme", "n1", A, 5).await.unwrap());
    assert!(!db.audit_sink_advance("acme", "n2", A, 9).await.unwrap());
    assert!(!db.audit_sink_advance("acme", "n1", A, 3).await.unwrap());
    // After the lease expires, another node takes over where delivery stopped.
    assert_eq!(lease("n2", 40_000, A).await, Some(5));
    // The cursor is its URL's: another URL starts over, and a batch still meant for
    // the old one cannot move the new cursor.
    assert_eq!(lease("n2", 41_000, B).await, Some(0));
    assert!(!db.audit_sink_advance("acme", "n2", A, 7).await.unwrap());
    assert!(db.audit_sink_advance("acme", "n2", B, 2).await.unwrap());
    assert_eq!(db.audit_sink_delivered("acme", B).await.unwrap(), 2);
    assert_eq!(
        db.audit_sink_delivered("acme", A).await.unwrap(),
        0,
        "not A's cursor"
    );
}

#[tokio::test]
async fn audit_tables_on_sqlite() {
    let tdb = TestDb::sqlite();
    suite(Db::connect(&tdb.url).await.unwrap()).await;
}

/// The audit writer's own SQLite connection keeps the chain linear when another
/// writer (the pool, another process) appends to the same file in between: it reads
/// each chain's end under the write lock at every commit.
#[tokio::test]
async fn the_sqlite_appender_shares_the_chain_with_other_writers() {
    let t = TestDb::sqlite();
    let db = Db::connect(&t.url).await.unwrap();
    let mut appender = db.sqlite_appender().unwrap().expect("an SQLite file");
    let batch = |from: usize, n: usize| -> Vec<Prepared> {
        (from..from + n)
            .map(|i| Prepared::new(record("acme", i)))
            .collect()
    };
    let mut first = batch(0, 3);
    appender.append(&mut first).unwrap();
    assert_eq!(
        first.iter().map(|p| p.record.seq).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    // Another writer appends behind the appender's back.
    let mut heads = std::collections::HashMap::new();
    db.audit_append(&mut batch(3, 2), &mut heads).await.unwrap();
    let mut next = batch(5, 4);
    appender.append(&mut next).unwrap();
    assert_eq!(
        next[0].record.seq, 6,
        "sealed after the other writer's records"
    );
    let acme = all(&db, "acme").await;
    assert_eq!(acme.len(), 9);
    assert_eq!(verify(&acme, None).unwrap().unwrap().0, 9);
    assert_eq!(acme.last().unwrap().id, "acme-8");
    // A failure is an error, not a retry loop: here the table is gone.
    let mut other = db.sqlite_appender().unwrap().unwrap();
    other
        .append(&mut batch(9, 1))
        .expect("a second appender on the same file works too");
    drop(other);
    {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(&t.url).await.unwrap();
        sqlx::query("DROP TABLE audit_records")
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let err = appender.append(&mut batch(10, 2)).unwrap_err();
    assert!(err.to_string().contains("audit_records"), "{err}");
    // Opening checks: no file is created, and a file without the table is refused
    // (the server then writes through the pool).
    let missing = std::env::temp_dir().join(format!("warden-no-such-{}.db", std::process::id()));
    assert!(warden_storage::SqliteAppender::open(&missing).is_err());
    assert!(!missing.exists());
    assert!(db.sqlite_appender().is_err(), "the table was dropped above");
    // PostgreSQL and in-memory databases have no appender (the pool writes).
    let memory = Db::connect("sqlite::memory:").await.unwrap();
    assert!(memory.sqlite_appender().unwrap().is_none());
}

/// Two nodes on PostgreSQL: A's cached chain end goes stale while B appends, then
/// retention removes every record (so nothing is left for A's insert to conflict
/// with). A must still chain after the cut, not fork from its stale end.
#[tokio::test]
async fn a_stale_writer_chains_after_a_retention_cut_on_postgres() {
    let Some(tdb) = TestDb::postgres().await else {
        return;
    };
    let db = Db::connect(&tdb.url).await.unwrap();
    let (mut a, mut b) = (Default::default(), Default::default());
    let mut first: Vec<Prepared> = (0..3).map(|i| record("acme", i).into()).collect();
    db.audit_append(&mut first, &mut a).await.unwrap();
    let mut second: Vec<Prepared> = (3..5).map(|i| record("acme", i).into()).collect();
    db.audit_append(&mut second, &mut b).await.unwrap();
    let end = &second[1].record;
    assert_eq!(end.seq, 5);
    let key = warden_oauth::keys::SigningKey::generate().unwrap();
    let cut = Checkpoint::sign(
        "acme",
        5,
        &end.hash,
        5,
        "cut",
        &key.kid,
        &key.encoding_key(),
    )
    .unwrap();
    assert_eq!(db.audit_prune(&cut).await.unwrap(), 5);
    let mut late = vec![record("acme", 9).into()];
    db.audit_append(&mut late, &mut a).await.unwrap();
    let late: &Prepared = &late[0];
    assert_eq!(
        late.record.seq, 6,
        "after the cut, not after A's stale end (3)"
    );
    assert_eq!(late.record.prev_hash, end.hash);
    let rest = all(&db, "acme").await;
    assert_eq!(rest.len(), 1);
    assert!(verify(&rest, Some((5, end.hash.clone()))).is_ok());
}

#[tokio::test]
async fn audit_tables_on_postgres() {
    let Some(tdb) = TestDb::postgres().await else {
        return;
    };
    suite(Db::connect(&tdb.url).await.unwrap()).await;
}

/// Not a test: how long appends take (`cargo test --release -p warden-storage --test
/// audit -- --ignored --nocapture append_timing`).
#[tokio::test]
#[ignore]
async fn append_timing() {
    let tdb = TestDb::sqlite();
    let db = Db::connect(&tdb.url).await.unwrap();
    let mut heads = std::collections::HashMap::new();
    for size in [1usize, 8, 32, 128, 512] {
        let started = std::time::Instant::now();
        let rounds = 200;
        for i in 0..rounds {
            let mut batch: Vec<Prepared> = (0..size)
                .map(|k| record("acme", i * 1000 + k).into())
                .collect();
            db.audit_append(&mut batch, &mut heads).await.unwrap();
        }
        let per = started.elapsed() / rounds as u32;
        println!(
            "batch {size}: {per:?} per commit, {:.0} records/s",
            size as f64 / per.as_secs_f64()
        );
    }
    // Varying sizes, as a server's group commits have.
    let started = std::time::Instant::now();
    let mut n = 0;
    for i in 0..200usize {
        let size = 1 + (i * 7919) % 200;
        n += size;
        let mut batch: Vec<Prepared> = (0..size)
            .map(|k| record("acme", i * 1000 + k).into())
            .collect();
        db.audit_append(&mut batch, &mut heads).await.unwrap();
    }
    let took = started.elapsed();
    println!(
        "varying 1-200: {:?} per commit, {:.0} records/s",
        took / 200,
        n as f64 / took.as_secs_f64()
    );
}
