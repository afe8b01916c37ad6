//! The audit log API: query (filters, cursor pagination, outcomes joined), the JSON
//! Lines export, verification on the server, a checkpoint on demand, and outcome
//! reports from enforcement points.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_audit::export::{ExportHeader, ExportLine, FORMAT, Report, prepare};
use warden_storage::{AuditFilter, Role};

use crate::audit::Meta;
use crate::auth::{Caller, OrgGate};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

/// Records per page when exporting or verifying.
const PAGE: u32 = 5000;

/// Query parameters of `GET /v1/orgs/{org}/audit`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// From this time (RFC 3339, or milliseconds since the epoch), inclusive.
    from: Option<String>,
    /// Until this time, exclusive.
    to: Option<String>,
    user: Option<String>,
    agent: Option<String>,
    /// An agent anywhere in the delegation chain.
    actor: Option<String>,
    resource: Option<String>,
    action: Option<String>,
    /// `decision`, `change` or `outcome`.
    kind: Option<String>,
    /// `allow` or `deny`.
    decision: Option<String>,
    /// Free text in the reasons and details.
    q: Option<String>,
    /// A record (decision) id.
    id: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<u64>,
    /// Records per page (1-1000, default 100).
    limit: Option<u32>,
    /// `asc` (oldest first, the default) or `desc`.
    order: Option<String>,
}

/// Milliseconds since the epoch from RFC 3339 or a number; not before the epoch.
fn parse_time(what: &str, v: &str) -> ApiResult<i64> {
    let ms = match v.parse::<i64>() {
        Ok(ms) => ms,
        Err(_) => chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| t.timestamp_millis())
            .map_err(|_| {
                ApiError::bad_request(format!(
                    "`{what}` must be RFC 3339 (2026-11-25T10:00:00Z) or milliseconds since the epoch"
                ))
            })?,
    };
    if ms < 0 {
        return Err(ApiError::bad_request(format!(
            "`{what}` must not be before the epoch"
        )));
    }
    Ok(ms)
}

/// The organization must exist (a server administrator's key reaches any name), or be
/// the server's own chain.
async fn known_org(state: &AppState, org: &str) -> ApiResult<()> {
    if org != crate::audit::SYSTEM_ORG {
        state.org_fresh(org).await?;
    }
    Ok(())
}

/// The free text as it appears inside the stored JSON of details and reasons: quotes,
/// backslashes and control characters escaped the way the record's JSON has them.
fn as_json_text(q: &str) -> String {
    let quoted = serde_json::to_string(q).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

pub async fn query(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    known_org(&state, &org).await?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("`limit` is 1 to 1000"));
    }
    let descending = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "`order` is asc or desc, not `{o}`"
            )));
        }
    };
    if let Some(k) = &q.kind
        && !matches!(k.as_str(), "decision" | "change" | "outcome")
    {
        return Err(ApiError::bad_request(
            "`kind` is decision, change or outcome",
        ));
    }
    let filter = AuditFilter {
        from_ms: q
            .from
            .as_deref()
            .map(|v| parse_time("from", v))
            .transpose()?,
        to_ms: q.to.as_deref().map(|v| parse_time("to", v)).transpose()?,
        user: q.user,
        agent: q.agent,
        actor: q.actor,
        resource: q.resource,
        action: q.action,
        kind: q.kind,
        decision: q.decision,
        text: q.q.as_deref().map(as_json_text),
        refers_to: None,
        id: q.id,
    };
    // One more than asked tells whether another page follows.
    let mut records = state
        .db
        .audit_query(&org, &filter, q.cursor, descending, limit + 1)
        .await?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let ids: Vec<String> = records
        .iter()
        .filter(|r| r.kind == "decision")
        .map(|r| r.id.clone())
        .collect();
    let outcomes = state.db.audit_outcomes(&org, &ids).await?;
    let next_cursor = more.then(|| records.last().map(|r| r.seq));
    let out: Vec<Value> = records
        .into_iter()
        .map(|r| {
            let id = r.id.clone();
            let mut v = json!(r);
            let joined: Vec<Value> = outcomes
                .iter()
                .filter(|o| o.refers_to.as_deref() == Some(id.as_str()))
                .map(|o| {
                    json!({"id": o.id, "result": o.action, "time_ms": o.time_ms,
                           "detail": o.detail["detail"]})
                })
                .collect();
            if let Some(first) = joined.into_iter().next() {
                v["outcome"] = first;
            }
            v
        })
        .collect();
    Ok(axum::Json(
        json!({"records": out, "next_cursor": next_cursor.flatten()}),
    ))
}

