//! Access tokens: signed JWTs (EdDSA) with `iss`, `sub`, `aud`, `exp`, `iat`, `nbf`,
//! `jti`, `scope`, `client_id`, `org` and, for delegated tokens, `act` (the actor
//! chain, RFC 8693). Verification accepts only EdDSA from a key id it knows, so `none`,
//! HMAC with a public key as secret, and foreign keys are all refused before any claim
//! is read.

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::OAuthError;
use crate::keys::SigningKey;

/// The actor of a delegated token; nested for a chain (agent -> sub-agent).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// The chain, outermost (most recent) actor first.
    pub fn chain(&self) -> Vec<&str> {
        let mut out = vec![self.sub.as_str()];
        let mut cur = &self.act;
        while let Some(a) = cur {
            out.push(&a.sub);
            cur = &a.act;
        }
        out
    }
}

/// The claims of a Warden access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The principal the token speaks for: `agent:<id>` or `user:<id>`.
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    pub jti: String,
    /// Space-separated scopes.
    pub scope: String,
    /// The OAuth client (`<org>:<agent>`).
    pub client_id: String,
    /// The organization the token belongs to.
    pub org: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// Sender constraint (DPoP): the thumbprint of the key proofs must be signed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// `cnf` (RFC 7800 / RFC 9449).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

impl AccessClaims {
    pub fn scopes(&self) -> Vec<String> {
        self.scope.split_whitespace().map(str::to_string).collect()
    }
}

/// Signs claims with `key` (header `alg: EdDSA`, `typ: at+jwt`, `kid`).
pub fn mint(key: &SigningKey, claims: &AccessClaims) -> Result<String, OAuthError> {
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = Some(key.kid.clone());
    header.typ = Some("at+jwt".into());
    jsonwebtoken::encode(&header, claims, &key.encoding_key())
        .map_err(|e| OAuthError::new("server_error", e.to_string()))
}

/// Checks a token's signature (EdDSA, a known `kid`), issuer, audience (when given),
/// expiry and not-before; returns its claims. Revocation and principal status are the
/// caller's to check.
pub fn verify(
    token: &str,
    keys: &[SigningKey],
    issuer: &str,
    audience: Option<&str>,
) -> Result<AccessClaims, OAuthError> {
    let header = jsonwebtoken::decode_header(token)
        .map_err(|e| OAuthError::invalid_token(format!("malformed token: {e}")))?;
    if header.alg != Algorithm::EdDSA {
        return Err(OAuthError::invalid_token(format!(
            "algorithm {:?} is not accepted",
            header.alg
        )));
    }
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(OAuthError::invalid_token(
            "not an access token (typ must be at+jwt)",
        ));
    }
    let kid = header
        .kid
        .ok_or_else(|| OAuthError::invalid_token("token has no key id"))?;
    let key = keys
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| OAuthError::invalid_token("unknown signing key"))?;
    let mut v = Validation::new(Algorithm::EdDSA);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud", "nbf"]);
    v.validate_nbf = true;
    v.leeway = 5;
    match audience {
        Some(a) => v.set_audience(&[a]),
        None => v.validate_aud = false,
    }
    let data = jsonwebtoken::decode::<AccessClaims>(token, &key.decoding_key()?, &v)
        .map_err(|e| OAuthError::invalid_token(e.to_string()))?;
    Ok(data.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::now_secs;

    fn claims(iss: &str, aud: &str, exp_in: i64) -> AccessClaims {
        let now = now_secs();
        AccessClaims {
            iss: iss.into(),
            sub: "agent:a".into(),
            aud: aud.into(),
            exp: now + exp_in,
            iat: now,
            nbf: now,
            jti: "j1".into(),
            scope: "docs.read docs.write".into(),
            client_id: "acme:a".into(),
            org: "acme".into(),
            act: None,
            cnf: None,
        }
    }

    #[test]
    fn round_trip_and_every_forgery_refused() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let keys = [key.clone()];
        let ok = mint(&key, &claims("https://w", "api", 300)).unwrap();
        let c = verify(&ok, &keys, "https://w", Some("api")).unwrap();
        assert_eq!(c.scopes(), ["docs.read", "docs.write"]);
        // Wrong issuer, wrong audience, expired, not yet valid.
        assert!(verify(&ok, &keys, "https://x", Some("api")).is_err());
        assert!(verify(&ok, &keys, "https://w", Some("other")).is_err());
        let expired = mint(&key, &claims("https://w", "api", -60)).unwrap();
        assert!(verify(&expired, &keys, "https://w", None).is_err());
        let mut future = claims("https://w", "api", 600);
        future.nbf = now_secs() + 300;
        assert!(verify(&mint(&key, &future).unwrap(), &keys, "https://w", None).is_err());
        // Signed by a key Warden does not hold (same kid forged).
        let mut forged_key = other.clone();
        forged_key.kid = key.kid.clone();
        let forged = mint(&forged_key, &claims("https://w", "api", 300)).unwrap();
        assert!(verify(&forged, &keys, "https://w", None).is_err());
        // `alg: none`.
        use base64::Engine as _;
        let b64 = |v: &serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let body = serde_json::to_value(claims("https://w", "api", 300)).unwrap();
        let none = format!(
            "{}.{}.",
            b64(&serde_json::json!({"alg": "none", "kid": key.kid})),
            b64(&body)
        );
        assert!(verify(&none, &keys, "https://w", None).is_err());
        // HS256 "signed" with the public key as the HMAC secret.
        let mut h = Header::new(Algorithm::HS256);
        h.kid = Some(key.kid.clone());
        let hs = jsonwebtoken::encode(
            &h,
            &body,
            &jsonwebtoken::EncodingKey::from_secret(key.public_x.as_bytes()),
        )
        .unwrap();
        let err = verify(&hs, &keys, "https://w", None).unwrap_err();
        assert!(err.description.contains("not accepted"), "{err}");
        // Tampered payload.
        let parts: Vec<&str> = ok.split('.').collect();
        let mut evil = claims("https://w", "api", 300);
        evil.scope = "admin".into();
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(&serde_json::to_value(evil).unwrap()),
            parts[2]
        );
        assert!(verify(&tampered, &keys, "https://w", None).is_err());
        assert!(verify("garbage", &keys, "https://w", None).is_err());
    }

    #[test]
    fn actor_chains_nest() {
        let a = Actor {
            sub: "agent:sub".into(),
            act: Some(Box::new(Actor {
                sub: "agent:main".into(),
                act: None,
            })),
        };
        assert_eq!(a.chain(), ["agent:sub", "agent:main"]);
    }
}
