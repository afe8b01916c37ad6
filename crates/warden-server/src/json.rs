//! A JSON body extractor whose every rejection is an [`ApiError`]: malformed JSON,
//! unknown fields, wrong types (with line and column), oversized bodies, and NUL
//! characters, which no field needs and PostgreSQL cannot store.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body too large",
                )
            } else {
                ApiError::bad_request(format!("cannot read the request body: {e}"))
            }
        })?;
        if has_nul(&bytes) {
            return Err(ApiError::bad_request(NUL_REFUSED));
        }
        serde_json::from_slice(&bytes).map(Json).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("invalid JSON body: {e}"),
            )
        })
    }
}

/// The answer to a request carrying a NUL character.
pub const NUL_REFUSED: &str = "NUL characters (\\u0000, %00) are not accepted";

/// Whether JSON text holds a NUL character: a `\u0000` escape (raw control characters
/// are not valid JSON), not one whose backslash is itself escaped (`\\u0000`).
pub fn has_nul(json: &[u8]) -> bool {
    let mut backslashes = 0usize;
    for (i, &b) in json.iter().enumerate() {
        if b == b'\\' {
            backslashes += 1;
            continue;
        }
        if b == b'u' && backslashes % 2 == 1 && json.get(i + 1..i + 5) == Some(b"0000") {
            return true;
        }
        backslashes = 0;
    }
    false
}

/// Whether a decoded form holds a NUL character (paths and queries are checked once,
/// for every route, by the request middleware).
pub fn form_has_nul<'a>(fields: impl IntoIterator<Item = (&'a String, &'a String)>) -> bool {
    fields
        .into_iter()
        .any(|(k, v)| k.contains('\0') || v.contains('\0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_escapes_are_found_and_escaped_backslashes_are_not() {
        assert!(has_nul(br#"{"a":"x\u0000y"}"#));
        assert!(has_nul(br#"{"a":"\\\u0000"}"#));
        assert!(!has_nul(br#"{"a":"\\u0000"}"#));
        assert!(!has_nul(br#"{"a":"u0000 \u0041"}"#));
    }
}
