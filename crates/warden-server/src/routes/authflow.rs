//! The authorization code flow: `GET /oauth2/authorize` checks the client and its
//! exact redirect URI (an unknown URI is an error page, never a redirect), requires PKCE
//! with S256, and shows the sign-in page; signing in shows the consent page naming the
//! agent, its owner, its purpose and each scope; approving redirects with a single-use
//! code, `state` and `iss`.
//!
//! Between pages the request travels as a signed, short-lived ticket (EdDSA, audience
//! `warden-authorize`, never usable as an access token), which also defeats CSRF: a
//! form only works with a ticket this server issued for this very request. The pages
//! may not be framed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Form;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use warden_storage::{AuthCode, PrincipalKind, Status};

use crate::state::AppState;

/// How long a page's ticket and an authorization code live, in seconds.
const TICKET_LIFETIME: i64 = 600;
const CODE_LIFETIME: i64 = 60;
const TICKET_AUDIENCE: &str = "warden-authorize";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ticket {
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    /// `signin` or `consent`.
    stage: String,
    org: String,
    agent: String,
    redirect_uri: String,
    scope: String,
    #[serde(default)]
    state: Option<String>,
    code_challenge: String,
    resource: String,
    #[serde(default)]
    user: Option<String>,
}

pub(crate) fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

pub(crate) fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title>\
         <style>body{{font-family:sans-serif;max-width:32rem;margin:3rem auto}}\
         label{{display:block;margin:.5rem 0}}</style></head><body><h1>{t}</h1>{body}</body></html>",
        t = escape(title)
    );
    let mut res = (status, html).into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("no-referrer"),
    );
    res
}

fn error_page(message: &str) -> Response {
    page(
        StatusCode::BAD_REQUEST,
        "Authorization request refused",
        &format!("<p>{}</p>", escape(message)),
    )
}

/// The page when the audit log cannot be written: nothing happens unrecorded.
fn audit_down_page() -> Response {
    page(
        StatusCode::SERVICE_UNAVAILABLE,
        "Temporarily unavailable",
        "<p>the audit log cannot be written; try again later</p>",
    )
}

