//! The authorization model language of Warden: the OpenFGA schema 1.1 model in its
//! JSON form ([`schema`]), and (in later modules) the DSL parser, printer and validator.
//!
//! Architecture invariant: this crate does no I/O beyond what a caller hands it as
//! strings, and knows nothing of storage, HTTP or tuples.

pub mod schema;

pub use schema::{
    AuthorizationModel, Condition, ConditionParamType, Metadata, RelationMetadata,
    RelationReference, TypeDefinition, TypeName, Userset,
};