/// The public keys checkpoints verify against: every published signing key.
fn public_keys(state: &AppState) -> Vec<Value> {
    state
        .oauth
        .read()
        .published
        .iter()
        .map(|k| k.public_jwk())
        .collect()
}

fn line(l: &ExportLine) -> Bytes {
    let mut v = serde_json::to_vec(l).unwrap_or_default();
    v.push(b'\n');
    Bytes::from(v)
}

/// `GET /v1/orgs/{org}/audit/export`: the retained log as JSON Lines, up to the chain
/// head as it was when the export started.
pub async fn export(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
) -> ApiResult<Response> {
    caller.require(&org, Role::Admin)?;
    known_org(&state, &org).await?;
    // Checkpoints before the head: every checkpoint read then lies at or before the
    // head read after it, so one beyond the head means records were removed.
    let stored = state.db.audit_checkpoints(&org).await?;
    let head = state.db.audit_head(&org).await?;
    let head_seq = head.as_ref().map_or(0, |(s, _)| *s);
    // The server vouches for where the log ends, so that the file can prove it: the
    // last record, else the cut retention left, else the empty chain. Not over a log
    // that contradicts a stored checkpoint (its verification then fails).
    let end = head
        .clone()
        .unwrap_or((0, warden_audit::GENESIS.to_string()));
    let signed_head = match crate::audit::tasks::signable(&state, &org, end.0, &end.1)
        .await
        .map_err(ApiError::internal)?
    {
        Ok(()) => Some(
            crate::audit::tasks::sign_checkpoint(&state, &org, end.0, &end.1, "export")
                .map_err(ApiError::internal)?,
        ),
        Err(_) => None,
    };
    let header = ExportHeader {
        format: FORMAT.into(),
        org: org.clone(),
        exported_at_ms: warden_storage::now_ms(),
        anchor: state.db.audit_anchor(&org).await?,
        keys: public_keys(&state),
    };
    let mut first = Vec::new();
    first.extend_from_slice(&line(&ExportLine::Header(header)));
    for cp in stored.into_iter().chain(signed_head) {
        first.extend_from_slice(&line(&ExportLine::Checkpoint(cp)));
    }
    // Then pages of records, then the head.
    enum Phase {
        Records(u64),
        Head,
        Done,
    }
    let start =
        futures_util::stream::once(async move { Ok::<Bytes, std::io::Error>(Bytes::from(first)) });
    let db = state.db.clone();
    let rest = futures_util::stream::unfold(Phase::Records(0), move |phase| {
        let (db, org, end) = (db.clone(), org.clone(), end.clone());
        async move {
            match phase {
                Phase::Records(after) if after < head_seq => {
                    let page = match db.audit_page(&org, after, PAGE).await {
                        Ok(p) => p,
                        Err(e) => {
                            return Some((Err(std::io::Error::other(e.to_string())), Phase::Done));
                        }
                    };
                    let mut buf = Vec::new();
                    let mut last = after;
                    for r in page.into_iter().take_while(|r| r.seq <= head_seq) {
                        last = r.seq;
                        buf.extend_from_slice(&line(&ExportLine::Record(Box::new(r))));
                    }
                    let next = if last == after {
                        Phase::Head
                    } else {
                        Phase::Records(last)
                    };
                    Some((Ok(Bytes::from(buf)), next))
                }
                Phase::Records(_) | Phase::Head => {
                    let (seq, hash) = end;
                    Some((Ok(line(&ExportLine::Head { seq, hash })), Phase::Done))
                }
                Phase::Done => None,
            }
        }
    });
    use futures_util::StreamExt;
    let body = Body::from_stream(start.chain(rest));
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}

