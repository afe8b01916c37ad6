//! A model compiled for evaluation: types and relations looked up by name, rewrites as a
//! small tree, type restrictions ready for validating tuples, conditions compiled.

use rustc_hash::FxHashMap;
use warden_model::{AuthorizationModel, RelationReference, Userset};

use crate::condition::ConditionSet;
use crate::error::EngineError;

/// An authorization model ready for the engine. Immutable; share it behind an `Arc`.
#[derive(Debug)]
pub struct Model {
    schema: AuthorizationModel,
    types: FxHashMap<Box<str>, TypeInfo>,
    conditions: ConditionSet,
}

#[derive(Debug)]
pub(crate) struct TypeInfo {
    pub relations: FxHashMap<Box<str>, RelationInfo>,
}

#[derive(Debug)]
pub(crate) struct RelationInfo {
    /// Unique across the model: identifies `type#relation` in cycle detection.
    pub index: u32,
    pub name: Box<str>,
    pub rewrite: Rewrite,
    /// The direct type restrictions (`[user, group#member, user:* with cond]`).
    pub direct: Vec<DirectRef>,
}

#[derive(Debug)]
pub(crate) enum Rewrite {
    This,
    Computed(Box<str>),
    TupleToUserset { tupleset: Box<str>, computed: Box<str> },
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
        let mut types = FxHashMap::default();
        let mut next_index = 0u32;
        for td in &schema.type_definitions {
            let mut relations = FxHashMap::default();
            for (name, userset) in &td.relations {
                let direct = td.directly_related(name).iter().map(direct_ref).collect();
                let rewrite = compile_rewrite(userset);
                relations.insert(
                    name.as_str().into(),
                    RelationInfo { index: next_index, name: name.as_str().into(), rewrite, direct },
                );
                next_index += 1;
            }
            types.insert(td.type_name.as_str().into(), TypeInfo { relations });
        }
        let model = Model { schema, types, conditions };
        model.check_references()?;
        Ok(model)
    }

    fn check_references(&self) -> Result<(), EngineError> {
        for (type_name, ti) in &self.types {
            for rel in ti.relations.values() {
                let mut err = None;
                rel.rewrite.visit(&mut |rw| {
                    let missing = match rw {
                        Rewrite::Computed(r) if !ti.relations.contains_key(r) => Some(r),
                        Rewrite::TupleToUserset { tupleset, .. }
                            if !ti.relations.contains_key(tupleset) =>
                        {
                            Some(tupleset)
                        }
                        _ => None,
                    };
                    if let Some(m) = missing {
                        err.get_or_insert_with(|| {
                            format!("relation `{type_name}#{}` refers to undefined relation `{m}`", rel.name)
                        });
                    }
                });
                if let Some(e) = err {
                    return Err(EngineError::InvalidModel(e));
                }
                for d in &rel.direct {
                    if let Some(c) = &d.condition {
                        if !self.conditions.contains(c) {
                            return Err(EngineError::InvalidModel(format!(
                                "condition `{c}` used on `{type_name}#{}` is not defined",
                                rel.name
                            )));
                        }
                    }
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

    pub(crate) fn type_info(&self, name: &str) -> Option<&TypeInfo> {
        self.types.get(name)
    }

    /// Whether `type_name` is defined.
    pub fn has_type(&self, type_name: &str) -> bool {
        self.types.contains_key(type_name)
    }

    /// Whether `type_name#relation` is defined.
    pub fn has_relation(&self, type_name: &str, relation: &str) -> bool {
        self.types.get(type_name).is_some_and(|t| t.relations.contains_key(relation))
    }

    /// The relation `type_name#relation`, or the matching not-found error.
    pub(crate) fn relation(&self, type_name: &str, relation: &str) -> Result<&RelationInfo, EngineError> {
        let ti = self
            .types
            .get(type_name)
            .ok_or_else(|| EngineError::TypeNotFound(type_name.to_string()))?;
        ti.relations.get(relation).ok_or_else(|| EngineError::RelationNotFound {
            type_name: type_name.to_string(),
            relation: relation.to_string(),
        })
    }
}

impl RelationInfo {
    /// Whether a tuple with this user (type, kind) and condition may be assigned directly.
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

impl Rewrite {
    fn visit(&self, f: &mut dyn FnMut(&Rewrite)) {
        f(self);
        match self {
            Rewrite::Union(c) | Rewrite::Intersection(c) => c.iter().for_each(|r| r.visit(f)),
            Rewrite::Difference(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            _ => {}
        }
    }
}

fn compile_rewrite(u: &Userset) -> Rewrite {
    match u {
        Userset::This(_) => Rewrite::This,
        Userset::Computed(c) => Rewrite::Computed(c.relation.as_str().into()),
        Userset::TupleToUserset(t) => Rewrite::TupleToUserset {
            tupleset: t.tupleset.relation.as_str().into(),
            computed: t.computed_userset.relation.as_str().into(),
        },
        Userset::Union(c) => Rewrite::Union(c.child.iter().map(compile_rewrite).collect()),
        Userset::Intersection(c) => {
            Rewrite::Intersection(c.child.iter().map(compile_rewrite).collect())
        }
        Userset::Difference(d) => Rewrite::Difference(
            Box::new(compile_rewrite(&d.base)),
            Box::new(compile_rewrite(&d.subtract)),
        ),
    }
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
