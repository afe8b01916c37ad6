//! Relationship tuples: atomic write + delete, read with filters and pagination, and
//! the changes feed. Writes are validated against the current model before anything
//! is stored; the response carries the revision, the consistency token for later reads.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use warden_engine::TupleKey;
use warden_storage::{ReadFilter, Role};

use crate::auth::{Caller, OrgGate};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteBody {
    #[serde(default)]
    writes: Vec<TupleKey>,
    #[serde(default)]
    deletes: Vec<TupleKey>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    tuples: Vec<TupleKey>,
}

fn key_string(t: &TupleKey) -> String {
    format!("{}#{}@{}", t.object, t.relation, t.user)
}

async fn apply(
    state: &AppState,
    org: &str,
    writes: Vec<TupleKey>,
    deletes: Vec<TupleKey>,
) -> ApiResult<i64> {
    let n = writes.len() + deletes.len();
    if n == 0 {
        return Err(ApiError::bad_request("nothing to write or delete"));
    }
    if n > state.limits.max_tuples_per_write {
        return Err(ApiError::bad_request(format!(
            "{n} tuples in one request; the limit is {}",
            state.limits.max_tuples_per_write
        )));
    }
    let mut seen = HashSet::new();
    for t in writes.iter().chain(&deletes) {
        if !seen.insert(key_string(t)) {
            return Err(ApiError::bad_request(format!(
                "tuple `{}` appears twice in the request",
                key_string(t)
            )));
        }
    }
    {
        let data = state.org_fresh(org).await?;
        let data = data.read();
        let model = data.model(None)?;
        for t in &writes {
            warden_engine::validate_tuple(model, t)?;
        }
        for t in &deletes {
            warden_engine::tuple::parse_object(&t.object)?;
            warden_engine::tuple::parse_user(&t.user)?;
        }
    }
    let revision = state.db.write_tuples(org, &writes, &deletes).await?;
    state.db.notify().await;
    state.wait_for(revision).await?;
    Ok(revision)
}

pub async fn write(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    meta: crate::audit::Meta,
    Json(body): Json<WriteBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Writer)?;
    let detail = json!({"writes": body.writes, "deletes": body.deletes});
    let revision = apply(&state, &org, body.writes, body.deletes).await?;
    let mut rec = meta.change(&org, &caller, "tuples.write");
    rec.revision = Some(revision);
    rec.detail = detail;
    crate::audit::change_recorded(&state.audit, rec).await?;
    Ok(axum::Json(json!({ "revision": revision })))
}

pub async fn delete(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    meta: crate::audit::Meta,
    Json(body): Json<DeleteBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Writer)?;
    let detail = json!({"deletes": body.tuples});
    let revision = apply(&state, &org, Vec::new(), body.tuples).await?;
    let mut rec = meta.change(&org, &caller, "tuples.delete");
    rec.revision = Some(revision);
    rec.detail = detail;
    crate::audit::change_recorded(&state.audit, rec).await?;
    Ok(axum::Json(json!({ "revision": revision })))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadBody {
    #[serde(default)]
    filter: ReadFilter,
    #[serde(default)]
    page_size: Option<u32>,
    #[serde(default)]
    continuation_token: Option<String>,
}

pub async fn read(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    Json(body): Json<ReadBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Writer)?;
    state.org_fresh(&org).await?;
    let page = state
        .db
        .read_tuples(
            &org,
            &body.filter,
            body.page_size.unwrap_or(100),
            body.continuation_token.as_deref(),
        )
        .await?;
    Ok(axum::Json(page))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    #[serde(default)]
    after: i64,
    #[serde(default)]
    page_size: Option<u32>,
}

pub async fn changes(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    q: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Writer)?;
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    state.org_fresh(&org).await?;
    let page_size = q.page_size.unwrap_or(100).clamp(1, 1000);
    let mut changes = state.db.changes(Some(&org), q.after, page_size).await?;
    // End a full page on a whole revision, so `next_after` never splits one.
    if changes.len() == page_size as usize
        && let (Some(first), Some(last)) = (changes.first(), changes.last())
        && first.revision != last.revision
    {
        let cut = last.revision;
        changes.retain(|c| c.revision != cut);
    }
    let next_after = changes.last().map_or(q.after, |c| c.revision);
    Ok(axum::Json(
        json!({ "changes": changes, "next_after": next_after }),
    ))
}
