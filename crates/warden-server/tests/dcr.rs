//! Dynamic client registration (RFC 7591): off by default; a registered public client
//! binds to the organization of the resource it first asks for, then runs the code flow
//! with PKCE and no secret.

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
const MCP: &str = "https://mcp.example.com/mcp";
const VERIFIER: &str = "registered-client-verifier-0123456789-0123456789-abcdef";

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn ticket(html: &str) -> String {
    let start = html.find("name=\"ticket\" value=\"").expect("a ticket") + 21;
    html[start..].split('"').next().unwrap().to_string()
}

async fn register(base: &str, body: Value) -> (u16, Value) {
    let res = http()
        .post(format!("{base}/oauth2/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        res.status().as_u16(),
        res.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn registered_public_clients_bind_to_the_resource_organization() {
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let base = format!("http://{}", server.local_addr);
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin.org_with_model("acme", DSL).await;
    acme.put(
        "/v1/orgs/acme/users/anne",
        json!({"password": "correct horse battery"}),
    )
    .await;

    // Off by default.
    let client = json!({"redirect_uris": [REDIRECT], "client_name": "Claude Desktop",
                        "token_endpoint_auth_method": "none"});
    let (s, e) = register(&base, client.clone()).await;
    assert_eq!(
        (s, e["error"].as_str()),
        (403, Some("access_denied")),
        "{e}"
    );

    let (s, _) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"registration": {"enabled": true, "owner": "user:nobody"}}),
        )
        .await;
    assert_eq!(s, 400, "the owner of registered clients must exist");
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"scopes": {"docs.read": ["document#viewer"]},
                   "resources": {"mcp": {"uri": MCP, "scopes": ["docs.read"]}},
                   "registration": {"enabled": true, "owner": "user:anne", "allowed_scopes": ["docs.read"]}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (_, meta) = admin.get("/.well-known/oauth-authorization-server").await;
    assert_eq!(
        meta["registration_endpoint"],
        json!(format!("{base}/oauth2/register"))
    );

    for (bad, why) in [
        (json!({"redirect_uris": []}), "redirect"),
        (
            json!({"redirect_uris": ["http://evil.example/cb"]}),
            "redirect",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "grant_types": ["client_credentials"]}),
            "authorization_code",
        ),
        (
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_basic"}),
            "public",
        ),
    ] {
        let (s, e) = register(&base, bad).await;
        assert_eq!(s, 400, "{e}");
        assert!(
            e["error_description"].as_str().unwrap().contains(why),
            "{e}"
        );
    }
    let (s, reg) = register(&base, client).await;
    assert_eq!(s, 201, "{reg}");
    assert_eq!(reg["token_endpoint_auth_method"], json!("none"));
    let client_id = reg["client_id"].as_str().unwrap().to_string();

    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(VERIFIER.as_bytes()));
    let authorize = |resource: Option<&str>| {
        let mut q = vec![
            ("response_type", "code".to_string()),
            ("client_id", client_id.clone()),
            ("redirect_uri", REDIRECT.to_string()),
            ("scope", "docs.read".to_string()),
            ("state", "s1".to_string()),
            ("code_challenge", challenge.clone()),
            ("code_challenge_method", "S256".to_string()),
        ];
        if let Some(r) = resource {
            q.push(("resource", r.to_string()));
        }
        http()
            .get(format!("{base}/oauth2/authorize"))
            .query(&q)
            .send()
    };
    // Unbound, the client must say which resource it is for.
    let res = authorize(None).await.unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let res = authorize(Some("https://unknown.example.com"))
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 400);
    let page = authorize(Some(MCP)).await.unwrap().text().await.unwrap();
    let consent = http()
        .post(format!("{base}/oauth2/authorize/signin"))
        .form(&[
            ("ticket", ticket(&page).as_str()),
            ("username", "anne"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(consent.contains("Claude Desktop"), "{consent}");
    let res = http()
        .post(format!("{base}/oauth2/authorize/consent"))
        .form(&[
            ("ticket", ticket(&consent).as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .unwrap();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .to_string();

    // Bound now: an agent of acme, owned as the policy says.
    let (_, agent) = acme.get(&format!("/v1/orgs/acme/agents/{client_id}")).await;
    assert_eq!(agent["owner"], json!("user:anne"), "{agent}");
    assert_eq!(agent["allowed_scopes"], json!(["docs.read"]));

    // The public client redeems its code with the verifier, no secret.
    let tok = |fields: Vec<(&'static str, String)>| {
        let base = base.clone();
        async move {
            let res = http()
                .post(format!("{base}/oauth2/token"))
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
    let (s, t) = tok(vec![
        ("grant_type", "authorization_code".into()),
        ("client_id", client_id.clone()),
        ("code", code),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", VERIFIER.into()),
    ])
    .await;
    assert_eq!(s, 200, "{t}");
    let access = t["access_token"].as_str().unwrap().to_string();
    let (s, e) = tok(vec![
        ("grant_type", "client_credentials".into()),
        ("client_id", client_id.clone()),
    ])
    .await;
    assert_eq!(
        (s, e["error"].as_str()),
        (401, Some("invalid_client")),
        "a public client has no client credentials: {e}"
    );

    // Bound to the resource: decided there, for Anne through the registered client.
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [
            {"user": "user:anne", "relation": "viewer", "object": "document:1"},
            {"user": format!("agent:{client_id}"), "relation": "viewer", "object": "document:1"},
        ]}),
    )
    .await;
    let (_, d) = acme
        .post(
            "/v1/orgs/acme/authorize",
            json!({"token": access, "audience": MCP, "relation": "viewer", "object": "document:1"}),
        )
        .await;
    assert_eq!(d["allowed"], json!(true), "{d}");
    // A public client revokes its own token by its client_id (RFC 7009 §5).
    let (s, _) = tok(vec![
        ("client_id", client_id.clone()),
        ("token", access.clone()),
    ])
    .await;
    assert_eq!(s, 400, "the token endpoint is not the revocation endpoint");
    let res = http()
        .post(format!("{base}/oauth2/revoke"))
        .form(&[
            ("client_id", client_id.as_str()),
            ("token", access.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let (_, d) = acme
        .post(
            "/v1/orgs/acme/authorize",
            json!({"token": access, "audience": MCP, "relation": "viewer", "object": "document:1"}),
        )
        .await;
    assert_eq!(d["allowed"], json!(false), "revoked: {d}");
    server.shutdown().await.unwrap();
}
