//! The SCIM 2.0 service provider (RFC 7644) under `/scim/v2/{org}/`: `Users`, `Groups`
//! and the discovery endpoints, for identity providers (Okta, Microsoft Entra ID, ...)
//! holding a `directory` key of the organization.
//!
//! SCIM users and groups are Warden users and groups (the SCIM `id` is the principal
//! id); group members are `group:<id>#member` tuples. Every write is one revision, made
//! with [`warden_storage::Db::scim_write`]: the resource, its principal, the membership
//! tuples and, for a leaver, every revocation together. What the request means (schema,
//! filters, PATCH) is decided in `warden-scim`; this module is the glue.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use warden_scim::filter::{Filter, Op, cmp_keys, sort_key};
use warden_scim::resource::{normalize, parse_attribute_list, project, take_password};
use warden_scim::schema::{self, Kind};
use warden_scim::{ScimError, patch};
use warden_storage::{
    Leaver, Principal, PrincipalKind, Role, ScimRow, ScimWrite, Status, StorageError,
};

use crate::audit::Meta;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Most resources one page returns (`count` is clamped to it).
const MAX_RESULTS: usize = 1000;
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
const SCIM_JSON: &str = "application/scim+json";

/// A SCIM error as a response.
pub struct Scim(ScimError);

impl From<ScimError> for Scim {
    fn from(e: ScimError) -> Self {
        Scim(e)
    }
}

impl From<ApiError> for Scim {
    fn from(e: ApiError) -> Self {
        Scim(ScimError::new(e.status.as_u16(), None, e.message))
    }
}

impl From<StorageError> for Scim {
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::Conflict { what, name } => Scim(ScimError::uniqueness(format!(
                "{what} `{name}` is already taken"
            ))),
            StorageError::Stale { .. } => Scim(ScimError::new(412, None, e.to_string())),
            other => ApiError::from(other).into(),
        }
    }
}

impl IntoResponse for Scim {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::BAD_REQUEST);
        let mut res = (status, self.0.body().to_string()).into_response();
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
        if status == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"warden-scim\""),
            );
        }
        res
    }
}

type ScimResult<T> = Result<T, Scim>;

/// The server's request body limit, announced in `/ServiceProviderConfig`.
#[derive(Clone, Copy)]
struct MaxPayload(usize);

pub fn router(max_body_bytes: usize) -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/scim/v2/{org}/ServiceProviderConfig",
            get(service_provider_config),
        )
        .route("/scim/v2/{org}/ResourceTypes", get(resource_types))
        .route("/scim/v2/{org}/ResourceTypes/{name}", get(resource_type))
        .route("/scim/v2/{org}/Schemas", get(schemas))
        .route("/scim/v2/{org}/Schemas/{id}", get(schema_one))
        .route("/scim/v2/{org}/Users", get(list_users).post(create_user))
        .route(
            "/scim/v2/{org}/Users/{id}",
            get(get_user)
                .put(replace_user)
                .patch(patch_user)
                .delete(delete_user),
        )
        .route("/scim/v2/{org}/Groups", get(list_groups).post(create_group))
        .route(
            "/scim/v2/{org}/Groups/{id}",
            get(get_group)
                .put(replace_group)
                .patch(patch_group)
                .delete(delete_group),
        )
        .route(
            "/scim/v2/{org}/Users/.search",
            axum::routing::post(search_users),
        )
        .route(
            "/scim/v2/{org}/Groups/.search",
            axum::routing::post(search_groups),
        )
        .route("/scim/v2/{org}/.search", axum::routing::post(search_all))
        .route("/scim/v2/{org}", get(scim_root))
        .route("/scim/v2/{org}/{*rest}", axum::routing::any(scim_unknown))
        .layer(axum::Extension(MaxPayload(max_body_bytes)))
}

/// The caller must hold a `directory` key of `org`, and `org` must exist.
async fn gate(state: &AppState, caller: Result<Caller, ApiError>, org: &str) -> ScimResult<Caller> {
    let caller = caller?;
    caller.require(org, Role::Directory)?;
    state.org_fresh(org).await?;
    Ok(caller)
}

fn base(state: &AppState, org: &str) -> String {
    format!("{}/scim/v2/{org}", state.issuer.trim_end_matches('/'))
}

