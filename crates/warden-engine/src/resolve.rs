//! Resolution: Check over the rewrite tree, with OpenFGA's semantics for unions,
//! intersections, exclusions, cycles and the depth limit; plus the candidate search
//! behind ListObjects and ListUsers, and Expand.
//!
//! Semantics (matching OpenFGA):
//! - every hop to another `object#relation` (computed userset, tuple-to-userset, a
//!   userset tuple) costs one unit of depth; reaching the limit is an error;
//! - revisiting an `object#relation` on the current path is a cycle: that branch is
//!   "false, cycle detected", which an intersection or exclusion turns into false;
//! - a union is allowed if any branch is; errors only surface when no branch allows;
//!   an intersection is false as soon as one branch is false; an exclusion is false if
//!   its base is false or its subtraction true;
//! - a stored tuple that the current model would not accept is ignored.

use std::cell::RefCell;
use std::sync::Arc;

use smallvec::SmallVec;

use crate::condition::Context;
use crate::error::EngineError;
use crate::intern::Sym;
use crate::model::{Binding, Model, RelationInfo, Rewrite};
use crate::names::Names;
use crate::store::{
    Edge, Index, NONE, ObjRel, STAR, StoredCondition, Subject, TupleStore, find_in, subject_string,
};
use crate::tuple::{TupleKey, UserStr, parse_object, parse_user};

/// The outcome of resolving one node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Res {
    Allowed,
    Denied { cycle: bool },
}

type R = Result<Res, EngineError>;

/// `(type, id, model relation index)` of a node on the current path.
type Visited = SmallVec<[(Sym, Sym, u32); 16]>;

pub(crate) struct Resolver<'a> {
    pub model: &'a Model,
    pub store: &'a Index,
    pub overlay: Index,
    pub names: Names<'a>,
    pub context: &'a Context,
    pub max_depth: u32,
    pub explain: bool,
    pub path: RefCell<Vec<String>>,
    binding: Arc<Binding>,
}

