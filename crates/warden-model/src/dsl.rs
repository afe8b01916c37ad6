//! The OpenFGA DSL (schema 1.1) -> [`AuthorizationModel`] parser.
//!
//! Line-oriented like the DSL itself: a header (`model` + `schema 1.1`, or `module`),
//! `type` / `extend type` blocks with `relations` and `define` lines, and `condition`
//! blocks whose CEL body may span lines. Relation expressions are parsed by recursive
//! descent with OpenFGA's rule that one level mixes no operators (`a or b and c` needs
//! parentheses). Every error carries a 0-based line and column span.

use indexmap::IndexMap;

use crate::error::{ModelError, ModelErrorKind};
use crate::schema::{
    AuthorizationModel, Condition, ConditionParamType, Difference, Empty, Metadata, ObjectRelation,
    RelationMetadata, RelationReference, TupleToUserset, TypeDefinition, TypeName, Userset,
    Usersets, Wildcard,
};

/// A parsed DSL file: the model, plus what a modular file declares.
#[derive(Debug, Clone, Default)]
pub struct ParsedDsl {
    pub model: AuthorizationModel,
    /// `module NAME` of a modular file.
    pub module: Option<String>,
    /// Types declared with `extend type` (modular files only), in file order.
    pub extended_types: Vec<Named>,
    /// Where each `type` / `condition` of the file is declared, in file order.
    pub declared_types: Vec<Named>,
    pub declared_conditions: Vec<Named>,
}

/// A name and where it sits in the source (0-based line, start column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Named {
    pub name: String,
    pub line: usize,
    pub column: usize,
}

/// Parses a DSL model into its JSON form.
pub fn parse_dsl(src: &str) -> Result<AuthorizationModel, ModelError> {
    parse_dsl_file(src).map(|p| p.model)
}

/// Parses a DSL file, keeping module information.
pub fn parse_dsl_file(src: &str) -> Result<ParsedDsl, ModelError> {
    Parser {
        lines: src.lines().collect(),
        pos: 0,
    }
    .file()
}

struct Parser<'a> {
    lines: Vec<&'a str>,
    pos: usize,
}

/// A line with its comment removed: `#` starts a comment at the start of a line or
/// after whitespace (`group#member` is not a comment).
pub(crate) fn strip_comment(line: &str) -> &str {
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')
}

fn err(
    kind: ModelErrorKind,
    msg: impl Into<String>,
    line: usize,
    col: usize,
    end: usize,
) -> ModelError {
    ModelError::new(kind, msg, line, col, end)
}

impl<'a> Parser<'a> {
    /// The next non-blank, non-comment line (index, content without comment).
    fn peek(&self) -> Option<(usize, &'a str)> {
        let mut i = self.pos;
        while i < self.lines.len() {
            let l = strip_comment(self.lines[i]);
            if !l.trim().is_empty() {
                return Some((i, l.trim_end()));
            }
            i += 1;
        }
        None
    }

    fn advance_past(&mut self, line: usize) {
        self.pos = line + 1;
    }

