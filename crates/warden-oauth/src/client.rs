//! Client authentication for agents: client secrets (random, stored as SHA-256) and
//! `private_key_jwt` assertions (RFC 7523) signed with a key the agent registered.

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, Validation};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::OAuthError;

/// `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Longest lifetime accepted for a client assertion, in seconds (an hour: what common
/// client libraries such as authlib issue; every `jti` is accepted only once anyway).
pub const MAX_ASSERTION_LIFETIME: i64 = 3600;

/// A new client secret (shown once) and its stored digest.
pub fn new_secret() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let secret = format!("wcs_{}", hex::encode(bytes));
    let digest = secret_digest(&secret);
    (secret, digest)
}

pub fn secret_digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Whether `secret` matches the stored digest (constant-time).
pub fn secret_matches(secret: &str, digest: &str) -> bool {
    bool::from(secret_digest(secret).as_bytes().ct_eq(digest.as_bytes()))
}

/// What a verified assertion says.
#[derive(Debug, Clone, Deserialize)]
pub struct Assertion {
    pub iss: String,
    pub sub: String,
    pub exp: i64,
    #[serde(default)]
    pub iat: Option<i64>,
    pub jti: String,
}

/// The client a `private_key_jwt` assertion claims to be (its `iss`), read without
/// verifying, to find the keys to verify it with.
pub fn assertion_client(assertion: &str) -> Result<String, OAuthError> {
    use base64::Engine as _;
    let bad = || OAuthError::invalid_client("malformed client assertion");
    let payload = assertion.split('.').nth(1).ok_or_else(bad)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| bad())?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
    v["iss"].as_str().map(str::to_string).ok_or_else(bad)
}

/// Verifies a client assertion against the client's registered public keys: an
/// asymmetric algorithm matching the key, `iss` = `sub` = the client id, an accepted
/// audience, not expired and living at most an hour, with a `jti` (the caller
/// refuses a `jti` seen before).
pub fn verify_assertion(
    assertion: &str,
    client_id: &str,
    keys: &[Jwk],
    audiences: &[String],
) -> Result<Assertion, OAuthError> {
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| OAuthError::invalid_client(format!("malformed client assertion: {e}")))?;
    if matches!(
        header.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(OAuthError::invalid_client(
            "client assertions must be signed with a registered private key",
        ));
    }
    let candidates: Vec<&Jwk> = match &header.kid {
        Some(kid) => keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid.as_str()))
            .collect(),
        None => keys.iter().collect(),
    };
    let mut last = OAuthError::invalid_client("no registered key matches the assertion");
    for jwk in candidates {
        let Ok(key) = jsonwebtoken::DecodingKey::from_jwk(jwk) else {
            continue;
        };
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[client_id]);
        v.sub = Some(client_id.to_string());
        v.set_audience(audiences);
        v.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        v.leeway = 5;
        match jsonwebtoken::decode::<Assertion>(assertion, &key, &v) {
            Ok(data) => {
                let a = data.claims;
                let now = crate::now_secs();
                if a.exp - a.iat.unwrap_or(now) > MAX_ASSERTION_LIFETIME
                    || a.exp - now > MAX_ASSERTION_LIFETIME
                {
                    return Err(OAuthError::invalid_client(
                        "client assertion lives longer than an hour",
                    ));
                }
                return Ok(a);
            }
            Err(e) => last = OAuthError::invalid_client(format!("client assertion: {e}")),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    #[test]
    fn secrets_match_only_themselves() {
        let (s, d) = new_secret();
        assert!(secret_matches(&s, &d));
        assert!(!secret_matches(&format!("{s}x"), &d));
        assert!(!d.contains(&s));
    }

    #[test]
    fn assertions_verify_against_registered_keys_only() {
        let key = SigningKey::generate().unwrap();
        let jwk: Jwk = serde_json::from_value(key.public_jwk()).unwrap();
        let now = crate::now_secs();
        let claims = |iss: &str, aud: &str, exp: i64| serde_json::json!({"iss": iss, "sub": iss, "aud": aud, "exp": exp, "iat": now, "jti": "x1"});
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        let sign =
            |c: &serde_json::Value| jsonwebtoken::encode(&header, c, &key.encoding_key()).unwrap();
        let aud = vec!["https://w/oauth2/token".to_string()];
        let good = sign(&claims("acme:a", &aud[0], now + 60));
        assert_eq!(assertion_client(&good).unwrap(), "acme:a");
        assert_eq!(
            verify_assertion(&good, "acme:a", std::slice::from_ref(&jwk), &aud)
                .unwrap()
                .jti,
            "x1"
        );
        // Another client, another audience, expired, too long-lived.
        assert!(verify_assertion(&good, "acme:b", std::slice::from_ref(&jwk), &aud).is_err());
        let wrong_aud = sign(&claims("acme:a", "https://evil", now + 60));
        assert!(verify_assertion(&wrong_aud, "acme:a", std::slice::from_ref(&jwk), &aud).is_err());
        let expired = sign(&claims("acme:a", &aud[0], now - 60));
        assert!(verify_assertion(&expired, "acme:a", std::slice::from_ref(&jwk), &aud).is_err());
        let long = sign(&claims("acme:a", &aud[0], now + 7200));
        assert!(verify_assertion(&long, "acme:a", std::slice::from_ref(&jwk), &aud).is_err());
        // Signed by a key the client never registered.
        let other = SigningKey::generate().unwrap();
        let foreign = jsonwebtoken::encode(
            &header,
            &claims("acme:a", &aud[0], now + 60),
            &other.encoding_key(),
        )
        .unwrap();
        assert!(verify_assertion(&foreign, "acme:a", std::slice::from_ref(&jwk), &aud).is_err());
        // HMAC with the public key as secret.
        let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
        h.kid = Some(key.kid.clone());
        let hs = jsonwebtoken::encode(
            &h,
            &claims("acme:a", &aud[0], now + 60),
            &jsonwebtoken::EncodingKey::from_secret(key.public_x.as_bytes()),
        )
        .unwrap();
        assert!(verify_assertion(&hs, "acme:a", &[jwk], &aud).is_err());
    }
}
