//! Ed25519 signing keys: generation, the PKCS#8 form `jsonwebtoken` signs with, and the
//! public JWK published in the JWKS.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use rand::RngCore;
use serde_json::{Value, json};

use crate::OAuthError;

/// A token signing key.
#[derive(Clone)]
pub struct SigningKey {
    /// Key id (`kid` in token headers and the JWKS).
    pub kid: String,
    /// The private key, PKCS#8 DER.
    pub private_der: Vec<u8>,
    /// The public key, base64url (the JWK's `x`).
    pub public_x: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("private_der", &"[redacted]")
            .finish()
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Result<SigningKey, OAuthError> {
        let mut seed = [0u8; 32];
        rand::rng().fill_bytes(&mut seed);
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        let der = sk
            .to_pkcs8_der()
            .map_err(|e| OAuthError::new("server_error", e.to_string()))?;
        Ok(SigningKey {
            kid: uuid::Uuid::now_v7().simple().to_string(),
            private_der: der.as_bytes().to_vec(),
            public_x: URL_SAFE_NO_PAD.encode(sk.verifying_key().to_bytes()),
        })
    }

    /// The public JWK (RFC 8037 `OKP` / `Ed25519`).
    pub fn public_jwk(&self) -> Value {
        json!({"kty": "OKP", "crv": "Ed25519", "x": self.public_x, "kid": self.kid,
               "alg": "EdDSA", "use": "sig"})
    }

    pub fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        jsonwebtoken::EncodingKey::from_ed_der(&self.private_der)
    }

    pub fn decoding_key(&self) -> Result<jsonwebtoken::DecodingKey, OAuthError> {
        jsonwebtoken::DecodingKey::from_ed_components(&self.public_x)
            .map_err(|e| OAuthError::new("server_error", e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_distinct_and_public_jwks_hold_no_secret() {
        let a = SigningKey::generate().unwrap();
        let b = SigningKey::generate().unwrap();
        assert_ne!(a.kid, b.kid);
        assert_ne!(a.public_x, b.public_x);
        let jwk = a.public_jwk();
        assert_eq!(jwk["kty"], "OKP");
        assert!(jwk.get("d").is_none());
        assert!(!format!("{a:?}").contains(&hex::encode(&a.private_der)));
    }
}
