//! The audit log's tables: records (one chain per organization), signed
//! checkpoints, and the delivery cursors of webhook sinks.
//!
//! [`Db::audit_append`] seals and stores a batch of records with one statement (one
//! commit, one fsync for all of them: an insert of one array per column on PostgreSQL,
//! a multi-row insert on SQLite), chaining them after each organization's
//! last record. The primary key `(org_id, seq)` keeps each chain linear when several
//! writers share the database: a writer whose idea of the chain's end is stale fails
//! on it, reads the end again and retries.

use serde::Deserialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use warden_audit::{AuditRecord, Checkpoint, GENESIS, Prepared};

use crate::{Db, Result, StorageError};

/// Columns of `audit_records`, in insert order; a macro so that the statements below
/// are spelled out once, at compile time.
macro_rules! columns {
    () => {
        "org_id, seq, id, time_ms, kind, action, resource, subject, user_id, agent_id, \
         actors, jti, client_id, caller, allowed, detail, model_id, revision, approval_id, \
         refers_to, request_id, client_addr, prev_hash, hash"
    };
}
const COLUMNS: &str = columns!();
const NCOLS: usize = 24;
/// Most rows per insert statement (24 x 1024 bound parameters, within SQLite's 32,766
/// and PostgreSQL's 65,535).
const MAX_ROWS: usize = 1024;

/// Columns bound as integers (the rest are text), by position in [`COLUMNS`].
const INT_COLUMNS: [usize; 4] = [1, 3, 14, 17];

/// The insert statement for up to `2^size_log2` rows. Only these few texts exist (one
/// per power of two up to [`MAX_ROWS`]), so they stay prepared in each connection's
/// statement cache; rows beyond the batch are bound as NULLs and filtered out. One
/// statement per commit means one round trip to the database, and it runs as its
/// own transaction.
fn insert_sql(backend: crate::Backend, size_log2: u32) -> &'static str {
    use std::sync::OnceLock;
    const SIZES: usize = MAX_ROWS.ilog2() as usize + 1;
    static SQLITE: [OnceLock<String>; SIZES] = [const { OnceLock::new() }; SIZES];
    static POSTGRES: [OnceLock<String>; SIZES] = [const { OnceLock::new() }; SIZES];
    let cache = match backend {
        crate::Backend::Sqlite => &SQLITE,
        crate::Backend::Postgres => &POSTGRES,
    };
    cache[size_log2 as usize].get_or_init(|| {
        let rows = 1usize << size_log2;
        let mut sql = format!("INSERT INTO audit_records ({COLUMNS}) SELECT * FROM (VALUES ");
        for i in 0..rows {
            if i > 0 {
                sql.push(',');
            }
            sql.push('(');
            for c in 0..NCOLS {
                if c > 0 {
                    sql.push(',');
                }
                // SQLite takes `$N` as a *named* parameter and looks each name up by a
                // linear scan; plain `?` binds in order, in constant time.
                match backend {
                    crate::Backend::Sqlite => sql.push('?'),
                    crate::Backend::Postgres => sql.push_str(&format!("${}", i * NCOLS + c + 1)),
                }
            }
            sql.push(')');
        }
        // `column1` is the organization, never NULL in a real row.
        sql.push_str(") AS v WHERE column1 IS NOT NULL");
        sql
    })
}

/// An insert of `rows` (at most [`MAX_ROWS`]), padded to a power of two.
fn insert_statement(
    backend: crate::Backend,
    rows: &[&Prepared],
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let size_log2 = rows.len().max(1).next_power_of_two().ilog2();
    // Only placeholders are spliced in; every value is bound.
    let mut q = sqlx::query(sqlx::AssertSqlSafe(insert_sql(backend, size_log2)));
    for p in rows {
        let r = &p.record;
        q = q
            .bind(r.org.clone())
            .bind(r.seq as i64)
            .bind(r.id.clone())
            .bind(r.time_ms)
            .bind(r.kind.clone())
            .bind(r.action.clone())
            .bind(r.resource.clone())
            .bind(r.subject.clone())
            .bind(r.user.clone())
            .bind(r.agent.clone())
            .bind(p.actors_json.clone())
            .bind(r.jti.clone())
            .bind(r.client_id.clone())
            .bind(r.caller.clone())
            .bind(r.allowed.map(i64::from))
            .bind(p.detail_json.clone())
            .bind(r.model_id.clone())
            .bind(r.revision)
            .bind(r.approval_id.clone())
            .bind(r.refers_to.clone())
            .bind(r.request_id.clone())
            .bind(r.client_addr.clone())
            .bind(r.prev_hash.clone())
            .bind(r.hash.clone());
    }
    // Padding, typed like the columns (PostgreSQL unifies each VALUES column's type).
    for _ in rows.len()..1 << size_log2 {
        for c in 0..NCOLS {
            q = if INT_COLUMNS.contains(&c) {
                q.bind(None::<i64>)
            } else {
                q.bind(None::<String>)
            };
        }
    }
    q
}

