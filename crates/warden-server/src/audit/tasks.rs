//! Background work on the audit log, on every node:
//!
//! - **checkpoints**: every interval, each organization whose chain grew gets a
//!   checkpoint of its head, signed with the current token signing key (published in
//!   the JWKS, so anyone can verify it);
//! - **retention**: records older than the organization's retention period are
//!   removed behind a signed `cut` checkpoint (never records its webhook has not
//!   acknowledged yet);
//! - **webhook delivery**: records stream in order to the organization's webhook,
//!   at least once: the cursor moves only after a 2xx, failures back off
//!   exponentially, and a restarted node resumes from the stored cursor. A lease in
//!   the database lets one node deliver per organization at a time.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use warden_audit::Checkpoint;

use crate::state::AppState;

/// How often each kind of background work runs.
#[derive(Debug, Clone)]
pub struct TaskConfig {
    pub checkpoint_every: Duration,
    pub retention_every: Duration,
    /// How often delivery looks for new records besides being woken by commits.
    pub webhook_poll: Duration,
}

impl Default for TaskConfig {
    fn default() -> Self {
        TaskConfig {
            checkpoint_every: Duration::from_secs(60),
            retention_every: Duration::from_secs(600),
            webhook_poll: Duration::from_secs(1),
        }
    }
}

/// Records per webhook delivery.
const DELIVERY_BATCH: u32 = 100;
/// How long a node holds an organization's delivery lease (renewed at each batch;
/// given up at shutdown, so only a crashed node's lease makes others wait this long).
const LEASE_MS: i64 = 10_000;
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Starts the background work; it ends when `shutdown` turns true.
pub fn spawn(
    state: Arc<AppState>,
    cfg: TaskConfig,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    if !state.audit.enabled() {
        return Vec::new();
    }
    let mut tasks = Vec::new();
    {
        let (state, mut stop, every) = (state.clone(), shutdown.clone(), cfg.checkpoint_every);
        tasks.push(tokio::spawn(async move {
            let mut done: HashMap<String, u64> = HashMap::new();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => {}
                }
                if let Err(e) = checkpoint_all(&state, &mut done).await {
                    tracing::warn!(error = %e, "audit checkpoint failed; retrying");
                }
                if *stop.borrow() {
                    return;
                }
            }
        }));
    }
    {
        let (state, mut stop, every) = (state.clone(), shutdown.clone(), cfg.retention_every);
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = stop.changed() => return,
                }
                for org in state.org_ids() {
                    let days = state
                        .org(&org)
                        .ok()
                        .and_then(|d| d.read().settings.audit.retention_days);
                    if let Some(days) = days {
                        let before = warden_storage::now_ms() - i64::from(days) * 86_400_000;
                        match apply_retention(&state, &org, before).await {
                            Ok(0) => {}
                            Ok(n) => tracing::info!(org, removed = n, "audit retention"),
                            Err(e) => tracing::warn!(org, error = %e, "audit retention failed"),
                        }
                    }
                }
            }
        }));
    }
    {
        // SQLite: the WAL is copied back here, not inside the audit writer's commits.
        let (state, mut stop) = (state.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.changed() => return,
                }
                if let Err(e) = state.db.checkpoint_wal().await {
                    tracing::warn!(error = %e, "WAL checkpoint failed");
                }
            }
        }));
    }
    tasks.push(tokio::spawn(deliver(state, cfg.webhook_poll, shutdown)));
    tasks
}

/// Signs a checkpoint of every chain head that moved since `done` last saw it.
pub async fn checkpoint_all(
    state: &AppState,
    done: &mut HashMap<String, u64>,
) -> Result<usize, String> {
    let mut orgs = state.org_ids();
    orgs.push(crate::audit::SYSTEM_ORG.to_string());
    let mut n = 0;
    for org in orgs {
        let Some((seq, hash)) = state.db.audit_head(&org).await.map_err(|e| e.to_string())? else {
            continue;
        };
        if done.get(&org).is_some_and(|s| *s >= seq) {
            continue;
        }
        if signable(state, &org, seq, &hash).await?.is_err() {
            done.insert(org, seq);
            continue;
        }
        let cp = sign_checkpoint(state, &org, seq, &hash, "periodic")?;
        state
            .db
            .audit_add_checkpoint(&cp)
            .await
            .map_err(|e| e.to_string())?;
        done.insert(org, seq);
        n += 1;
    }
    Ok(n)
}

