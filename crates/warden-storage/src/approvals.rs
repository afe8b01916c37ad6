//! Human approval requests. Deciding and using one are single conditional updates,
//! so two approvers racing, or two decisions racing for one approval, cannot both win:
//! a request is decided once, and a granted approval is used once.

use serde::Serialize;
use sqlx::Row;

use crate::{Db, Result};

/// An approval request and what became of it.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Approval {
    pub org_id: String,
    pub id: String,
    /// The rule that asked for it.
    pub rule: String,
    /// `pending`, `granted`, `denied`, `used` or `revoked` (the user it was for,
    /// or its approver, left); a pending request past `expires_at` is shown as
    /// `expired`.
    pub status: String,
    /// What it binds: the agent, the user it acts for (empty if none), the further
    /// actors, the action, the resource and the SHA-256 of the request context.
    pub agent_id: String,
    pub user_id: String,
    pub actors: Vec<String>,
    pub relation: String,
    pub object: String,
    pub context_digest: String,
    /// The request context, for the approver to read.
    pub context: serde_json::Value,
    /// The decision that asked for approval.
    pub decision_id: String,
    pub created_at: i64,
    /// A pending request can be decided until then.
    pub expires_at: i64,
    pub decided_at: Option<i64>,
    /// `user:<id>` of the approver.
    pub decided_by: Option<String>,
    /// A granted approval can be used until then.
    pub valid_until: Option<i64>,
    pub reason: Option<String>,
    pub used_at: Option<i64>,
    /// The decision that used it.
    pub used_by: Option<String>,
}

/// What a decision retried with an approval id binds; all must match the approval.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalBinding<'a> {
    pub agent_id: &'a str,
    pub user_id: &'a str,
    pub actors: &'a [String],
    pub relation: &'a str,
    pub object: &'a str,
    pub context_digest: &'a str,
}

/// A person's decision on a request.
#[derive(Debug, Clone, Copy)]
pub struct Verdict<'a> {
    pub grant: bool,
    /// `user:<id>`.
    pub by: &'a str,
    pub reason: Option<&'a str>,
    pub now: i64,
    /// Until when a grant may be used.
    pub valid_until: i64,
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>;

/// Binds what an approval binds, in column order: agent, user, actors, relation,
/// object, context digest.
fn bind_binding<'q>(q: AnyQuery<'q>, b: &ApprovalBinding<'_>) -> AnyQuery<'q> {
    q.bind(b.agent_id.to_string())
        .bind(b.user_id.to_string())
        .bind(serde_json::to_string(b.actors).unwrap_or_default())
        .bind(b.relation.to_string())
        .bind(b.object.to_string())
        .bind(b.context_digest.to_string())
}

const COLUMNS: &str = "org_id, id, rule, status, agent_id, user_id, actors, relation, object, \
    context_digest, context, decision_id, created_at, expires_at, decided_at, decided_by, \
    valid_until, reason, used_at, used_by";

fn row(r: &sqlx::any::AnyRow) -> Result<Approval> {
    let actors: String = r.try_get(6)?;
    let context: String = r.try_get(10)?;
    Ok(Approval {
        org_id: r.try_get(0)?,
        id: r.try_get(1)?,
        rule: r.try_get(2)?,
        status: r.try_get(3)?,
        agent_id: r.try_get(4)?,
        user_id: r.try_get(5)?,
        actors: serde_json::from_str(&actors).unwrap_or_default(),
        relation: r.try_get(7)?,
        object: r.try_get(8)?,
        context_digest: r.try_get(9)?,
        context: serde_json::from_str(&context).unwrap_or_default(),
        decision_id: r.try_get(11)?,
        created_at: r.try_get(12)?,
        expires_at: r.try_get(13)?,
        decided_at: r.try_get(14)?,
        decided_by: r.try_get(15)?,
        valid_until: r.try_get(16)?,
        reason: r.try_get(17)?,
        used_at: r.try_get(18)?,
        used_by: r.try_get(19)?,
    })
}

