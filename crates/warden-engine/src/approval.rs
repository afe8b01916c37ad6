//! Approval rules: which allowed actions must still wait for a human. A rule names a
//! resource type, the relations (actions) it covers, and optionally a CEL condition
//! over the request context, e.g. `context.amount > 1000`.

use cel::Program;

use crate::condition::Context;

/// A rule's CEL condition, compiled once.
pub struct RuleCondition {
    source: String,
    program: Program,
}

impl std::fmt::Debug for RuleCondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("RuleCondition").field(&self.source).finish()
    }
}

impl RuleCondition {
    /// Compiles `expression`; the request context is the variable `context`.
    pub fn compile(expression: &str) -> Result<RuleCondition, String> {
        if expression.len() > 4096 {
            return Err("longer than 4096 bytes".into());
        }
        let program = Program::compile(expression).map_err(|e| {
            e.to_string()
                .lines()
                .next()
                .unwrap_or("does not parse")
                .to_string()
        })?;
        let refs = program.references();
        for v in refs.variables() {
            if v != "context" {
                return Err(format!(
                    "unknown variable `{v}` (the request context is `context`)"
                ));
            }
        }
        Ok(RuleCondition {
            source: expression.to_string(),
            program,
        })
    }

    /// Whether the condition holds for `context`. A condition that cannot be
    /// evaluated (a missing key, a type mismatch) holds: when in doubt, a human looks.
    pub fn holds(&self, context: &Context) -> bool {
        let mut ctx = cel::Context::default();
        if ctx.add_variable("context", context).is_err() {
            return true;
        }
        match self.program.execute(&ctx) {
            Ok(cel::Value::Bool(b)) => b,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(v: serde_json::Value) -> Context {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn conditions_over_the_context() {
        let c = RuleCondition::compile("context.amount > 1000").unwrap();
        assert!(c.holds(&ctx(json!({"amount": 5000}))));
        assert!(!c.holds(&ctx(json!({"amount": 10}))));
        // Missing or mistyped: a human decides.
        assert!(c.holds(&ctx(json!({}))));
        assert!(c.holds(&ctx(json!({"amount": "lots"}))));
        let c = RuleCondition::compile(
            "context.channel == 'external' && context.recipients.size() > 1",
        )
        .unwrap();
        assert!(c.holds(&ctx(
            json!({"channel": "external", "recipients": ["a", "b"]})
        )));
        assert!(!c.holds(&ctx(
            json!({"channel": "internal", "recipients": ["a", "b"]})
        )));
        assert!(RuleCondition::compile("amount > 1000").is_err());
        assert!(RuleCondition::compile("context.amount >").is_err());
    }
}
