//! The OAuth 2.1 authorization server: the token endpoint (`client_credentials` for
//! agents, authenticated by `private_key_jwt` or a client secret), the JWKS,
//! metadata (RFC 8414 and OpenID discovery), revocation (RFC 7009) and introspection
//! (RFC 7662); and agents' credentials.
//!
//! Client ids are `<org>:<agent>`: neither part may contain `:`, so the split is exact.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;
use warden_oauth::OAuthError;
use warden_oauth::token::AccessClaims;
use warden_storage::{PrincipalKind, Role};

use crate::audit::{Meta, change_recorded};
use crate::auth::{Caller, OrgGate};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::AppState;

/// An OAuth error response (RFC 6749 §5.2): `{error, error_description}`.
pub struct OAuthResponse(OAuthError);

impl IntoResponse for OAuthResponse {
    fn into_response(self) -> Response {
        let status = match self.0.code {
            "invalid_client" => StatusCode::UNAUTHORIZED,
            "server_error" => StatusCode::INTERNAL_SERVER_ERROR,
            // The audit log cannot be written: nothing is issued or changed unrecorded.
            "temporarily_unavailable" => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        let mut res = (
            status,
            axum::Json(json!({"error": self.0.code, "error_description": self.0.description})),
        )
            .into_response();
        res.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
        res
    }
}

impl From<OAuthError> for OAuthResponse {
    fn from(e: OAuthError) -> Self {
        OAuthResponse(e)
    }
}

fn server_error(e: impl std::fmt::Display) -> OAuthError {
    tracing::error!(error = %e, "token endpoint failure");
    OAuthError::new("server_error", "internal error")
}

/// The authenticated client: organization and agent.
struct ClientIdentity {
    org: String,
    agent: String,
    /// The credential used (for last-used times).
    credential: String,
    /// When it was last recorded as used.
    last_used_at: Option<i64>,
}

fn split_client_id(client_id: &str) -> Result<(String, String), OAuthError> {
    client_id
        .split_once(':')
        .filter(|(o, a)| !o.is_empty() && !a.is_empty())
        .map(|(o, a)| (o.to_string(), a.to_string()))
        .ok_or_else(|| OAuthError::invalid_client("client_id is `<org>:<agent>`"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                }
                Err(_) => {
                    out.push(b'%');
                    i += 1;
                }
            },
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Authenticates the client of a token or revocation request: `private_key_jwt`
/// (preferred), or a secret by HTTP Basic or in the form.
/// What a client authenticates for: a token request, or a revocation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Token,
    Revoke,
}

async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    form: &HashMap<String, String>,
    purpose: Purpose,
) -> Result<ClientIdentity, OAuthError> {
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .map(|b| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .decode(b.trim())
                .ok()
                .and_then(|d| String::from_utf8(d).ok())
                // Split at the last `:`: Warden's secrets never hold one, while a
                // client id does (`org:agent`), encoded as RFC 6749 asks or not.
                .and_then(|s| {
                    s.rsplit_once(':')
                        .map(|(i, p)| (percent_decode(i), percent_decode(p)))
                })
                // No client id or secret holds a NUL (PostgreSQL could not look it up).
                .filter(|(i, p)| !i.contains('\0') && !p.contains('\0'))
                .ok_or_else(|| OAuthError::invalid_client("malformed Basic credentials"))
        })
        .transpose()?;
    let assertion = form.get("client_assertion");
    let methods = usize::from(basic.is_some())
        + usize::from(assertion.is_some())
        + usize::from(form.contains_key("client_secret"));
    // A registered public client (RFC 7591, `none`): only for the code flow (always
    // with PKCE) and its refresh tokens.
    if methods == 0
        && let Some(cid) = form.get("client_id")
        && super::register::is_dynamic(cid)
    {
        let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
        // RFC 7009 §5: a public client may revoke its own tokens by its client_id.
        if purpose == Purpose::Token && !matches!(grant, "authorization_code" | "refresh_token") {
            return Err(OAuthError::invalid_client(
                "public clients may only use the authorization code flow",
            ));
        }
        let (org, agent) = super::register::resolve_dynamic(state, cid, None)
            .await
            .map_err(OAuthError::invalid_client)?;
        return Ok(ClientIdentity {
            org,
            agent,
            credential: String::new(),
            last_used_at: Some(warden_storage::now_ms()),
        });
    }
    if methods != 1 {
        return Err(OAuthError::invalid_client(
            "authenticate with exactly one method: private_key_jwt, client_secret_basic or client_secret_post",
        ));
    }
    let now = warden_storage::now_ms();
    if let Some(assertion) = assertion {
        if form.get("client_assertion_type").map(String::as_str)
            != Some(warden_oauth::client::JWT_BEARER)
        {
            return Err(OAuthError::invalid_client(
                "unsupported client_assertion_type",
            ));
        }
        let client_id = warden_oauth::client::assertion_client(assertion)?;
        if form.get("client_id").is_some_and(|c| *c != client_id) {
            return Err(OAuthError::invalid_client(
                "client_id does not match the assertion",
            ));
        }
        let (org, agent) = split_client_id(&client_id)?;
        let creds = state
            .db
            .credentials(&org, &agent)
            .await
            .map_err(server_error)?;
        let live: Vec<_> = creds
            .iter()
            .filter(|c| c.kind == "jwk" && c.is_live(now))
            .collect();
        let jwks: Vec<jsonwebtoken::jwk::Jwk> = live
            .iter()
            .filter_map(|c| c.public_jwk.clone())
            .filter_map(|j| serde_json::from_value(j).ok())
            .collect();
        let audiences = vec![
            state.issuer.clone(),
            format!("{}/oauth2/token", state.issuer),
        ];
        let a = warden_oauth::client::verify_assertion(assertion, &client_id, &jwks, &audiences)?;
        if !state
            .db
            .use_assertion(&format!("{client_id}/{}", a.jti), a.exp)
            .await
            .map_err(server_error)?
        {
            return Err(OAuthError::invalid_client("client assertion already used"));
        }
        let credential = live.first().map(|c| c.id.clone()).unwrap_or_default();
        let last_used_at = live.first().and_then(|c| c.last_used_at);
        return Ok(ClientIdentity {
            org,
            agent,
            credential,
            last_used_at,
        });
    }
    let (client_id, secret) = match basic {
        Some(b) => b,
        None => (
            form.get("client_id").cloned().unwrap_or_default(),
            form.get("client_secret").cloned().unwrap_or_default(),
        ),
    };
    let (org, agent) = split_client_id(&client_id)?;
    let creds = state
        .db
        .credentials(&org, &agent)
        .await
        .map_err(server_error)?;
    let matched = creds.iter().find(|c| {
        c.kind == "secret"
            && c.is_live(now)
            && c.secret_hash
                .as_deref()
                .is_some_and(|h| warden_oauth::client::secret_matches(&secret, h))
    });
    match matched {
        Some(c) => Ok(ClientIdentity {
            org,
            agent,
            credential: c.id.clone(),
            last_used_at: c.last_used_at,
        }),
        None => Err(OAuthError::invalid_client("unknown client or wrong secret")),
    }
}

