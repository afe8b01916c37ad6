//! Human approval for destructive actions.
//!
//! A delegated decision that is otherwise allowed but matches one of the
//! organization's approval rules answers `approval_required` and records a request
//! binding the agent, the user, the further actors, the action, the resource and a
//! SHA-256 of the context. A person decides it on the approval page, signed in with
//! their own password (a session cookie plus a CSRF token; never a bearer token, so
//! never an agent); they must not be the requesting user and must hold the rule's
//! approver relation (or group membership) at that moment. The enforcement point then
//! retries the decision with `approval_id`: it is allowed once, if the approval is
//! granted, unexpired, unused and binds exactly the same request.
//!
//! Enforcement points wait for the outcome with `GET .../approvals/{id}/wait`
//! (long-poll); the organization's webhook hears of every request and decision.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Digest as _;
use warden_engine::{CheckRequest, Context, Engine};
use warden_storage::{Approval, ApprovalBinding, PrincipalKind, Role};

use super::authflow::{escape, verify_password};
use crate::audit::Meta;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::signed::{read, sign};
use crate::state::{AppState, ApprovalRule, OrgData};

/// Most requests one agent may have waiting at once.
const MAX_PENDING: i64 = 100;
/// How long an approver's sign-in lasts.
const SESSION_SECS: i64 = 15 * 60;
const SESSION_TYP: &str = "warden-approver+jwt";
const LOGIN_TYP: &str = "warden-approver-login+jwt";

/// SHA-256 (hex) of the context's canonical JSON (object keys sorted at every level),
/// so that the same context always has the same digest.
pub fn context_digest(ctx: &Context) -> String {
    fn canonical(v: &Value, out: &mut String) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String((*k).clone()).to_string());
                    out.push(':');
                    canonical(&m[*k], out);
                }
                out.push('}');
            }
            Value::Array(a) => {
                out.push('[');
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    canonical(x, out);
                }
                out.push(']');
            }
            other => out.push_str(&other.to_string()),
        }
    }
    let mut s = String::new();
    canonical(&Value::Object(ctx.clone()), &mut s);
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

/// The first rule asking for approval of `relation` on `object` under `context`.
pub fn matching_rule(
    data: &OrgData,
    object: &str,
    relation: &str,
    context: &Context,
) -> Option<ApprovalRule> {
    let type_name = object.split_once(':').map_or("", |(t, _)| t);
    data.settings
        .approvals
        .rules
        .iter()
        .enumerate()
        .find(|(i, r)| {
            r.type_name == type_name
                && r.relations.iter().any(|x| x == relation)
                && match (&r.condition, data.approval_conditions.get(*i)) {
                    (None, _) => true,
                    (Some(_), Some(Some(c))) => c.holds(context),
                    // A condition that did not compile: ask a human.
                    (Some(_), _) => true,
                }
        })
        .map(|(_, r)| r.clone())
}

/// What the delegated decision binds.
pub struct Request<'a> {
    pub org: &'a str,
    pub agent: &'a str,
    pub user: Option<&'a str>,
    pub actors: &'a [String],
    pub relation: &'a str,
    pub object: &'a str,
    pub context: &'a Context,
    pub decision_id: &'a str,
}

