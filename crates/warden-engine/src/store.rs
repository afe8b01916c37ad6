//! The in-memory tuple store: every tuple indexed both ways.
//!
//! - forward: `(object type, object id, relation)` -> the users on it, sorted so that
//!   usersets come first (they are walked) and plain users after (they are binary
//!   searched), which keeps a check on a 100k-member group O(log n);
//! - reverse: `(user type, user id)` -> the `(object, relation)` pairs it appears on,
//!   for ListObjects.
//!
//! All strings are interned; an edge is 16 bytes.

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::condition::Context;
use crate::error::EngineError;
use crate::intern::{Interner, Sym};
use crate::model::{Model, UserKind};
use crate::tuple::{ObjectStr, TupleCondition, TupleKey, UserStr, parse_object, parse_user};

/// "No relation": the user of an edge is an object or a wildcard.
pub(crate) const NONE: Sym = Sym::MAX;
/// The symbol of `*`, interned first in every store.
pub(crate) const STAR: Sym = 0;

/// `(type, id, relation)` of an object-side key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ObjRel {
    pub ty: Sym,
    pub id: Sym,
    pub rel: Sym,
}

/// A user as stored: `ty:id` (`rel == NONE`), `ty:*` (`id == STAR`), or `ty:id#rel`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Subject {
    pub ty: Sym,
    pub id: Sym,
    pub rel: Sym,
}