/// The audience for a `resource` parameter: a registered resource's URI, or the
/// issuer when none is asked.
fn audience_for(
    state: &AppState,
    org: &str,
    resource: Option<&String>,
) -> Result<String, OAuthError> {
    let Some(r) = resource else {
        return Ok(state.issuer.clone());
    };
    if *r == state.issuer {
        return Ok(r.clone());
    }
    let known = state
        .org(org)
        .map(|d| d.read().settings.resources.values().any(|x| x.uri == *r))
        .unwrap_or(false);
    if known {
        Ok(r.clone())
    } else {
        Err(OAuthError::new(
            "invalid_target",
            format!("`{r}` is not a resource registered with this organization"),
        ))
    }
}

/// `GET /.well-known/oauth-protected-resource/{org}/{id}` (RFC 9728), for resources
/// registered with Warden.
pub async fn resource_metadata(
    State(state): State<Arc<AppState>>,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    let data = state.org_fresh(&org).await?;
    let r = data
        .read()
        .settings
        .resources
        .get(&id)
        .cloned()
        .ok_or_else(|| ApiError::not_found(format!("resource `{id}` not found")))?;
    let mut doc = json!({
        "resource": r.uri,
        "authorization_servers": [state.issuer],
        "bearer_methods_supported": ["header"],
        "scopes_supported": r.scopes,
    });
    if let Some(n) = r.name {
        doc["resource_name"] = json!(n);
    }
    Ok(axum::Json(doc))
}

/// RFC 8693 grant type.
pub const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// Most actors in one delegation chain.
const MAX_CHAIN: usize = 5;

/// What a token is issued for.
struct Grant {
    org: String,
    agent: String,
    /// `agent:<id>` (client credentials) or `user:<id>` (authorization code).
    sub: String,
    scopes: Vec<String>,
    audience: String,
}

/// Checks the agent (and user) are usable and the scopes still allowed, then mints.
/// Verifies a DPoP proof sent to the token endpoint; returns the key thumbprint the
/// token will be bound to. Each proof is accepted once.
async fn dpop_binding(state: &AppState, headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let p = warden_oauth::dpop::verify_proof(
        proof,
        "POST",
        &format!("{}/oauth2/token", state.issuer),
        None,
        warden_oauth::now_secs(),
    )?;
    if !state
        .db
        .use_assertion(
            &format!("dpop/{}", p.jti),
            p.iat + 2 * warden_oauth::dpop::MAX_SKEW,
        )
        .await
        .map_err(server_error)?
    {
        return Err(OAuthError::new(
            "invalid_dpop_proof",
            "DPoP proof already used",
        ));
    }
    Ok(Some(p.jkt))
}

