//! The audit writer's own connection to an SQLite database file.
//!
//! The async pool hands every statement to a worker thread and back; for the audit
//! log, which commits hundreds of small batches a second, those hand-offs cost more
//! than the inserts. [`SqliteAppender`] instead holds a plain blocking connection,
//! meant for the one thread that writes audit records: a group commit is `BEGIN
//! IMMEDIATE`, one cached insert per record, `COMMIT`, with no thread in between.
//!
//! The chain rules are those of [`Db::audit_append`](crate::Db::audit_append): each
//! organization's last `(seq, hash)` is cached, a batch is sealed after it, and a
//! primary-key conflict (another process appended to the same file) reloads the heads
//! and seals again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};
use warden_audit::{GENESIS, Prepared};

use crate::{Result, StorageError};

/// The insert of one record (columns as in the `audit_records` table).
const INSERT: &str = "INSERT INTO audit_records (org_id, seq, id, time_ms, kind, action, \
    resource, subject, user_id, agent_id, actors, jti, client_id, caller, allowed, detail, \
    model_id, revision, approval_id, refers_to, request_id, client_addr, prev_hash, hash) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
    ?18, ?19, ?20, ?21, ?22, ?23, ?24)";

/// A blocking audit appender on an SQLite database file. Not `Sync`: one thread owns it.
pub struct SqliteAppender {
    conn: Connection,
    path: PathBuf,
    /// Each chain's last (seq, hash), so that sealing needs no read.
    heads: HashMap<String, (u64, String)>,
}

impl std::fmt::Debug for SqliteAppender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteAppender")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

fn embedded(e: rusqlite::Error) -> StorageError {
    StorageError::Embedded(e.to_string())
}

impl SqliteAppender {
    /// Opens the database file at `path`, which must already hold Warden's tables.
    pub fn open(path: &Path) -> Result<SqliteAppender> {
        let conn = Connection::open(path).map_err(embedded)?;
        conn.busy_timeout(Duration::from_secs(10))
            .map_err(embedded)?;
        // The same durability as every other connection: WAL, and an fsync of the
        // log at every commit. A small page cache: appends touch only the right edges
        // of a few B-trees, and SQLite walks its whole cache at every commit.
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-2048; \
             PRAGMA wal_autocheckpoint=2000;",
        )
        .map_err(embedded)?;
        conn.set_prepared_statement_cache_capacity(8);
        Ok(SqliteAppender {
            conn,
            path: path.to_path_buf(),
            heads: HashMap::new(),
        })
    }

    /// Seals `batch` into the organizations' chains and commits it in one
    /// transaction (one fsync): every record is durable when this returns `Ok`, or
    /// none is. On return each record carries its `seq`, `prev_hash` and `hash`.
    pub fn append(&mut self, batch: &mut [Prepared]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut orgs: Vec<String> = batch.iter().map(|p| p.record.org.clone()).collect();
        orgs.sort();
        orgs.dedup();
        let mut attempt = 0u64;
        loop {
            attempt += 1;
            let result = self.try_append(batch, &orgs);
            match result {
                Ok(next) => {
                    self.heads = next;
                    return Ok(());
                }
                Err(e) => {
                    // Whatever happened, the cached heads may be wrong now.
                    for org in &orgs {
                        self.heads.remove(org);
                    }
                    let conflict = matches!(
                        &e,
                        rusqlite::Error::SqliteFailure(f, _)
                            if f.code == ErrorCode::ConstraintViolation
                    );
                    if !conflict || attempt >= 100 {
                        return Err(embedded(e));
                    }
                    // Someone else appended: read the heads again after a short
                    // random pause, so that racing writers spread out.
                    let pause = rand::random::<u64>() % (200 * attempt.min(10));
                    std::thread::sleep(Duration::from_micros(pause));
                }
            }
        }
    }

    /// One attempt: seals after the (possibly reloaded) heads and commits. Returns
    /// the heads after the batch.
    fn try_append(
        &mut self,
        batch: &mut [Prepared],
        orgs: &[String],
    ) -> std::result::Result<HashMap<String, (u64, String)>, rusqlite::Error> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        // Heads are read inside the write transaction, so no other writer can move
        // them before this batch commits.
        for org in orgs {
            if !self.heads.contains_key(org) {
                let head = read_head(&tx, org)?.unwrap_or((0, GENESIS.to_string()));
                self.heads.insert(org.clone(), head);
            }
        }
        let mut next = self.heads.clone();
        for p in batch.iter_mut() {
            if let Some(head) = next.get_mut(&p.record.org) {
                p.seal((head.0 > 0).then_some((head.0, head.1.as_str())));
                *head = (p.record.seq, p.record.hash.clone());
            }
        }
        {
            let mut stmt = tx.prepare_cached(INSERT)?;
            for p in batch.iter() {
                let r = &p.record;
                stmt.execute(params![
                    r.org,
                    r.seq as i64,
                    r.id,
                    r.time_ms,
                    r.kind,
                    r.action,
                    r.resource,
                    r.subject,
                    r.user,
                    r.agent,
                    p.actors_json,
                    r.jti,
                    r.client_id,
                    r.caller,
                    r.allowed.map(i64::from),
                    p.detail_json,
                    r.model_id,
                    r.revision,
                    r.approval_id,
                    r.refers_to,
                    r.request_id,
                    r.client_addr,
                    r.prev_hash,
                    r.hash,
                ])?;
            }
        }
        tx.commit()?;
        Ok(next)
    }
}

/// The chain's last (seq, hash): its newest record, or the signed cut retention left.
fn read_head(conn: &Connection, org: &str) -> rusqlite::Result<Option<(u64, String)>> {
    let last = conn
        .query_row(
            "SELECT seq, hash FROM audit_records WHERE org_id = ?1 ORDER BY seq DESC LIMIT 1",
            [org],
            |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, String>(1)?)),
        )
        .optional()?;
    if last.is_some() {
        return Ok(last);
    }
    conn.query_row(
        "SELECT seq, hash FROM audit_checkpoints WHERE org_id = ?1 AND kind = 'cut' \
         ORDER BY seq DESC LIMIT 1",
        [org],
        |r| Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, String>(1)?)),
    )
    .optional()
}
