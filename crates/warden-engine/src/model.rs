//! A model compiled for evaluation: types and relations looked up by name, rewrites as a
//! small tree, type restrictions ready for validating tuples, conditions compiled.

use std::sync::{Arc, RwLock};

use rustc_hash::FxHashMap;
use warden_model::{AuthorizationModel, RelationReference, Userset};

use crate::condition::ConditionSet;
use crate::error::EngineError;
use crate::intern::{Interner, Sym};
use crate::store::{NONE, STAR};

/// An authorization model ready for the engine. Immutable; share it behind an `Arc`.
#[derive(Debug)]
pub struct Model {
    schema: AuthorizationModel,
    types: FxHashMap<Box<str>, TypeInfo>,
    /// Every relation of every type, indexed by `RelationInfo::index`.
    relations: Vec<RelationInfo>,
    /// Every distinct relation, type and condition name, indexed by name id.
    names: Vec<Box<str>>,
    name_ids: FxHashMap<Box<str>, u32>,
    conditions: ConditionSet,
    /// The symbols of this model's names in the last store it was used with.
    binding: RwLock<Option<Arc<Binding>>>,
}

#[derive(Debug)]
pub(crate) struct TypeInfo {
    /// Relation name -> index into `Model::relations`.
    pub relations: FxHashMap<Box<str>, u32>,
}

#[derive(Debug)]
pub(crate) struct RelationInfo {
    /// Unique across the model: identifies `type#relation` in cycle detection.
    pub index: u32,
    pub name: Box<str>,
    /// Name id of `name` (see `Model::names`).
    pub name_id: u32,
    pub rewrite: Rewrite,
    /// The direct type restrictions (`[user, group#member, user:* with cond]`).
    pub direct: Vec<DirectRef>,
}

#[derive(Debug)]
pub(crate) enum Rewrite {
    This,
    /// Another relation of the same type (its index).
    Computed(u32),
    /// `computed from tupleset`: `tupleset` is a relation index of the same type; the
    /// computed relation is looked up by name id on each parent's type.
    TupleToUserset {
        tupleset: u32,
        computed: Box<str>,
        computed_id: u32,
    },
    Union(Vec<Rewrite>),
    Intersection(Vec<Rewrite>),
    Difference(Box<Rewrite>, Box<Rewrite>),
}

/// What kind of user a type restriction admits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DirectKind {
    Object,
    Wildcard,
    Userset(Box<str>),
}

#[derive(Debug, Clone)]
pub(crate) struct DirectRef {
    pub type_name: Box<str>,
    pub kind: DirectKind,
    pub condition: Option<Box<str>>,
}

impl Model {
    /// Compiles `schema`. Fails if a rewrite names a relation that does not exist, or a
    /// condition does not compile. (Full language validation lives in `warden-model`.)
    pub fn new(schema: AuthorizationModel) -> Result<Model, EngineError> {
        let conditions = ConditionSet::compile(&schema)?;
        let mut names: Vec<Box<str>> = Vec::new();
        let mut name_ids: FxHashMap<Box<str>, u32> = FxHashMap::default();
        let mut name_id = |n: &str| -> u32 {
            if let Some(&id) = name_ids.get(n) {
                return id;
            }
            let id = names.len() as u32;
            names.push(n.into());
            name_ids.insert(n.into(), id);
            id
        };
        for c in schema.conditions.keys() {
            name_id(c);
        }
        let mut types = FxHashMap::default();
        let mut relations = Vec::new();
        for td in &schema.type_definitions {
            name_id(&td.type_name);
            let mut rel_index = FxHashMap::default();
            let base = relations.len() as u32;
            for (i, name) in td.relations.keys().enumerate() {
                rel_index.insert(name.as_str().into(), base + i as u32);
            }
            for (name, userset) in &td.relations {
                let direct = td.directly_related(name).iter().map(direct_ref).collect();
                let rewrite =
                    compile_rewrite(userset, &rel_index, &mut name_id).map_err(|missing| {
                        EngineError::InvalidModel(format!(
                            "relation `{}#{name}` refers to undefined relation `{missing}`",
                            td.type_name
                        ))
                    })?;
                relations.push(RelationInfo {
                    index: relations.len() as u32,
                    name: name.as_str().into(),
                    name_id: name_id(name),
                    rewrite,
                    direct,
                });
            }
            types.insert(
                td.type_name.as_str().into(),
                TypeInfo {
                    relations: rel_index,
                },
            );
        }
        let model = Model {
            schema,
            types,
            relations,
            names,
            name_ids,
            conditions,
            binding: RwLock::new(None),
        };
        model.check_conditions()?;
        Ok(model)
    }

