//! The audit log, server side: the writer that makes records durable before answers
//! leave, the request facts every record carries, and the background work
//! ([`tasks`]: signed checkpoints, retention, webhook delivery).
//!
//! Group commit: handlers hand records to one writer and wait. The writer takes
//! whatever has queued since its previous commit (on SQLite starting commits at most
//! every [`COMMIT_INTERVAL`]) and writes it all in one transaction, so many decisions share
//! one fsync. On an SQLite file it writes through a connection of its own
//! ([`SqliteAppender`]), elsewhere through the database pool. A handler returns only once
//! its records are committed; if the audit store cannot write, it answers
//! `503 audit_unavailable` instead of a decision (fail closed).

pub mod tasks;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use tokio::sync::{Notify, mpsc, oneshot};
use warden_audit::{AuditRecord, Prepared};
use warden_storage::{Db, SqliteAppender};

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};

/// Most records one group commit takes from the queue (the last job may take it
/// over).
const MAX_BATCH: usize = 1024;
/// On an SQLite file, the least time between the starts of two group commits. Under
/// load, records gather for this long and share one commit: each commit costs an
/// fsync, and each wakes the writer and every waiting request, so fewer, larger
/// commits leave more of the machine to decisions. An idle writer commits a new record
/// at once (its last commit started longer ago than this). PostgreSQL commits take
/// longer than this by themselves, so records gather anyway; pacing them only added
/// latency there (measured: 64 connections, 18.3k vs 21.1k audited checks/s).
const COMMIT_INTERVAL: Duration = Duration::from_millis(1);
/// Most record batches waiting for the writer (then handlers wait to enqueue).
const QUEUE: usize = 16_384;

/// The organization of server-wide records (signing keys, client registration). Not
/// a valid organization id, so it can never collide with one.
pub const SYSTEM_ORG: &str = "_system";

struct Job {
    records: Vec<Prepared>,
    /// The outcome, and the job's records back, so that most of their memory (the
    /// record's fields, allocated by the request) is freed on the request's thread: a
    /// free from another thread costs more.
    done: oneshot::Sender<(Result<(), String>, Vec<Prepared>)>,
}

/// The handle handlers record through.
pub struct Auditor {
    /// `None` when auditing is switched off (benchmarks only).
    tx: Option<mpsc::Sender<Job>>,
    /// Wakes webhook delivery after each commit.
    pub appended: Arc<Notify>,
    pub stats: Arc<WriterStats>,
}

/// What the writer has done, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    pub records: AtomicU64,
    pub commits: AtomicU64,
    pub failed_records: AtomicU64,
    /// When the last commit failed (ms since the epoch), 0 once one succeeds.
    pub failed_at_ms: AtomicI64,
}

/// How long after a failed commit the node reports itself not ready.
const UNREADY_AFTER_FAILURE_MS: i64 = 10_000;

impl WriterStats {
    /// Whether a commit failed within the last few seconds (and none succeeded since):
    /// decisions here are failing closed, so `/readyz` sends traffic elsewhere. It
    /// clears by itself, so that a node with nothing to commit is tried again.
    pub fn failing(&self) -> bool {
        let at = self.failed_at_ms.load(Ordering::Relaxed);
        at != 0 && warden_storage::now_ms() - at < UNREADY_AFTER_FAILURE_MS
    }
}

impl WriterStats {
    /// Prometheus text for these counters.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write as _;
        for (name, help, v) in [
            (
                "warden_audit_records_total",
                "Audit records committed.",
                &self.records,
            ),
            (
                "warden_audit_commits_total",
                "Audit transactions committed (group commits).",
                &self.commits,
            ),
            (
                "warden_audit_failed_records_total",
                "Audit records that could not be written (their requests failed closed).",
                &self.failed_records,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                v.load(Ordering::Relaxed)
            );
        }
    }
}

