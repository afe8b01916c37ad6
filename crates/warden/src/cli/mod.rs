//! Command-line interface: argument definitions and dispatch to one module per group.

mod model;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Warden: identity and authorization server for AI agents.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Authorization models: validate, convert between DSL and JSON, run policy tests.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// Run the server (embedded SQLite in ./warden-data by default).
    Serve(serve::ServeArgs),
}

/// Runs a parsed command line; the exit code is the command's verdict.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Model(cmd) => model::run(cmd),
        Command::Serve(args) => serve::run(args),
    }
}
