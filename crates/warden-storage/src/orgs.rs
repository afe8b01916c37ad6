//! Organizations: the tenants. Every model, tuple and key belongs to exactly one.

use serde::Serialize;
use sqlx::Row;

use crate::{Db, Result, StorageError, next_revision, now_ms};

/// An organization. Its id is the name given at creation (a slug).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Org {
    pub id: String,
    pub created_at: i64,
}

/// Org ids: 1-63 characters of `a-z`, `0-9` and `-`, starting with a letter or digit.
pub fn valid_org_id(id: &str) -> bool {
    (1..=63).contains(&id.len())
        && id
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.starts_with('-')
}

impl Db {
    /// Creates an organization; its creation is a revision (so other nodes learn of it).
    pub async fn create_org(&self, id: &str) -> Result<(Org, i64)> {
        if !valid_org_id(id) {
            return Err(StorageError::Invalid(format!(
                "organization id `{id}`: use 1-63 characters of a-z, 0-9 and -, not starting with -"
            )));
        }
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let now = now_ms();
        let res = sqlx::query("INSERT INTO orgs (id, created_at, revision) VALUES ($1, $2, $3)")
            .bind(id)
            .bind(now)
            .bind(revision)
            .execute(&mut *tx)
            .await;
        if let Err(e) = res {
            return Err(if StorageError::is_unique_violation(&e) {
                StorageError::Conflict {
                    what: "organization",
                    name: id.to_string(),
                }
            } else {
                e.into()
            });
        }
        sqlx::query(
            "INSERT INTO changes (revision, seq, org_id, kind, created_at) VALUES ($1, 0, $2, 'org', $3)",
        )
        .bind(revision)
        .bind(id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((
            Org {
                id: id.to_string(),
                created_at: now,
            },
            revision,
        ))
    }

    pub async fn get_org(&self, id: &str) -> Result<Org> {
        let row = sqlx::query("SELECT id, created_at FROM orgs WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await?
            .ok_or_else(|| StorageError::NotFound {
                what: "organization",
                name: id.to_string(),
            })?;
        Ok(Org {
            id: row.try_get(0)?,
            created_at: row.try_get(1)?,
        })
    }

    pub async fn list_orgs(&self) -> Result<Vec<Org>> {
        let rows = sqlx::query("SELECT id, created_at FROM orgs ORDER BY id")
            .fetch_all(self.pool())
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Org {
                    id: r.try_get(0)?,
                    created_at: r.try_get(1)?,
                })
            })
            .collect()
    }
}

impl Db {
    /// Replaces an organization's settings (a JSON document the server interprets);
    /// a revision, so other nodes reload them.
    pub async fn set_org_settings(&self, org: &str, settings_json: &str) -> Result<i64> {
        self.get_org(org).await?;
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        sqlx::query("DELETE FROM org_settings WHERE org_id = $1")
            .bind(org)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO org_settings (org_id, settings_json, revision) VALUES ($1, $2, $3)",
        )
        .bind(org)
        .bind(settings_json)
        .bind(revision)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO changes (revision, seq, org_id, kind, created_at) VALUES ($1, 0, $2, 'settings', $3)",
        )
        .bind(revision)
        .bind(org)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(revision)
    }

    /// An organization's settings document, if any was set.
    pub async fn org_settings(&self, org: &str) -> Result<Option<String>> {
        Ok(
            sqlx::query_scalar("SELECT settings_json FROM org_settings WHERE org_id = $1")
                .bind(org)
                .fetch_optional(self.pool())
                .await?,
        )
    }
}
