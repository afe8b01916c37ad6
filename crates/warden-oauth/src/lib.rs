//! Warden's OAuth 2.1 token logic, free of I/O: Ed25519 signing keys and their JWKS
//! form ([`keys`]), access tokens ([`token`]: minting, and verification that accepts
//! only `EdDSA` from a known key id, with issuer, audience and lifetime checked), and
//! client authentication ([`client`]: hashed secrets, `private_key_jwt` assertions).
//!
//! The HTTP endpoints, storage of keys, credentials and revocations live in the server;
//! this crate decides what is valid.

pub mod client;
pub mod dpop;
pub mod keys;
pub mod token;

use thiserror::Error;

/// An OAuth failure, with the RFC 6749 / RFC 7009 error code it answers with.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{code}: {description}")]
pub struct OAuthError {
    pub code: &'static str,
    pub description: String,
}

impl OAuthError {
    pub fn new(code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            code,
            description: description.into(),
        }
    }

    pub fn invalid_client(d: impl Into<String>) -> Self {
        Self::new("invalid_client", d)
    }

    pub fn invalid_request(d: impl Into<String>) -> Self {
        Self::new("invalid_request", d)
    }

    pub fn invalid_token(d: impl Into<String>) -> Self {
        Self::new("invalid_token", d)
    }
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
