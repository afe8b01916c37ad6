//! SCIM 2.0 (RFC 7643, RFC 7644) as data and pure functions, free of I/O.
//!
//! - [`schema`]: the schemas Warden serves (core User and Group, the enterprise User
//!   extension) as attribute definitions, and their `/Schemas` and `/ResourceTypes`
//!   documents;
//! - [`filter`]: the filter language and PATCH paths: parsing and evaluation against a
//!   resource;
//! - [`resource`]: checking what a client sent against the schema (names in any case,
//!   types, mutability) and shaping what is returned (`attributes`,
//!   `excludedAttributes`, `returned`);
//! - [`patch`]: PATCH operations, including the forms Microsoft Entra ID and Okta send;
//! - [`error`]: errors as SCIM error bodies with their `scimType`.
//!
//! Resources are `serde_json` objects with canonical attribute names: core attributes
//! at the top level, extension attributes under their schema URN. The server stores and
//! serves them; this crate decides what is valid and what a request means.

pub mod error;
pub mod filter;
pub mod patch;
pub mod resource;
pub mod schema;

pub use error::ScimError;
pub use filter::{Filter, PatchPath};
pub use schema::{ENTERPRISE_USER, GROUP, Kind, USER};
