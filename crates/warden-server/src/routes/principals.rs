//! Principals: users, groups and agents. Created or replaced with `PUT`, their status
//! changed with `POST .../status`; every change is a revision, so a suspension takes
//! effect at the next decision on every node.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;
use warden_storage::{Principal, PrincipalKind, Role, Status};

use crate::auth::{Caller, OrgGate};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

/// The body of `PUT /v1/orgs/{org}/{users|groups|agents}/{id}`.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPrincipal {
    #[serde(default)]
    display_name: String,
    /// Defaults to `active`.
    #[serde(default)]
    status: Option<Status>,
    /// Users: a password for the built-in sign-in page (12 characters or more).
    #[serde(default)]
    password: Option<String>,
    /// Agents: `user:<id>` or `group:<id>`, who is accountable (required).
    #[serde(default)]
    owner: Option<String>,
    /// Agents: the task the agent exists for.
    #[serde(default)]
    purpose: Option<String>,
    /// Agents: catalog scopes its tokens may carry at most.
    #[serde(default)]
    allowed_scopes: Vec<String>,
    /// Agents: expiry, milliseconds since the Unix epoch.
    #[serde(default)]
    expires_at: Option<i64>,
    /// Agents: redirect URIs for the authorization code flow (matched exactly;
    /// `https://`, or `http://` on localhost / 127.0.0.1 only; no fragment).
    #[serde(default)]
    redirect_uris: Vec<String>,
}

pub fn valid_redirect_uri(u: &str) -> bool {
    let local = ["http://localhost", "http://127.0.0.1", "http://[::1]"]
        .iter()
        .any(|p| {
            u.strip_prefix(p)
                .is_some_and(|r| r.is_empty() || r.starts_with(':') || r.starts_with('/'))
        });
    (u.starts_with("https://") || local)
        && !u.contains('#')
        && !u.chars().any(|c| c.is_whitespace() || c.is_control())
        && u.len() <= 2000
}

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutStatus {
    status: Status,
}

fn kind_of(plural: &str) -> ApiResult<PrincipalKind> {
    match plural {
        "users" => Ok(PrincipalKind::User),
        "groups" => Ok(PrincipalKind::Group),
        "agents" => Ok(PrincipalKind::Agent),
        _ => Err(ApiError::not_found("no such route")),
    }
}

fn check_status(kind: PrincipalKind, status: Status) -> ApiResult<()> {
    let ok = match kind {
        PrincipalKind::User => matches!(
            status,
            Status::Active | Status::Suspended | Status::Deprovisioned
        ),
        PrincipalKind::Agent => {
            matches!(status, Status::Active | Status::Suspended | Status::Retired)
        }
        PrincipalKind::Group => status == Status::Active,
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "a {} cannot be `{}`",
            kind.as_str(),
            status.as_str()
        )))
    }
}

/// An argon2id hash of a new password (12 characters or more).
pub(crate) fn hash_password(password: &str) -> ApiResult<String> {
    use password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    if password.chars().count() < 12 {
        return Err(ApiError::bad_request(
            "a password needs at least 12 characters",
        ));
    }
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(ApiError::internal)
}

