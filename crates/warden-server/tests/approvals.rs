//! Human approval over HTTP: a rule turns an allowed transfer into
//! `approval_required`; a person signs in on the approval page and approves; the
//! retried decision is allowed once. Every way of cheating is refused, each in its
//! own test; the webhook is signed; the long-poll wakes on the decision.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

mod common;

use std::sync::{Arc, Mutex};

use common::{Client, start};
use serde_json::{Value, json};
use warden_storage::testing::TestDb;

const DSL: &str = "model\n  schema 1.1\n\ntype user\n\ntype agent\n\ntype group\n  relations\n    define member: [user]\n\ntype account\n  relations\n    define approver: [user, group#member]\n    define transfer: [user, agent]\n    define close: [user, agent]\n\ntype vault\n  relations\n    define approver: [user]\n    define open: [user, agent]\n    define close: [user, agent]\n";
const PASSWORD: &str = "correct horse battery staple";

struct World {
    _db: TestDb,
    server: warden_server::Server,
    base: String,
    acme: Client,
    bot_secret: String,
    hooks: Hooks,
}

/// Webhook calls received: (body, `X-Warden-Signature`).
type Hooks = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// Receives webhook calls: (body, signature header).
async fn receiver(hooks: Hooks) -> String {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
            let hooks = hooks.clone();
            async move {
                let sig = headers
                    .get("x-warden-signature")
                    .map(|v| v.to_str().unwrap().to_string());
                hooks.lock().unwrap().push((body, sig));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/hook")
}

async fn world() -> World {
    world_on(TestDb::sqlite()).await
}

async fn world_on(db: TestDb) -> World {
    let server = start(&db.url).await;
    let base = format!("http://{}", server.local_addr);
    let admin = Client::new(&server, server.bootstrap_key.as_deref().unwrap());
    let acme = admin.org_with_model("acme", DSL).await;
    let hooks: Hooks = Arc::new(Mutex::new(Vec::new()));
    let hook_url = receiver(hooks.clone()).await;
    let (s, b) = acme
        .put(
            "/v1/orgs/acme/settings",
            json!({
                "scopes": {"payments": ["account#transfer", "account#close", "vault#open", "vault#close"]},
                "approvals": {
                    "rules": [
                        {"name": "big-transfers", "type": "account", "relations": ["transfer", "close"],
                         "condition": "context.amount > 1000", "approver_relation": "approver",
                         "wait_secs": 600, "valid_secs": 60},
                        {"name": "vault", "type": "vault", "relations": ["open"],
                         "approver_group": "treasury", "wait_secs": 600, "valid_secs": 1},
                        {"name": "vault-close", "type": "vault", "relations": ["close"],
                         "approver_group": "group:treasury", "wait_secs": 8}
                    ],
                    "webhook": {"url": hook_url, "secret": "approval-hook-secret-123"}
                }
            }),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    for u in ["anne", "carol", "dave", "erin"] {
        let (s, b) = acme
            .put(
                &format!("/v1/orgs/acme/users/{u}"),
                json!({"password": PASSWORD}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    acme.put("/v1/orgs/acme/groups/treasury", json!({})).await;
    for a in ["bot", "bot2"] {
        let (s, b) = acme
            .put(
                &format!("/v1/orgs/acme/agents/{a}"),
                json!({"owner": "user:anne", "allowed_scopes": ["payments"]}),
            )
            .await;
        assert_eq!(s, 200, "{b}");
    }
    let (_, cred) = acme
        .post(
            "/v1/orgs/acme/agents/bot/credentials",
            json!({"kind": "secret"}),
        )
        .await;
    let mut writes = vec![
        json!({"user": "user:carol", "relation": "approver", "object": "account:ops"}),
        // Anne may approve too, but never her own requests.
        json!({"user": "user:anne", "relation": "approver", "object": "account:ops"}),
        json!({"user": "user:erin", "relation": "member", "object": "group:treasury"}),
    ];
    for who in ["user:anne", "user:dave", "agent:bot", "agent:bot2"] {
        for (rel, obj) in [
            ("transfer", "account:ops"),
            ("close", "account:ops"),
            ("transfer", "account:other"),
            ("open", "vault:main"),
            ("close", "vault:main"),
        ] {
            writes.push(json!({"user": who, "relation": rel, "object": obj}));
        }
    }
    let (s, b) = acme
        .post("/v1/orgs/acme/tuples/write", json!({ "writes": writes }))
        .await;
    assert_eq!(s, 200, "{b}");
    World {
        _db: db,
        server,
        base,
        acme,
        bot_secret: cred["secret"].as_str().unwrap().to_string(),
        hooks,
    }
}

fn transfer(amount: i64) -> Value {
    json!({"agent": "bot", "on_behalf_of": "anne", "relation": "transfer",
           "object": "account:ops", "context": {"amount": amount, "to": "ACME-42"}})
}

async fn authorize(w: &World, body: Value) -> Value {
    let (s, d) = w.acme.post("/v1/orgs/acme/authorize", body).await;
    assert_eq!(s, 200, "{d}");
    d
}

/// Asks for a transfer that needs approval; returns the approval id.
async fn request(w: &World, body: Value) -> String {
    let d = authorize(w, body).await;
    assert_eq!(d["allowed"], false, "{d}");
    assert_eq!(d["approval"]["approval_required"], true, "{d}");
    d["approval"]["approval_id"].as_str().unwrap().to_string()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Signs `user` in on the approval page; returns the session cookie.
async fn sign_in(w: &World, id: &str, user: &str) -> String {
    let page = http()
        .get(format!("{}/approve/acme/{id}", w.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ticket = field(&page, "ticket");
    let res = http()
        .post(format!("{}/approve/acme/{id}/signin", w.base))
        .form(&[
            ("ticket", ticket.as_str()),
            ("username", user),
            ("password", PASSWORD),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 303, "sign-in of {user} failed");
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_string()
}

fn field(html: &str, name: &str) -> String {
    let key = format!("name=\"{name}\" value=\"");
    let start = html.find(&key).expect("the field is on the page") + key.len();
    html[start..].split('"').next().unwrap().to_string()
}

/// The approval page as `cookie` sees it; returns (html, csrf token).
async fn review(w: &World, id: &str, cookie: &str) -> (String, String) {
    let html = http()
        .get(format!("{}/approve/acme/{id}", w.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = field(&html, "csrf");
    (html, csrf)
}

/// Posts the decision form; returns (status, page).
async fn decide(w: &World, id: &str, cookie: Option<&str>, form: &[(&str, &str)]) -> (u16, String) {
    let mut req = http()
        .post(format!("{}/approve/acme/{id}/decide", w.base))
        .form(form);
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

/// Posts "approve" with a signed-in approver's cookie and the page's CSRF token.
async fn approve_as(w: &World, id: &str, cookie: &str, csrf: &str) -> (u16, String) {
    decide(
        w,
        id,
        Some(cookie),
        &[("csrf", csrf), ("decision", "approve")],
    )
    .await
}

/// `user` signs in, opens the page and approves; returns (status, page).
async fn try_approve(w: &World, id: &str, user: &str) -> (u16, String) {
    let cookie = sign_in(w, id, user).await;
    let (_, csrf) = review(w, id, &cookie).await;
    approve_as(w, id, &cookie, &csrf).await
}

async fn approve(w: &World, id: &str, user: &str) {
    let (s, page) = try_approve(w, id, user).await;
    assert_eq!(s, 200, "{page}");
    assert!(page.contains("granted"), "{page}");
}

fn with_approval(mut body: Value, id: &str) -> Value {
    body["approval_id"] = json!(id);
    body
}

#[tokio::test]
async fn the_happy_path() {
    happy_path(world().await).await;
}

#[tokio::test]
async fn the_happy_path_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    happy_path(world_on(db).await).await;
}

async fn happy_path(w: World) {
    // Small transfers need nobody.
    let d = authorize(&w, transfer(100)).await;
    assert_eq!(d["allowed"], true, "{d}");
    assert!(d.get("approval").is_none());

    let first = authorize(&w, transfer(5000)).await;
    let id = first["approval"]["approval_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(first["allowed"], false);
    assert!(
        first["approval"]["approve_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/approve/acme/{id}"))
    );

    // The page shows exactly what will happen.
    let cookie = sign_in(&w, &id, "carol").await;
    let (html, csrf) = review(&w, &id, &cookie).await;
    for want in [
        "agent:bot",
        "user:anne",
        "transfer",
        "account:ops",
        "ACME-42",
        "5000",
        "pending",
    ] {
        assert!(html.contains(want), "{want} not on the page: {html}");
    }
    let (s, page) = approve_as(&w, &id, &cookie, &csrf).await;
    assert_eq!(s, 200, "{page}");

    let d = authorize(&w, with_approval(transfer(5000), &id)).await;
    assert_eq!(d["allowed"], true, "{d}");
    assert_eq!(d["approval"]["granted_by"], "user:carol");

    // On the record: the request, the grant (linked to the decision that asked) and
    // the decision that used it.
    let (_, log) = w.acme.get("/v1/orgs/acme/audit?limit=1000").await;
    let records = log["records"].as_array().unwrap();
    let with_id: Vec<&Value> = records
        .iter()
        .filter(|r| r["approval_id"] == json!(id))
        .collect();
    let actions: Vec<&str> = with_id
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"approval.grant"), "{actions:?}");
    assert_eq!(
        actions.iter().filter(|a| **a == "transfer").count(),
        2,
        "{actions:?}"
    );
    let grant = with_id
        .iter()
        .find(|r| r["action"] == "approval.grant")
        .unwrap();
    assert_eq!(grant["refers_to"], first["decision_id"]);
    assert_eq!(grant["caller"], "user:carol");

    // The enforcement point can read and wait on it.
    let (s, a) = w.acme.get(&format!("/v1/orgs/acme/approvals/{id}")).await;
    assert_eq!((s, a["status"].as_str()), (200, Some("used")), "{a}");
    w.server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_approval_is_used_once() {
    let w = world().await;
    let id = request(&w, transfer(5000)).await;
    approve(&w, &id, "carol").await;
    let d = authorize(&w, with_approval(transfer(5000), &id)).await;
    assert_eq!(d["allowed"], true, "{d}");
    let d = authorize(&w, with_approval(transfer(5000), &id)).await;
    assert_eq!(d["allowed"], false, "{d}");
    assert!(
        d["approval"]["refused"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{d}"
    );
}

#[tokio::test]
async fn an_approval_binds_resource_action_agent_user_and_context() {
    let w = world().await;
    let id = request(&w, transfer(5000)).await;
    approve(&w, &id, "carol").await;
    let other = |f: &dyn Fn(&mut Value)| {
        let mut b = with_approval(transfer(5000), &id);
        f(&mut b);
        b
    };
    for (what, body) in [
        ("resource", other(&|b| b["object"] = json!("account:other"))),
        ("action", other(&|b| b["relation"] = json!("close"))),
        ("agent", other(&|b| b["agent"] = json!("bot2"))),
        ("user", other(&|b| b["on_behalf_of"] = json!("dave"))),
        ("context", other(&|b| b["context"]["amount"] = json!(5001))),
        ("context", other(&|b| b["context"]["to"] = json!("EVIL-1"))),
    ] {
        let d = authorize(&w, body).await;
        assert_eq!(d["allowed"], false, "{what}: {d}");
        let why = d["approval"]["refused"].as_str().unwrap();
        assert!(why.contains(what), "{what}: {why}");
    }
    // None of those used it up: the request it was granted for still goes through,
    // with its context in any key order.
    let mut same = transfer(5000);
    same["context"] = json!({"to": "ACME-42", "amount": 5000});
    let d = authorize(&w, with_approval(same, &id)).await;
    assert_eq!(d["allowed"], true, "{d}");
}

#[tokio::test]
async fn an_expired_approval_is_refused() {
    let w = world().await;
    // The vault rule: approvals last one second; approvers are the treasury group.
    let open =
        json!({"agent": "bot", "on_behalf_of": "anne", "relation": "open", "object": "vault:main"});
    let id = request(&w, open.clone()).await;
    approve(&w, &id, "erin").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let d = authorize(&w, with_approval(open, &id)).await;
    assert_eq!(d["allowed"], false, "{d}");
    assert!(
        d["approval"]["refused"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{d}"
    );
}

#[tokio::test]
async fn a_request_past_its_wait_cannot_be_approved() {
    let w = world().await;
    let close = json!({"agent": "bot", "on_behalf_of": "anne", "relation": "close", "object": "vault:main"});
    let id = request(&w, close.clone()).await;
    let cookie = sign_in(&w, &id, "erin").await;
    let (_, csrf) = review(&w, &id, &cookie).await;
    // The page was opened in time; the decision comes too late.
    for _ in 0..200 {
        let (_, a) = w.acme.get(&format!("/v1/orgs/acme/approvals/{id}")).await;
        if a["status"] == "expired" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (s, page) = approve_as(&w, &id, &cookie, &csrf).await;
    assert_eq!(s, 409, "{page}");
    assert!(page.contains("expired"), "{page}");
    let (_, a) = w.acme.get(&format!("/v1/orgs/acme/approvals/{id}")).await;
    assert_eq!(a["status"], "expired");
    let d = authorize(&w, with_approval(close, &id)).await;
    assert_eq!(d["allowed"], false, "{d}");
}

#[tokio::test]
async fn an_agent_token_cannot_approve() {
    let w = world().await;
    let id = request(&w, transfer(5000)).await;
    let res = http()
        .post(format!("{}/oauth2/token", w.base))
        .basic_auth("acme%3Abot", Some(&w.bot_secret))
        .form(&[("grant_type", "client_credentials"), ("scope", "payments")])
        .send()
        .await
        .unwrap();
    let tok: Value = res.json().await.unwrap();
    let token = tok["access_token"].as_str().expect("a token").to_string();
    // As a bearer token, with a form or JSON, and even beside a real session.
    let cookie = sign_in(&w, &id, "carol").await;
    let (_, csrf) = review(&w, &id, &cookie).await;
    for with_cookie in [false, true] {
        let mut req = http()
            .post(format!("{}/approve/acme/{id}/decide", w.base))
            .bearer_auth(&token)
            .form(&[("csrf", csrf.as_str()), ("decision", "approve")]);
        if with_cookie {
            req = req.header("cookie", &cookie);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status().as_u16(), 403);
    }
    let res = http()
        .post(format!("{}/approve/acme/{id}/decide", w.base))
        .bearer_auth(&token)
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    // Agents have no password to sign in with.
    let page = http()
        .get(format!("{}/approve/acme/{id}", w.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let res = http()
        .post(format!("{}/approve/acme/{id}/signin", w.base))
        .form(&[
            ("ticket", field(&page, "ticket").as_str()),
            ("username", "bot"),
            ("password", &w.bot_secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status().as_u16(),
        200,
        "the sign-in page again, no session"
    );
    assert!(res.headers().get("set-cookie").is_none());
    let (_, a) = w.acme.get(&format!("/v1/orgs/acme/approvals/{id}")).await;
    assert_eq!(a["status"], "pending");
}

#[tokio::test]
async fn the_requester_cannot_approve_their_own_request() {
    let w = world().await;
    let id = request(&w, transfer(5000)).await;
    // Anne holds `approver` on the account, but she is the one asking.
    let (s, page) = try_approve(&w, &id, "anne").await;
    assert_eq!(s, 403, "{page}");
    assert!(page.contains("requesting user"), "{page}");
    let (_, a) = w.acme.get(&format!("/v1/orgs/acme/approvals/{id}")).await;
    assert_eq!(a["status"], "pending");
}

#[tokio::test]
async fn a_post_without_the_csrf_token_is_refused() {
    let w = world().await;
    let id = request(&w, transfer(5000)).await;
    let cookie = sign_in(&w, &id, "carol").await;
    let (_, csrf) = review(&w, &id, &cookie).await;
    let (s, _) = decide(&w, &id, Some(&cookie), &[("decision", "approve")]).await;
    assert_eq!(s, 403, "no CSRF token");
    let (s, _) = decide(
        &w,
        &id,
        Some(&cookie),
        &[
            ("csrf", "0123456789abcdef0123456789abcdef"),
            ("decision", "approve"),
        ],
    )
    .await;
    assert_eq!(s, 403, "a wrong CSRF token");
    let (s, _) = decide(&w, &id, None, &[("csrf", &csrf), ("decision", "approve")]).await;
    assert_eq!(s, 401, "no session");
    let res = http()
        .post(format!("{}/approve/acme/{id}/decide", w.base))
        .header("cookie", &cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403, "another origin");
    let (_, a) = w.acme.get(&format!("/v1/orgs/acme/approvals/{id}")).await;
    assert_eq!(a["status"], "pending");
    // The JSON form needs the token in X-CSRF-Token.
    let res = http()
        .post(format!("{}/approve/acme/{id}/decide", w.base))
        .header("cookie", &cookie)
        .json(&json!({"decision": "deny"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let res = http()
        .post(format!("{}/approve/acme/{id}/decide", w.base))
        .header("cookie", &cookie)
        .header("x-csrf-token", &csrf)
        .json(&json!({"decision": "deny", "reason": "not this week"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let a: Value = res.json().await.unwrap();
    assert_eq!(
        (a["status"].as_str(), a["decided_by"].as_str()),
        (Some("denied"), Some("user:carol"))
    );
    let d = authorize(&w, with_approval(transfer(5000), &id)).await;
    assert_eq!(d["allowed"], false, "a denied request stays denied: {d}");
}

#[tokio::test]
async fn an_approver_who_lost_the_relation_is_refused() {
    let w = world().await;
    let id = request(&w, transfer(5000)).await;
    let cookie = sign_in(&w, &id, "carol").await;
    let (_, csrf) = review(&w, &id, &cookie).await;
    let (s, b) = w
        .acme
        .post(
            "/v1/orgs/acme/tuples/delete",
            json!({"tuples": [{"user": "user:carol", "relation": "approver", "object": "account:ops"}]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let (s, page) = approve_as(&w, &id, &cookie, &csrf).await;
    assert_eq!(s, 403, "{page}");
    assert!(page.contains("may not approve"), "{page}");
    // Nor can someone who never held it.
    let (s, _) = try_approve(&w, &id, "dave").await;
    assert_eq!(s, 403);
}

#[tokio::test]
async fn the_webhook_is_signed_and_the_wait_wakes_up() {
    let w = world().await;
    let id = request(&w, transfer(5000)).await;
    let acme = w.acme.clone();
    let waiting = {
        let id = id.clone();
        tokio::spawn(async move {
            acme.get(&format!(
                "/v1/orgs/acme/approvals/{id}/wait?timeout_secs=20"
            ))
            .await
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    approve(&w, &id, "carol").await;
    let (s, a) = waiting.await.unwrap();
    assert_eq!((s, a["status"].as_str()), (200, Some("granted")), "{a}");

    // Both calls arrive, each signed with HMAC-SHA256 of its body.
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen = w.hooks.lock().unwrap().clone();
        if seen.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let kinds: Vec<String> = seen
        .iter()
        .map(|(b, _)| {
            serde_json::from_str::<Value>(b).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(kinds, ["approval.requested", "approval.decided"]);
    for (body, sig) in &seen {
        use hmac::Mac as _;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(b"approval-hook-secret-123").unwrap();
        mac.update(body.as_bytes());
        let want = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(sig.as_deref(), Some(want.as_str()));
        let v: Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["approval"]["id"], json!(id));
    }
    // A forged body does not match the signature.
    let (body, sig) = &seen[0];
    let forged = body.replace("pending", "granted");
    use hmac::Mac as _;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"approval-hook-secret-123").unwrap();
    mac.update(forged.as_bytes());
    assert_ne!(
        Some(format!(
            "sha256={}",
            hex::encode(mac.finalize().into_bytes())
        )),
        sig.clone()
    );
}

#[tokio::test]
async fn bad_approval_rules_are_refused() {
    let w = world().await;
    for (rule, why) in [
        (
            json!({"name": "x", "type": "account", "relations": ["transfer"], "condition": "amount >", "approver_relation": "approver"}),
            "condition",
        ),
        (
            json!({"name": "x", "type": "account", "relations": ["transfer"], "condition": "amount > 1", "approver_relation": "approver"}),
            "context",
        ),
        (
            json!({"name": "x", "type": "account", "relations": ["transfer"]}),
            "exactly one",
        ),
        (
            json!({"name": "x", "type": "account", "relations": [], "approver_relation": "approver"}),
            "relation",
        ),
        (
            json!({"name": "x", "type": "account", "relations": ["transfer"], "approver_relation": "approver", "valid_secs": 0}),
            "valid_secs",
        ),
    ] {
        let (s, e) = w
            .acme
            .put(
                "/v1/orgs/acme/settings",
                json!({"approvals": {"rules": [rule]}}),
            )
            .await;
        assert_eq!(s, 400, "{e}");
        assert!(e["message"].as_str().unwrap().contains(why), "{why}: {e}");
    }
}

#[tokio::test]
async fn the_owner_of_an_agent_acting_alone_cannot_approve() {
    let w = world().await;
    // The bot acts on its own; Anne owns it and holds `approver`.
    let alone = json!({"agent": "bot", "relation": "transfer", "object": "account:ops",
                       "context": {"amount": 9000}});
    let (s, b) = w
        .acme
        .post(
            "/v1/orgs/acme/tuples/write",
            json!({"writes": [{"user": "agent:bot", "relation": "approver", "object": "account:ops"}]}),
        )
        .await;
    assert_eq!(s, 400, "agents are not approvers in this model: {b}");
    let id = request(&w, alone).await;
    let (s, page) = try_approve(&w, &id, "anne").await;
    assert_eq!(s, 403, "{page}");
    assert!(page.contains("answers for agent:bot"), "{page}");
    // Asking again waits on the same request instead of making another.
    let again = request(
        &w,
        json!({"agent": "bot", "relation": "transfer", "object": "account:ops",
                                   "context": {"amount": 9000}}),
    )
    .await;
    assert_eq!(again, id);
}

#[tokio::test]
async fn an_approval_dies_with_its_approver_leaving() {
    let w = world().await;
    let id = request(&w, transfer(5000)).await;
    approve(&w, &id, "carol").await;
    let (s, _) = w
        .acme
        .post(
            "/v1/orgs/acme/users/carol/status",
            json!({"status": "suspended"}),
        )
        .await;
    assert_eq!(s, 200);
    let d = authorize(&w, with_approval(transfer(5000), &id)).await;
    assert_eq!(d["allowed"], false, "{d}");
    assert!(
        d["approval"]["refused"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{d}"
    );
}
