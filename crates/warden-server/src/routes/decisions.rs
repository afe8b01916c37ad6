//! Decisions: Check, BatchCheck, ListObjects, ListUsers, Expand. Each answers from
//! memory (microseconds), after waiting for the revision the caller asks for.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::json;
use warden_audit::AuditRecord;
use warden_engine::{
    CheckRequest, CheckResult, Context, Engine, EngineError, ExpandRequest, ListObjectsRequest,
    ListUsersRequest, TupleKey, UserFilter,
};
use warden_storage::Role;

use super::{Consistency, snapshot};
use crate::audit::{Meta, set_subject};
use crate::auth::{Caller, OrgGate};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    user: String,
    relation: String,
    object: String,
    #[serde(default)]
    context: Context,
    #[serde(default)]
    contextual_tuples: Vec<TupleKey>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    consistency: Option<Consistency>,
    /// Return the resolution path of an allowed answer.
    #[serde(default)]
    explain: bool,
}

/// Runs a check for the record: an allowed answer also gets its granting path. The
/// resolver notes a path only along branches that grant, so one pass with explanation
/// on costs a few formatted steps on an allowed answer and next to nothing on a denial
/// (two passes, one to decide and one to explain, cost up to twice the engine's time).
/// With `recording` off (auditing disabled) the path is found only if the request
/// asked for it: the unaudited server does not look for a path nobody reads.
pub(crate) fn check_recorded(
    engine: &Engine,
    mut req: CheckRequest,
    rec: &mut AuditRecord,
    recording: bool,
) -> Result<CheckResult, EngineError> {
    set_subject(rec, &req.user);
    req.explain |= recording;
    let res = engine.check(&req);
    match &res {
        Ok(r) => {
            rec.allowed = Some(r.allowed);
            rec.detail = if r.allowed {
                json!({"path": r.path})
            } else {
                json!({"reason": "no relationship grants it"})
            };
        }
        Err(e) => {
            let e: ApiError = e.clone().into();
            rec.detail = json!({ "error": e });
        }
    }
    res
}