pub async fn put(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, plural, id)): Path<(String, String, String)>,
    _gate: OrgGate,
    meta: crate::audit::Meta,
    Json(body): Json<PutPrincipal>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    let kind = kind_of(&plural)?;
    let status = body.status.unwrap_or(Status::Active);
    check_status(kind, status)?;
    let data = state.org_fresh(&org).await?;
    let is_agent = kind == PrincipalKind::Agent;
    if !is_agent
        && (body.owner.is_some()
            || body.purpose.is_some()
            || !body.allowed_scopes.is_empty()
            || body.expires_at.is_some()
            || !body.redirect_uris.is_empty())
    {
        return Err(ApiError::bad_request(
            "owner, purpose, allowed_scopes, expires_at and redirect_uris are for agents",
        ));
    }
    if kind != PrincipalKind::User && body.password.is_some() {
        return Err(ApiError::bad_request("only users have passwords"));
    }
    if is_agent {
        let owner = body.owner.as_deref().ok_or_else(|| {
            ApiError::bad_request("an agent needs an owner (`user:<id>` or `group:<id>`)")
        })?;
        let (k, oid) = owner
            .split_once(':')
            .and_then(|(k, i)| PrincipalKind::parse(k).map(|k| (k, i)))
            .filter(|(k, _)| *k != PrincipalKind::Agent)
            .ok_or_else(|| {
                ApiError::bad_request("an agent's owner is `user:<id>` or `group:<id>`")
            })?;
        let d = data.read();
        if !d.principals.contains_key(&(k, oid.to_string())) {
            return Err(ApiError::bad_request(format!(
                "owner `{owner}` does not exist"
            )));
        }
        for s in &body.allowed_scopes {
            if !d.settings.scopes.contains_key(s) {
                return Err(ApiError::bad_request(format!(
                    "scope `{s}` is not in the organization's scope catalog"
                )));
            }
        }
    }
    if let Some(bad) = body.redirect_uris.iter().find(|u| !valid_redirect_uri(u)) {
        return Err(ApiError::bad_request(format!(
            "redirect URI `{bad}`: use https://, or http:// on localhost, without a fragment"
        )));
    }
    let hash = body.password.as_deref().map(hash_password).transpose()?;
    let p = Principal {
        kind,
        id: id.clone(),
        display_name: body.display_name,
        owner: body.owner,
        purpose: body.purpose,
        allowed_scopes: body.allowed_scopes,
        status,
        expires_at: body.expires_at,
        created_at: 0,
        updated_at: 0,
        redirect_uris: body.redirect_uris,
        tokens_not_before: None,
        flag: None,
    };
    let (stored, revision) = state.db.put_principal(&org, &p, hash.as_deref()).await?;
    state.db.notify().await;
    state.wait_for(revision).await?;
    let mut out = serde_json::to_value(&stored).map_err(ApiError::internal)?;
    out["revision"] = json!(revision);
    let mut rec = meta.change(&org, &caller, "principal.put");
    rec.resource = Some(stored.subject());
    rec.revision = Some(revision);
    rec.detail = json!({"principal": out, "password_set": hash.is_some()});
    crate::audit::change_recorded(&state.audit, rec).await?;
    Ok(axum::Json(out))
}

pub async fn set_status(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, plural, id)): Path<(String, String, String)>,
    _gate: OrgGate,
    meta: crate::audit::Meta,
    Json(body): Json<PutStatus>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    let kind = kind_of(&plural)?;
    check_status(kind, body.status)?;
    let data = state.org_fresh(&org).await?;
    let mut p = state.db.principal(&org, kind, &id).await?;
    // A user who stops being active loses every token naming them (also after a
    // later reactivation), their refresh tokens and pending codes; agents they own
    // are flagged (and suspended if the organization says so).
    let mut left = None;
    let (stored, revision) = if kind == PrincipalKind::User && body.status != Status::Active {
        let how = warden_storage::Leaver {
            suspend_owned_agents: data.read().settings.directory.suspend_agents_of_leavers,
            remove_memberships: false,
        };
        let (stored, revision, report) = state.db.user_leaves(&org, &id, body.status, how).await?;
        left = Some(report);
        (stored, revision)
    } else {
        p.status = body.status;
        state.db.put_principal(&org, &p, None).await?
    };
    state.db.notify().await;
    state.wait_for(revision).await?;
    tracing::info!(org, principal = %stored.subject(), status = stored.status.as_str(), "status changed");
    let mut out = serde_json::to_value(&stored).map_err(ApiError::internal)?;
    out["revision"] = json!(revision);
    let mut rec = meta.change(&org, &caller, "principal.status");
    rec.resource = Some(stored.subject());
    rec.revision = Some(revision);
    rec.detail = json!({"status": stored.status.as_str(), "leaver": left});
    crate::audit::change_recorded(&state.audit, rec).await?;
    Ok(axum::Json(out))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, plural, id)): Path<(String, String, String)>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let kind = kind_of(&plural)?;
    state.org_fresh(&org).await?;
    Ok(axum::Json(state.db.principal(&org, kind, &id).await?))
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, plural)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let kind = kind_of(&plural)?;
    state.org_fresh(&org).await?;
    let list = state.db.principals(&org, Some(kind)).await?;
    Ok(axum::Json(json!({ plural: list })))
}
