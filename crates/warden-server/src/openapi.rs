//! The OpenAPI 3.1 document served at `/openapi.json`, built from
//! [`crate::routes::ROUTES`], the same list the router is built from: every route, with
//! its summary, path parameters, the role it needs and the error shape.

use std::sync::LazyLock;

use serde_json::{Map, Value, json};

use crate::routes::ROUTES;

fn document() -> Value {
    let mut settings = schemars::generate::SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let mut paths: Map<String, Value> = Map::new();
    for route in ROUTES {
        let (method, path, summary, role) =
            (&route.method, &route.path, &route.summary, &route.role);
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
        if let Some(schema) = (route.body)(&mut generator) {
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"schema": schema}}});
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[*method] = op;
    }
    let mut schemas = generator.definitions().clone();
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "message"],
               "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}),
    );
    json!({
        "openapi": "3.1.0",
        "info": {"title": "Warden", "version": env!("CARGO_PKG_VERSION"),
                 "description": "Identity and authorization server for AI agents."},
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer", "description": "wdn_<id>_<secret>"}},
            "schemas": schemas,
        },
    })
}

pub static DOCUMENT: LazyLock<String> =
    LazyLock::new(|| serde_json::to_string_pretty(&document()).unwrap_or_default());