/// The insert of a batch on PostgreSQL: one array per column, unnested into rows.
/// The statement has 26 parameters whatever the batch size, so it is prepared once and
/// PostgreSQL reads each column as one value instead of binding one per row and column.
/// The last two are each chain's expected end (organizations and sequence numbers):
/// if any chain ends elsewhere, nothing is inserted.
const UNNEST_INSERT: &str = concat!(
    "INSERT INTO audit_records (",
    columns!(),
    ") SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::int8[], $5::text[], \
     $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], \
     $13::text[], $14::text[], $15::int8[], $16::text[], $17::text[], $18::int8[], \
     $19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[]) \
     WHERE NOT EXISTS (SELECT 1 FROM unnest($25::text[], $26::int8[]) AS h(org, seq) \
     WHERE COALESCE((SELECT max(a.seq) FROM audit_records a WHERE a.org_id = h.org), \
     (SELECT max(c.seq) FROM audit_checkpoints c WHERE c.org_id = h.org AND c.kind = 'cut'), \
     0) <> h.seq)"
);

/// The insert of one record with numbered parameters (SQLite's own connection,
/// [`SqliteAppender`](crate::SqliteAppender)).
pub(crate) const ONE_ROW_INSERT: &str = concat!(
    "INSERT INTO audit_records (",
    columns!(),
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
     ?18, ?19, ?20, ?21, ?22, ?23, ?24)"
);

/// A chain's last record (`seq`, `hash`); `$1` is the organization.
pub(crate) const LAST_RECORD: &str =
    "SELECT seq, hash FROM audit_records WHERE org_id = $1 ORDER BY seq DESC LIMIT 1";
/// A chain's last retention cut (a checkpoint row); `$1` is the organization. With
/// [`LAST_RECORD`], where a chain ends: its last record, else its last cut.
pub(crate) const LAST_CUT: &str = "SELECT * FROM audit_checkpoints WHERE org_id = $1 \
    AND kind = 'cut' ORDER BY seq DESC LIMIT 1";

/// Chains `batch` after each organization's end in `heads`, in batch order, and moves
/// those ends past it. Every organization of the batch must be in `heads`.
pub(crate) fn seal_after(
    batch: &mut [Prepared],
    heads: &mut std::collections::HashMap<String, (u64, String)>,
) {
    for p in batch.iter_mut() {
        if let Some(head) = heads.get_mut(&p.record.org) {
            p.seal((head.0 > 0).then_some((head.0, head.1.as_str())));
            head.0 = p.record.seq;
            head.1.clone_from(&p.record.hash);
        }
    }
}

