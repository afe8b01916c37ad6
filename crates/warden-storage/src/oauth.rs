//! OAuth state: token signing keys, agent credentials, revoked tokens and used client
//! assertions. Key and revocation changes are revisions, so every node learns of them.

use serde::Serialize;
use sqlx::Row;

use crate::{Db, Result, StorageError, next_revision, now_ms};

/// A stored signing key (the private part hex-encoded PKCS#8).
#[derive(Debug, Clone)]
pub struct StoredSigningKey {
    pub kid: String,
    pub private_der_hex: String,
    pub public_x: String,
    /// `current` (signs), `next` (published, signs after rotation), `retired`
    /// (published until the tokens it signed expire).
    pub state: String,
    pub created_at: i64,
}

/// An agent credential, never with its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Credential {
    pub id: String,
    pub agent_id: String,
    /// `jwk` (a registered public key, for `private_key_jwt`) or `secret`.
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_jwk: Option<serde_json::Value>,
    #[serde(skip)]
    pub secret_hash: Option<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl Credential {
    pub fn is_live(&self, now: i64) -> bool {
        self.revoked_at.is_none() && self.expires_at.is_none_or(|e| now < e)
    }
}

const CRED_COLUMNS: &str =
    "id, agent_id, kind, public_jwk, secret_hash, created_at, last_used_at, expires_at, revoked_at";

fn row_to_credential(r: &sqlx::any::AnyRow) -> Result<Credential> {
    let jwk: Option<String> = r.try_get(3)?;
    Ok(Credential {
        id: r.try_get(0)?,
        agent_id: r.try_get(1)?,
        kind: r.try_get(2)?,
        public_jwk: jwk
            .map(|j| serde_json::from_str(&j).map_err(|e| StorageError::Corrupt(e.to_string())))
            .transpose()?,
        secret_hash: r.try_get(4)?,
        created_at: r.try_get(5)?,
        last_used_at: r.try_get(6)?,
        expires_at: r.try_get(7)?,
        revoked_at: r.try_get(8)?,
    })
}

