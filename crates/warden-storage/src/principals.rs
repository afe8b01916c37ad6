//! Principals: users, groups and agents of an organization. Each change is a revision,
//! so every node learns of a suspension at its next catch-up.

use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::{Db, Result, StorageError, next_revision, now_ms};

/// The kind of a principal; also its type name in the relationship model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Group,
    Agent,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::Agent => "agent",
        }
    }

    pub fn parse(s: &str) -> Option<PrincipalKind> {
        match s {
            "user" => Some(PrincipalKind::User),
            "group" => Some(PrincipalKind::Group),
            "agent" => Some(PrincipalKind::Agent),
            _ => None,
        }
    }
}

/// Lifecycle state. Users: active, suspended, deprovisioned. Agents: active,
/// suspended, retired. Groups are always active.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Active,
    Suspended,
    Retired,
    Deprovisioned,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Suspended => "suspended",
            Status::Retired => "retired",
            Status::Deprovisioned => "deprovisioned",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "active" => Some(Status::Active),
            "suspended" => Some(Status::Suspended),
            "retired" => Some(Status::Retired),
            "deprovisioned" => Some(Status::Deprovisioned),
            _ => None,
        }
    }
}

/// A user, group or agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Principal {
    pub kind: PrincipalKind,
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    /// Agents: who is accountable (`user:<id>` or `group:<id>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Agents: the task they exist for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Agents: the most their tokens may ever carry (catalog scope names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_scopes: Vec<String>,
    pub status: Status,
    /// Agents: when they stop being usable (ms since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub updated_at: i64,
    /// Agents: redirect URIs for the authorization code flow, matched exactly.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// Tokens naming this principal (as subject, delegator or actor) issued before this
    /// time (ms since the epoch) are revoked. Set when a user leaves; it only moves
    /// forward, so reactivating a user never revives an old token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens_not_before: Option<i64>,
    /// Agents: why the agent needs attention (its owner left), until an
    /// administrator gives it a new owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flag: Option<String>,
}

impl Principal {
    /// Whether the principal may take part in a decision at `now_ms`.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        self.status == Status::Active && self.expires_at.is_none_or(|e| now_ms < e)
    }

    /// Whether a token issued at `iat` (seconds since the epoch) that names this
    /// principal was revoked by [`Principal::tokens_not_before`].
    pub fn revokes_token_issued_at(&self, iat: i64) -> bool {
        self.tokens_not_before
            .is_some_and(|nb| iat.saturating_mul(1000) < nb)
    }

    /// `kind:id`, its name in the relationship model.
    pub fn subject(&self) -> String {
        format!("{}:{}", self.kind.as_str(), self.id)
    }
}

/// Principal ids: 1-128 characters, none of them whitespace, control, `:` or `#`.
pub fn valid_principal_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && !id
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ':' || c == '#' || c == '*')
}

pub(crate) const COLUMNS: &str = "kind, id, display_name, owner, purpose, scopes_json, status, expires_at, created_at, updated_at, redirect_uris, tokens_not_before, flag";

pub(crate) fn row_to_principal(r: &sqlx::any::AnyRow) -> Result<Principal> {
    let kind: String = r.try_get(0)?;
    let status: String = r.try_get(6)?;
    let scopes: String = r.try_get(5)?;
    Ok(Principal {
        kind: PrincipalKind::parse(&kind)
            .ok_or_else(|| StorageError::Corrupt(format!("principal kind `{kind}`")))?,
        id: r.try_get(1)?,
        display_name: r.try_get(2)?,
        owner: r.try_get(3)?,
        purpose: r.try_get(4)?,
        allowed_scopes: serde_json::from_str(&scopes)
            .map_err(|e| StorageError::Corrupt(e.to_string()))?,
        status: Status::parse(&status)
            .ok_or_else(|| StorageError::Corrupt(format!("status `{status}`")))?,
        expires_at: r.try_get(7)?,
        created_at: r.try_get(8)?,
        updated_at: r.try_get(9)?,
        redirect_uris: match r.try_get::<Option<String>, _>(10)? {
            Some(j) => {
                serde_json::from_str(&j).map_err(|e| StorageError::Corrupt(e.to_string()))?
            }
            None => Vec::new(),
        },
        tokens_not_before: r.try_get(11)?,
        flag: r.try_get(12)?,
    })
}

impl Db {
    /// Creates or replaces a principal (validated by the caller); a revision.
    /// `password_hash`, when given, replaces the stored one (users only).
    pub async fn put_principal(
        &self,
        org: &str,
        p: &Principal,
        password_hash: Option<&str>,
    ) -> Result<(Principal, i64)> {
        check_principal_id(p)?;
        self.get_org(org).await?;
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let mut seq = 0;
        let stored = put_principal_in(&mut tx, org, p, password_hash, revision, &mut seq).await?;
        tx.commit().await?;
        Ok((stored, revision))
    }