/// Signs a checkpoint with the current token signing key.
pub fn sign_checkpoint(
    state: &AppState,
    org: &str,
    seq: u64,
    hash: &str,
    kind: &str,
) -> Result<Checkpoint, String> {
    let o = state.oauth.read();
    let key = o.current.as_ref().ok_or("no current signing key")?;
    Checkpoint::sign(
        org,
        seq,
        hash,
        warden_storage::now_ms(),
        kind,
        &key.kid,
        &key.encoding_key(),
    )
    .map_err(|e| e.to_string())
}

/// Whether the chain ending at (`seq`, `hash`) may be signed: `Ok(Err(why))` when it
/// contradicts the newest stored checkpoint, because records were removed at its end
/// (it ends before that checkpoint) or the chain was rewritten (that checkpoint's
/// record, or the end itself, has another hash), which it also logs as an error.
/// Signing then would vouch for the tampered log, so the periodic checkpoints,
/// `POST .../audit/checkpoint` and exports all ask first.
pub async fn signable(
    state: &AppState,
    org: &str,
    seq: u64,
    hash: &str,
) -> Result<Result<(), String>, String> {
    let db = &state.db;
    let Some((signed, signed_hash)) = db
        .audit_last_checkpoint(org)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(Ok(()));
    };
    let refuse = |why: String| {
        tracing::error!(org, head = seq, why, "audit log tampered with; not signing");
        Ok(Err(why))
    };
    if signed > seq {
        return refuse(format!(
            "the log ends at record {seq}, before the signed checkpoint at record {signed}: records were removed"
        ));
    }
    let stored = if signed == seq {
        Some(hash.to_string())
    } else {
        db.audit_record_hash(org, signed)
            .await
            .map_err(|e| e.to_string())?
    };
    // A record retention removed has no stored hash left to compare; verification
    // starts after the cut.
    if stored.is_some_and(|h| h != signed_hash) {
        return refuse(format!(
            "record {signed} differs from its signed checkpoint: the chain was rewritten"
        ));
    }
    Ok(Ok(()))
}

/// Removes `org`'s records written before `before_ms` behind a signed cut (but none
/// its webhook has not acknowledged). Returns how many went.
pub async fn apply_retention(state: &AppState, org: &str, before_ms: i64) -> Result<u64, String> {
    let db = &state.db;
    let Some((mut seq, mut hash)) = db
        .audit_cut_point(org, before_ms)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(0);
    };
    // Nothing the current webhook has not acknowledged goes (a cursor another URL
    // left counts as nothing acknowledged).
    if let Some(hook) = webhook_of(state, org) {
        let delivered = db
            .audit_sink_delivered(org, &hook.url)
            .await
            .map_err(|e| e.to_string())?;
        if delivered < seq {
            if delivered == 0 {
                return Ok(0);
            }
            let rec = db
                .audit_page(org, delivered - 1, 1)
                .await
                .map_err(|e| e.to_string())?;
            match rec.first() {
                Some(r) if r.seq == delivered => (seq, hash) = (r.seq, r.hash.clone()),
                _ => return Ok(0),
            }
        }
    }
    let anchor = db.audit_anchor(org).await.map_err(|e| e.to_string())?;
    if anchor.is_some_and(|a| a.seq >= seq) {
        return Ok(0);
    }
    let cut = sign_checkpoint(state, org, seq, &hash, "cut")?;
    db.audit_prune(&cut).await.map_err(|e| e.to_string())
}

/// `sha256=<hex HMAC-SHA256 of body>`, the `X-Warden-Signature` header.
pub fn signature(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable_hmac());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[allow(clippy::panic, reason = "HMAC accepts keys of every length")]
fn unreachable_hmac() -> Hmac<Sha256> {
    panic!("HMAC-SHA256 rejected a key")
}

struct Backoff {
    failures: u32,
    next: Instant,
}