async fn change(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    revision: i64,
    org: &str,
    kind: &str,
    object: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO changes (revision, seq, org_id, kind, object, created_at) VALUES ($1, 0, $2, $3, $4, $5)",
    )
    .bind(revision)
    .bind(org)
    .bind(kind)
    .bind(object)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Db {
    /// Every signing key that is not fully retired.
    pub async fn signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
        let rows = sqlx::query(
            "SELECT kid, private_der, public_x, state, created_at FROM signing_keys WHERE state <> 'expired' ORDER BY created_at",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StoredSigningKey {
                    kid: r.try_get(0)?,
                    private_der_hex: r.try_get(1)?,
                    public_x: r.try_get(2)?,
                    state: r.try_get(3)?,
                    created_at: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Stores a signing key in `state`; a revision (nodes reload their keys).
    pub async fn add_signing_key(&self, k: &StoredSigningKey) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_der, public_x, state, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&k.kid)
        .bind(&k.private_der_hex)
        .bind(&k.public_x)
        .bind(&k.state)
        .bind(k.created_at)
        .execute(&mut *tx)
        .await?;
        change(&mut tx, revision, "", "signing_keys", &k.kid).await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Rotation: `next` becomes `current`, `current` becomes `retired` (still published),
    /// older retired keys expire, and `new_next` is stored as `next`. One revision.
    pub async fn rotate_signing_keys(&self, new_next: &StoredSigningKey) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        for (from, to) in [
            ("retired", "expired"),
            ("current", "retired"),
            ("next", "current"),
        ] {
            sqlx::query("UPDATE signing_keys SET state = $1 WHERE state = $2")
                .bind(to)
                .bind(from)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO signing_keys (kid, private_der, public_x, state, created_at) VALUES ($1, $2, $3, 'next', $4)",
        )
        .bind(&new_next.kid)
        .bind(&new_next.private_der_hex)
        .bind(&new_next.public_x)
        .bind(new_next.created_at)
        .execute(&mut *tx)
        .await?;
        change(&mut tx, revision, "", "signing_keys", &new_next.kid).await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Registers a credential for an agent.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_credential(
        &self,
        org: &str,
        agent: &str,
        id: &str,
        kind: &str,
        public_jwk: Option<&serde_json::Value>,
        secret_hash: Option<&str>,
        expires_at: Option<i64>,
    ) -> Result<Credential> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO credentials (org_id, agent_id, id, kind, public_jwk, secret_hash, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(org)
        .bind(agent)
        .bind(id)
        .bind(kind)
        .bind(public_jwk.map(|j| j.to_string()))
        .bind(secret_hash.map(str::to_string))
        .bind(now)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(Credential {
            id: id.to_string(),
            agent_id: agent.to_string(),
            kind: kind.to_string(),
            public_jwk: public_jwk.cloned(),
            secret_hash: secret_hash.map(str::to_string),
            created_at: now,
            last_used_at: None,
            expires_at,
            revoked_at: None,
        })
    }

    /// An agent's credentials (all, revoked included).
    pub async fn credentials(&self, org: &str, agent: &str) -> Result<Vec<Credential>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CRED_COLUMNS} FROM credentials WHERE org_id = $1 AND agent_id = $2 ORDER BY created_at"
        )))
        .bind(org.to_string())
        .bind(agent.to_string())
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_credential).collect()
    }

    pub async fn revoke_credential(&self, org: &str, agent: &str, id: &str) -> Result<()> {
        let res = sqlx::query(
            "UPDATE credentials SET revoked_at = $1 WHERE org_id = $2 AND agent_id = $3 AND id = $4 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(org)
        .bind(agent)
        .bind(id)
        .execute(self.pool())
        .await?;
        if res.rows_affected() == 0 {
            return Err(StorageError::NotFound {
                what: "credential",
                name: id.to_string(),
            });
        }
        Ok(())
    }

    pub async fn touch_credential(&self, org: &str, id: &str) -> Result<()> {
        sqlx::query("UPDATE credentials SET last_used_at = $1 WHERE org_id = $2 AND id = $3")
            .bind(now_ms())
            .bind(org)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Records a client assertion's `jti`; false if it was seen before (a replay).
    pub async fn use_assertion(&self, jti: &str, expires_at: i64) -> Result<bool> {
        let res = sqlx::query("INSERT INTO used_assertions (jti, expires_at) VALUES ($1, $2)")
            .bind(jti)
            .bind(expires_at)
            .execute(self.pool())
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if StorageError::is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes an access token by `jti` until it would expire; a revision.
    pub async fn revoke_token(&self, org: &str, jti: &str, expires_at: i64) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT jti FROM revoked_tokens WHERE jti = $1")
                .bind(jti)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            sqlx::query(
                "INSERT INTO revoked_tokens (jti, org_id, expires_at, revoked_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(jti)
            .bind(org)
            .bind(expires_at)
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        change(&mut tx, revision, org, "token_revoked", jti).await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// Revoked token ids that have not expired yet.
    pub async fn revoked_tokens(&self, now_secs: i64) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar("SELECT jti FROM revoked_tokens WHERE expires_at >= $1")
                .bind(now_secs)
                .fetch_all(self.pool())
                .await?,
        )
    }
}

/// An authorization code's grant (stored by the digest of the code).
#[derive(Debug, Clone)]
pub struct AuthCode {
    pub org_id: String,
    pub agent_id: String,
    pub user_id: String,
    pub scope: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub expires_at: i64,
}

/// What presenting a code or refresh token found.
#[derive(Debug, Clone)]
pub enum Redeemed<T> {
    /// First use: here is the grant.
    Fresh(T),
    /// Used before: a replay (for refresh tokens, the whole family is now revoked).
    Reused(T),
    /// Unknown (or revoked).
    Missing,
}

/// A refresh token's grant.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub family: String,
    pub org_id: String,
    pub agent_id: String,
    pub user_id: String,
    pub scope: String,
    pub resource: String,
    pub expires_at: i64,
}

fn row_to_code(r: &sqlx::any::AnyRow) -> Result<AuthCode> {
    Ok(AuthCode {
        org_id: r.try_get(0)?,
        agent_id: r.try_get(1)?,
        user_id: r.try_get(2)?,
        scope: r.try_get(3)?,
        redirect_uri: r.try_get(4)?,
        code_challenge: r.try_get(5)?,
        resource: r.try_get(6)?,
        expires_at: r.try_get(7)?,
    })
}

fn row_to_refresh(r: &sqlx::any::AnyRow) -> Result<RefreshGrant> {
    Ok(RefreshGrant {
        family: r.try_get(0)?,
        org_id: r.try_get(1)?,
        agent_id: r.try_get(2)?,
        user_id: r.try_get(3)?,
        scope: r.try_get(4)?,
        resource: r.try_get(5)?,
        expires_at: r.try_get(6)?,
    })
}