pub async fn check(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    meta: Meta,
    Json(body): Json<CheckBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let (data, revision) = snapshot(&state, &org, body.consistency).await?;
    let mut rec = meta.decision(&org, &caller, &body.relation, &body.object);
    rec.revision = Some(revision);
    let res = {
        let data = data.read();
        let (model_id, model) = data.model_entry(body.model_id.as_deref())?;
        rec.model_id = Some(model_id.to_string());
        let req = CheckRequest {
            user: body.user,
            relation: body.relation,
            object: body.object,
            context: body.context,
            contextual_tuples: body.contextual_tuples,
            explain: body.explain,
        };
        check_recorded(
            &Engine::new(model, &data.tuples),
            req,
            &mut rec,
            state.audit.enabled(),
        )
    };
    state
        .metrics
        .record_outcome(&res.as_ref().map(|r| r.allowed));
    let decision_id = rec.id.clone();
    state.audit.record(rec).await?;
    let res = res?;
    let mut out = json!({"allowed": res.allowed, "revision": revision, "decision_id": decision_id});
    if body.explain {
        out["path"] = json!(res.path);
    }
    Ok(axum::Json(out))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchItem {
    #[serde(default)]
    correlation_id: Option<String>,
    user: String,
    relation: String,
    object: String,
    #[serde(default)]
    context: Context,
    #[serde(default)]
    contextual_tuples: Vec<TupleKey>,
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchBody {
    checks: Vec<BatchItem>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

#[derive(Serialize)]
struct BatchResult {
    #[serde(skip_serializing_if = "Option::is_none")]
    correlation_id: Option<String>,
    decision_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ApiError>,
}

pub async fn batch_check(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    meta: Meta,
    Json(body): Json<BatchBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    if body.checks.is_empty() || body.checks.len() > state.limits.max_batch_checks {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {} checks",
            state.limits.max_batch_checks
        )));
    }
    let (data, revision) = snapshot(&state, &org, body.consistency).await?;
    let mut records = Vec::with_capacity(body.checks.len());
    let results: Vec<BatchResult> = {
        let data = data.read();
        let (model_id, model) = data.model_entry(body.model_id.as_deref())?;
        let engine = Engine::new(model, &data.tuples);
        let recording = state.audit.enabled();
        body.checks
            .into_iter()
            .map(|c| {
                let mut rec = meta.decision(&org, &caller, &c.relation, &c.object);
                rec.revision = Some(revision);
                rec.model_id = Some(model_id.to_string());
                let req = CheckRequest {
                    user: c.user,
                    relation: c.relation,
                    object: c.object,
                    context: c.context,
                    contextual_tuples: c.contextual_tuples,
                    explain: false,
                };
                let res = check_recorded(&engine, req, &mut rec, recording);
                if let Some(cid) = &c.correlation_id {
                    rec.detail["correlation_id"] = json!(cid);
                }
                state
                    .metrics
                    .record_outcome(&res.as_ref().map(|r| r.allowed));
                let decision_id = rec.id.clone();
                records.push(rec);
                match res {
                    Ok(r) => BatchResult {
                        correlation_id: c.correlation_id,
                        decision_id,
                        allowed: Some(r.allowed),
                        error: None,
                    },
                    Err(e) => BatchResult {
                        correlation_id: c.correlation_id,
                        decision_id,
                        allowed: None,
                        error: Some(e.into()),
                    },
                }
            })
            .collect()
    };
    state.audit.record_all(records).await?;
    Ok(axum::Json(
        json!({"results": results, "revision": revision}),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListObjectsBody {
    user: String,
    relation: String,
    #[serde(rename = "type")]
    object_type: String,
    #[serde(default)]
    context: Context,
    #[serde(default)]
    contextual_tuples: Vec<TupleKey>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

pub async fn list_objects(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    Json(body): Json<ListObjectsBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let (data, revision) = snapshot(&state, &org, body.consistency).await?;
    let data = data.read();
    let model = data.model(body.model_id.as_deref())?;
    let objects = Engine::new(model, &data.tuples).list_objects(&ListObjectsRequest {
        user: body.user,
        relation: body.relation,
        object_type: body.object_type,
        context: body.context,
        contextual_tuples: body.contextual_tuples,
    })?;
    Ok(axum::Json(
        json!({"objects": objects, "revision": revision}),
    ))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListUsersBody {
    object: String,
    relation: String,
    /// `type` or `type#relation` each.
    user_filters: Vec<String>,
    #[serde(default)]
    context: Context,
    #[serde(default)]
    contextual_tuples: Vec<TupleKey>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

pub async fn list_users(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    Json(body): Json<ListUsersBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    if body.user_filters.is_empty() {
        return Err(ApiError::bad_request(
            "`user_filters` needs at least one type",
        ));
    }
    let (data, revision) = snapshot(&state, &org, body.consistency).await?;
    let data = data.read();
    let model = data.model(body.model_id.as_deref())?;
    let users = Engine::new(model, &data.tuples).list_users(&ListUsersRequest {
        object: body.object,
        relation: body.relation,
        user_filters: body
            .user_filters
            .iter()
            .map(|f| UserFilter::parse(f))
            .collect(),
        context: body.context,
        contextual_tuples: body.contextual_tuples,
    })?;
    Ok(axum::Json(json!({"users": users, "revision": revision})))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExpandBody {
    object: String,
    relation: String,
    #[serde(default)]
    contextual_tuples: Vec<TupleKey>,
    #[serde(default)]
    model_id: Option<String>,
    #[serde(default)]
    consistency: Option<Consistency>,
}

pub async fn expand(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    Json(body): Json<ExpandBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let (data, revision) = snapshot(&state, &org, body.consistency).await?;
    let data = data.read();
    let model = data.model(body.model_id.as_deref())?;
    let tree = Engine::new(model, &data.tuples).expand(&ExpandRequest {
        object: body.object,
        relation: body.relation,
        contextual_tuples: body.contextual_tuples,
    })?;
    Ok(axum::Json(json!({"tree": tree, "revision": revision})))
}