    fn check_conditions(&self) -> Result<(), EngineError> {
        for rel in &self.relations {
            for d in &rel.direct {
                if let Some(c) = &d.condition
                    && !self.conditions.contains(c)
                {
                    return Err(EngineError::InvalidModel(format!(
                        "condition `{c}` used on relation `{}` is not defined",
                        rel.name
                    )));
                }
            }
        }
        Ok(())
    }

    /// The model as written.
    pub fn schema(&self) -> &AuthorizationModel {
        &self.schema
    }

    pub fn conditions(&self) -> &ConditionSet {
        &self.conditions
    }

    pub(crate) fn rel(&self, index: u32) -> Option<&RelationInfo> {
        self.relations.get(index as usize)
    }

    /// Whether `s` is a type, relation or condition name of this model.
    pub(crate) fn is_name(&self, s: &str) -> bool {
        self.name_ids.contains_key(s)
    }

    /// Whether `type_name` is defined.
    pub fn has_type(&self, type_name: &str) -> bool {
        self.types.contains_key(type_name)
    }

    /// Whether `type_name#relation` is defined.
    pub fn has_relation(&self, type_name: &str, relation: &str) -> bool {
        self.types
            .get(type_name)
            .is_some_and(|t| t.relations.contains_key(relation))
    }

    /// The relation `type_name#relation`, or the matching not-found error.
    pub(crate) fn relation(
        &self,
        type_name: &str,
        relation: &str,
    ) -> Result<&RelationInfo, EngineError> {
        let ti = self
            .types
            .get(type_name)
            .ok_or_else(|| EngineError::TypeNotFound(type_name.to_string()))?;
        ti.relations
            .get(relation)
            .and_then(|&i| self.rel(i))
            .ok_or_else(|| EngineError::RelationNotFound {
                type_name: type_name.to_string(),
                relation: relation.to_string(),
            })
    }

    /// Builds the symbol tables of this model's names for a symbol space.
    pub(crate) fn bind(&self, lookup: impl Fn(&str) -> Option<Sym>, key: (u64, usize)) -> Binding {
        // A name no tuple uses (say a relation only reached through rewrites) still
        // needs a symbol: give it one from a range no interner reaches.
        let name_syms: Vec<Sym> = self
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| lookup(n).unwrap_or(UNUSED_NAME_BASE + i as Sym))
            .collect();
        let sym = |n: &str| {
            self.name_ids
                .get(n)
                .and_then(|&id| name_syms.get(id as usize).copied())
                .unwrap_or(NONE)
        };
        let mut type_of = FxHashMap::default();
        let mut relation_of = FxHashMap::default();
        for (tname, ti) in &self.types {
            let ty = sym(tname);
            if ty == NONE {
                continue;
            }
            type_of.insert(ty, ());
            for (rname, &idx) in &ti.relations {
                let r = sym(rname);
                if r != NONE {
                    relation_of.insert((ty, r), idx);
                }
            }
        }
        let direct = self
            .relations
            .iter()
            .map(|rel| {
                rel.direct
                    .iter()
                    .map(|d| {
                        let kind = match &d.kind {
                            DirectKind::Object => NONE,
                            DirectKind::Wildcard => STAR,
                            DirectKind::Userset(r) => sym(r),
                        };
                        let cond = d.condition.as_deref().map(sym).unwrap_or(NONE);
                        (sym(&d.type_name), kind, cond)
                    })
                    .collect()
            })
            .collect();
        Binding {
            key,
            name_syms,
            relation_of,
            direct,
        }
    }

    /// The binding for the store's own symbols, cached until the store learns new names.
    pub(crate) fn binding_for(&self, names: &Interner, store_uid: u64) -> Arc<Binding> {
        let key = (store_uid, names.len());
        if let Ok(guard) = self.binding.read()
            && let Some(b) = guard.as_ref().filter(|b| b.key == key)
        {
            return Arc::clone(b);
        }
        let b = Arc::new(self.bind(|s| names.get(s), key));
        if let Ok(mut guard) = self.binding.write() {
            *guard = Some(Arc::clone(&b));
        }
        b
    }
}

/// Symbols at and above this stand for model names that the symbol space lacks.
const UNUSED_NAME_BASE: Sym = 0xC000_0000;