/// `GET /v1/orgs/{org}/audit/verify`: the server walks its own log.
pub async fn verify(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    known_org(&state, &org).await?;
    // Checkpoints before the head (as in the export): one beyond it is a truncation.
    let checkpoints = state.db.audit_checkpoints(&org).await?;
    let head = state.db.audit_head(&org).await?;
    let head_seq = head.as_ref().map_or(0, |(s, _)| *s);
    let anchor = state.db.audit_anchor(&org).await?;
    let mut v = match prepare(&org, anchor.as_ref(), &checkpoints, &public_keys(&state)) {
        Ok(v) => v,
        Err(t) => {
            let report = Report::of(&org, "server", 0, None, Some(t));
            return Ok(axum::Json(json!({"ok": false, "report": report})));
        }
    };
    let mut after = 0;
    let mut problem = None;
    loop {
        let page = state.db.audit_page(&org, after, PAGE).await?;
        let page: Vec<_> = page.into_iter().take_while(|r| r.seq <= head_seq).collect();
        let Some(last) = page.last().map(|r| r.seq) else {
            break;
        };
        if let Err(t) = v.run(&page) {
            problem = Some(t);
            break;
        }
        after = last;
    }
    if problem.is_none() {
        problem = v.finish(head.as_ref().map(|(s, h)| (*s, h.as_str()))).err();
    }
    let report = Report::of(&org, "server", checkpoints.len() as u64, Some(&v), problem);
    Ok(axum::Json(json!({"ok": report.ok(), "report": report})))
}

/// `POST /v1/orgs/{org}/audit/checkpoint`: signs a checkpoint of the chain head now.
pub async fn checkpoint(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    known_org(&state, &org).await?;
    let Some((seq, hash)) = state.db.audit_head(&org).await? else {
        return Err(ApiError::not_found(
            "the organization has no audit records yet",
        ));
    };
    if let Err(why) = crate::audit::tasks::signable(&state, &org, seq, &hash)
        .await
        .map_err(ApiError::internal)?
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "tampered",
            format!("not signed: {why}; run verify"),
        ));
    }
    let cp = crate::audit::tasks::sign_checkpoint(&state, &org, seq, &hash, "periodic")
        .map_err(ApiError::internal)?;
    state.db.audit_add_checkpoint(&cp).await?;
    Ok(axum::Json(cp))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OutcomeBody {
    /// `success` or `failure`.
    result: String,
    /// What happened (free JSON, at most 8 KiB).
    #[serde(default)]
    detail: Option<Value>,
}

/// `POST /v1/orgs/{org}/audit/{decision_id}/outcome`: what the enforcement point did
/// after an allowed decision, joined to it. One report per decision.
pub async fn outcome(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, decision_id)): Path<(String, String)>,
    _gate: OrgGate,
    meta: Meta,
    Json(body): Json<OutcomeBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    if !matches!(body.result.as_str(), "success" | "failure") {
        return Err(ApiError::bad_request("`result` is success or failure"));
    }
    if body
        .detail
        .as_ref()
        .is_some_and(|d| d.to_string().len() > 8192)
    {
        return Err(ApiError::bad_request("`detail` is at most 8 KiB"));
    }
    let find = |kind: &str, refers: bool| AuditFilter {
        kind: Some(kind.into()),
        id: (!refers).then(|| decision_id.clone()),
        refers_to: refers.then(|| decision_id.clone()),
        ..Default::default()
    };
    let decision = state
        .db
        .audit_query(&org, &find("decision", false), None, false, 1)
        .await?
        .pop()
        .ok_or_else(|| ApiError::not_found(format!("decision `{decision_id}` not found")))?;
    if decision.allowed != Some(true) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_allowed",
            "outcomes are reported for allowed decisions; this one was not allowed",
        ));
    }
    // One report per decision: concurrent reports for it on this node wait their
    // turn, so the second sees the first's record.
    let _turn = state.outcome_turn(&org, &decision_id).await;
    if !state
        .db
        .audit_query(&org, &find("outcome", true), None, false, 1)
        .await?
        .is_empty()
    {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            "an outcome was already reported for this decision",
        ));
    }
    let mut rec = meta.by_key(&org, &caller, "outcome", &body.result);
    rec.refers_to = Some(decision_id);
    rec.resource = decision.resource;
    rec.subject = decision.subject;
    rec.user = decision.user;
    rec.agent = decision.agent;
    rec.actors = decision.actors;
    rec.jti = decision.jti;
    rec.client_id = decision.client_id;
    rec.detail = json!({"detail": body.detail, "decision_action": decision.action});
    let id = rec.id.clone();
    state.audit.record(rec).await?;
    Ok((StatusCode::CREATED, axum::Json(json!({"id": id}))))
}