fn respond(status: StatusCode, body: Value, etag: Option<i64>, location: Option<&str>) -> Response {
    let mut res = (status, body.to_string()).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON));
    if let Some(rev) = etag
        && let Ok(v) = HeaderValue::from_str(&etag_of(rev))
    {
        h.insert(header::ETAG, v);
    }
    if let Some(l) = location
        && let Ok(v) = HeaderValue::from_str(l)
    {
        h.insert(header::LOCATION, v);
    }
    res
}

fn etag_of(revision: i64) -> String {
    format!("W/\"{revision}\"")
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The revision an `If-Match` header allows the write at: `None` without the header
/// or with `*`; 412 when no tag names the current one.
fn if_match(headers: &HeaderMap, current: i64) -> ScimResult<Option<i64>> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let v = v.to_str().unwrap_or("");
    if v.trim() == "*" {
        return Ok(None);
    }
    let wanted = etag_of(current);
    let hit = v
        .split(',')
        .map(str::trim)
        .any(|t| t == wanted || t == wanted.trim_start_matches("W/"));
    if hit {
        Ok(Some(current))
    } else {
        Err(Scim(ScimError::new(
            412,
            None,
            format!("the resource is at version {wanted}"),
        )))
    }
}

fn not_modified(headers: &HeaderMap, current: i64) -> bool {
    let wanted = etag_of(current);
    headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').map(str::trim).any(|t| t == "*" || t == wanted))
}

fn parse_body(body: Result<Bytes, BytesRejection>) -> ScimResult<Value> {
    let bytes = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Scim(ScimError::new(
                413,
                Some("tooLarge"),
                "request body too large",
            ))
        } else {
            Scim(ScimError::invalid_syntax(format!(
                "cannot read the body: {e}"
            )))
        }
    })?;
    if crate::json::has_nul(&bytes) {
        return Err(Scim(ScimError::invalid_syntax(crate::json::NUL_REFUSED)));
    }
    serde_json::from_slice(&bytes)
        .map_err(|e| Scim(ScimError::invalid_syntax(format!("invalid JSON: {e}"))))
}

// ---- discovery ----

async fn service_provider_config(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path(org): Path<String>,
    axum::Extension(MaxPayload(max_payload)): axum::Extension<MaxPayload>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    Ok(respond(
        StatusCode::OK,
        schema::service_provider_config(&base(&state, &org), MAX_RESULTS, max_payload),
        None,
        None,
    ))
}

fn list_of(items: Vec<Value>) -> Value {
    json!({
        "schemas": [LIST_SCHEMA],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    })
}

async fn resource_types(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path(org): Path<String>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    let b = base(&state, &org);
    let items = [Kind::User, Kind::Group]
        .iter()
        .map(|k| k.resource_type_json(&b))
        .collect();
    Ok(respond(StatusCode::OK, list_of(items), None, None))
}

async fn resource_type(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path((org, name)): Path<(String, String)>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    let kind = match name.as_str() {
        "User" => Kind::User,
        "Group" => Kind::Group,
        _ => return Err(ScimError::not_found(format!("no resource type `{name}`")).into()),
    };
    Ok(respond(
        StatusCode::OK,
        kind.resource_type_json(&base(&state, &org)),
        None,
        None,
    ))
}

async fn schemas(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path(org): Path<String>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    let b = base(&state, &org);
    let items = schema::all().iter().map(|s| s.to_json(&b)).collect();
    Ok(respond(StatusCode::OK, list_of(items), None, None))
}

async fn schema_one(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path((org, id)): Path<(String, String)>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    let s = schema::all()
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| ScimError::not_found(format!("no schema `{id}`")))?;
    Ok(respond(
        StatusCode::OK,
        s.to_json(&base(&state, &org)),
        None,
        None,
    ))
}

async fn scim_root(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path(org): Path<String>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    Err(ScimError::not_found(
        "see /ServiceProviderConfig, /ResourceTypes, /Schemas, /Users, /Groups",
    )
    .into())
}

async fn scim_unknown(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path((org, rest)): Path<(String, String)>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    Err(ScimError::not_found(format!("no SCIM endpoint `/{rest}`")).into())
}

// ---- reading ----

/// Everything needed to show resources in full: group names and memberships.
struct Directory {
    /// Group id -> displayName.
    group_names: HashMap<String, String>,
    /// Group id -> member subjects.
    members: HashMap<String, Vec<String>>,
    /// Subject -> group ids it is a direct member of.
    groups_of: HashMap<String, Vec<String>>,
}