/// The approval step of an otherwise allowed decision under `rule`: with no
/// `approval_id`, a new request (`(false, detail)`); with one, whether it can be used
/// for exactly this request (and it is then used up).
pub async fn step(
    state: &AppState,
    rule: &ApprovalRule,
    req: &Request<'_>,
    approval_id: Option<&str>,
) -> ApiResult<(bool, Value)> {
    let now = warden_storage::now_ms();
    let digest = context_digest(req.context);
    let binding = ApprovalBinding {
        agent_id: req.agent,
        user_id: req.user.unwrap_or_default(),
        actors: req.actors,
        relation: req.relation,
        object: req.object,
        context_digest: &digest,
    };
    let Some(id) = approval_id else {
        // Asking again for the same thing waits on the same request; an agent cannot
        // bury approvers under requests (approval fatigue).
        if let Some(a) = state
            .db
            .approval_pending_like(req.org, &rule.name, &binding, now)
            .await?
        {
            return Ok((false, required(state, req.org, &a)));
        }
        if state
            .db
            .approvals_pending_for(req.org, req.agent, now)
            .await?
            >= MAX_PENDING
        {
            return Ok((
                false,
                json!({"refused": format!("agent:{} already has {MAX_PENDING} requests waiting for approval", req.agent)}),
            ));
        }
        let a = Approval {
            org_id: req.org.to_string(),
            id: uuid::Uuid::now_v7().to_string(),
            rule: rule.name.clone(),
            status: "pending".into(),
            agent_id: req.agent.to_string(),
            user_id: req.user.unwrap_or_default().to_string(),
            actors: req.actors.to_vec(),
            relation: req.relation.to_string(),
            object: req.object.to_string(),
            context_digest: digest,
            context: Value::Object(req.context.clone()),
            decision_id: req.decision_id.to_string(),
            created_at: now,
            expires_at: now + i64::from(rule.wait_secs) * 1000,
            decided_at: None,
            decided_by: None,
            valid_until: None,
            reason: None,
            used_at: None,
            used_by: None,
        };
        state.db.approval_create(&a).await?;
        notify(state, "approval.requested", &a);
        return Ok((false, required(state, req.org, &a)));
    };
    if state
        .db
        .approval_use(req.org, id, &binding, now, req.decision_id)
        .await?
    {
        let a = state.db.approval(req.org, id).await?;
        return Ok((
            true,
            json!({"approval_id": id, "granted_by": a.and_then(|a| a.decided_by)}),
        ));
    }
    // Say why, without using anything.
    let why = match state.db.approval(req.org, id).await? {
        None => "no such approval".to_string(),
        Some(a) => {
            let mismatch = [
                ("agent", a.agent_id != binding.agent_id),
                ("user", a.user_id != binding.user_id),
                ("actors", a.actors != binding.actors),
                ("action", a.relation != binding.relation),
                ("resource", a.object != binding.object),
                ("context", a.context_digest != binding.context_digest),
            ];
            let differs: Vec<&str> = mismatch.iter().filter(|m| m.1).map(|m| m.0).collect();
            if !differs.is_empty() {
                format!(
                    "the approval is for another request (its {} differ)",
                    differs.join(", ")
                )
            } else {
                match shown_status(&a, now) {
                    "used" => "the approval was already used".to_string(),
                    "granted" => "the approval has expired".to_string(),
                    other => format!("the approval is {other}"),
                }
            }
        }
    };
    Ok((false, json!({"approval_id": id, "refused": why})))
}

/// An approval page. Its `Referrer-Policy` is `same-origin` so that browsers send the
/// page's origin with its forms (with `no-referrer` they send `Origin: null`), which
/// sign-in and decisions check.
fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let mut res = super::authflow::page(status, title, body);
    res.headers_mut().insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    res
}

/// The `approval` part of an `approval_required` answer.
fn required(state: &AppState, org: &str, a: &Approval) -> Value {
    json!({
        "approval_required": true,
        "approval_id": a.id,
        "rule": a.rule,
        "expires_at": a.expires_at,
        "approve_url": approve_url(state, org, &a.id),
    })
}

/// The status as people read it: a pending request past its deadline is `expired`.
fn shown_status(a: &Approval, now: i64) -> &str {
    if a.status == "pending" && a.expires_at <= now {
        "expired"
    } else {
        &a.status
    }
}

fn approve_url(state: &AppState, org: &str, id: &str) -> String {
    format!("{}/approve/{org}/{id}", state.issuer.trim_end_matches('/'))
}

/// The path Warden is served under (`/warden` for an issuer `https://h/warden`, else
/// empty), for links, form actions and the cookie path.
fn base_path(state: &AppState) -> String {
    reqwest::Url::parse(&state.issuer)
        .map(|u| u.path().trim_end_matches('/').to_string())
        .unwrap_or_default()
}

/// Whether the request's `Origin` (if any) is Warden's own.
fn same_origin(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let ours = reqwest::Url::parse(&state.issuer).map(|u| u.origin().ascii_serialization());
    let theirs = reqwest::Url::parse(origin).map(|u| u.origin().ascii_serialization());
    matches!((ours, theirs), (Ok(a), Ok(b)) if a == b)
}

fn view(a: &Approval) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or_default();
    v["status"] = json!(shown_status(a, warden_storage::now_ms()));
    v
}

