//! The server's in-memory state: per organization, its compiled models, its tuples (in
//! the engine's store) and its settings, all fed from storage.
//!
//! Storage is the truth; memory follows it through the changes feed. Every change
//! (this node's writes included) is applied by one path, [`AppState::catch_up`], in
//! revision order, and `applied` says how far memory has got. A request that names a
//! revision waits (within a bound) until memory has reached it, so no node ever answers
//! from data older than a revision its client has already seen.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use warden_engine::{Model, TupleStore};
use warden_storage::{ApiKey, Change, ChangeKind, Db, Principal, PrincipalKind, StorageError};

use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;

/// How many changes one catch-up step reads.
const CHANGES_PAGE: u32 = 5000;

/// Per-organization settings (a JSON document stored with the organization).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OrgSettings {
    #[serde(default)]
    pub authzen: AuthzenSettings,
    /// The scope catalog: each OAuth scope and the `type#relation` pairs it grants.
    /// Agents may only be allowed catalog scopes.
    #[serde(default)]
    pub scopes: indexmap::IndexMap<String, Vec<String>>,
    /// Protected resources (APIs, MCP servers) registered with Warden, by id. Tokens
    /// may only be issued for a registered resource's URI (RFC 8707) or the issuer,
    /// and Warden serves each one's protected resource metadata (RFC 9728).
    #[serde(default)]
    pub resources: indexmap::IndexMap<String, ProtectedResource>,
    /// Dynamic client registration (RFC 7591): off unless enabled here.
    #[serde(default)]
    pub registration: RegistrationPolicy,
    /// The audit log: retention and the webhook records stream to.
    #[serde(default)]
    pub audit: AuditSettings,
    /// Directory sync (SCIM): what a leaver's departure does to the agents they own.
    #[serde(default)]
    pub directory: DirectorySettings,
    /// Human approval: which allowed actions must wait for a person.
    #[serde(default)]
    pub approvals: ApprovalSettings,
}

/// The organization's approval rules and where requests are announced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalSettings {
    #[serde(default)]
    pub rules: Vec<ApprovalRule>,
    /// Called when a request is created and when it is decided (same form and
    /// signature as the audit webhook).
    #[serde(default)]
    pub webhook: Option<AuditWebhook>,
}

/// When an allowed action must still wait for a person, and who that may be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRule {
    /// Unique within the organization.
    pub name: String,
    /// The resource type it covers.
    #[serde(rename = "type")]
    pub type_name: String,
    /// The actions (relations) it covers.
    pub relations: Vec<String>,
    /// A CEL condition over the request context (`context.amount > 1000`); absent:
    /// always.
    #[serde(default)]
    pub condition: Option<String>,
    /// Approvers hold this relation on the resource at the moment they approve ...
    #[serde(default)]
    pub approver_relation: Option<String>,
    /// ... or are members of this group (`group:<id>`, or its id).
    #[serde(default)]
    pub approver_group: Option<String>,
    /// How long a request waits for a decision (seconds; default 3600).
    #[serde(default = "default_wait_secs")]
    pub wait_secs: u32,
    /// How long a granted approval may be used (seconds; default 300).
    #[serde(default = "default_valid_secs")]
    pub valid_secs: u32,
}

fn default_wait_secs() -> u32 {
    3600
}

fn default_valid_secs() -> u32 {
    300
}

/// The organization's directory sync policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DirectorySettings {
    /// When a user is deactivated or deleted, suspend the agents they own (they are
    /// flagged for a new owner either way). Default: false.
    #[serde(default)]
    pub suspend_agents_of_leavers: bool,
}

/// The organization's audit log settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditSettings {
    /// Records older than this many days are removed (behind a signed cut
    /// checkpoint). Unset: kept forever.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Where records stream to (a SIEM), in order, at least once.
    #[serde(default)]
    pub webhook: Option<AuditWebhook>,
}

/// A webhook receiving the audit records as `POST {"org", "records": [...]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditWebhook {
    /// `https://...` (or `http://` to a loopback address).
    pub url: String,
    /// When set, each delivery carries `X-Warden-Signature: sha256=<hex HMAC-SHA256 of
    /// the body>`. Reading the settings shows `(set)` instead; writing `(set)` keeps
    /// the stored secret.
    #[serde(default)]
    pub secret: Option<String>,
}

/// What reading the settings shows instead of the webhook secret.
pub const SECRET_MASK: &str = "(set)";

