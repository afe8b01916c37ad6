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
}

impl Principal {
    /// Whether the principal may take part in a decision at `now_ms`.
    pub fn is_usable(&self, now_ms: i64) -> bool {
        self.status == Status::Active && self.expires_at.is_none_or(|e| now_ms < e)
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

const COLUMNS: &str = "kind, id, display_name, owner, purpose, scopes_json, status, expires_at, created_at, updated_at, redirect_uris";

fn row_to_principal(r: &sqlx::any::AnyRow) -> Result<Principal> {
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
        if !valid_principal_id(&p.id) {
            return Err(StorageError::Invalid(format!(
                "{} id `{}`: 1-128 characters, no whitespace, `:`, `#` or `*`",
                p.kind.as_str(),
                p.id
            )));
        }
        self.get_org(org).await?;
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let now = now_ms();
        let existing: Option<(i64, Option<String>)> = sqlx::query(
            "SELECT created_at, password_hash FROM principals WHERE org_id = $1 AND kind = $2 AND id = $3",
        )
        .bind(org)
        .bind(p.kind.as_str())
        .bind(&p.id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| -> Result<(i64, Option<String>)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
        .transpose()?;
        let created_at = existing.as_ref().map_or(now, |e| e.0);
        let hash = password_hash
            .map(str::to_string)
            .or_else(|| existing.and_then(|e| e.1));
        sqlx::query("DELETE FROM principals WHERE org_id = $1 AND kind = $2 AND id = $3")
            .bind(org)
            .bind(p.kind.as_str())
            .bind(&p.id)
            .execute(&mut *tx)
            .await?;
        let scopes = serde_json::to_string(&p.allowed_scopes)
            .map_err(|e| StorageError::Invalid(e.to_string()))?;
        sqlx::query(
            "INSERT INTO principals (org_id, kind, id, display_name, owner, purpose, scopes_json, status, expires_at, password_hash, created_at, updated_at, revision, redirect_uris) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
        .bind(created_at)
        .bind(now)
        .bind(revision)
        .bind(
            serde_json::to_string(&p.redirect_uris)
                .map_err(|e| StorageError::Invalid(e.to_string()))?,
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO changes (revision, seq, org_id, kind, object, created_at) VALUES ($1, 0, $2, 'principal', $3, $4)",
        )
        .bind(revision)
        .bind(org)
        .bind(p.subject())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut stored = p.clone();
        stored.created_at = created_at;
        stored.updated_at = now;
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
            .map(|r| Ok((r.try_get(11)?, row_to_principal(r)?)))
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