/// Tells the organization's approval webhook, in the background (3 tries).
fn notify(state: &AppState, kind: &'static str, a: &Approval) {
    let hook = state
        .org(&a.org_id)
        .ok()
        .and_then(|d| d.read().settings.approvals.webhook.clone());
    let Some(hook) = hook else {
        return;
    };
    let body = json!({"type": kind, "org": a.org_id, "approval": view(a)}).to_string();
    tokio::spawn(async move {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        for attempt in 0..3u32 {
            let mut req = client
                .post(&hook.url)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
            if let Some(secret) = &hook.secret {
                req = req.header(
                    "x-warden-signature",
                    crate::audit::tasks::signature(secret, body.as_bytes()),
                );
            }
            match req.send().await {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => tracing::warn!(
                    status = r.status().as_u16(),
                    attempt,
                    "approval webhook refused"
                ),
                Err(e) => {
                    tracing::warn!(error = %e.without_url(), attempt, "approval webhook unreachable")
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(250 << attempt)).await;
        }
    });
}

// ---- the API for enforcement points and administrators ----

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ListQuery {
    /// `pending`, `granted`, `denied` or `used`.
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

pub async fn list(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    state.org_fresh(&org).await?;
    let list = state
        .db
        .approvals(&org, q.status.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(axum::Json(
        json!({"approvals": list.iter().map(view).collect::<Vec<_>>()}),
    ))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let a = state
        .db
        .approval(&org, &id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("approval `{id}` not found")))?;
    Ok(axum::Json(view(&a)))
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct WaitQuery {
    /// Longest wait in seconds (1-60, default 30).
    #[serde(default)]
    timeout_secs: Option<u64>,
}

/// Long-poll: answers when the request is decided (or expires), or after the timeout
/// with it still pending.
pub async fn wait(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path((org, id)): Path<(String, String)>,
    Query(q): Query<WaitQuery>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let deadline = std::time::Instant::now()
        + std::time::Duration::from_secs(q.timeout_secs.unwrap_or(30).clamp(1, 60));
    loop {
        let a = state
            .db
            .approval(&org, &id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("approval `{id}` not found")))?;
        let v = view(&a);
        if v["status"] != "pending" || std::time::Instant::now() >= deadline {
            return Ok(axum::Json(v));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

// ---- the approver's pages ----

#[derive(Serialize, Deserialize)]
struct Session {
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    org: String,
    user: String,
    /// The CSRF token forms must carry.
    csrf: String,
}

fn cookie_name(org: &str) -> String {
    format!("warden_approver_{org}")
}

/// The signed-in approver of `org`, from the session cookie.
fn session(state: &AppState, headers: &HeaderMap, org: &str) -> Option<Session> {
    let name = cookie_name(org);
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())?;
    read::<Session>(state, SESSION_TYP, &raw, &format!("approvals:{org}")).filter(|s| s.org == org)
}

fn details(a: &Approval) -> String {
    let ctx = serde_json::to_string_pretty(&a.context).unwrap_or_default();
    let on_behalf = if a.user_id.is_empty() {
        "nobody (the agent acts on its own)".to_string()
    } else {
        format!("user:{}", a.user_id)
    };
    let actors = if a.actors.is_empty() {
        String::new()
    } else {
        format!(
            "<dt>Through</dt><dd>{}</dd>",
            escape(
                &a.actors
                    .iter()
                    .map(|x| format!("agent:{x}"))
                    .collect::<Vec<_>>()
                    .join(" → ")
            )
        )
    };
    format!(
        "<dl id=\"request\"><dt>Agent</dt><dd id=\"agent\">agent:{}</dd><dt>Acting for</dt><dd id=\"user\">{}</dd>{actors}\
         <dt>Action</dt><dd id=\"action\">{}</dd><dt>Resource</dt><dd id=\"resource\">{}</dd>\
         <dt>Context</dt><dd><pre id=\"context\">{}</pre></dd><dt>Rule</dt><dd>{}</dd>\
         <dt>Status</dt><dd id=\"status\">{}</dd></dl>",
        escape(&a.agent_id),
        escape(&on_behalf),
        escape(&a.relation),
        escape(&a.object),
        escape(&ctx),
        escape(&a.rule),
        escape(shown_status(a, warden_storage::now_ms())),
    )
}

#[derive(Serialize, Deserialize)]
struct Login {
    iss: String,
    aud: String,
    exp: i64,
    iat: i64,
    org: String,
    approval: String,
}

fn signin_page(state: &AppState, org: &str, id: &str, error: Option<&str>) -> Response {
    let now = warden_oauth::now_secs();
    let ticket = sign(
        state,
        LOGIN_TYP,
        &Login {
            iss: state.issuer.clone(),
            aud: format!("approvals:{org}"),
            exp: now + 600,
            iat: now,
            org: org.to_string(),
            approval: id.to_string(),
        },
    )
    .unwrap_or_default();
    let err = error
        .map(|e| format!("<p role=\"alert\" id=\"error\">{}</p>", escape(e)))
        .unwrap_or_default();
    page(
        StatusCode::OK,
        "Sign in to review an approval request",
        &format!(
            "{err}<form method=\"post\" action=\"{p}/approve/{o}/{i}/signin\">\
             <input type=\"hidden\" name=\"ticket\" value=\"{t}\">\
             <label>User <input name=\"username\" id=\"username\" autocomplete=\"username\"></label>\
             <label>Password <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\"></label>\
             <button type=\"submit\" id=\"signin\">Sign in</button></form>",
            p = escape(&base_path(state)),
            o = escape(org),
            i = escape(id),
            t = escape(&ticket)
        ),
    )
}

/// `GET /approve/{org}/{id}`: the request and the approve / deny form, or sign-in.
pub async fn review(
    State(state): State<Arc<AppState>>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let Some(s) = session(&state, &headers, &org) else {
        return signin_page(&state, &org, &id, None);
    };
    let a = match state.db.approval(&org, &id).await {
        Ok(Some(a)) => a,
        _ => {
            return page(
                StatusCode::NOT_FOUND,
                "No such approval request",
                "<p>It does not exist.</p>",
            );
        }
    };
    let form = if shown_status(&a, warden_storage::now_ms()) == "pending" {
        format!(
            "<form method=\"post\" action=\"{p}/approve/{o}/{i}/decide\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{c}\">\
             <label>Reason <input name=\"reason\" id=\"reason\"></label>\
             <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button> \
             <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
            p = escape(&base_path(&state)),
            o = escape(&org),
            i = escape(&id),
            c = escape(&s.csrf)
        )
    } else {
        String::new()
    };
    page(
        StatusCode::OK,
        "Approval request",
        &format!(
            "<p>Signed in as <b id=\"me\">user:{}</b>. Approving lets exactly this happen, once:</p>{}{form}",
            escape(&s.user),
            details(&a)
        ),
    )
}

/// `POST /approve/{org}/{id}/signin`.
pub async fn signin(
    State(state): State<Arc<AppState>>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    meta: Meta,
    axum::Form(f): axum::Form<HashMap<String, String>>,
) -> Response {
    // Another site cannot sign a browser in to an account of its choosing.
    if !same_origin(&state, &headers) {
        return signin_page(&state, &org, &id, Some("cross-origin sign-in refused"));
    }
    let ticket_ok = f
        .get("ticket")
        .and_then(|t| read::<Login>(&state, LOGIN_TYP, t, &format!("approvals:{org}")))
        .is_some_and(|l| l.org == org && l.approval == id);
    if !ticket_ok {
        return signin_page(
            &state,
            &org,
            &id,
            Some("the sign-in form expired; try again"),
        );
    }
    let user = f.get("username").map(String::as_str).unwrap_or_default();
    let password = f.get("password").map(String::as_str).unwrap_or_default();
    let (known, active) = state.org(&org).ok().map_or((false, false), |d| {
        match d
            .read()
            .principals
            .get(&(PrincipalKind::User, user.to_string()))
        {
            Some(p) => (true, p.is_usable(warden_storage::now_ms())),
            None => (false, false),
        }
    });
    let hash = if active {
        state.db.password_hash(&org, user).await.ok().flatten()
    } else {
        None
    };
    // Unknown and inactive users cost the same hash as real ones, so that timing
    // does not tell which names exist.
    let ok = match hash {
        Some(h) => verify_password(&h, password),
        None => {
            let _ = verify_password(dummy_hash(), password);
            false
        }
    };
    let mut rec = meta.record(
        &org,
        "change",
        if ok {
            "approver.signin"
        } else {
            "approver.signin.failed"
        },
    );
    // A name that is no user's is not recorded: it may be a password typed one field
    // too early.
    if known {
        rec.user = Some(format!("user:{user}"));
    } else {
        rec.detail = json!({"reason": "unknown user name (not recorded)"});
    }
    rec.approval_id = Some(id.clone());
    if crate::audit::change_recorded(&state.audit, rec)
        .await
        .is_err()
    {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "<p>The audit log cannot be written.</p>",
        );
    }
    if !ok {
        return signin_page(&state, &org, &id, Some("wrong user or password"));
    }
    let now = warden_oauth::now_secs();
    let csrf = hex::encode(rand::random::<[u8; 16]>());
    let Some(token) = sign(
        &state,
        SESSION_TYP,
        &Session {
            iss: state.issuer.clone(),
            aud: format!("approvals:{org}"),
            exp: now + SESSION_SECS,
            iat: now,
            org: org.clone(),
            user: user.to_string(),
            csrf,
        },
    ) else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            "<p>No signing key.</p>",
        );
    };
    let secure = if state.issuer.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={token}; Path={}/approve/{org}; HttpOnly; SameSite=Strict; Max-Age={SESSION_SECS}{secure}",
        cookie_name(&org),
        base_path(&state)
    );
    let mut res = (StatusCode::SEE_OTHER, "").into_response();
    if let (Ok(c), Ok(l)) = (
        HeaderValue::from_str(&cookie),
        HeaderValue::from_str(&format!("{}/approve/{org}/{id}", base_path(&state))),
    ) {
        res.headers_mut().insert(header::SET_COOKIE, c);
        res.headers_mut().insert(header::LOCATION, l);
    }
    res
}

