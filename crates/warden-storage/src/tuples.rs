//! Relationship tuples: atomic batch writes and deletes under one revision, filtered
//! and paginated reads, and the changes feed.

use serde::{Deserialize, Serialize};
use sqlx::Row;
use warden_engine::TupleKey;
use warden_engine::tuple::TupleCondition;

use crate::{Db, Result, StorageError, next_revision, now_ms, require_org};

/// A tuple as stored, with the revision that wrote it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredTuple {
    #[serde(flatten)]
    pub key: TupleKey,
    pub revision: i64,
}

/// What a change did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// An organization was created.
    Org,
    /// A model was written (`model_id`).
    Model,
    /// A tuple was written.
    Write,
    /// A tuple was deleted.
    Delete,
    /// The organization's settings changed.
    Settings,
    /// A principal (user, group, agent) was created or changed.
    Principal,
    /// An access token was revoked.
    TokenRevoked,
    /// The token signing keys changed (server-wide).
    SigningKeys,
}

/// One entry of the changes feed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub revision: i64,
    #[serde(skip)]
    pub seq: i64,
    #[serde(skip)]
    pub org_id: String,
    pub kind: ChangeKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tuple: Option<TupleKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// What a principal, token or key change is about: the principal (`kind:id`), the
    /// revoked token's `jti`, or the signing key id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    pub created_at: i64,
}

/// Which tuples a read returns; every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFilter {
    /// `type` or `type:id`.
    pub object: Option<String>,
    pub relation: Option<String>,
    pub user: Option<String>,
}

/// One page of a read, and the token for the next (none on the last page).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReadPage {
    pub tuples: Vec<StoredTuple>,
    pub continuation_token: Option<String>,
}

fn split_object(object: &str) -> Result<(&str, &str)> {
    object
        .split_once(':')
        .filter(|(t, i)| !t.is_empty() && !i.is_empty())
        .ok_or_else(|| StorageError::Invalid(format!("object `{object}`: expected type:id")))
}

fn context_json(t: &TupleKey) -> Result<(Option<String>, Option<String>)> {
    match &t.condition {
        None => Ok((None, None)),
        Some(c) => {
            let ctx = match &c.context {
                Some(m) if !m.is_empty() => Some(
                    serde_json::to_string(m).map_err(|e| StorageError::Invalid(e.to_string()))?,
                ),
                _ => None,
            };
            Ok((Some(c.name.clone()), ctx))
        }
    }
}

fn to_key(
    object: String,
    relation: String,
    user: String,
    cond: Option<String>,
    ctx: Option<String>,
) -> Result<TupleKey> {
    let condition = match cond {
        None => None,
        Some(name) => Some(TupleCondition {
            name,
            context: match ctx {
                None => None,
                Some(s) => Some(
                    serde_json::from_str(&s).map_err(|e| StorageError::Corrupt(e.to_string()))?,
                ),
            },
        }),
    };
    Ok(TupleKey {
        user,
        relation,
        object,
        condition,
    })
}

/// Encodes the key a page ended on (opaque to clients).
fn encode_token(t: &(String, String, String, String)) -> String {
    hex::encode(serde_json::to_vec(t).unwrap_or_default())
}

fn decode_token(s: &str) -> Result<(String, String, String, String)> {
    let bad = || StorageError::Invalid("invalid continuation token".into());
    let bytes = hex::decode(s).map_err(|_| bad())?;
    serde_json::from_slice(&bytes).map_err(|_| bad())
}

