//! Modular models: an `fga.mod` manifest (`schema: '1.2'` and a `contents` list of
//! `.fga` files), and the combination of those module files into one model.
//!
//! Each module file starts with `module NAME` and declares types, `extend type` blocks
//! that add relations to a type declared elsewhere, and conditions. Combining them
//! records where each type, relation and condition came from in the model's metadata,
//! and reports every problem with the file it is in.

use std::collections::{HashMap, HashSet};

use crate::dsl::{ParsedDsl, parse_dsl_file};
use crate::error::{ModelError, ModelErrorKind};
use crate::schema::{AuthorizationModel, ConditionMetadata, Metadata, SourceInfo};
use crate::validate::{Locator, validate_located};

/// A scalar of the manifest with its span (0-based line, columns; quotes included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spanned {
    pub value: String,
    pub line: usize,
    pub column: usize,
    pub column_end: usize,
}

/// A parsed `fga.mod`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModFile {
    pub schema: Spanned,
    pub contents: Vec<Spanned>,
    /// Span of the `contents` list: first item line and column, to the line after it.
    pub contents_span: (usize, usize, usize, usize),
}

fn mod_err(message: impl Into<String>, line: usize, column: usize, end: usize) -> ModelError {
    ModelError::new(ModelErrorKind::InvalidSchema, message, line, column, end)
}

/// A YAML scalar as written: its text without quotes, and whether it was a string.
fn scalar(raw: &str) -> (String, bool) {
    let quoted = |q: char| raw.len() >= 2 && raw.starts_with(q) && raw.ends_with(q);
    if quoted('"') || quoted('\'') {
        return (raw[1..raw.len() - 1].to_string(), true);
    }
    let lower = raw.to_ascii_lowercase();
    let non_string = matches!(
        lower.as_str(),
        "true" | "false" | "yes" | "no" | "null" | "~"
    ) || raw.parse::<f64>().is_ok();
    (raw.to_string(), !non_string)
}

/// A contents entry that could leave the manifest's folder, or that is encoded to hide
/// how it does: absolute paths, `..` or `.` segments, backslashes and `%` escapes.
fn unsafe_path(p: &str) -> bool {
    p.starts_with('/')
        || p.contains('\\')
        || p.contains('%')
        || p.contains(':')
        || p.split('/')
            .any(|seg| seg == ".." || seg == "." || seg.is_empty())
}

