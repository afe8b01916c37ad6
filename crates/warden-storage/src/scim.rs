//! SCIM resources and the writes directory sync makes: a resource, its principal, the
//! memberships it changes and, for a leaver, every revocation, all in one transaction
//! and one revision (so `at_least_revision` covers the whole change).

use sqlx::Row;
use warden_engine::TupleKey;

use crate::principals::put_principal_in;
use crate::tuples::{delete_tuple_in, insert_tuple_in};
use crate::{
    Db, Principal, PrincipalKind, Result, Status, StorageError, next_revision, now_ms, require_org,
};

/// A stored SCIM resource.
#[derive(Debug, Clone, PartialEq)]
pub struct ScimRow {
    /// `User` or `Group`.
    pub kind: String,
    pub id: String,
    /// The resource as JSON (canonical names; no id, meta, members or groups).
    pub doc: String,
    /// The revision that last wrote it (its ETag).
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One SCIM write.
#[derive(Debug, Clone)]
pub struct ScimWrite {
    /// `User` or `Group`.
    pub kind: &'static str,
    pub id: String,
    /// The new document; `None` deletes the resource.
    pub doc: Option<String>,
    /// `userName` (users) or `displayName` (groups), lowercased.
    pub name_key: String,
    pub external_id: Option<String>,
    /// Fail with [`StorageError::Stale`] unless the resource is at this revision
    /// (`If-Match`); `Some(0)` means "must not exist yet".
    pub expect_revision: Option<i64>,
    /// The Warden principal the resource is.
    pub principal: Principal,
    pub password_hash: Option<String>,
    /// Groups: the member subjects the group must have (`user:<id>`,
    /// `group:<id>#member`). The difference with the stored members is worked out
    /// inside the transaction (so concurrent writes cannot interleave), and users
    /// that are not active are not added.
    pub members: Option<Vec<String>>,
    /// Groups: also leave every group this one is a member of (the group is deleted).
    pub leave_groups: bool,
    /// The user leaves (deactivated or deleted): revoke everything they hold.
    pub leaver: Option<Leaver>,
}

/// What a leaver's departure does besides the status change.
#[derive(Debug, Clone, Copy, Default)]
pub struct Leaver {
    /// Suspend the agents the user owns (the organization's policy); they are
    /// flagged either way.
    pub suspend_owned_agents: bool,
    /// Remove the user's group memberships (directory sync does; a suspension through
    /// the admin API keeps them, as it may be lifted).
    pub remove_memberships: bool,
}

/// What a leaver's departure did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct LeaverReport {
    /// Groups the user was removed from.
    pub memberships_removed: Vec<String>,
    /// Refresh tokens revoked (every family where the user is the delegator).
    pub refresh_tokens_revoked: u64,
    /// Unused authorization codes withdrawn (consents given and not yet redeemed).
    pub auth_codes_withdrawn: u64,
    /// Agents the user owns, now flagged (`agent:<id>`).
    pub agents_flagged: Vec<String>,
    /// Whether those agents were also suspended.
    pub agents_suspended: bool,
    /// Approval requests made for the user, and unused approvals they granted, now
    /// revoked.
    pub approvals_revoked: u64,
    /// Access tokens naming the user issued before this time (ms) are revoked.
    pub tokens_not_before: i64,
}

/// The result of a [`ScimWrite`].
#[derive(Debug, Clone)]
pub struct ScimWritten {
    pub revision: i64,
    /// Member subjects added to and removed from the group.
    pub members_added: Vec<String>,
    pub members_removed: Vec<String>,
    /// Users asked for as members but not added, as they are not active.
    pub members_skipped: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub leaver: Option<LeaverReport>,
}

const COLUMNS: &str = "kind, id, doc, revision, created_at, updated_at";

fn row(r: &sqlx::any::AnyRow) -> Result<ScimRow> {
    Ok(ScimRow {
        kind: r.try_get(0)?,
        id: r.try_get(1)?,
        doc: r.try_get(2)?,
        revision: r.try_get(3)?,
        created_at: r.try_get(4)?,
        updated_at: r.try_get(5)?,
    })
}