    fn file(mut self) -> Result<ParsedDsl, ModelError> {
        let mut out = ParsedDsl::default();
        let Some((ln, line)) = self.peek() else {
            return Err(err(
                ModelErrorKind::Syntax,
                "missing `model` header",
                0,
                0,
                0,
            ));
        };
        let head = line.trim();
        let col = indent(line);
        if head == "module" {
            return Err(err(
                ModelErrorKind::Syntax,
                "expected a module name after `module`",
                ln,
                col + 6,
                col + 7,
            ));
        }
        if let Some(name) = head.strip_prefix("module ") {
            let name = name.trim();
            check_ident(name, ln, col + "module ".len())?;
            out.module = Some(name.to_string());
            self.advance_past(ln);
        } else if head == "model" {
            self.advance_past(ln);
            let Some((sl, sline)) = self.peek() else {
                return Err(err(
                    ModelErrorKind::Syntax,
                    "missing `schema` line after `model`",
                    ln,
                    0,
                    5,
                ));
            };
            let words: Vec<&str> = sline.split_whitespace().collect();
            match words.as_slice() {
                ["schema", v] => {
                    if *v != "1.1" && *v != "1.2" {
                        let c = sline.find(v).unwrap_or(0);
                        return Err(err(
                            ModelErrorKind::InvalidSchema,
                            format!("unsupported schema version `{v}`, expected `1.1` or `1.2`"),
                            sl,
                            c,
                            c + v.len(),
                        ));
                    }
                    out.model.schema_version = (*v).to_string();
                }
                _ => {
                    return Err(err(
                        ModelErrorKind::Syntax,
                        "expected `schema 1.1`",
                        sl,
                        indent(sline),
                        sline.len(),
                    ));
                }
            }
            self.advance_past(sl);
        } else {
            let w = head.split_whitespace().next().unwrap_or("");
            return Err(err(
                ModelErrorKind::Syntax,
                format!("expected `model` or `module`, found `{w}`"),
                ln,
                col,
                col + w.len(),
            ));
        }
        while let Some((ln, line)) = self.peek() {
            let head = line.trim_start();
            let col = indent(line);
            if let Some(rest) = head.strip_prefix("extend type ") {
                let name = strip_comment(rest).trim();
                let ncol = col + "extend type ".len();
                if out.module.is_none() {
                    return Err(err(
                        ModelErrorKind::Syntax,
                        "extend can only be used in a modular model",
                        ln,
                        ncol,
                        ncol + name.len(),
                    ));
                }
                check_ident(name, ln, ncol)?;
                out.extended_types.push(Named {
                    name: name.to_string(),
                    line: ln,
                    column: ncol,
                });
                self.advance_past(ln);
                let td = self.type_body(name, ln, col + 12)?;
                out.model.type_definitions.push(td);
            } else if let Some(rest) = head.strip_prefix("type ") {
                let name = strip_comment(rest).trim();
                check_ident(name, ln, col + 5)?;
                out.declared_types.push(Named {
                    name: name.to_string(),
                    line: ln,
                    column: col + 5,
                });
                self.advance_past(ln);
                let td = self.type_body(name, ln, col + 5)?;
                out.model.type_definitions.push(td);
            } else if head.starts_with("condition ") {
                let c = self.condition(ln)?;
                if out.model.conditions.contains_key(&c.name) {
                    return Err(err(
                        ModelErrorKind::DuplicatedError,
                        format!("condition `{}` is already defined", c.name),
                        ln,
                        col + 10,
                        col + 10 + c.name.len(),
                    ));
                }
                out.declared_conditions.push(Named {
                    name: c.name.clone(),
                    line: ln,
                    column: col + 10,
                });
                out.model.conditions.insert(c.name.clone(), c);
            } else {
                let w = head.split_whitespace().next().unwrap_or("");
                return Err(err(
                    ModelErrorKind::Syntax,
                    format!("unexpected `{w}`: expected `type` or `condition`"),
                    ln,
                    col,
                    col + w.len(),
                ));
            }
        }
        Ok(out)
    }

