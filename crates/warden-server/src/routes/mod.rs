//! The HTTP routes: native API under `/v1`, OpenID AuthZEN 1.0 under `/access/v1`,
//! operations (`/healthz`, `/readyz`, `/metrics`) and discovery.

mod admin;
mod approvals;
mod audit;
mod authflow;
mod authorize;
mod authzen;
mod decisions;
mod models;
mod oauth;
mod ops;
mod principals;
mod register;
mod scim;
mod tuples;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// How fresh an answer must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Consistency {
    /// Answer from what this node has (the default).
    #[default]
    MinimizeLatency,
    /// Answer from at least the latest committed revision.
    FullyConsistent,
    /// Answer from at least this revision (a write's consistency token).
    AtLeastRevision(i64),
}

/// Waits as `consistency` asks; returns the revision the answer will be computed at
/// (at least).
pub(crate) async fn settle(state: &AppState, consistency: Option<Consistency>) -> ApiResult<i64> {
    match consistency.unwrap_or_default() {
        Consistency::MinimizeLatency => Ok(state.applied()),
        Consistency::FullyConsistent => state.wait_fully_consistent().await,
        Consistency::AtLeastRevision(r) => state.wait_for(r).await,
    }
}

/// Declares every route once: the router is built from this list, and so is the
/// OpenAPI document ([`ROUTES`]), so neither can miss a route the other has.
macro_rules! api {
    ($( $method:ident $path:literal => $handler:path [$($body:ty)?], $summary:literal, $role:literal; )*) => {
        /// Every route.
        pub const ROUTES: &[Route] = &[ $( Route {
            method: stringify!($method),
            path: $path,
            summary: $summary,
            role: $role,
            body: |_g| { $( return Some(_g.subschema_for::<$body>()); )? #[allow(unreachable_code)] None },
        }, )* ];

        fn api_router() -> Router<Arc<AppState>> {
            Router::new() $( .route($path, axum::routing::$method($handler)) )*
        }
    };
}

/// One route of the API, as the router serves it and the OpenAPI document lists it.
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    /// The role the route needs (`none`, `checker`, `writer`, `admin`, `server admin`).
    pub role: &'static str,
    /// The JSON schema of the request body, if the route takes one.
    pub body: fn(&mut schemars::SchemaGenerator) -> Option<schemars::Schema>,
}

