//! The OpenAPI 3.1 document served at `/openapi.json`, built from [`ROUTES`], the one
//! list of every route with its summary and required role. A test checks that the
//! router serves every route listed here and that the list covers the router.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

/// (method, path, summary, role needed or "none").
pub const ROUTES: &[(&str, &str, &str, &str)] = &[
    ("post", "/v1/orgs", "Create an organization", "server admin"),
    ("get", "/v1/orgs", "List organizations", "server admin"),
    ("get", "/v1/orgs/{org}", "Read an organization", "checker"),
    (
        "post",
        "/v1/orgs/{org}/keys",
        "Create an API key (token shown once)",
        "admin",
    ),
    ("get", "/v1/orgs/{org}/keys", "List API keys", "admin"),
    (
        "delete",
        "/v1/orgs/{org}/keys/{id}",
        "Revoke an API key",
        "admin",
    ),
    (
        "put",
        "/v1/orgs/{org}/settings",
        "Replace the organization's settings",
        "admin",
    ),
    (
        "get",
        "/v1/orgs/{org}/settings",
        "Read the organization's settings",
        "checker",
    ),
    (
        "post",
        "/v1/orgs/{org}/models",
        "Write a model (DSL or JSON); it becomes current",
        "writer",
    ),
    (
        "get",
        "/v1/orgs/{org}/models",
        "List models, newest first",
        "checker",
    ),
    (
        "get",
        "/v1/orgs/{org}/models/{id}",
        "Read a model (`latest` for the current)",
        "checker",
    ),
    (
        "post",
        "/v1/orgs/{org}/tuples/write",
        "Write and delete tuples atomically",
        "writer",
    ),
    (
        "post",
        "/v1/orgs/{org}/tuples/delete",
        "Delete tuples atomically",
        "writer",
    ),
    (
        "post",
        "/v1/orgs/{org}/tuples/read",
        "Read tuples with filters and pagination",
        "writer",
    ),
    (
        "get",
        "/v1/orgs/{org}/tuples/changes",
        "The changes feed",
        "writer",
    ),
    (
        "post",
        "/v1/orgs/{org}/check",
        "Check one relationship",
        "checker",
    ),
    (
        "post",
        "/v1/orgs/{org}/batch-check",
        "Check up to 100 relationships",
        "checker",
    ),
    (
        "post",
        "/v1/orgs/{org}/list-objects",
        "Objects of a type the user has a relation on",
        "checker",
    ),
    (
        "post",
        "/v1/orgs/{org}/list-users",
        "Users that have a relation on an object",
        "checker",
    ),
    (
        "post",
        "/v1/orgs/{org}/expand",
        "The userset tree of a relation",
        "checker",
    ),
    (
        "post",
        "/access/v1/evaluation",
        "AuthZEN access evaluation",
        "checker",
    ),
    (
        "post",
        "/access/v1/evaluations",
        "AuthZEN access evaluations (batch)",
        "checker",
    ),
    (
        "post",
        "/access/v1/search/subject",
        "AuthZEN subject search",
        "checker",
    ),
    (
        "post",
        "/access/v1/search/resource",
        "AuthZEN resource search",
        "checker",
    ),
    (
        "post",
        "/access/v1/search/action",
        "AuthZEN action search",
        "checker",
    ),
    (
        "get",
        "/.well-known/authzen-configuration",
        "AuthZEN PDP metadata",
        "none",
    ),
    ("get", "/healthz", "Liveness", "none"),
    ("get", "/readyz", "Readiness", "none"),
    ("get", "/metrics", "Prometheus metrics", "none"),
    ("get", "/openapi.json", "This document", "none"),
];

fn document() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for (method, path, summary, role) in ROUTES {
        let params: Vec<Value> = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": summary,
            "description": format!("Requires: {role}."),
            "parameters": params,
            "responses": {
                "200": {"description": "Success"},
                "4XX": {"description": "Client error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            },
        });
        if *role != "none" {
            op["security"] = json!([{"apiKey": []}]);
        }
        if matches!(*method, "post" | "put") {
            op["requestBody"] = json!({"required": true, "content": {"application/json": {"schema": {"type": "object"}}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Warden", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Identity and authorization server for AI agents."},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "wdn_<id>_<secret>"}},
            "schemas": {"Error": {"type": "object", "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
        },
    })
}

pub static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&document()).unwrap_or_default());
