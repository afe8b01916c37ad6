//! Policy tests in the format of the OpenFGA CLI's `fga model test` (`.fga.yaml`):
//! a model (inline or from a file), tuples, and tests of Check, ListObjects and
//! ListUsers assertions, run against the Warden engine.
//!
//! Loading (reading the files a store file names) is kept apart from running, which is
//! a pure function of the loaded file.

pub mod format;
mod run;

use std::path::{Path, PathBuf};

pub use format::{StoreFile, Test, TestTuple};
pub use run::{Failure, Kind, Report, run};
use thiserror::Error;
use warden_model::module::ModuleSource;
use warden_model::{AuthorizationModel, ModelError};

/// Moves errors of an inline `model: |` block to their lines in the store file.
fn shift_lines(store_text: &str, errors: Vec<ModelError>) -> Vec<ModelError> {
    let offset = store_text
        .lines()
        .position(|l| l.trim_start().starts_with("model:"))
        .map_or(0, |l| l + 1);
    let indent = store_text
        .lines()
        .nth(offset)
        .map_or(0, |l| l.len() - l.trim_start().len());
    errors
        .into_iter()
        .map(|mut e| {
            e.line += offset;
            e.column += indent;
            e.column_end += indent;
            e
        })
        .collect()
}

/// Why a store file could not be loaded.
#[derive(Debug, Error)]
pub enum ModelTestError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: invalid store file: {message}")]
    Invalid { path: PathBuf, message: String },
    /// The model has errors; each is placed in its file (for a modular model, the
    /// module file it is in; otherwise `path`).
    #[error("{}", render_model_errors(path, errors))]
    Model {
        path: PathBuf,
        errors: Vec<ModelError>,
    },
}

/// One line per error: `FILE:LINE:COL: error[TYPE]: message` (1-based positions).
pub fn render_model_errors(path: &Path, errors: &[ModelError]) -> String {
    let dir = path.parent().unwrap_or(Path::new(""));
    errors
        .iter()
        .map(|e| {
            let file = match &e.file {
                Some(f) => dir.join(f).display().to_string(),
                None => path.display().to_string(),
            };
            format!(
                "{file}:{}:{}: error[{}]: {}",
                e.line + 1,
                e.column + 1,
                e.kind.as_str(),
                e.message
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A store file with its model and tuples resolved.
#[derive(Debug, Clone)]
pub struct LoadedStore {
    pub path: PathBuf,
    pub file: StoreFile,
    pub model: AuthorizationModel,
    pub tuples: Vec<TestTuple>,
}

fn invalid(path: &Path, message: impl Into<String>) -> ModelTestError {
    ModelTestError::Invalid {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn read(path: &Path) -> Result<String, ModelTestError> {
    std::fs::read_to_string(path).map_err(|source| ModelTestError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads and validates a model file: `fga.mod` (a modular model: the manifest and the
/// module files it lists, relative to it), `.json` (the JSON form), or the DSL.
pub fn load_model(path: &Path) -> Result<AuthorizationModel, ModelTestError> {
    let text = read(path)?;
    let model_err = |errors: Vec<ModelError>| ModelTestError::Model {
        path: path.to_path_buf(),
        errors,
    };
    if path.extension().is_some_and(|e| e == "mod") {
        let manifest = warden_model::module::parse_mod_file(&text).map_err(model_err)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut files = Vec::new();
        for item in &manifest.contents {
            files.push(ModuleSource {
                path: item.value.clone(),
                text: read(&dir.join(&item.value))?,
            });
        }
        return warden_model::module::combine(&files).map_err(model_err);
    }
    if path.extension().is_some_and(|e| e == "json") {
        let model = warden_model::parse_json(&text).map_err(|e| model_err(vec![e]))?;
        let errors = warden_model::validate::validate_all(&model, None);
        return if errors.is_empty() {
            Ok(model)
        } else {
            Err(model_err(errors))
        };
    }
    parse_dsl_checked(&text).map_err(model_err)
}

/// Parses and validates DSL text, returning every error.
fn parse_dsl_checked(text: &str) -> Result<AuthorizationModel, Vec<ModelError>> {
    let errors = warden_model::validate_dsl(text);
    if !errors.is_empty() {
        return Err(errors);
    }
    warden_model::parse_dsl(text).map_err(|e| vec![e])
}

/// Reads a tuple file: YAML or JSON (a list of tuples), or CSV with a header naming
/// `user_type,user_id,user_relation,relation,object_type,object_id` (the fga CLI's
/// columns; `condition_name` and `condition_context` are optional).
pub fn load_tuples(path: &Path) -> Result<Vec<TestTuple>, ModelTestError> {
    let text = read(path)?;
    if path.extension().is_some_and(|e| e == "csv") {
        return format::parse_csv(&text).map_err(|m| invalid(path, m));
    }
    serde_yaml::from_str(&text).map_err(|e| invalid(path, e.to_string()))
}

/// Loads a `.fga.yaml` store file and whatever model and tuple files it names
/// (relative to the store file).
pub fn load(path: &Path) -> Result<LoadedStore, ModelTestError> {
    let text = read(path)?;
    let file: StoreFile = serde_yaml::from_str(&text).map_err(|e| invalid(path, e.to_string()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let model = match (&file.model, &file.model_file) {
        // Positions inside an inline model count from the line after `model: |`.
        (Some(dsl), _) => parse_dsl_checked(dsl).map_err(|errors| ModelTestError::Model {
            path: path.to_path_buf(),
            errors: shift_lines(&text, errors),
        })?,
        (None, Some(f)) => load_model(&dir.join(f))?,
        (None, None) => return Err(invalid(path, "`model` or `model_file` must be present")),
    };
    let mut tuples = match (&file.tuples, &file.tuple_file) {
        (Some(t), _) => t.clone(),
        (None, Some(f)) => load_tuples(&dir.join(f))?,
        (None, None) => Vec::new(),
    };
    for f in &file.tuple_files {
        tuples.extend(load_tuples(&dir.join(f))?);
    }
    let mut file = file;
    for test in &mut file.tests {
        if test.tuples.is_none()
            && let Some(f) = &test.tuple_file
        {
            test.tuples = Some(load_tuples(&dir.join(f))?);
        }
    }
    Ok(LoadedStore {
        path: path.to_path_buf(),
        file,
        model,
        tuples,
    })
}
