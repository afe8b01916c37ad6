//! Organizations, their API keys and their settings.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use warden_storage::Role;

use crate::audit::{Meta, change_recorded};
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
    meta: Meta,
    Json(body): Json<CreateOrg>,
) -> ApiResult<impl IntoResponse> {
    caller.require_server_admin()?;
    let (org, revision) = state.db.create_org(&body.id).await?;
    state.wait_for(revision).await?;
    let mut rec = meta.change(&org.id, &caller, "org.create");
    rec.resource = Some(format!("org:{}", org.id));
    rec.revision = Some(revision);
    change_recorded(&state.audit, rec).await?;
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
    meta: Meta,
    Json(body): Json<CreateKey>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    let key = state
        .db
        .create_key(Some(&org), body.role, &body.name)
        .await?;
    tracing::info!(org, key = %key.key.id, role = body.role.as_str(), "API key created");
    let mut rec = meta.change(&org, &caller, "key.create");
    rec.resource = Some(format!("key:{}", key.key.id));
    rec.detail = json!({"role": body.role.as_str(), "name": body.name});
    change_recorded(&state.audit, rec).await?;
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
    meta: Meta,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    state.db.revoke_key(Some(&org), &id).await?;
    state.forget_keys();
    tracing::info!(org, key = %id, "API key revoked");
    let mut rec = meta.change(&org, &caller, "key.revoke");
    rec.resource = Some(format!("key:{id}"));
    change_recorded(&state.audit, rec).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn put_settings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    meta: Meta,
    Json(mut settings): Json<OrgSettings>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    let previous = state.org_fresh(&org).await?.read().settings.clone();
    if settings
        .audit
        .retention_days
        .is_some_and(|d| !(1..=36_500).contains(&d))
    {
        return Err(ApiError::bad_request(
            "audit.retention_days is 1 to 36500 (or absent: keep forever)",
        ));
    }
    let kept = previous
        .audit
        .webhook
        .as_ref()
        .and_then(|h| h.secret.clone());
    check_webhook("audit.webhook", settings.audit.webhook.as_mut(), kept)?;
    let kept = previous
        .approvals
        .webhook
        .as_ref()
        .and_then(|h| h.secret.clone());
    check_webhook(
        "approvals.webhook",
        settings.approvals.webhook.as_mut(),
        kept,
    )?;
    check_approval_rules(&settings.approvals.rules)?;
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
    // What changed, by section; values stay out of the record (the webhook secret).
    let (old, new) = (json!(previous), json!(settings));
    let changed: Vec<&String> = new
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| old.get(k.as_str()) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    let mut rec = meta.change(&org, &caller, "settings.replace");
    rec.resource = Some(format!("org:{org}"));
    rec.revision = Some(revision);
    rec.detail = json!({ "changed": changed });
    change_recorded(&state.audit, rec).await?;
    Ok(axum::Json(json!({ "revision": revision })))
}

pub async fn get_settings(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let data = state.org_fresh(&org).await?;
    let mut settings = data.read().settings.clone();
    for h in [
        settings.audit.webhook.as_mut(),
        settings.approvals.webhook.as_mut(),
    ]
    .into_iter()
    .flatten()
    {
        if h.secret.is_some() {
            h.secret = Some(crate::state::SECRET_MASK.to_string());
        }
    }
    Ok(axum::Json(settings))
}

/// A webhook's URL must be https (or http to a loopback address) and its secret, if
/// any, 16 characters or more; a secret written back as read (`(set)`) keeps `kept`.
fn check_webhook(
    field: &str,
    hook: Option<&mut crate::state::AuditWebhook>,
    kept: Option<String>,
) -> ApiResult<()> {
    let Some(hook) = hook else {
        return Ok(());
    };
    let url = reqwest::Url::parse(&hook.url)
        .map_err(|e| ApiError::bad_request(format!("{field}.url: {e}")))?;
    let loopback = matches!(url.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    if !(url.scheme() == "https" || (url.scheme() == "http" && loopback)) {
        return Err(ApiError::bad_request(format!(
            "{field}.url must be https:// (or http:// to a loopback address)"
        )));
    }
    if hook.secret.as_deref() == Some(crate::state::SECRET_MASK) {
        hook.secret = kept;
    }
    if hook.secret.as_ref().is_some_and(|s| s.len() < 16) {
        return Err(ApiError::bad_request(format!(
            "{field}.secret must be at least 16 characters"
        )));
    }
    Ok(())
}

/// Approval rules: unique names, a type and relations, exactly one kind of approver,
/// a condition that compiles, sane durations.
fn check_approval_rules(rules: &[crate::state::ApprovalRule]) -> ApiResult<()> {
    let mut names = std::collections::HashSet::new();
    for r in rules {
        let bad = |m: String| ApiError::bad_request(format!("approval rule `{}`: {m}", r.name));
        if r.name.is_empty() || !names.insert(r.name.as_str()) {
            return Err(ApiError::bad_request(
                "every approval rule needs a unique, non-empty name",
            ));
        }
        if r.type_name.is_empty() || r.relations.is_empty() {
            return Err(bad("`type` and at least one relation are required".into()));
        }
        if r.approver_relation.is_some() == r.approver_group.is_some() {
            return Err(bad(
                "name exactly one of `approver_relation` and `approver_group`".into(),
            ));
        }
        if let Some(c) = &r.condition {
            warden_engine::approval::RuleCondition::compile(c)
                .map_err(|e| bad(format!("condition: {e}")))?;
        }
        if !(1..=7 * 86_400).contains(&r.wait_secs) || !(1..=86_400).contains(&r.valid_secs) {
            return Err(bad(
                "wait_secs is 1 to 604800 and valid_secs 1 to 86400".into()
            ));
        }
    }
    Ok(())
}
