//! The engine's one error type, and the stable error codes it maps to.
//!
//! Codes follow OpenFGA's numbering so that OpenFGA test suites and clients can match
//! on them: 2000 validation, 2002 resolution too deep, 2021 type not found, 2022
//! relation not found, 2027 invalid tuple.

use thiserror::Error;

/// A stable error category. `as_u32` gives OpenFGA's numeric code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// Bad input: malformed ids, a condition missing a parameter or given a wrong type.
    Validation,
    /// The depth limit was reached while resolving.
    ResolutionTooDeep,
    /// A type that the model does not define.
    TypeNotFound,
    /// A relation that the type does not define.
    RelationNotFound,
    /// A tuple the model does not allow.
    InvalidTuple,
    /// The model itself is invalid.
    InvalidModel,
}

impl ErrorCode {
    pub fn as_u32(self) -> u32 {
        match self {
            ErrorCode::Validation => 2000,
            ErrorCode::ResolutionTooDeep => 2002,
            ErrorCode::TypeNotFound => 2021,
            ErrorCode::RelationNotFound => 2022,
            ErrorCode::InvalidTuple => 2027,
            ErrorCode::InvalidModel => 2003,
        }
    }

    /// A short snake_case name, for JSON error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Validation => "validation_error",
            ErrorCode::ResolutionTooDeep => "resolution_too_deep",
            ErrorCode::TypeNotFound => "type_not_found",
            ErrorCode::RelationNotFound => "relation_not_found",
            ErrorCode::InvalidTuple => "invalid_tuple",
            ErrorCode::InvalidModel => "invalid_model",
        }
    }
}

/// Everything that can go wrong in the engine. Messages are lower-case, one line, and
/// quote user input in backticks.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EngineError {
    #[error("type `{0}` is not defined in the model")]
    TypeNotFound(String),
    #[error("relation `{relation}` is not defined on type `{type_name}`")]
    RelationNotFound { type_name: String, relation: String },
    #[error("invalid tuple `{tuple}`: {reason}")]
    InvalidTuple { tuple: String, reason: String },
    #[error("invalid {what} `{value}`: {reason}")]
    InvalidInput {
        what: &'static str,
        value: String,
        reason: String,
    },
    #[error("resolution exceeded the depth limit of {0}")]
    ResolutionTooDeep(u32),
    #[error(transparent)]
    Condition(#[from] crate::condition::ConditionError),
    #[error("invalid model: {0}")]
    InvalidModel(String),
}

impl EngineError {
    pub fn code(&self) -> ErrorCode {
        match self {
            EngineError::TypeNotFound(_) => ErrorCode::TypeNotFound,
            EngineError::RelationNotFound { .. } => ErrorCode::RelationNotFound,
            EngineError::InvalidTuple { .. } => ErrorCode::InvalidTuple,
            EngineError::InvalidInput { .. } => ErrorCode::Validation,
            EngineError::ResolutionTooDeep(_) => ErrorCode::ResolutionTooDeep,
            EngineError::Condition(_) => ErrorCode::Validation,
            EngineError::InvalidModel(_) => ErrorCode::InvalidModel,
        }
    }
}
