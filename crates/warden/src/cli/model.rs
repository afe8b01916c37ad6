//! `warden model validate | transform | test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use warden_model::{AuthorizationModel, ModelError};
use warden_modeltest::{Kind, ModelTestError, Report};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Check a model file (`.fga` DSL or `.json`) and print every error with its position.
    ///
    /// Exit status: 0 valid, 1 invalid, 2 unreadable.
    Validate {
        /// The model file.
        file: PathBuf,
    },
    /// Convert a model between the DSL and JSON (to the other form by default).
    Transform {
        /// The model file (`.fga` DSL or `.json`).
        file: PathBuf,
        /// Output form.
        #[arg(long, value_enum)]
        to: Option<Form>,
    },
    /// Run policy tests in the `fga model test` format (`.fga.yaml`).
    ///
    /// Exit status: 0 all assertions passed, 1 some failed, 2 a file is invalid.
    Test {
        /// One or more `.fga.yaml` files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Form {
    Json,
    Dsl,
}

pub fn run(cmd: ModelCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ModelCommand::Validate { file } => validate(&file),
        ModelCommand::Transform { file, to } => transform(&file, to),
        ModelCommand::Test { files, json } => test(&files, json),
    }
}

fn is_json(path: &Path, text: &str) -> bool {
    path.extension().is_some_and(|e| e == "json") || text.trim_start().starts_with('{')
}

/// Parses a model file, then checks it compiles for the engine.
fn parse(path: &Path, text: &str) -> Result<AuthorizationModel, ModelError> {
    let model = if is_json(path, text) {
        warden_model::parse_json(text)?
    } else {
        warden_model::parse_dsl(text)?
    };
    warden_model::validate::validate(&model, Some(text).filter(|_| !is_json(path, text)))?;
    Ok(model)
}

fn print_error(path: &Path, e: &ModelError) {
    eprintln!(
        "{}:{}:{}: error[{}]: {}",
        path.display(),
        e.line + 1,
        e.column + 1,
        e.kind.as_str(),
        e.message
    );
}

fn read(path: &Path) -> Result<String, ExitCode> {
    std::fs::read_to_string(path).map_err(|e| {
        eprintln!("{}: cannot read: {e}", path.display());
        ExitCode::from(2)
    })
}

fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    let text = match read(path) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    match parse(path, &text) {
        Ok(_) => {
            println!("valid");
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            print_error(path, &e);
            Ok(ExitCode::from(1))
        }
    }
}

fn transform(path: &Path, to: Option<Form>) -> anyhow::Result<ExitCode> {
    let text = match read(path) {
        Ok(t) => t,
        Err(code) => return Ok(code),
    };
    let model = match parse(path, &text) {
        Ok(m) => m,
        Err(e) => {
            print_error(path, &e);
            return Ok(ExitCode::from(1));
        }
    };
    let to = to.unwrap_or(if is_json(path, &text) {
        Form::Dsl
    } else {
        Form::Json
    });
    match to {
        Form::Json => println!("{}", warden_model::to_json(&model)),
        Form::Dsl => print!("{}", warden_model::to_dsl(&model)),
    }
    Ok(ExitCode::SUCCESS)
}

fn test(files: &[PathBuf], json: bool) -> anyhow::Result<ExitCode> {
    let mut total = Report::default();
    let mut invalid = false;
    for path in files {
        let store = match warden_modeltest::load(path) {
            Ok(s) => s,
            Err(e) => {
                invalid = true;
                match &e {
                    ModelTestError::Model { .. } => eprintln!("{e}"),
                    _ => eprintln!("{e}"),
                }
                continue;
            }
        };
        let report = warden_modeltest::run(&store);
        if !json {
            for f in &report.failures {
                let kind = match f.kind {
                    Kind::Check => "check",
                    Kind::ListObjects => "list_objects",
                    Kind::ListUsers => "list_users",
                };
                println!(
                    "FAIL {}: test `{}`: {kind} {}: expected {}, got {}",
                    path.display(),
                    f.test,
                    f.query,
                    f.expected,
                    f.got
                );
            }
            for e in &report.errors {
                println!("ERROR {}: {e}", path.display());
            }
        }
        total.merge(report);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&total)?);
    } else {
        println!("Checks {}/{} passing", total.checks.0, total.checks.1);
        println!(
            "ListObjects {}/{} passing",
            total.list_objects.0, total.list_objects.1
        );
        println!(
            "ListUsers {}/{} passing",
            total.list_users.0, total.list_users.1
        );
    }
    Ok(if invalid {
        ExitCode::from(2)
    } else if total.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