impl Auditor {
    /// Starts the writer on `db` (or a disabled auditor that records nothing).
    pub fn start(db: Db, enabled: bool) -> Auditor {
        let appended = Arc::new(Notify::new());
        let stats = Arc::new(WriterStats::default());
        if !enabled {
            tracing::warn!("AUDIT IS OFF: decisions and changes are not recorded");
            return Auditor {
                tx: None,
                appended,
                stats,
            };
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        // The writer runs on a thread of its own, so that its wake-ups after each
        // database round trip do not queue behind every request in flight. On an
        // SQLite file it commits through a connection of its own, opened there (opening
        // may wait on the file's lock); elsewhere, or if that fails, through the pool.
        let (notify, st) = (appended.clone(), stats.clone());
        let spawned = std::thread::Builder::new()
            .name("warden-audit".into())
            .spawn(move || {
                let appender = db.sqlite_appender().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "the audit writer uses the shared pool");
                    None
                });
                match appender {
                    Some(appender) => sqlite_writer(appender, rx, notify, st),
                    None => match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(writer(db, rx, notify, st)),
                        Err(e) => tracing::error!(error = %e, "the audit writer cannot start"),
                    },
                }
            });
        if let Err(e) = spawned {
            // Without a writer every decision fails closed (the queue is closed).
            tracing::error!(error = %e, "the audit writer thread cannot start");
        }
        Auditor {
            tx: Some(tx),
            appended,
            stats,
        }
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Makes `records` durable; returns when they are committed.
    pub async fn record_all(&self, records: Vec<AuditRecord>) -> ApiResult<()> {
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        if records.is_empty() {
            return Ok(());
        }
        // The canonical JSON is made here, on the request's thread, so that the one
        // writer is left with a hash per record.
        let records = records.into_iter().map(Prepared::new).collect();
        let (done, wait) = oneshot::channel();
        tx.send(Job { records, done })
            .await
            .map_err(|_| unavailable("the audit writer has stopped"))?;
        match wait.await {
            Ok((Ok(()), _)) => Ok(()),
            Ok((Err(e), _)) => {
                tracing::error!(error = %e, "audit records could not be written");
                Err(unavailable("the audit log cannot be written"))
            }
            Err(_) => Err(unavailable("the audit writer has stopped")),
        }
    }

    pub async fn record(&self, record: AuditRecord) -> ApiResult<()> {
        self.record_all(vec![record]).await
    }
}

/// The answer when a record cannot be made durable: no decision without a record.
pub fn unavailable(message: &str) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        format!("{message}; no decision is given without its audit record"),
    )
}

/// Adds to `first` whatever else is queued (up to about [`MAX_BATCH`] records): one
/// group commit's jobs, each with how many of the records are its own, and the
/// records, in arrival order.
fn gather(first: Job, rx: &mut mpsc::Receiver<Job>) -> (Vec<(Job, usize)>, Vec<Prepared>) {
    let mut batch = Vec::new();
    let mut jobs = Vec::new();
    let mut next = Some(first);
    while let Some(mut j) = next {
        let n = j.records.len();
        batch.append(&mut j.records);
        jobs.push((j, n));
        next = if batch.len() < MAX_BATCH {
            rx.try_recv().ok()
        } else {
            None
        };
    }
    (jobs, batch)
}

/// Counts a group commit and answers every job in it, handing each its records back.
fn finish(
    jobs: Vec<(Job, usize)>,
    batch: Vec<Prepared>,
    res: Result<(), String>,
    appended: &Notify,
    stats: &WriterStats,
) {
    let records = batch.len() as u64;
    if res.is_ok() {
        stats.records.fetch_add(records, Ordering::Relaxed);
        stats.commits.fetch_add(1, Ordering::Relaxed);
        stats.failed_at_ms.store(0, Ordering::Relaxed);
        appended.notify_waiters();
    } else {
        stats.failed_records.fetch_add(records, Ordering::Relaxed);
        stats
            .failed_at_ms
            .store(warden_storage::now_ms(), Ordering::Relaxed);
    }
    let mut rest = batch.into_iter();
    for (j, n) in jobs {
        let mine: Vec<Prepared> = rest.by_ref().take(n).collect();
        let _ = j.done.send((res.clone(), mine));
    }
}

/// The writer through the database pool (PostgreSQL, in-memory SQLite).
async fn writer(
    db: Db,
    mut rx: mpsc::Receiver<Job>,
    appended: Arc<Notify>,
    stats: Arc<WriterStats>,
) {
    // Each chain's last (seq, hash), so that a group commit is one statement.
    let mut heads = std::collections::HashMap::new();
    while let Some(first) = rx.recv().await {
        let (jobs, mut batch) = gather(first, &mut rx);
        let res = db
            .audit_append(&mut batch, &mut heads)
            .await
            .map_err(|e| e.to_string());
        finish(jobs, batch, res, &appended, &stats);
    }
}