impl<'a> Resolver<'a> {
    /// A resolver over `store` plus `contextual` tuples (validated against the model).
    /// `prepare` interns whatever else the request names (its user, its object) before
    /// the model's names are bound to symbols.
    pub fn new<T>(
        model: &'a Model,
        store: &'a TupleStore,
        contextual: &[TupleKey],
        context: &'a Context,
        max_depth: u32,
        prepare: impl FnOnce(&mut Names<'a>) -> T,
    ) -> Result<(Self, T), EngineError> {
        let mut names = Names::new(&store.names);
        let mut overlay = Index::default();
        for t in contextual {
            crate::store::validate_tuple(model, t)?;
            let obj = parse_object(&t.object)?;
            let user = parse_user(&t.user)?;
            let key = ObjRel {
                ty: names.intern(obj.type_name),
                id: names.intern(obj.id),
                rel: names.intern(&t.relation),
            };
            let subject = intern_user(&mut names, &user);
            let cond = t.condition.as_ref().map(|c| StoredCondition {
                name: names.intern(&c.name),
                context: c.context.clone().filter(|c| !c.is_empty()).map(Box::new),
            });
            overlay.insert(key, subject, cond);
        }
        let prepared = prepare(&mut names);
        // The store's cached binding holds unless the request introduced a model name
        // the store has never seen (then bind over the request's extended symbols).
        let binding = if names.locals().any(|s| model.is_name(s)) {
            Arc::new(model.bind(|s| names.get(s), (0, 0)))
        } else {
            model.binding_for(&store.names, store.uid)
        };
        let r = Resolver {
            model,
            store: &store.index,
            overlay,
            names,
            context,
            max_depth,
            explain: false,
            path: RefCell::new(Vec::new()),
            binding,
        };
        Ok((r, prepared))
    }

    fn indexes(&self) -> impl Iterator<Item = &Index> {
        std::iter::once(self.store).chain((!self.overlay.is_empty()).then_some(&self.overlay))
    }

    fn note(&self, f: impl FnOnce() -> String) {
        if self.explain {
            self.path.borrow_mut().push(f());
        }
    }

    fn object_string(&self, ty: Sym, id: Sym) -> String {
        format!("{}:{}", self.names.resolve(ty), self.names.resolve(id))
    }

    fn subject_string(&self, s: &Subject) -> String {
        subject_string(|sym| self.names.resolve(sym), s)
    }

    /// Whether `user` has `rel` on `(ty, id)`.
    pub fn check(
        &self,
        ty: Sym,
        id: Sym,
        rel: &RelationInfo,
        user: &Subject,
        depth: u32,
        visited: &mut Visited,
    ) -> R {
        if depth >= self.max_depth {
            return Err(EngineError::ResolutionTooDeep(self.max_depth));
        }
        // `type:id#rel` is trivially in its own userset.
        if user.rel != NONE
            && user.ty == ty
            && user.id == id
            && user.rel == self.binding.rel_sym(rel)
        {
            return Ok(Res::Allowed);
        }
        let key = (ty, id, rel.index);
        if visited.contains(&key) {
            return Ok(Res::Denied { cycle: true });
        }
        let mark = if self.explain {
            self.path.borrow().len()
        } else {
            0
        };
        visited.push(key);
        let r = self.rewrite(ty, id, rel, &rel.rewrite, user, depth, visited);
        visited.pop();
        if self.explain && !matches!(r, Ok(Res::Allowed)) {
            self.path.borrow_mut().truncate(mark);
        }
        r
    }

    #[allow(clippy::too_many_arguments)]
    fn rewrite(
        &self,
        ty: Sym,
        id: Sym,
        rel: &RelationInfo,
        rw: &Rewrite,
        user: &Subject,
        depth: u32,
        visited: &mut Visited,
    ) -> R {
        match rw {
            Rewrite::This => self.direct(ty, id, rel, user, depth, visited),
            Rewrite::Computed(index) => {
                let Some(target) = self.model.rel(*index) else {
                    return Ok(Res::Denied { cycle: false });
                };
                let r = self.check(ty, id, target, user, depth + 1, visited);
                if matches!(r, Ok(Res::Allowed)) {
                    self.note(|| {
                        format!(
                            "{}#{} <- {}#{}",
                            self.object_string(ty, id),
                            rel.name,
                            self.object_string(ty, id),
                            target.name
                        )
                    });
                }
                r
            }
            Rewrite::TupleToUserset {
                tupleset,
                computed,
                computed_id,
            } => self.ttu(
                ty,
                id,
                rel,
                *tupleset,
                computed,
                *computed_id,
                user,
                depth,
                visited,
            ),
            Rewrite::Union(children) => {
                let mut agg = Union::default();
                for c in children {
                    if agg.add(self.rewrite(ty, id, rel, c, user, depth, visited)) {
                        return Ok(Res::Allowed);
                    }
                }
                agg.finish()
            }
            Rewrite::Intersection(children) => {
                let mut err = None;
                let mark = if self.explain {
                    self.path.borrow().len()
                } else {
                    0
                };
                for c in children {
                    match self.rewrite(ty, id, rel, c, user, depth, visited) {
                        Ok(Res::Allowed) => {}
                        Ok(denied) => {
                            self.truncate(mark);
                            return Ok(denied);
                        }
                        Err(e) => err = Some(e),
                    }
                }
                match err {
                    Some(e) => {
                        self.truncate(mark);
                        Err(e)
                    }
                    None => Ok(Res::Allowed),
                }
            }
            Rewrite::Difference(base, subtract) => {
                let mark = if self.explain {
                    self.path.borrow().len()
                } else {
                    0
                };
                let base_err = match self.rewrite(ty, id, rel, base, user, depth, visited) {
                    Ok(Res::Allowed) => None,
                    Ok(denied) => return Ok(denied),
                    Err(e) => Some(e),
                };
                let sub_mark = if self.explain {
                    self.path.borrow().len()
                } else {
                    0
                };
                let r = match self.rewrite(ty, id, rel, subtract, user, depth, visited) {
                    Ok(Res::Allowed) => Ok(Res::Denied { cycle: false }),
                    Ok(Res::Denied { cycle: true }) => Ok(Res::Denied { cycle: true }),
                    Ok(Res::Denied { cycle: false }) => match base_err {
                        Some(e) => Err(e),
                        None => Ok(Res::Allowed),
                    },
                    Err(e) => Err(base_err.unwrap_or(e)),
                };
                if matches!(r, Ok(Res::Allowed)) {
                    self.truncate(sub_mark);
                } else {
                    self.truncate(mark);
                }
                r
            }
        }
    }

    fn truncate(&self, mark: usize) {
        if self.explain {
            self.path.borrow_mut().truncate(mark);
        }
    }

    /// Whether a stored edge is acceptable to the current model for `rel`.
    fn edge_valid(&self, rel: &RelationInfo, index: &Index, e: &Edge) -> bool {
        let s = &e.subject;
        let kind = if s.rel != NONE {
            s.rel
        } else if s.id == STAR {
            STAR
        } else {
            NONE
        };
        let cond = index.condition(e.cond).map(|c| c.name).unwrap_or(NONE);
        self.binding.allows(rel, s.ty, kind, cond)
    }

    /// The relation `s.rel` on the type of `s` (for a userset subject).
    fn userset_relation(&self, s: &Subject) -> Option<&'a RelationInfo> {
        let model: &'a Model = self.model;
        self.binding
            .relation(s.ty, s.rel)
            .and_then(|i| model.rel(i))
    }