impl Db {
    /// Writes and deletes tuples in one transaction under one new revision: all or
    /// nothing. Writing a tuple that exists, or deleting one that does not, fails the
    /// whole batch. Tuples must already be validated against the model.
    pub async fn write_tuples(
        &self,
        org: &str,
        writes: &[TupleKey],
        deletes: &[TupleKey],
    ) -> Result<i64> {
        let mut tx = self.begin_write().await?;
        require_org(&mut tx, org).await?;
        let revision = next_revision(&mut tx).await?;
        let mut seq: i64 = 0;
        for t in deletes {
            if !delete_tuple_in(&mut tx, org, revision, &mut seq, t).await? {
                return Err(StorageError::NotFound {
                    what: "tuple",
                    name: format!("{}#{}@{}", t.object, t.relation, t.user),
                });
            }
        }
        for t in writes {
            if !insert_tuple_in(&mut tx, org, revision, &mut seq, t, false).await? {
                return Err(StorageError::Conflict {
                    what: "tuple",
                    name: format!("{}#{}@{}", t.object, t.relation, t.user),
                });
            }
        }
        tx.commit().await?;
        Ok(revision)
    }

    /// Reads tuples of `org` matching `filter`, in key order, `page_size` at a time.
    pub async fn read_tuples(
        &self,
        org: &str,
        filter: &ReadFilter,
        page_size: u32,
        token: Option<&str>,
    ) -> Result<ReadPage> {
        let page_size = page_size.clamp(1, 1000) as i64;
        let mut sql = String::from(
            "SELECT object_type, object_id, relation, subject, condition_name, condition_context, revision FROM tuples WHERE org_id = $1",
        );
        let mut binds: Vec<String> = vec![org.to_string()];
        let mut push = |sql: &mut String, clause: &str, v: String| {
            binds.push(v);
            sql.push_str(&clause.replace('?', &format!("${}", binds.len())));
        };
        if let Some(o) = &filter.object {
            match o.split_once(':') {
                Some((t, i)) => {
                    push(&mut sql, " AND object_type = ?", t.to_string());
                    if !i.is_empty() {
                        push(&mut sql, " AND object_id = ?", i.to_string());
                    }
                }
                None => push(&mut sql, " AND object_type = ?", o.clone()),
            }
        }
        if let Some(r) = &filter.relation {
            push(&mut sql, " AND relation = ?", r.clone());
        }
        if let Some(u) = &filter.user {
            push(&mut sql, " AND subject = ?", u.clone());
        }
        if let Some(tok) = token {
            let (a, b, c, d) = decode_token(tok)?;
            push(&mut sql, " AND (object_type > ?", a.clone());
            push(&mut sql, " OR (object_type = ?", a);
            push(&mut sql, " AND (object_id > ?", b.clone());
            push(&mut sql, " OR (object_id = ?", b);
            push(&mut sql, " AND (relation > ?", c.clone());
            push(&mut sql, " OR (relation = ?", c);
            push(&mut sql, " AND subject > ?))))))", d);
        }
        sql.push_str(&format!(
            " ORDER BY object_type, object_id, relation, subject LIMIT {}",
            page_size + 1
        ));
        // The SQL is built from the fixed fragments above; every value is bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        let rows = q.fetch_all(self.pool()).await?;
        let mut tuples = Vec::with_capacity(rows.len());
        let mut last = None;
        for r in rows.iter().take(page_size as usize) {
            let ty: String = r.try_get(0)?;
            let id: String = r.try_get(1)?;
            let rel: String = r.try_get(2)?;
            let subject: String = r.try_get(3)?;
            last = Some((ty.clone(), id.clone(), rel.clone(), subject.clone()));
            tuples.push(StoredTuple {
                key: to_key(
                    format!("{ty}:{id}"),
                    rel,
                    subject,
                    r.try_get(4)?,
                    r.try_get(5)?,
                )?,
                revision: r.try_get(6)?,
            });
        }
        let continuation_token = if rows.len() as i64 > page_size {
            last.as_ref().map(encode_token)
        } else {
            None
        };
        Ok(ReadPage {
            tuples,
            continuation_token,
        })
    }

