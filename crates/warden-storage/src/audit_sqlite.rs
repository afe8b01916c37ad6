//! The audit writer's own connection to an SQLite database file.
//!
//! The async pool hands every statement to a worker thread and back; for the audit
//! log, which commits hundreds of small batches a second, those hand-offs cost more
//! than the inserts. [`SqliteAppender`] instead holds a plain blocking connection,
//! meant for the one thread that writes audit records: a group commit is `BEGIN
//! IMMEDIATE`, one cached insert per record, `COMMIT`, with no thread in between.
//!
//! The chain rules are those of [`Db::audit_append`](crate::Db::audit_append), made
//! simpler by the write lock: each commit reads every chain's end inside its `BEGIN
//! IMMEDIATE` transaction (an index seek per organization), so nothing another writer
//! did to the file (an append, a retention cut) can leave it sealing after a stale
//! end, and there is no conflict to retry: any error fails the batch.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use warden_audit::{GENESIS, Prepared};

use crate::audit::{LAST_CUT, LAST_RECORD, ONE_ROW_INSERT, seal_after};
use crate::{Result, StorageError};

/// A blocking audit appender on an SQLite database file. Not `Sync`: one thread owns it.
#[derive(Debug)]
pub struct SqliteAppender {
    conn: Connection,
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
        conn.prepare_cached(ONE_ROW_INSERT).map_err(embedded)?;
        Ok(SqliteAppender { conn })
    }

    /// Seals `batch` into the organizations' chains and commits it in one
    /// transaction (one fsync): every record is durable when this returns `Ok`, or
    /// none is. On return each record carries its `seq`, `prev_hash` and `hash`.
    pub fn append(&mut self, batch: &mut [Prepared]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.try_append(batch).map_err(embedded)
    }

    fn try_append(&mut self, batch: &mut [Prepared]) -> rusqlite::Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut heads = HashMap::new();
        for p in batch.iter() {
            if !heads.contains_key(&p.record.org) {
                let head = read_head(&tx, &p.record.org)?.unwrap_or((0, GENESIS.to_string()));
                heads.insert(p.record.org.clone(), head);
            }
        }
        seal_after(batch, &mut heads);
        {
            let mut stmt = tx.prepare_cached(ONE_ROW_INSERT)?;
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
    let seq_hash = |r: &rusqlite::Row<'_>| -> rusqlite::Result<(u64, String)> {
        Ok((r.get::<_, i64>("seq")?.max(0) as u64, r.get("hash")?))
    };
    let last = conn
        .prepare_cached(LAST_RECORD)?
        .query_row([org], seq_hash)
        .optional()?;
    if last.is_some() {
        return Ok(last);
    }
    conn.prepare_cached(LAST_CUT)?
        .query_row([org], seq_hash)
        .optional()
}