/// The writer on an SQLite file: blocking, on its own connection.
fn sqlite_writer(
    mut appender: SqliteAppender,
    mut rx: mpsc::Receiver<Job>,
    appended: Arc<Notify>,
    stats: Arc<WriterStats>,
) {
    let mut last = Instant::now();
    while let Some(first) = rx.blocking_recv() {
        if let Some(pause) = COMMIT_INTERVAL.checked_sub(last.elapsed()) {
            std::thread::sleep(pause);
        }
        last = Instant::now();
        let (jobs, mut batch) = gather(first, &mut rx);
        let res = appender.append(&mut batch).map_err(|e| e.to_string());
        finish(jobs, batch, res, &appended, &stats);
    }
}

/// The request id every response carries (`X-Request-Id`), set by the observing
/// middleware: the client's, when it sent a sane one, or a fresh UUIDv7. Kept as the
/// header value, so that echoing it costs a reference count, not a copy.
#[derive(Debug, Clone)]
pub struct RequestId(pub HeaderValue);

impl RequestId {
    /// The client's id if it is 1-128 visible ASCII characters, else a new one.
    pub fn from_header(v: Option<&HeaderValue>) -> RequestId {
        let sane = |v: &&HeaderValue| {
            let b = v.as_bytes();
            !b.is_empty() && b.len() <= 128 && b.iter().all(u8::is_ascii_graphic)
        };
        RequestId(match v.filter(sane) {
            Some(v) => v.clone(),
            None => HeaderValue::from_str(&uuid::Uuid::now_v7().to_string())
                .unwrap_or(HeaderValue::from_static("-")),
        })
    }

    /// The id as text (visible ASCII by construction).
    pub fn as_str(&self) -> &str {
        self.0.to_str().unwrap_or("-")
    }
}

/// What every record of a request carries: its id and the client's address.
#[derive(Debug, Clone, Default)]
pub struct Meta {
    pub request_id: Option<String>,
    pub client_addr: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Meta {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Meta {
            request_id: parts
                .extensions
                .get::<RequestId>()
                .map(|r| r.as_str().to_string()),
            client_addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        })
    }
}

impl Meta {
    /// A new record of this request: fresh id, now, request id and client address.
    pub fn record(&self, org: &str, kind: &str, action: &str) -> AuditRecord {
        AuditRecord {
            org: org.to_string(),
            id: uuid::Uuid::now_v7().to_string(),
            time_ms: warden_storage::now_ms(),
            kind: kind.to_string(),
            action: action.to_string(),
            request_id: self.request_id.clone(),
            client_addr: self.client_addr.clone(),
            ..Default::default()
        }
    }

    /// A new record of this request made with an API key (`caller`: `key:<id>`).
    pub fn by_key(&self, org: &str, caller: &Caller, kind: &str, action: &str) -> AuditRecord {
        let mut r = self.record(org, kind, action);
        r.caller = Some(format!("key:{}", caller.0.id));
        r
    }

    /// A decision record by an API key caller.
    pub fn decision(
        &self,
        org: &str,
        caller: &Caller,
        action: &str,
        resource: &str,
    ) -> AuditRecord {
        let mut r = self.by_key(org, caller, "decision", action);
        r.resource = Some(resource.to_string());
        r
    }

    /// A change record by an API key caller.
    pub fn change(&self, org: &str, caller: &Caller, action: &str) -> AuditRecord {
        self.by_key(org, caller, "change", action)
    }
}

/// Sets `user` or `agent` from a check's subject (`user:anne`, `agent:bot`).
pub fn set_subject(r: &mut AuditRecord, subject: &str) {
    r.subject = Some(subject.to_string());
    if subject.starts_with("user:") && !subject.contains('#') {
        r.user = Some(subject.to_string());
    } else if subject.starts_with("agent:") && !subject.contains('#') {
        r.agent = Some(subject.to_string());
    }
}

/// Records a committed change; when that fails, says the change happened but is not on
/// the record (the changes feed still holds it by revision).
pub async fn change_recorded(auditor: &Auditor, record: AuditRecord) -> ApiResult<()> {
    let revision = record.revision;
    auditor.record(record).await.map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "audit_unavailable",
            match revision {
                Some(r) => format!(
                    "the change was committed (revision {r}) but its audit record could not be written"
                ),
                None => "the change was made but its audit record could not be written".into(),
            },
        )
    })
}