/// Redirects to the client with `params` plus `state` and `iss` (RFC 9207).
fn redirect(state: &AppState, uri: &str, st: Option<&str>, params: &[(&str, &str)]) -> Response {
    let mut q: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(s) = st {
        q.push(("state".into(), s.to_string()));
    }
    q.push(("iss".into(), state.issuer.clone()));
    let query: String = q
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let sep = if uri.contains('?') { '&' } else { '?' };
    let mut res = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = header::HeaderValue::from_str(&format!("{uri}{sep}{query}")) {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    res
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn sign_ticket(state: &AppState, t: &Ticket) -> Option<String> {
    crate::signed::sign(state, "warden-ticket+jwt", t)
}

fn read_ticket(state: &AppState, token: &str, stage: &str) -> Option<Ticket> {
    crate::signed::read::<Ticket>(state, "warden-ticket+jwt", token, TICKET_AUDIENCE)
        .filter(|t| t.stage == stage)
}

fn hidden(name: &str, value: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
        escape(name),
        escape(value)
    )
}

fn signin_page(ticket: &str, agent: &str, error: Option<&str>) -> Response {
    let err = error
        .map(|e| format!("<p role=\"alert\"><strong>{}</strong></p>", escape(e)))
        .unwrap_or_default();
    page(
        if error.is_some() {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        },
        "Sign in",
        &format!(
            "<p>Agent <strong>{}</strong> asks to act for you.</p>{err}\
             <form method=\"post\" action=\"/oauth2/authorize/signin\">{}\
             <label>User <input name=\"username\" autocomplete=\"username\" required></label>\
             <label>Password <input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
             <button type=\"submit\">Sign in</button></form>",
            escape(agent),
            hidden("ticket", ticket)
        ),
    )
}

/// `GET /oauth2/authorize`.
pub async fn authorize(
    State(state): State<Arc<AppState>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let get = |k: &str| q.get(k).map(String::as_str);
    // Client and redirect URI first: until both are known good, never redirect.
    let client_id = get("client_id").unwrap_or("");
    let (org, agent): (String, String) = if super::register::is_dynamic(client_id) {
        match super::register::resolve_dynamic(&state, client_id, get("resource")).await {
            Ok(x) => x,
            Err(e) => return error_page(&e),
        }
    } else {
        match client_id.split_once(':') {
            Some((o, a)) => (o.to_string(), a.to_string()),
            None => return error_page("unknown client"),
        }
    };
    let (org, agent) = (org.as_str(), agent.as_str());
    let Ok(data) = state.org_fresh(org).await else {
        return error_page("unknown client");
    };
    let (agent_p, catalog, catalog_resources) = {
        let d = data.read();
        let Some(p) = d.principals.get(&(PrincipalKind::Agent, agent.to_string())) else {
            return error_page("unknown client");
        };
        (
            p.clone(),
            d.settings.scopes.clone(),
            d.settings
                .resources
                .values()
                .map(|r| r.uri.clone())
                .collect::<Vec<_>>(),
        )
    };
    let Some(redirect_uri) = get("redirect_uri") else {
        return error_page("redirect_uri is required");
    };
    if !agent_p.redirect_uris.iter().any(|u| u == redirect_uri) {
        return error_page("redirect_uri is not registered for this client");
    }
    let st = get("state");
    let fail = |code: &str, desc: &str| {
        redirect(
            &state,
            redirect_uri,
            st,
            &[("error", code), ("error_description", desc)],
        )
    };
    if !agent_p.is_usable(warden_storage::now_ms()) {
        return fail("unauthorized_client", "the agent is not active");
    }
    if get("response_type") != Some("code") {
        return fail("unsupported_response_type", "response_type must be code");
    }
    let Some(challenge) = get("code_challenge") else {
        return fail(
            "invalid_request",
            "PKCE is required: send code_challenge (S256)",
        );
    };
    if get("code_challenge_method") != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    if challenge.len() != 43
        || !challenge
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return fail(
            "invalid_request",
            "code_challenge must be a base64url SHA-256",
        );
    }
    let requested: Vec<String> = match get("scope") {
        Some(s) => s.split_whitespace().map(str::to_string).collect(),
        None => agent_p.allowed_scopes.clone(),
    };
    if let Some(bad) = requested
        .iter()
        .find(|s| !agent_p.allowed_scopes.contains(s) || !catalog.contains_key(*s))
    {
        return fail(
            "invalid_scope",
            &format!("scope `{bad}` is not allowed for this agent"),
        );
    }
    let resource = match get("resource") {
        None => state.issuer.clone(),
        Some(r) if r == state.issuer => r.to_string(),
        Some(r) if catalog_resources.iter().any(|u| u == r) => r.to_string(),
        Some(_) => {
            return fail(
                "invalid_target",
                "the resource is not registered with this organization",
            );
        }
    };
    let now = warden_oauth::now_secs();
    let ticket = Ticket {
        iss: state.issuer.clone(),
        aud: TICKET_AUDIENCE.into(),
        exp: now + TICKET_LIFETIME,
        iat: now,
        stage: "signin".into(),
        org: org.to_string(),
        agent: agent.to_string(),
        redirect_uri: redirect_uri.to_string(),
        scope: requested.join(" "),
        state: st.map(str::to_string),
        code_challenge: challenge.to_string(),
        resource,
        user: None,
    };
    match sign_ticket(&state, &ticket) {
        Some(t) => signin_page(&t, &agent_p.display_name_or_id(), None),
        None => error_page("the server has no signing key"),
    }
}

trait DisplayName {
    fn display_name_or_id(&self) -> String;
}