fn issue_bound(
    state: &AppState,
    g: &Grant,
    act: Option<warden_oauth::token::Actor>,
    jkt: Option<String>,
) -> Result<(String, AccessClaims), OAuthError> {
    let key = state
        .oauth
        .read()
        .current
        .clone()
        .ok_or_else(|| server_error("no signing key"))?;
    let now = warden_oauth::now_secs();
    let claims = AccessClaims {
        iss: state.issuer.clone(),
        sub: g.sub.clone(),
        aud: g.audience.clone(),
        exp: now + state.limits.token_lifetime_secs,
        iat: now,
        nbf: now,
        jti: uuid::Uuid::now_v7().simple().to_string(),
        scope: g.scopes.join(" "),
        client_id: format!("{}:{}", g.org, g.agent),
        org: g.org.clone(),
        act,
        cnf: jkt.map(|jkt| warden_oauth::token::Confirmation { jkt }),
    };
    let token = warden_oauth::token::mint(&key, &claims)?;
    tracing::info!(org = %g.org, agent = %g.agent, sub = %g.sub, jti = %claims.jti, "token minted");
    Ok((token, claims))
}

/// Binds the token to the client's DPoP key when it sent a proof, mints it, and with
/// `family` also issues a refresh token of that family; then the token response.
#[allow(clippy::too_many_arguments)]
async fn answer(
    state: &AppState,
    headers: &HeaderMap,
    meta: &Meta,
    grant: &str,
    g: &Grant,
    act: Option<warden_oauth::token::Actor>,
    family: Option<&str>,
) -> Result<Response, OAuthResponse> {
    let jkt = dpop_binding(state, headers).await?;
    let (token, claims) = issue_bound(state, g, act.clone(), jkt)?;
    let refresh = match family {
        Some(f) => Some(new_refresh(state, g, f).await?),
        None => None,
    };
    // The token leaves only once its issuance is on the record.
    let mut rec = meta.record(&g.org, "change", "token.issue");
    rec.caller = Some(format!("client:{}", claims.client_id));
    rec.resource = Some(g.audience.clone());
    rec.agent = Some(format!("agent:{}", g.agent));
    if g.sub.starts_with("user:") {
        rec.user = Some(g.sub.clone());
    }
    if let Some(a) = &act {
        rec.actors = a.chain().iter().skip(1).map(|s| s.to_string()).collect();
    }
    rec.jti = Some(claims.jti.clone());
    rec.client_id = Some(claims.client_id.clone());
    rec.detail = json!({
        "grant_type": grant,
        "scope": claims.scope,
        "expires_at": claims.exp,
        "dpop_bound": claims.cnf.is_some(),
        "refresh_token_family": family,
    });
    state.audit.record(rec).await.map_err(|_| {
        OAuthError::new(
            "temporarily_unavailable",
            "the audit log cannot be written; no token is issued without its audit record",
        )
    })?;
    Ok(token_response(
        &token,
        &claims,
        refresh.as_deref(),
        act.is_some(),
    ))
}

