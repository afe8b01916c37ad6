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
use warden_model::AuthorizationModel;

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
    #[error("{path}:{line}:{column}: invalid model: {message}")]
    Model {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
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

/// Reads a model file: `.json` is the JSON form, anything else the DSL.
pub fn load_model(path: &Path) -> Result<AuthorizationModel, ModelTestError> {
    let text = read(path)?;
    let parsed = if path.extension().is_some_and(|e| e == "json") {
        warden_model::parse_json(&text)
    } else {
        warden_model::parse_dsl(&text)
    };
    parsed.map_err(|e| ModelTestError::Model {
        path: path.to_path_buf(),
        line: e.line + 1,
        column: e.column + 1,
        message: e.message,
    })
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
        (Some(dsl), _) => warden_model::parse_dsl(dsl).map_err(|e| ModelTestError::Model {
            path: path.to_path_buf(),
            line: e.line + 1,
            column: e.column + 1,
            message: format!("in `model`: {}", e.message),
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
