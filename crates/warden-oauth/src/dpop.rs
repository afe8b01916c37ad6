//! DPoP (RFC 9449): sender-constrained tokens. A client proves possession of a key with
//! a fresh signed proof per request; tokens issued with a proof carry the key's
//! thumbprint (`cnf.jkt`, RFC 7638) and are only accepted with a proof by that key.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::OAuthError;

/// How far a proof's `iat` may be from now, in seconds.
pub const MAX_SKEW: i64 = 60;

/// What a verified proof says.
#[derive(Debug, Clone)]
pub struct Proof {
    /// The key's thumbprint (RFC 7638), base64url.
    pub jkt: String,
    /// The proof's id, to be accepted once.
    pub jti: String,
    pub iat: i64,
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
}

/// The RFC 7638 thumbprint of a public JWK (EC P-256/P-384 or OKP Ed25519).
pub fn thumbprint(jwk: &Jwk) -> Result<String, OAuthError> {
    let canonical = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(ec) => {
            let crv = serde_json::to_value(&ec.curve)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(
                r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                ec.x, ec.y
            )
        }
        AlgorithmParameters::OctetKeyPair(okp) => {
            let crv = serde_json::to_value(&okp.curve)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{}"}}"#, okp.x)
        }
        AlgorithmParameters::RSA(rsa) => {
            format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, rsa.e, rsa.n)
        }
        _ => return Err(OAuthError::invalid_request("unsupported DPoP key type")),
    };
    Ok(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// The `ath` a proof presented with `access_token` must carry.
pub fn token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

/// Verifies a DPoP proof for a request `method` to `url` (query and fragment ignored),
/// and, when `access_token` is given, that the proof is bound to it (`ath`). The
/// caller accepts each `jti` only once and compares `jkt` with the token's `cnf`.
pub fn verify_proof(
    proof: &str,
    method: &str,
    url: &str,
    access_token: Option<&str>,
    now: i64,
) -> Result<Proof, OAuthError> {
    let bad = |m: &str| OAuthError::new("invalid_dpop_proof", m.to_string());
    let header = jsonwebtoken::decode_header(proof).map_err(|_| bad("malformed DPoP proof"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(bad("a DPoP proof has typ dpop+jwt"));
    }
    if matches!(
        header.alg,
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
    ) {
        return Err(bad("a DPoP proof is signed with an asymmetric key"));
    }
    let jwk = header
        .jwk
        .ok_or_else(|| bad("a DPoP proof carries its public key (jwk)"))?;
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).map_err(|_| bad("unusable DPoP key"))?;
    let mut v = Validation::new(header.alg);
    v.validate_exp = false;
    v.validate_aud = false;
    v.required_spec_claims.clear();
    let c = jsonwebtoken::decode::<ProofClaims>(proof, &key, &v)
        .map_err(|e| bad(&format!("DPoP proof: {e}")))?
        .claims;
    let strip = |u: &str| u.split(['?', '#']).next().unwrap_or("").to_string();
    if !c.htm.eq_ignore_ascii_case(method) || strip(&c.htu) != strip(url) {
        return Err(bad("the DPoP proof is for another request"));
    }
    if (c.iat - now).abs() > MAX_SKEW {
        return Err(bad("the DPoP proof is not fresh"));
    }
    if let Some(t) = access_token
        && c.ath.as_deref() != Some(token_hash(t).as_str())
    {
        return Err(bad("the DPoP proof is not bound to this access token"));
    }
    Ok(Proof {
        jkt: thumbprint(&jwk)?,
        jti: c.jti,
        iat: c.iat,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    fn proof(key: &SigningKey, htm: &str, htu: &str, iat: i64, ath: Option<&str>) -> String {
        let mut h = jsonwebtoken::Header::new(Algorithm::EdDSA);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(key.public_jwk()).unwrap());
        let mut claims =
            serde_json::json!({"jti": format!("p-{iat}"), "htm": htm, "htu": htu, "iat": iat});
        if let Some(a) = ath {
            claims["ath"] = serde_json::json!(a);
        }
        jsonwebtoken::encode(&h, &claims, &key.encoding_key()).unwrap()
    }

    #[test]
    fn proofs_bind_key_request_and_token() {
        let key = SigningKey::generate().unwrap();
        let now = crate::now_secs();
        let url = "https://w/oauth2/token";
        let p = verify_proof(&proof(&key, "POST", url, now, None), "POST", url, None, now).unwrap();
        let jwk: Jwk = serde_json::from_value(key.public_jwk()).unwrap();
        assert_eq!(p.jkt, thumbprint(&jwk).unwrap());
        // Another method or URL, a stale proof, a missing or wrong token hash.
        assert!(verify_proof(&proof(&key, "GET", url, now, None), "POST", url, None, now).is_err());
        assert!(
            verify_proof(
                &proof(&key, "POST", "https://x", now, None),
                "POST",
                url,
                None,
                now
            )
            .is_err()
        );
        assert!(
            verify_proof(
                &proof(&key, "POST", url, now - 600, None),
                "POST",
                url,
                None,
                now
            )
            .is_err()
        );
        assert!(
            verify_proof(
                &proof(&key, "POST", url, now, None),
                "POST",
                url,
                Some("tok"),
                now
            )
            .is_err()
        );
        let ath = token_hash("tok");
        assert!(
            verify_proof(
                &proof(&key, "POST", url, now, Some(&ath)),
                "POST",
                url,
                Some("tok"),
                now
            )
            .is_ok()
        );
        assert!(
            verify_proof(
                &proof(&key, "POST", url, now, Some(&ath)),
                "POST",
                url,
                Some("other"),
                now
            )
            .is_err()
        );
        // RFC 7638 example thumbprint of an RSA key.
        let rfc: Jwk = serde_json::from_value(serde_json::json!({
            "kty": "RSA", "e": "AQAB",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        })).unwrap();
        assert_eq!(
            thumbprint(&rfc).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }
}