    /// Evaluates the edge's condition (true when it has none).
    fn condition_holds(&self, index: &Index, e: &Edge) -> Result<bool, EngineError> {
        match index.condition(e.cond) {
            None => Ok(true),
            Some(c) => Ok(self.model.conditions().evaluate(
                self.names.resolve(c.name),
                c.context.as_deref(),
                self.context,
            )?),
        }
    }

    fn direct(
        &self,
        ty: Sym,
        id: Sym,
        rel: &RelationInfo,
        user: &Subject,
        depth: u32,
        visited: &mut Visited,
    ) -> R {
        let rel_sym = self.binding.rel_sym(rel);
        if rel_sym == NONE {
            return Ok(Res::Denied { cycle: false });
        }
        let key = ObjRel {
            ty,
            id,
            rel: rel_sym,
        };
        let mut agg = Union::default();
        // A tuple naming the user itself, or the wildcard of its type.
        let wildcard = (user.rel == NONE && user.id != STAR).then_some(Subject {
            ty: user.ty,
            id: STAR,
            rel: NONE,
        });
        // One hash lookup per index: the user, its wildcard and the usersets are all
        // in the same sorted edge list.
        let mut lists: SmallVec<[(&Index, &[Edge]); 2]> = SmallVec::new();
        for index in self.indexes() {
            let edges = index.users(&key);
            if !edges.is_empty() {
                lists.push((index, edges));
            }
        }
        for &(index, edges) in &lists {
            for subject in std::iter::once(user).chain(wildcard.as_ref()) {
                if let Some(e) = find_in(edges, subject)
                    && self.edge_valid(rel, index, e)
                    && agg.add(self.condition_holds(index, e).map(to_res))
                {
                    self.note(|| {
                        format!(
                            "{}#{} <- {} (direct)",
                            self.object_string(ty, id),
                            rel.name,
                            self.subject_string(&e.subject)
                        )
                    });
                    return Ok(Res::Allowed);
                }
            }
        }
        // Usersets (`group:x#member`) on the relation: is the user in any of them?
        for &(index, edges) in &lists {
            for e in edges.iter().take_while(|e| e.subject.is_userset()) {
                if !self.edge_valid(rel, index, e) {
                    continue;
                }
                match self.condition_holds(index, e) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(err) => {
                        agg.add(Err(err));
                        continue;
                    }
                }
                let s = e.subject;
                let Some(target) = self.userset_relation(&s) else {
                    continue;
                };
                if agg.add(self.check(s.ty, s.id, target, user, depth + 1, visited)) {
                    self.note(|| {
                        format!(
                            "{}#{} <- {} (userset)",
                            self.object_string(ty, id),
                            rel.name,
                            self.subject_string(&s)
                        )
                    });
                    return Ok(Res::Allowed);
                }
            }
        }
        agg.finish()
    }

    #[allow(clippy::too_many_arguments)]
    fn ttu(
        &self,
        ty: Sym,
        id: Sym,
        rel: &RelationInfo,
        tupleset: u32,
        computed: &str,
        computed_id: u32,
        user: &Subject,
        depth: u32,
        visited: &mut Visited,
    ) -> R {
        let Some(ts_rel) = self.model.rel(tupleset) else {
            return Ok(Res::Denied { cycle: false });
        };
        let ts_sym = self.binding.rel_sym(ts_rel);
        let computed_sym = self.binding.name_sym(computed_id);
        if ts_sym == NONE || computed_sym == NONE {
            return Ok(Res::Denied { cycle: false });
        }
        let key = ObjRel {
            ty,
            id,
            rel: ts_sym,
        };
        let mut agg = Union::default();
        for index in self.indexes() {
            for e in index.users(&key) {
                let s = e.subject;
                if s.rel != NONE || s.id == STAR || !self.edge_valid(ts_rel, index, e) {
                    continue;
                }
                match self.condition_holds(index, e) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(err) => {
                        agg.add(Err(err));
                        continue;
                    }
                }
                let Some(target) = self
                    .binding
                    .relation(s.ty, computed_sym)
                    .and_then(|i| self.model.rel(i))
                else {
                    continue;
                };
                if agg.add(self.check(s.ty, s.id, target, user, depth + 1, visited)) {
                    self.note(|| {
                        format!(
                            "{}#{} <- {}#{} (from {})",
                            self.object_string(ty, id),
                            rel.name,
                            self.object_string(s.ty, s.id),
                            computed,
                            ts_rel.name
                        )
                    });
                    return Ok(Res::Allowed);
                }
            }
        }
        agg.finish()
    }

    /// Candidate objects of type `target_ty` for ListObjects: every object reachable
    /// from the user by following tuples backwards (an over-approximation; each
    /// candidate is then checked).
    pub fn object_candidates(&self, user: &Subject, target_ty: Sym) -> Vec<(Sym, Sym)> {
        let mut seen = rustc_hash::FxHashSet::default();
        let mut out = Vec::new();
        let mut frontier = vec![(user.ty, user.id)];
        if user.rel == NONE && user.id != STAR {
            frontier.push((user.ty, STAR));
        }
        if user.rel != NONE && user.ty == target_ty {
            seen.insert((user.ty, user.id));
            out.push((user.ty, user.id));
        }
        while let Some((ty, id)) = frontier.pop() {
            for index in self.indexes() {
                for r in index.appearances(ty, id) {
                    let node = (r.object.ty, r.object.id);
                    if seen.insert(node) {
                        if node.0 == target_ty {
                            out.push(node);
                        }
                        frontier.push(node);
                    }
                }
            }
        }
        out
    }

    /// Candidate users for ListUsers: every user on a direct tuple reachable from
    /// `(ty, id)#rel` through the model's rewrites, plus every
    /// `object#relation` visited (as a userset). Each candidate is then checked.
    pub fn user_candidates(
        &self,
        ty: Sym,
        id: Sym,
        rel: &'a RelationInfo,
    ) -> (Vec<Subject>, Vec<(Sym, Sym, &'a RelationInfo)>) {
        let model: &'a Model = self.model;
        let mut users = Vec::new();
        let mut seen_users = rustc_hash::FxHashSet::default();
        let mut nodes: Vec<(Sym, Sym, &'a RelationInfo)> = Vec::new();
        let mut seen_nodes = rustc_hash::FxHashSet::default();
        let mut work: Vec<(Sym, Sym, &'a RelationInfo)> = vec![(ty, id, rel)];
        while let Some((ty, id, rel)) = work.pop() {
            if !seen_nodes.insert((ty, id, rel.index)) {
                continue;
            }
            nodes.push((ty, id, rel));
            let mut stack: Vec<&'a Rewrite> = vec![&rel.rewrite];
            while let Some(rw) = stack.pop() {
                match rw {
                    Rewrite::This => {
                        let key = ObjRel {
                            ty,
                            id,
                            rel: self.binding.rel_sym(rel),
                        };
                        for index in self.indexes() {
                            for e in index.users(&key) {
                                if !self.edge_valid(rel, index, e) {
                                    continue;
                                }
                                let s = e.subject;
                                if seen_users.insert(s) {
                                    users.push(s);
                                }
                                if let Some(t) =
                                    (s.rel != NONE).then(|| self.userset_relation(&s)).flatten()
                                {
                                    work.push((s.ty, s.id, t));
                                }
                            }
                        }
                    }
                    Rewrite::Computed(index) => {
                        if let Some(t) = model.rel(*index) {
                            work.push((ty, id, t));
                        }
                    }
                    Rewrite::TupleToUserset {
                        tupleset,
                        computed_id,
                        ..
                    } => {
                        let Some(ts_rel) = model.rel(*tupleset) else {
                            continue;
                        };
                        let computed_sym = self.binding.name_sym(*computed_id);
                        let key = ObjRel {
                            ty,
                            id,
                            rel: self.binding.rel_sym(ts_rel),
                        };
                        for index in self.indexes() {
                            for e in index.users(&key) {
                                let s = e.subject;
                                if s.rel != NONE
                                    || s.id == STAR
                                    || !self.edge_valid(ts_rel, index, e)
                                {
                                    continue;
                                }
                                if let Some(t) = self
                                    .binding
                                    .relation(s.ty, computed_sym)
                                    .and_then(|i| model.rel(i))
                                {
                                    work.push((s.ty, s.id, t));
                                }
                            }
                        }
                    }
                    Rewrite::Union(c) | Rewrite::Intersection(c) => stack.extend(c.iter()),
                    // Subtractions too: under a double negation their users can be
                    // members (`a but not (b but not c)` admits users of `c`).
                    Rewrite::Difference(base, subtract) => {
                        stack.push(base);
                        stack.push(subtract);
                    }
                }
            }
        }
        (users, nodes)
    }

    /// The direct users of `(ty, id)#rel` as strings (for Expand).
    pub fn direct_users(&self, ty: Sym, id: Sym, rel: &RelationInfo) -> Vec<String> {
        let key = ObjRel {
            ty,
            id,
            rel: self.binding.rel_sym(rel),
        };
        let mut out: Vec<String> = self
            .indexes()
            .flat_map(|index| {
                index
                    .users(&key)
                    .iter()
                    .filter(move |e| self.edge_valid(rel, index, e))
            })
            .map(|e| self.subject_string(&e.subject))
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The objects on the tupleset `(ty, id)#tupleset` (for Expand).
    pub fn tupleset_objects(&self, ty: Sym, id: Sym, ts_rel: &RelationInfo) -> Vec<(Sym, Sym)> {
        let key = ObjRel {
            ty,
            id,
            rel: self.binding.rel_sym(ts_rel),
        };
        let mut out: Vec<(Sym, Sym)> = self
            .indexes()
            .flat_map(|index| {
                index
                    .users(&key)
                    .iter()
                    .filter(move |e| self.edge_valid(ts_rel, index, e))
            })
            .filter(|e| e.subject.rel == NONE && e.subject.id != STAR)
            .map(|e| (e.subject.ty, e.subject.id))
            .collect();
        out.dedup();
        out
    }
}

fn to_res(holds: bool) -> Res {
    if holds {
        Res::Allowed
    } else {
        Res::Denied { cycle: false }
    }
}

pub(crate) fn intern_user(names: &mut Names<'_>, user: &UserStr<'_>) -> Subject {
    match *user {
        UserStr::Object(o) => Subject {
            ty: names.intern(o.type_name),
            id: names.intern(o.id),
            rel: NONE,
        },
        UserStr::Wildcard { type_name } => Subject {
            ty: names.intern(type_name),
            id: STAR,
            rel: NONE,
        },
        UserStr::Userset { object, relation } => Subject {
            ty: names.intern(object.type_name),
            id: names.intern(object.id),
            rel: names.intern(relation),
        },
    }
}

/// Folds branch results the way a union does.
#[derive(Default)]
struct Union {
    cycle: bool,
    err: Option<EngineError>,
}

impl Union {
    /// Adds one branch; true means the union is allowed (stop).
    fn add(&mut self, r: R) -> bool {
        match r {
            Ok(Res::Allowed) => return true,
            Ok(Res::Denied { cycle }) => self.cycle |= cycle,
            Err(e) => {
                self.err.get_or_insert(e);
            }
        }
        false
    }

    fn finish(self) -> R {
        match self.err {
            Some(e) => Err(e),
            None => Ok(Res::Denied { cycle: self.cycle }),
        }
    }
}

pub(crate) fn new_visited() -> Visited {
    SmallVec::new()
}
