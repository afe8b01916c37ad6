//! The engine's entry points: validate a request, build a resolver, answer.

use crate::error::EngineError;
use crate::model::Model;
use crate::request::{
    CheckRequest, CheckResult, ExpandRequest, ListObjectsRequest, ListUsersRequest, UsersetTree,
};
use crate::resolve::{Res, Resolver, intern_user, new_visited};
use crate::store::{NONE, Subject, TupleStore};
use crate::tuple::{UserStr, parse_object, parse_user};

/// OpenFGA's default resolution depth limit.
pub const DEFAULT_MAX_DEPTH: u32 = 25;

/// A read-only view of one model and one tuple store that answers queries.
/// Cheap to create (two references and a number).
#[derive(Debug, Clone, Copy)]
pub struct Engine<'a> {
    model: &'a Model,
    store: &'a TupleStore,
    max_depth: u32,
}

impl<'a> Engine<'a> {
    pub fn new(model: &'a Model, store: &'a TupleStore) -> Self {
        Engine {
            model,
            store,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }

    /// Sets the resolution depth limit (default 25).
    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// Validates a user against the model: its type (and userset relation) must exist.
    fn validate_user(&self, user: &UserStr<'_>) -> Result<(), EngineError> {
        let bad = |reason: String| EngineError::InvalidInput {
            what: "user",
            value: user_string(user),
            reason,
        };
        let type_name = match user {
            UserStr::Object(o) => o.type_name,
            UserStr::Wildcard { type_name } => type_name,
            UserStr::Userset { object, .. } => object.type_name,
        };
        if !self.model.has_type(type_name) {
            return Err(bad(format!(
                "type `{type_name}` is not defined in the model"
            )));
        }
        if let UserStr::Userset { relation, .. } = user
            && !self.model.has_relation(type_name, relation)
        {
            return Err(bad(format!(
                "relation `{type_name}#{relation}` is not defined"
            )));
        }
        Ok(())
    }

    /// Does the user have the relation on the object?
    pub fn check(&self, req: &CheckRequest) -> Result<CheckResult, EngineError> {
        let object = parse_object(&req.object)?;
        let user = parse_user(&req.user)?;
        let rel = self
            .model
            .relation(object.type_name, &req.relation)
            .map_err(|e| EngineError::InvalidInput {
                what: "check",
                value: format!("{}#{}", req.object, req.relation),
                reason: e.to_string(),
            })?;
        self.validate_user(&user)?;
        let (mut r, (subject, ty, id)) = Resolver::new(
            self.model,
            self.store,
            &req.contextual_tuples,
            &req.context,
            self.max_depth,
            |n| {
                (
                    intern_user(n, &user),
                    n.intern(object.type_name),
                    n.intern(object.id),
                )
            },
        )?;
        r.explain = req.explain;
        let res = r.check(ty, id, rel, &subject, 0, &mut new_visited())?;
        let allowed = res == Res::Allowed;
        let mut path = if allowed { r.path.take() } else { Vec::new() };
        path.reverse();
        Ok(CheckResult { allowed, path })
    }

    /// Checks many requests; each answer stands alone (one failing does not fail the rest).
    pub fn batch_check(&self, reqs: &[CheckRequest]) -> Vec<Result<CheckResult, EngineError>> {
        reqs.iter().map(|r| self.check(r)).collect()
    }

    /// The objects of `object_type` on which the user has the relation, sorted.
    pub fn list_objects(&self, req: &ListObjectsRequest) -> Result<Vec<String>, EngineError> {
        let rel = self.model.relation(&req.object_type, &req.relation)?;
        let user = parse_user(&req.user)?;
        self.validate_user(&user)?;
        let (r, (subject, target_ty)) = Resolver::new(
            self.model,
            self.store,
            &req.contextual_tuples,
            &req.context,
            self.max_depth,
            |n| (intern_user(n, &user), n.intern(&req.object_type)),
        )?;
        let mut out = Vec::new();
        for (ty, id) in r.object_candidates(&subject, target_ty) {
            if r.check(ty, id, rel, &subject, 0, &mut new_visited())? == Res::Allowed {
                out.push(format!("{}:{}", r.names.resolve(ty), r.names.resolve(id)));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The users matching `user_filters` that have the relation on the object, sorted:
    /// `type:id`, `type:*` (everyone of that type), or `type:id#relation` (usersets).
    pub fn list_users(&self, req: &ListUsersRequest) -> Result<Vec<String>, EngineError> {
        let object = parse_object(&req.object)?;
        let rel = self.model.relation(object.type_name, &req.relation)?;
        for f in &req.user_filters {
            match &f.relation {
                Some(r) => {
                    self.model.relation(&f.type_name, r)?;
                }
                None if !self.model.has_type(&f.type_name) => {
                    return Err(EngineError::TypeNotFound(f.type_name.clone()));
                }
                None => {}
            }
        }
        let filter_names: Vec<&str> = req
            .user_filters
            .iter()
            .flat_map(|f| std::iter::once(f.type_name.as_str()).chain(f.relation.as_deref()))
            .collect();
        let (r, (ty, id)) = Resolver::new(
            self.model,
            self.store,
            &req.contextual_tuples,
            &req.context,
            self.max_depth,
            |n| {
                for name in &filter_names {
                    n.intern(name);
                }
                (n.intern(object.type_name), n.intern(object.id))
            },
        )?;
        let filters: Vec<(Option<u32>, Option<Option<u32>>)> = req
            .user_filters
            .iter()
            .map(|f| {
                (
                    r.names.get(&f.type_name),
                    f.relation.as_ref().map(|rel| r.names.get(rel)),
                )
            })
            .collect();
        let (users, nodes) = r.user_candidates(ty, id, rel);
        let mut candidates: Vec<Subject> = Vec::new();
        for s in users {
            let wanted = filters.iter().any(|(fty, frel)| {
                *fty == Some(s.ty)
                    && match frel {
                        None => s.rel == NONE,
                        Some(frel) => s.rel != NONE && *frel == Some(s.rel),
                    }
            });
            if wanted {
                candidates.push(s);
            }
        }
        for (nty, nid, nrel) in nodes {
            for f in &req.user_filters {
                if f.relation.as_deref() == Some(&*nrel.name) && r.names.resolve(nty) == f.type_name
                {
                    let Some(rel_sym) = r.names.get(&nrel.name) else {
                        continue;
                    };
                    let s = Subject {
                        ty: nty,
                        id: nid,
                        rel: rel_sym,
                    };
                    if !candidates.contains(&s) {
                        candidates.push(s);
                    }
                }
            }
        }
        let mut out = Vec::new();
        for s in candidates {
            if r.check(ty, id, rel, &s, 0, &mut new_visited())? == Res::Allowed {
                out.push(crate::store::subject_string(|sym| r.names.resolve(sym), &s));
            }
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// The userset tree of `object#relation`, one level deep (like OpenFGA's Expand).
    pub fn expand(&self, req: &ExpandRequest) -> Result<UsersetTree, EngineError> {
        let object = parse_object(&req.object)?;
        let rel = self.model.relation(object.type_name, &req.relation)?;
        let empty = crate::condition::Context::new();
        let (r, (ty, id)) = Resolver::new(
            self.model,
            self.store,
            &req.contextual_tuples,
            &empty,
            self.max_depth,
            |n| (n.intern(object.type_name), n.intern(object.id)),
        )?;
        Ok(expand_node(&r, ty, id, rel, &rel.rewrite, &req.object))
    }
}

fn expand_node(
    r: &Resolver<'_>,
    ty: u32,
    id: u32,

    rel: &crate::model::RelationInfo,
    rw: &crate::model::Rewrite,
    object: &str,
) -> UsersetTree {
    use crate::model::Rewrite;
    let name = format!("{object}#{}", rel.name);
    match rw {
        Rewrite::This => UsersetTree::Leaf {
            name,
            users: r.direct_users(ty, id, rel),
        },
        Rewrite::Computed(c) => {
            let c = r
                .model
                .rel(*c)
                .map(|t| t.name.to_string())
                .unwrap_or_default();
            UsersetTree::Computed {
                name,
                userset: format!("{object}#{c}"),
            }
        }
        Rewrite::TupleToUserset {
            tupleset, computed, ..
        } => {
            let computed_sets = match r.model.rel(*tupleset) {
                Some(ts) => r
                    .tupleset_objects(ty, id, ts)
                    .into_iter()
                    .map(|(pty, pid)| {
                        format!(
                            "{}:{}#{computed}",
                            r.names.resolve(pty),
                            r.names.resolve(pid)
                        )
                    })
                    .collect(),
                None => Vec::new(),
            };
            let ts_name = r
                .model
                .rel(*tupleset)
                .map(|t| t.name.to_string())
                .unwrap_or_default();
            UsersetTree::TupleToUserset {
                name,
                tupleset: format!("{object}#{ts_name}"),
                computed: computed_sets,
            }
        }
        Rewrite::Union(c) => UsersetTree::Union {
            name,
            nodes: c
                .iter()
                .map(|c| expand_node(r, ty, id, rel, c, object))
                .collect(),
        },
        Rewrite::Intersection(c) => UsersetTree::Intersection {
            name,
            nodes: c
                .iter()
                .map(|c| expand_node(r, ty, id, rel, c, object))
                .collect(),
        },
        Rewrite::Difference(b, s) => UsersetTree::Difference {
            name,
            base: Box::new(expand_node(r, ty, id, rel, b, object)),
            subtract: Box::new(expand_node(r, ty, id, rel, s, object)),
        },
    }
}

fn user_string(u: &UserStr<'_>) -> String {
    match u {
        UserStr::Object(o) => format!("{}:{}", o.type_name, o.id),
        UserStr::Wildcard { type_name } => format!("{type_name}:*"),
        UserStr::Userset { object, relation } => {
            format!("{}:{}#{relation}", object.type_name, object.id)
        }
    }
}