/// Parses an `fga.mod` manifest; every problem is reported, with its position.
pub fn parse_mod_file(src: &str) -> Result<ModFile, Vec<ModelError>> {
    let lines: Vec<&str> = src.lines().collect();
    let mut errors = Vec::new();
    let mut schema: Option<Spanned> = None;
    let mut contents: Option<Vec<Spanned>> = None;
    let mut span = (0, 0, 0, 0);
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let body = line.split(" #").next().unwrap_or("");
        if body.trim().is_empty() || body.trim_start().starts_with('#') {
            i += 1;
            continue;
        }
        let Some((key, rest)) = body.split_once(':') else {
            errors.push(mod_err("expected `key: value`", i, 0, line.len()));
            i += 1;
            continue;
        };
        let value = rest.trim();
        let vcol = key.len() + 1 + (rest.len() - rest.trim_start().len());
        let vspan = |v: &str| (vcol, vcol + v.len());
        match key.trim() {
            "schema" => {
                let (text, is_string) = scalar(value);
                let (c, e) = vspan(value);
                if !is_string {
                    errors.push(mod_err(
                        format!("unexpected schema type, expected string got value {text}"),
                        i,
                        c,
                        e,
                    ));
                } else if text != "1.2" {
                    errors.push(mod_err(
                        "unsupported schema version, fga.mod only supported in version `1.2`",
                        i,
                        c,
                        e,
                    ));
                }
                schema = Some(Spanned {
                    value: text,
                    line: i,
                    column: c,
                    column_end: e,
                });
                i += 1;
            }
            "contents" => {
                i += 1;
                if !value.is_empty() {
                    let (c, e) = vspan(value);
                    errors.push(mod_err(
                        format!(
                            "unexpected contents type, expected list of strings got value {value}"
                        ),
                        i - 1,
                        c,
                        e,
                    ));
                    contents = Some(Vec::new());
                    continue;
                }
                let mut items = Vec::new();
                while i < lines.len() {
                    let l = lines[i];
                    let t = l.trim_start();
                    let Some(item) =
                        t.strip_prefix("- ")
                            .or(if t == "-" { Some("") } else { None })
                    else {
                        if t.is_empty() {
                            i += 1;
                            continue;
                        }
                        break;
                    };
                    let dash = l.len() - t.len();
                    if items.is_empty() {
                        span = (i, dash, i, 0);
                    }
                    let raw = item.trim();
                    let c = dash + 2 + (item.len() - item.trim_start().len());
                    let e = c + raw.len();
                    let (text, is_string) = scalar(raw);
                    if !is_string {
                        errors.push(mod_err(
                            format!(
                                "unexpected contents item type, expected string got value {text}"
                            ),
                            i,
                            c,
                            e,
                        ));
                    } else if !text.ends_with(".fga") {
                        errors.push(mod_err(
                            format!("contents items should use fga file extension, got {text}"),
                            i,
                            c,
                            e,
                        ));
                    } else if unsafe_path(&text) {
                        errors.push(mod_err(format!("invalid contents item {text}"), i, c, e));
                    }
                    items.push(Spanned {
                        value: text,
                        line: i,
                        column: c,
                        column_end: e,
                    });
                    span.2 = i + 1;
                    i += 1;
                }
                contents = Some(items);
            }
            other => {
                errors.push(mod_err(format!("unknown field `{other}`"), i, 0, key.len()));
                i += 1;
            }
        }
    }
    if schema.is_none() {
        errors.push(mod_err("missing schema field", 0, 0, 0));
    }
    if contents.is_none() {
        errors.push(mod_err("missing contents field", 0, 0, 0));
    }
    match (schema, contents) {
        (Some(schema), Some(contents)) if errors.is_empty() => Ok(ModFile {
            schema,
            contents,
            contents_span: span,
        }),
        _ => Err(errors),
    }
}

/// The manifest as positioned JSON (what OpenFGA's tooling emits for `fga.mod`).
pub fn mod_file_json(m: &ModFile) -> serde_json::Value {
    let pos = |s: &Spanned| {
        serde_json::json!({
            "value": s.value,
            "line": {"start": s.line, "end": s.line},
            "column": {"start": s.column, "end": s.column_end},
        })
    };
    let (l0, c0, l1, c1) = m.contents_span;
    serde_json::json!({
        "schema": pos(&m.schema),
        "contents": {
            "value": m.contents.iter().map(pos).collect::<Vec<_>>(),
            "line": {"start": l0, "end": l1},
            "column": {"start": c0, "end": c1},
        },
    })
}

/// One module file: its path as the manifest names it, and its text.
#[derive(Debug, Clone)]
pub struct ModuleSource {
    pub path: String,
    pub text: String,
}

