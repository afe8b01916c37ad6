//! Operations: liveness, readiness, metrics, the OpenAPI document, and the JSON 404.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process answers.
pub async fn healthz() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

/// Readiness: data loaded and the database answers.
pub async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    if state.audit.stats.failing() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "the audit log cannot be written"})),
        );
    }
    if state.db.ping().await {
        (
            StatusCode::OK,
            axum::Json(json!({"status": "ready", "revision": state.applied()})),
        )
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({"status": "database unreachable"})),
        )
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], {
        let mut out = state.metrics.render();
        state.audit.stats.render(&mut out);
        out
    })
}

pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::DOCUMENT.as_str(),
    )
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}