impl DisplayName for warden_storage::Principal {
    fn display_name_or_id(&self) -> String {
        if self.display_name.is_empty() {
            self.id.clone()
        } else {
            format!("{} ({})", self.display_name, self.id)
        }
    }
}

pub(crate) fn verify_password(hash: &str, password: &str) -> bool {
    use password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(hash)
        .map(|h| {
            argon2::Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// `POST /oauth2/authorize/signin`.
pub async fn signin(
    State(state): State<Arc<AppState>>,
    meta: crate::audit::Meta,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(mut t) = f
        .get("ticket")
        .and_then(|tk| read_ticket(&state, tk, "signin"))
    else {
        return error_page("this sign-in form has expired or was not issued by this server");
    };
    let username = f.get("username").cloned().unwrap_or_default();
    let password = f.get("password").cloned().unwrap_or_default();
    let Ok(data) = state.org_fresh(&t.org).await else {
        return error_page("unknown organization");
    };
    let hash = state
        .db
        .password_hash(&t.org, &username)
        .await
        .ok()
        .flatten();
    let (known, user_ok) = match data
        .read()
        .principals
        .get(&(PrincipalKind::User, username.clone()))
    {
        Some(p) => (true, p.status == Status::Active),
        None => (false, false),
    };
    // The same answer for an unknown user, a wrong password and a suspended user.
    let verified = match &hash {
        Some(h) => verify_password(h, &password),
        None => {
            let _ = verify_password(&DUMMY_HASH, &password);
            false
        }
    };
    let ticket_again = f.get("ticket").cloned().unwrap_or_default();
    // Every sign-in attempt is on the record, never the password. The name is recorded
    // only when it is a user's: what was typed into the name field of a failed attempt
    // may be a password.
    let signed_in = verified && user_ok;
    let mut rec = meta.record(
        &t.org,
        "change",
        if signed_in { "signin" } else { "signin.failed" },
    );
    if known {
        rec.user = Some(format!("user:{username}"));
    } else {
        rec.detail = serde_json::json!({"reason": "unknown user name (not recorded)"});
    }
    rec.agent = Some(format!("agent:{}", t.agent));
    rec.allowed = Some(signed_in);
    if crate::audit::change_recorded(&state.audit, rec)
        .await
        .is_err()
    {
        return audit_down_page();
    }
    if !signed_in {
        tracing::info!(org = %t.org, "sign-in refused");
        return signin_page(&ticket_again, &t.agent, Some("wrong user or password"));
    }
    let (agent_p, owner_p) = {
        let d = data.read();
        let a = d
            .principals
            .get(&(PrincipalKind::Agent, t.agent.clone()))
            .cloned();
        let owner = a.as_ref().and_then(|a| a.owner.clone()).unwrap_or_default();
        let owner_p = owner
            .split_once(':')
            .and_then(|(k, id)| PrincipalKind::parse(k).map(|k| (k, id.to_string())))
            .and_then(|key| d.principals.get(&key).cloned());
        (
            a,
            owner_p
                .map(|p| format!("{} {}", p.kind.as_str(), p.display_name_or_id()))
                .unwrap_or(owner),
        )
    };
    let Some(agent_p) = agent_p else {
        return error_page("unknown client");
    };
    let scopes_html: String = {
        let d = data.read();
        t.scope
            .split_whitespace()
            .map(|s| {
                let grants = d
                    .settings
                    .scopes
                    .get(s)
                    .cloned()
                    .unwrap_or_default()
                    .join(", ");
                format!(
                    "<li><strong>{}</strong>: {}</li>",
                    escape(s),
                    escape(&grants)
                )
            })
            .collect()
    };
    t.stage = "consent".into();
    t.user = Some(username.clone());
    t.exp = warden_oauth::now_secs() + TICKET_LIFETIME;
    let Some(ticket) = sign_ticket(&state, &t) else {
        return error_page("the server has no signing key");
    };
    page(
        StatusCode::OK,
        "Allow this agent?",
        &format!(
            "<p>Signed in as <strong>{user}</strong>.</p>\
             <p>Agent <strong>{agent}</strong>, owned by <strong>{owner}</strong>, asks to act for you.</p>\
             <p>Purpose: {purpose}</p><p>It asks for:</p><ul>{scopes_html}</ul>\
             <p>It will never get more than you and it are both allowed.</p>\
             <form method=\"post\" action=\"/oauth2/authorize/consent\">{hidden}\
             <button name=\"decision\" value=\"approve\">Allow</button> \
             <button name=\"decision\" value=\"deny\">Deny</button></form>",
            user = escape(&username),
            agent = escape(&agent_p.display_name_or_id()),
            owner = escape(&owner_p),
            purpose = escape(agent_p.purpose.as_deref().unwrap_or("(not given)")),
            hidden = hidden("ticket", &ticket),
        ),
    )
}

/// An argon2 hash of a random password, checked when the user does not exist so that
/// timing does not tell which users exist.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    use password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(uuid::Uuid::now_v7().to_string().as_bytes(), &salt)
        .map(|h| h.to_string())
        .unwrap_or_default()
});

/// `POST /oauth2/authorize/consent`.
pub async fn consent(
    State(state): State<Arc<AppState>>,
    meta: crate::audit::Meta,
    Form(f): Form<HashMap<String, String>>,
) -> Response {
    let Some(t) = f
        .get("ticket")
        .and_then(|tk| read_ticket(&state, tk, "consent"))
    else {
        return error_page("this consent form has expired or was not issued by this server");
    };
    let st = t.state.as_deref();
    let approved = f.get("decision").map(String::as_str) == Some("approve");
    let mut rec = meta.record(
        &t.org,
        "change",
        if approved {
            "consent.grant"
        } else {
            "consent.deny"
        },
    );
    rec.caller = Some(format!("user:{}", t.user.clone().unwrap_or_default()));
    rec.user = t.user.as_ref().map(|u| format!("user:{u}"));
    rec.agent = Some(format!("agent:{}", t.agent));
    rec.resource = Some(t.resource.clone());
    rec.detail = serde_json::json!({"scope": t.scope, "redirect_uri": t.redirect_uri});
    if crate::audit::change_recorded(&state.audit, rec)
        .await
        .is_err()
    {
        return redirect(
            &state,
            &t.redirect_uri,
            st,
            &[("error", "temporarily_unavailable")],
        );
    }
    if !approved {
        return redirect(
            &state,
            &t.redirect_uri,
            st,
            &[
                ("error", "access_denied"),
                ("error_description", "the user denied the request"),
            ],
        );
    }
    let Some(user) = t.user.clone() else {
        return error_page("no signed-in user");
    };
    let mut raw = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut raw);
    let code = format!("wac_{}", hex::encode(raw));
    let digest = hex::encode(Sha256::digest(code.as_bytes()));
    let grant = AuthCode {
        org_id: t.org.clone(),
        agent_id: t.agent.clone(),
        user_id: user,
        scope: t.scope.clone(),
        redirect_uri: t.redirect_uri.clone(),
        code_challenge: t.code_challenge.clone(),
        resource: t.resource.clone(),
        expires_at: warden_oauth::now_secs() + CODE_LIFETIME,
    };
    if let Err(e) = state.db.create_auth_code(&digest, &grant).await {
        tracing::error!(error = %e, "cannot store an authorization code");
        return redirect(&state, &t.redirect_uri, st, &[("error", "server_error")]);
    }
    redirect(&state, &t.redirect_uri, st, &[("code", &code)])
}

/// Whether `verifier` hashes to `challenge` (PKCE S256).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let ok_chars = verifier
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    if !(43..=128).contains(&verifier.len()) || !ok_chars {
        return false;
    }
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(Sha256::digest(verifier.as_bytes()));
    subtle::ConstantTimeEq::ct_eq(computed.as_bytes(), challenge.as_bytes()).into()
}
