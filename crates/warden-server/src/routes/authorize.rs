//! The delegated decision: may this agent, acting for this user (through this chain of
//! actors), do this action on this resource, right now?
//!
//! Allowed only when every check holds, each reported in `reasons`:
//! the principals exist and are usable (active, not expired); a scope the agent may use
//! (narrowed to the request's `scopes` when given) grants the (type, relation) in the
//! organization's catalog; and the agent, the user and every further actor each hold
//! the relation on the resource (conditions evaluated on the request context). The
//! effective permission is the intersection; it can never be wider than any part.
//!
//! This is the trusted form, for enforcement points that already know the principals;
//! the token form (the agent's OAuth access token) builds on it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use warden_engine::{CheckRequest, Context, Engine, TupleKey};
use warden_storage::{PrincipalKind, Role};

use super::{Consistency, snapshot};
use crate::audit::Meta;
use crate::auth::{Caller, OrgGate};
use crate::error::{ApiError, ApiResult};
use crate::json::Json;
use crate::state::{AppState, OrgData};

#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthorizeBody {
    /// The agent's access token: the principals and scopes come from it (and then
    /// `agent`, `on_behalf_of`, `actors` and `scopes` must be absent).
    #[serde(default)]
    token: Option<String>,
    /// With `token`: the audience the token must carry (the resource server's URI).
    #[serde(default)]
    audience: Option<String>,
    /// With a DPoP-bound token: the `DPoP` proof the client sent to the resource
    /// server, and that request's method and URL.
    #[serde(default)]
    dpop_proof: Option<String>,
    #[serde(default)]
    http_method: Option<String>,
    #[serde(default)]
    http_url: Option<String>,
    /// The agent's id (trusted form, without a token).
    #[serde(default)]
    agent: Option<String>,
    /// The user the agent acts for, if any.
    #[serde(default)]
    on_behalf_of: Option<String>,
    /// Further agents in the delegation chain (sub-agents), outermost first.
    #[serde(default)]
    actors: Vec<String>,
    /// Scopes the caller holds (a token's); default: every scope the agent is allowed.
    #[serde(default)]
    scopes: Option<Vec<String>>,
    /// The action: a relation of the resource's type.
    relation: String,
    /// The resource, `type:id`.
    object: String,
    #[serde(default)]
    context: Context,
    #[serde(default)]
    contextual_tuples: Vec<TupleKey>,
    #[serde(default)]
    consistency: Option<Consistency>,
    /// When an earlier answer was `approval_required`: the approval a person granted.
    /// It is used up by this decision if it binds exactly this request.
    #[serde(default)]
    approval_id: Option<String>,
}

/// One check of the decision and its outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub check: &'static str,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    pub detail: Value,
}

/// The outcome of a delegated decision.
#[derive(Debug, Clone, Serialize)]
pub struct Decision {
    pub decision_id: String,
    pub allowed: bool,
    /// When an approval rule applies: `{approval_required, approval_id, approve_url,
    /// expires_at}` for a new request, or what became of the `approval_id` sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approval: Option<Value>,
    pub reasons: Vec<Reason>,
    pub revision: i64,
}

