//! [`AuthorizationModel`] -> OpenFGA DSL, printed the way OpenFGA's own transformer
//! prints it, so DSL -> JSON -> DSL round-trips.

use std::fmt::Write;

use crate::error::{ModelError, ModelErrorKind};
use crate::schema::{AuthorizationModel, ConditionParamType, RelationReference, Userset};

/// Prints a model in the DSL, or explains which relation the DSL cannot express (a
/// direct assignment `[...]` nested inside an operator rather than at its top level).
pub fn try_to_dsl(model: &AuthorizationModel) -> Result<String, ModelError> {
    fn nested_this(u: &Userset, depth: usize) -> bool {
        match u {
            Userset::This(_) => depth > 1,
            Userset::Union(c) | Userset::Intersection(c) => {
                c.child.iter().any(|c| nested_this(c, depth + 1))
            }
            Userset::Difference(d) => {
                nested_this(&d.base, depth + 1) || nested_this(&d.subtract, depth + 2)
            }
            _ => false,
        }
    }
    for td in &model.type_definitions {
        for (name, rewrite) in &td.relations {
            if nested_this(rewrite, 0) {
                return Err(ModelError::new(
                    ModelErrorKind::Syntax,
                    format!(
                        "the '{name}' relation definition under the '{}' type is not supported by the OpenFGA DSL syntax yet",
                        td.type_name
                    ),
                    0,
                    0,
                    0,
                ));
            }
        }
    }
    Ok(to_dsl(model))
}

/// Prints a model in the DSL.
pub fn to_dsl(model: &AuthorizationModel) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "model\n  schema {}", model.schema_version);
    for td in &model.type_definitions {
        let _ = write!(out, "\ntype {}\n", td.type_name);
        if td.relations.is_empty() {
            continue;
        }
        out.push_str("  relations\n");
        for (name, rewrite) in &td.relations {
            let direct = td.directly_related(name);
            let _ = writeln!(out, "    define {name}: {}", expr(rewrite, direct, true));
        }
    }
    // Conditions and their parameters print sorted by name, as OpenFGA prints them.
    let mut conditions: Vec<_> = model.conditions.values().collect();
    conditions.sort_by(|a, b| a.name.cmp(&b.name));
    for c in conditions {
        let mut params: Vec<_> = c.parameters.iter().collect();
        params.sort_by(|a, b| a.0.cmp(b.0));
        let params: Vec<String> = params
            .iter()
            .map(|(n, t)| format!("{n}: {}", param_type(t)))
            .collect();
        let _ = write!(
            out,
            "\ncondition {}({}) {{\n  {}\n}}\n",
            c.name,
            params.join(", "),
            c.expression
        );
    }
    out
}

fn param_type(t: &ConditionParamType) -> String {
    match t.generic_types.first() {
        Some(g) => format!("{}<{}>", t.type_name.dsl_name(), param_type(g)),
        None => t.type_name.dsl_name().to_string(),
    }
}

fn reference(r: &RelationReference) -> String {
    let mut s = r.type_name.clone();
    if r.is_wildcard() {
        s.push_str(":*");
    } else if let Some(rel) = &r.relation {
        s.push('#');
        s.push_str(rel);
    }
    if !r.condition.is_empty() {
        s.push_str(" with ");
        s.push_str(&r.condition);
    }
    s
}

fn expr(u: &Userset, direct: &[RelationReference], top: bool) -> String {
    // The DSL writes a direct assignment first among its siblings; union and
    // intersection do not depend on order.
    let join = |children: &[Userset], op: &str| {
        let (this, rest): (Vec<&Userset>, Vec<&Userset>) =
            children.iter().partition(|c| matches!(c, Userset::This(_)));
        this.into_iter()
            .chain(rest)
            .map(|c| expr(c, direct, false))
            .collect::<Vec<_>>()
            .join(op)
    };
    let (s, compound) = match u {
        Userset::This(_) => {
            let refs: Vec<String> = direct.iter().map(reference).collect();
            return format!("[{}]", refs.join(", "));
        }
        Userset::Computed(c) => return c.relation.clone(),
        Userset::TupleToUserset(t) => {
            return format!(
                "{} from {}",
                t.computed_userset.relation, t.tupleset.relation
            );
        }
        Userset::Union(c) => (join(&c.child, " or "), true),
        Userset::Intersection(c) => (join(&c.child, " and "), true),
        Userset::Difference(d) => (
            format!(
                "{} but not {}",
                expr(&d.base, direct, false),
                expr(&d.subtract, direct, false)
            ),
            true,
        ),
    };
    if compound && !top {
        format!("({s})")
    } else {
        s
    }
}
