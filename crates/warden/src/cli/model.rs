//! `warden model validate | transform | test`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};
use warden_model::AuthorizationModel;
use warden_modeltest::{Kind, ModelTestError, Report};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Check a model file (`.fga` DSL, `.json`, or a modular model's `fga.mod`) and print
    /// every error as `FILE:LINE:COL: error[TYPE]: message`.
    ///
    /// Exit status: 0 valid, 1 invalid, 2 unreadable.
    Validate {
        /// The model file.
        file: PathBuf,
    },
    /// Convert a model between the DSL and JSON (to the other form by default). A
    /// modular model (`fga.mod`) is combined into one model.
    Transform {
        /// The model file (`.fga` DSL, `.json` or `fga.mod`).
        file: PathBuf,
        /// Output form.
        #[arg(long, value_enum)]
        to: Option<Form>,
    },
    /// Store a model on a server (validated here first); it becomes the current one.
    Write {
        #[command(flatten)]
        conn: super::client::Conn,
        /// The organization.
        #[arg(long)]
        org: String,
        /// The model file (`.fga`, `.json` or `fga.mod`).
        file: PathBuf,
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
        ModelCommand::Write { conn, org, file } => super::client::model_write(conn, &org, &file),
    }
}

fn is_json(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "json")
}

/// Loads and validates a model file, printing every error found. `Err` carries the
/// exit code: 1 for an invalid model, 2 for an unreadable file.
fn load(path: &Path) -> Result<AuthorizationModel, ExitCode> {
    match warden_modeltest::load_model(path) {
        Ok(m) => Ok(m),
        Err(e @ ModelTestError::Model { .. }) => {
            eprintln!("{e}");
            Err(ExitCode::from(1))
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(2))
        }
    }
}

fn validate(path: &Path) -> anyhow::Result<ExitCode> {
    Ok(match load(path) {
        Ok(_) => {
            println!("{}: valid", path.display());
            ExitCode::SUCCESS
        }
        Err(code) => code,
    })
}

fn transform(path: &Path, to: Option<Form>) -> anyhow::Result<ExitCode> {
    let model = match load(path) {
        Ok(m) => m,
        Err(code) => return Ok(code),
    };
    let to = to.unwrap_or(if is_json(path) { Form::Dsl } else { Form::Json });
    match to {
        Form::Json => println!("{}", warden_model::to_json(&model)),
        Form::Dsl => match warden_model::try_to_dsl(&model) {
            Ok(dsl) => print!("{dsl}"),
            Err(e) => {
                eprintln!("{}: {}", path.display(), e.message);
                return Ok(ExitCode::from(1));
            }
        },
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
                eprintln!("{e}");
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
