//! The audit writer's own connection to an SQLite database file.
//!
//! The async pool hands every statement to a worker thread and back; for the audit
//! log, which commits hundreds of small batches a second, those hand-offs cost more
//! than the inserts. [`SqliteAppender`] instead holds a plain blocking connection,
//! meant for the one thread that writes audit records: a group commit is `BEGIN
//! IMMEDIATE`, one cached insert per record, `COMMIT`, with no thread in between.
//!
//! The chain rules are those of [`Db::audit_append`](crate::Db::audit_append), made
//! simpler by the write lock: each commit reads every chain's last `(seq, hash)` inside
//! its `BEGIN IMMEDIATE` transaction (an index seek per organization), so nothing
//! another writer did to the file (an append, a retention cut) can leave it sealing
//! after a stale end. A primary-key conflict, which that makes impossible, would still
//! only be retried.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
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
    /// Opens the database file at `path`, which must already exist and hold Warden's
    /// tables (checked here, so that a caller can fall back to the pool).
    pub fn open(path: &Path) -> Result<SqliteAppender> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(embedded)?;
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
        // Fails now, not at the first decision, if the table is not there.
        conn.prepare_cached(INSERT).map_err(embedded)?;
        Ok(SqliteAppender {
            conn,
            path: path.to_path_buf(),
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
            let Err(e) = self.try_append(batch, &orgs) else {
                return Ok(());
            };
            let conflict = matches!(
                &e,
                rusqlite::Error::SqliteFailure(f, _)
                    if f.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            );
            if !conflict || attempt >= 100 {
                return Err(embedded(e));
            }
            // Someone else appended: again after a short random pause, so that
            // racing writers spread out.
            let pause = rand::random::<u64>() % (200 * attempt.min(10));
            std::thread::sleep(Duration::from_micros(pause));
        }
    }

    /// One attempt: reads the chains' ends under the write lock, seals after them and
    /// commits.
    fn try_append(&mut self, batch: &mut [Prepared], orgs: &[String]) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut heads = HashMap::with_capacity(orgs.len());
        for org in orgs {
            let head = read_head(&tx, org)?.unwrap_or((0, GENESIS.to_string()));
            heads.insert(org.as_str(), head);
        }
        for p in batch.iter_mut() {
            if let Some(head) = heads.get_mut(p.record.org.as_str()) {
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
        tx.commit()
    }
}

/// The chain's last (seq, hash): its newest record, or the signed cut retention left.
fn read_head(conn: &Connection, org: &str) -> rusqlite::Result<Option<(u64, String)>> {
    let last = conn
        .prepare_cached(
            "SELECT seq, hash FROM audit_records WHERE org_id = ?1 ORDER BY seq DESC LIMIT 1",
        )?
        .query_row([org], |r| {
            Ok((r.get::<_, i64>(0)?.max(0) as u64, r.get::<_, String>(1)?))
        })
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
