//! Organizations, their API keys and their settings.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use warden_storage::Role;

use crate::auth::{Caller, OrgGate};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::{AppState, OrgSettings};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrg {
    id: String,
}

pub async fn create_org(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Json(body): Json<CreateOrg>,
) -> ApiResult<impl IntoResponse> {
    caller.require_server_admin()?;
    let (org, revision) = state.db.create_org(&body.id).await?;
    state.wait_for(revision).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": org.id, "created_at": org.created_at, "revision": revision})),
    ))
}

pub async fn list_orgs(
    State(state): State<Arc<AppState>>,
    caller: Caller,
) -> ApiResult<impl IntoResponse> {
    caller.require_server_admin()?;
    let orgs = state.db.list_orgs().await?;
    Ok(axum::Json(json!({ "orgs": orgs })))
}

pub async fn get_org(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let o = state.db.get_org(&org).await?;
    Ok(axum::Json(o))
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    role: Role,
    #[serde(default)]
    name: String,
}

pub async fn create_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    Json(body): Json<CreateKey>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    let key = state
        .db
        .create_key(Some(&org), body.role, &body.name)
        .await?;
    tracing::info!(org, key = %key.key.id, role = body.role.as_str(), "API key created");
    Ok((StatusCode::CREATED, axum::Json(key)))
}

pub async fn list_keys(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    state.db.get_org(&org).await?;
    let keys = state.db.list_keys(Some(&org)).await?;
    Ok(axum::Json(json!({ "keys": keys })))
}

pub async fn revoke_key(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    state.db.revoke_key(Some(&org), &id).await?;
    state.forget_keys();
    tracing::info!(org, key = %id, "API key revoked");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn put_settings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    Json(settings): Json<OrgSettings>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    for (id, r) in &settings.resources {
        if !(r.uri.starts_with("https://") || r.uri.starts_with("http://")) || r.uri.contains('#') {
            return Err(ApiError::bad_request(format!(
                "resource `{id}`: uri must be an absolute http(s) URI without a fragment"
            )));
        }
        if let Some(s) = r.scopes.iter().find(|s| !settings.scopes.contains_key(*s)) {
            return Err(ApiError::bad_request(format!(
                "resource `{id}`: scope `{s}` is not in the catalog"
            )));
        }
    }
    let reg = &settings.registration;
    if reg.enabled {
        let owner_ok = reg
            .owner
            .split_once(':')
            .and_then(|(k, id)| {
                warden_storage::PrincipalKind::parse(k).map(|k| (k, id.to_string()))
            })
            .filter(|(k, _)| *k != warden_storage::PrincipalKind::Agent)
            .is_some_and(|key| {
                state
                    .org(&org)
                    .is_ok_and(|d| d.read().principals.contains_key(&key))
            });
        if !owner_ok {
            return Err(ApiError::bad_request(
                "registration.owner must be an existing `user:<id>` or `group:<id>`",
            ));
        }
        if let Some(s) = reg
            .allowed_scopes
            .iter()
            .find(|s| !settings.scopes.contains_key(*s))
        {
            return Err(ApiError::bad_request(format!(
                "registration: scope `{s}` is not in the catalog"
            )));
        }
    }
    let text = serde_json::to_string(&settings).map_err(ApiError::internal)?;
    let revision = state.db.set_org_settings(&org, &text).await?;
    state.db.notify().await;
    state.wait_for(revision).await?;
    Ok(axum::Json(json!({ "revision": revision })))
}

pub async fn get_settings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let data = state.org_fresh(&org).await?;
    let settings = data.read().settings.clone();
    Ok(axum::Json(settings))
}