    /// Changes after `after` (exclusive), oldest first: of one organization, or of all
    /// when `org` is `None`.
    pub async fn changes(&self, org: Option<&str>, after: i64, limit: u32) -> Result<Vec<Change>> {
        let limit = limit.clamp(1, 10_000) as i64;
        let cols = "SELECT revision, seq, org_id, kind, object, relation, subject, condition_name, condition_context, model_id, created_at FROM changes";
        let rows = match org {
            Some(o) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "{cols} WHERE org_id = $1 AND revision > $2 ORDER BY revision, seq LIMIT {limit}"
            )))
            .bind(o.to_string())
            .bind(after)
            .fetch_all(self.pool())
            .await?,
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{cols} WHERE revision > $1 ORDER BY revision, seq LIMIT {limit}"
                )))
                .bind(after)
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter()
            .map(|r| {
                let kind: String = r.try_get(3)?;
                let kind = match kind.as_str() {
                    "org" => ChangeKind::Org,
                    "model" => ChangeKind::Model,
                    "write" => ChangeKind::Write,
                    "delete" => ChangeKind::Delete,
                    "settings" => ChangeKind::Settings,
                    "principal" => ChangeKind::Principal,
                    "token_revoked" => ChangeKind::TokenRevoked,
                    "signing_keys" => ChangeKind::SigningKeys,
                    other => return Err(StorageError::Corrupt(format!("change kind `{other}`"))),
                };
                let object: Option<String> = r.try_get(4)?;
                let target = if matches!(
                    kind,
                    ChangeKind::Principal | ChangeKind::TokenRevoked | ChangeKind::SigningKeys
                ) {
                    object.clone()
                } else {
                    None
                };
                let tuple = match (
                    object,
                    r.try_get::<Option<String>, _>(5)?,
                    r.try_get::<Option<String>, _>(6)?,
                ) {
                    (Some(o), Some(rel), Some(s)) => {
                        Some(to_key(o, rel, s, r.try_get(7)?, r.try_get(8)?)?)
                    }
                    _ => None,
                };
                Ok(Change {
                    revision: r.try_get(0)?,
                    seq: r.try_get(1)?,
                    org_id: r.try_get(2)?,
                    kind,
                    tuple,
                    model_id: r.try_get(9)?,
                    target,
                    created_at: r.try_get(10)?,
                })
            })
            .collect()
    }

    /// Calls `f` with every tuple of every organization (for loading at start), and
    /// returns the revision the data is at. Rows stream; nothing is held twice.
    pub async fn load_tuples(&self, mut f: impl FnMut(&str, TupleKey)) -> Result<i64> {
        use futures_util::StreamExt;
        // Read the revision first: tuples committed after it are replayed from the
        // changes feed, and applying a write twice is harmless.
        let revision = self.current_revision().await?;
        if self.backend == crate::Backend::Sqlite {
            return self.load_tuples_sqlite(f).await.map(|()| revision);
        }
        let mut rows = sqlx::query(
            "SELECT org_id, object_type, object_id, relation, subject, condition_name, condition_context FROM tuples",
        )
        .fetch(self.pool());
        while let Some(r) = rows.next().await {
            let r = r?;
            let org: String = r.try_get(0)?;
            let ty: String = r.try_get(1)?;
            let id: String = r.try_get(2)?;
            let key = to_key(
                format!("{ty}:{id}"),
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
            )?;
            f(&org, key);
        }
        Ok(revision)
    }

    /// SQLite hands rows one at a time across a thread; a million such hand-offs cost
    /// seconds. So the database packs 10,000 tuples per row, one per line, fields
    /// separated by tabs (no stored field can hold a tab or a newline: ids and names
    /// refuse whitespace, and the context is compact JSON, which escapes both).
    async fn load_tuples_sqlite(&self, mut f: impl FnMut(&str, TupleKey)) -> Result<()> {
        use futures_util::StreamExt;
        let mut rows = sqlx::query(
            "SELECT org_id, group_concat(line, char(10)) FROM (
                SELECT org_id, rowid AS r,
                       object_type || ':' || object_id || char(9) || relation || char(9) || subject
                       || char(9) || coalesce(condition_name, '') || char(9)
                       || coalesce(condition_context, '') AS line
                FROM tuples)
             GROUP BY org_id, r / 10000",
        )
        .fetch(self.pool());
        while let Some(r) = rows.next().await {
            let r = r?;
            let org: String = r.try_get(0)?;
            let packed: String = r.try_get(1)?;
            for line in packed.split('\n') {
                let mut p = line.split('\t');
                let (Some(obj), Some(rel), Some(user), Some(cond), Some(ctx)) =
                    (p.next(), p.next(), p.next(), p.next(), p.next())
                else {
                    return Err(StorageError::Corrupt(format!("packed tuple `{line}`")));
                };
                let key = to_key(
                    obj.to_string(),
                    rel.to_string(),
                    user.to_string(),
                    (!cond.is_empty()).then(|| cond.to_string()),
                    (!ctx.is_empty()).then(|| ctx.to_string()),
                )?;
                f(&org, key);
            }
        }
        Ok(())
    }
}

