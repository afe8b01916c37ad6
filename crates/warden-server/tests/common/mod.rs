//! A real server on a loopback port, and a small JSON client for it.

#![allow(dead_code, reason = "each test file uses part of the helpers")]

use std::time::Duration;

use serde_json::{Value, json};
use warden_server::{Config, Server};

#[derive(Clone)]
pub struct Client {
    pub base: String,
    pub key: String,
    http: reqwest::Client,
}

impl Client {
    pub fn new(server: &Server, key: &str) -> Client {
        Client {
            base: format!("http://{}", server.local_addr),
            key: key.to_string(),
            http: reqwest::Client::new(),
        }
    }

    pub fn with_key(&self, key: &str) -> Client {
        Client {
            base: self.base.clone(),
            key: key.to_string(),
            http: self.http.clone(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let res = req
            .header("authorization", format!("Bearer {}", self.key))
            .send()
            .await
            .expect("request");
        let status = res.status().as_u16();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, body)
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn post_raw(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> (u16, Value) {
        self.send(self.http.post(format!("{}{path}", self.base)).form(fields))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.put(format!("{}{path}", self.base)).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(self.http.patch(format!("{}{path}", self.base)).json(&body))
            .await
    }

    /// Any request, with extra headers and a raw body; returns the response headers too.
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<String>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.key));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("content-type", "application/scim+json").body(b);
        }
        let res = req.send().await.expect("request");
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(self.http.delete(format!("{}{path}", self.base)))
            .await
    }

    /// Creates an organization with a model; returns its admin key's client.
    pub async fn org_with_model(&self, org: &str, dsl: &str) -> Client {
        let (s, b) = self.post("/v1/orgs", json!({ "id": org })).await;
        assert_eq!(s, 201, "{b}");
        let (s, b) = self
            .post(
                &format!("/v1/orgs/{org}/keys"),
                json!({"role": "admin", "name": "t"}),
            )
            .await;
        assert_eq!(s, 201, "{b}");
        let c = self.with_key(b["token"].as_str().expect("token"));
        let (s, b) = c
            .post(&format!("/v1/orgs/{org}/models"), json!({ "dsl": dsl }))
            .await;
        assert_eq!(s, 201, "{b}");
        c
    }
}

pub async fn start(database_url: &str) -> Server {
    let config = Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        database_url: database_url.to_string(),
        max_body_bytes: 64 * 1024,
        poll_interval: Duration::from_millis(100),
        ..Default::default()
    };
    warden_server::start(config).await.expect("server starts")
}

/// The authorization code flow through the real pages: sign in as `user` with
/// `password`, approve, redeem the code with PKCE. Returns the token response.
pub async fn code_flow(
    base: &str,
    client_id: &str,
    secret: &str,
    redirect: &str,
    user: &str,
    password: &str,
    scope: &str,
) -> Value {
    use base64::Engine as _;
    use sha2::Digest as _;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let ticket = |html: &str| {
        let start = html.find("name=\"ticket\" value=\"").expect("a ticket") + 21;
        html[start..].split('"').next().expect("ticket").to_string()
    };
    let verifier = "a-verifier-of-enough-length-0123456789-abcdefghijklmnopqrstuv";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let page = http
        .get(format!("{base}/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("scope", scope),
            ("state", "s"),
            ("code_challenge_method", "S256"),
            ("code_challenge", &challenge),
        ])
        .send()
        .await
        .expect("authorize")
        .text()
        .await
        .expect("page");
    let consent = http
        .post(format!("{base}/oauth2/authorize/signin"))
        .form(&[
            ("ticket", ticket(&page).as_str()),
            ("username", user),
            ("password", password),
        ])
        .send()
        .await
        .expect("signin")
        .text()
        .await
        .expect("consent page");
    let res = http
        .post(format!("{base}/oauth2/authorize/consent"))
        .form(&[
            ("ticket", ticket(&consent).as_str()),
            ("decision", "approve"),
        ])
        .send()
        .await
        .expect("consent");
    assert_eq!(res.status().as_u16(), 303, "consent refused");
    let location = res.headers()["location"]
        .to_str()
        .expect("location")
        .to_string();
    let code = location
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("code="))
        .expect("a code")
        .to_string();
    http.post(format!("{base}/oauth2/token"))
        .basic_auth(client_id.replace(':', "%3A"), Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .expect("token")
        .json()
        .await
        .expect("token response")
}