/// What a dynamically registered client becomes in this organization. A client
/// registers at the global endpoint, then binds to the organization whose registered
/// resource it first asks for (its `resource` parameter), as an agent owned by `owner`
/// with at most `allowed_scopes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RegistrationPolicy {
    #[serde(default)]
    pub enabled: bool,
    /// `user:<id>` or `group:<id>`: who is accountable for registered clients.
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub allowed_scopes: Vec<String>,
}

/// A protected resource registered with Warden.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProtectedResource {
    /// The resource identifier: its absolute URI (the tokens' `aud`).
    pub uri: String,
    #[serde(default)]
    pub name: Option<String>,
    /// Catalog scopes that make sense for it.
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl OrgSettings {
    /// Whether `scope` grants `relation` on objects of `type_name`.
    pub fn scope_grants(&self, scope: &str, type_name: &str, relation: &str) -> bool {
        self.scopes.get(scope).is_some_and(|pairs| {
            pairs.iter().any(|p| {
                p.split_once('#')
                    .is_some_and(|(t, r)| t == type_name && r == relation)
            })
        })
    }
}

/// How AuthZEN requests map onto the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthzenSettings {
    /// For resources of a type, tuples that hold for *every* resource of that type
    /// (sent as contextual tuples with each evaluation): `{"todo": [{"relation":
    /// "app", "user": "todo_app:main"}]}` makes every `todo:<id>` belong to
    /// `todo_app:main` through its `app` relation.
    #[serde(default)]
    pub resource_links: HashMap<String, Vec<ResourceLink>>,
    /// The actions of a resource type, for action search (default: all its relations).
    #[serde(default)]
    pub actions: HashMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceLink {
    pub relation: String,
    pub user: String,
}

/// One organization in memory.
#[derive(Default)]
pub struct OrgData {
    /// Every model, oldest first; the last is current.
    pub models: Vec<(String, Arc<Model>)>,
    pub tuples: TupleStore,
    pub settings: OrgSettings,
    /// The approval rules' conditions, compiled (in the order of
    /// `settings.approvals.rules`).
    pub approval_conditions: Arc<Vec<Option<warden_engine::approval::RuleCondition>>>,
    /// Users, groups and agents by (kind, id).
    pub principals: HashMap<(PrincipalKind, String), Principal>,
}

impl OrgData {
    /// The model named `id`, or the current one.
    pub fn model(&self, id: Option<&str>) -> ApiResult<&Arc<Model>> {
        self.model_entry(id).map(|(_, m)| m)
    }

    /// The model named `id`, or the current one, with its id.
    pub fn model_entry(&self, id: Option<&str>) -> ApiResult<(&str, &Arc<Model>)> {
        match id {
            Some(id) => self
                .models
                .iter()
                .find(|(m, _)| m == id)
                .map(|(i, m)| (i.as_str(), m))
                .ok_or_else(|| ApiError::not_found(format!("model `{id}` not found"))),
            None => self
                .models
                .last()
                .map(|(i, m)| (i.as_str(), m))
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "no_model",
                        "the organization has no authorization model yet",
                    )
                }),
        }
    }
}

/// The hard maximum of an access token's lifetime, in seconds.
pub const MAX_TOKEN_LIFETIME: i64 = 3600;

/// Server settings the request handlers need.
#[derive(Debug, Clone)]
pub struct Limits {
    /// How long a request may wait for its revision to arrive.
    pub consistency_wait: Duration,
    /// Most tuples in one write request.
    pub max_tuples_per_write: usize,
    /// Most checks in one batch.
    pub max_batch_checks: usize,
    /// How long a verified key is trusted before being looked up again.
    pub key_cache_ttl: Duration,
    /// Access token lifetime, in seconds (at most [`MAX_TOKEN_LIFETIME`]).
    pub token_lifetime_secs: i64,
    /// The URL clients reach this server at (for discovery documents); without it,
    /// `http://<Host header>`.
    pub public_url: Option<String>,
    /// Whether decisions and changes are recorded (off only for benchmarks).
    pub audit: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            consistency_wait: Duration::from_secs(2),
            max_tuples_per_write: 1000,
            max_batch_checks: 100,
            key_cache_ttl: Duration::from_secs(10),
            public_url: None,
            token_lifetime_secs: 300,
            audit: true,
        }
    }
}