/// Combines module files into one schema 1.2 model. On failure, every error found,
/// each naming its file.
pub fn combine(files: &[ModuleSource]) -> Result<AuthorizationModel, Vec<ModelError>> {
    let mut errors: Vec<ModelError> = Vec::new();
    let mut model = AuthorizationModel {
        schema_version: "1.2".into(),
        ..Default::default()
    };
    let mut parsed = Vec::new();
    for f in files {
        match parse_dsl_file(&f.text) {
            Err(e) => errors.push(e.in_file(&f.path)),
            Ok(p) if p.module.is_none() => {
                errors.push(
                    ModelError::new(ModelErrorKind::Syntax, "file is not a module", 0, 0, 0)
                        .in_file(&f.path),
                );
            }
            Ok(p) => parsed.push((f, p)),
        }
    }
    let source_info = |path: &str| {
        Some(SourceInfo {
            file: path.to_string(),
        })
    };
    // Declared types and conditions first, in file order.
    let mut index: HashMap<String, usize> = HashMap::new();
    for (f, p) in &parsed {
        let module = p.module.clone();
        errors.extend(
            duplicate_extensions(p)
                .into_iter()
                .map(|e| e.in_file(&f.path)),
        );
        for (td, decl) in p
            .model
            .type_definitions
            .iter()
            .zip(type_origins(p))
            .filter(|(_, d)| !d.extends)
        {
            if index.contains_key(&td.type_name) {
                errors.push(
                    ModelError::new(
                        ModelErrorKind::DuplicatedError,
                        format!("the type `{}` is a duplicate.", td.type_name),
                        decl.line,
                        decl.column,
                        decl.column + td.type_name.len(),
                    )
                    .in_file(&f.path),
                );
                continue;
            }
            let mut td = td.clone();
            let meta = td.metadata.get_or_insert_with(Metadata::default);
            meta.module = module.clone();
            meta.source_info = source_info(&f.path);
            index.insert(td.type_name.clone(), model.type_definitions.len());
            model.type_definitions.push(td);
        }
        for c in &p.declared_conditions {
            let Some(cond) = p.model.conditions.get(&c.name) else {
                continue;
            };
            if model.conditions.contains_key(&c.name) {
                errors.push(
                    ModelError::new(
                        ModelErrorKind::DuplicatedError,
                        format!("duplicate condition {}", c.name),
                        c.line,
                        c.column,
                        c.column + c.name.len(),
                    )
                    .in_file(&f.path),
                );
                continue;
            }
            let mut cond = cond.clone();
            cond.metadata = Some(ConditionMetadata {
                module: module.clone(),
                source_info: source_info(&f.path),
            });
            model.conditions.insert(c.name.clone(), cond);
        }
    }
    // Then the extensions, which may target a type of any file.
    for (f, p) in &parsed {
        for (td, decl) in p
            .model
            .type_definitions
            .iter()
            .zip(type_origins(p))
            .filter(|(_, d)| d.extends)
        {
            let Some(&at) = index.get(&td.type_name) else {
                errors.push(
                    ModelError::new(
                        ModelErrorKind::InvalidType,
                        format!("extended type {} does not exist", td.type_name),
                        decl.line,
                        decl.column,
                        decl.column + td.type_name.len(),
                    )
                    .in_file(&f.path),
                );
                continue;
            };
            let target = &mut model.type_definitions[at];
            for (r, u) in &td.relations {
                if target.relations.contains_key(r) {
                    let (line, col) = define_position(&f.text, decl.line, r);
                    errors.push(
                        ModelError::new(
                            ModelErrorKind::DuplicatedError,
                            format!("relation {r} already exists on type {}", td.type_name),
                            line,
                            col,
                            col + r.len(),
                        )
                        .in_file(&f.path),
                    );
                    continue;
                }
                target.relations.insert(r.clone(), u.clone());
                let mut rm = td
                    .metadata
                    .as_ref()
                    .and_then(|m| m.relations.get(r))
                    .cloned()
                    .unwrap_or_default();
                rm.module = p.module.clone();
                rm.source_info = source_info(&f.path);
                target
                    .metadata
                    .get_or_insert_with(Metadata::default)
                    .relations
                    .insert(r.clone(), rm);
            }
        }
    }
    // Semantic validation of the whole, placed back into the files.
    let named: Vec<(&str, &str)> = files
        .iter()
        .map(|f| (f.path.as_str(), f.text.as_str()))
        .collect();
    let loc = Locator::from_files(&named);
    let semantic = validate_located(&model, &loc);
    let structural = !errors.is_empty();
    errors.extend(semantic.into_iter().filter(|e| {
        !structural
            || matches!(
                e.kind,
                ModelErrorKind::InvalidName
                    | ModelErrorKind::ReservedTypeKeywords
                    | ModelErrorKind::ReservedRelationKeywords
            )
    }));
    if errors.is_empty() {
        Ok(model)
    } else {
        errors.sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        Err(errors)
    }
}

