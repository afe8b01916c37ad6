//! The API's one error type and its JSON form, `{"code": ..., "message": ...}`, with a
//! stable `code` per kind of failure and the matching HTTP status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use warden_engine::{EngineError, ErrorCode};
use warden_storage::StorageError;

#[derive(Debug, Clone, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Every problem, where there are several (an invalid model).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<serde_json::Value>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            errors: Vec::new(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing or invalid API key (send `Authorization: Bearer <key>`)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        // The detail goes to the log, not to the client.
        tracing::error!(error = %e, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error (see the server log)",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(&self)).into_response()
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let (status, code) = match e.code() {
            ErrorCode::TypeNotFound => (StatusCode::BAD_REQUEST, "type_not_found"),
            ErrorCode::RelationNotFound => (StatusCode::BAD_REQUEST, "relation_not_found"),
            ErrorCode::InvalidTuple => (StatusCode::BAD_REQUEST, "invalid_tuple"),
            ErrorCode::ResolutionTooDeep => {
                (StatusCode::UNPROCESSABLE_ENTITY, "resolution_too_deep")
            }
            ErrorCode::InvalidModel => (StatusCode::BAD_REQUEST, "invalid_model"),
            _ => (StatusCode::BAD_REQUEST, "validation_error"),
        };
        ApiError::new(status, code, e.to_string())
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StorageError::Conflict { .. } => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StorageError::Invalid(m) => ApiError::bad_request(m),
            StorageError::Stale { .. } => ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                e.to_string(),
            ),
            other => ApiError::internal(other),
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