/// The token response; an exchanged token also says what it is (RFC 8693).
fn token_response(
    token: &str,
    claims: &AccessClaims,
    refresh: Option<&str>,
    exchanged: bool,
) -> Response {
    let mut body = json!({
        "access_token": token,
        "token_type": if claims.cnf.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": claims.exp - claims.iat,
        "scope": claims.scope,
    });
    if let Some(r) = refresh {
        body["refresh_token"] = json!(r);
    }
    if exchanged {
        body["issued_token_type"] = json!(ACCESS_TOKEN_TYPE);
    }
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

/// Refresh tokens live 30 days; each use replaces it (rotation).
const REFRESH_LIFETIME: i64 = 30 * 24 * 3600;

async fn new_refresh(state: &AppState, g: &Grant, family: &str) -> Result<String, OAuthError> {
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let token = format!("wrt_{}", hex::encode(raw));
    let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
    state
        .db
        .store_refresh_token(
            &digest,
            &warden_storage::RefreshGrant {
                family: family.to_string(),
                org_id: g.org.clone(),
                agent_id: g.agent.clone(),
                user_id: g.sub.trim_start_matches("user:").to_string(),
                scope: g.scopes.join(" "),
                resource: g.audience.clone(),
                expires_at: warden_oauth::now_secs() + REFRESH_LIFETIME,
            },
        )
        .await
        .map_err(server_error)?;
    Ok(token)
}

/// Whether the agent and (for user tokens) the user may still get tokens.
fn principals_usable(state: &AppState, g: &Grant) -> Result<(), OAuthError> {
    let data = state
        .org(&g.org)
        .map_err(|_| OAuthError::invalid_client("unknown client"))?;
    let d = data.read();
    let now = warden_storage::now_ms();
    let agent_ok = d
        .principals
        .get(&(PrincipalKind::Agent, g.agent.clone()))
        .is_some_and(|p| p.is_usable(now));
    if !agent_ok {
        return Err(OAuthError::new(
            "unauthorized_client",
            format!("agent `{}` is not active", g.agent),
        ));
    }
    if let Some(user) = g.sub.strip_prefix("user:")
        && !d
            .principals
            .get(&(PrincipalKind::User, user.to_string()))
            .is_some_and(|p| p.is_usable(now))
    {
        return Err(OAuthError::new("invalid_grant", "the user is not active"));
    }
    Ok(())
}

/// `POST /oauth2/token`.
pub async fn token(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, OAuthResponse> {
    if crate::json::form_has_nul(&form) {
        return Err(OAuthError::invalid_request(crate::json::NUL_REFUSED).into());
    }
    let grant = form.get("grant_type").map(String::as_str).unwrap_or("");
    if !matches!(
        grant,
        "client_credentials" | "authorization_code" | "refresh_token" | TOKEN_EXCHANGE
    ) {
        return Err(OAuthError::new(
            "unsupported_grant_type",
            format!("grant_type `{grant}` is not supported"),
        )
        .into());
    }
    let client = authenticate(&state, &headers, &form, Purpose::Token).await?;
    let data = state
        .org_fresh(&client.org)
        .await
        .map_err(|_| OAuthError::invalid_client("unknown client"))?;
    // Last-used times are kept to the minute: a synchronous write per token would
    // cost more than the token.
    if client
        .last_used_at
        .is_none_or(|t| warden_storage::now_ms() - t > 60_000)
    {
        let _ = state
            .db
            .touch_credential(&client.org, &client.credential)
            .await;
    }
    match grant {
        "authorization_code" => {
            let code = form
                .get("code")
                .ok_or_else(|| OAuthError::invalid_request("code is required"))?;
            let digest = hex::encode(sha2::Sha256::digest(code.as_bytes()));
            let c = match state
                .db
                .redeem_auth_code(&digest)
                .await
                .map_err(server_error)?
            {
                warden_storage::Redeemed::Fresh(c) => c,
                warden_storage::Redeemed::Reused(_) => {
                    tracing::warn!(org = %client.org, agent = %client.agent, "authorization code reused");
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "authorization code already used",
                    )
                    .into());
                }
                warden_storage::Redeemed::Missing => {
                    return Err(
                        OAuthError::new("invalid_grant", "unknown authorization code").into(),
                    );
                }
            };
            if c.org_id != client.org || c.agent_id != client.agent {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "the code was issued to another client",
                )
                .into());
            }
            if c.expires_at < warden_oauth::now_secs() {
                return Err(OAuthError::new("invalid_grant", "authorization code expired").into());
            }
            if form.get("redirect_uri") != Some(&c.redirect_uri) {
                return Err(OAuthError::new("invalid_grant", "redirect_uri does not match").into());
            }
            let verifier = form.get("code_verifier").map(String::as_str).unwrap_or("");
            if !super::authflow::pkce_matches(verifier, &c.code_challenge) {
                return Err(OAuthError::new("invalid_grant", "PKCE verification failed").into());
            }
            let g = Grant {
                org: c.org_id,
                agent: c.agent_id,
                sub: format!("user:{}", c.user_id),
                scopes: c.scope.split_whitespace().map(str::to_string).collect(),
                audience: c.resource,
            };
            principals_usable(&state, &g)?;
            let family = uuid::Uuid::now_v7().simple().to_string();
            return answer(
                &state,
                &headers,
                &meta,
                "authorization_code",
                &g,
                None,
                Some(&family),
            )
            .await;
        }
        "refresh_token" => {
            let rt = form
                .get("refresh_token")
                .ok_or_else(|| OAuthError::invalid_request("refresh_token is required"))?;
            let digest = hex::encode(sha2::Sha256::digest(rt.as_bytes()));
            let r = match state
                .db
                .redeem_refresh_token(&digest)
                .await
                .map_err(server_error)?
            {
                warden_storage::Redeemed::Fresh(r) => r,
                warden_storage::Redeemed::Reused(r) => {
                    tracing::warn!(org = %r.org_id, family = %r.family, "refresh token reused: family revoked");
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "refresh token already used: every token of its family is revoked",
                    )
                    .into());
                }
                warden_storage::Redeemed::Missing => {
                    return Err(OAuthError::new(
                        "invalid_grant",
                        "unknown or revoked refresh token",
                    )
                    .into());
                }
            };
            if r.org_id != client.org || r.agent_id != client.agent {
                return Err(OAuthError::new(
                    "invalid_grant",
                    "the refresh token belongs to another client",
                )
                .into());
            }
            if r.expires_at < warden_oauth::now_secs() {
                return Err(OAuthError::new("invalid_grant", "refresh token expired").into());
            }
            // Scopes can only narrow, and only to what the agent is still allowed.
            let allowed: Vec<String> = {
                let d = data.read();
                d.principals
                    .get(&(PrincipalKind::Agent, r.agent_id.clone()))
                    .map(|p| p.allowed_scopes.clone())
                    .unwrap_or_default()
            };
            let scopes: Vec<String> = r
                .scope
                .split_whitespace()
                .filter(|s| allowed.iter().any(|a| a == s))
                .map(str::to_string)
                .collect();
            let g = Grant {
                org: r.org_id,
                agent: r.agent_id,
                sub: format!("user:{}", r.user_id),
                scopes,
                audience: r.resource,
            };
            principals_usable(&state, &g)?;
            return answer(
                &state,
                &headers,
                &meta,
                "refresh_token",
                &g,
                None,
                Some(&r.family),
            )
            .await;
        }
        TOKEN_EXCHANGE => return exchange(&state, &headers, &meta, &client, &form).await,
        _ => {}
    }
    // client_credentials: the agent itself.
    let scopes = {
        let d = data.read();
        let agent = d
            .principals
            .get(&(PrincipalKind::Agent, client.agent.clone()))
            .ok_or_else(|| OAuthError::invalid_client("unknown client"))?;
        let allowed: Vec<&String> = agent
            .allowed_scopes
            .iter()
            .filter(|s| d.settings.scopes.contains_key(*s))
            .collect();
        match form.get("scope") {
            Some(req) => {
                let mut out: Vec<String> = Vec::new();
                for s in req.split_whitespace() {
                    if !allowed.iter().any(|a| *a == s) {
                        return Err(OAuthError::new(
                            "invalid_scope",
                            format!("scope `{s}` is not allowed for this agent"),
                        )
                        .into());
                    }
                    if !out.iter().any(|o| o == s) {
                        out.push(s.to_string());
                    }
                }
                out
            }
            None => allowed.into_iter().cloned().collect(),
        }
    };
    let audience = audience_for(&state, &client.org, form.get("resource"))?;
    let g = Grant {
        org: client.org.clone(),
        agent: client.agent.clone(),
        sub: format!("agent:{}", client.agent),
        scopes,
        audience,
    };
    principals_usable(&state, &g)?;
    answer(
        &state,
        &headers,
        &meta,
        "client_credentials",
        &g,
        None,
        None,
    )
    .await
}

