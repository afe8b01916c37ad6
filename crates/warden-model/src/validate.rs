//! Semantic validation of a model, the checks OpenFGA's validator makes: reserved and
//! duplicate names, undefined types, relations and conditions, unused conditions,
//! tuple-to-userset rules, and relations that no tuple could ever satisfy (no entry
//! point, or only a loop). With the DSL source at hand, each error points at the line
//! and columns of the offending symbol.

use std::collections::{HashMap, HashSet};

use crate::dsl::strip_comment;
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
    validate_located(model, &Locator::new(src.unwrap_or("")))
}

/// All semantic errors, placed with `loc` (which may span several files).
pub(crate) fn validate_located(model: &AuthorizationModel, loc: &Locator<'_>) -> Vec<ModelError> {
    semantic_errors(model, loc)
        .into_iter()
        .map(|e| loc.place(e))
        .collect()
}

fn semantic_errors(model: &AuthorizationModel, loc: &Locator<'_>) -> Vec<ModelError> {
    let mut errors = Vec::new();
    let mut e = |kind: ModelErrorKind, msg: String, pos: (usize, usize, usize)| {
        errors.push(ModelError::new(kind, msg, pos.0, pos.1, pos.2));
    };
    if model.schema_version.is_empty() {
        // A module file on its own: nothing more can be checked until it is combined.
        return vec![ModelError::new(
            ModelErrorKind::SchemaVersionRequired,
            "schema version required",
            0,
            0,
            0,
        )];
    }
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
        if !valid_name(t, 254) {
            e(
                ModelErrorKind::InvalidName,
                format!("type '{t}' does not match naming rule: '^[^:#@\\*\\s]{{1,254}}$'."),
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
            if !valid_name(r, 50) {
                e(
                    ModelErrorKind::InvalidName,
                    format!(
                        "relation '{r}' of type '{t}' does not match naming rule: '^[^:#@\\*\\s]{{1,50}}$'."
                    ),
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
            check_rewrite(&types, td, rewrite, loc, line, &mut e);
        }
    }
    for (name, c) in &model.conditions {
        if *name != c.name {
            e(
                ModelErrorKind::DifferentNestedConditionName,
                format!(
                    "condition key is `{name}` but nested name property is {}",
                    c.name
                ),
                loc.condition_pos(name),
            );
        }
        if !used_conditions.contains(name.as_str()) {
            e(
                ModelErrorKind::ConditionNotUsed,
                format!("`{name}` condition is not used in the model."),
                loc.condition_pos(name),
            );
        }
    }
    // A file of a modular model holds one module: the JSON must not claim otherwise.
    let mut modules: indexmap::IndexMap<String, Vec<String>> = indexmap::IndexMap::new();
    let mut note = |file: Option<&str>, module: Option<&str>| {
        if let (Some(f), Some(m)) = (file, module) {
            let list = modules.entry(f.to_string()).or_default();
            if !list.iter().any(|x| x == m) {
                list.push(m.to_string());
            }
        }
    };
    for td in &model.type_definitions {
        let Some(meta) = &td.metadata else { continue };
        let tfile = meta.source_info.as_ref().map(|s| s.file.as_str());
        note(tfile, meta.module.as_deref());
        for rm in meta.relations.values() {
            let file = rm.source_info.as_ref().map(|s| s.file.as_str()).or(tfile);
            note(file, rm.module.as_deref().or(meta.module.as_deref()));
        }
    }
    for c in model.conditions.values() {
        if let Some(m) = &c.metadata {
            note(
                m.source_info.as_ref().map(|s| s.file.as_str()),
                m.module.as_deref(),
            );
        }
    }
    for (file, list) in &modules {
        if list.len() > 1 {
            e(
                ModelErrorKind::MultipleModulesInFile,
                format!(
                    "file {file} would contain multiple module definitions ({}) when transforming to DSL. Only one module can be defined per file.",
                    list.join(", ")
                ),
                (0, 0, 0),
            );
        }
    }
    if errors.is_empty() {
        for (t, r, looped) in without_entry_point(model, &types) {
            let why = if looped {
                "potential loop"
            } else {
                "no entrypoint"
            };
            errors.push({
                let p = loc.define_pos(t, r);
                ModelError::new(
                    ModelErrorKind::RelationNoEntryPoint,
                    format!("`{r}` is an impossible relation for `{t}` ({why})."),
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
                    ModelErrorKind::InvalidRelationType,
                    format!("`{ts}` is not a valid relation for `{}`.", td.type_name),
                    loc.phrase_in(line, &phrase),
                ),
                Some(Userset::This(_)) => {
                    let restrictions = td.directly_related(ts);
                    if restrictions
                        .iter()
                        .any(|r| r.relation.is_some() || r.is_wildcard())
                    {
                        e(
                            ModelErrorKind::TupleusersetNotDirect,
                            format!(
                                "`{ts}` relation used inside from allows only direct relation."
                            ),
                            loc.last_word_in(line, ts),
                        );
                        return;
                    }
                    let parents: Vec<&str> =
                        restrictions.iter().map(|r| r.type_name.as_str()).collect();
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
        }
        Userset::Union(c) | Userset::Intersection(c) => {
            let mut seen = HashSet::new();
            for child in &c.child {
                if let Some(name) = partial_name(child)
                    && !seen.insert(name.clone())
                {
                    duplicate_partial(&name, loc, line, e);
                }
                check_rewrite(types, td, child, loc, line, e);
            }
        }
        Userset::Difference(d) => {
            if let Some(name) = partial_name(&d.base)
                && partial_name(&d.subtract).as_ref() == Some(&name)
            {
                duplicate_partial(&name, loc, line, e);
            }
            check_rewrite(types, td, &d.base, loc, line, e);
            check_rewrite(types, td, &d.subtract, loc, line, e);
        }
    }
}

/// OpenFGA's naming rule for types (at most 254 characters) and relations (at most 50):
/// no `:`, `#`, `@`, `*` or whitespace.
pub fn valid_name(name: &str, max: usize) -> bool {
    let n = name.chars().count();
    (1..=max).contains(&n)
        && !name
            .chars()
            .any(|c| matches!(c, ':' | '#' | '@' | '*') || c.is_whitespace())
}

/// Whether `id` is a valid object id: letters, digits and `_ | * @ . + / -`, not
/// starting with `*` (so `#`, `:`, commas and whitespace are refused everywhere).
pub fn valid_object_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('*')
        && id.chars().all(|c| {
            c.is_alphanumeric() || matches!(c, '_' | '|' | '*' | '@' | '.' | '+' | '/' | '-')
        })
}

/// How a leaf of a rewrite reads in the DSL (`viewer`, `viewer from parent`).
fn partial_name(u: &Userset) -> Option<String> {
    match u {
        Userset::Computed(c) => Some(c.relation.clone()),
        Userset::TupleToUserset(t) => Some(format!(
            "{} from {}",
            t.computed_userset.relation, t.tupleset.relation
        )),
        _ => None,
    }
}

fn duplicate_partial(
    name: &str,
    loc: &Locator<'_>,
    line: Option<usize>,
    e: &mut impl FnMut(ModelErrorKind, String, (usize, usize, usize)),
) {
    let rel = line
        .and_then(|l| loc.lines.get(l))
        .and_then(|t| t.trim_start().strip_prefix("define "))
        .and_then(|t| t.split(':').next())
        .map_or(String::new(), |r| r.trim().to_string());
    e(
        ModelErrorKind::DuplicatedError,
        format!("the partial relation definition `{name}` is a duplicate in the relation `{rel}`."),
        loc.phrase_in(line, name),
    );
}

/// Relations no tuple can ever satisfy, each with whether a loop is to blame.
///
/// The walk follows OpenFGA's validator: a relation has an entry point when some path
/// through its rewrite reaches a concrete type (or wildcard) without revisiting a
/// relation already on the path. A union needs one child with an entry point; an
/// intersection and an exclusion need all of theirs (the subtracted part included).
/// Reaching a relation already on the path through a computed relation marks a loop.
fn without_entry_point<'m>(
    model: &'m AuthorizationModel,
    types: &HashMap<&str, &'m TypeDefinition>,
) -> Vec<(&'m str, &'m str, bool)> {
    let mut out = Vec::new();
    for td in &model.type_definitions {
        let looped = computed_cycles(td);
        for (r, u) in &td.relations {
            let t = td.type_name.as_str();
            if looped.contains(r.as_str()) {
                out.push((t, r.as_str(), true));
                continue;
            }
            let mut path = HashSet::new();
            path.insert((t, r.as_str()));
            let (entry, lp) = entry_or_loop(types, td, r, u, &path);
            if !entry {
                out.push((t, r.as_str(), lp));
            }
        }
    }
    out
}

/// Relations of `td` on a cycle of same-object references (`define a: b`, in any
/// position of a rewrite) where the cycle also accepts direct assignments: OpenFGA
/// rejects these as potential loops even though a tuple could enter them.
fn computed_cycles(td: &TypeDefinition) -> HashSet<&str> {
    fn refs<'a>(u: &'a Userset, out: &mut Vec<&'a str>) {
        match u {
            Userset::Computed(c) => out.push(c.relation.as_str()),
            Userset::Union(c) | Userset::Intersection(c) => {
                c.child.iter().for_each(|c| refs(c, out));
            }
            Userset::Difference(d) => {
                refs(&d.base, out);
                refs(&d.subtract, out);
            }
            Userset::This(_) | Userset::TupleToUserset(_) => {}
        }
    }
    fn has_this(u: &Userset) -> bool {
        match u {
            Userset::This(_) => true,
            Userset::Union(c) | Userset::Intersection(c) => c.child.iter().any(has_this),
            Userset::Difference(d) => has_this(&d.base) || has_this(&d.subtract),
            _ => false,
        }
    }
    let edges: HashMap<&str, Vec<&str>> = td
        .relations
        .iter()
        .map(|(r, u)| {
            let mut v = Vec::new();
            refs(u, &mut v);
            (r.as_str(), v)
        })
        .collect();
    let reach = |from: &str| -> HashSet<&str> {
        let mut seen = HashSet::new();
        let mut stack: Vec<&str> = edges.get(from).cloned().unwrap_or_default();
        while let Some(n) = stack.pop() {
            if seen.insert(n) {
                stack.extend(edges.get(n).into_iter().flatten().copied());
            }
        }
        seen
    };
    let reachable: HashMap<&str, HashSet<&str>> = edges.keys().map(|r| (*r, reach(r))).collect();
    let mut out = HashSet::new();
    for (r, reach_r) in &reachable {
        if !reach_r.contains(r) {
            continue;
        }
        // The strongly connected component of `r`.
        let scc: Vec<&str> = reach_r
            .iter()
            .copied()
            .filter(|o| reachable.get(o).is_some_and(|s| s.contains(r)))
            .collect();
        if scc
            .iter()
            .any(|o| td.relations.get(*o).is_some_and(has_this))
        {
            out.insert(*r);
        }
    }
    out
}

/// (has an entry point, a loop was met) for rewrite `u` of relation `rel` on `td`;
/// `path` holds the (type, relation) pairs already being resolved.
fn entry_or_loop<'m>(
    types: &HashMap<&str, &'m TypeDefinition>,
    td: &'m TypeDefinition,
    rel: &'m str,
    u: &'m Userset,
    path: &HashSet<(&'m str, &'m str)>,
) -> (bool, bool) {
    let t = td.type_name.as_str();
    let enter = |target: &'m TypeDefinition, r: &'m str, path: &HashSet<(&'m str, &'m str)>| {
        let Some(ru) = target.relations.get(r) else {
            return (false, false);
        };
        let mut p = path.clone();
        p.insert((target.type_name.as_str(), r));
        entry_or_loop(types, target, r, ru, &p)
    };
    match u {
        Userset::This(_) => {
            for rr in td.directly_related(rel) {
                let Some(ur) = rr.relation.as_deref() else {
                    return (true, false);
                };
                let Some(target) = types.get(rr.type_name.as_str()) else {
                    return (false, false);
                };
                if !target.relations.contains_key(ur) {
                    return (false, false);
                }
                if path.contains(&(rr.type_name.as_str(), ur)) {
                    continue;
                }
                if enter(target, ur, path).0 {
                    return (true, false);
                }
            }
            (false, false)
        }
        Userset::Computed(c) => {
            let r = c.relation.as_str();
            if !td.relations.contains_key(r) {
                return (false, false);
            }
            if path.contains(&(t, r)) {
                return (false, true);
            }
            enter(td, r, path)
        }
        Userset::TupleToUserset(ttu) => {
            let cr = ttu.computed_userset.relation.as_str();
            for p in td.directly_related(&ttu.tupleset.relation) {
                let Some(target) = types.get(p.type_name.as_str()) else {
                    continue;
                };
                if !target.relations.contains_key(cr)
                    || path.contains(&(target.type_name.as_str(), cr))
                {
                    continue;
                }
                if enter(target, cr, path).0 {
                    return (true, false);
                }
            }
            (false, false)
        }
        Userset::Union(c) => {
            let mut lp = false;
            for child in &c.child {
                let (entry, l) = entry_or_loop(types, td, rel, child, path);
                if entry {
                    return (true, false);
                }
                lp |= l;
            }
            (false, lp)
        }
        Userset::Intersection(c) => {
            for child in &c.child {
                let (entry, l) = entry_or_loop(types, td, rel, child, path);
                if !entry {
                    return (false, l);
                }
            }
            (true, false)
        }
        Userset::Difference(d) => {
            for part in [&d.base, &d.subtract] {
                let (entry, l) = entry_or_loop(types, td, rel, part, path);
                if !entry {
                    return (false, l);
                }
            }
            (true, false)
        }
    }
}

/// Finds where names sit in the DSL source (0-based line, column span).
pub(crate) struct Locator<'a> {
    lines: Vec<&'a str>,
    /// (first line, file name) of each file, when several are concatenated.
    files: Vec<(usize, &'a str)>,
}

impl<'a> Locator<'a> {
    fn new(src: &'a str) -> Self {
        Locator {
            lines: src.lines().collect(),
            files: Vec::new(),
        }
    }

    /// A locator over several files, read as if concatenated.
    pub(crate) fn from_files(files: &[(&'a str, &'a str)]) -> Self {
        let mut loc = Locator {
            lines: Vec::new(),
            files: Vec::new(),
        };
        for (name, text) in files {
            loc.files.push((loc.lines.len(), name));
            loc.lines.extend(text.lines());
        }
        loc
    }

    /// Turns a line of the concatenation back into (file, line in that file).
    fn place(&self, mut e: ModelError) -> ModelError {
        if let Some((start, name)) = self.files.iter().rev().find(|(s, _)| *s <= e.line) {
            e.line -= start;
            e.file = Some((*name).to_string());
        }
        e
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

    /// The line declaring type `t` (`type t`, else `extend type t`).
    fn type_line(&self, t: &str) -> Option<usize> {
        let header = |l: &str| -> Option<(bool, bool)> {
            let w: Vec<&str> = strip_comment(l).split_whitespace().collect();
            match w.as_slice() {
                ["type", n] => Some((*n == t, false)),
                ["extend", "type", n] => Some((*n == t, true)),
                _ => None,
            }
        };
        self.lines
            .iter()
            .position(|l| header(l) == Some((true, false)))
            .or_else(|| {
                self.lines
                    .iter()
                    .position(|l| header(l) == Some((true, true)))
            })
    }

    fn type_pos(&self, t: &str) -> (usize, usize, usize) {
        self.type_line(t)
            .map_or((0, 0, 0), |l| self.find_word(l, t))
    }

    fn define_line(&self, t: &str, r: &str) -> Option<usize> {
        let is_header = |l: &str, want: &str| {
            let w: Vec<&str> = strip_comment(l).split_whitespace().collect();
            matches!(w.as_slice(), ["type", n] | ["extend", "type", n] if *n == want)
        };
        let ends_block = |l: &str| {
            let l = l.trim_start();
            l.starts_with("type ")
                || l.starts_with("extend ")
                || l.starts_with("condition ")
                || l.starts_with("module ")
        };
        let first = self.type_line(t);
        let headers = first.into_iter().chain(
            (0..self.lines.len()).filter(|&i| Some(i) != first && is_header(self.lines[i], t)),
        );
        for start in headers {
            let found = self
                .lines
                .iter()
                .enumerate()
                .skip(start + 1)
                .take_while(|(i, l)| !ends_block(l) && !self.files.iter().any(|(s, _)| s == i))
                .find_map(|(i, l)| {
                    let rest = l.trim_start().strip_prefix("define ")?;
                    (rest.split(':').next()?.trim() == r).then_some(i)
                });
            if found.is_some() {
                return found;
            }
        }
        None
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
                l.trim_start().strip_prefix("condition ").is_some_and(|r| {
                    r.trim_start()
                        .strip_prefix(name)
                        .is_some_and(|rest| rest.trim_start().starts_with('('))
                })
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
        let colon = text.find(':').map_or(0, |c| c + 1);
        text[colon..]
            .find(phrase)
            .map_or((l, 0, 0), |c| (l, colon + c, colon + c + phrase.len()))
    }
}
