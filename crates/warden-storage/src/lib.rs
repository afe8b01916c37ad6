//! Durable storage for Warden: organizations, authorization models, relationship tuples
//! with a global revision and a changes feed, and API keys.
//!
//! One code path serves both backends through sqlx's `Any` driver: an embedded SQLite
//! file (WAL, synchronous writes) by default, or PostgreSQL for several server nodes
//! on one database. Every committed write takes the next **revision** from a one-row
//! counter inside its transaction, so revisions are gap-free, strictly increasing and
//! in commit order; the `changes` table records what each revision did, which is how
//! other nodes (and this one) bring their in-memory engine up to date.
//!
//! Architecture invariant: this crate knows nothing of HTTP or of the decision engine's
//! evaluation; it stores and returns data, validated by its callers.

mod approvals;
mod audit;
mod audit_sqlite;
mod error;
mod keys;
mod migrate;
mod models;
mod oauth;
mod orgs;
mod principals;
mod scim;
mod tuples;

pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, ConnectOptions};

pub use approvals::{Approval, ApprovalBinding, Verdict};
pub use audit::AuditFilter;
pub use audit_sqlite::SqliteAppender;
pub use error::StorageError;
pub use keys::{ApiKey, NewKey, Role};
pub use models::StoredModel;
pub use oauth::{AuthCode, Credential, Redeemed, RefreshGrant, StoredSigningKey};
pub use orgs::Org;
pub use principals::{Principal, PrincipalKind, Status, valid_principal_id};
pub use scim::{Leaver, LeaverReport, ScimRow, ScimWrite, ScimWritten};
pub use tuples::{Change, ChangeKind, ReadFilter, ReadPage, StoredTuple};

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A connection pool to Warden's database.
#[derive(Debug, Clone)]
pub struct Db {
    pool: AnyPool,
    /// The pooled audit writer's connections: on PostgreSQL a small pool opened lazily
    /// from the writer's thread (for reading chain ends); on an SQLite file one
    /// connection, used only if the writer's own connection ([`SqliteAppender`]) cannot
    /// be opened.
    audit_pool: AnyPool,
    /// On PostgreSQL, the audit writer's native connections: an append binds one
    /// array per column, which the generic pool cannot bind.
    audit_pg: Option<sqlx::PgPool>,
    backend: Backend,
    url: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Db {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:` or `postgres://...`) and
    /// brings the schema up to date. A SQLite file is created if missing.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StorageError::Config(
                "database URL must start with sqlite: or postgres://".into(),
            ));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") && !url.contains(":memory:") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_string(),
        };
        let opts = AnyConnectOptions::from_str(&url)?.disable_statement_logging();
        let sqlite_pool = |max: u32, cache_kib: i64, autocheckpoint: u32| {
            AnyPoolOptions::new()
                .max_connections(max)
                .min_connections(if url.contains(":memory:") { 1 } else { 0 })
                .idle_timeout(None)
                .max_lifetime(None)
                .after_connect(move |conn, _| {
                    Box::pin(async move {
                        use sqlx::Executor;
                        // WAL lets readers run beside the writer; FULL makes every
                        // acknowledged commit survive power loss.
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA synchronous=FULL").await?;
                        conn.execute("PRAGMA busy_timeout=10000").await?;
                        conn.execute("PRAGMA foreign_keys=ON").await?;
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA cache_size=-{cache_kib}"
                        )))
                        .await?;
                        // Statement journals in memory, not in temporary files.
                        conn.execute("PRAGMA temp_store=MEMORY").await?;
                        // The WAL is copied back every second beside the writers
                        // (`Db::checkpoint_wal`), so that the checkpoints commits run
                        // themselves find little left to copy; theirs let the WAL
                        // restart from its beginning, which keeps it bounded.
                        conn.execute(sqlx::AssertSqlSafe(format!(
                            "PRAGMA wal_autocheckpoint={autocheckpoint}"
                        )))
                        .await?;
                        Ok(())
                    })
                })
        };
        let (pool, audit_pool, audit_pg) = match backend {
            Backend::Sqlite => {
                // In-memory databases exist per connection: keep exactly one.
                let memory = url.contains(":memory:");
                let pool = sqlite_pool(if memory { 1 } else { 8 }, 8192, 1000)
                    .connect_with(opts.clone())
                    .await?;
                let audit_pool = if memory {
                    pool.clone()
                } else {
                    // Its one connection is not pinged before each use: a ping is one
                    // more round trip on every group commit. Its page cache is small:
                    // appends touch only the right edges of a few B-trees, and SQLite
                    // walks the whole cache at the end of every write transaction.
                    sqlite_pool(1, 2048, 2000)
                        .test_before_acquire(false)
                        .connect_with(opts)
                        .await?
                };
                (pool, audit_pool, None)
            }
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(16)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_with(opts.clone())
                    .await?;
                // Lazy: its connections are opened by the audit writer, on its thread.
                let audit_pool = AnyPoolOptions::new()
                    .max_connections(2)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy_with(opts);
                // Lazy too, opened by the writer on its thread.
                let audit_pg = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(2)
                    .test_before_acquire(false)
                    .acquire_timeout(Duration::from_secs(10))
                    .connect_lazy_with(
                        sqlx::postgres::PgConnectOptions::from_str(&url)?
                            .disable_statement_logging(),
                    );
                (pool, audit_pool, Some(audit_pg))
            }
        };
        let db = Db {
            pool,
            audit_pool,
            audit_pg,
            backend,
            url,
        };
        migrate::run(&db).await?;
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL this pool was opened with (for a PostgreSQL listener connection).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// A blocking audit appender with its own connection, for an SQLite database
    /// file; `None` on PostgreSQL and in memory, where the audit writer uses
    /// [`Db::audit_append`].
    pub fn sqlite_appender(&self) -> Result<Option<SqliteAppender>> {
        if self.backend != Backend::Sqlite || self.url.contains(":memory:") {
            return Ok(None);
        }
        let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&self.url)?;
        SqliteAppender::open(opts.get_filename()).map(Some)
    }

    /// Only for the audit writer ([`Db::audit_append`]).
    pub(crate) fn audit_pool(&self) -> &AnyPool {
        &self.audit_pool
    }

    /// On PostgreSQL, the audit writer's native pool (array parameters).
    pub(crate) fn audit_pg_pool(&self) -> Option<&sqlx::PgPool> {
        self.audit_pg.as_ref()
    }

    /// A write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so two writers queue instead of failing on lock upgrade.
    pub(crate) async fn begin_write(&self) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Copies the SQLite write-ahead log back into the database as far as readers
    /// allow, without blocking writers (`PASSIVE`); the server calls it every second
    /// so that the audit writer's commits never pause for it. Nothing on PostgreSQL.
    pub async fn checkpoint_wal(&self) -> Result<()> {
        if self.backend == Backend::Sqlite {
            sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> bool {
        sqlx::query("SELECT 1").execute(&self.pool).await.is_ok()
    }

    /// The latest committed revision (0 before any write).
    pub async fn current_revision(&self) -> Result<i64> {
        let v: i64 = sqlx::query_scalar("SELECT value FROM warden_revision WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(v)
    }

    /// Tells other nodes (PostgreSQL `NOTIFY`) that a write committed; best effort, as
    /// they also poll. Does nothing on SQLite.
    pub async fn notify(&self) {
        if self.backend == Backend::Postgres {
            let res = sqlx::query("SELECT 1 FROM (SELECT pg_notify('warden_changes', '')) AS n")
                .execute(&self.pool)
                .await;
            if let Err(e) = res {
                tracing::warn!(error = %e, "NOTIFY failed");
            }
        }
    }

    pub async fn close(&self) {
        self.audit_pool.close().await;
        self.pool.close().await;
    }
}

/// Fails with `NotFound` unless the organization exists (inside `tx`, so that the
/// write that follows cannot race its deletion).
pub(crate) async fn require_org(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org: &str,
) -> Result<()> {
    let exists: Option<String> = sqlx::query_scalar("SELECT id FROM orgs WHERE id = $1")
        .bind(org)
        .fetch_optional(&mut **tx)
        .await?;
    match exists {
        Some(_) => Ok(()),
        None => Err(StorageError::NotFound {
            what: "organization",
            name: org.to_string(),
        }),
    }
}

/// Takes the next revision inside `tx`. The row lock it holds until commit orders
/// concurrent writers, so revisions commit in increasing order.
pub(crate) async fn next_revision(tx: &mut sqlx::Transaction<'static, sqlx::Any>) -> Result<i64> {
    let v: i64 = sqlx::query_scalar(
        "UPDATE warden_revision SET value = value + 1 WHERE id = 1 RETURNING value",
    )
    .fetch_one(&mut **tx)
    .await?;
    Ok(v)
}
