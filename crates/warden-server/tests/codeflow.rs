//! The authorization code flow through the real pages over HTTP: sign-in, consent,
//! code, PKCE, refresh rotation with reuse detection, and each attack refused.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

mod common;

use base64::Engine as _;
use common::{Client, start};
use serde_json::{Value, json};
use sha2::Digest as _;
use warden_storage::testing::TestDb;

const DSL: &str = "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype document\n  relations\n    define viewer: [user, agent]\n";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk-extra-entropy-0123";

fn challenge(v: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes()))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The value of the hidden `ticket` field of a page.
fn ticket(html: &str) -> String {
    let start = html.find("name=\"ticket\" value=\"").expect("a ticket") + 21;
    html[start..].split('"').next().unwrap().to_string()
}

fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    let q = location.split_once('?').unwrap().1;
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v
                .replace("%3A", ":")
                .replace("%2F", "/")
                .replace("%20", " ");
            (k.to_string(), v)
        })
        .collect()
}

async fn authorize_url(base: &str, extra: &[(&str, &str)]) -> reqwest::Response {
    let mut params = vec![
        ("response_type", "code"),
        ("client_id", "acme:bot"),
        ("redirect_uri", REDIRECT),
        ("scope", "docs.read"),
        ("state", "st-123"),
        ("code_challenge_method", "S256"),
    ];
    let ch = challenge(VERIFIER);
    params.push(("code_challenge", &ch));
    for (k, v) in extra {
        params.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    http()
        .get(format!("{base}/oauth2/authorize"))
        .query(&params)
        .send()
        .await
        .unwrap()
}

async fn token(base: &str, secret: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    let res = http()
        .post(format!("{base}/oauth2/token"))
        .basic_auth("acme%3Abot", Some(secret))
        .form(fields)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

/// Runs sign-in and consent; returns the redirect location.
async fn sign_in_and_approve(base: &str, password: &str) -> Result<String, String> {
    let res = authorize_url(base, &[]).await;
    assert_eq!(res.status().as_u16(), 200);
    let html = res.text().await.unwrap();
    let res = http()
        .post(format!("{base}/oauth2/authorize/signin"))
        .form(&[
            ("ticket", ticket(&html).as_str()),
            ("username", "anne"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    if res.status().as_u16() != 200 {
        return Err(res.text().await.unwrap());
    }
    let consent = res.text().await.unwrap();
    assert!(
        consent.contains("Bot Mailer") && consent.contains("Anne") && consent.contains("docs.read"),
        "{consent}"
    );
    let res = http()
        .post(format!("{base}/oauth2/authorize/consent"))
        .form(&[
            ("ticket", ticket(&consent).as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303);
    Ok(res.headers()["location"].to_str().unwrap().to_string())
}

#[tokio::test]
async fn authorization_code_with_pkce_consent_and_refresh_rotation() {
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let base = format!("http://{}", server.local_addr);
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin.org_with_model("acme", DSL).await;
    acme.put(
        "/v1/orgs/acme/settings",
        json!({"scopes": {"docs.read": ["document#viewer"]}}),
    )
    .await;
    acme.put(
        "/v1/orgs/acme/users/anne",
        json!({"display_name": "Anne", "password": "correct horse battery"}),
    )
    .await;
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/agents/bot",
            json!({"display_name": "Bot Mailer", "owner": "user:anne", "purpose": "summaries",
                   "allowed_scopes": ["docs.read"], "redirect_uris": [REDIRECT]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, bad) = acme
        .put(
            "/v1/orgs/acme/agents/evil",
            json!({"owner": "user:anne", "redirect_uris": ["http://evil.example/cb"]}),
        )
        .await;
    assert_eq!(s, 400, "plain http off localhost is refused: {bad}");
    let (_, cred) = acme
        .post(
            "/v1/orgs/acme/agents/bot/credentials",
            json!({"kind": "secret"}),
        )
        .await;
    let secret = cred["secret"].as_str().unwrap().to_string();
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [
            {"user": "user:anne", "relation": "viewer", "object": "document:1"},
            {"user": "agent:bot", "relation": "viewer", "object": "document:1"},
            {"user": "agent:bot", "relation": "viewer", "object": "document:2"},
        ]}),
    )
    .await;

    // Pages refuse framing.
    let res = authorize_url(&base, &[]).await;
    assert_eq!(res.headers()["x-frame-options"], "DENY");
    assert!(
        res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );

    // A wrong password: the sign-in page again, no consent.
    assert!(
        sign_in_and_approve(&base, "wrong password!")
            .await
            .unwrap_err()
            .contains("wrong user or password")
    );

    // A password typed into the name field: refused, and the name is not recorded.
    let res = authorize_url(&base, &[]).await;
    let html = res.text().await.unwrap();
    let res = http()
        .post(format!("{base}/oauth2/authorize/signin"))
        .form(&[
            ("ticket", ticket(&html).as_str()),
            ("username", "hunter2-typed-too-early"),
            ("password", ""),
        ])
        .send()
        .await
        .unwrap();
    assert!(res.text().await.unwrap().contains("wrong user or password"));

    let location = sign_in_and_approve(&base, "correct horse battery")
        .await
        .unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    // Both attempts and the consent are on the audit record; the password is not.
    let (_, log) = acme.get("/v1/orgs/acme/audit?kind=change&limit=1000").await;
    let actions: Vec<&str> = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    for a in ["signin.failed", "signin", "consent.grant"] {
        assert!(actions.contains(&a), "{a} not in {actions:?}");
    }
    assert!(!log.to_string().contains("correct horse battery"));
    assert!(!log.to_string().contains("wrong password!"));
    assert!(
        !log.to_string().contains("hunter2"),
        "an unknown name is not recorded"
    );
    let failed = log["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "signin.failed")
        .count();
    assert_eq!(failed, 2, "both refused attempts are on the record");
    let q = query_of(&location);
    assert_eq!(q["state"], "st-123");
    assert_eq!(q["iss"], base, "RFC 9207 iss in the response");
    let code = q["code"].clone();

    // A wrong verifier and a wrong redirect URI are refused without spending the code?
    // No: a code is single-use whatever happens; so try the attacks on fresh codes.
    let (s, tok) = token(
        &base,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(s, 200, "{tok}");
    let access = tok["access_token"].as_str().unwrap().to_string();
    let refresh = tok["refresh_token"].as_str().unwrap().to_string();

    // The token speaks for Anne, through the bot: both must hold it.
    let decide = |t: &str, obj: &str| json!({"token": t, "relation": "viewer", "object": obj});
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&access, "document:1"))
        .await;
    assert_eq!(d["allowed"], json!(true), "{d}");
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&access, "document:2"))
        .await;
    assert_eq!(
        d["allowed"],
        json!(false),
        "the bot holds document:2 but Anne does not: {d}"
    );

    // The code is single-use.
    let (s, e) = token(
        &base,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );

    // Wrong PKCE verifier; wrong redirect URI (each on a fresh code).
    let code2 = query_of(
        &sign_in_and_approve(&base, "correct horse battery")
            .await
            .unwrap(),
    )["code"]
        .clone();
    let (s, e) = token(
        &base,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code2),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &format!("{VERIFIER}x")),
        ],
    )
    .await;
    assert_eq!((s, e["error"].as_str()), (400, Some("invalid_grant")));
    let code3 = query_of(
        &sign_in_and_approve(&base, "correct horse battery")
            .await
            .unwrap(),
    )["code"]
        .clone();
    let (s, _) = token(
        &base,
        &secret,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code3),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(s, 400);

    // Refresh rotation; presenting a used refresh token revokes the family.
    let (s, r1) = token(
        &base,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(s, 200, "{r1}");
    let refresh2 = r1["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(refresh2, refresh);
    let (s, e) = token(
        &base,
        &secret,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    let (s, e) = token(
        &base,
        &secret,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh2),
        ],
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "the family is revoked: {e}"
    );

    // Before any redirect: an unregistered redirect URI is an error page, never a redirect.
    let res = authorize_url(&base, &[("redirect_uri", "https://evil.example/cb")]).await;
    assert_eq!(res.status().as_u16(), 400);
    assert!(res.headers().get("location").is_none());
    let res = authorize_url(&base, &[("client_id", "acme:ghost")]).await;
    assert_eq!(res.status().as_u16(), 400);
    // After it: errors go back to the client, with state and iss.
    for (extra, error) in [
        (vec![("code_challenge", "")], "invalid_request"),
        (vec![("code_challenge_method", "plain")], "invalid_request"),
        (vec![("code_challenge_method", "")], "invalid_request"),
        (
            vec![("response_type", "token")],
            "unsupported_response_type",
        ),
        (vec![("scope", "docs.read admin")], "invalid_scope"),
    ] {
        let res = authorize_url(&base, &extra).await;
        assert_eq!(res.status().as_u16(), 303, "{extra:?}");
        let q = query_of(res.headers()["location"].to_str().unwrap());
        assert_eq!(q["error"], error, "{extra:?}");
        assert_eq!(q["state"], "st-123");
    }
    // Forms work only with a ticket this server issued for that step.
    let res = http()
        .post(format!("{base}/oauth2/authorize/consent"))
        .form(&[("ticket", "forged"), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let html = authorize_url(&base, &[]).await.text().await.unwrap();
    let signin_ticket = ticket(&html);
    let res = http()
        .post(format!("{base}/oauth2/authorize/consent"))
        .form(&[("ticket", signin_ticket.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        400,
        "a sign-in ticket cannot skip sign-in"
    );
    // A page ticket is not an access token.
    let (_, d) = acme
        .post(
            "/v1/orgs/acme/authorize",
            decide(&signin_ticket, "document:1"),
        )
        .await;
    assert_eq!(d["allowed"], json!(false));
    // Denying consent.
    let res = http()
        .post(format!("{base}/oauth2/authorize/signin"))
        .form(&[
            ("ticket", signin_ticket.as_str()),
            ("username", "anne"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    let consent = res.text().await.unwrap();
    let res = http()
        .post(format!("{base}/oauth2/authorize/consent"))
        .form(&[("ticket", ticket(&consent).as_str()), ("decision", "deny")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        query_of(res.headers()["location"].to_str().unwrap())["error"],
        "access_denied"
    );
    // Token exchange: a sub-agent acts for Anne through the bot; the chain is nested.
    acme.put(
        "/v1/orgs/acme/agents/helper",
        json!({"owner": "user:anne", "allowed_scopes": ["docs.read"]}),
    )
    .await;
    let (_, hc) = acme
        .post(
            "/v1/orgs/acme/agents/helper/credentials",
            json!({"kind": "secret"}),
        )
        .await;
    let hsecret = hc["secret"].as_str().unwrap().to_string();
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [
        {"user": "agent:helper", "relation": "viewer", "object": "document:1"}]}),
    )
    .await;
    let helper_token = |fields: Vec<(&'static str, String)>| {
        let base = base.clone();
        let hsecret = hsecret.clone();
        async move {
            let res = http()
                .post(format!("{base}/oauth2/token"))
                .basic_auth("acme%3Ahelper", Some(hsecret))
                .form(&fields)
                .send()
                .await
                .unwrap();
            (
                res.status().as_u16(),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let (_, own) = helper_token(vec![("grant_type", "client_credentials".into())]).await;
    let own = own["access_token"].as_str().unwrap().to_string();
    let exchange = |scope: Option<&str>, actor: &str| {
        let mut f = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".to_string(),
            ),
            ("subject_token", access.clone()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token".to_string(),
            ),
            ("actor_token", actor.to_string()),
            (
                "actor_token_type",
                "urn:ietf:params:oauth:token-type:access_token".to_string(),
            ),
        ];
        if let Some(s) = scope {
            f.push(("scope", s.to_string()));
        }
        f
    };
    let (s, ex) = helper_token(exchange(None, &own)).await;
    assert_eq!(s, 200, "{ex}");
    assert_eq!(
        ex["issued_token_type"],
        json!("urn:ietf:params:oauth:token-type:access_token")
    );
    let delegated = ex["access_token"].as_str().unwrap().to_string();
    let payload: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(delegated.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(payload["sub"], json!("user:anne"));
    assert_eq!(
        payload["act"],
        json!({"sub": "agent:helper", "act": {"sub": "agent:bot"}})
    );
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&delegated, "document:1"))
        .await;
    assert_eq!(
        d["allowed"],
        json!(true),
        "user, helper and bot all hold it: {d}"
    );
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&delegated, "document:2"))
        .await;
    assert_eq!(d["allowed"], json!(false), "{d}");
    // Asking for a scope the user's token or the agent lacks; an actor token not its own.
    let (s, e) = helper_token(exchange(Some("docs.write"), &own)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_scope")),
        "{e}"
    );
    let (s, e) = helper_token(exchange(None, &access)).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (400, Some("invalid_grant")),
        "{e}"
    );
    // The bot suspended mid-session: the chain no longer holds.
    acme.post(
        "/v1/orgs/acme/agents/bot/status",
        json!({"status": "suspended"}),
    )
    .await;
    let (_, d) = acme
        .post("/v1/orgs/acme/authorize", decide(&delegated, "document:1"))
        .await;
    assert_eq!(d["allowed"], json!(false), "{d}");
    acme.post(
        "/v1/orgs/acme/agents/bot/status",
        json!({"status": "active"}),
    )
    .await;

    // A suspended user cannot sign in.
    acme.post(
        "/v1/orgs/acme/users/anne/status",
        json!({"status": "suspended"}),
    )
    .await;
    assert!(
        sign_in_and_approve(&base, "correct horse battery")
            .await
            .is_err()
    );
    // Her suspension revoked every token naming her: reactivated, the tokens issued
    // before stay dead (the delegated one too), while a new sign-in works again.
    acme.post(
        "/v1/orgs/acme/users/anne/status",
        json!({"status": "active"}),
    )
    .await;
    for t in [&access, &delegated] {
        let (_, d) = acme
            .post("/v1/orgs/acme/authorize", decide(t, "document:1"))
            .await;
        assert_eq!(d["allowed"], json!(false), "{d}");
        let (_, i) = acme
            .post_form("/oauth2/introspect", &[("token", t.as_str())])
            .await;
        assert_eq!(i["active"], json!(false), "{i}");
    }
    assert!(
        sign_in_and_approve(&base, "correct horse battery")
            .await
            .is_ok()
    );
    // With the audit log unwritable, no one signs in unrecorded: 503, not a form error.
    let html = authorize_url(&base, &[]).await.text().await.unwrap();
    {
        use sqlx::Connection as _;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
        sqlx::query("DROP TABLE audit_records")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let res = http()
        .post(format!("{base}/oauth2/authorize/signin"))
        .form(&[
            ("ticket", ticket(&html).as_str()),
            ("username", "anne"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 503);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("audit log cannot be written")
    );
    server.shutdown().await.unwrap();
}
