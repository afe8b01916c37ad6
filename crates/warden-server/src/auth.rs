//! Access to the API itself: every request but health and discovery presents an API
//! key (`Authorization: Bearer wdn_...`); routes then require a role on an
//! organization. A key of one organization can never act on another.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use warden_storage::{ApiKey, Role};

use crate::error::ApiError;
use crate::state::AppState;

/// The verified key of the caller.
#[derive(Debug, Clone)]
pub struct Caller(pub ApiKey);

impl Caller {
    /// Allows the call if the key has at least `role` on `org`. A server administrator
    /// key (no organization) may do anything.
    pub fn require(&self, org: &str, role: Role) -> Result<(), ApiError> {
        let key = &self.0;
        match &key.org_id {
            None if key.role == Role::Admin && role != Role::Directory => Ok(()),
            None => Err(ApiError::forbidden("this key has no organization")),
            Some(o) if o != org => Err(ApiError::forbidden(
                "this key is not valid for this organization",
            )),
            // Directory keys stand apart: they open the SCIM endpoints and nothing
            // else, and nothing else opens those.
            Some(_) if (key.role == Role::Directory) != (role == Role::Directory) => {
                Err(ApiError::forbidden(format!(
                    "this call needs the `{}` role; the key has `{}`",
                    role.as_str(),
                    key.role.as_str()
                )))
            }
            Some(_) if key.role < role => Err(ApiError::forbidden(format!(
                "this call needs the `{}` role; the key has `{}`",
                role.as_str(),
                key.role.as_str()
            ))),
            Some(_) => Ok(()),
        }
    }

    /// Allows only server administrator keys.
    pub fn require_server_admin(&self) -> Result<(), ApiError> {
        match (&self.0.org_id, self.0.role) {
            (None, Role::Admin) => Ok(()),
            _ => Err(ApiError::forbidden(
                "this call needs a server administrator key",
            )),
        }
    }
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        // Verified once per request, however many extractors ask.
        if let Some(c) = parts.extensions.get::<Caller>() {
            return Ok(c.clone());
        }
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or_else(ApiError::unauthenticated)?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(key) = state.cached_key(&hash) {
            parts.extensions.insert(Caller(key.clone()));
            return Ok(Caller(key));
        }
        let key = state
            .db
            .verify_key(token)
            .await
            .map_err(ApiError::internal)?
            .ok_or_else(ApiError::unauthenticated)?;
        let _ = state.db.touch_key(&key.id).await;
        state.cache_key(hash, key.clone());
        parts.extensions.insert(Caller(key.clone()));
        Ok(Caller(key))
    }
}

/// Checks, before the body is read, that the caller's key belongs to the organization
/// in the path (any role). Handlers then check the role they need. This keeps a key of
/// another organization from learning anything, even how a body would be parsed.
pub struct OrgGate;

impl FromRequestParts<Arc<AppState>> for OrgGate {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, state).await?;
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::bad_request("invalid path"))?;
        if let Some((_, org)) = params.iter().find(|(k, _)| *k == "org") {
            caller.require(org, Role::Checker)?;
        }
        Ok(OrgGate)
    }
}