impl Db {
    pub async fn create_auth_code(&self, code_hash: &str, c: &AuthCode) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, org_id, agent_id, user_id, scope, redirect_uri, code_challenge, resource, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(code_hash)
        .bind(&c.org_id)
        .bind(&c.agent_id)
        .bind(&c.user_id)
        .bind(&c.scope)
        .bind(&c.redirect_uri)
        .bind(&c.code_challenge)
        .bind(&c.resource)
        .bind(c.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Marks a code used (atomically: only the first presenter gets `Fresh`).
    pub async fn redeem_auth_code(&self, code_hash: &str) -> Result<Redeemed<AuthCode>> {
        let cols =
            "org_id, agent_id, user_id, scope, redirect_uri, code_challenge, resource, expires_at";
        let res = sqlx::query(
            "UPDATE auth_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL",
        )
        .bind(now_ms())
        .bind(code_hash)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM auth_codes WHERE code_hash = $1"
        )))
        .bind(code_hash.to_string())
        .fetch_optional(self.pool())
        .await?;
        Ok(match row {
            None => Redeemed::Missing,
            Some(r) if res.rows_affected() == 1 => Redeemed::Fresh(row_to_code(&r)?),
            Some(r) => Redeemed::Reused(row_to_code(&r)?),
        })
    }

    pub async fn store_refresh_token(&self, token_hash: &str, g: &RefreshGrant) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, family, org_id, agent_id, user_id, scope, resource, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token_hash)
        .bind(&g.family)
        .bind(&g.org_id)
        .bind(&g.agent_id)
        .bind(&g.user_id)
        .bind(&g.scope)
        .bind(&g.resource)
        .bind(g.expires_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Uses a refresh token once. Presenting a used one revokes its whole family.
    pub async fn redeem_refresh_token(&self, token_hash: &str) -> Result<Redeemed<RefreshGrant>> {
        let cols =
            "family, org_id, agent_id, user_id, scope, resource, expires_at, used_at, revoked_at";
        let res = sqlx::query(
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at IS NULL AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(token_hash)
        .execute(self.pool())
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {cols} FROM refresh_tokens WHERE token_hash = $1"
        )))
        .bind(token_hash.to_string())
        .fetch_optional(self.pool())
        .await?;
        let Some(r) = row else {
            return Ok(Redeemed::Missing);
        };
        let grant = row_to_refresh(&r)?;
        if res.rows_affected() == 1 {
            return Ok(Redeemed::Fresh(grant));
        }
        let used: Option<i64> = r.try_get(7)?;
        if used.is_some() {
            sqlx::query(
                "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
            )
            .bind(now_ms())
            .bind(&grant.family)
            .execute(self.pool())
            .await?;
            return Ok(Redeemed::Reused(grant));
        }
        Ok(Redeemed::Missing)
    }
}

impl Db {
    /// Stores a dynamically registered client (RFC 7591), not yet bound to an
    /// organization.
    pub async fn register_dynamic_client(
        &self,
        client_id: &str,
        metadata: &serde_json::Value,
    ) -> Result<()> {
        sqlx::query("INSERT INTO dynamic_clients (client_id, metadata_json, created_at) VALUES ($1, $2, $3)")
            .bind(client_id)
            .bind(metadata.to_string())
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A dynamic client's metadata and the organization it is bound to, if any.
    pub async fn dynamic_client(
        &self,
        client_id: &str,
    ) -> Result<Option<(serde_json::Value, Option<String>)>> {
        let row =
            sqlx::query("SELECT metadata_json, org_id FROM dynamic_clients WHERE client_id = $1")
                .bind(client_id)
                .fetch_optional(self.pool())
                .await?;
        row.map(|r| {
            let m: String = r.try_get(0)?;
            Ok((
                serde_json::from_str(&m).map_err(|e| StorageError::Corrupt(e.to_string()))?,
                r.try_get(1)?,
            ))
        })
        .transpose()
    }

    /// Binds a dynamic client to an organization; false if it was bound already.
    pub async fn bind_dynamic_client(&self, client_id: &str, org: &str) -> Result<bool> {
        let res = sqlx::query(
            "UPDATE dynamic_clients SET org_id = $1 WHERE client_id = $2 AND org_id IS NULL",
        )
        .bind(org)
        .bind(client_id)
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() == 1)
    }
}

impl Db {
    /// Revokes every refresh token of the family `token_hash` belongs to, if it is the
    /// client's (`org`, `agent`); false if no such token.
    pub async fn revoke_refresh_family(
        &self,
        token_hash: &str,
        org: &str,
        agent: &str,
    ) -> Result<bool> {
        let family: Option<String> = sqlx::query_scalar(
            "SELECT family FROM refresh_tokens WHERE token_hash = $1 AND org_id = $2 AND agent_id = $3",
        )
        .bind(token_hash)
        .bind(org)
        .bind(agent)
        .fetch_optional(self.pool())
        .await?;
        let Some(family) = family else {
            return Ok(false);
        };
        sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(&family)
        .execute(self.pool())
        .await?;
        Ok(true)
    }
}