/// RFC 8693 token exchange: the authenticated agent presents a token that speaks for a
/// user (`subject_token`) and its own token (`actor_token`), and receives a delegated
/// token for the same user whose `act` claim names it, on top of any earlier actors.
/// Scopes: what is asked (default: the subject token's), which must lie within the
/// subject token's scopes and the agent's allowed scopes. Never wider.
async fn exchange(
    state: &AppState,
    headers: &HeaderMap,
    meta: &Meta,
    client: &ClientIdentity,
    form: &HashMap<String, String>,
) -> Result<Response, OAuthResponse> {
    let field = |k: &str| {
        form.get(k)
            .map(String::as_str)
            .ok_or_else(|| OAuthError::invalid_request(format!("{k} is required")))
    };
    for k in ["subject_token_type", "actor_token_type"] {
        if field(k)? != ACCESS_TOKEN_TYPE {
            return Err(
                OAuthError::invalid_request(format!("{k} must be {ACCESS_TOKEN_TYPE}")).into(),
            );
        }
    }
    let bad = |what: &str, e: OAuthError| {
        OAuthError::new("invalid_grant", format!("{what}: {}", e.description))
    };
    let subject =
        verify_token(state, field("subject_token")?, None).map_err(|e| bad("subject_token", e))?;
    let actor =
        verify_token(state, field("actor_token")?, None).map_err(|e| bad("actor_token", e))?;
    let me = format!("agent:{}", client.agent);
    if actor.org != client.org || actor.sub != me || actor.act.is_some() {
        return Err(OAuthError::new(
            "invalid_grant",
            "the actor_token must be the client's own token",
        )
        .into());
    }
    if subject.org != client.org {
        return Err(OAuthError::new(
            "invalid_grant",
            "the subject_token belongs to another organization",
        )
        .into());
    }
    if !subject.sub.starts_with("user:") {
        return Err(
            OAuthError::new("invalid_grant", "the subject_token must speak for a user").into(),
        );
    }
    // The earlier chain: the subject token's actors, or the agent it was issued to.
    let previous = match &subject.act {
        Some(a) => Some(a.clone()),
        None => {
            let holder = format!(
                "agent:{}",
                subject.client_id.split_once(':').map_or("", |(_, a)| a)
            );
            (holder != me).then_some(warden_oauth::token::Actor {
                sub: holder,
                act: None,
            })
        }
    };
    let act = warden_oauth::token::Actor {
        sub: me.clone(),
        act: previous.map(Box::new),
    };
    if act.chain().len() > MAX_CHAIN {
        return Err(OAuthError::new(
            "invalid_grant",
            format!("delegation chains hold at most {MAX_CHAIN} actors"),
        )
        .into());
    }
    let allowed: Vec<String> = {
        let data = state
            .org(&client.org)
            .map_err(|_| OAuthError::invalid_client("unknown client"))?;
        let d = data.read();
        d.principals
            .get(&(PrincipalKind::Agent, client.agent.clone()))
            .map(|p| p.allowed_scopes.clone())
            .unwrap_or_default()
    };
    let granted = subject.scopes();
    let requested: Vec<String> = match form.get("scope") {
        Some(s) => s.split_whitespace().map(str::to_string).collect(),
        None => granted
            .iter()
            .filter(|s| allowed.contains(s))
            .cloned()
            .collect(),
    };
    if let Some(s) = requested
        .iter()
        .find(|s| !granted.contains(s) || !allowed.contains(s))
    {
        return Err(OAuthError::new(
            "invalid_scope",
            format!("scope `{s}` is not held by both the user's token and the agent"),
        )
        .into());
    }
    let audience = match form.get("resource") {
        Some(_) => audience_for(state, &client.org, form.get("resource"))?,
        None => subject.aud.clone(),
    };
    let g = Grant {
        org: client.org.clone(),
        agent: client.agent.clone(),
        sub: subject.sub.clone(),
        scopes: requested,
        audience,
    };
    principals_usable(state, &g)?;
    // Every earlier actor must still be usable too.
    {
        let data = state
            .org(&client.org)
            .map_err(|_| OAuthError::invalid_client("unknown client"))?;
        let d = data.read();
        let now = warden_storage::now_ms();
        for a in act.chain() {
            let id = a.trim_start_matches("agent:").to_string();
            if !d
                .principals
                .get(&(PrincipalKind::Agent, id))
                .is_some_and(|p| p.is_usable(now))
            {
                return Err(
                    OAuthError::new("invalid_grant", format!("actor `{a}` is not active")).into(),
                );
            }
        }
    }
    answer(state, headers, meta, TOKEN_EXCHANGE, &g, Some(act), None).await
}