/// Evaluates every check (all of them, so the reasons are complete) on one snapshot.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    data: &OrgData,
    agent: &str,
    user: Option<&str>,
    actors: &[String],
    scopes: Option<&[String]>,
    relation: &str,
    object: &str,
    context: &Context,
    contextual_tuples: &[TupleKey],
    now_ms: i64,
) -> ApiResult<(bool, Vec<Reason>)> {
    let mut reasons = Vec::new();
    let mut push = |check, ok, subject: Option<String>, detail: Value| {
        reasons.push(Reason {
            check,
            ok,
            subject,
            detail,
        });
        ok
    };
    let mut allowed = true;
    // 1. Principals exist and are usable.
    let mut principals: Vec<(PrincipalKind, &str)> = vec![(PrincipalKind::Agent, agent)];
    principals.extend(user.map(|u| (PrincipalKind::User, u)));
    principals.extend(actors.iter().map(|a| (PrincipalKind::Agent, a.as_str())));
    for (kind, id) in &principals {
        let subject = format!("{}:{id}", kind.as_str());
        let (ok, detail) = match data.principals.get(&(*kind, id.to_string())) {
            None => (false, json!("does not exist")),
            Some(p) if p.status != warden_storage::Status::Active => {
                (false, json!(format!("is {}", p.status.as_str())))
            }
            Some(p) if !p.is_usable(now_ms) => (false, json!("has expired")),
            Some(_) => (true, json!("active")),
        };
        allowed &= push("principal_active", ok, Some(subject), detail);
    }
    // 2. A scope grants the (type, relation).
    let type_name = object.split_once(':').map_or("", |(t, _)| t);
    let agent_scopes: &[String] = data
        .principals
        .get(&(PrincipalKind::Agent, agent.to_string()))
        .map_or(&[], |p| p.allowed_scopes.as_slice());
    let usable: Vec<&String> = agent_scopes
        .iter()
        .filter(|s| scopes.is_none_or(|req| req.contains(s)))
        .collect();
    let granting = usable
        .iter()
        .find(|s| data.settings.scope_grants(s, type_name, relation));
    allowed &= push(
        "scope",
        granting.is_some(),
        None,
        match granting {
            Some(g) => json!(format!("granted by `{g}`")),
            None => json!(format!(
                "no scope among {usable:?} grants `{type_name}#{relation}`"
            )),
        },
    );
    // 3-5. The agent, the user and every actor hold the relation.
    let model = data.model(None)?;
    let engine = Engine::new(model, &data.tuples);
    let mut holders = vec![("agent_holds", format!("agent:{agent}"))];
    holders.extend(user.map(|u| ("user_holds", format!("user:{u}"))));
    holders.extend(actors.iter().map(|a| ("actor_holds", format!("agent:{a}"))));
    for (check, subject) in holders {
        let req = CheckRequest {
            user: subject.clone(),
            relation: relation.to_string(),
            object: object.to_string(),
            context: context.clone(),
            contextual_tuples: contextual_tuples.to_vec(),
            explain: true,
        };
        let (ok, detail) = match engine.check(&req) {
            Ok(r) if r.allowed => (true, json!({"path": r.path})),
            Ok(_) => (false, json!("no relationship grants it")),
            Err(e) => {
                let e: ApiError = e.into();
                (false, json!({ "error": e }))
            }
        };
        allowed &= push(check, ok, Some(subject), detail);
    }
    Ok((allowed, reasons))
}

