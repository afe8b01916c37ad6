//! The authorization model language of Warden: the OpenFGA schema 1.1 model in its
//! JSON form ([`schema`]) and its DSL ([`dsl`]).
//!
//! Architecture invariant: this crate does no I/O beyond what a caller hands it as
//! strings, and knows nothing of storage, HTTP or tuples.

pub mod dsl;
pub mod error;
pub mod print;
pub mod schema;
pub mod validate;

pub use dsl::{ParsedDsl, parse_dsl, parse_dsl_file};
pub use error::{ModelError, ModelErrorKind};
pub use print::to_dsl;
pub use schema::{
    AuthorizationModel, Condition, ConditionParamType, Metadata, RelationMetadata,
    RelationReference, TypeDefinition, TypeName, Userset,
};

/// Parses the JSON form of a model.
pub fn parse_json(src: &str) -> Result<AuthorizationModel, ModelError> {
    serde_json::from_str(src).map_err(|e| {
        let line = e.line().saturating_sub(1);
        let col = e.column().saturating_sub(1);
        ModelError::new(ModelErrorKind::Syntax, e.to_string(), line, col, col + 1)
    })
}

/// Prints the JSON form of a model (pretty).
pub fn to_json(model: &AuthorizationModel) -> String {
    serde_json::to_string_pretty(model).unwrap_or_default()
}