api! {
    post "/v1/orgs" => admin::create_org [admin::CreateOrg], "Create an organization", "server admin";
    get "/v1/orgs" => admin::list_orgs [], "List organizations", "server admin";
    get "/v1/orgs/{org}" => admin::get_org [], "Read an organization", "checker";
    post "/v1/orgs/{org}/keys" => admin::create_key [admin::CreateKey], "Create an API key (its token is shown once)", "admin";
    get "/v1/orgs/{org}/keys" => admin::list_keys [], "List API keys", "admin";
    delete "/v1/orgs/{org}/keys/{id}" => admin::revoke_key [], "Revoke an API key", "admin";
    put "/v1/orgs/{org}/settings" => admin::put_settings [crate::state::OrgSettings], "Replace the organization's settings", "admin";
    get "/v1/orgs/{org}/settings" => admin::get_settings [], "Read the organization's settings", "checker";
    post "/v1/orgs/{org}/models" => models::write_model [models::WriteModel], "Write a model (DSL or JSON); it becomes current", "writer";
    get "/v1/orgs/{org}/models" => models::list_models [], "List models, newest first", "checker";
    get "/v1/orgs/{org}/models/{id}" => models::get_model [], "Read a model (`latest` for the current one)", "checker";
    post "/v1/orgs/{org}/tuples/write" => tuples::write [tuples::WriteBody], "Write and delete tuples atomically", "writer";
    post "/v1/orgs/{org}/tuples/delete" => tuples::delete [tuples::DeleteBody], "Delete tuples atomically", "writer";
    post "/v1/orgs/{org}/tuples/read" => tuples::read [tuples::ReadBody], "Read tuples with filters and pagination", "writer";
    get "/v1/orgs/{org}/tuples/changes" => tuples::changes [], "The changes feed", "writer";
    post "/v1/orgs/{org}/check" => decisions::check [decisions::CheckBody], "Check one relationship", "checker";
    post "/v1/orgs/{org}/batch-check" => decisions::batch_check [decisions::BatchBody], "Check up to 100 relationships", "checker";
    post "/v1/orgs/{org}/list-objects" => decisions::list_objects [decisions::ListObjectsBody], "Objects of a type the user has a relation on", "checker";
    post "/v1/orgs/{org}/list-users" => decisions::list_users [decisions::ListUsersBody], "Users that have a relation on an object", "checker";
    post "/v1/orgs/{org}/expand" => decisions::expand [decisions::ExpandBody], "The userset tree of a relation", "checker";
    post "/v1/orgs/{org}/authorize" => authorize::authorize [authorize::AuthorizeBody], "The delegated decision: agent, user, actors and scope must all allow (and a person, where an approval rule says so)", "checker";
    get "/v1/orgs/{org}/approvals" => approvals::list [], "Approval requests, newest first (`?status=pending`)", "checker";
    get "/v1/orgs/{org}/approvals/{id}" => approvals::get [], "One approval request", "checker";
    get "/v1/orgs/{org}/approvals/{id}/wait" => approvals::wait [], "Wait (long-poll, up to `timeout_secs`) until an approval request is decided", "checker";
    get "/approve/{org}/{id}" => approvals::review [], "The approval page: the request and approve / deny (or sign-in)", "approver session";
    post "/approve/{org}/{id}/signin" => approvals::signin [], "Approver sign-in (sets the session cookie)", "none";
    post "/approve/{org}/{id}/decide" => approvals::decide [], "Approve or deny (session cookie + CSRF token; never a bearer token)", "approver session";
    post "/v1/orgs/{org}/agents/{id}/credentials" => oauth::add_credential [oauth::NewCredential], "Register a public key (JWK) or create a client secret for an agent", "admin";
    get "/v1/orgs/{org}/agents/{id}/credentials" => oauth::list_credentials [], "List an agent's credentials", "admin";
    delete "/v1/orgs/{org}/agents/{id}/credentials/{cred}" => oauth::revoke_credential [], "Revoke a credential", "admin";
    get "/v1/orgs/{org}/audit" => audit::query [], "Query the audit log (filters, cursor pagination, outcomes joined)", "admin";
    get "/v1/orgs/{org}/audit/export" => audit::export [], "Export the audit log as JSON Lines (verifiable offline)", "admin";
    get "/v1/orgs/{org}/audit/verify" => audit::verify [], "Verify the audit log's hash chain and signed checkpoints", "admin";
    post "/v1/orgs/{org}/audit/checkpoint" => audit::checkpoint [], "Sign a checkpoint of the audit chain head now", "admin";
    post "/v1/orgs/{org}/audit/{decision_id}/outcome" => audit::outcome [audit::OutcomeBody], "Report what happened after an allowed decision", "checker";
    get "/oauth2/authorize" => authflow::authorize [], "Authorization endpoint: sign-in page (code flow, PKCE S256 required)", "none";
    post "/oauth2/authorize/signin" => authflow::signin [], "Sign-in form (then the consent page)", "none";
    post "/oauth2/authorize/consent" => authflow::consent [], "Consent form (redirects with the code)", "none";
    post "/oauth2/register" => register::register [register::ClientMetadata], "Dynamic client registration (RFC 7591), when an organization enables it", "none";
    post "/oauth2/token" => oauth::token [], "OAuth 2.1 token endpoint (form-encoded; client_credentials)", "client authentication";
    post "/oauth2/revoke" => oauth::revoke [], "Token revocation (RFC 7009)", "client authentication";
    post "/oauth2/introspect" => oauth::introspect [], "Token introspection (RFC 7662)", "checker";
    post "/v1/admin/signing-keys/rotate" => oauth::rotate_keys [], "Rotate the token signing keys (next becomes current)", "server admin";
    get "/.well-known/oauth-protected-resource/{org}/{id}" => oauth::resource_metadata [], "Protected resource metadata (RFC 9728) of a registered resource", "none";
    get "/oauth2/jwks" => oauth::jwks [], "Token signing keys (current, next, retired)", "none";
    get "/.well-known/oauth-authorization-server" => oauth::metadata [], "Authorization server metadata (RFC 8414)", "none";
    get "/.well-known/openid-configuration" => oauth::metadata [], "OpenID discovery (the same metadata)", "none";
    get "/v1/orgs/{org}/{kind}" => principals::list [], "List users, groups or agents (`{kind}`: users, groups, agents)", "checker";
    put "/v1/orgs/{org}/{kind}/{id}" => principals::put [principals::PutPrincipal], "Create or replace a user, group or agent", "admin";
    get "/v1/orgs/{org}/{kind}/{id}" => principals::get [], "Read a user, group or agent", "checker";
    post "/v1/orgs/{org}/{kind}/{id}/status" => principals::set_status [principals::PutStatus], "Activate, suspend, retire or deprovision a principal", "admin";
    post "/access/v1/evaluation" => authzen::evaluation [authzen::Evaluation], "AuthZEN access evaluation", "checker";
    post "/access/v1/evaluations" => authzen::evaluations [authzen::Evaluations], "AuthZEN access evaluations (batch)", "checker";
    post "/access/v1/search/subject" => authzen::search_subject [authzen::SearchBody], "AuthZEN subject search", "checker";
    post "/access/v1/search/resource" => authzen::search_resource [authzen::SearchBody], "AuthZEN resource search", "checker";
    post "/access/v1/search/action" => authzen::search_action [authzen::SearchBody], "AuthZEN action search", "checker";
    get "/.well-known/authzen-configuration" => authzen::configuration [], "AuthZEN PDP metadata", "none";
    get "/healthz" => ops::healthz [], "Liveness", "none";
    get "/readyz" => ops::readyz [], "Readiness", "none";
    get "/metrics" => ops::metrics [], "Prometheus metrics", "none";
    get "/openapi.json" => ops::openapi [], "This document", "none";
}