pub async fn authorize(
    State(state): State<Arc<AppState>>,
    caller: Caller,
    Path(org): Path<String>,
    _gate: OrgGate,
    meta: Meta,
    Json(body): Json<AuthorizeBody>,
) -> ApiResult<impl IntoResponse> {
    caller.require(&org, Role::Checker)?;
    let mut token_reason = None;
    let mut token_ids: Option<(String, String)> = None;
    let (agent, user, actors, scopes) = match &body.token {
        Some(token) => {
            if body.agent.is_some()
                || body.on_behalf_of.is_some()
                || !body.actors.is_empty()
                || body.scopes.is_some()
            {
                return Err(ApiError::bad_request(
                    "with `token`, the principals and scopes come from the token",
                ));
            }
            let verified = super::oauth::verify_token(&state, token, body.audience.as_deref())
                .and_then(|c| match &c.cnf {
                    None => Ok((c, None)),
                    Some(cnf) => {
                        let proof = body.dpop_proof.as_deref().ok_or_else(|| {
                            warden_oauth::OAuthError::invalid_token(
                                "a DPoP-bound token needs the DPoP proof of the request",
                            )
                        })?;
                        let p = warden_oauth::dpop::verify_proof(
                            proof,
                            body.http_method.as_deref().unwrap_or(""),
                            body.http_url.as_deref().unwrap_or(""),
                            Some(token),
                            warden_oauth::now_secs(),
                        )?;
                        if p.jkt != cnf.jkt {
                            return Err(warden_oauth::OAuthError::invalid_token(
                                "the DPoP proof is signed by another key than the token's",
                            ));
                        }
                        Ok((c, Some(p)))
                    }
                });
            // A proof is accepted once.
            let verified = match verified {
                Ok((c, Some(p))) => {
                    let fresh = state
                        .db
                        .use_assertion(
                            &format!("dpop/{}", p.jti),
                            p.iat + 2 * warden_oauth::dpop::MAX_SKEW,
                        )
                        .await
                        .map_err(ApiError::internal)?;
                    if fresh {
                        Ok(c)
                    } else {
                        Err(warden_oauth::OAuthError::invalid_token(
                            "DPoP proof already used",
                        ))
                    }
                }
                Ok((c, None)) => Ok(c),
                Err(e) => Err(e),
            };
            match verified {
                Ok(claims) if claims.org != org => {
                    token_reason =
                        Some((false, json!("the token belongs to another organization")));
                    (String::new(), None, Vec::new(), Some(Vec::new()))
                }
                Ok(claims) => {
                    token_ids = Some((claims.jti.clone(), claims.client_id.clone()));
                    token_reason = Some((
                        true,
                        json!({"jti": claims.jti, "client_id": claims.client_id}),
                    ));
                    let id = |s: &str| {
                        s.split_once(':')
                            .map_or(String::new(), |(_, i)| i.to_string())
                    };
                    match &claims.act {
                        // Delegated: the subject is the user, the actors the agents.
                        Some(act) => {
                            let chain: Vec<String> = act.chain().iter().map(|s| id(s)).collect();
                            let (first, rest) = chain
                                .split_first()
                                .map_or((String::new(), Vec::new()), |(f, r)| {
                                    (f.clone(), r.to_vec())
                                });
                            (first, Some(id(&claims.sub)), rest, Some(claims.scopes()))
                        }
                        // A user's token obtained by the agent (authorization code): the
                        // client is the agent, the subject the user.
                        None if claims.sub.starts_with("user:") => (
                            id(&claims.client_id),
                            Some(id(&claims.sub)),
                            Vec::new(),
                            Some(claims.scopes()),
                        ),
                        None => (id(&claims.sub), None, Vec::new(), Some(claims.scopes())),
                    }
                }
                Err(e) => {
                    // A genuine token refused for its revocation (or a principal that
                    // left) still says which token it was.
                    let genuine = warden_oauth::token::verify(
                        token,
                        &state.oauth.read().published,
                        &state.issuer,
                        body.audience.as_deref(),
                    );
                    if let Ok(c) = genuine
                        && c.org == org
                    {
                        token_ids = Some((c.jti, c.client_id));
                    }
                    token_reason = Some((false, json!(e.description)));
                    (String::new(), None, Vec::new(), Some(Vec::new()))
                }
            }
        }
        None => (
            body.agent
                .clone()
                .ok_or_else(|| ApiError::bad_request("send `token`, or `agent` (trusted form)"))?,
            body.on_behalf_of.clone(),
            body.actors.clone(),
            body.scopes.clone(),
        ),
    };
    if actors.len() > 8 {
        return Err(ApiError::bad_request(
            "a delegation chain holds at most 8 actors",
        ));
    }
    let (data, revision) = snapshot(&state, &org, body.consistency).await?;
    let now = warden_storage::now_ms();
    let mut rec = meta.decision(&org, &caller, &body.relation, &body.object);
    // A token that failed names no principals: there is nothing further to check.
    let token_failed = matches!(token_reason, Some((false, _)));
    let (mut allowed, mut reasons) = {
        let data = data.read();
        rec.model_id = data.model_entry(None).ok().map(|(id, _)| id.to_string());
        if token_failed {
            (false, Vec::new())
        } else {
            decide(
                &data,
                &agent,
                user.as_deref(),
                &actors,
                scopes.as_deref(),
                &body.relation,
                &body.object,
                &body.context,
                &body.contextual_tuples,
                now,
            )?
        }
    };
    if let Some((ok, detail)) = token_reason {
        allowed &= ok;
        reasons.insert(
            0,
            Reason {
                check: "token_valid",
                ok,
                subject: None,
                detail,
            },
        );
    }
    // A person must agree where a rule says so (only for what is otherwise allowed).
    let mut approval = None;
    let rule = if allowed {
        super::approvals::matching_rule(&data.read(), &body.object, &body.relation, &body.context)
    } else {
        None
    };
    if let Some(rule) = rule {
        let req = super::approvals::Request {
            org: &org,
            agent: &agent,
            user: user.as_deref(),
            actors: &actors,
            relation: &body.relation,
            object: &body.object,
            context: &body.context,
            decision_id: &rec.id,
        };
        let (ok, detail) =
            super::approvals::step(&state, &rule, &req, body.approval_id.as_deref()).await?;
        allowed &= ok;
        rec.approval_id = detail["approval_id"].as_str().map(str::to_string);
        reasons.push(Reason {
            check: "approval",
            ok,
            subject: None,
            detail: detail.clone(),
        });
        approval = Some(detail);
    }
    state
        .metrics
        .record_decision(if allowed { "allowed" } else { "denied" });
    rec.agent = (!agent.is_empty()).then(|| format!("agent:{agent}"));
    rec.user = user.as_ref().map(|u| format!("user:{u}"));
    rec.actors = actors.iter().map(|a| format!("agent:{a}")).collect();
    if let Some((jti, client_id)) = token_ids {
        rec.jti = Some(jti);
        rec.client_id = Some(client_id);
    }
    rec.allowed = Some(allowed);
    rec.revision = Some(revision);
    rec.detail = json!({"reasons": reasons, "scopes": scopes});
    let decision_id = rec.id.clone();
    state.audit.record(rec).await?;
    Ok(axum::Json(Decision {
        decision_id,
        allowed,
        approval,
        reasons,
        revision,
    }))
}