/// Stores sealed rows on PostgreSQL in one statement (so one transaction: all rows or
/// none), through the native pool, if every chain ends where `expected` says; returns
/// whether it did.
async fn unnest_records(
    pg: &sqlx::PgPool,
    rows: &[&Prepared],
    expected: &[(&str, i64)],
) -> Result<bool> {
    let text = |f: fn(&Prepared) -> Option<&str>| -> Vec<Option<&str>> {
        rows.iter().map(|p| f(p)).collect()
    };
    let int = |f: fn(&Prepared) -> Option<i64>| -> Vec<Option<i64>> {
        rows.iter().map(|p| f(p)).collect()
    };
    let done = sqlx::query(UNNEST_INSERT)
        .bind(text(|p| Some(&p.record.org)))
        .bind(int(|p| i64::try_from(p.record.seq).ok()))
        .bind(text(|p| Some(&p.record.id)))
        .bind(int(|p| Some(p.record.time_ms)))
        .bind(text(|p| Some(&p.record.kind)))
        .bind(text(|p| Some(&p.record.action)))
        .bind(text(|p| p.record.resource.as_deref()))
        .bind(text(|p| p.record.subject.as_deref()))
        .bind(text(|p| p.record.user.as_deref()))
        .bind(text(|p| p.record.agent.as_deref()))
        .bind(text(|p| p.actors_json.as_deref()))
        .bind(text(|p| p.record.jti.as_deref()))
        .bind(text(|p| p.record.client_id.as_deref()))
        .bind(text(|p| p.record.caller.as_deref()))
        .bind(int(|p| p.record.allowed.map(i64::from)))
        .bind(text(|p| Some(&p.detail_json)))
        .bind(text(|p| p.record.model_id.as_deref()))
        .bind(int(|p| p.record.revision))
        .bind(text(|p| p.record.approval_id.as_deref()))
        .bind(text(|p| p.record.refers_to.as_deref()))
        .bind(text(|p| p.record.request_id.as_deref()))
        .bind(text(|p| p.record.client_addr.as_deref()))
        .bind(text(|p| Some(&p.record.prev_hash)))
        .bind(text(|p| Some(&p.record.hash)))
        .bind(expected.iter().map(|e| e.0).collect::<Vec<&str>>())
        .bind(expected.iter().map(|e| e.1).collect::<Vec<i64>>())
        .execute(pg)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Which records a query returns; every field is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// From this time on (milliseconds since the epoch, inclusive).
    pub from_ms: Option<i64>,
    /// Before this time (exclusive).
    pub to_ms: Option<i64>,
    /// The initiating user (`user:anne` or `anne`).
    pub user: Option<String>,
    /// The acting agent (`agent:bot` or `bot`).
    pub agent: Option<String>,
    /// An agent anywhere in the delegation chain: the acting agent or a further actor.
    pub actor: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
    /// `decision`, `change` or `outcome`.
    pub kind: Option<String>,
    /// `allow` or `deny` (decisions only).
    pub decision: Option<String>,
    /// Free text in the reasons / details (case-insensitive).
    pub text: Option<String>,
    /// Outcome reports of this decision id.
    pub refers_to: Option<String>,
    /// A record id (a decision id).
    pub id: Option<String>,
}

/// `LIKE` pattern matching `s` anywhere, with `\` escaping the wildcards.
fn contains_pattern(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    p.push('%');
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// PostgreSQL gave up one of two writers waiting on each other.
fn is_deadlock(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.code().as_deref() == Some("40P01"))
}

fn typed(prefix: &str, v: &str) -> String {
    if v.contains(':') {
        v.to_string()
    } else {
        format!("{prefix}:{v}")
    }
}

