//! Real third-party OAuth clients (Python `authlib` and `pyjwt`, installed by `.ci/run`
//! into `target/py-venv`) against a real server: see `tests/python/oauth_clients.py`.
//!
//! Without that interpreter the test is skipped with a loud message, unless
//! `WARDEN_REQUIRE_PYTHON` is set (as CI sets it), where that is a failure.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;
use common::{Client, start};
use serde_json::json;
use warden_storage::testing::TestDb;

fn python() -> Option<PathBuf> {
    python_with("authlib, jwt, requests")
}

/// The test venv's interpreter if it can import `modules` (comma-separated).
fn python_with(modules: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let p = std::env::var_os("WARDEN_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/py-venv/bin/python"));
    let ok = Command::new(&p)
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(p);
    }
    if std::env::var_os("WARDEN_REQUIRE_PYTHON").is_some() {
        panic!(
            "Python clients required (WARDEN_REQUIRE_PYTHON) but not usable at {}",
            p.display()
        );
    }
    eprintln!(
        "\n!!! SKIPPING Python client tests: no venv with {modules} at {} (run .ci/run, or set WARDEN_PYTHON) !!!\n",
        p.display()
    );
    None
}

/// Runs `tests/python/NAME` with `cfg` as JSON on standard input; returns its exit
/// status, standard output and standard error.
async fn run_script(
    py: PathBuf,
    name: &str,
    cfg: serde_json::Value,
) -> (std::process::ExitStatus, String, String) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/python")
        .join(name);
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new(py)
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(cfg.to_string().as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const DSL: &str = "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype document\n  relations\n    define viewer: [user, agent]\n";

#[tokio::test]
async fn authlib_and_pyjwt_against_warden() {
    let Some(py) = python() else {
        return;
    };
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
    let redirect = "http://127.0.0.1:9/callback";
    for (agent, extra) in [
        ("bot", json!({})),
        ("helper", json!({"redirect_uris": [redirect]})),
    ] {
        let mut body = json!({"owner": "user:anne", "allowed_scopes": ["docs.read"]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let (s, b) = acme
            .put(&format!("/v1/orgs/acme/agents/{agent}"), body)
            .await;
        assert_eq!(s, 200, "{b}");
    }
    // The bot's key pair: the public half registered, the private half given to authlib.
    let seed = [7u8; 32];
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let x = b64(&sk.verifying_key().to_bytes());
    let public = json!({"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "bot-1"});
    let (s, b) = acme
        .post(
            "/v1/orgs/acme/agents/bot/credentials",
            json!({"kind": "jwk", "jwk": public}),
        )
        .await;
    assert_eq!(s, 201, "{b}");
    let (_, hc) = acme
        .post(
            "/v1/orgs/acme/agents/helper/credentials",
            json!({"kind": "secret"}),
        )
        .await;
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [
            {"user": "user:anne", "relation": "viewer", "object": "document:1"},
            {"user": "agent:bot", "relation": "viewer", "object": "document:1"},
            {"user": "agent:helper", "relation": "viewer", "object": "document:1"},
            {"user": "agent:helper", "relation": "viewer", "object": "document:2"},
        ]}),
    )
    .await;
    let cfg = json!({
        "base": base,
        "org": "acme",
        "api_key": acme.key,
        "bot_client_id": "acme:bot",
        "bot_private_jwk": {"kty": "OKP", "crv": "Ed25519", "x": x, "d": b64(&seed), "kid": "bot-1"},
        "helper_client_id": "acme:helper",
        "helper_secret": hc["secret"],
        "redirect_uri": redirect,
        "username": "anne",
        "password": "correct horse battery",
    });
    let (status, stdout, stderr) = run_script(py, "oauth_clients.py", cfg).await;
    assert!(
        status.success() && stdout.contains("all passed"),
        "python clients failed:\n{stdout}\n{stderr}"
    );
    server.shutdown().await.unwrap();
}

/// The official MCP Python SDK: discovery, registration, PKCE, an audience-bound token,
/// a tool call allowed, then refused after revocation.
#[tokio::test]
async fn the_mcp_sdk_against_warden() {
    let Some(py) = python() else {
        return;
    };
    let has_mcp = Command::new(&py)
        .args(["-c", "import mcp.server.mcpserver, uvicorn"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_mcp {
        if std::env::var_os("WARDEN_REQUIRE_PYTHON").is_some() {
            panic!(
                "the MCP SDK is required but not installed in {}",
                py.display()
            );
        }
        eprintln!(
            "\n!!! SKIPPING the MCP SDK test: `mcp` (2.x) and `uvicorn` are not installed !!!\n"
        );
        return;
    }
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let base = format!("http://{}", server.local_addr);
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin
        .org_with_model(
            "acme",
            "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype document\n  relations\n    define viewer: [user, agent, agent:*]\n",
        )
        .await;
    acme.put(
        "/v1/orgs/acme/users/anne",
        json!({"password": "correct horse battery"}),
    )
    .await;
    let mcp_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mcp_url = format!("http://127.0.0.1:{mcp_port}/mcp");
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"scopes": {"docs.read": ["document#viewer"]},
                   "resources": {"mcp": {"uri": mcp_url, "scopes": ["docs.read"]}},
                   "registration": {"enabled": true, "owner": "user:anne", "allowed_scopes": ["docs.read"]}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [
            {"user": "user:anne", "relation": "viewer", "object": "document:1"},
            {"user": "agent:*", "relation": "viewer", "object": "document:1"},
            {"user": "agent:*", "relation": "viewer", "object": "document:2"},
        ]}),
    )
    .await;
    let cfg = json!({
        "base": base, "org": "acme", "api_key": acme.key, "mcp_port": mcp_port,
        "username": "anne", "password": "correct horse battery",
    });
    let (_status, stdout, stderr) = run_script(py, "mcp_e2e.py", cfg).await;
    assert!(
        stdout.contains("all passed"),
        "the MCP SDK test failed:\n{stdout}\n{stderr}"
    );
    server.shutdown().await.unwrap();
}

/// scim2-tester runs every check it has against the SCIM endpoints; every one passes.
#[tokio::test]
async fn scim2_tester_against_warden() {
    let Some(py) = python_with("scim2_tester, httpx2") else {
        return;
    };
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let base = format!("http://{}", server.local_addr);
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin.org_with_model("acme", DSL).await;
    let (s, key) = acme
        .post(
            "/v1/orgs/acme/keys",
            json!({"role": "directory", "name": "scim2-tester"}),
        )
        .await;
    assert_eq!(s, 201, "{key}");
    let cfg = json!({"base": format!("{base}/scim/v2/acme"), "token": key["token"]});
    let (status, out, err) = run_script(py, "scim_tester.py", cfg).await;
    println!("{out}");
    assert!(status.success(), "scim2-tester failed:\n{out}\n{err}");
    assert!(out.contains("scim2-tester: "), "{out}");
}

/// A person approves in real headless Chromium (Playwright); the agent's retried
/// decision is then allowed, once.
#[tokio::test]
async fn an_approver_approves_in_chromium() {
    let Some(py) = python_with("playwright") else {
        return;
    };
    let chromium = std::env::var("WARDEN_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !std::path::Path::new(&chromium).exists() {
        assert!(
            std::env::var_os("WARDEN_REQUIRE_PYTHON").is_none(),
            "Chromium required (WARDEN_REQUIRE_PYTHON) but not at {chromium}"
        );
        eprintln!(
            "\n!!! SKIPPING the browser test: no Chromium at {chromium} (apt-get install chromium) !!!\n"
        );
        return;
    }
    let db = TestDb::sqlite();
    let server = start(&db.url).await;
    let base = format!("http://{}", server.local_addr);
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let dsl = "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype account\n  relations\n    define approver: [user]\n    define transfer: [user, agent]\n";
    let acme = admin.org_with_model("acme", dsl).await;
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({"scopes": {"payments": ["account#transfer"]},
                   "approvals": {"rules": [{"name": "big", "type": "account", "relations": ["transfer"],
                                            "condition": "context.amount > 1000", "approver_relation": "approver"}]}}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let password = "correct horse battery staple";
    for u in ["anne", "carol"] {
        acme.put(
            &format!("/v1/orgs/acme/users/{u}"),
            json!({"password": password}),
        )
        .await;
    }
    acme.put(
        "/v1/orgs/acme/agents/bot",
        json!({"owner": "user:anne", "allowed_scopes": ["payments"]}),
    )
    .await;
    acme.post(
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [
            {"user": "user:anne", "relation": "transfer", "object": "account:ops"},
            {"user": "agent:bot", "relation": "transfer", "object": "account:ops"},
            {"user": "user:carol", "relation": "approver", "object": "account:ops"},
        ]}),
    )
    .await;
    let ask = json!({"agent": "bot", "on_behalf_of": "anne", "relation": "transfer",
                     "object": "account:ops", "context": {"amount": 2500, "to": "ACME-42"}});
    let (_, d) = acme.post("/v1/orgs/acme/authorize", ask.clone()).await;
    assert_eq!(d["allowed"], json!(false), "{d}");
    let id = d["approval"]["approval_id"].as_str().unwrap().to_string();
    let cfg = json!({"url": format!("{base}/approve/acme/{id}"), "user": "carol", "password": password,
                     "agent": "bot", "on_behalf_of": "anne", "action": "transfer",
                     "resource": "account:ops", "context": {"amount": 2500, "to": "ACME-42"}});
    let (status, out, err) = run_script(py, "approval_browser.py", cfg).await;
    println!("{out}");
    assert!(status.success(), "browser approval failed:\n{out}\n{err}");
    let mut retry = ask.clone();
    retry["approval_id"] = json!(id);
    let (_, d) = acme.post("/v1/orgs/acme/authorize", retry.clone()).await;
    assert_eq!(d["allowed"], json!(true), "{d}");
    let (_, d) = acme.post("/v1/orgs/acme/authorize", retry).await;
    assert_eq!(d["allowed"], json!(false), "used once: {d}");
}