/// Verifies a Warden access token: signature, issuer, audience (when given), lifetime,
/// and not revoked.
pub fn verify_token(
    state: &AppState,
    token: &str,
    audience: Option<&str>,
) -> Result<AccessClaims, OAuthError> {
    let o = state.oauth.read();
    let claims = warden_oauth::token::verify(token, &o.published, &state.issuer, audience)?;
    if o.revoked.contains(&claims.jti) {
        return Err(OAuthError::invalid_token("token revoked"));
    }
    drop(o);
    // A principal the token names left after it was issued (directory sync): the
    // token is revoked even if that principal is active again.
    {
        let data = state
            .org(&claims.org)
            .map_err(|_| OAuthError::invalid_token("unknown organization"))?;
        let d = data.read();
        let revoked = token_principals(&claims).any(|key| {
            d.principals
                .get(&key)
                .is_some_and(|p| p.revokes_token_issued_at(claims.iat))
        });
        if revoked {
            return Err(OAuthError::invalid_token("token revoked"));
        }
    }
    Ok(claims)
}

/// Every principal a token names: its subject, each actor of the delegation chain,
/// and the agent it was issued to.
pub fn token_principals(
    claims: &AccessClaims,
) -> impl Iterator<Item = (PrincipalKind, String)> + '_ {
    let client_agent = claims
        .client_id
        .split_once(':')
        .map(|(_, a)| format!("agent:{a}"));
    std::iter::once(claims.sub.clone())
        .chain(
            claims
                .act
                .iter()
                .flat_map(|a| a.chain().into_iter().map(|s| s.to_string())),
        )
        .chain(client_agent)
        .filter_map(|s| {
            s.split_once(':')
                .and_then(|(k, id)| PrincipalKind::parse(k).map(|k| (k, id.to_string())))
        })
}

