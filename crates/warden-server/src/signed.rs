//! Short-lived statements the server signs for itself with its current token key
//! (sign-in tickets, approver sessions). Each kind has its own JWS `typ`, checked on
//! reading, so none can pass for another, nor for an access token.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::AppState;

/// Signs `claims` (which carry their own `iss`, `aud` and `exp`) as EdDSA with `typ`.
pub fn sign<T: Serialize>(state: &AppState, typ: &str, claims: &T) -> Option<String> {
    let key = state.oauth.read().current.clone()?;
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.kid = Some(key.kid.clone());
    h.typ = Some(typ.into());
    jsonwebtoken::encode(&h, claims, &key.encoding_key()).ok()
}

/// The claims of `token` if it is an EdDSA JWS of kind `typ`, signed by one of the
/// server's published keys, issued by this server for `aud`, and unexpired.
pub fn read<T: DeserializeOwned>(state: &AppState, typ: &str, token: &str, aud: &str) -> Option<T> {
    let header = jsonwebtoken::decode_header(token).ok()?;
    if header.alg != jsonwebtoken::Algorithm::EdDSA || header.typ.as_deref() != Some(typ) {
        return None;
    }
    let o = state.oauth.read();
    let key = o
        .published
        .iter()
        .find(|k| Some(&k.kid) == header.kid.as_ref())?;
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_issuer(&[&state.issuer]);
    v.set_audience(&[aud]);
    jsonwebtoken::decode::<T>(token, &key.decoding_key().ok()?, &v)
        .ok()
        .map(|d| d.claims)
}