    pub async fn principal(&self, org: &str, kind: PrincipalKind, id: &str) -> Result<Principal> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM principals WHERE org_id = $1 AND kind = $2 AND id = $3"
        )))
        .bind(org.to_string())
        .bind(kind.as_str())
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StorageError::NotFound {
            what: kind.as_str(),
            name: id.to_string(),
        })?;
        row_to_principal(&row)
    }

    /// The principals of an organization (all kinds when `kind` is `None`).
    pub async fn principals(
        &self,
        org: &str,
        kind: Option<PrincipalKind>,
    ) -> Result<Vec<Principal>> {
        let rows =
            match kind {
                Some(k) => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM principals WHERE org_id = $1 AND kind = $2 ORDER BY id"
                )))
                .bind(org.to_string())
                .bind(k.as_str())
                .fetch_all(self.pool())
                .await?,
                None => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {COLUMNS} FROM principals WHERE org_id = $1 ORDER BY kind, id"
                    )))
                    .bind(org.to_string())
                    .fetch_all(self.pool())
                    .await?
                }
            };
        rows.iter().map(row_to_principal).collect()
    }

    /// Every principal of every organization (for loading at start).
    pub async fn all_principals(&self) -> Result<Vec<(String, Principal)>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS}, org_id FROM principals"
        )))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(13)?, row_to_principal(r)?)))
            .collect()
    }

    /// A user's password hash, if one was set.
    pub async fn password_hash(&self, org: &str, user: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT password_hash FROM principals WHERE org_id = $1 AND kind = 'user' AND id = $2",
        )
        .bind(org)
        .bind(user)
        .fetch_optional(self.pool())
        .await?
        .flatten())
    }
}

fn check_principal_id(p: &Principal) -> Result<()> {
    if valid_principal_id(&p.id) {
        Ok(())
    } else {
        Err(StorageError::Invalid(format!(
            "{} id `{}`: 1-128 characters, no whitespace, `:`, `#` or `*`",
            p.kind.as_str(),
            p.id
        )))
    }
}

/// Writes `p` inside `tx` at `revision` (change number `seq`, then incremented). Keeps
/// what the caller cannot know: the creation time, the password hash unless a new one
/// is given, the latest `tokens_not_before`, and an agent's flag unless its owner
/// changed.
pub(crate) async fn put_principal_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org: &str,
    p: &Principal,
    password_hash: Option<&str>,
    revision: i64,
    seq: &mut i64,
) -> Result<Principal> {
    check_principal_id(p)?;
    let now = now_ms();
    type Existing = (
        i64,
        Option<String>,
        Option<i64>,
        Option<String>,
        Option<String>,
    );
    let existing: Option<Existing> = sqlx::query(
        "SELECT created_at, password_hash, tokens_not_before, flag, owner FROM principals WHERE org_id = $1 AND kind = $2 AND id = $3",
    )
    .bind(org)
    .bind(p.kind.as_str())
    .bind(&p.id)
    .fetch_optional(&mut **tx)
    .await?
    .map(|r| -> Result<Existing> {
        Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?, r.try_get(4)?))
    })
    .transpose()?;
    let mut stored = p.clone();
    stored.created_at = existing.as_ref().map_or(now, |e| e.0);
    stored.updated_at = now;
    stored.tokens_not_before = [p.tokens_not_before, existing.as_ref().and_then(|e| e.2)]
        .into_iter()
        .flatten()
        .max();
    if p.flag.is_none()
        && let Some(e) = &existing
        && e.4 == p.owner
    {
        stored.flag = e.3.clone();
    }
    let hash = password_hash
        .map(str::to_string)
        .or_else(|| existing.and_then(|e| e.1));
    sqlx::query("DELETE FROM principals WHERE org_id = $1 AND kind = $2 AND id = $3")
        .bind(org)
        .bind(p.kind.as_str())
        .bind(&p.id)
        .execute(&mut **tx)
        .await?;
    let scopes = serde_json::to_string(&p.allowed_scopes)
        .map_err(|e| StorageError::Invalid(e.to_string()))?;
    sqlx::query(
        "INSERT INTO principals (org_id, kind, id, display_name, owner, purpose, scopes_json, status, expires_at, password_hash, created_at, updated_at, revision, redirect_uris, tokens_not_before, flag) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(org)
    .bind(p.kind.as_str())
    .bind(&p.id)
    .bind(&p.display_name)
    .bind(p.owner.clone())
    .bind(p.purpose.clone())
    .bind(scopes)
    .bind(p.status.as_str())
    .bind(p.expires_at)
    .bind(hash)
    .bind(stored.created_at)
    .bind(now)
    .bind(revision)
    .bind(
        serde_json::to_string(&p.redirect_uris)
            .map_err(|e| StorageError::Invalid(e.to_string()))?,
    )
    .bind(stored.tokens_not_before)
    .bind(stored.flag.clone())
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO changes (revision, seq, org_id, kind, object, created_at) VALUES ($1, $2, $3, 'principal', $4, $5)",
    )
    .bind(revision)
    .bind(*seq)
    .bind(org)
    .bind(p.subject())
    .bind(now)
    .execute(&mut **tx)
    .await?;
    *seq += 1;
    Ok(stored)
}
