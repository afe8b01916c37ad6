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