/// Waits as `consistency` asks, then returns the organization's data and the revision
/// (at least) an answer computed from it is at.
pub(crate) async fn snapshot(
    state: &AppState,
    org: &str,
    consistency: Option<Consistency>,
) -> ApiResult<(Arc<parking_lot::RwLock<crate::state::OrgData>>, i64)> {
    settle(state, consistency).await?;
    let data = state.org_fresh(org).await?;
    Ok((data, state.applied()))
}

pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    api_router()
        .merge(scim::router(max_body_bytes))
        .fallback(ops::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        // A request may not hold the server longer than this (slow clients included).
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            std::time::Duration::from_secs(30),
        ))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Gives every request its id (`X-Request-Id`, echoed in the response), counts and
/// times it by its route template, and logs it.
async fn observe(State(state): State<Arc<AppState>>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let request_id = crate::audit::RequestId::from_header(req.headers().get("x-request-id"));
    req.extensions_mut().insert(request_id.clone());
    let method = req.method().clone();
    // `MatchedPath` is a shared string: cloning it allocates nothing.
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let route = matched.as_ref().map_or("unmatched", |p| p.as_str());
    // No identifier holds a NUL character, and PostgreSQL cannot look one up: a path
    // or query carrying one is refused before any handler sees it.
    let nul = |s: &str| {
        s.as_bytes()
            .windows(3)
            .any(|w| w.eq_ignore_ascii_case(b"%00"))
    };
    let mut res = if nul(req.uri().path()) || req.uri().query().is_some_and(nul) {
        ApiError::bad_request(crate::json::NUL_REFUSED).into_response()
    } else {
        next.run(req).await
    };
    res.headers_mut()
        .insert("x-request-id", request_id.0.clone());
    let took = started.elapsed();
    let status = res.status().as_u16();
    state
        .metrics
        .record_request(method.as_str(), route, status, took);
    tracing::debug!(%method, route, status, request_id = request_id.as_str(), micros = took.as_micros() as u64, "request");
    res
}