    fn type_body(
        &mut self,
        name: &str,
        _ln: usize,
        _col: usize,
    ) -> Result<TypeDefinition, ModelError> {
        let mut td = TypeDefinition {
            type_name: name.to_string(),
            ..Default::default()
        };
        let Some((ln, line)) = self.peek() else {
            return Ok(td);
        };
        if line.trim() != "relations" {
            return Ok(td);
        }
        self.advance_past(ln);
        let mut meta = Metadata::default();
        while let Some((dl, dline)) = self.peek() {
            let head = dline.trim_start();
            let Some(rest) = head.strip_prefix("define ") else {
                break;
            };
            let base = indent(dline) + 7;
            let Some((rel, expr)) = rest.split_once(':') else {
                // Point at what stands where the `:` should be.
                let name_len = rest.split_whitespace().next().map_or(0, str::len);
                let after = &rest[name_len..];
                let c = base + name_len + (after.len() - after.trim_start().len());
                let w = after.split_whitespace().next().map_or(1, str::len);
                return Err(err(
                    ModelErrorKind::Syntax,
                    "expected `:` after the relation name",
                    dl,
                    c,
                    c + w,
                ));
            };
            let rel_name = rel.trim();
            check_ident(rel_name, dl, base)?;
            if td.relations.contains_key(rel_name) {
                return Err(err(
                    ModelErrorKind::DuplicatedError,
                    format!("relation `{rel_name}` is already defined on `{name}`"),
                    dl,
                    base,
                    base + rel_name.len(),
                ));
            }
            let expr_col = base + rel.len() + 1;
            let mut ex = Expr {
                src: expr,
                pos: 0,
                line: dl,
                col0: expr_col,
                direct: Vec::new(),
                depth: 0,
            };
            let userset = ex.relation_def()?;
            let direct = std::mem::take(&mut ex.direct);
            td.relations.insert(rel_name.to_string(), userset);
            meta.relations.insert(
                rel_name.to_string(),
                RelationMetadata {
                    directly_related_user_types: direct,
                    ..Default::default()
                },
            );
            self.advance_past(dl);
        }
        td.metadata = Some(meta);
        Ok(td)
    }

    fn condition(&mut self, ln: usize) -> Result<Condition, ModelError> {
        // Join the remaining text from this line on, to find `(...)` and `{ ... }`.
        let line = self.lines[ln];
        let col = indent(line) + "condition ".len();
        let after = &line[col.min(line.len())..];
        let open = after.find('(').ok_or_else(|| {
            err(
                ModelErrorKind::Syntax,
                "expected `(` after the condition name",
                ln,
                col,
                line.len(),
            )
        })?;
        let name = after[..open].trim();
        check_ident(name, ln, col)?;
        let close = after.find(')').ok_or_else(|| {
            err(
                ModelErrorKind::Syntax,
                "expected `)` closing the parameters",
                ln,
                col,
                line.len(),
            )
        })?;
        let params_src = &after[open + 1..close];
        let mut parameters = IndexMap::new();
        let mut pcol = col + open + 1;
        for p in params_src.split(',') {
            let Some((pname, ptype)) = p.split_once(':') else {
                return Err(err(
                    ModelErrorKind::Syntax,
                    "expected `name: type`",
                    ln,
                    pcol,
                    pcol + p.len(),
                ));
            };
            let tcol = pcol + pname.len() + 1 + (ptype.len() - ptype.trim_start().len());
            let ptype = ptype.trim();
            let t = parse_param_type(ptype).ok_or_else(|| {
                // Point where the type goes wrong: inside `<...>`, or just after a
                // `list` / `map` that lacks one.
                let (c, e) = match ptype.find('<') {
                    Some(i) => (tcol + i + 1, tcol + ptype.len() - 1),
                    None if matches!(ptype, "list" | "map") => {
                        (tcol + ptype.len(), tcol + ptype.len() + 1)
                    }
                    None => (tcol, tcol + ptype.len()),
                };
                err(
                    ModelErrorKind::InvalidType,
                    format!("unknown condition parameter type `{ptype}`"),
                    ln,
                    c,
                    e,
                )
            })?;
            let pname_t = pname.trim();
            if parameters.contains_key(pname_t) {
                let c = pcol + (pname.len() - pname.trim_start().len());
                return Err(err(
                    ModelErrorKind::Syntax,
                    format!("parameter '{pname_t}' is already defined in the condition '{name}'"),
                    ln,
                    c,
                    c + pname_t.len(),
                ));
            }
            parameters.insert(pname_t.to_string(), t);
            pcol += p.len() + 1;
        }
        // The body: from the first `{` after `)` to its matching `}`, skipping strings.
        let mut text = String::new();
        let mut depth = 0usize;
        let mut started = false;
        let mut in_str: Option<char> = None;
        let mut escaped = false;
        let mut l = ln;
        let mut start_col = col + close + 1;
        loop {
            let Some(line) = self.lines.get(l) else {
                return Err(err(
                    ModelErrorKind::Syntax,
                    "condition body is not closed with `}`",
                    ln,
                    col,
                    col + name.len(),
                ));
            };
            let mut done = false;
            for (i, ch) in line.char_indices().skip_while(|(i, _)| *i < start_col) {
                let _ = i;
                if let Some(q) = in_str {
                    if started {
                        text.push(ch);
                    }
                    if escaped {
                        escaped = false;
                    } else if ch == '\\' {
                        escaped = true;
                    } else if ch == q {
                        in_str = None;
                    }
                    continue;
                }
                match ch {
                    '{' => {
                        if started {
                            text.push(ch);
                        }
                        depth += 1;
                        started = true;
                    }
                    '}' if started => {
                        depth -= 1;
                        if depth == 0 {
                            done = true;
                            break;
                        }
                        text.push(ch);
                    }
                    '"' | '\'' if started => {
                        in_str = Some(ch);
                        text.push(ch);
                    }
                    c if started => text.push(c),
                    c if c.is_whitespace() => {}
                    _ => {
                        return Err(err(
                            ModelErrorKind::Syntax,
                            "expected `{` opening the condition body",
                            l,
                            i,
                            i + 1,
                        ));
                    }
                }
            }
            if done {
                break;
            }
            if started {
                text.push('\n');
            }
            l += 1;
            start_col = 0;
        }
        self.pos = l + 1;
        let expression = text.trim().to_string();
        if expression.is_empty() {
            return Err(err(
                ModelErrorKind::Syntax,
                "condition expression is empty",
                ln,
                col,
                col + name.len(),
            ));
        }
        Ok(Condition {
            name: name.to_string(),
            expression,
            parameters,
            metadata: None,
        })
    }
}