/// Token signing keys and revoked token ids, server-wide.
#[derive(Default)]
pub struct OAuthState {
    /// The key that signs new tokens.
    pub current: Option<warden_oauth::keys::SigningKey>,
    /// Every published key (current, next, retired): tokens verify against these.
    pub published: Vec<warden_oauth::keys::SigningKey>,
    /// `jti`s of revoked tokens not yet expired.
    pub revoked: std::collections::HashSet<String>,
}

pub struct AppState {
    pub db: Db,
    /// The one issuer string of every token and metadata document.
    pub issuer: String,
    pub oauth: RwLock<OAuthState>,
    pub limits: Limits,
    pub metrics: Metrics,
    pub audit: crate::audit::Auditor,
    orgs: RwLock<HashMap<String, Arc<RwLock<OrgData>>>>,
    applied: watch::Sender<i64>,
    apply_lock: tokio::sync::Mutex<()>,
    /// Verified keys by SHA-256 of their token, with when they were verified.
    key_cache: parking_lot::Mutex<HashMap<[u8; 32], (ApiKey, Instant)>>,
    /// Serializes outcome reports per decision (see [`AppState::outcome_turn`]).
    outcome_locks: Vec<tokio::sync::Mutex<()>>,
}

impl AppState {
    /// Loads everything from storage.
    pub async fn load(db: Db, limits: Limits, issuer: String) -> Result<AppState, StorageError> {
        let started = Instant::now();
        // Everything committed up to here is in the tables; later changes are
        // replayed from the feed (replaying is harmless).
        let from = db.current_revision().await?;
        let audit = crate::audit::Auditor::start(db.clone(), limits.audit);
        let state = AppState {
            db,
            issuer,
            oauth: RwLock::new(OAuthState::default()),
            limits,
            metrics: Metrics::default(),
            audit,
            orgs: RwLock::new(HashMap::new()),
            applied: watch::Sender::new(from),
            apply_lock: tokio::sync::Mutex::new(()),
            key_cache: parking_lot::Mutex::new(HashMap::new()),
            outcome_locks: (0..64).map(|_| tokio::sync::Mutex::new(())).collect(),
        };
        for org in state.db.list_orgs().await? {
            state.org_entry(&org.id);
            state.reload_settings(&org.id).await?;
        }
        state.ensure_signing_keys().await?;
        state.reload_signing_keys().await?;
        let revoked = state.db.revoked_tokens(warden_oauth::now_secs()).await?;
        state.oauth.write().revoked.extend(revoked);
        for (org, p) in state.db.all_principals().await? {
            state
                .org_entry(&org)
                .write()
                .principals
                .insert((p.kind, p.id.clone()), p);
        }
        for m in state.db.all_models().await? {
            state.add_model(&m.org_id, &m.id, &m.model_json);
        }
        let mut count = 0usize;
        let mut bad = 0usize;
        let mut stores: HashMap<String, TupleStore> = HashMap::new();
        state
            .db
            .load_tuples(|org, key| {
                let store = match stores.get_mut(org) {
                    Some(s) => s,
                    None => stores.entry(org.to_string()).or_default(),
                };
                match store.insert(&key) {
                    Ok(_) => count += 1,
                    Err(_) => bad += 1,
                }
            })
            .await?;
        for (org, tuples) in stores {
            state.org_entry(&org).write().tuples = tuples;
        }
        if bad > 0 {
            tracing::warn!(bad, "stored tuples that could not be loaded were skipped");
        }
        state.catch_up().await?;
        tracing::info!(
            tuples = count,
            revision = state.applied(),
            took_ms = started.elapsed().as_millis() as u64,
            "loaded"
        );
        Ok(state)
    }

    /// Creates the current and next signing keys on first start.
    async fn ensure_signing_keys(&self) -> Result<(), StorageError> {
        let keys = self.db.signing_keys().await?;
        for state in ["current", "next"] {
            if !keys.iter().any(|k| k.state == state) {
                let k = warden_oauth::keys::SigningKey::generate()
                    .map_err(|e| StorageError::Invalid(e.to_string()))?;
                self.db
                    .add_signing_key(&warden_storage::StoredSigningKey {
                        kid: k.kid,
                        private_der_hex: hex::encode(&k.private_der),
                        public_x: k.public_x,
                        state: state.to_string(),
                        created_at: warden_storage::now_ms(),
                    })
                    .await?;
            }
        }
        Ok(())
    }