impl Db {
    /// One resource.
    pub async fn scim_get(&self, org: &str, kind: &str, id: &str) -> Result<Option<ScimRow>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM scim_resources WHERE org_id = $1 AND kind = $2 AND id = $3"
        )))
        .bind(org)
        .bind(kind)
        .bind(id)
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(row)
        .transpose()
    }

    /// Resources of a kind, by id; only those whose name key is `name_key` when given
    /// (the index behind `userName eq "..."` lookups).
    pub async fn scim_list(
        &self,
        org: &str,
        kind: &str,
        name_key: Option<&str>,
    ) -> Result<Vec<ScimRow>> {
        let rows = match name_key {
            Some(n) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM scim_resources WHERE org_id = $1 AND kind = $2 AND name_key = $3 ORDER BY id"
                )))
                .bind(org)
                .bind(kind)
                .bind(n)
                .fetch_all(self.pool())
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {COLUMNS} FROM scim_resources WHERE org_id = $1 AND kind = $2 ORDER BY id"
                )))
                .bind(org)
                .bind(kind)
                .fetch_all(self.pool())
                .await?
            }
        };
        rows.iter().map(row).collect()
    }

    /// Group memberships (`group:<g>#member` tuples) as `(group id, subject)`, for the
    /// given groups (all when `None`).
    pub async fn group_members(
        &self,
        org: &str,
        group: Option<&str>,
    ) -> Result<Vec<(String, String)>> {
        let mut q = String::from(
            "SELECT object_id, subject FROM tuples WHERE org_id = $1 AND object_type = 'group' AND relation = 'member'",
        );
        if group.is_some() {
            q.push_str(" AND object_id = $2");
        }
        q.push_str(" ORDER BY object_id, subject");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(q)).bind(org.to_string());
        if let Some(g) = group {
            query = query.bind(g.to_string());
        }
        query
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    /// Groups whose `member` relation names `subject` directly.
    pub async fn groups_of(&self, org: &str, subject: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT object_id FROM tuples WHERE org_id = $1 AND subject = $2 AND object_type = 'group' AND relation = 'member' ORDER BY object_id",
        )
        .bind(org)
        .bind(subject)
        .fetch_all(self.pool())
        .await?)
    }

    /// Makes one SCIM write, atomically, as one revision.
    pub async fn scim_write(&self, org: &str, w: &ScimWrite) -> Result<ScimWritten> {
        let mut tx = self.begin_write().await?;
        require_org(&mut tx, org).await?;
        let revision = next_revision(&mut tx).await?;
        let now = now_ms();
        let current: Option<(i64, i64)> = sqlx::query(
            "SELECT revision, created_at FROM scim_resources WHERE org_id = $1 AND kind = $2 AND id = $3",
        )
        .bind(org)
        .bind(w.kind)
        .bind(&w.id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| -> Result<(i64, i64)> { Ok((r.try_get(0)?, r.try_get(1)?)) })
        .transpose()?;
        if let Some(expect) = w.expect_revision {
            let at = current.map_or(0, |c| c.0);
            if at != expect {
                return Err(StorageError::Stale {
                    what: w.kind,
                    name: w.id.clone(),
                    current: at,
                });
            }
        }
        let created_at = current.map_or(now, |c| c.1);
        sqlx::query("DELETE FROM scim_resources WHERE org_id = $1 AND kind = $2 AND id = $3")
            .bind(org)
            .bind(w.kind)
            .bind(&w.id)
            .execute(&mut *tx)
            .await?;
        if let Some(doc) = &w.doc {
            let res = sqlx::query(
                "INSERT INTO scim_resources (org_id, kind, id, name_key, external_id, doc, revision, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(org)
            .bind(w.kind)
            .bind(&w.id)
            .bind(&w.name_key)
            .bind(w.external_id.clone())
            .bind(doc)
            .bind(revision)
            .bind(created_at)
            .bind(now)
            .execute(&mut *tx)
            .await;
            if let Err(e) = res {
                return Err(if StorageError::is_unique_violation(&e) {
                    StorageError::Conflict {
                        what: "userName",
                        name: w.name_key.clone(),
                    }
                } else {
                    e.into()
                });
            }
        }
        let mut seq = 0;
        let mut principal = w.principal.clone();
        let leaving = w.leaver.is_some();
        if leaving {
            principal.tokens_not_before = Some(now);
        }
        put_principal_in(
            &mut tx,
            org,
            &principal,
            w.password_hash.as_deref(),
            revision,
            &mut seq,
        )
        .await?;
        let (mut added, mut removed, mut skipped) = (Vec::new(), Vec::new(), Vec::new());
        let object = format!("group:{}", w.id);
        if let Some(desired) = &w.members {
            let current: Vec<String> = sqlx::query_scalar(
                "SELECT subject FROM tuples WHERE org_id = $1 AND object_type = 'group' AND object_id = $2 AND relation = 'member'",
            )
            .bind(org)
            .bind(&w.id)
            .fetch_all(&mut *tx)
            .await?;
            for s in current.iter().filter(|s| !desired.contains(s)) {
                let t = TupleKey::new(s.clone(), "member", object.clone());
                if delete_tuple_in(&mut tx, org, revision, &mut seq, &t).await? {
                    removed.push(s.clone());
                }
            }
            for s in desired.iter().filter(|s| !current.contains(s)) {
                if let Some(user) = s.strip_prefix("user:") {
                    let status: Option<String> = sqlx::query_scalar(
                        "SELECT status FROM principals WHERE org_id = $1 AND kind = 'user' AND id = $2",
                    )
                    .bind(org)
                    .bind(user)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if status.as_deref() != Some("active") {
                        skipped.push(s.clone());
                        continue;
                    }
                }
                let t = TupleKey::new(s.clone(), "member", object.clone());
                if insert_tuple_in(&mut tx, org, revision, &mut seq, &t, true).await? {
                    added.push(s.clone());
                }
            }
        }
        if w.leave_groups {
            let member = format!("{object}#member");
            let groups: Vec<String> = sqlx::query_scalar(
                "SELECT object_id FROM tuples WHERE org_id = $1 AND subject = $2 AND object_type = 'group' AND relation = 'member'",
            )
            .bind(org)
            .bind(&member)
            .fetch_all(&mut *tx)
            .await?;
            for g in groups {
                let t = TupleKey::new(member.clone(), "member", format!("group:{g}"));
                delete_tuple_in(&mut tx, org, revision, &mut seq, &t).await?;
            }
        }
        let leaver = match w.leaver {
            Some(l) => Some(leave(&mut tx, org, &principal, l, revision, &mut seq, now).await?),
            None => None,
        };
        tx.commit().await?;
        Ok(ScimWritten {
            revision,
            members_added: added,
            members_removed: removed,
            members_skipped: skipped,
            created_at,
            updated_at: now,
            leaver,
        })
    }
}

