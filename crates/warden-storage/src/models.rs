//! Authorization models: immutable, versioned per organization. The latest written is
//! the current one.

use serde::Serialize;
use sqlx::Row;

use crate::{Db, Result, StorageError, next_revision, now_ms};

/// A stored model: its id, its JSON form, and the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StoredModel {
    pub org_id: String,
    pub id: String,
    pub model_json: String,
    pub created_at: i64,
    pub revision: i64,
}

fn row_to_model(r: &sqlx::any::AnyRow) -> Result<StoredModel> {
    Ok(StoredModel {
        org_id: r.try_get(0)?,
        id: r.try_get(1)?,
        model_json: r.try_get(2)?,
        created_at: r.try_get(3)?,
        revision: r.try_get(4)?,
    })
}

impl Db {
    /// Stores a new model version (already validated by the caller). Returns its id
    /// (time-ordered, so later models sort after earlier ones) and revision.
    pub async fn write_model(&self, org: &str, model_json: &str) -> Result<StoredModel> {
        self.get_org(org).await?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let now = now_ms();
        sqlx::query(
            "INSERT INTO models (org_id, id, model_json, created_at, revision) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(org)
        .bind(&id)
        .bind(model_json)
        .bind(now)
        .bind(revision)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO changes (revision, seq, org_id, kind, model_id, created_at) VALUES ($1, 0, $2, 'model', $3, $4)",
        )
        .bind(revision)
        .bind(org)
        .bind(&id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(StoredModel {
            org_id: org.to_string(),
            id,
            model_json: model_json.to_string(),
            created_at: now,
            revision,
        })
    }

    /// Every model of `org`, oldest first.
    pub async fn models(&self, org: &str) -> Result<Vec<StoredModel>> {
        let rows = sqlx::query(
            "SELECT org_id, id, model_json, created_at, revision FROM models WHERE org_id = $1 ORDER BY revision",
        )
        .bind(org)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_model).collect()
    }

    /// Every model of every organization, oldest first (for loading at start).
    pub async fn all_models(&self) -> Result<Vec<StoredModel>> {
        let rows = sqlx::query(
            "SELECT org_id, id, model_json, created_at, revision FROM models ORDER BY revision",
        )
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(row_to_model).collect()
    }

    pub async fn model(&self, org: &str, id: &str) -> Result<StoredModel> {
        let row = sqlx::query(
            "SELECT org_id, id, model_json, created_at, revision FROM models WHERE org_id = $1 AND id = $2",
        )
        .bind(org)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .ok_or_else(|| StorageError::NotFound {
            what: "model",
            name: id.to_string(),
        })?;
        row_to_model(&row)
    }
}
