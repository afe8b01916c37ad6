//! Signed checkpoints: "record `seq` of organization `org` has hash `hash`", signed by
//! the server with an Ed25519 key published in its JWKS. A checkpoint pins every
//! record up to it: rewriting any of them (even with well-computed hashes) changes the
//! hash at the checkpoint, which nobody without the server's key can re-sign.
//!
//! Three kinds: `periodic` (taken every interval while records arrive), `cut` (taken
//! when retention removes the records up to it; verification then starts from it) and
//! `export` (taken over the chain's end when an export is made, and found only in that
//! export: it lets the file prove where the log ended).

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The JWS `typ` of a checkpoint, so that no other signed object (an access token)
/// can pass for one.
pub const JWS_TYPE: &str = "warden-audit-checkpoint+jwt";

#[derive(Debug, Error)]
pub enum CheckpointError {
    #[error("cannot sign the checkpoint: {0}")]
    Sign(String),
    #[error("signature does not verify: {0}")]
    Signature(String),
    #[error("signed by key `{0}`, which is not among the trusted keys")]
    UnknownKey(String),
    #[error("the signed content differs from the checkpoint's fields")]
    Mismatch,
}

/// A signed checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    pub org: String,
    pub seq: u64,
    pub hash: String,
    pub time_ms: i64,
    /// `periodic`, `cut` or `export`.
    pub kind: String,
    /// Compact JWS (EdDSA) over the fields above.
    pub jws: String,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Signed {
    org: String,
    seq: u64,
    hash: String,
    time_ms: i64,
    kind: String,
}

impl Checkpoint {
    /// Signs a checkpoint with the server key `kid`.
    pub fn sign(
        org: &str,
        seq: u64,
        hash: &str,
        time_ms: i64,
        kind: &str,
        kid: &str,
        key: &EncodingKey,
    ) -> Result<Checkpoint, CheckpointError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_string());
        header.typ = Some(JWS_TYPE.to_string());
        let body = Signed {
            org: org.to_string(),
            seq,
            hash: hash.to_string(),
            time_ms,
            kind: kind.to_string(),
        };
        let jws = jsonwebtoken::encode(&header, &body, key)
            .map_err(|e| CheckpointError::Sign(e.to_string()))?;
        Ok(Checkpoint {
            org: body.org,
            seq,
            hash: body.hash,
            time_ms,
            kind: body.kind,
            jws,
        })
    }

    /// Checks the signature against `keys` (public JWKs, `OKP`/`Ed25519`) and that the
    /// signed content is exactly this checkpoint's.
    pub fn verify(&self, keys: &[serde_json::Value]) -> Result<(), CheckpointError> {
        let header = jsonwebtoken::decode_header(&self.jws)
            .map_err(|e| CheckpointError::Signature(e.to_string()))?;
        if header.alg != Algorithm::EdDSA || header.typ.as_deref() != Some(JWS_TYPE) {
            return Err(CheckpointError::Signature(
                "not a checkpoint signature (alg EdDSA, typ warden-audit-checkpoint+jwt)".into(),
            ));
        }
        let kid = header.kid.unwrap_or_default();
        let x = keys
            .iter()
            .find(|k| k["kid"] == kid.as_str() && k["kty"] == "OKP" && k["crv"] == "Ed25519")
            .and_then(|k| k["x"].as_str())
            .ok_or_else(|| CheckpointError::UnknownKey(kid.clone()))?;
        let key = DecodingKey::from_ed_components(x)
            .map_err(|e| CheckpointError::Signature(e.to_string()))?;
        let mut v = Validation::new(Algorithm::EdDSA);
        v.set_required_spec_claims::<&str>(&[]);
        v.validate_exp = false;
        v.validate_aud = false;
        let data = jsonwebtoken::decode::<Signed>(&self.jws, &key, &v)
            .map_err(|e| CheckpointError::Signature(e.to_string()))?;
        let mine = Signed {
            org: self.org.clone(),
            seq: self.seq,
            hash: self.hash.clone(),
            time_ms: self.time_ms,
            kind: self.kind.clone(),
        };
        if data.claims != mine {
            return Err(CheckpointError::Mismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warden_oauth::keys::SigningKey;

    #[test]
    fn a_checkpoint_verifies_with_its_key_only_and_only_unchanged() {
        let k = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let cp =
            Checkpoint::sign("acme", 42, "ab", 1, "periodic", &k.kid, &k.encoding_key()).unwrap();
        cp.verify(&[k.public_jwk()]).unwrap();
        assert!(matches!(
            cp.verify(&[other.public_jwk()]),
            Err(CheckpointError::UnknownKey(_))
        ));
        let mut moved = cp.clone();
        moved.seq = 41;
        assert!(matches!(
            moved.verify(&[k.public_jwk()]),
            Err(CheckpointError::Mismatch)
        ));
        // Another key claiming the same kid.
        let mut impostor = other.public_jwk();
        impostor["kid"] = k.kid.clone().into();
        assert!(matches!(
            cp.verify(&[impostor]),
            Err(CheckpointError::Signature(_))
        ));
        // An access token signed by the same key is not a checkpoint.
        let mut forged = cp.clone();
        let mut h = Header::new(Algorithm::EdDSA);
        h.kid = Some(k.kid.clone());
        h.typ = Some("at+jwt".into());
        forged.jws = jsonwebtoken::encode(
            &h,
            &serde_json::json!({"org": "acme", "seq": 42, "hash": "ab", "time_ms": 1, "kind": "periodic"}),
            &k.encoding_key(),
        )
        .unwrap();
        assert!(matches!(
            forged.verify(&[k.public_jwk()]),
            Err(CheckpointError::Signature(_))
        ));
    }
}
