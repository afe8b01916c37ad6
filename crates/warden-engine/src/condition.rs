//! Conditions: CEL expressions with typed parameters, evaluated over a tuple's stored
//! context merged with the request's context.
//!
//! (Being written: see `ConditionSet` for the interface the resolver relies on.)

use indexmap::IndexMap;
use serde_json::{Map, Value};
use thiserror::Error;
use warden_model::{AuthorizationModel, Condition};

/// A JSON object of named values, as sent in requests and stored with tuples.
pub type Context = Map<String, Value>;

/// Why a condition could not be compiled or evaluated.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConditionError {
    #[error("condition `{0}` is not defined in the model")]
    Undefined(String),
    #[error("condition `{condition}` is invalid: {reason}")]
    Invalid { condition: String, reason: String },
    #[error("condition `{condition}` is missing parameters: {}", missing.join(", "))]
    MissingParameters {
        condition: String,
        missing: Vec<String>,
    },
    #[error("condition `{condition}`: parameter `{parameter}` {reason}")]
    BadParameter {
        condition: String,
        parameter: String,
        reason: String,
    },
    #[error("condition `{condition}` failed to evaluate: {reason}")]
    Evaluation { condition: String, reason: String },
}

/// The model's conditions, compiled once per model.
#[derive(Debug, Default)]
pub struct ConditionSet {
    conditions: IndexMap<String, Condition>,
}

impl ConditionSet {
    /// Compiles every condition of `model`; an expression that does not parse is an error.
    pub fn compile(model: &AuthorizationModel) -> Result<Self, ConditionError> {
        Ok(ConditionSet {
            conditions: model.conditions.clone(),
        })
    }

    /// Whether `name` is a condition of the model.
    pub fn contains(&self, name: &str) -> bool {
        self.conditions.contains_key(name)
    }

    /// Checks a context stored with a tuple against the condition's parameter types
    /// (used when a tuple is written). Unknown keys are an error.
    pub fn validate_tuple_context(
        &self,
        name: &str,
        context: &Context,
    ) -> Result<(), ConditionError> {
        let _ = context;
        if self.contains(name) {
            Ok(())
        } else {
            Err(ConditionError::Undefined(name.to_string()))
        }
    }

    /// Evaluates condition `name`. Parameters come from `tuple_context` (which wins on a
    /// clash) merged with `request_context`. Every declared parameter must be present and
    /// of its declared type, else an error (never a silent `false`).
    pub fn evaluate(
        &self,
        name: &str,
        tuple_context: Option<&Context>,
        request_context: &Context,
    ) -> Result<bool, ConditionError> {
        let _ = (tuple_context, request_context);
        Err(ConditionError::Undefined(name.to_string()))
    }
}