/// `POST /oauth2/revoke` (RFC 7009): the client revokes one of its own tokens.
pub async fn revoke(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    meta: Meta,
    Form(form): Form<HashMap<String, String>>,
) -> Result<Response, OAuthResponse> {
    if crate::json::form_has_nul(&form) {
        return Err(OAuthError::invalid_request(crate::json::NUL_REFUSED).into());
    }
    let client = authenticate(&state, &headers, &form, Purpose::Revoke).await?;
    let token = form
        .get("token")
        .ok_or_else(|| OAuthError::invalid_request("token is required"))?;
    // A refresh token: its whole family goes.
    if token.starts_with("wrt_") {
        let digest = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        let revoked = state
            .db
            .revoke_refresh_family(&digest, &client.org, &client.agent)
            .await
            .map_err(server_error)?;
        if revoked {
            tracing::info!(org = %client.org, agent = %client.agent, "refresh token family revoked");
            let mut rec = meta.record(&client.org, "change", "token.revoke");
            rec.caller = Some(format!("client:{}:{}", client.org, client.agent));
            rec.agent = Some(format!("agent:{}", client.agent));
            rec.detail = json!({"token_type": "refresh_token", "scope": "the whole family"});
            revoke_recorded(&state, rec).await?;
        }
        return Ok(StatusCode::OK.into_response());
    }
    // An invalid or foreign token is answered like a revoked one (RFC 7009 §2.2).
    if let Ok(claims) = {
        let o = state.oauth.read();
        warden_oauth::token::verify(token, &o.published, &state.issuer, None)
    } && claims.client_id == format!("{}:{}", client.org, client.agent)
    {
        let revision = state
            .db
            .revoke_token(&claims.org, &claims.jti, claims.exp)
            .await
            .map_err(server_error)?;
        state.db.notify().await;
        let _ = state.wait_for(revision).await;
        tracing::info!(org = %claims.org, jti = %claims.jti, "token revoked");
        let mut rec = meta.record(&claims.org, "change", "token.revoke");
        rec.caller = Some(format!("client:{}", claims.client_id));
        rec.jti = Some(claims.jti.clone());
        rec.client_id = Some(claims.client_id.clone());
        rec.revision = Some(revision);
        rec.detail = json!({"token_type": "access_token"});
        revoke_recorded(&state, rec).await?;
    }
    Ok(StatusCode::OK.into_response())
}

async fn revoke_recorded(
    state: &AppState,
    rec: warden_audit::AuditRecord,
) -> Result<(), OAuthResponse> {
    crate::audit::change_recorded(&state.audit, rec)
        .await
        .map_err(|e| OAuthError::new("temporarily_unavailable", e.message).into())
}

/// `POST /oauth2/introspect` (RFC 7662), for resource servers holding an API key of
/// the token's organization.
pub async fn introspect(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Form(form): Form<HashMap<String, String>>,
) -> ApiResult<impl IntoResponse> {
    if crate::json::form_has_nul(&form) {
        return Err(ApiError::bad_request(crate::json::NUL_REFUSED));
    }
    let token = form
        .get("token")
        .ok_or_else(|| ApiError::bad_request("token is required"))?;
    let inactive = axum::Json(json!({"active": false}));
    let Ok(claims) = verify_token(&state, token, None) else {
        return Ok(inactive);
    };
    // Another organization's key learns nothing about the token.
    if caller.require(&claims.org, Role::Checker).is_err() {
        return Ok(inactive);
    }
    // Every principal it names (subject, actors, the agent) must still be active.
    let data = state.org_fresh(&claims.org).await?;
    let now = warden_storage::now_ms();
    let active = {
        let d = data.read();
        token_principals(&claims)
            .all(|key| d.principals.get(&key).is_some_and(|p| p.is_usable(now)))
    };
    if !active {
        return Ok(inactive);
    }
    let mut v = serde_json::to_value(&claims).map_err(ApiError::internal)?;
    v["active"] = json!(true);
    v["token_type"] = json!("Bearer");
    Ok(axum::Json(v))
}

/// `GET /oauth2/jwks`: current, next and retired public keys.
pub async fn jwks(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let keys: Vec<Value> = state
        .oauth
        .read()
        .published
        .iter()
        .map(|k| k.public_jwk())
        .collect();
    axum::Json(json!({ "keys": keys }))
}

/// Authorization server metadata (RFC 8414; also served as OpenID discovery).
pub async fn metadata(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let i = &state.issuer;
    axum::Json(json!({
        "issuer": i,
        "token_endpoint": format!("{i}/oauth2/token"),
        "jwks_uri": format!("{i}/oauth2/jwks"),
        "revocation_endpoint": format!("{i}/oauth2/revoke"),
        "introspection_endpoint": format!("{i}/oauth2/introspect"),
        "authorization_endpoint": format!("{i}/oauth2/authorize"),
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token", TOKEN_EXCHANGE],
        "registration_endpoint": format!("{i}/oauth2/register"),
        "token_endpoint_auth_methods_supported":
            ["private_key_jwt", "client_secret_basic", "client_secret_post", "none"],
        "token_endpoint_auth_signing_alg_values_supported": ["EdDSA", "ES256", "RS256"],
        "revocation_endpoint_auth_methods_supported":
            ["private_key_jwt", "client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "dpop_signing_alg_values_supported": ["EdDSA", "ES256"],
        "response_types_supported": ["code"],
        "authorization_response_iss_parameter_supported": true,
        "scopes_supported": [],
        "id_token_signing_alg_values_supported": ["EdDSA"],
        "subject_types_supported": ["public"],
    }))
}

/// A credential to register: a public JWK (for `private_key_jwt`) or a new secret.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCredential {
    /// `jwk` or `secret`.
    kind: String,
    /// For `jwk`: the agent's public key.
    #[serde(default)]
    jwk: Option<Value>,
    /// Expiry, ms since the Unix epoch.
    #[serde(default)]
    expires_at: Option<i64>,
}

