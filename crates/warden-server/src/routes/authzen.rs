//! OpenID AuthZEN Authorization API 1.0: access evaluation(s) and the search APIs.
//!
//! Mapping onto the model: subject `{type, id}` is the user `type:id`, `action.name` is
//! the relation, resource `{type, id}` is the object `type:id`. The condition context is
//! the request's `context`, plus `subject`, `resource` and `action` holding the
//! `properties` of each (when sent). The organization is the API key's (a server
//! administrator key names one with the `X-Warden-Org` header). Resource links from
//! the organization's settings are added as contextual tuples.
//!
//! A request Warden cannot evaluate (unknown type or relation, a failing condition) is
//! a deny with the reason in the response `context`, as the specification allows.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use warden_engine::{
    CheckRequest, Engine, ListObjectsRequest, ListUsersRequest, TupleKey, UserFilter,
};
use warden_storage::Role;

use crate::audit::Meta;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::{AppState, OrgData, OrgSettings};
use warden_audit::AuditRecord;

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
pub struct Entity {
    #[serde(rename = "type")]
    type_name: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
pub struct Action {
    name: String,
    #[serde(default)]
    properties: Option<Map<String, Value>>,
}

#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
pub struct Evaluation {
    #[serde(default)]
    subject: Option<Entity>,
    #[serde(default)]
    action: Option<Action>,
    #[serde(default)]
    resource: Option<Entity>,
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

#[derive(Debug, Serialize)]
struct Decision {
    decision: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    context: Option<Value>,
}

/// The organization an AuthZEN call acts on.
fn org_of(caller: &Caller, headers: &HeaderMap) -> ApiResult<String> {
    let header = headers
        .get("x-warden-org")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let org = match (&caller.0.org_id, header) {
        (Some(o), None) => o.clone(),
        (Some(o), Some(h)) if *o == h => h,
        (Some(_), Some(_)) => {
            return Err(ApiError::forbidden(
                "this key is not valid for this organization",
            ));
        }
        (None, Some(h)) => h,
        (None, None) => {
            return Err(ApiError::bad_request(
                "a server administrator key must name the organization in `X-Warden-Org`",
            ));
        }
    };
    caller.require(&org, Role::Checker)?;
    Ok(org)
}

fn object(e: &Entity, what: &str) -> ApiResult<String> {
    match &e.id {
        Some(id) => Ok(format!("{}:{id}", e.type_name)),
        None => Err(ApiError::bad_request(format!("{what}.id is required"))),
    }
}

/// The condition context of an evaluation.
fn context_of(ev: &Evaluation) -> Map<String, Value> {
    let mut ctx = ev.context.clone().unwrap_or_default();
    let mut put = |k: &str, v: &Option<Map<String, Value>>| {
        if let Some(p) = v {
            ctx.insert(k.to_string(), Value::Object(p.clone()));
        }
    };
    put(
        "subject",
        &ev.subject.as_ref().and_then(|s| s.properties.clone()),
    );
    put(
        "resource",
        &ev.resource.as_ref().and_then(|s| s.properties.clone()),
    );
    put(
        "action",
        &ev.action.as_ref().and_then(|s| s.properties.clone()),
    );
    ctx
}

/// Contextual tuples from the organization's resource links.
fn links(settings: &OrgSettings, resource_type: &str, object: &str) -> Vec<TupleKey> {
    settings
        .authzen
        .resource_links
        .get(resource_type)
        .into_iter()
        .flatten()
        .map(|l| TupleKey::new(l.user.clone(), l.relation.clone(), object.to_string()))
        .collect()
}

/// Evaluates one request, filling in its audit record (`None` for a malformed request,
/// which is not a decision).
fn decide(
    data: &OrgData,
    ev: &Evaluation,
    rec: &mut Option<AuditRecord>,
    recording: bool,
) -> Result<bool, ApiError> {
    let (Some(subject), Some(action), Some(resource)) = (&ev.subject, &ev.action, &ev.resource)
    else {
        *rec = None;
        return Err(ApiError::bad_request(
            "an evaluation needs subject, action and resource",
        ));
    };
    let obj = match object(resource, "resource") {
        Ok(o) => o,
        Err(e) => {
            *rec = None;
            return Err(e);
        }
    };
    let Some(r) = rec.as_mut() else {
        return Err(ApiError::bad_request("no record"));
    };
    r.action = action.name.clone();
    r.resource = Some(obj.clone());
    let res = decide_recorded(data, subject, action, resource, obj, ev, r, recording);
    if let Err(e) = &res {
        r.allowed = None;
        r.detail = json!({ "error": e });
    }
    res
}

#[allow(clippy::too_many_arguments)]
fn decide_recorded(
    data: &OrgData,
    subject: &Entity,
    action: &Action,
    resource: &Entity,
    obj: String,
    ev: &Evaluation,
    rec: &mut AuditRecord,
    recording: bool,
) -> Result<bool, ApiError> {
    let (model_id, model) = data.model_entry(None)?;
    rec.model_id = Some(model_id.to_string());
    let (tuples, settings) = (&data.tuples, &data.settings);
    // An agent acting for a user (trusted enforcement point, no token): the delegated
    // decision, where the agent, the user and a scope must all allow it.
    let on_behalf_of = subject
        .properties
        .as_ref()
        .and_then(|p| p.get("on_behalf_of"))
        .and_then(|v| v.as_str());
    if let Some(user) = on_behalf_of {
        if subject.type_name != "agent" {
            return Err(ApiError::bad_request(
                "on_behalf_of is for subjects of type `agent`",
            ));
        }
        let user = user.strip_prefix("user:").unwrap_or(user);
        let agent = subject
            .id
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("subject.id is required"))?;
        let (allowed, reasons) = super::authorize::decide(
            data,
            agent,
            Some(user),
            &[],
            None,
            &action.name,
            &obj,
            &context_of(ev),
            &links(settings, &resource.type_name, &obj),
            warden_storage::now_ms(),
        )?;
        rec.agent = Some(format!("agent:{agent}"));
        rec.user = Some(format!("user:{user}"));
        rec.allowed = Some(allowed);
        rec.detail = json!({"reasons": reasons});
        return Ok(allowed);
    }
    let req = CheckRequest {
        user: object(subject, "subject")?,
        relation: action.name.clone(),
        contextual_tuples: links(settings, &resource.type_name, &obj),
        object: obj,
        context: context_of(ev),
        explain: false,
    };
    Ok(super::decisions::check_recorded(&Engine::new(model, tuples), req, rec, recording)?.allowed)
}

fn to_decision(state: &AppState, r: Result<bool, ApiError>) -> Decision {
    state.metrics.record_outcome(&r);
    match r {
        Ok(d) => Decision {
            decision: d,
            context: None,
        },
        Err(e) => Decision {
            decision: false,
            context: Some(json!({"reason_admin": {"code": e.code, "message": e.message}})),
        },
    }
}

/// The header naming the decision id(s) of an AuthZEN answer (the body stays exactly
/// as the specification shapes it).
const DECISION_IDS: &str = "x-warden-decision-id";

pub async fn evaluation(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    meta: Meta,
    Json(ev): Json<Evaluation>,
) -> ApiResult<impl IntoResponse> {
    let org = org_of(&caller, &headers)?;
    let data = state.org_fresh(&org).await?;
    let revision = state.applied();
    let mut rec = Some(new_record(&meta, &org, &caller, revision));
    let d = {
        let data = data.read();
        data.model(None)?;
        decide(&data, &ev, &mut rec, state.audit.enabled())
    };
    if let Err(e) = &d
        && e.code == "invalid_request"
    {
        return Err(e.clone());
    }
    let mut ids = Vec::new();
    if let Some(rec) = rec {
        ids.push(rec.id.clone());
        state.audit.record(rec).await?;
    }
    Ok((
        [(DECISION_IDS, ids.join(","))],
        axum::Json(to_decision(&state, d)),
    ))
}

fn new_record(meta: &Meta, org: &str, caller: &Caller, revision: i64) -> AuditRecord {
    let mut r = meta.by_key(org, caller, "decision", "");
    r.revision = Some(revision);
    r
}

#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
pub struct Evaluations {
    #[serde(flatten)]
    defaults: Evaluation,
    #[serde(default)]
    evaluations: Option<Vec<Evaluation>>,
    #[serde(default)]
    options: Option<Map<String, Value>>,
}

pub async fn evaluations(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    meta: Meta,
    Json(body): Json<Evaluations>,
) -> ApiResult<impl IntoResponse> {
    let org = org_of(&caller, &headers)?;
    let semantic = body
        .options
        .as_ref()
        .and_then(|o| o.get("evaluations_semantic"))
        .and_then(|v| v.as_str())
        .unwrap_or("execute_all")
        .to_string();
    if !matches!(
        semantic.as_str(),
        "execute_all" | "deny_on_first_deny" | "permit_on_first_permit"
    ) {
        return Err(ApiError::bad_request(format!(
            "unknown evaluations_semantic `{semantic}`"
        )));
    }
    let data = state.org_fresh(&org).await?;
    let revision = state.applied();
    let mut records = Vec::new();
    let answer = {
        let data = data.read();
        data.model(None)?;
        match &body.evaluations {
            None => {
                // No list: a single evaluation, answered as one.
                let mut rec = Some(new_record(&meta, &org, &caller, revision));
                let d = decide(&data, &body.defaults, &mut rec, state.audit.enabled());
                records.extend(rec);
                json!(to_decision(&state, d))
            }
            Some(items) => {
                if items.len() > state.limits.max_batch_checks {
                    return Err(ApiError::bad_request(format!(
                        "at most {} evaluations per request",
                        state.limits.max_batch_checks
                    )));
                }
                let mut out = Vec::with_capacity(items.len());
                for item in items {
                    let d = &body.defaults;
                    let merged = Evaluation {
                        subject: item.subject.clone().or_else(|| d.subject.clone()),
                        action: item.action.clone().or_else(|| d.action.clone()),
                        resource: item.resource.clone().or_else(|| d.resource.clone()),
                        context: item.context.clone().or_else(|| d.context.clone()),
                    };
                    let mut rec = Some(new_record(&meta, &org, &caller, revision));
                    let decision = to_decision(
                        &state,
                        decide(&data, &merged, &mut rec, state.audit.enabled()),
                    );
                    records.extend(rec);
                    let stop = match semantic.as_str() {
                        "deny_on_first_deny" => !decision.decision,
                        "permit_on_first_permit" => decision.decision,
                        _ => false,
                    };
                    out.push(decision);
                    if stop {
                        break;
                    }
                }
                json!({ "evaluations": out })
            }
        }
    };
    let ids: Vec<String> = records.iter().map(|r| r.id.clone()).collect();
    state.audit.record_all(records).await?;
    Ok(([(DECISION_IDS, ids.join(","))], axum::Json(answer)))
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
pub struct SearchBody {
    subject: Entity,
    #[serde(default)]
    action: Option<Action>,
    resource: Entity,
    #[serde(default)]
    context: Option<Map<String, Value>>,
}

fn search_context(b: &SearchBody) -> Map<String, Value> {
    context_of(&Evaluation {
        subject: Some(b.subject.clone()),
        action: b.action.clone(),
        resource: Some(b.resource.clone()),
        context: b.context.clone(),
    })
}

fn split_typed(s: &str) -> Value {
    let (t, id) = s.split_once(':').unwrap_or(("", s));
    json!({"type": t, "id": id})
}

/// Subjects of a type that may do an action on a resource.
pub async fn search_subject(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<SearchBody>,
) -> ApiResult<impl IntoResponse> {
    let org = org_of(&caller, &headers)?;
    let action = body
        .action
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("action is required"))?;
    let obj = object(&body.resource, "resource")?;
    let data = state.org_fresh(&org).await?;
    let data = data.read();
    let model = data.model(None)?;
    let users = Engine::new(model, &data.tuples).list_users(&ListUsersRequest {
        contextual_tuples: links(&data.settings, &body.resource.type_name, &obj),
        object: obj,
        relation: action.name.clone(),
        user_filters: vec![UserFilter::parse(&body.subject.type_name)],
        context: search_context(&body),
    })?;
    let results: Vec<Value> = users
        .iter()
        .filter(|u| !u.ends_with(":*") && !u.contains('#'))
        .map(|u| split_typed(u))
        .collect();
    Ok(axum::Json(json!({ "results": results })))
}

/// Resources of a type on which the subject may do an action.
pub async fn search_resource(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<SearchBody>,
) -> ApiResult<impl IntoResponse> {
    let org = org_of(&caller, &headers)?;
    let action = body
        .action
        .as_ref()
        .ok_or_else(|| ApiError::bad_request("action is required"))?;
    let data = state.org_fresh(&org).await?;
    let data = data.read();
    let model = data.model(None)?;
    let objects = Engine::new(model, &data.tuples).list_objects(&ListObjectsRequest {
        user: object(&body.subject, "subject")?,
        relation: action.name.clone(),
        object_type: body.resource.type_name.clone(),
        context: search_context(&body),
        contextual_tuples: Vec::new(),
    })?;
    let results: Vec<Value> = objects.iter().map(|o| split_typed(o)).collect();
    Ok(axum::Json(json!({ "results": results })))
}

/// Actions the subject may do on a resource: the resource type's relations (or the
/// organization's configured action list for the type) that Check allows.
pub async fn search_action(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    headers: HeaderMap,
    Json(body): Json<SearchBody>,
) -> ApiResult<impl IntoResponse> {
    let org = org_of(&caller, &headers)?;
    let obj = object(&body.resource, "resource")?;
    let user = object(&body.subject, "subject")?;
    let data = state.org_fresh(&org).await?;
    let data = data.read();
    let model = data.model(None)?;
    let candidates: Vec<String> = match data.settings.authzen.actions.get(&body.resource.type_name)
    {
        Some(list) => list.clone(),
        None => model
            .schema()
            .type_def(&body.resource.type_name)
            .map(|t| t.relations.keys().cloned().collect())
            .ok_or_else(|| {
                ApiError::from(warden_engine::EngineError::TypeNotFound(
                    body.resource.type_name.clone(),
                ))
            })?,
    };
    let engine = Engine::new(model, &data.tuples);
    let ctx = search_context(&body);
    let tuples = links(&data.settings, &body.resource.type_name, &obj);
    let mut results = Vec::new();
    for name in candidates {
        let req = CheckRequest {
            user: user.clone(),
            relation: name.clone(),
            object: obj.clone(),
            context: ctx.clone(),
            contextual_tuples: tuples.clone(),
            explain: false,
        };
        if engine.check(&req).is_ok_and(|r| r.allowed) {
            results.push(json!({ "name": name }));
        }
    }
    Ok(axum::Json(json!({ "results": results })))
}

/// `GET /.well-known/authzen-configuration` (PDP metadata).
pub async fn configuration(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    let base = match &state.limits.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .filter(|h| {
                    h.chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
                })
                .unwrap_or("localhost");
            format!("http://{host}")
        }
    };
    axum::Json(json!({
        "policy_decision_point": base,
        "access_evaluation_endpoint": format!("{base}/access/v1/evaluation"),
        "access_evaluations_endpoint": format!("{base}/access/v1/evaluations"),
        "search_subject_endpoint": format!("{base}/access/v1/search/subject"),
        "search_resource_endpoint": format!("{base}/access/v1/search/resource"),
        "search_action_endpoint": format!("{base}/access/v1/search/action"),
    }))
}