/// An argon2id hash of a random password, made once.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        use password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
        let secret = hex::encode(rand::random::<[u8; 16]>());
        argon2::Argon2::default()
            .hash_password(secret.as_bytes(), &SaltString::generate(&mut OsRng))
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[derive(Deserialize)]
struct DecideBody {
    decision: String,
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /approve/{org}/{id}/decide`: a form from the page, or JSON (`{"decision":
/// "approve"|"deny", "reason"?}` with the CSRF token in `X-CSRF-Token`) from a script
/// running in the approver's signed-in browser.
pub async fn decide(
    State(state): State<Arc<AppState>>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    meta: Meta,
    body: Bytes,
) -> Response {
    let json_body = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    match decide_inner(&state, &org, &id, &headers, &meta, &body, json_body).await {
        Ok(a) if json_body => (StatusCode::OK, axum::Json(view(&a))).into_response(),
        Ok(a) => page(
            StatusCode::OK,
            &format!("Request {}", shown_status(&a, warden_storage::now_ms())),
            &details(&a),
        ),
        Err(e) if json_body => e.into_response(),
        Err(e) => page(
            e.status,
            "Refused",
            &format!("<p id=\"error\">{}</p>", escape(&e.message)),
        ),
    }
}

async fn decide_inner(
    state: &AppState,
    org: &str,
    id: &str,
    headers: &HeaderMap,
    meta: &Meta,
    body: &Bytes,
    json_body: bool,
) -> ApiResult<Approval> {
    // Tokens (an agent's, or anyone's) never decide: only a person, signed in here.
    if headers.contains_key(header::AUTHORIZATION) {
        return Err(ApiError::forbidden(
            "approvals are decided by a person signed in on the approval page, never with a token",
        ));
    }
    // A cross-site post carries another origin (and no cookie, as it is SameSite).
    if !same_origin(state, headers) {
        return Err(ApiError::forbidden("cross-origin request"));
    }
    let s = session(state, headers, org).ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "sign in on the approval page first",
        )
    })?;
    let b: DecideBody = if json_body {
        if crate::json::has_nul(body) {
            return Err(ApiError::bad_request(crate::json::NUL_REFUSED));
        }
        let mut b: DecideBody = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))?;
        b.csrf = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        b
    } else {
        serde_urlencoded_form(body)?
    };
    // The CSRF token of this session, compared in constant time.
    let csrf_ok = b.csrf.as_deref().is_some_and(|c| {
        use subtle::ConstantTimeEq;
        c.len() == s.csrf.len() && bool::from(c.as_bytes().ct_eq(s.csrf.as_bytes()))
    });
    if !csrf_ok {
        return Err(ApiError::forbidden("missing or wrong CSRF token"));
    }
    let grant = match b.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Err(ApiError::bad_request("decision is approve or deny")),
    };
    let a = state
        .db
        .approval(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("approval `{id}` not found")))?;
    // Never the requester, and only a current approver.
    if !a.user_id.is_empty() && a.user_id == s.user {
        return Err(ApiError::forbidden(
            "the requesting user cannot decide their own request",
        ));
    }
    let data = state.org_fresh(org).await?;
    let rule = {
        let d = data.read();
        let active = d
            .principals
            .get(&(PrincipalKind::User, s.user.clone()))
            .is_some_and(|p| p.is_usable(warden_storage::now_ms()));
        if !active {
            return Err(ApiError::forbidden("the approver is not an active user"));
        }
        // Nor whoever answers for the agents asking: an agent's owner (or a member of
        // its owning group) could otherwise have it act alone and approve it.
        let engine = Engine::new(d.model(None)?, &d.tuples);
        let me = format!("user:{}", s.user);
        for agent in std::iter::once(&a.agent_id).chain(a.actors.iter()) {
            let owner = d
                .principals
                .get(&(PrincipalKind::Agent, agent.clone()))
                .and_then(|p| p.owner.clone());
            let owns = match owner.as_deref() {
                Some(o) if o == me => true,
                Some(o) if o.starts_with("group:") => engine
                    .check(&CheckRequest::new(me.clone(), "member", o.to_string()))
                    .is_ok_and(|r| r.allowed),
                _ => false,
            };
            if owns {
                return Err(ApiError::forbidden(format!(
                    "user:{} answers for agent:{agent}, which asked; someone else must decide",
                    s.user
                )));
            }
        }
        let rule = d
            .settings
            .approvals
            .rules
            .iter()
            .find(|r| r.name == a.rule)
            .cloned()
            .ok_or_else(|| ApiError::conflict(format!("rule `{}` no longer exists", a.rule)))?;
        let (relation, object) = match (&rule.approver_relation, &rule.approver_group) {
            (Some(r), _) => (r.clone(), a.object.clone()),
            (None, Some(g)) => (
                "member".to_string(),
                if g.starts_with("group:") {
                    g.clone()
                } else {
                    format!("group:{g}")
                },
            ),
            (None, None) => return Err(ApiError::conflict("the rule names no approver")),
        };
        // The requester's context plays no part in who may approve.
        let req = CheckRequest {
            user: me.clone(),
            relation,
            object,
            context: Context::new(),
            contextual_tuples: Vec::new(),
            explain: false,
        };
        let holds = engine.check(&req).map(|r| r.allowed).unwrap_or(false);
        if !holds {
            return Err(ApiError::forbidden(format!(
                "user:{} may not approve this request (needs {} {})",
                s.user, req.relation, req.object
            )));
        }
        rule
    };
    let now = warden_storage::now_ms();
    let decided = state
        .db
        .approval_decide(
            org,
            id,
            &warden_storage::Verdict {
                grant,
                by: &format!("user:{}", s.user),
                reason: b.reason.as_deref(),
                now,
                valid_until: now + i64::from(rule.valid_secs) * 1000,
            },
        )
        .await?;
    if !decided {
        return Err(ApiError::conflict(format!(
            "the request is {}, not pending",
            shown_status(&a, now)
        )));
    }
    let a = state
        .db
        .approval(org, id)
        .await?
        .ok_or_else(|| ApiError::not_found("approval vanished"))?;
    let mut rec = meta.record(
        org,
        "change",
        if grant {
            "approval.grant"
        } else {
            "approval.deny"
        },
    );
    rec.caller = Some(format!("user:{}", s.user));
    rec.user = (!a.user_id.is_empty()).then(|| format!("user:{}", a.user_id));
    rec.agent = Some(format!("agent:{}", a.agent_id));
    rec.resource = Some(a.object.clone());
    rec.approval_id = Some(a.id.clone());
    rec.refers_to = Some(a.decision_id.clone());
    rec.detail = json!({"approver": format!("user:{}", s.user), "relation": a.relation,
                        "valid_until": a.valid_until, "reason": a.reason});
    crate::audit::change_recorded(&state.audit, rec).await?;
    notify(state, "approval.decided", &a);
    Ok(a)
}

fn serde_urlencoded_form(body: &Bytes) -> ApiResult<DecideBody> {
    let pairs: HashMap<String, String> = serde_urlencoded::from_bytes(body)
        .map_err(|e| ApiError::bad_request(format!("invalid form: {e}")))?;
    if crate::json::form_has_nul(&pairs) {
        return Err(ApiError::bad_request(crate::json::NUL_REFUSED));
    }
    Ok(DecideBody {
        decision: pairs.get("decision").cloned().unwrap_or_default(),
        csrf: pairs.get("csrf").cloned(),
        reason: pairs.get("reason").cloned().filter(|r| !r.is_empty()),
    })
}
