//! API keys: `wdn_<id>_<secret>`. Only a SHA-256 of the 256-bit random secret is
//! stored (a slow password hash buys nothing for a secret of full entropy, and would
//! cost every request milliseconds). A key belongs to one organization with a role, or
//! is a server administrator key (no organization).

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use subtle::ConstantTimeEq;

use crate::{Db, Result, StorageError, now_ms};

/// What a key may do. Each of checker, writer and admin includes the ones below it;
/// directory stands apart (SCIM only).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Directory sync only: the SCIM endpoints of its organization, nothing else.
    Directory,
    /// Check, list, expand, AuthZEN evaluations; read models.
    Checker,
    /// Also write models and tuples, read tuples and changes.
    Writer,
    /// Also manage the organization's keys (or, without an organization, everything).
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Directory => "directory",
            Role::Checker => "checker",
            Role::Writer => "writer",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "directory" => Some(Role::Directory),
            "checker" => Some(Role::Checker),
            "writer" => Some(Role::Writer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A key as stored (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    pub id: String,
    /// `None`: a server administrator key.
    pub org_id: Option<String>,
    pub role: Role,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A key just created: the only time its secret token exists outside the client.
#[derive(Debug, Clone, Serialize)]
pub struct NewKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The bearer token to present: `wdn_<id>_<secret>`.
    pub token: String,
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Splits a bearer token into (id, secret).
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("wdn_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16
        && secret.len() == 64
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && secret.bytes().all(|b| b.is_ascii_hexdigit()))
    .then_some((id, secret))
}

fn row_to_key(r: &sqlx::any::AnyRow) -> Result<ApiKey> {
    let role: String = r.try_get(2)?;
    Ok(ApiKey {
        id: r.try_get(0)?,
        org_id: r.try_get(1)?,
        role: Role::parse(&role).ok_or_else(|| StorageError::Corrupt(format!("role `{role}`")))?,
        name: r.try_get(3)?,
        created_at: r.try_get(4)?,
        last_used_at: r.try_get(5)?,
        revoked_at: r.try_get(6)?,
    })
}

const KEY_COLUMNS: &str = "id, org_id, role, name, created_at, last_used_at, revoked_at";

impl Db {
    /// Creates a key; the returned token is shown once and never stored.
    pub async fn create_key(&self, org: Option<&str>, role: Role, name: &str) -> Result<NewKey> {
        if let Some(o) = org {
            self.get_org(o).await?;
        }
        if name.len() > 200 {
            return Err(StorageError::Invalid(
                "key name longer than 200 bytes".into(),
            ));
        }
        let mut id = [0u8; 8];
        let mut secret = [0u8; 32];
        {
            // The thread-local generator must not live across an await.
            let mut rng = rand::rng();
            rng.fill_bytes(&mut id);
            rng.fill_bytes(&mut secret);
        }
        let (id, secret) = (hex::encode(id), hex::encode(secret));
        let now = now_ms();
        sqlx::query(
            "INSERT INTO api_keys (id, org_id, role, name, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(org.map(str::to_string))
        .bind(role.as_str())
        .bind(name)
        .bind(hash(&secret))
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(NewKey {
            token: format!("wdn_{id}_{secret}"),
            key: ApiKey {
                id,
                org_id: org.map(str::to_string),
                role,
                name: name.to_string(),
                created_at: now,
                last_used_at: None,
                revoked_at: None,
            },
        })
    }

    /// The live key a bearer token names, if its secret matches (constant-time).
    pub async fn verify_key(&self, token: &str) -> Result<Option<ApiKey>> {
        let Some((id, secret)) = parse_token(token) else {
            return Ok(None);
        };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS}, secret_hash FROM api_keys WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stored: String = row.try_get(7)?;
        if !bool::from(stored.as_bytes().ct_eq(hash(secret).as_bytes())) {
            return Ok(None);
        }
        let key = row_to_key(&row)?;
        Ok(key.revoked_at.is_none().then_some(key))
    }

    /// Records that a key was used (best effort, coarse: callers throttle it).
    pub async fn touch_key(&self, id: &str) -> Result<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Keys of an organization (or the server administrator keys for `None`).
    pub async fn list_keys(&self, org: Option<&str>) -> Result<Vec<ApiKey>> {
        let rows =
            match org {
                Some(o) => {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY created_at"
                    )))
                    .bind(o.to_string())
                    .fetch_all(self.pool())
                    .await?
                }
                None => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id IS NULL ORDER BY created_at"
                )))
                .fetch_all(self.pool())
                .await?,
            };
        rows.iter().map(row_to_key).collect()
    }

    /// Revokes a key of `org` (`None`: a server administrator key).
    pub async fn revoke_key(&self, org: Option<&str>, id: &str) -> Result<()> {
        let res = match org {
            Some(o) => sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND org_id = $3 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(id)
            .bind(o.to_string())
            .execute(self.pool())
            .await?,
            None => sqlx::query(
                "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND org_id IS NULL AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(id)
            .execute(self.pool())
            .await?,
        };
        if res.rows_affected() == 0 {
            return Err(StorageError::NotFound {
                what: "key",
                name: id.to_string(),
            });
        }
        Ok(())
    }

    /// Whether any live server administrator key exists (else one is bootstrapped).
    pub async fn has_admin_key(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM api_keys WHERE org_id IS NULL AND role = 'admin' AND revoked_at IS NULL",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(n > 0)
    }
}