    /// Loads the signing keys from storage.
    pub async fn reload_signing_keys(&self) -> Result<(), StorageError> {
        let mut current = None;
        let mut published = Vec::new();
        for k in self.db.signing_keys().await? {
            let key = warden_oauth::keys::SigningKey {
                kid: k.kid,
                private_der: hex::decode(&k.private_der_hex)
                    .map_err(|e| StorageError::Corrupt(e.to_string()))?,
                public_x: k.public_x,
            };
            if k.state == "current" {
                current = Some(key.clone());
            }
            published.push(key);
        }
        let mut o = self.oauth.write();
        o.current = current;
        o.published = published;
        Ok(())
    }

    /// The revision memory has reached.
    pub fn applied(&self) -> i64 {
        *self.applied.borrow()
    }

    fn org_entry(&self, org: &str) -> Arc<RwLock<OrgData>> {
        if let Some(e) = self.orgs.read().get(org) {
            return e.clone();
        }
        self.orgs
            .write()
            .entry(org.to_string())
            .or_default()
            .clone()
    }

    /// Ids of every organization in memory.
    pub fn org_ids(&self) -> Vec<String> {
        self.orgs.read().keys().cloned().collect()
    }

    /// Waits for the turn to report an outcome for this decision: reports for one
    /// decision on this node happen one after the other (reports for others mostly
    /// not: the locks are striped), so that only the first is recorded.
    pub async fn outcome_turn(
        &self,
        org: &str,
        decision_id: &str,
    ) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one((org, decision_id));
        self.outcome_locks[(h % self.outcome_locks.len() as u64) as usize]
            .lock()
            .await
    }

    /// The organization's data, if it exists (in memory).
    pub fn org(&self, org: &str) -> ApiResult<Arc<RwLock<OrgData>>> {
        self.orgs
            .read()
            .get(org)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("organization `{org}` not found")))
    }

    /// Like [`AppState::org`], but an organization this node has not heard of yet
    /// (created on another node a moment ago) is looked for again after catching up.
    pub async fn org_fresh(&self, org: &str) -> ApiResult<Arc<RwLock<OrgData>>> {
        match self.org(org) {
            Ok(o) => Ok(o),
            Err(_) => {
                self.catch_up().await.map_err(ApiError::internal)?;
                self.org(org)
            }
        }
    }

    fn add_model(&self, org: &str, id: &str, json: &str) {
        let entry = self.org_entry(org);
        if entry.read().models.iter().any(|(m, _)| m == id) {
            return;
        }
        let compiled = warden_model::parse_json(json)
            .map_err(|e| e.to_string())
            .and_then(|schema| Model::new(schema).map_err(|e| e.to_string()));
        match compiled {
            Ok(model) => {
                let mut data = entry.write();
                data.models.push((id.to_string(), Arc::new(model)));
            }
            Err(e) => tracing::error!(org, model = id, error = %e, "stored model does not compile"),
        }
    }

    async fn reload_settings(&self, org: &str) -> Result<(), StorageError> {
        let settings = match self.db.org_settings(org).await? {
            None => OrgSettings::default(),
            Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
                tracing::error!(org, error = %e, "stored settings do not parse; using defaults");
                OrgSettings::default()
            }),
        };
        let conditions = settings
            .approvals
            .rules
            .iter()
            .map(|r| {
                r.condition.as_deref().and_then(|c| {
                    warden_engine::approval::RuleCondition::compile(c)
                        .map_err(|e| tracing::error!(org, rule = %r.name, error = %e, "approval condition does not compile"))
                        .ok()
                })
            })
            .collect();
        let entry = self.org_entry(org);
        let mut d = entry.write();
        d.settings = settings;
        d.approval_conditions = Arc::new(conditions);
        Ok(())
    }

    async fn apply(&self, c: &Change) -> Result<(), StorageError> {
        match c.kind {
            ChangeKind::Org => {
                self.org_entry(&c.org_id);
            }
            ChangeKind::Model => {
                if let Some(id) = &c.model_id {
                    let m = self.db.model(&c.org_id, id).await?;
                    self.add_model(&c.org_id, &m.id, &m.model_json);
                }
            }
            ChangeKind::Settings => self.reload_settings(&c.org_id).await?,
            ChangeKind::TokenRevoked => {
                if let Some(jti) = &c.target {
                    self.oauth.write().revoked.insert(jti.clone());
                }
            }
            ChangeKind::SigningKeys => self.reload_signing_keys().await?,
            ChangeKind::Principal => {
                let parsed = c
                    .target
                    .as_deref()
                    .and_then(|s| s.split_once(':'))
                    .and_then(|(k, id)| PrincipalKind::parse(k).map(|k| (k, id.to_string())));
                if let Some((kind, id)) = parsed {
                    let p = self.db.principal(&c.org_id, kind, &id).await?;
                    self.org_entry(&c.org_id)
                        .write()
                        .principals
                        .insert((kind, id), p);
                }
            }
            ChangeKind::Write => {
                if let Some(t) = &c.tuple {
                    let entry = self.org_entry(&c.org_id);
                    if let Err(e) = entry.write().tuples.insert(t) {
                        tracing::warn!(org = %c.org_id, error = %e, "change not applied");
                    }
                }
            }
            ChangeKind::Delete => {
                if let Some(t) = &c.tuple {
                    let entry = self.org_entry(&c.org_id);
                    let _ = entry.write().tuples.remove(t);
                }
            }
        }
        Ok(())
    }

    /// Applies every committed change memory has not seen yet; returns the revision
    /// reached. One caller at a time; the others wait and then find little to do.
    pub async fn catch_up(&self) -> Result<i64, StorageError> {
        let _one_at_a_time = self.apply_lock.lock().await;
        loop {
            let from = self.applied();
            let changes = self.db.changes(None, from, CHANGES_PAGE).await?;
            let Some(last) = changes.last().map(|c| c.revision) else {
                return Ok(from);
            };
            for c in &changes {
                self.apply(c).await?;
            }
            let full = changes.len() == CHANGES_PAGE as usize;
            // A full page may end inside a revision: count only the complete ones (the
            // rest is read again; re-applying is harmless).
            let done = if full { last - 1 } else { last };
            if done > from {
                self.applied.send_replace(done);
            }
            if !full {
                return Ok(done.max(from));
            }
        }
    }

    /// Waits until memory has reached `revision`, catching up first; fails with
    /// `revision_unavailable` after the configured bound.
    pub async fn wait_for(&self, revision: i64) -> ApiResult<i64> {
        if self.applied() >= revision {
            return Ok(self.applied());
        }
        self.catch_up().await.map_err(ApiError::internal)?;
        let mut rx = self.applied.subscribe();
        let waited = tokio::time::timeout(
            self.limits.consistency_wait,
            rx.wait_for(|v| *v >= revision),
        )
        .await;
        match waited {
            Ok(Ok(v)) => Ok(*v),
            _ => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "revision_unavailable",
                format!(
                    "revision {revision} not reached within {} ms (this node is at {})",
                    self.limits.consistency_wait.as_millis(),
                    self.applied()
                ),
            )),
        }
    }

    /// Brings memory to the latest committed revision.
    pub async fn wait_fully_consistent(&self) -> ApiResult<i64> {
        let latest = self.db.current_revision().await?;
        self.wait_for(latest).await
    }

    /// A key from the cache, if verified recently.
    pub fn cached_key(&self, token_hash: &[u8; 32]) -> Option<ApiKey> {
        let cache = self.key_cache.lock();
        let (key, at) = cache.get(token_hash)?;
        (at.elapsed() < self.limits.key_cache_ttl).then(|| key.clone())
    }

    pub fn cache_key(&self, token_hash: [u8; 32], key: ApiKey) {
        let mut cache = self.key_cache.lock();
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(token_hash, (key, Instant::now()));
    }

    /// Forgets cached keys (after a revocation on this node).
    pub fn forget_keys(&self) {
        self.key_cache.lock().clear();
    }

    /// Follows other nodes' writes: wakes on PostgreSQL notifications, and polls.
    pub async fn follow(self: Arc<Self>, poll: Duration, mut shutdown: watch::Receiver<bool>) {
        let mut listener = if self.db.backend() == warden_storage::Backend::Postgres {
            match sqlx::postgres::PgListener::connect(self.db.url()).await {
                Ok(mut l) => match l.listen(crate::NOTIFY_CHANNEL).await {
                    Ok(()) => Some(l),
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN failed; polling only");
                        None
                    }
                },
                Err(e) => {
                    tracing::warn!(error = %e, "no notification connection; polling only");
                    None
                }
            }
        } else {
            None
        };
        loop {
            let notified = async {
                match listener.as_mut() {
                    Some(l) => {
                        if l.recv().await.is_err() {
                            tokio::time::sleep(poll).await;
                        }
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(poll) => {}
                _ = shutdown.changed() => return,
            }
            if let Err(e) = self.catch_up().await {
                tracing::warn!(error = %e, "catch-up failed; retrying");
            }
        }
    }
}
