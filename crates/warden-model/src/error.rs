//! The model language's one error type: a kind (OpenFGA's error types), a message and
//! a 0-based line/column span.

use thiserror::Error;

/// The category of a model error, named as OpenFGA's validator names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelErrorKind {
    Syntax,
    InvalidSchema,
    InvalidType,
    DuplicatedError,
    ReservedTypeKeywords,
    ReservedRelationKeywords,
    MissingDefinition,
    InvalidRelationType,
    InvalidRelationOnTupleset,
    TupleusersetNotDirect,
    ConditionNotDefined,
    ConditionNotUsed,
    RelationNoEntryPoint,
    InvalidName,
    SchemaVersionRequired,
    DifferentNestedConditionName,
    MultipleModulesInFile,
}

impl ModelErrorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelErrorKind::Syntax => "syntax-error",
            ModelErrorKind::InvalidSchema => "invalid-schema",
            ModelErrorKind::InvalidType => "invalid-type",
            ModelErrorKind::DuplicatedError => "duplicated-error",
            ModelErrorKind::ReservedTypeKeywords => "reserved-type-keywords",
            ModelErrorKind::ReservedRelationKeywords => "reserved-relation-keywords",
            ModelErrorKind::MissingDefinition => "missing-definition",
            ModelErrorKind::InvalidRelationType => "invalid-relation-type",
            ModelErrorKind::InvalidRelationOnTupleset => "invalid-relation-on-tupleset",
            ModelErrorKind::TupleusersetNotDirect => "tupleuserset-not-direct",
            ModelErrorKind::ConditionNotDefined => "condition-not-defined",
            ModelErrorKind::ConditionNotUsed => "condition-not-used",
            ModelErrorKind::RelationNoEntryPoint => "relation-no-entry-point",
            ModelErrorKind::InvalidName => "invalid-name",
            ModelErrorKind::SchemaVersionRequired => "schema-version-required",
            ModelErrorKind::DifferentNestedConditionName => "different-nested-condition-name",
            ModelErrorKind::MultipleModulesInFile => "multiple-modules-in-file",
        }
    }
}

/// One problem in a model, with where it is (0-based line, columns `start..end`).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{}{}:{}: {message}", file.as_deref().map(|f| format!("{f}:")).unwrap_or_default(), line + 1, column + 1)]
pub struct ModelError {
    pub kind: ModelErrorKind,
    pub message: String,
    pub line: usize,
    pub column: usize,
    pub column_end: usize,
    /// The file the error is in, for models combined from several files.
    pub file: Option<String>,
}

impl ModelError {
    pub fn new(
        kind: ModelErrorKind,
        message: impl Into<String>,
        line: usize,
        column: usize,
        column_end: usize,
    ) -> Self {
        ModelError {
            kind,
            message: message.into(),
            line,
            column,
            column_end,
            file: None,
        }
    }

    /// The same error, placed in `file`.
    pub fn in_file(mut self, file: &str) -> Self {
        self.file = Some(file.to_string());
        self
    }
}