impl Db {
    /// A user leaves outside directory sync (an administrator sets `status`, which is
    /// not active): one revision that changes the status and withdraws what
    /// [`Leaver`] says.
    pub async fn user_leaves(
        &self,
        org: &str,
        user_id: &str,
        status: Status,
        how: Leaver,
    ) -> Result<(Principal, i64, LeaverReport)> {
        self.get_org(org).await?;
        let mut user = self.principal(org, PrincipalKind::User, user_id).await?;
        let mut tx = self.begin_write().await?;
        let revision = next_revision(&mut tx).await?;
        let now = now_ms();
        user.status = status;
        user.tokens_not_before = Some(now);
        let mut seq = 0;
        let stored = put_principal_in(&mut tx, org, &user, None, revision, &mut seq).await?;
        let report = leave(&mut tx, org, &stored, how, revision, &mut seq, now).await?;
        tx.commit().await?;
        Ok((stored, revision, report))
    }
}

/// Everything a departing user held, withdrawn inside the caller's transaction.
async fn leave(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    org: &str,
    user: &Principal,
    how: Leaver,
    revision: i64,
    seq: &mut i64,
    now: i64,
) -> Result<LeaverReport> {
    let subject = user.subject();
    let groups: Vec<String> = if !how.remove_memberships {
        Vec::new()
    } else {
        sqlx::query_scalar(
        "SELECT object_id FROM tuples WHERE org_id = $1 AND subject = $2 AND object_type = 'group' AND relation = 'member' ORDER BY object_id",
    )
        .bind(org)
        .bind(&subject)
        .fetch_all(&mut **tx)
        .await?
    };
    for g in &groups {
        delete_tuple_in(
            tx,
            org,
            revision,
            seq,
            &TupleKey::new(subject.clone(), "member", format!("group:{g}")),
        )
        .await?;
    }
    let refresh = sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE org_id = $2 AND user_id = $3 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(org)
    .bind(&user.id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let codes = sqlx::query(
        "DELETE FROM auth_codes WHERE org_id = $1 AND user_id = $2 AND used_at IS NULL",
    )
    .bind(org)
    .bind(&user.id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    let agents: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM principals WHERE org_id = $1 AND kind = 'agent' AND owner = $2 ORDER BY id",
    )
    .bind(org)
    .bind(&subject)
    .fetch_all(&mut **tx)
    .await?;
    let mut flagged = Vec::new();
    for id in agents {
        let r = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {} FROM principals WHERE org_id = $1 AND kind = 'agent' AND id = $2",
            crate::principals::COLUMNS
        )))
        .bind(org)
        .bind(&id)
        .fetch_one(&mut **tx)
        .await?;
        let mut agent = crate::principals::row_to_principal(&r)?;
        agent.flag = Some(format!(
            "owner {subject} left (revision {revision}): assign a new owner"
        ));
        if how.suspend_owned_agents && agent.status == Status::Active {
            agent.status = Status::Suspended;
        }
        debug_assert_eq!(agent.kind, PrincipalKind::Agent);
        put_principal_in(tx, org, &agent, None, revision, seq).await?;
        flagged.push(agent.subject());
    }
    let approvals_revoked = Db::revoke_approvals_of_in(tx, org, &user.id, now).await?;
    Ok(LeaverReport {
        approvals_revoked,
        memberships_removed: groups,
        refresh_tokens_revoked: refresh,
        auth_codes_withdrawn: codes,
        agents_flagged: flagged,
        agents_suspended: how.suspend_owned_agents,
        tokens_not_before: now,
    })
}
