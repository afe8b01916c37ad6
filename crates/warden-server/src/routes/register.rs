//! Dynamic client registration (RFC 7591), off unless an organization enables it.
//!
//! Registration is global (one issuer, one registration endpoint); a registered client
//! is bound to an organization on its first authorization request, by the registered
//! protected resource it names (`resource`), and becomes an agent of that organization
//! under the organization's registration policy. Registered clients are public
//! (`token_endpoint_auth_method: none`): they use the authorization code flow with
//! PKCE, and refresh tokens.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use warden_storage::{Principal, PrincipalKind, Status};

use crate::json::Json;
use crate::state::AppState;

/// Client metadata a client registers (RFC 7591 §2; unknown fields are ignored).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct ClientMetadata {
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    grant_types: Option<Vec<String>>,
    #[serde(default)]
    response_types: Option<Vec<String>>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

fn error(code: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(json!({"error": code, "error_description": description})),
    )
        .into_response()
}

/// `POST /oauth2/register`.
pub async fn register(
    State(state): State<Arc<AppState>>,
    meta: crate::audit::Meta,
    Json(m): Json<ClientMetadata>,
) -> Response {
    let enabled = state.org_ids().iter().any(|o| {
        state
            .org(o)
            .is_ok_and(|d| d.read().settings.registration.enabled)
    });
    if !enabled {
        return (
            StatusCode::FORBIDDEN,
            axum::Json(json!({"error": "access_denied",
                              "error_description": "dynamic client registration is disabled"})),
        )
            .into_response();
    }
    if m.redirect_uris.is_empty()
        || m.redirect_uris
            .iter()
            .any(|u| !super::principals::valid_redirect_uri(u))
    {
        return error(
            "invalid_redirect_uri",
            "redirect URIs are required: https://, or http:// on localhost, without a fragment",
        );
    }
    let grants = m
        .grant_types
        .clone()
        .unwrap_or_else(|| vec!["authorization_code".into()]);
    if grants
        .iter()
        .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return error(
            "invalid_client_metadata",
            "registered clients use authorization_code (and refresh_token) only",
        );
    }
    if m.response_types
        .as_ref()
        .is_some_and(|r| r.iter().any(|t| t != "code"))
    {
        return error(
            "invalid_client_metadata",
            "response_types may only hold `code`",
        );
    }
    if m.token_endpoint_auth_method
        .as_deref()
        .is_some_and(|a| a != "none")
    {
        return error(
            "invalid_client_metadata",
            "registered clients are public: token_endpoint_auth_method `none` (with PKCE)",
        );
    }
    let mut raw = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let client_id = format!("dyn-{}", hex::encode(raw));
    let stored = json!({
        "redirect_uris": m.redirect_uris,
        "client_name": m.client_name,
        "grant_types": grants,
    });
    if let Err(e) = state.db.register_dynamic_client(&client_id, &stored).await {
        tracing::error!(error = %e, "cannot store a registered client");
        return error("server_error", "internal error");
    }
    tracing::info!(client = %client_id, "client registered");
    let mut rec = meta.record(crate::audit::SYSTEM_ORG, "change", "client.register");
    rec.resource = Some(format!("client:{client_id}"));
    rec.detail =
        json!({"redirect_uris": stored["redirect_uris"], "client_name": stored["client_name"]});
    if let Err(e) = crate::audit::change_recorded(&state.audit, rec).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"error": "temporarily_unavailable", "error_description": e.message})),
        )
            .into_response();
    }
    (
        StatusCode::CREATED,
        axum::Json(json!({
            "client_id": client_id,
            "client_id_issued_at": warden_oauth::now_secs(),
            "redirect_uris": stored["redirect_uris"],
            "client_name": stored["client_name"],
            "grant_types": stored["grant_types"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        })),
    )
        .into_response()
}

/// Whether `client_id` is a dynamically registered client's.
pub fn is_dynamic(client_id: &str) -> bool {
    client_id.starts_with("dyn-") && !client_id.contains(':')
}

/// The (organization, agent) of a dynamic client, binding it on first use to the
/// organization whose registered resource `resource` is.
pub async fn resolve_dynamic(
    state: &AppState,
    client_id: &str,
    resource: Option<&str>,
) -> Result<(String, String), String> {
    let Ok(Some((meta, bound))) = state.db.dynamic_client(client_id).await else {
        return Err("unknown client".into());
    };
    if let Some(org) = bound {
        return Ok((org, client_id.to_string()));
    }
    let resource = resource.ok_or("this client must name the resource it is for")?;
    let org = state
        .org_ids()
        .into_iter()
        .find(|o| {
            state.org(o).is_ok_and(|d| {
                let d = d.read();
                d.settings.registration.enabled
                    && d.settings.resources.values().any(|r| r.uri == resource)
            })
        })
        .ok_or("no organization accepts registered clients for this resource")?;
    let policy = state
        .org(&org)
        .map(|d| d.read().settings.registration.clone())
        .map_err(|_| "unknown organization".to_string())?;
    let redirect_uris: Vec<String> = meta["redirect_uris"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|u| u.as_str().map(str::to_string))
        .collect();
    let agent = Principal {
        kind: PrincipalKind::Agent,
        id: client_id.to_string(),
        display_name: meta["client_name"].as_str().unwrap_or("").to_string(),
        owner: Some(policy.owner.clone()),
        purpose: Some("dynamically registered client".into()),
        allowed_scopes: policy.allowed_scopes.clone(),
        status: Status::Active,
        expires_at: None,
        created_at: 0,
        updated_at: 0,
        redirect_uris,
        tokens_not_before: None,
        flag: None,
    };
    if state
        .db
        .bind_dynamic_client(client_id, &org)
        .await
        .map_err(|e| e.to_string())?
    {
        let (_, revision) = state
            .db
            .put_principal(&org, &agent, None)
            .await
            .map_err(|e| e.to_string())?;
        state.db.notify().await;
        state.wait_for(revision).await.map_err(|e| e.message)?;
        tracing::info!(client = %client_id, org, "registered client bound");
        let mut rec = crate::audit::Meta::default().record(&org, "change", "client.bind");
        rec.caller = Some(format!("client:{client_id}"));
        rec.resource = Some(format!("agent:{client_id}"));
        rec.agent = Some(format!("agent:{client_id}"));
        rec.revision = Some(revision);
        rec.detail = json!({"resource": resource, "owner": policy.owner, "allowed_scopes": policy.allowed_scopes});
        crate::audit::change_recorded(&state.audit, rec)
            .await
            .map_err(|e| e.message)?;
        return Ok((org, client_id.to_string()));
    }
    // Bound concurrently by another request: use that binding.
    match state.db.dynamic_client(client_id).await {
        Ok(Some((_, Some(o)))) => Ok((o, client_id.to_string())),
        _ => Err("unknown client".into()),
    }
}