impl Directory {
    /// Only what one resource needs: a user's groups (and their names), or a
    /// group's members.
    async fn for_one(state: &AppState, org: &str, kind: Kind, id: &str) -> ScimResult<Directory> {
        let mut dir = Directory {
            group_names: HashMap::new(),
            members: HashMap::new(),
            groups_of: HashMap::new(),
        };
        match kind {
            Kind::User => {
                let subject = format!("user:{id}");
                let groups = state.db.groups_of(org, &subject).await?;
                for g in &groups {
                    if let Some(row) = state.db.scim_get(org, "Group", g).await? {
                        let doc: Value = serde_json::from_str(&row.doc).unwrap_or_default();
                        let name = doc["displayName"].as_str().unwrap_or_default().to_string();
                        dir.group_names.insert(g.clone(), name);
                    }
                }
                dir.groups_of.insert(subject, groups);
            }
            Kind::Group => {
                let members = state.db.group_members(org, Some(id)).await?;
                dir.members.insert(
                    id.to_string(),
                    members.into_iter().map(|(_, s)| s).collect(),
                );
            }
        }
        Ok(dir)
    }

    /// Everything, for queries over many resources.
    async fn load(state: &AppState, org: &str) -> ScimResult<Directory> {
        let mut group_names = HashMap::new();
        for g in state.db.scim_list(org, "Group", None).await? {
            let doc: Value = serde_json::from_str(&g.doc).unwrap_or_default();
            let name = doc["displayName"].as_str().unwrap_or_default().to_string();
            group_names.insert(g.id, name);
        }
        let mut members: HashMap<String, Vec<String>> = HashMap::new();
        let mut groups_of: HashMap<String, Vec<String>> = HashMap::new();
        for (g, s) in state.db.group_members(org, None).await? {
            groups_of.entry(s.clone()).or_default().push(g.clone());
            members.entry(g).or_default().push(s);
        }
        Ok(Directory {
            group_names,
            members,
            groups_of,
        })
    }
}

/// The resource as served: the stored document plus id, meta and the derived
/// `groups` (users) or `members` (groups).
fn full(kind: Kind, b: &str, row: &ScimRow, dir: &Directory) -> Value {
    let mut v: Value = serde_json::from_str(&row.doc).unwrap_or_else(|_| json!({}));
    let location = format!("{b}/{}/{}", kind.endpoint(), row.id);
    v["id"] = json!(row.id);
    v["meta"] = json!({
        "resourceType": kind.name(),
        "created": time(row.created_at),
        "lastModified": time(row.updated_at),
        "location": location,
        "version": etag_of(row.revision),
    });
    match kind {
        Kind::User => {
            let groups: Vec<Value> = dir
                .groups_of
                .get(&format!("user:{}", row.id))
                .into_iter()
                .flatten()
                .filter_map(|g| {
                    dir.group_names.get(g).map(|name| {
                        json!({"value": g, "$ref": format!("{b}/Groups/{g}"), "display": name, "type": "direct"})
                    })
                })
                .collect();
            if !groups.is_empty() {
                v["groups"] = Value::Array(groups);
            }
        }
        Kind::Group => {
            let members: Vec<Value> = dir
                .members
                .get(&row.id)
                .into_iter()
                .flatten()
                .filter_map(|s| member_of_subject(b, s))
                .collect();
            if !members.is_empty() {
                v["members"] = Value::Array(members);
            }
        }
    }
    v
}

/// A member tuple's subject as a SCIM member.
fn member_of_subject(b: &str, subject: &str) -> Option<Value> {
    if let Some(u) = subject.strip_prefix("user:") {
        return Some(json!({"value": u, "$ref": format!("{b}/Users/{u}"), "type": "User"}));
    }
    let g = subject.strip_prefix("group:")?.strip_suffix("#member")?;
    Some(json!({"value": g, "$ref": format!("{b}/Groups/{g}"), "type": "Group"}))
}

/// `attributes` and `excludedAttributes` of a request.
fn projection(
    kind: Kind,
    q: &HashMap<String, String>,
) -> ScimResult<(
    Vec<warden_scim::filter::AttrPath>,
    Vec<warden_scim::filter::AttrPath>,
)> {
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let a = get("attributes")
        .map(|t| parse_attribute_list(kind, t))
        .transpose()?
        .unwrap_or_default();
    let x = get("excludedAttributes")
        .map(|t| parse_attribute_list(kind, t))
        .transpose()?
        .unwrap_or_default();
    Ok((a, x))
}

