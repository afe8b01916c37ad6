//! The OAuth 2.1 authorization server over HTTP: client credentials with a secret and
//! with private_key_jwt, tokens verified from the JWKS alone, the token form of the
//! delegated decision, revocation, introspection, and the attacks each refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

mod common;

use common::{Client, start};
use serde_json::{Value, json};
use warden_oauth::keys::SigningKey;
use warden_storage::testing::TestDb;

const DSL: &str = "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype document\n  relations\n    define viewer: [user, agent]\n    define editor: [user, agent]\n";

async fn form(
    base: &str,
    path: &str,
    basic: Option<(&str, &str)>,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .form(fields);
    if let Some((u, p)) = basic {
        // RFC 6749 §2.3.1: the client id is form-encoded inside Basic (`:` -> `%3A`).
        req = req.basic_auth(u.replace(':', "%3A"), Some(p));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn setup(admin: &Client, org: &str) -> Client {
    let c = admin.org_with_model(org, DSL).await;
    c.put(
        &format!("/v1/orgs/{org}/settings"),
        json!({"scopes": {"docs.read": ["document#viewer"], "docs.write": ["document#editor"]}}),
    )
    .await;
    c.put(&format!("/v1/orgs/{org}/users/anne"), json!({}))
        .await;
    let (s, b) = c
        .put(
            &format!("/v1/orgs/{org}/agents/bot"),
            json!({"owner": "user:anne", "allowed_scopes": ["docs.read"]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    c.post(
        &format!("/v1/orgs/{org}/tuples/write"),
        json!({"writes": [
            {"user": "agent:bot", "relation": "viewer", "object": "document:1"},
            {"user": "agent:bot", "relation": "editor", "object": "document:1"},
        ]}),
    )
    .await;
    c
}

#[tokio::test]
async fn client_credentials_tokens_and_the_token_decision() {
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let base = format!("http://{}", server.local_addr);
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = setup(&admin, "acme").await;

    // Discovery: one exact issuer string, the JWKS publishes current and next keys.
    let (_, meta) = admin.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(meta["issuer"], json!(base));
    assert_eq!(
        meta["token_endpoint"],
        json!(format!("{base}/oauth2/token"))
    );
    let (_, oidc) = admin.get("/.well-known/openid-configuration").await;
    assert_eq!(oidc["issuer"], meta["issuer"]);
    let (_, jwks) = admin.get("/oauth2/jwks").await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.iter()
            .all(|k| k.get("d").is_none() && k["alg"] == json!("EdDSA"))
    );

    // A client secret: shown once, flagged weaker.
    let (s, cred) = acme
        .post(
            "/v1/orgs/acme/agents/bot/credentials",
            json!({"kind": "secret"}),
        )
        .await;
    assert_eq!(s, 201, "{cred}");
    assert_eq!(cred["weaker"], json!(true));
    let secret = cred["secret"].as_str().unwrap().to_string();
    let (_, list) = acme.get("/v1/orgs/acme/agents/bot/credentials").await;
    assert!(
        !list.to_string().contains(&secret),
        "the secret is never shown again"
    );

    let (s, tok) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 200, "{tok}");
    assert_eq!(tok["token_type"], json!("Bearer"));
    assert_eq!(tok["expires_in"], json!(300));
    assert_eq!(tok["scope"], json!("docs.read"));
    let access = tok["access_token"].as_str().unwrap().to_string();

    // Verified by a third party from the JWKS alone.
    let header = jsonwebtoken::decode_header(&access).unwrap();
    let jwk = keys
        .iter()
        .find(|k| k["kid"].as_str() == header.kid.as_deref())
        .unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    v.set_issuer(&[&base]);
    v.set_audience(&[&base]);
    let claims = jsonwebtoken::decode::<Value>(
        &access,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], json!("agent:bot"));
    assert_eq!(claims["org"], json!("acme"));
    assert_eq!(claims["client_id"], json!("acme:bot"));
    assert!(claims["jti"].is_string() && claims["iat"].is_i64());

    // The token form of the delegated decision: the token's scope bounds it.
    let decide = |token: &str, relation: &str| json!({"token": token, "relation": relation, "object": "document:1"});
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&access, "viewer"))
        .await;
    assert_eq!(d["allowed"], json!(true), "{d}");
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&access, "editor"))
        .await;
    assert_eq!(d["allowed"], json!(false), "editor needs docs.write: {d}");

    // Scopes beyond the agent's are refused at issuance.
    let (s, e) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("scope", "docs.read docs.write"),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_scope")),
        "{e}"
    );
    // Wrong secret, unknown client, two methods at once, unknown grant.
    let (s, e) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", "wcs_nope")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (401, Some("invalid_client")));
    let (s, _) = form(
        &base,
        "/oauth2/token",
        Some(("acme:ghost", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 401);
    let (s, _) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("client_secret", &secret),
        ],
    )
    .await;
    assert_eq!(s, 401);
    let (s, e) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[("grant_type", "password")],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("unsupported_grant_type"))
    );

    // private_key_jwt: a registered public key; assertions are single-use.
    let agent_key = SigningKey::generate().unwrap();
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/agents/bot/credentials",
            json!({"kind": "jwk", "jwk": agent_key.public_jwk()}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let mut private = agent_key.public_jwk();
    private["d"] = json!("AAAA");
    let (s, _) = acme
        .post(
            "/v1/orgs/acme/agents/bot/credentials",
            json!({"kind": "jwk", "jwk": private}),
        )
        .await;
    assert_eq!(s, 400, "private key material is refused");
    let now = warden_oauth::now_secs();
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    h.kid = Some(agent_key.kid.clone());
    let assertion = jsonwebtoken::encode(
        &h,
        &json!({"iss": "acme:bot", "sub": "acme:bot", "aud": format!("{base}/oauth2/token"),
                "iat": now, "exp": now + 60, "jti": "a-1"}),
        &agent_key.encoding_key(),
    )
    .unwrap();
    let fields = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", warden_oauth::client::JWT_BEARER),
        ("client_assertion", assertion.as_str()),
    ];
    let (s, tok2) = form(&base, "/oauth2/token", None, &fields).await;
    assert_eq!(s, 200, "{tok2}");
    let (s, e) = form(&base, "/oauth2/token", None, &fields).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "a replayed assertion: {e}"
    );

    // Introspection, by a key of the token's organization only.
    let (s, i) = acme
        .post_form("/oauth2/introspect", &[("token", &access)])
        .await;
    assert_eq!((s, &i["active"]), (200, &json!(true)), "{i}");
    let other = setup(&admin, "other").await;
    let (_, i) = other
        .post_form("/oauth2/introspect", &[("token", &access)])
        .await;
    assert_eq!(i, json!({"active": false}), "another org learns nothing");

    // A token of acme used in another organization is refused.
    let (_, d) = other
        .post("/v1/orgs/other/authorize", decide(&access, "viewer"))
        .await;
    assert_eq!(d["allowed"], json!(false));
    assert_eq!(d["reasons"][0]["check"], json!("token_valid"));

    // Forged tokens: alg none, HS256 with the public key, a foreign key.
    use base64::Engine as _;
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let none = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "kid": header.kid})),
        b64(&claims)
    );
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = header.kid.clone();
    let x = keys[0]["x"].as_str().unwrap();
    let hmac = jsonwebtoken::encode(
        &hs,
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(x.as_bytes()),
    )
    .unwrap();
    let foreign = warden_oauth::token::mint(
        &SigningKey::generate().unwrap(),
        &serde_json::from_value(claims.clone()).unwrap(),
    )
    .unwrap();
    for forged in [none, hmac, foreign, "not.a.token".to_string()] {
        let (s, d) = acme
            .post("/v1/orgs/acme/authorize", decide(&forged, "viewer"))
            .await;
        assert_eq!((s, &d["allowed"]), (200, &json!(false)), "{forged}: {d}");
        assert_eq!(d["reasons"][0]["ok"], json!(false));
    }
    // Registered resources: metadata (RFC 9728), and tokens bound to them (RFC 8707).
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"scopes": {"docs.read": ["document#viewer"], "docs.write": ["document#editor"]},
                   "resources": {"docs-api": {"uri": "https://docs.example.com/mcp", "name": "Docs MCP",
                                              "scopes": ["docs.read"]}}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, prm) = admin
        .get("/.well-known/oauth-protected-resource/acme/docs-api")
        .await;
    assert_eq!(s, 200);
    assert_eq!(prm["resource"], json!("https://docs.example.com/mcp"));
    assert_eq!(prm["authorization_servers"], json!([base]));
    let (s, bound) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://docs.example.com/mcp"),
        ],
    )
    .await;
    assert_eq!(s, 200, "{bound}");
    let bound = bound["access_token"].as_str().unwrap().to_string();
    let mut body = decide(&bound, "viewer");
    body["audience"] = json!("https://docs.example.com/mcp");
    let (_, d) = acme.post("/v1/orgs/acme/authorize", body).await;
    assert_eq!(d["allowed"], json!(true), "{d}");
    let mut body = decide(&bound, "viewer");
    body["audience"] = json!("https://other.example.com");
    let (_, d) = acme.post("/v1/orgs/acme/authorize", body).await;
    assert_eq!(
        d["allowed"],
        json!(false),
        "a token bound to one resource is refused by another"
    );
    let (s, e) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[
            ("grant_type", "client_credentials"),
            ("resource", "https://evil.example.com"),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_target")),
        "{e}"
    );
    let (s, _) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"resources": {"x": {"uri": "ftp://nope"}}}),
        )
        .await;
    assert_eq!(s, 400);

    // DPoP: a token bound to the client's key needs a fresh proof by that key.
    let dpop_key = SigningKey::generate().unwrap();
    let make_proof = |key: &SigningKey, htm: &str, htu: &str, ath: Option<String>, jti: &str| {
        let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        h.typ = Some("dpop+jwt".into());
        h.jwk = Some(serde_json::from_value(key.public_jwk()).unwrap());
        let mut c = json!({"jti": jti, "htm": htm, "htu": htu, "iat": warden_oauth::now_secs()});
        if let Some(a) = ath {
            c["ath"] = json!(a);
        }
        jsonwebtoken::encode(&h, &c, &key.encoding_key()).unwrap()
    };
    let token_url = format!("{base}/oauth2/token");
    let res = reqwest::Client::new()
        .post(&token_url)
        .basic_auth("acme%3Abot", Some(&secret))
        .header(
            "DPoP",
            make_proof(&dpop_key, "POST", &token_url, None, "d-1"),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let dt: Value = res.json().await.unwrap();
    assert_eq!(dt["token_type"], json!("DPoP"));
    let bound_token = dt["access_token"].as_str().unwrap().to_string();
    let api = "https://docs.example.com/mcp/tools";
    let ath = warden_oauth::dpop::token_hash(&bound_token);
    let ask = |proof: Option<String>| {
        let mut b = json!({"token": bound_token, "relation": "viewer", "object": "document:1",
                           "http_method": "POST", "http_url": api});
        if let Some(p) = proof {
            b["dpop_proof"] = json!(p);
        }
        b
    };
    let (_, d) = acme.post("/v1/orgs/acme/authorize", ask(None)).await;
    assert_eq!(d["allowed"], json!(false), "no proof: {d}");
    let good = make_proof(&dpop_key, "POST", api, Some(ath.clone()), "d-2");
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", ask(Some(good.clone())))
        .await;
    assert_eq!(d["allowed"], json!(true), "{d}");
    let (_, d) = acme.post("/v1/orgs/acme/authorize", ask(Some(good))).await;
    assert_eq!(d["allowed"], json!(false), "a replayed proof: {d}");
    let thief = SigningKey::generate().unwrap();
    let (_, d) = acme
        .post(
            "/v1/orgs/acme/authorize",
            ask(Some(make_proof(
                &thief,
                "POST",
                api,
                Some(ath.clone()),
                "d-3",
            ))),
        )
        .await;
    assert_eq!(
        d["allowed"],
        json!(false),
        "a stolen token with another key: {d}"
    );
    let (_, d) = acme
        .post(
            "/v1/orgs/acme/authorize",
            ask(Some(make_proof(&dpop_key, "GET", api, Some(ath), "d-4"))),
        )
        .await;
    assert_eq!(
        d["allowed"],
        json!(false),
        "a proof for another request: {d}"
    );
    let res = reqwest::Client::new()
        .post(&token_url)
        .basic_auth("acme%3Abot", Some(&secret))
        .header(
            "DPoP",
            make_proof(&dpop_key, "POST", &token_url, None, "d-1"),
        )
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        400,
        "a replayed proof at the token endpoint"
    );

    // A wrong audience.
    let mut body = decide(&access, "viewer");
    body["audience"] = json!("https://api.example.com");
    let (_, d) = acme.post("/v1/orgs/acme/authorize", body).await;
    assert_eq!(d["allowed"], json!(false));

    // Suspending the agent ends its tokens at the next decision.
    acme.post(
        "/v1/orgs/acme/agents/bot/status",
        json!({"status": "suspended"}),
    )
    .await;
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&access, "viewer"))
        .await;
    assert_eq!(d["allowed"], json!(false));
    let (_, i) = acme
        .post_form("/oauth2/introspect", &[("token", &access)])
        .await;
    assert_eq!(i["active"], json!(false));
    let (s, e) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("unauthorized_client")),
        "{e}"
    );
    acme.post(
        "/v1/orgs/acme/agents/bot/status",
        json!({"status": "active"}),
    )
    .await;

    // Key rotation: the next key signs, the old one stays published for its tokens.
    let (_, before) = admin.get("/oauth2/jwks").await;
    let next_kid = before["keys"][1]["kid"].clone();
    let (s, r) = admin.post("/v1/admin/signing-keys/rotate", json!({})).await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["current"], next_kid);
    let (_, after) = admin.get("/oauth2/jwks").await;
    assert_eq!(after["keys"].as_array().unwrap().len(), 3, "{after}");
    let old = tok2["access_token"].as_str().unwrap();
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(old, "viewer"))
        .await;
    assert_eq!(
        d["allowed"],
        json!(true),
        "a token of the retired key still verifies: {d}"
    );
    let (_, fresh) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let fresh_kid = jsonwebtoken::decode_header(fresh["access_token"].as_str().unwrap())
        .unwrap()
        .kid;
    assert_eq!(
        json!(fresh_kid),
        next_kid,
        "new tokens use the promoted key"
    );
    let (s, _) = acme.post("/v1/admin/signing-keys/rotate", json!({})).await;
    assert_eq!(s, 403, "only server administrators rotate keys");

    // Revocation (by the token's own client) takes effect at once.
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&access, "viewer"))
        .await;
    assert_eq!(d["allowed"], json!(true));
    let (s, _) = form(
        &base,
        "/oauth2/revoke",
        Some(("acme:bot", &secret)),
        &[("token", &access)],
    )
    .await;
    assert_eq!(s, 200);
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&access, "viewer"))
        .await;
    assert_eq!(d["allowed"], json!(false), "{d}");
    // Its record names the token that was refused, and only the token check.
    let (_, log) = acme
        .get(&format!(
            "/v1/orgs/acme/audit?id={}",
            d["decision_id"].as_str().unwrap()
        ))
        .await;
    let r = &log["records"][0];
    assert!(r["jti"].is_string(), "{r}");
    assert_eq!(r["client_id"], "acme:bot", "{r}");
    let checks: Vec<&Value> = r["detail"]["reasons"].as_array().unwrap().iter().collect();
    assert_eq!(checks.len(), 1, "{r}");
    assert_eq!(checks[0]["check"], "token_valid");
    let (_, i) = acme
        .post_form("/oauth2/introspect", &[("token", &access)])
        .await;
    assert_eq!(i["active"], json!(false));
    // Revoking a credential stops new tokens with it.
    let id = cred["id"].as_str().unwrap();
    let (s, _) = acme
        .delete(&format!("/v1/orgs/acme/agents/bot/credentials/{id}"))
        .await;
    assert_eq!(s, 204);
    let (s, _) = form(
        &base,
        "/oauth2/token",
        Some(("acme:bot", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(s, 401);
    server.shutdown().await.unwrap();
}
