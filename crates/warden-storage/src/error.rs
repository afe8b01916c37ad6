//! The storage crate's one error type.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// An error of the audit writer's own SQLite connection.
    #[error("database error: {0}")]
    Embedded(String),
    #[error("configuration: {0}")]
    Config(String),
    #[error("{what} `{name}` not found")]
    NotFound { what: &'static str, name: String },
    #[error("{what} `{name}` already exists")]
    Conflict { what: &'static str, name: String },
    #[error("invalid: {0}")]
    Invalid(String),
    /// A conditional write (`If-Match`) found another version.
    #[error("{what} `{name}` has changed (it is at version {current})")]
    Stale {
        what: &'static str,
        name: String,
        current: i64,
    },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

impl StorageError {
    /// Whether the database refused a duplicate key (a unique constraint).
    pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
        match e {
            sqlx::Error::Database(d) => {
                d.is_unique_violation()
                    || d.message().contains("UNIQUE constraint failed")
                    || d.code().as_deref() == Some("23505")
            }
            _ => false,
        }
    }
}