async fn deliver(state: Arc<AppState>, poll: Duration, mut stop: watch::Receiver<bool>) {
    let node = uuid::Uuid::now_v7().to_string();
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "no HTTP client; audit webhooks are not delivered");
            return;
        }
    };
    let mut backoff: HashMap<String, Backoff> = HashMap::new();
    let release = |state: Arc<AppState>, node: String| async move {
        if let Err(e) = state.db.audit_sink_release(&node).await {
            tracing::warn!(error = %e, "could not give up the audit delivery leases");
        }
    };
    loop {
        tokio::select! {
            _ = state.audit.appended.notified() => {}
            _ = tokio::time::sleep(poll) => {}
            _ = stop.changed() => return release(state, node).await,
        }
        for org in state.org_ids() {
            if backoff.get(&org).is_some_and(|b| b.next > Instant::now()) {
                continue;
            }
            // Deliver until caught up or a failure, to the webhook as the settings
            // name it at each batch (a changed URL starts over from the first record).
            loop {
                match deliver_batch(&state, &client, &node, &org).await {
                    Ok(true) => {
                        backoff.remove(&org);
                    }
                    Ok(false) => break,
                    Err(e) => {
                        let b = backoff.entry(org.clone()).or_insert(Backoff {
                            failures: 0,
                            next: Instant::now(),
                        });
                        b.failures += 1;
                        let wait = BACKOFF_MIN
                            .saturating_mul(1 << b.failures.min(10))
                            .min(BACKOFF_MAX);
                        b.next = Instant::now() + wait;
                        tracing::warn!(org, error = %e, failures = b.failures,
                            retry_in_ms = wait.as_millis() as u64, "audit webhook delivery failed");
                        break;
                    }
                }
                if *stop.borrow() {
                    return release(state, node).await;
                }
            }
        }
    }
}

/// The organization's webhook as its settings name it now.
fn webhook_of(state: &AppState, org: &str) -> Option<crate::state::AuditWebhook> {
    state
        .org(org)
        .ok()
        .and_then(|d| d.read().settings.audit.webhook.clone())
}

/// Delivers the next batch; `Ok(true)` if one was delivered (there may be more). The
/// cursor is the URL's (see [`Db::audit_sink_lease`](warden_storage::Db::audit_sink_lease)):
/// a new URL starts from the first retained record.
async fn deliver_batch(
    state: &AppState,
    client: &reqwest::Client,
    node: &str,
    org: &str,
) -> Result<bool, String> {
    let Some(hook) = webhook_of(state, org) else {
        return Ok(false);
    };
    let now = warden_storage::now_ms();
    let Some(delivered) = state
        .db
        .audit_sink_lease(org, node, now, LEASE_MS, &hook.url)
        .await
        .map_err(|e| e.to_string())?
    else {
        return Ok(false);
    };
    let records = state
        .db
        .audit_page(org, delivered, DELIVERY_BATCH)
        .await
        .map_err(|e| e.to_string())?;
    let Some(last) = records.last().map(|r| r.seq) else {
        return Ok(false);
    };
    let body = serde_json::to_vec(&serde_json::json!({"org": org, "records": records}))
        .map_err(|e| e.to_string())?;
    post(
        client,
        &hook,
        &format!("{org}/{}-{last}", delivered + 1),
        body,
    )
    .await?;
    state
        .db
        .audit_sink_advance(org, node, &hook.url, last)
        .await
        .map_err(|e| e.to_string())?;
    Ok(true)
}

/// Posts one delivery; `Ok` on a 2xx answer. Errors never carry the receiver's URL
/// (it may hold a token, and delivery errors are logged).
async fn post(
    client: &reqwest::Client,
    hook: &crate::state::AuditWebhook,
    delivery: &str,
    body: Vec<u8>,
) -> Result<(), String> {
    let mut req = client
        .post(&hook.url)
        .header("content-type", "application/json")
        .header("x-warden-delivery", delivery);
    if let Some(secret) = &hook.secret {
        req = req.header("x-warden-signature", signature(secret, &body));
    }
    let res = req
        .body(body)
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    if !res.status().is_success() {
        return Err(format!("the receiver answered {}", res.status()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivery_errors_do_not_carry_the_receivers_url() {
        // Nothing listens on port 1.
        let hook = crate::state::AuditWebhook {
            url: "http://127.0.0.1:1/in?token=s3cret-in-url".into(),
            secret: None,
        };
        let err = post(&reqwest::Client::new(), &hook, "acme/1-1", b"{}".to_vec())
            .await
            .unwrap_err();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn signatures_are_rfc_4231_hmac_sha256() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