impl Db {
    pub async fn approval_create(&self, a: &Approval) -> Result<()> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO approvals ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
        )))
        .bind(a.org_id.clone())
        .bind(a.id.clone())
        .bind(a.rule.clone())
        .bind(a.status.clone())
        .bind(a.agent_id.clone())
        .bind(a.user_id.clone())
        .bind(serde_json::to_string(&a.actors).unwrap_or_default())
        .bind(a.relation.clone())
        .bind(a.object.clone())
        .bind(a.context_digest.clone())
        .bind(a.context.to_string())
        .bind(a.decision_id.clone())
        .bind(a.created_at)
        .bind(a.expires_at)
        .bind(a.decided_at)
        .bind(a.decided_by.clone())
        .bind(a.valid_until)
        .bind(a.reason.clone())
        .bind(a.used_at)
        .bind(a.used_by.clone())
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn approval(&self, org: &str, id: &str) -> Result<Option<Approval>> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE org_id = $1 AND id = $2"
        )))
        .bind(org.to_string())
        .bind(id.to_string())
        .fetch_optional(self.pool())
        .await?
        .as_ref()
        .map(row)
        .transpose()
    }

    /// The newest requests of an organization (only those in `status` when given).
    pub async fn approvals(
        &self,
        org: &str,
        status: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Approval>> {
        let mut sql = format!("SELECT {COLUMNS} FROM approvals WHERE org_id = $1");
        if status.is_some() {
            sql.push_str(" AND status = $3");
        }
        sql.push_str(" ORDER BY created_at DESC, id DESC LIMIT $2");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(org.to_string())
            .bind(i64::from(limit.clamp(1, 1000)));
        if let Some(s) = status {
            q = q.bind(s.to_string());
        }
        q.fetch_all(self.pool()).await?.iter().map(row).collect()
    }

    /// Decides a pending, unexpired request; false if it was not (any more).
    pub async fn approval_decide(&self, org: &str, id: &str, v: &Verdict<'_>) -> Result<bool> {
        let Verdict {
            grant,
            by,
            reason,
            now,
            valid_until,
        } = *v;
        let res = sqlx::query(
            "UPDATE approvals SET status = $1, decided_at = $2, decided_by = $3, reason = $4, valid_until = $5 \
             WHERE org_id = $6 AND id = $7 AND status = 'pending' AND expires_at > $2",
        )
        .bind(if grant { "granted" } else { "denied" })
        .bind(now)
        .bind(by.to_string())
        .bind(reason.map(str::to_string))
        .bind(grant.then_some(valid_until))
        .bind(org.to_string())
        .bind(id.to_string())
        .execute(self.pool())
        .await?;
        Ok(res.rows_affected() == 1)
    }

    /// Uses a granted approval for the decision `used_by`, if it is unexpired,
    /// unused and binds exactly `b`; false otherwise (nothing changes then).
    pub async fn approval_use(
        &self,
        org: &str,
        id: &str,
        b: &ApprovalBinding<'_>,
        now: i64,
        used_by: &str,
    ) -> Result<bool> {
        let q = sqlx::query(
            "UPDATE approvals SET status = 'used', used_at = $1, used_by = $2 \
             WHERE org_id = $3 AND id = $4 AND status = 'granted' AND valid_until > $1 \
             AND agent_id = $5 AND user_id = $6 AND actors = $7 AND relation = $8 AND object = $9 \
             AND context_digest = $10",
        )
        .bind(now)
        .bind(used_by.to_string())
        .bind(org.to_string())
        .bind(id.to_string());
        let res = bind_binding(q, b).execute(self.pool()).await?;
        Ok(res.rows_affected() == 1)
    }

    /// A pending, unexpired request of `rule` binding exactly `b`, if there is one
    /// (asking again does not make a second one).
    pub async fn approval_pending_like(
        &self,
        org: &str,
        rule: &str,
        b: &ApprovalBinding<'_>,
        now: i64,
    ) -> Result<Option<Approval>> {
        let q = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE org_id = $1 AND rule = $2 AND status = 'pending' \
             AND expires_at > $3 AND agent_id = $4 AND user_id = $5 AND actors = $6 AND relation = $7 \
             AND object = $8 AND context_digest = $9 ORDER BY created_at LIMIT 1"
        )))
        .bind(org.to_string())
        .bind(rule.to_string())
        .bind(now)
        ;
        bind_binding(q, b)
            .fetch_optional(self.pool())
            .await?
            .as_ref()
            .map(row)
            .transpose()
    }

    /// How many unexpired requests of `agent` are waiting.
    pub async fn approvals_pending_for(&self, org: &str, agent: &str, now: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM approvals WHERE org_id = $1 AND agent_id = $2 AND status = 'pending' AND expires_at > $3",
        )
        .bind(org)
        .bind(agent)
        .bind(now)
        .fetch_one(self.pool())
        .await?)
    }

    /// A leaver's approvals stop counting: requests made for them and approvals they
    /// granted that are not used yet become `revoked`. Returns how many.
    pub(crate) async fn revoke_approvals_of_in(
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        org: &str,
        user_id: &str,
        now: i64,
    ) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE approvals SET status = 'revoked', decided_at = COALESCE(decided_at, $1) \
             WHERE org_id = $2 AND status IN ('pending', 'granted') AND (user_id = $3 OR decided_by = $4)",
        )
        .bind(now)
        .bind(org.to_string())
        .bind(user_id.to_string())
        .bind(format!("user:{user_id}"))
        .execute(&mut **tx)
        .await?
        .rows_affected())
    }
}