pub async fn add_credential(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, agent)): Path<(String, String)>,
    _gate: OrgGate,
    meta: Meta,
    Json(body): Json<NewCredential>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    let data = state.org_fresh(&org).await?;
    if !data
        .read()
        .principals
        .contains_key(&(PrincipalKind::Agent, agent.clone()))
    {
        return Err(ApiError::not_found(format!("agent `{agent}` not found")));
    }
    let id = uuid::Uuid::now_v7().simple().to_string();
    let (cred, secret) = match body.kind.as_str() {
        "jwk" => {
            let jwk = body
                .jwk
                .ok_or_else(|| ApiError::bad_request("a `jwk` credential needs `jwk`"))?;
            if jwk.get("d").is_some() || jwk.get("k").is_some() || jwk.get("p").is_some() {
                return Err(ApiError::bad_request(
                    "send the public key only: this JWK holds private or symmetric material",
                ));
            }
            let parsed: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JWK: {e}")))?;
            jsonwebtoken::DecodingKey::from_jwk(&parsed)
                .map_err(|e| ApiError::bad_request(format!("unusable JWK: {e}")))?;
            let c = state
                .db
                .add_credential(&org, &agent, &id, "jwk", Some(&jwk), None, body.expires_at)
                .await?;
            (c, None)
        }
        "secret" => {
            let (secret, digest) = warden_oauth::client::new_secret();
            let c = state
                .db
                .add_credential(
                    &org,
                    &agent,
                    &id,
                    "secret",
                    None,
                    Some(&digest),
                    body.expires_at,
                )
                .await?;
            (c, Some(secret))
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "credential kind `{other}`: use `jwk` or `secret`"
            )));
        }
    };
    let mut out = serde_json::to_value(&cred).map_err(ApiError::internal)?;
    out["client_id"] = json!(format!("{org}:{agent}"));
    let mut rec = meta.change(&org, &caller, "credential.add");
    rec.resource = Some(format!("credential:{id}"));
    rec.agent = Some(format!("agent:{agent}"));
    rec.detail = json!({"credential": out});
    change_recorded(&state.audit, rec).await?;
    if let Some(s) = secret {
        out["secret"] = json!(s);
        out["weaker"] = json!(true);
        out["note"] = json!("shown once; prefer a registered key (private_key_jwt)");
    }
    Ok((StatusCode::CREATED, axum::Json(out)))
}

pub async fn list_credentials(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, agent)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    state.org_fresh(&org).await?;
    let creds = state.db.credentials(&org, &agent).await?;
    Ok(axum::Json(json!({ "credentials": creds })))
}

pub async fn revoke_credential(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, agent, id)): Path<(String, String, String)>,
    meta: Meta,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Admin)?;
    state.org_fresh(&org).await?;
    state.db.revoke_credential(&org, &agent, &id).await?;
    let mut rec = meta.change(&org, &caller, "credential.revoke");
    rec.resource = Some(format!("credential:{id}"));
    rec.agent = Some(format!("agent:{agent}"));
    change_recorded(&state.audit, rec).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/admin/signing-keys/rotate` (server administrator): the next key starts
/// signing, the current one is retired but stays published until its tokens expire,
/// and a new next key is published ahead of the following rotation.
pub async fn rotate_keys(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    meta: Meta,
) -> ApiResult<impl IntoResponse> {
    caller.require_server_admin()?;
    let k = warden_oauth::keys::SigningKey::generate().map_err(ApiError::internal)?;
    let revision = state
        .db
        .rotate_signing_keys(&warden_storage::StoredSigningKey {
            kid: k.kid.clone(),
            private_der_hex: hex::encode(&k.private_der),
            public_x: k.public_x.clone(),
            state: "next".into(),
            created_at: warden_storage::now_ms(),
        })
        .await?;
    state.db.notify().await;
    state.wait_for(revision).await?;
    let current = state.oauth.read().current.as_ref().map(|c| c.kid.clone());
    tracing::info!(next = %k.kid, "signing keys rotated");
    let mut rec = meta.change(crate::audit::SYSTEM_ORG, &caller, "signing_keys.rotate");
    rec.revision = Some(revision);
    rec.detail = json!({"current": current, "next": k.kid});
    change_recorded(&state.audit, rec).await?;
    Ok(axum::Json(
        json!({"current": current, "next": k.kid, "revision": revision}),
    ))
}