impl Subject {
    pub fn is_userset(&self) -> bool {
        self.rel != NONE
    }
    /// Sort key: usersets first, then plain users by (type, id).
    fn order_key(&self) -> (bool, Sym, Sym, Sym) {
        (!self.is_userset(), self.ty, self.id, self.rel)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Edge {
    pub subject: Subject,
    /// Index into the condition table; 0 means unconditional.
    pub cond: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RevEdge {
    pub subject_rel: Sym,
    pub object: ObjRel,
}

#[derive(Debug, Clone)]
pub(crate) struct StoredCondition {
    pub name: Sym,
    pub context: Option<Box<Context>>,
}

/// One relation of an object and its users (usersets first, then plain users sorted).
type RelEdges = (Sym, SmallVec<[Edge; 1]>);

/// The two indexes plus the conditions table. Used for the store and for a request's
/// contextual tuples (with symbols from a request-local [`Names`]).
#[derive(Debug, Default, Clone)]
pub(crate) struct Index {
    /// Object -> its relations -> their users. Grouped by object so that resolving
    /// several relations of one object (the usual rewrite) costs one hash lookup and
    /// touches one cache line, not one per relation.
    forward: FxHashMap<(Sym, Sym), SmallVec<[RelEdges; 1]>>,
    reverse: FxHashMap<(Sym, Sym), SmallVec<[RevEdge; 1]>>,
    conds: Vec<StoredCondition>,
    free_conds: Vec<u32>,
    len: usize,
}

/// `subject` among `edges` (the users of one key, as [`Index::users`] returns them).
pub(crate) fn find_in<'e>(edges: &'e [Edge], subject: &Subject) -> Option<&'e Edge> {
    edges
        .binary_search_by(|e| e.subject.order_key().cmp(&subject.order_key()))
        .ok()
        .and_then(|i| edges.get(i))
}

impl Index {
    /// The users on `key`: usersets first, then plain users sorted.
    pub fn users(&self, key: &ObjRel) -> &[Edge] {
        self.forward
            .get(&(key.ty, key.id))
            .and_then(|rels| rels.iter().find(|(r, _)| *r == key.rel))
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// Where `(ty, id)` appears as a user (as itself, or as `ty:id#rel`).
    pub fn appearances(&self, ty: Sym, id: Sym) -> &[RevEdge] {
        self.reverse
            .get(&(ty, id))
            .map(|v| v.as_slice())
            .unwrap_or(&[])
    }

    pub fn condition(&self, cond: u32) -> Option<&StoredCondition> {
        if cond == 0 {
            None
        } else {
            self.conds.get(cond as usize - 1)
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts; returns false if the (object, relation, user) was already present.
    pub fn insert(&mut self, key: ObjRel, subject: Subject, cond: Option<StoredCondition>) -> bool {
        let rels = self.forward.entry((key.ty, key.id)).or_default();
        let at = match rels.iter().position(|(r, _)| *r == key.rel) {
            Some(i) => i,
            None => {
                rels.push((key.rel, SmallVec::new()));
                rels.len() - 1
            }
        };
        let edges = &mut rels[at].1;
        let pos = match edges.binary_search_by(|e| e.subject.order_key().cmp(&subject.order_key()))
        {
            Ok(_) => return false,
            Err(pos) => pos,
        };
        let cond = match cond {
            None => 0,
            Some(c) => match self.free_conds.pop() {
                Some(slot) => {
                    if let Some(s) = self.conds.get_mut(slot as usize - 1) {
                        *s = c;
                    }
                    slot
                }
                None => {
                    self.conds.push(c);
                    self.conds.len() as u32
                }
            },
        };
        edges.insert(pos, Edge { subject, cond });
        self.reverse
            .entry((subject.ty, subject.id))
            .or_default()
            .push(RevEdge {
                subject_rel: subject.rel,
                object: key,
            });
        self.len += 1;
        true
    }

    /// Removes; returns false if absent.
    pub fn remove(&mut self, key: ObjRel, subject: Subject) -> bool {
        let Some(rels) = self.forward.get_mut(&(key.ty, key.id)) else {
            return false;
        };
        let Some(at) = rels.iter().position(|(r, _)| *r == key.rel) else {
            return false;
        };
        let edges = &mut rels[at].1;
        let Ok(pos) = edges.binary_search_by(|e| e.subject.order_key().cmp(&subject.order_key()))
        else {
            return false;
        };
        let edge = edges.remove(pos);
        if edges.is_empty() {
            rels.swap_remove(at);
            if rels.is_empty() {
                self.forward.remove(&(key.ty, key.id));
            }
        }
        if edge.cond != 0 {
            if let Some(c) = self.conds.get_mut(edge.cond as usize - 1) {
                c.context = None;
            }
            self.free_conds.push(edge.cond);
        }
        if let Some(rev) = self.reverse.get_mut(&(subject.ty, subject.id)) {
            if let Some(i) = rev
                .iter()
                .position(|r| r.subject_rel == subject.rel && r.object == key)
            {
                rev.swap_remove(i);
            }
            if rev.is_empty() {
                self.reverse.remove(&(subject.ty, subject.id));
            }
        }
        self.len -= 1;
        true
    }

    pub fn iter(&self) -> impl Iterator<Item = (ObjRel, &Edge)> {
        self.forward.iter().flat_map(|(&(ty, id), rels)| {
            rels.iter().flat_map(move |(rel, edges)| {
                edges.iter().map(move |e| (ObjRel { ty, id, rel: *rel }, e))
            })
        })
    }

    fn heap_bytes(&self) -> usize {
        let fwd_slot = std::mem::size_of::<((Sym, Sym), SmallVec<[RelEdges; 1]>)>() + 1;
        let rev_slot = std::mem::size_of::<((Sym, Sym), SmallVec<[RevEdge; 1]>)>() + 1;
        let spilled_fwd: usize = self
            .forward
            .values()
            .map(|rels| {
                let outer = if rels.spilled() {
                    rels.capacity() * std::mem::size_of::<RelEdges>()
                } else {
                    0
                };
                outer
                    + rels
                        .iter()
                        .filter(|(_, v)| v.spilled())
                        .map(|(_, v)| v.capacity() * std::mem::size_of::<Edge>())
                        .sum::<usize>()
            })
            .sum();
        let spilled_rev: usize = self
            .reverse
            .values()
            .filter(|v| v.spilled())
            .map(|v| v.capacity() * std::mem::size_of::<RevEdge>())
            .sum();
        self.forward.capacity() * fwd_slot
            + self.reverse.capacity() * rev_slot
            + spilled_fwd
            + spilled_rev
            + self.conds.capacity() * std::mem::size_of::<StoredCondition>()
    }
}

/// All relationship tuples of one store, in memory.
#[derive(Debug)]
pub struct TupleStore {
    /// Identifies this store's symbol space (models cache their binding per store).
    pub(crate) uid: u64,
    pub(crate) names: Interner,
    pub(crate) index: Index,
}

/// Source of store ids. Ids only tell symbol spaces apart; they carry no other state.
static NEXT_UID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_uid() -> u64 {
    NEXT_UID.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Clone for TupleStore {
    fn clone(&self) -> Self {
        TupleStore {
            uid: next_uid(),
            names: self.names.clone(),
            index: self.index.clone(),
        }
    }
}

impl Default for TupleStore {
    fn default() -> Self {
        Self::new()
    }
}

impl TupleStore {
    pub fn new() -> Self {
        let mut names = Interner::new();
        let star = names.intern("*");
        debug_assert_eq!(star, STAR);
        TupleStore {
            uid: next_uid(),
            names,
            index: Index::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.index.len
    }

    pub fn is_empty(&self) -> bool {
        self.index.len == 0
    }

    /// Approximate heap bytes held by the store (indexes, strings, conditions).
    pub fn heap_bytes(&self) -> usize {
        self.index.heap_bytes() + self.names.heap_bytes()
    }

    /// Writes and deletes tuples atomically: every tuple is validated against `model`
    /// first (and every delete must exist); on any error nothing changes.
    pub fn write(
        &mut self,
        model: &Model,
        writes: &[TupleKey],
        deletes: &[TupleKey],
    ) -> Result<(), EngineError> {
        let mut seen = rustc_hash::FxHashSet::default();
        for t in writes.iter().chain(deletes) {
            if !seen.insert((&t.object, &t.relation, &t.user)) {
                return Err(EngineError::InvalidTuple {
                    tuple: t.to_string(),
                    reason: "the tuple appears more than once in one write".into(),
                });
            }
        }
        for t in writes {
            validate_tuple(model, t)?;
            if self.contains(t) {
                return Err(EngineError::InvalidTuple {
                    tuple: t.to_string(),
                    reason: "the tuple already exists".into(),
                });
            }
        }
        for t in deletes {
            if !self.contains(t) {
                return Err(EngineError::InvalidTuple {
                    tuple: t.to_string(),
                    reason: "the tuple does not exist".into(),
                });
            }
        }
        for t in deletes {
            self.remove(t)?;
        }
        for t in writes {
            self.insert(t)?;
        }
        Ok(())
    }

    /// Whether the (object, relation, user) of `t` is stored (its condition is ignored).
    pub fn contains(&self, t: &TupleKey) -> bool {
        let (Ok(obj), Ok(user)) = (parse_object(&t.object), parse_user(&t.user)) else {
            return false;
        };
        let n = &self.names;
        let key = match (n.get(obj.type_name), n.get(obj.id), n.get(&t.relation)) {
            (Some(ty), Some(id), Some(rel)) => ObjRel { ty, id, rel },
            _ => return false,
        };
        let Some(subject) = lookup_subject(n, &user) else {
            return false;
        };
        self.index.users(&key).iter().any(|e| e.subject == subject)
    }

    /// Inserts without validating against a model (for loading tuples that were
    /// validated when written). Returns false if it was already present.
    pub fn insert(&mut self, t: &TupleKey) -> Result<bool, EngineError> {
        let obj = parse_object(&t.object)?;
        let user = parse_user(&t.user)?;
        let key = ObjRel {
            ty: self.names.intern(obj.type_name),
            id: self.names.intern(obj.id),
            rel: self.names.intern(&t.relation),
        };
        let subject = intern_subject(&mut self.names, &user);
        let cond = t.condition.as_ref().map(|c| StoredCondition {
            name: self.names.intern(&c.name),
            context: c.context.clone().filter(|c| !c.is_empty()).map(Box::new),
        });
        Ok(self.index.insert(key, subject, cond))
    }

    /// Removes (ignoring the condition). Returns false if it was absent.
    pub fn remove(&mut self, t: &TupleKey) -> Result<bool, EngineError> {
        let obj = parse_object(&t.object)?;
        let user = parse_user(&t.user)?;
        let n = &self.names;
        let key = match (n.get(obj.type_name), n.get(obj.id), n.get(&t.relation)) {
            (Some(ty), Some(id), Some(rel)) => ObjRel { ty, id, rel },
            _ => return Ok(false),
        };
        let Some(subject) = lookup_subject(n, &user) else {
            return Ok(false);
        };
        Ok(self.index.remove(key, subject))
    }

    /// Every stored tuple, in no particular order.
    pub fn tuples(&self) -> Vec<TupleKey> {
        self.index
            .iter()
            .map(|(k, e)| edge_to_tuple(&self.names, &self.index, &k, e))
            .collect()
    }
}

pub(crate) fn edge_to_tuple(names: &Interner, index: &Index, k: &ObjRel, e: &Edge) -> TupleKey {
    let condition = index.condition(e.cond).map(|c| TupleCondition {
        name: names.resolve(c.name).to_string(),
        context: c.context.as_deref().cloned(),
    });
    TupleKey {
        user: subject_string(|s| names.resolve(s), &e.subject),
        relation: names.resolve(k.rel).to_string(),
        object: format!("{}:{}", names.resolve(k.ty), names.resolve(k.id)),
        condition,
    }
}

/// Formats a subject as `type:id`, `type:*` or `type:id#rel`.
pub(crate) fn subject_string<'a>(resolve: impl Fn(Sym) -> &'a str, s: &Subject) -> String {
    if s.rel == NONE {
        format!("{}:{}", resolve(s.ty), resolve(s.id))
    } else {
        format!("{}:{}#{}", resolve(s.ty), resolve(s.id), resolve(s.rel))
    }
}

fn intern_subject(n: &mut Interner, user: &UserStr<'_>) -> Subject {
    match *user {
        UserStr::Object(ObjectStr { type_name, id }) => Subject {
            ty: n.intern(type_name),
            id: n.intern(id),
            rel: NONE,
        },
        UserStr::Wildcard { type_name } => Subject {
            ty: n.intern(type_name),
            id: STAR,
            rel: NONE,
        },
        UserStr::Userset { object, relation } => Subject {
            ty: n.intern(object.type_name),
            id: n.intern(object.id),
            rel: n.intern(relation),
        },
    }
}

fn lookup_subject(n: &Interner, user: &UserStr<'_>) -> Option<Subject> {
    Some(match *user {
        UserStr::Object(o) => Subject {
            ty: n.get(o.type_name)?,
            id: n.get(o.id)?,
            rel: NONE,
        },
        UserStr::Wildcard { type_name } => Subject {
            ty: n.get(type_name)?,
            id: STAR,
            rel: NONE,
        },
        UserStr::Userset { object, relation } => Subject {
            ty: n.get(object.type_name)?,
            id: n.get(object.id)?,
            rel: n.get(relation)?,
        },
    })
}

/// Validates a tuple against the model: the object's type and relation exist, the
/// relation admits this kind of user directly (type restrictions, wildcard, userset,
/// condition), and a condition's stored context fits its parameters.
pub fn validate_tuple(model: &Model, t: &TupleKey) -> Result<(), EngineError> {
    let invalid = |reason: String| EngineError::InvalidTuple {
        tuple: t.to_string(),
        reason,
    };
    let obj = parse_object(&t.object).map_err(|e| invalid(e.to_string()))?;
    let user = parse_user(&t.user).map_err(|e| invalid(e.to_string()))?;
    let rel = model
        .relation(obj.type_name, &t.relation)
        .map_err(|e| invalid(e.to_string()))?;
    let (user_type, kind) = match user {
        UserStr::Object(o) => (o.type_name, UserKind::Object),
        UserStr::Wildcard { type_name } => (type_name, UserKind::Wildcard),
        UserStr::Userset { object, relation } => (object.type_name, UserKind::Userset(relation)),
    };
    if !model.has_type(user_type) {
        return Err(invalid(format!(
            "type `{user_type}` is not defined in the model"
        )));
    }
    if let UserKind::Userset(r) = kind
        && !model.has_relation(user_type, r)
    {
        return Err(invalid(format!(
            "relation `{user_type}#{r}` is not defined"
        )));
    }
    let cond = t
        .condition
        .as_ref()
        .map(|c| c.name.as_str())
        .filter(|c| !c.is_empty());
    if !rel.allows(user_type, kind, cond) {
        let what = match (kind, cond) {
            (UserKind::Wildcard, _) => format!("`{user_type}:*`"),
            (UserKind::Userset(r), _) => format!("`{user_type}#{r}`"),
            (UserKind::Object, _) => format!("`{user_type}`"),
        };
        let with = cond
            .map(|c| format!(" with condition `{c}`"))
            .unwrap_or_default();
        return Err(invalid(format!(
            "relation `{}#{}` does not allow {what}{with}",
            obj.type_name, t.relation
        )));
    }
    if let Some(c) = &t.condition
        && let Some(ctx) = &c.context
    {
        model
            .conditions()
            .validate_tuple_context(&c.name, ctx)
            .map_err(|e| invalid(e.to_string()))?;
    }
    Ok(())
}