fn parse_param_type(s: &str) -> Option<ConditionParamType> {
    if let Some(inner) = s.strip_suffix('>') {
        let (outer, inner) = inner.split_once('<')?;
        let type_name = TypeName::from_dsl(outer.trim())?;
        if !matches!(type_name, TypeName::List | TypeName::Map) {
            return None;
        }
        let generic = parse_param_type(inner.trim())?;
        return Some(ConditionParamType {
            type_name,
            generic_types: vec![generic],
        });
    }
    let type_name = TypeName::from_dsl(s)?;
    if matches!(type_name, TypeName::List | TypeName::Map) {
        return None;
    }
    Some(ConditionParamType {
        type_name,
        generic_types: Vec::new(),
    })
}

fn check_ident(name: &str, line: usize, col: usize) -> Result<(), ModelError> {
    if name.is_empty() || !name.chars().all(is_ident_char) {
        return Err(err(
            ModelErrorKind::Syntax,
            format!("invalid name `{name}`"),
            line,
            col,
            col + name.len(),
        ));
    }
    Ok(())
}

/// Recursive-descent parser for one relation expression.
/// How deep parentheses may nest in one relation definition (bounds recursion on
/// hostile input).
const MAX_NESTING: usize = 32;

struct Expr<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    col0: usize,
    direct: Vec<RelationReference>,
    /// How many parentheses enclose the current position.
    depth: usize,
}

#[derive(PartialEq, Clone, Copy, Debug)]
enum Op {
    Or,
    And,
    ButNot,
}