/// A type extended twice in one file: one error per repeat.
pub fn duplicate_extensions(p: &ParsedDsl) -> Vec<ModelError> {
    let mut seen = HashSet::new();
    p.extended_types
        .iter()
        .filter(|x| !seen.insert(x.name.as_str()))
        .map(|x| {
            ModelError::new(
                ModelErrorKind::Syntax,
                format!("'{}' is already extended in file.", x.name),
                x.line,
                x.column,
                x.column + x.name.len(),
            )
        })
        .collect()
}

/// Where each type block of a parsed file was declared, and whether it is an extension.
struct Origin {
    line: usize,
    column: usize,
    extends: bool,
}

fn type_origins(p: &ParsedDsl) -> Vec<Origin> {
    let mut all: Vec<Origin> = p
        .declared_types
        .iter()
        .map(|n| Origin {
            line: n.line,
            column: n.column,
            extends: false,
        })
        .chain(p.extended_types.iter().map(|n| Origin {
            line: n.line,
            column: n.column,
            extends: true,
        }))
        .collect();
    all.sort_by_key(|o| o.line);
    all
}

/// The line and column of `define r` in the block starting at `from`.
fn define_position(text: &str, from: usize, r: &str) -> (usize, usize) {
    for (i, l) in text.lines().enumerate().skip(from + 1) {
        let t = l.trim_start();
        if let Some(rest) = t.strip_prefix("define ")
            && rest.split(':').next().map(str::trim) == Some(r)
        {
            let col = l.len() - t.len() + "define ".len();
            return (i, col + (rest.len() - rest.trim_start().len()));
        }
        if t.starts_with("type ") || t.starts_with("extend ") || t.starts_with("condition ") {
            break;
        }
    }
    (from, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(path: &str, text: &str) -> ModuleSource {
        ModuleSource {
            path: path.into(),
            text: text.into(),
        }
    }

    #[test]
    fn combines_types_extensions_and_conditions() {
        let m = combine(&[
            src("core.fga", "module core\n\ntype user\n"),
            src(
                "docs.fga",
                "module docs\n\nextend type user\n  relations\n    define manager: [user]\n\ntype doc\n  relations\n    define viewer: [user with c]\n\ncondition c(x: int) {\n  x < 3\n}\n",
            ),
        ])
        .unwrap();
        assert_eq!(m.schema_version, "1.2");
        let user = m.type_def("user").unwrap();
        assert!(user.relations.contains_key("manager"));
        let meta = user.metadata.as_ref().unwrap();
        assert_eq!(meta.module.as_deref(), Some("core"));
        assert_eq!(meta.relations["manager"].module.as_deref(), Some("docs"));
        assert_eq!(
            m.conditions["c"]
                .metadata
                .as_ref()
                .unwrap()
                .source_info
                .as_ref()
                .unwrap()
                .file,
            "docs.fga"
        );
    }

    #[test]
    fn reports_errors_with_their_file() {
        let errs = combine(&[
            src("a.fga", "module a\n\ntype user\n"),
            src("b.fga", "module b\n\nextend type nothing\n"),
            src("c.fga", "model\n  schema 1.1\n"),
        ])
        .unwrap_err();
        let got: Vec<(Option<&str>, usize, usize)> = errs
            .iter()
            .map(|e| (e.file.as_deref(), e.line, e.column))
            .collect();
        assert_eq!(got, vec![(Some("b.fga"), 2, 12), (Some("c.fga"), 0, 0)]);
    }

    #[test]
    fn manifest_refuses_escaping_paths() {
        let errs =
            parse_mod_file("schema: '1.2'\ncontents:\n  - ../x.fga\n  - /etc/x.fga\n  - ok.fga\n")
                .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(
            (errs[0].line, errs[0].column, errs[0].column_end),
            (2, 4, 12)
        );
        let ok = parse_mod_file("schema: '1.2'\ncontents:\n  - core.fga\n").unwrap();
        assert_eq!(ok.contents[0].value, "core.fga");
    }
}
