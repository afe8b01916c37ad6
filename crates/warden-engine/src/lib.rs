//! Warden's decision engine: relationship tuples held in memory and indexed both ways,
//! answering Check, BatchCheck, ListObjects, ListUsers and Expand over an OpenFGA
//! schema 1.1 model, with CEL conditions.
//!
//! Architecture invariant: no I/O, no async, no clock reads, no global state. Callers
//! (the server, the CLI, tests) own storage and time; the engine is a pure function of
//! (model, tuples, request).
//!
//! ```
//! use warden_engine::{CheckRequest, Engine, Model, TupleKey, TupleStore};
//! let schema = serde_json::from_str(r#"{"schema_version":"1.1","type_definitions":[
//!   {"type":"user"},
//!   {"type":"doc","relations":{"viewer":{"this":{}}},
//!    "metadata":{"relations":{"viewer":{"directly_related_user_types":[{"type":"user"}]}}}}]}"#)?;
//! let model = Model::new(schema)?;
//! let mut store = TupleStore::new();
//! store.write(&model, &[TupleKey::new("user:anne", "viewer", "doc:1")], &[])?;
//! let engine = Engine::new(&model, &store);
//! assert!(engine.check(&CheckRequest::new("user:anne", "viewer", "doc:1"))?.allowed);
//! assert!(!engine.check(&CheckRequest::new("user:bob", "viewer", "doc:1"))?.allowed);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod approval;
pub mod condition;
mod engine;
pub mod error;
mod intern;
mod model;
mod names;
pub mod request;
mod resolve;
mod store;
pub mod tuple;

pub use condition::{ConditionError, ConditionSet, Context};
pub use engine::{DEFAULT_MAX_DEPTH, Engine};
pub use error::{EngineError, ErrorCode};
pub use model::Model;
pub use request::{
    CheckRequest, CheckResult, ExpandRequest, ListObjectsRequest, ListUsersRequest, UserFilter,
    UsersetTree,
};
pub use store::{TupleStore, validate_tuple};
pub use tuple::{TupleCondition, TupleKey};