/// A model's names as symbols of one symbol space (a store's, possibly extended by a
/// request's). Lets resolution compare `u32`s instead of hashing strings.
#[derive(Debug)]
pub(crate) struct Binding {
    key: (u64, usize),
    /// Name id -> symbol (from `UNUSED_NAME_BASE` up if the space lacks the name).
    pub name_syms: Vec<Sym>,
    /// `(type sym, relation sym)` -> relation index.
    pub relation_of: FxHashMap<(Sym, Sym), u32>,
    /// Relation index -> its type restrictions as `(type, kind, condition)` symbols,
    /// kind being `NONE` (object), `STAR` (wildcard) or a relation symbol (userset).
    pub direct: Vec<Vec<(Sym, Sym, Sym)>>,
}

impl Binding {
    pub fn rel_sym(&self, rel: &RelationInfo) -> Sym {
        self.name_syms
            .get(rel.name_id as usize)
            .copied()
            .unwrap_or(NONE)
    }

    pub fn name_sym(&self, name_id: u32) -> Sym {
        self.name_syms
            .get(name_id as usize)
            .copied()
            .unwrap_or(NONE)
    }

    /// The relation `rel` of the type whose symbol is `ty`.
    pub fn relation(&self, ty: Sym, rel: Sym) -> Option<u32> {
        self.relation_of.get(&(ty, rel)).copied()
    }

    /// Whether a tuple `(user type, kind, condition)` is admitted by `rel` directly.
    pub fn allows(&self, rel: &RelationInfo, ty: Sym, kind: Sym, cond: Sym) -> bool {
        self.direct
            .get(rel.index as usize)
            .is_some_and(|d| d.iter().any(|&(t, k, c)| t == ty && k == kind && c == cond))
    }
}

impl RelationInfo {
    /// Whether a tuple with this user (type, kind) and condition may be assigned directly
    /// (string form, for validating writes).
    pub fn allows(&self, user_type: &str, kind: UserKind<'_>, condition: Option<&str>) -> bool {
        self.direct.iter().any(|d| {
            &*d.type_name == user_type
                && d.condition.as_deref() == condition
                && match (&d.kind, kind) {
                    (DirectKind::Object, UserKind::Object) => true,
                    (DirectKind::Wildcard, UserKind::Wildcard) => true,
                    (DirectKind::Userset(r), UserKind::Userset(u)) => &**r == u,
                    _ => false,
                }
        })
    }
}

/// The shape of a tuple's user, for matching against type restrictions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UserKind<'a> {
    Object,
    Wildcard,
    Userset(&'a str),
}

/// Compiles a rewrite; `Err(name)` names a relation that does not exist on the type.
fn compile_rewrite(
    u: &Userset,
    rels: &FxHashMap<Box<str>, u32>,
    name_id: &mut impl FnMut(&str) -> u32,
) -> Result<Rewrite, String> {
    let local = |r: &str| rels.get(r).copied().ok_or_else(|| r.to_string());
    Ok(match u {
        Userset::This(_) => Rewrite::This,
        Userset::Computed(c) => Rewrite::Computed(local(&c.relation)?),
        Userset::TupleToUserset(t) => Rewrite::TupleToUserset {
            tupleset: local(&t.tupleset.relation)?,
            computed: t.computed_userset.relation.as_str().into(),
            computed_id: name_id(&t.computed_userset.relation),
        },
        Userset::Union(c) => Rewrite::Union(
            c.child
                .iter()
                .map(|c| compile_rewrite(c, rels, name_id))
                .collect::<Result<_, _>>()?,
        ),
        Userset::Intersection(c) => Rewrite::Intersection(
            c.child
                .iter()
                .map(|c| compile_rewrite(c, rels, name_id))
                .collect::<Result<_, _>>()?,
        ),
        Userset::Difference(d) => Rewrite::Difference(
            Box::new(compile_rewrite(&d.base, rels, name_id)?),
            Box::new(compile_rewrite(&d.subtract, rels, name_id)?),
        ),
    })
}

fn direct_ref(r: &RelationReference) -> DirectRef {
    let kind = if r.is_wildcard() {
        DirectKind::Wildcard
    } else if let Some(rel) = &r.relation {
        DirectKind::Userset(rel.as_str().into())
    } else {
        DirectKind::Object
    };
    DirectRef {
        type_name: r.type_name.as_str().into(),
        kind,
        condition: (!r.condition.is_empty()).then(|| r.condition.as_str().into()),
    }
}