impl Expr<'_> {
    fn ws(&mut self) {
        while let Some(c) = self.src[self.pos..].chars().next() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn error(&self, msg: impl Into<String>, start: usize, end: usize) -> ModelError {
        err(
            ModelErrorKind::Syntax,
            msg,
            self.line,
            self.col0 + start,
            self.col0 + end,
        )
    }

    fn ident(&mut self) -> Option<(usize, &str)> {
        self.ws();
        let start = self.pos;
        let len = self.src[start..]
            .chars()
            .take_while(|c| is_ident_char(*c))
            .map(char::len_utf8)
            .sum::<usize>();
        if len == 0 {
            return None;
        }
        self.pos += len;
        Some((start, &self.src[start..start + len]))
    }

    /// Looks at the next word without consuming it.
    fn peek_word(&mut self) -> Option<&str> {
        self.ws();
        let rest = &self.src[self.pos..];
        let len = rest
            .chars()
            .take_while(|c| is_ident_char(*c))
            .map(char::len_utf8)
            .sum::<usize>();
        (len > 0).then(|| &rest[..len])
    }

    fn eat(&mut self, s: &str) -> bool {
        self.ws();
        if self.src[self.pos..].starts_with(s) {
            self.pos += s.len();
            true
        } else {
            false
        }
    }

    fn relation_def(&mut self) -> Result<Userset, ModelError> {
        let u = self.expr(true)?;
        self.ws();
        if self.pos < self.src.len() {
            let rest = self.src[self.pos..].trim_end();
            return Err(self.error(
                format!("unexpected `{rest}`"),
                self.pos,
                self.pos + rest.len(),
            ));
        }
        Ok(u)
    }

    fn op(&mut self) -> Option<Op> {
        match self.peek_word() {
            Some("or") => {
                self.ident();
                Some(Op::Or)
            }
            Some("and") => {
                self.ident();
                Some(Op::And)
            }
            Some("but") => {
                let save = self.pos;
                self.ident();
                if self.peek_word() == Some("not") {
                    self.ident();
                    Some(Op::ButNot)
                } else {
                    self.pos = save;
                    None
                }
            }
            _ => None,
        }
    }

    /// expr := term (('or' term)+ | ('and' term)+ | 'but not' term)?
    /// `allow_direct`: whether `[...]` may open this expression (it may only come first
    /// on the line, possibly inside leading parentheses).
    fn expr(&mut self, allow_direct: bool) -> Result<Userset, ModelError> {
        let first = self.term(allow_direct)?;
        let mut op = None;
        let mut children = vec![first];
        loop {
            let save = self.pos;
            let Some(next) = self.op() else {
                self.pos = save;
                break;
            };
            // Point where OpenFGA's parser does: at the whitespace before the operator
            // on the top level, at the operator itself inside parentheses.
            let op_start = if self.depth == 0 {
                self.src[..save].trim_end().len()
            } else {
                save + (self.src[save..].len() - self.src[save..].trim_start().len())
            };
            match op {
                None => op = Some(next),
                Some(prev) if prev == next && prev != Op::ButNot => {}
                Some(_) => {
                    return Err(self.error(
                        "mixing operators needs parentheses",
                        op_start,
                        self.pos,
                    ));
                }
            }
            children.push(self.term(false)?);
        }
        Ok(match op {
            None => children.remove(0),
            Some(Op::Or) => Userset::Union(Usersets { child: children }),
            Some(Op::And) => Userset::Intersection(Usersets { child: children }),
            Some(Op::ButNot) => {
                let subtract = children.pop().unwrap_or(Userset::This(Empty {}));
                let base = children.pop().unwrap_or(Userset::This(Empty {}));
                Userset::Difference(Difference {
                    base: Box::new(base),
                    subtract: Box::new(subtract),
                })
            }
        })
    }

    /// term := '[' restrictions ']' | '(' expr ')' | name 'from' name | name
    fn term(&mut self, allow_direct: bool) -> Result<Userset, ModelError> {
        self.ws();
        let start = self.pos;
        if self.eat("[") {
            if !allow_direct {
                return Err(self.error(
                    "direct assignment `[...]` must come first",
                    start,
                    start + 1,
                ));
            }
            self.restrictions()?;
            return Ok(Userset::This(Empty {}));
        }
        if self.eat("(") {
            if self.depth >= MAX_NESTING {
                return Err(self.error(
                    format!("parentheses nested deeper than {MAX_NESTING}"),
                    start,
                    start + 1,
                ));
            }
            self.depth += 1;
            let inner = self.expr(allow_direct)?;
            self.depth -= 1;
            if !self.eat(")") {
                return Err(self.error("expected `)`", self.pos, self.pos + 1));
            }
            return Ok(inner);
        }
        if self.op().is_some() {
            return Err(self.error(
                format!(
                    "expected a relation, found `{}`",
                    &self.src[start..self.pos]
                ),
                start,
                self.pos,
            ));
        }
        self.pos = start;
        let Some((_, name)) = self.ident() else {
            let end = (start + 1).min(self.src.len().max(start + 1));
            return Err(self.error("expected a relation, `[...]` or `(`", start, end));
        };
        let name = name.to_string();
        if self.peek_word() == Some("from") {
            self.ident();
            let Some((_, ts)) = self.ident() else {
                return Err(self.error("expected a relation after `from`", self.pos, self.pos + 1));
            };
            return Ok(Userset::TupleToUserset(TupleToUserset {
                tupleset: ObjectRelation {
                    object: None,
                    relation: ts.to_string(),
                },
                computed_userset: ObjectRelation {
                    object: None,
                    relation: name,
                },
            }));
        }
        Ok(Userset::Computed(ObjectRelation {
            object: None,
            relation: name,
        }))
    }

    fn restrictions(&mut self) -> Result<(), ModelError> {
        loop {
            let Some((s, ty)) = self.ident() else {
                return Err(self.error("expected a type", self.pos, self.pos + 1));
            };
            let _ = s;
            let mut r = RelationReference {
                type_name: ty.to_string(),
                ..Default::default()
            };
            if self.src[self.pos..].starts_with(":*") {
                self.pos += 2;
                r.wildcard = Some(Wildcard {});
            } else if self.src[self.pos..].starts_with('#') {
                self.pos += 1;
                let Some((_, rel)) = self.ident() else {
                    return Err(self.error(
                        "expected a relation after `#`",
                        self.pos,
                        self.pos + 1,
                    ));
                };
                r.relation = Some(rel.to_string());
            }
            if self.peek_word() == Some("with") {
                self.ident();
                let Some((_, cond)) = self.ident() else {
                    return Err(self.error(
                        "expected a condition name after `with`",
                        self.pos,
                        self.pos + 1,
                    ));
                };
                r.condition = cond.to_string();
            }
            self.direct.push(r);
            if self.eat(",") {
                continue;
            }
            if self.eat("]") {
                return Ok(());
            }
            return Err(self.error("expected `,` or `]`", self.pos, self.pos + 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_main_shapes() {
        let m = parse_dsl(
            "model\n  schema 1.1\n# comment\ntype user\ntype group\n  relations\n    define member: [user, user:*, group#member with c] # trailing\n    define x: (member or admin) but not blocked\n    define admin: [user]\n    define blocked: [user]\n    define v: admin from parent and x\n    define parent: [group]\ncondition c(a: int, b: list<string>) {\n  a < 3 &&\n  \"}\" in b\n}\n",
        )
        .unwrap();
        let g = m.type_def("group").unwrap();
        assert_eq!(g.directly_related("member").len(), 3);
        assert!(matches!(g.relations["x"], Userset::Difference(_)));
        assert!(matches!(g.relations["v"], Userset::Intersection(_)));
        assert_eq!(m.conditions["c"].expression, "a < 3 &&\n  \"}\" in b");
        assert_eq!(m.conditions["c"].parameters["b"].type_name, TypeName::List);
    }

    #[test]
    fn refuses_mixed_operators_and_bad_headers() {
        assert!(parse_dsl("model\n  schema 1.1\ntype a\n  relations\n    define r: [a] or b and c\n    define b: [a]\n    define c: [a]\n").is_err());
        assert!(parse_dsl("type user").is_err());
        assert!(parse_dsl("model\n  schema 1.0\n").is_err());
        assert!(parse_dsl("").is_err());
    }
}