/// Deletes `t` inside `tx` and records the change; false if there was no such tuple.
pub(crate) async fn delete_tuple_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org: &str,
    revision: i64,
    seq: &mut i64,
    t: &TupleKey,
) -> Result<bool> {
    let (ty, id) = split_object(&t.object)?;
    let res = sqlx::query(
        "DELETE FROM tuples WHERE org_id = $1 AND object_type = $2 AND object_id = $3 AND relation = $4 AND subject = $5",
    )
    .bind(org)
    .bind(ty)
    .bind(id)
    .bind(&t.relation)
    .bind(&t.user)
    .execute(&mut **tx)
    .await?;
    if res.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query(
        "INSERT INTO changes (revision, seq, org_id, kind, object, relation, subject, created_at) VALUES ($1, $2, $3, 'delete', $4, $5, $6, $7)",
    )
    .bind(revision)
    .bind(*seq)
    .bind(org)
    .bind(&t.object)
    .bind(&t.relation)
    .bind(&t.user)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    *seq += 1;
    Ok(true)
}

/// Writes `t` inside `tx` and records the change; false if it already existed (with
/// `idempotent`, nothing is written then; without, the transaction is spoiled and the
/// caller must fail).
pub(crate) async fn insert_tuple_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org: &str,
    revision: i64,
    seq: &mut i64,
    t: &TupleKey,
    idempotent: bool,
) -> Result<bool> {
    let (ty, id) = split_object(&t.object)?;
    let (cond, ctx) = context_json(t)?;
    let sql = if idempotent {
        "INSERT INTO tuples (org_id, object_type, object_id, relation, subject, condition_name, condition_context, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING"
    } else {
        "INSERT INTO tuples (org_id, object_type, object_id, relation, subject, condition_name, condition_context, revision) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    };
    let res = sqlx::query(sql)
        .bind(org)
        .bind(ty)
        .bind(id)
        .bind(&t.relation)
        .bind(&t.user)
        .bind(cond.clone())
        .bind(ctx.clone())
        .bind(revision)
        .execute(&mut **tx)
        .await;
    match res {
        Ok(r) if r.rows_affected() == 0 => return Ok(false),
        Ok(_) => {}
        Err(e) if StorageError::is_unique_violation(&e) => return Ok(false),
        Err(e) => return Err(e.into()),
    }
    sqlx::query(
        "INSERT INTO changes (revision, seq, org_id, kind, object, relation, subject, condition_name, condition_context, created_at) VALUES ($1, $2, $3, 'write', $4, $5, $6, $7, $8, $9)",
    )
    .bind(revision)
    .bind(*seq)
    .bind(org)
    .bind(&t.object)
    .bind(&t.relation)
    .bind(&t.user)
    .bind(cond)
    .bind(ctx)
    .bind(now_ms())
    .execute(&mut **tx)
    .await?;
    *seq += 1;
    Ok(true)
}
