//! Audit records and their tamper evidence, free of I/O.
//!
//! - [`record`]: what one record holds and the hash that seals it into its
//!   organization's chain;
//! - [`chain`]: walking a run of records and naming the first one that was changed,
//!   removed, moved or slipped in;
//! - [`checkpoint`]: signed statements "record N of organization O has hash H", made
//!   periodically and when retention cuts the chain;
//! - [`export`]: the JSON Lines export and its offline verification.
//!
//! Storage and the server decide where records go; this crate decides what makes them
//! trustworthy.

pub mod chain;
pub mod checkpoint;
pub mod export;
pub mod record;

pub use chain::{Tamper, verify};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use export::{ExportHeader, ExportLine, Report, verify_export};
pub use record::{AuditRecord, GENESIS, Prepared};
