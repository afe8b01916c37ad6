//! Semantic validation of a model, the checks OpenFGA's validator makes: reserved and
//! duplicate names, undefined types, relations and conditions, unused conditions,
//! tuple-to-userset rules, and relations that no tuple could ever satisfy (no entry
//! point, or only a loop). With the DSL source at hand, each error points at the line
//! and columns of the offending symbol.

use std::collections::{HashMap, HashSet};

use crate::error::{ModelError, ModelErrorKind};
use crate::schema::{AuthorizationModel, TypeDefinition, Userset};

/// Every semantic error of `model` (empty if it is valid). `src` is the DSL the model
/// was parsed from, used only to place errors.
pub fn validate(model: &AuthorizationModel, src: Option<&str>) -> Result<(), ModelError> {
    match validate_all(model, src).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// All semantic errors, in source order.
pub fn validate_all(model: &AuthorizationModel, src: Option<&str>) -> Vec<ModelError> {
    let loc = Locator::new(src.unwrap_or(""));
    let mut errors = Vec::new();
    let mut e = |kind: ModelErrorKind, msg: String, pos: (usize, usize, usize)| {
        errors.push(ModelError::new(kind, msg, pos.0, pos.1, pos.2));
    };
    if model.schema_version != "1.1" && model.schema_version != "1.2" {
        e(
            ModelErrorKind::InvalidSchema,
            format!("invalid schema `{}`", model.schema_version),
            loc.find_word(0, &model.schema_version),
        );
    }
    let types: HashMap<&str, &TypeDefinition> = model
        .type_definitions
        .iter()
        .map(|t| (t.type_name.as_str(), t))
        .collect();
    let mut seen_types = HashSet::new();
    let mut used_conditions = HashSet::new();
    for td in &model.type_definitions {
        let t = td.type_name.as_str();
        if t == "self" || t == "this" {
            e(
                ModelErrorKind::ReservedTypeKeywords,
                "a type cannot be named 'self' or 'this'.".into(),
                loc.type_pos(t),
            );
        }
        if !seen_types.insert(t) {
            e(
                ModelErrorKind::DuplicatedError,
                format!("the type `{t}` is a duplicate."),
                loc.type_pos(t),
            );
        }
        for (r, rewrite) in &td.relations {
            if r == "self" || r == "this" {
                e(
                    ModelErrorKind::ReservedRelationKeywords,
                    "a relation cannot be named 'self' or 'this'.".into(),
                    loc.define_pos(t, r),
                );
            }
            let line = loc.define_line(t, r);
            let mut seen_refs = HashSet::new();
            for rr in td.directly_related(r) {
                let name = match (&rr.relation, rr.is_wildcard()) {
                    (Some(rel), _) => format!("{}#{rel}", rr.type_name),
                    (None, true) => format!("{}:*", rr.type_name),
                    (None, false) => rr.type_name.clone(),
                };
                if !rr.condition.is_empty() {
                    used_conditions.insert(rr.condition.as_str());
                    if !model.conditions.contains_key(&rr.condition) {
                        e(
                            ModelErrorKind::ConditionNotDefined,
                            format!(
                                "`{}` is not a defined condition in the model.",
                                rr.condition
                            ),
                            loc.word_in(line, &rr.condition),
                        );
                    }
                }
                if !seen_refs.insert((name.clone(), rr.condition.clone())) {
                    e(
                        ModelErrorKind::DuplicatedError,
                        format!(
                            "the type restriction `{name}` is a duplicate in the relation `{r}`."
                        ),
                        loc.word_in(line, &name),
                    );
                }
                match types.get(rr.type_name.as_str()) {
                    None => e(
                        ModelErrorKind::InvalidType,
                        format!("`{}` is not a valid type.", rr.type_name),
                        loc.word_in(line, &rr.type_name),
                    ),
                    Some(target) => {
                        if let Some(rel) = &rr.relation
                            && !target.relations.contains_key(rel)
                        {
                            e(
                                ModelErrorKind::InvalidRelationType,
                                format!("`{rel}` is not a valid relation for `{}`.", rr.type_name),
                                loc.word_in(line, &name),
                            );
                        }
                    }
                }
            }
            check_rewrite(model, &types, td, rewrite, &loc, line, &mut e);
        }
    }
    for name in model.conditions.keys() {
        if !used_conditions.contains(name.as_str()) {
            e(
                ModelErrorKind::ConditionNotUsed,
                format!("`{name}` condition is not used in the model."),
                loc.condition_pos(name),
            );
        }
    }
    if errors.is_empty() {
        for (t, r) in without_entry_point(model, &types) {
            errors.push({
                let p = loc.define_pos(t, r);
                ModelError::new(
                    ModelErrorKind::RelationNoEntryPoint,
                    format!("`{r}` is an impossible relation for `{t}` (no entrypoint)."),
                    p.0,
                    p.1,
                    p.2,
                )
            });
        }
    }
    errors
}

#[allow(clippy::too_many_arguments)]
fn check_rewrite(
    model: &AuthorizationModel,
    types: &HashMap<&str, &TypeDefinition>,
    td: &TypeDefinition,
    u: &Userset,
    loc: &Locator<'_>,
    line: Option<usize>,
    e: &mut impl FnMut(ModelErrorKind, String, (usize, usize, usize)),
) {
    match u {
        Userset::This(_) => {}
        Userset::Computed(c) => {
            if !td.relations.contains_key(&c.relation) {
                e(
                    ModelErrorKind::MissingDefinition,
                    format!("the relation `{}` does not exist.", c.relation),
                    loc.word_in(line, &c.relation),
                );
            }
        }
        Userset::TupleToUserset(t) => {
            let ts = &t.tupleset.relation;
            let cr = &t.computed_userset.relation;
            let phrase = format!("{cr} from {ts}");
            match td.relations.get(ts) {
                None => e(
                    ModelErrorKind::MissingDefinition,
                    format!("the relation `{ts}` does not exist."),
                    loc.word_in(line, ts),
                ),
                Some(Userset::This(_)) => {
                    let parents: Vec<&str> = td
                        .directly_related(ts)
                        .iter()
                        .filter(|r| r.relation.is_none() && !r.is_wildcard())
                        .map(|r| r.type_name.as_str())
                        .collect();
                    let found = parents
                        .iter()
                        .any(|p| types.get(p).is_some_and(|pt| pt.relations.contains_key(cr)));
                    if !found && !parents.is_empty() {
                        e(
                            ModelErrorKind::InvalidRelationOnTupleset,
                            format!(
                                "the `{cr}` relation definition on type `{}` is not valid: `{cr}` does not exist on `{ts}`, which is of type `{}`.",
                                td.type_name,
                                parents.join(", ")
                            ),
                            loc.phrase_in(line, &phrase),
                        );
                    }
                }
                Some(_) => e(
                    ModelErrorKind::TupleusersetNotDirect,
                    format!("`{ts}` relation used inside from allows only direct relation."),
                    loc.last_word_in(line, ts),
                ),
            }
            let _ = model;
        }
        Userset::Union(c) | Userset::Intersection(c) => {
            for child in &c.child {
                check_rewrite(model, types, td, child, loc, line, e);
            }
        }
        Userset::Difference(d) => {
            check_rewrite(model, types, td, &d.base, loc, line, e);
            check_rewrite(model, types, td, &d.subtract, loc, line, e);
        }
    }
}

/// Relations no tuple can ever satisfy: the least fixpoint of "has an entry point".
fn without_entry_point<'m>(
    model: &'m AuthorizationModel,
    types: &HashMap<&str, &'m TypeDefinition>,
) -> Vec<(&'m str, &'m str)> {
    let mut entry: HashSet<(&str, &str)> = HashSet::new();
    loop {
        let mut changed = false;
        for td in &model.type_definitions {
            for (r, u) in &td.relations {
                let key = (td.type_name.as_str(), r.as_str());
                if !entry.contains(&key) && has_entry(td, r, u, types, &entry) {
                    entry.insert(key);
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut out = Vec::new();
    for td in &model.type_definitions {
        for r in td.relations.keys() {
            if !entry.contains(&(td.type_name.as_str(), r.as_str())) {
                out.push((td.type_name.as_str(), r.as_str()));
            }
        }
    }
    out
}

fn has_entry(
    td: &TypeDefinition,
    rel: &str,
    u: &Userset,
    types: &HashMap<&str, &TypeDefinition>,
    entry: &HashSet<(&str, &str)>,
) -> bool {
    match u {
        Userset::This(_) => td.directly_related(rel).iter().any(|r| match &r.relation {
            None => true,
            Some(ur) => entry.contains(&(r.type_name.as_str(), ur.as_str())),
        }),
        Userset::Computed(c) => entry.contains(&(td.type_name.as_str(), c.relation.as_str())),
        Userset::TupleToUserset(t) => td.directly_related(&t.tupleset.relation).iter().any(|p| {
            p.relation.is_none()
                && types.contains_key(p.type_name.as_str())
                && entry.contains(&(p.type_name.as_str(), t.computed_userset.relation.as_str()))
        }),
        Userset::Union(c) => c.child.iter().any(|c| has_entry(td, rel, c, types, entry)),
        Userset::Intersection(c) => c.child.iter().all(|c| has_entry(td, rel, c, types, entry)),
        Userset::Difference(d) => has_entry(td, rel, &d.base, types, entry),
    }
}

/// Finds where names sit in the DSL source (0-based line, column span).
struct Locator<'a> {
    lines: Vec<&'a str>,
}

impl<'a> Locator<'a> {
    fn new(src: &'a str) -> Self {
        Locator {
            lines: src.lines().collect(),
        }
    }

    fn words(line: &str) -> impl Iterator<Item = (usize, &str)> {
        let is_w = |c: char| {
            c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/' | '#' | ':' | '*')
        };
        let mut out = Vec::new();
        let mut start = None;
        for (i, c) in line.char_indices() {
            match (is_w(c), start) {
                (true, None) => start = Some(i),
                (false, Some(s)) => {
                    out.push((s, &line[s..i]));
                    start = None;
                }
                _ => {}
            }
        }
        if let Some(s) = start {
            out.push((s, &line[s..]));
        }
        out.into_iter()
    }

    fn type_line(&self, t: &str) -> Option<usize> {
        self.lines.iter().position(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            matches!(w.as_slice(), ["type", n] | ["extend", "type", n] if *n == t)
        })
    }

    fn type_pos(&self, t: &str) -> (usize, usize, usize) {
        self.type_line(t)
            .map_or((0, 0, 0), |l| self.find_word(l, t))
    }

    fn define_line(&self, t: &str, r: &str) -> Option<usize> {
        let start = self.type_line(t)?;
        self.lines
            .iter()
            .enumerate()
            .skip(start + 1)
            .take_while(|(_, l)| !l.trim_start().starts_with("type "))
            .find_map(|(i, l)| {
                let rest = l.trim_start().strip_prefix("define ")?;
                (rest.split(':').next()?.trim() == r).then_some(i)
            })
    }

    fn define_pos(&self, t: &str, r: &str) -> (usize, usize, usize) {
        let Some(l) = self.define_line(t, r) else {
            return (0, 0, 0);
        };
        let text = self.lines.get(l).copied().unwrap_or("");
        let col = text.find("define ").map_or(0, |c| c + "define ".len());
        let col = col
            + (text[col.min(text.len())..].len() - text[col.min(text.len())..].trim_start().len());
        (l, col, col + r.len())
    }

    fn condition_pos(&self, name: &str) -> (usize, usize, usize) {
        self.lines
            .iter()
            .position(|l| {
                l.trim_start()
                    .strip_prefix("condition ")
                    .is_some_and(|r| r.trim_start().starts_with(name))
            })
            .map_or((0, 0, 0), |l| self.find_word(l, name))
    }

    /// The first whole-word `w` on line `l`.
    fn find_word(&self, l: usize, w: &str) -> (usize, usize, usize) {
        let line = self.lines.get(l).copied().unwrap_or("");
        Self::words(line)
            .find(|(_, x)| *x == w)
            .map_or((l, 0, 0), |(c, _)| (l, c, c + w.len()))
    }

    /// `w` as a whole word after the `:` of a define line.
    fn word_in(&self, line: Option<usize>, w: &str) -> (usize, usize, usize) {
        let Some(l) = line else { return (0, 0, 0) };
        let text = self.lines.get(l).copied().unwrap_or("");
        let colon = text.find(':').unwrap_or(0);
        Self::words(text)
            .find(|(c, x)| {
                *c > colon && (*x == w || x.split(['#', ':']).next() == Some(w) && !w.contains('#'))
            })
            .map_or((l, 0, 0), |(c, _)| (l, c, c + w.len()))
    }

    fn last_word_in(&self, line: Option<usize>, w: &str) -> (usize, usize, usize) {
        let Some(l) = line else { return (0, 0, 0) };
        let text = self.lines.get(l).copied().unwrap_or("");
        Self::words(text)
            .filter(|(_, x)| *x == w)
            .last()
            .map_or((l, 0, 0), |(c, _)| (l, c, c + w.len()))
    }

    fn phrase_in(&self, line: Option<usize>, phrase: &str) -> (usize, usize, usize) {
        let Some(l) = line else { return (0, 0, 0) };
        let text = self.lines.get(l).copied().unwrap_or("");
        text.find(phrase)
            .map_or((l, 0, 0), |c| (l, c, c + phrase.len()))
    }
}
