//! The authorization model language of Warden: the OpenFGA schema 1.1 model in its
//! JSON form ([`schema`]) and its DSL ([`dsl`]).
//!
//! Architecture invariant: this crate does no I/O beyond what a caller hands it as
//! strings, and knows nothing of storage, HTTP or tuples.

pub mod dsl;
pub mod error;
pub mod module;
pub mod print;
pub mod schema;
pub mod validate;

pub use dsl::{Named, ParsedDsl, parse_dsl, parse_dsl_file};
pub use error::{ModelError, ModelErrorKind};
pub use print::{to_dsl, try_to_dsl};
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

/// Every problem in one DSL file: its syntax error (or types extended twice), or else
/// all semantic errors, in source order.
pub fn validate_dsl(src: &str) -> Vec<ModelError> {
    let parsed = match parse_dsl_file(src) {
        Ok(p) => p,
        Err(e) => return vec![e],
    };
    // Like a syntax error, a repeated extension stops before semantic validation.
    let repeated = module::duplicate_extensions(&parsed);
    if !repeated.is_empty() {
        return repeated;
    }
    let mut errors = validate::validate_all(&parsed.model, Some(src));
    errors.sort_by_key(|e| (e.line, e.column));
    errors
}
