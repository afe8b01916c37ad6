//! The HTTP routes: native API under `/v1`, OpenID AuthZEN 1.0 under `/access/v1`,
//! operations (`/healthz`, `/readyz`, `/metrics`) and discovery.

mod admin;
mod authzen;
mod decisions;
mod models;
mod ops;
mod tuples;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post, put};
use serde::Deserialize;

use crate::error::ApiResult;
use crate::state::AppState;

/// How fresh an answer must be.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
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

pub fn router(state: Arc<AppState>, max_body_bytes: usize) -> Router {
    let v1 = Router::new()
        .route("/orgs", post(admin::create_org).get(admin::list_orgs))
        .route("/orgs/{org}", get(admin::get_org))
        .route(
            "/orgs/{org}/keys",
            post(admin::create_key).get(admin::list_keys),
        )
        .route(
            "/orgs/{org}/keys/{id}",
            axum::routing::delete(admin::revoke_key),
        )
        .route(
            "/orgs/{org}/settings",
            put(admin::put_settings).get(admin::get_settings),
        )
        .route(
            "/orgs/{org}/models",
            post(models::write_model).get(models::list_models),
        )
        .route("/orgs/{org}/models/{id}", get(models::get_model))
        .route("/orgs/{org}/tuples/write", post(tuples::write))
        .route("/orgs/{org}/tuples/delete", post(tuples::delete))
        .route("/orgs/{org}/tuples/read", post(tuples::read))
        .route("/orgs/{org}/tuples/changes", get(tuples::changes))
        .route("/orgs/{org}/check", post(decisions::check))
        .route("/orgs/{org}/batch-check", post(decisions::batch_check))
        .route("/orgs/{org}/list-objects", post(decisions::list_objects))
        .route("/orgs/{org}/list-users", post(decisions::list_users))
        .route("/orgs/{org}/expand", post(decisions::expand));
    let access = Router::new()
        .route("/evaluation", post(authzen::evaluation))
        .route("/evaluations", post(authzen::evaluations))
        .route("/search/subject", post(authzen::search_subject))
        .route("/search/resource", post(authzen::search_resource))
        .route("/search/action", post(authzen::search_action));
    Router::new()
        .nest("/v1", v1)
        .nest("/access/v1", access)
        .route(
            "/.well-known/authzen-configuration",
            get(authzen::configuration),
        )
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(ops::openapi))
        .fallback(ops::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

/// Counts and times every request by its route template, and logs it.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let res = next.run(req).await;
    let took = started.elapsed();
    let status = res.status().as_u16();
    state
        .metrics
        .record_request(method.as_str(), &route, status, took);
    tracing::debug!(%method, route, status, micros = took.as_micros() as u64, "request");
    res
}