/// A query (`GET` parameters or a `.search` body) over one or more resource types.
async fn list(
    state: &AppState,
    org: &str,
    kinds: &[Kind],
    q: &HashMap<String, String>,
) -> ScimResult<Response> {
    let get = |k: &str| {
        q.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    };
    let descending = match get("sortOrder") {
        None => false,
        Some(o) if o.eq_ignore_ascii_case("ascending") => false,
        Some(o) if o.eq_ignore_ascii_case("descending") => true,
        Some(o) => {
            return Err(ScimError::invalid_value(format!(
                "sortOrder is ascending or descending, not `{o}`"
            ))
            .into());
        }
    };
    let number = |k: &str, default: i64| -> ScimResult<i64> {
        match get(k) {
            None => Ok(default),
            Some(v) => v
                .trim()
                .parse::<i64>()
                .map_err(|_| Scim(ScimError::invalid_value(format!("{k} is an integer")))),
        }
    };
    let start = number("startIndex", 1)?.max(1) as usize;
    let count = number("count", MAX_RESULTS as i64)?.clamp(0, MAX_RESULTS as i64) as usize;
    let dir = Directory::load(state, org).await?;
    let b = base(state, org);
    // (sort key, resource as returned) of every match, across the kinds asked.
    let mut found: Vec<(Option<Value>, Value)> = Vec::new();
    let mut first_error = None;
    for &kind in kinds {
        let parsed = (|| -> ScimResult<_> {
            let filter = get("filter").map(|f| Filter::parse(kind, f)).transpose()?;
            let (attrs, excluded) = projection(kind, q)?;
            let sort = get("sortBy")
                .map(|s| {
                    warden_scim::filter::resolve(kind, s).ok_or_else(|| {
                        ScimError::invalid_value(format!("sortBy: unknown attribute `{s}`"))
                    })
                })
                .transpose()?;
            Ok((filter, attrs, excluded, sort))
        })();
        // A search across types skips a type the filter cannot apply to.
        let (filter, attrs, excluded, sort) = match parsed {
            Ok(p) => p,
            Err(e) if kinds.len() > 1 => {
                first_error.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        // `userName eq "..."` (users) and `displayName eq "..."` (groups), what
        // identity providers ask before creating, read one index entry, not all.
        let name_key = match &filter {
            Some(Filter::Compare(p, Op::Eq, Value::String(v)))
                if p.ext.is_none()
                    && p.sub.is_none()
                    && p.attr.name
                        == if kind == Kind::User {
                            "userName"
                        } else {
                            "displayName"
                        } =>
            {
                Some(v.to_lowercase())
            }
            _ => None,
        };
        for r in state
            .db
            .scim_list(org, kind.name(), name_key.as_deref())
            .await?
        {
            let v = full(kind, &b, &r, &dir);
            if filter.as_ref().is_none_or(|f| f.matches(&v)) {
                let key = sort.as_ref().and_then(|p| sort_key(&v, p));
                found.push((key, project(kind, &v, &attrs, &excluded)));
            }
        }
    }
    if found.is_empty()
        && let Some(e) = first_error
        && kinds.len() > 1
        && get("filter").is_some_and(|f| kinds.iter().all(|k| Filter::parse(*k, f).is_err()))
    {
        return Err(e);
    }
    if get("sortBy").is_some() {
        found.sort_by(|x, y| {
            let o = cmp_keys(&x.0, &y.0);
            if descending { o.reverse() } else { o }
        });
    }
    let total = found.len();
    let page: Vec<Value> = found
        .into_iter()
        .skip(start - 1)
        .take(count)
        .map(|(_, v)| v)
        .collect();
    Ok(respond(
        StatusCode::OK,
        json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
        None,
        None,
    ))
}

/// A `.search` body (RFC 7644 §3.4.3) as query parameters.
fn search_params(body: Result<Bytes, BytesRejection>) -> ScimResult<HashMap<String, String>> {
    const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
    let body = parse_body(body)?;
    let Value::Object(o) = body else {
        return Err(ScimError::invalid_syntax("a search request is a JSON object").into());
    };
    let mut q = HashMap::new();
    for (k, v) in o {
        let text = match (k.as_str(), &v) {
            ("schemas", Value::Array(a)) if a.iter().any(|s| s.as_str() == Some(SEARCH)) => {
                continue;
            }
            ("schemas", _) => {
                return Err(
                    ScimError::invalid_syntax(format!("`schemas` must be [\"{SEARCH}\"]")).into(),
                );
            }
            ("attributes" | "excludedAttributes", Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str().map(str::to_string).ok_or_else(|| {
                        ScimError::invalid_value(format!("`{k}` lists attribute names"))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            ("filter" | "sortBy" | "sortOrder", Value::String(s)) => s.clone(),
            ("startIndex" | "count", Value::Number(n)) => n.to_string(),
            _ => {
                return Err(ScimError::invalid_syntax(format!(
                    "unexpected `{k}` in a search request"
                ))
                .into());
            }
        };
        q.insert(k, text);
    }
    Ok(q)
}

macro_rules! search_handler {
    ($name:ident, $kinds:expr) => {
        async fn $name(
            State(state): State<Arc<AppState>>,
            caller: Result<Caller, ApiError>,
            Path(org): Path<String>,
            body: Result<Bytes, BytesRejection>,
        ) -> ScimResult<Response> {
            gate(&state, caller, &org).await?;
            let q = search_params(body)?;
            list(&state, &org, $kinds, &q).await
        }
    };
}

search_handler!(search_users, &[Kind::User]);
search_handler!(search_groups, &[Kind::Group]);
search_handler!(search_all, &[Kind::User, Kind::Group]);

async fn list_users(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    list(&state, &org, &[Kind::User], &q).await
}

async fn list_groups(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path(org): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    list(&state, &org, &[Kind::Group], &q).await
}

async fn existing(state: &AppState, org: &str, kind: Kind, id: &str) -> ScimResult<ScimRow> {
    state
        .db
        .scim_get(org, kind.name(), id)
        .await?
        .ok_or_else(|| {
            Scim(ScimError::not_found(format!(
                "{} `{id}` not found",
                kind.name()
            )))
        })
}

async fn get_one(
    state: &AppState,
    org: &str,
    kind: Kind,
    id: &str,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> ScimResult<Response> {
    let row = existing(state, org, kind, id).await?;
    if not_modified(headers, row.revision) {
        let mut res = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(&etag_of(row.revision)) {
            res.headers_mut().insert(header::ETAG, v);
        }
        return Ok(res);
    }
    let (attrs, excluded) = projection(kind, q)?;
    let dir = Directory::for_one(state, org, kind, id).await?;
    let v = full(kind, &base(state, org), &row, &dir);
    let mut shown = project(kind, &v, &attrs, &excluded);
    // A single resource always carries its `meta` (with the version its ETag header
    // names), whatever `attributes` asked for.
    shown["meta"] = v["meta"].clone();
    Ok(respond(StatusCode::OK, shown, Some(row.revision), None))
}

async fn get_user(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    get_one(&state, &org, Kind::User, &id, &headers, &q).await
}

async fn get_group(
    State(state): State<Arc<AppState>>,
    caller: Result<Caller, ApiError>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> ScimResult<Response> {
    gate(&state, caller, &org).await?;
    get_one(&state, &org, Kind::Group, &id, &headers, &q).await
}

// ---- writing ----

/// A write as the handlers describe it.
struct Change<'a> {
    kind: Kind,
    id: String,
    /// The previous stored row (`None` on create).
    old: Option<ScimRow>,
    /// The new document (canonical, members included for groups); `None` deletes.
    doc: Option<Value>,
    expect: Option<i64>,
    /// `create`, `replace`, `patch` or `delete`.
    verb: &'a str,
}

/// The admin API's password hashing, its refusal said the SCIM way.
fn hash_password(password: &str) -> ScimResult<String> {
    super::principals::hash_password(password).map_err(|e| {
        Scim(if e.status == StatusCode::BAD_REQUEST {
            ScimError::invalid_value(e.message)
        } else {
            ScimError::new(e.status.as_u16(), None, e.message)
        })
    })
}

/// The subjects a group document's `members` name, checked against the
/// organization's principals.
fn member_subjects(
    state: &AppState,
    org: &str,
    group_id: &str,
    doc: &Value,
) -> ScimResult<Vec<String>> {
    let data = state.org(org)?;
    let d = data.read();
    let live = |k: PrincipalKind, id: &str| {
        d.principals
            .get(&(k, id.to_string()))
            .is_some_and(|p| p.status != Status::Deprovisioned)
    };
    let mut out = Vec::new();
    for m in doc
        .get("members")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = m.get("value").and_then(Value::as_str) else {
            return Err(ScimError::invalid_value("every member needs a `value` (its id)").into());
        };
        let ty = m.get("type").and_then(Value::as_str);
        let as_user =
            ty.is_none_or(|t| t.eq_ignore_ascii_case("User")) && live(PrincipalKind::User, id);
        let as_group = !as_user
            && ty.is_none_or(|t| t.eq_ignore_ascii_case("Group"))
            && live(PrincipalKind::Group, id);
        let subject = if as_user {
            format!("user:{id}")
        } else if as_group {
            if id == group_id {
                return Err(ScimError::invalid_value("a group cannot be its own member").into());
            }
            format!("group:{id}#member")
        } else {
            return Err(ScimError::invalid_value(format!(
                "member `{id}` is not a user or group of this organization"
            ))
            .into());
        };
        if !out.contains(&subject) {
            out.push(subject);
        }
    }
    Ok(out)
}

/// Who writes: the request's server state, organization, caller and audit facts.
struct Ctx<'a> {
    state: &'a AppState,
    org: &'a str,
    caller: &'a Caller,
    meta: &'a Meta,
}

async fn commit(cx: &Ctx<'_>, c: Change<'_>) -> ScimResult<Response> {
    let (state, org, caller, meta) = (cx.state, cx.org, cx.caller, cx.meta);
    let kind = c.kind;
    let data = state.org(org)?;
    let pkind = match kind {
        Kind::User => PrincipalKind::User,
        Kind::Group => PrincipalKind::Group,
    };
    let previous: Option<Principal> = data.read().principals.get(&(pkind, c.id.clone())).cloned();
    let suspend_owned_agents = data.read().settings.directory.suspend_agents_of_leavers;
    let mut doc = c.doc;
    let mut password_hash = None;
    if let Some(d) = doc.as_mut()
        && let Some(p) = take_password(d)
    {
        password_hash = Some(hash_password(&p)?);
    }
    let name = |d: &Value, attr: &str| {
        d.get(attr)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (name_key, display, external_id) = match &doc {
        Some(d) => {
            let n = match kind {
                Kind::User => name(d, "userName"),
                Kind::Group => name(d, "displayName"),
            };
            let display = match name(d, "displayName") {
                s if s.is_empty() => n.clone(),
                s => s,
            };
            (
                n.to_lowercase(),
                display,
                d.get("externalId")
                    .and_then(Value::as_str)
                    .map(str::to_string),
            )
        }
        None => (
            String::new(),
            previous
                .as_ref()
                .map(|p| p.display_name.clone())
                .unwrap_or_default(),
            None,
        ),
    };
    // Users: active false (or deletion) is a departure; groups: membership diff.
    let was_active = previous
        .as_ref()
        .is_some_and(|p| p.status == Status::Active);
    // The directory says `active` explicitly or not at all. Without it, a status an
    // administrator set (a suspension) stands; a deprovisioned user never comes back.
    let said_active = doc
        .as_ref()
        .and_then(|d| d.get("active"))
        .and_then(Value::as_bool);
    let was_said_active = c
        .old
        .as_ref()
        .and_then(|r| serde_json::from_str::<Value>(&r.doc).ok())
        .and_then(|d| d.get("active").and_then(Value::as_bool));
    let status = match (&doc, kind, said_active) {
        (_, Kind::Group, _) => Status::Active,
        (None, Kind::User, _) => Status::Deprovisioned,
        _ if previous
            .as_ref()
            .is_some_and(|p| p.status == Status::Deprovisioned) =>
        {
            Status::Deprovisioned
        }
        (Some(_), Kind::User, Some(false)) => Status::Suspended,
        (Some(_), Kind::User, Some(true)) => Status::Active,
        (Some(_), Kind::User, None) => previous.as_ref().map_or(Status::Active, |p| p.status),
    };
    // A departure: the user stops being active, or the directory newly says so (an
    // administrator may have suspended them first), or is deleted.
    let leaver = kind == Kind::User
        && status != Status::Active
        && (was_active
            || doc.is_none()
            || (said_active == Some(false) && was_said_active != Some(false)));
    let mut stored_doc = doc.clone();
    let members = match (kind, &doc) {
        (Kind::Group, Some(d)) => Some(member_subjects(state, org, &c.id, d)?),
        (Kind::Group, None) => Some(Vec::new()),
        (Kind::User, _) => None,
    };
    if let Some(d) = stored_doc.as_mut().and_then(Value::as_object_mut) {
        // Members live in tuples, not in the stored document.
        d.remove("members");
    }
    let principal = Principal {
        kind: pkind,
        id: c.id.clone(),
        display_name: display,
        owner: None,
        purpose: None,
        allowed_scopes: Vec::new(),
        status: if kind == Kind::Group {
            Status::Active
        } else {
            status
        },
        // An expiry set by an administrator stands.
        expires_at: previous.as_ref().and_then(|p| p.expires_at),
        created_at: 0,
        updated_at: 0,
        redirect_uris: Vec::new(),
        tokens_not_before: None,
        flag: None,
    };
    let write = ScimWrite {
        kind: kind.name(),
        id: c.id.clone(),
        doc: stored_doc.as_ref().map(Value::to_string),
        name_key,
        external_id,
        expect_revision: c.expect,
        principal,
        password_hash,
        members,
        leave_groups: kind == Kind::Group && doc.is_none(),
        leaver: leaver.then_some(Leaver {
            suspend_owned_agents,
            remove_memberships: true,
        }),
    };
    let written = state.db.scim_write(org, &write).await?;
    state.db.notify().await;
    state.wait_for(written.revision).await?;

    // The audit record: what changed and, for people, which lifecycle event it was.
    let lifecycle = match (kind, c.verb, leaver) {
        (Kind::User, _, true) => Some("leaver"),
        (Kind::User, "create", _) => Some("joiner"),
        (Kind::User, _, false) if status == Status::Active && !was_active && c.old.is_some() => {
            Some("rejoiner")
        }
        (Kind::Group, _, _)
            if !written.members_added.is_empty() || !written.members_removed.is_empty() =>
        {
            Some("mover")
        }
        _ => None,
    };
    let mut rec = meta.change(
        org,
        caller,
        &format!("scim.{}.{}", kind.name().to_lowercase(), c.verb),
    );
    rec.resource = Some(format!("{}:{}", pkind.as_str(), c.id));
    if kind == Kind::User {
        rec.user = Some(format!("user:{}", c.id));
    }
    rec.revision = Some(written.revision);
    rec.detail = json!({
        "lifecycle": lifecycle,
        "status": if kind == Kind::User { Some(status.as_str()) } else { None },
        "members_added": written.members_added,
        "members_removed": written.members_removed,
        "members_skipped_inactive": written.members_skipped,
        "leaver": written.leaver,
        "password_set": write.password_hash.is_some(),
    });
    crate::audit::change_recorded(&state.audit, rec).await?;
    if leaver {
        tracing::info!(org, user = %c.id, "directory: user left; tokens, sessions and memberships revoked");
    }

    if doc.is_none() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let row = existing(state, org, kind, &c.id).await?;
    let dir = Directory::for_one(state, org, kind, &c.id).await?;
    let b = base(state, org);
    let v = full(kind, &b, &row, &dir);
    let location = format!("{b}/{}/{}", kind.endpoint(), c.id);
    let status = if c.old.is_none() {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok(respond(
        status,
        project(kind, &v, &[], &[]),
        Some(row.revision),
        (status == StatusCode::CREATED).then_some(location.as_str()),
    ))
}

async fn create(
    cx: &Ctx<'_>,
    kind: Kind,
    body: Result<Bytes, BytesRejection>,
) -> ScimResult<Response> {
    let body = parse_body(body)?;
    let doc = normalize(kind, &body)?;
    let id = uuid::Uuid::now_v7().to_string();
    commit(
        cx,
        Change {
            kind,
            id,
            old: None,
            doc: Some(doc),
            expect: Some(0),
            verb: "create",
        },
    )
    .await
}

async fn replace(
    cx: &Ctx<'_>,
    kind: Kind,
    id: String,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ScimResult<Response> {
    let (state, org) = (cx.state, cx.org);
    let body = parse_body(body)?;
    let old = existing(state, org, kind, &id).await?;
    let expect = if_match(headers, old.revision)?;
    if let Some(sent) = body.get("id").and_then(Value::as_str)
        && sent != id
    {
        return Err(ScimError::mutability("`id` cannot change").into());
    }
    let doc = normalize(kind, &body)?;
    commit(
        cx,
        Change {
            kind,
            id,
            old: Some(old),
            doc: Some(doc),
            expect,
            verb: "replace",
        },
    )
    .await
}

async fn patch_one(
    cx: &Ctx<'_>,
    kind: Kind,
    id: String,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ScimResult<Response> {
    let (state, org) = (cx.state, cx.org);
    let body = parse_body(body)?;
    let old = existing(state, org, kind, &id).await?;
    let expect = if_match(headers, old.revision)?;
    let old_revision = old.revision;
    let mut current: Value = serde_json::from_str(&old.doc).unwrap_or_else(|_| json!({}));
    if kind == Kind::Group {
        let members: Vec<Value> = state
            .db
            .group_members(org, Some(&id))
            .await?
            .iter()
            .filter_map(|(_, s)| member_of_subject("", s))
            .map(|mut m| {
                if let Some(o) = m.as_object_mut() {
                    o.remove("$ref");
                }
                m
            })
            .collect();
        if !members.is_empty() {
            current["members"] = Value::Array(members);
        }
    }
    let doc = patch::apply(kind, &current, &id, &body)?;
    commit(
        cx,
        Change {
            kind,
            id,
            old: Some(old),
            doc: Some(doc),
            // Conditional on the version read even without `If-Match`: a write that
            // landed in between is never overwritten (the client gets 412 and retries).
            expect: Some(expect.unwrap_or(old_revision)),
            verb: "patch",
        },
    )
    .await
}

async fn remove(cx: &Ctx<'_>, kind: Kind, id: String, headers: &HeaderMap) -> ScimResult<Response> {
    let (state, org) = (cx.state, cx.org);
    let old = existing(state, org, kind, &id).await?;
    let expect = if_match(headers, old.revision)?;
    commit(
        cx,
        Change {
            kind,
            id,
            old: Some(old),
            doc: None,
            expect,
            verb: "delete",
        },
    )
    .await
}

macro_rules! write_handlers {
    ($kind:expr, $create:ident, $replace:ident, $patch:ident, $delete:ident) => {
        async fn $create(
            State(state): State<Arc<AppState>>,
            caller: Result<Caller, ApiError>,
            Path(org): Path<String>,
            meta: Meta,
            body: Result<Bytes, BytesRejection>,
        ) -> ScimResult<Response> {
            let caller = gate(&state, caller, &org).await?;
            let cx = Ctx {
                state: &state,
                org: &org,
                caller: &caller,
                meta: &meta,
            };
            create(&cx, $kind, body).await
        }

        async fn $replace(
            State(state): State<Arc<AppState>>,
            caller: Result<Caller, ApiError>,
            Path((org, id)): Path<(String, String)>,
            meta: Meta,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> ScimResult<Response> {
            let caller = gate(&state, caller, &org).await?;
            let cx = Ctx {
                state: &state,
                org: &org,
                caller: &caller,
                meta: &meta,
            };
            replace(&cx, $kind, id, &headers, body).await
        }

        async fn $patch(
            State(state): State<Arc<AppState>>,
            caller: Result<Caller, ApiError>,
            Path((org, id)): Path<(String, String)>,
            meta: Meta,
            headers: HeaderMap,
            body: Result<Bytes, BytesRejection>,
        ) -> ScimResult<Response> {
            let caller = gate(&state, caller, &org).await?;
            let cx = Ctx {
                state: &state,
                org: &org,
                caller: &caller,
                meta: &meta,
            };
            patch_one(&cx, $kind, id, &headers, body).await
        }

        async fn $delete(
            State(state): State<Arc<AppState>>,
            caller: Result<Caller, ApiError>,
            Path((org, id)): Path<(String, String)>,
            meta: Meta,
            headers: HeaderMap,
        ) -> ScimResult<Response> {
            let caller = gate(&state, caller, &org).await?;
            let cx = Ctx {
                state: &state,
                org: &org,
                caller: &caller,
                meta: &meta,
            };
            remove(&cx, $kind, id, &headers).await
        }
    };
}

write_handlers!(
    Kind::User,
    create_user,
    replace_user,
    patch_user,
    delete_user
);
write_handlers!(
    Kind::Group,
    create_group,
    replace_group,
    patch_group,
    delete_group
);
