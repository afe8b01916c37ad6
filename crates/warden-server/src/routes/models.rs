//! Authorization models: write (DSL or JSON, validated), list, read.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use warden_model::ModelError;
use warden_storage::Role;

use crate::auth::{Caller, OrgGate};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

/// A model in the DSL (`dsl`) or in OpenFGA's JSON form (`model`), exactly one.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteModel {
    dsl: Option<String>,
    model: Option<serde_json::Value>,
}

fn invalid_model(errors: Vec<ModelError>) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_model",
        match errors.first() {
            Some(first) => format!("invalid model ({} errors); first: {first}", errors.len()),
            None => "invalid model".to_string(),
        },
    );
    e.errors = errors
        .iter()
        .map(|x| {
            json!({
                "type": x.kind.as_str(),
                "message": x.message,
                "line": x.line + 1,
                "column": x.column + 1,
            })
        })
        .collect();
    e
}

pub async fn write_model(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    meta: crate::audit::Meta,
    Json(body): Json<WriteModel>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Writer)?;
    state.org_fresh(&org).await?;
    let schema = match (body.dsl, body.model) {
        (Some(dsl), None) => {
            let errors = warden_model::validate_dsl(&dsl);
            if !errors.is_empty() {
                return Err(invalid_model(errors));
            }
            warden_model::parse_dsl(&dsl).map_err(|e| invalid_model(vec![e]))?
        }
        (None, Some(json)) => {
            let schema: warden_model::AuthorizationModel =
                serde_json::from_value(json).map_err(|e| {
                    ApiError::new(StatusCode::BAD_REQUEST, "invalid_model", e.to_string())
                })?;
            let errors = warden_model::validate::validate_all(&schema, None);
            if !errors.is_empty() {
                return Err(invalid_model(errors));
            }
            schema
        }
        _ => {
            return Err(ApiError::bad_request(
                "send exactly one of `dsl` (the DSL text) or `model` (the JSON form)",
            ));
        }
    };
    warden_engine::Model::new(schema.clone())?;
    let stored = state
        .db
        .write_model(&org, &warden_model::to_json(&schema))
        .await?;
    state.db.notify().await;
    state.wait_for(stored.revision).await?;
    let mut rec = meta.change(&org, &caller, "model.write");
    rec.resource = Some(format!("model:{}", stored.id));
    rec.model_id = Some(stored.id.clone());
    rec.revision = Some(stored.revision);
    crate::audit::change_recorded(&state.audit, rec).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(json!({"id": stored.id, "revision": stored.revision})),
    ))
}

pub async fn list_models(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    state.org_fresh(&org).await?;
    let models: Vec<_> = state
        .db
        .models(&org)
        .await?
        .into_iter()
        .rev()
        .map(|m| json!({"id": m.id, "created_at": m.created_at, "revision": m.revision}))
        .collect();
    Ok(axum::Json(json!({ "models": models })))
}

pub async fn get_model(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    state.org_fresh(&org).await?;
    let id = if id == "latest" {
        state
            .db
            .models(&org)
            .await?
            .pop()
            .map(|m| m.id)
            .ok_or_else(|| ApiError::not_found("the organization has no model"))?
    } else {
        id
    };
    let m = state.db.model(&org, &id).await?;
    let schema = warden_model::parse_json(&m.model_json).map_err(ApiError::internal)?;
    Ok(axum::Json(json!({
        "id": m.id,
        "created_at": m.created_at,
        "revision": m.revision,
        "model": schema,
        "dsl": warden_model::try_to_dsl(&schema).ok(),
    })))
}