fn record_from(row: &AnyRow) -> Result<AuditRecord> {
    let text = |c: &str| -> Result<Option<String>> { Ok(row.try_get::<Option<String>, _>(c)?) };
    let json = |c: &str| -> Result<serde_json::Value> {
        // A value that no longer parses was tampered with: keep it as text so that
        // verification reports the record, instead of failing to read it.
        Ok(match text(c)? {
            None => serde_json::Value::Null,
            Some(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s)),
        })
    };
    let actors = match json("actors")? {
        serde_json::Value::Array(a) => a
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        serde_json::Value::Null => Vec::new(),
        other => vec![other.to_string()],
    };
    Ok(AuditRecord {
        org: row.try_get("org_id")?,
        seq: row.try_get::<i64, _>("seq")?.max(0) as u64,
        id: row.try_get("id")?,
        time_ms: row.try_get("time_ms")?,
        kind: row.try_get("kind")?,
        action: row.try_get("action")?,
        resource: text("resource")?,
        subject: text("subject")?,
        user: text("user_id")?,
        agent: text("agent_id")?,
        actors,
        jti: text("jti")?,
        client_id: text("client_id")?,
        caller: text("caller")?,
        allowed: row.try_get::<Option<i64>, _>("allowed")?.map(|v| v != 0),
        detail: json("detail")?,
        model_id: text("model_id")?,
        revision: row.try_get("revision")?,
        approval_id: text("approval_id")?,
        refers_to: text("refers_to")?,
        request_id: text("request_id")?,
        client_addr: text("client_addr")?,
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

/// A row's `(seq, hash)`.
fn seq_hash(row: &AnyRow) -> Result<(u64, String)> {
    Ok((
        row.try_get::<i64, _>("seq")?.max(0) as u64,
        row.try_get("hash")?,
    ))
}

/// Stores a signed checkpoint; a second one for the same position is ignored.
fn insert_checkpoint(
    cp: &Checkpoint,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    sqlx::query(
        "INSERT INTO audit_checkpoints (org_id, seq, kind, hash, time_ms, jws) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (org_id, seq, kind) DO NOTHING",
    )
    .bind(cp.org.clone())
    .bind(cp.seq as i64)
    .bind(cp.kind.clone())
    .bind(cp.hash.clone())
    .bind(cp.time_ms)
    .bind(cp.jws.clone())
}

fn checkpoint_from(row: &AnyRow) -> Result<Checkpoint> {
    Ok(Checkpoint {
        org: row.try_get("org_id")?,
        seq: row.try_get::<i64, _>("seq")?.max(0) as u64,
        hash: row.try_get("hash")?,
        time_ms: row.try_get("time_ms")?,
        kind: row.try_get("kind")?,
        jws: row.try_get("jws")?,
    })
}

impl Db {
    /// Seals `batch` into the organizations' chains and stores it in one atomic
    /// statement (one commit, one fsync for all of them): either every record is
    /// durable when this returns `Ok`, or none. On return each record carries its
    /// `seq`, `prev_hash` and `hash`.
    ///
    /// `heads` caches each chain's last (seq, hash) between calls, so an append is a
    /// single round trip to the database. The cache is checked by the primary key: if
    /// another writer (a node sharing PostgreSQL, another process on the SQLite file)
    /// took a sequence number first, the insert fails as a whole, the heads are read
    /// again and the batch is sealed anew. On PostgreSQL the insert also checks each
    /// chain's end itself, which covers a stale cache whose conflicting records
    /// retention has removed since.
    pub async fn audit_append(
        &self,
        batch: &mut [Prepared],
        heads: &mut std::collections::HashMap<String, (u64, String)>,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut orgs: Vec<String> = batch.iter().map(|p| p.record.org.clone()).collect();
        orgs.sort();
        orgs.dedup();
        let mut attempt = 0;
        loop {
            attempt += 1;
            for org in &orgs {
                if !heads.contains_key(org) {
                    let head = self
                        .audit_head_on(self.audit_pool(), org)
                        .await?
                        .unwrap_or((0, GENESIS.to_string()));
                    heads.insert(org.clone(), head);
                }
            }
            let mut next = heads.clone();
            seal_after(batch, &mut next);
            let expected: Vec<(&str, i64)> = orgs
                .iter()
                .map(|o| (o.as_str(), heads.get(o).map_or(0, |h| h.0 as i64)))
                .collect();
            // Whether to try again: the chains moved and attempts remain.
            let moved = match self.insert_records(batch, &expected).await {
                Ok(true) => {
                    *heads = next;
                    return Ok(());
                }
                // A chain's end is not where this batch was sealed (another writer
                // appended, and retention removed what would have conflicted).
                Ok(false) => attempt < 100,
                Err(StorageError::Database(e))
                    if (StorageError::is_unique_violation(&e) || is_deadlock(&e))
                        && attempt < 100 =>
                {
                    true
                }
                Err(e) => {
                    for org in &orgs {
                        heads.remove(org);
                    }
                    return Err(e);
                }
            };
            // Someone else appended: read the heads again, after a short random pause
            // so that racing writers spread out.
            for org in &orgs {
                heads.remove(org);
            }
            if !moved {
                return Err(StorageError::Invalid(
                    "the audit chain kept moving: 100 attempts to append failed".into(),
                ));
            }
            let pause = rand::random::<u64>() % (200 * attempt.min(10));
            tokio::time::sleep(std::time::Duration::from_micros(pause)).await;
        }
    }

    /// Inserts sealed records in one commit: one statement when they fit in one
    /// (always, for the server's writer), else one transaction. On PostgreSQL the
    /// statement also checks that each chain still ends at `expected` (its last
    /// sequence number, or the retention cut's, or 0) and inserts nothing otherwise:
    /// `Ok(false)`. The primary key alone misses one case: a node whose cached end is
    /// stale while retention removed every record after it.
    async fn insert_records(&self, batch: &[Prepared], expected: &[(&str, i64)]) -> Result<bool> {
        // Rows in one order for every writer, so that two writers racing for the same
        // sequence numbers conflict instead of deadlocking on each other's keys.
        let mut rows: Vec<&Prepared> = batch.iter().collect();
        rows.sort_by(|a, b| (&a.record.org, a.record.seq).cmp(&(&b.record.org, b.record.seq)));
        if let Some(pg) = self.audit_pg_pool() {
            return unnest_records(pg, &rows, expected).await;
        }
        if rows.len() <= MAX_ROWS {
            insert_statement(self.backend(), &rows)
                .execute(self.audit_pool())
                .await?;
            return Ok(true);
        }
        let mut tx = match self.backend() {
            crate::Backend::Sqlite => self.audit_pool().begin_with("BEGIN IMMEDIATE").await?,
            crate::Backend::Postgres => self.audit_pool().begin().await?,
        };
        for chunk in rows.chunks(MAX_ROWS) {
            insert_statement(self.backend(), chunk)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records matching `filter`, in chain order, after the cursor `after_seq`
    /// (newest first with `descending`, before the cursor).
    pub async fn audit_query(
        &self,
        org: &str,
        filter: &AuditFilter,
        cursor: Option<u64>,
        descending: bool,
        limit: u32,
    ) -> Result<Vec<AuditRecord>> {
        /// A bound value, in placeholder order.
        enum Arg {
            Text(String),
            Int(i64),
        }
        let mut sql = String::from("SELECT * FROM audit_records WHERE org_id = $1");
        let mut args = vec![Arg::Text(org.to_string())];
        // Appends `clause` with its `$?` numbered as the next placeholder.
        let mut push = |sql: &mut String, clause: &str, v: Arg| {
            args.push(v);
            sql.push_str(&clause.replace("$?", &format!("${}", args.len())));
        };
        if let Some(v) = &filter.user {
            push(&mut sql, " AND user_id = $?", Arg::Text(typed("user", v)));
        }
        if let Some(v) = &filter.agent {
            push(&mut sql, " AND agent_id = $?", Arg::Text(typed("agent", v)));
        }
        if let Some(v) = &filter.actor {
            let a = typed("agent", v);
            let pattern = contains_pattern(&format!("\"{a}\""));
            push(&mut sql, " AND (agent_id = $?", Arg::Text(a));
            push(
                &mut sql,
                " OR actors LIKE $? ESCAPE '\\')",
                Arg::Text(pattern),
            );
        }
        for (column, value) in [
            ("resource", &filter.resource),
            ("action", &filter.action),
            ("kind", &filter.kind),
            ("refers_to", &filter.refers_to),
            ("id", &filter.id),
        ] {
            if let Some(v) = value {
                push(
                    &mut sql,
                    &format!(" AND {column} = $?"),
                    Arg::Text(v.clone()),
                );
            }
        }
        if let Some(v) = &filter.text {
            let pattern = contains_pattern(&v.to_lowercase());
            push(
                &mut sql,
                " AND LOWER(detail) LIKE $? ESCAPE '\\'",
                Arg::Text(pattern),
            );
        }
        match filter.decision.as_deref() {
            None => {}
            Some("allow") => sql.push_str(" AND allowed = 1"),
            Some("deny") => sql.push_str(" AND allowed = 0"),
            Some(other) => {
                return Err(StorageError::Invalid(format!(
                    "decision must be `allow` or `deny`, not `{other}`"
                )));
            }
        }
        if let Some(v) = filter.from_ms {
            push(&mut sql, " AND time_ms >= $?", Arg::Int(v));
        }
        if let Some(v) = filter.to_ms {
            push(&mut sql, " AND time_ms < $?", Arg::Int(v));
        }
        if let Some(c) = cursor {
            let c = Arg::Int(i64::try_from(c).unwrap_or(i64::MAX));
            push(
                &mut sql,
                if descending {
                    " AND seq < $?"
                } else {
                    " AND seq > $?"
                },
                c,
            );
        }
        sql.push_str(if descending {
            " ORDER BY seq DESC"
        } else {
            " ORDER BY seq"
        });
        push(&mut sql, " LIMIT $?", Arg::Int(i64::from(limit)));
        // Only fixed clauses, column names from the list above and placeholders are
        // spliced in; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = match a {
                Arg::Text(v) => q.bind(v),
                Arg::Int(v) => q.bind(v),
            };
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(record_from).collect()
    }

    /// The outcome reports of these decisions.
    pub async fn audit_outcomes(&self, org: &str, ids: &[String]) -> Result<Vec<AuditRecord>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let marks: Vec<String> = (0..ids.len()).map(|i| format!("${}", i + 2)).collect();
        let sql = format!(
            "SELECT * FROM audit_records WHERE org_id = $1 AND kind = 'outcome' \
             AND refers_to IN ({}) ORDER BY seq",
            marks.join(",")
        );
        // Only placeholders are spliced in.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(org);
        for id in ids {
            q = q.bind(id.clone());
        }
        let rows = q.fetch_all(self.pool()).await?;
        rows.iter().map(record_from).collect()
    }

    /// The whole chain in order, a page at a time (for export and verification).
    pub async fn audit_page(
        &self,
        org: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_records WHERE org_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(org)
        .bind(after_seq as i64)
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(record_from).collect()
    }

    /// The end of `org`'s chain: its last record's (seq, hash), or, when retention
    /// removed every record, the cut it starts after; `None` for an empty chain.
    pub async fn audit_head(&self, org: &str) -> Result<Option<(u64, String)>> {
        self.audit_head_on(self.pool(), org).await
    }

    async fn audit_head_on(
        &self,
        pool: &sqlx::AnyPool,
        org: &str,
    ) -> Result<Option<(u64, String)>> {
        let row = sqlx::query(LAST_RECORD)
            .bind(org)
            .fetch_optional(pool)
            .await?;
        if let Some(r) = row {
            return seq_hash(&r).map(Some);
        }
        Ok(self
            .audit_anchor_on(pool, org)
            .await?
            .map(|a| (a.seq, a.hash)))
    }

    /// Stores a signed checkpoint (a second one for the same position is ignored).
    pub async fn audit_add_checkpoint(&self, cp: &Checkpoint) -> Result<()> {
        insert_checkpoint(cp).execute(self.pool()).await?;
        Ok(())
    }

    /// The organization's checkpoints, oldest first.
    pub async fn audit_checkpoints(&self, org: &str) -> Result<Vec<Checkpoint>> {
        let rows =
            sqlx::query("SELECT * FROM audit_checkpoints WHERE org_id = $1 ORDER BY seq, kind")
                .bind(org)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(checkpoint_from).collect()
    }

    /// The checkpoint of `org` at the highest position, as (seq, hash).
    pub async fn audit_last_checkpoint(&self, org: &str) -> Result<Option<(u64, String)>> {
        let row = sqlx::query(
            "SELECT seq, hash FROM audit_checkpoints WHERE org_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(org)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(seq_hash).transpose()
    }

    /// The hash of `org`'s record `seq`, if it is stored.
    pub async fn audit_record_hash(&self, org: &str, seq: u64) -> Result<Option<String>> {
        let row = sqlx::query("SELECT hash FROM audit_records WHERE org_id = $1 AND seq = $2")
            .bind(org)
            .bind(i64::try_from(seq).unwrap_or(i64::MAX))
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| r.try_get("hash")).transpose()?)
    }

    /// The last record written before `before_ms` (where retention cuts).
    pub async fn audit_cut_point(
        &self,
        org: &str,
        before_ms: i64,
    ) -> Result<Option<(u64, String)>> {
        let row = sqlx::query(
            "SELECT seq, hash FROM audit_records WHERE org_id = $1 AND time_ms < $2 \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(org)
        .bind(before_ms)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(seq_hash).transpose()
    }

    /// Removes the records up to the signed `cut` checkpoint and the checkpoints
    /// before it, storing the cut, in one transaction. Returns how many records went.
    pub async fn audit_prune(&self, cut: &Checkpoint) -> Result<u64> {
        if cut.kind != "cut" {
            return Err(StorageError::Invalid(
                "retention needs a cut checkpoint".into(),
            ));
        }
        let mut tx = self.begin_write().await?;
        insert_checkpoint(cut).execute(&mut *tx).await?;
        let removed = sqlx::query("DELETE FROM audit_records WHERE org_id = $1 AND seq <= $2")
            .bind(cut.org.clone())
            .bind(cut.seq as i64)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM audit_checkpoints WHERE org_id = $1 AND seq < $2")
            .bind(cut.org.clone())
            .bind(cut.seq as i64)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// The cut the retained log starts after, if retention has removed records.
    pub async fn audit_anchor(&self, org: &str) -> Result<Option<Checkpoint>> {
        self.audit_anchor_on(self.pool(), org).await
    }

    async fn audit_anchor_on(&self, pool: &sqlx::AnyPool, org: &str) -> Result<Option<Checkpoint>> {
        let row = sqlx::query(LAST_CUT).bind(org).fetch_optional(pool).await?;
        row.as_ref().map(checkpoint_from).transpose()
    }

    /// Takes (or renews) the right to deliver `org`'s records to the webhook at `url`
    /// for `ttl_ms`, if no other node holds it; returns the last sequence number that
    /// webhook acknowledged. The cursor belongs to its URL: a lease for another URL
    /// starts it over at 0 (the new receiver has seen nothing), in the same statement,
    /// so no batch meant for the old URL can move it after that. Several nodes may run
    /// delivery: one delivers at a time.
    pub async fn audit_sink_lease(
        &self,
        org: &str,
        owner: &str,
        now_ms: i64,
        ttl_ms: i64,
        url: &str,
    ) -> Result<Option<u64>> {
        sqlx::query(
            "INSERT INTO audit_sinks (org_id, delivered_seq, lease_owner, lease_until, url) \
             VALUES ($1, 0, NULL, 0, $2) ON CONFLICT (org_id) DO NOTHING",
        )
        .bind(org)
        .bind(url)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(
            "UPDATE audit_sinks SET lease_owner = $1, lease_until = $2, \
             delivered_seq = CASE WHEN url IS NULL OR url = $3 THEN delivered_seq ELSE 0 END, \
             url = $3 \
             WHERE org_id = $4 AND (lease_owner = $1 OR lease_owner IS NULL OR lease_until < $5) \
             RETURNING delivered_seq",
        )
        .bind(owner)
        .bind(now_ms + ttl_ms)
        .bind(url)
        .bind(org)
        .bind(now_ms)
        .fetch_optional(self.pool())
        .await?;
        row.map(|r| Ok(r.try_get::<i64, _>("delivered_seq")?.max(0) as u64))
            .transpose()
    }

    /// The last sequence number the webhook at `url` acknowledged (0: none, or the
    /// cursor is another URL's).
    pub async fn audit_sink_delivered(&self, org: &str, url: &str) -> Result<u64> {
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT delivered_seq FROM audit_sinks WHERE org_id = $1 AND (url IS NULL OR url = $2)",
        )
        .bind(org)
        .bind(url)
        .fetch_optional(self.pool())
        .await?;
        Ok(v.unwrap_or(0).max(0) as u64)
    }

    /// Gives up every delivery lease `owner` holds (a node shutting down), so another
    /// node, or this one restarted, takes over at once.
    pub async fn audit_sink_release(&self, owner: &str) -> Result<()> {
        sqlx::query(
            "UPDATE audit_sinks SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Records that the webhook at `url` acknowledged everything up to `seq` (only the
    /// lease holder can, only while the cursor is that URL's; it never moves back).
    pub async fn audit_sink_advance(
        &self,
        org: &str,
        owner: &str,
        url: &str,
        seq: u64,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE audit_sinks SET delivered_seq = $1 \
             WHERE org_id = $2 AND lease_owner = $3 AND url = $4 AND delivered_seq < $1",
        )
        .bind(seq as i64)
        .bind(org)
        .bind(owner)
        .bind(url)
        .execute(self.pool())
        .await?
        .rows_affected();
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_escape_wildcards() {
        assert_eq!(contains_pattern("a%b_c\\"), "%a\\%b\\_c\\\\%");
        assert_eq!(typed("user", "anne"), "user:anne");
        assert_eq!(typed("user", "user:anne"), "user:anne");
    }
}
