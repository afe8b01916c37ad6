//! Command-line interface: argument definitions and dispatch to one module per group.

mod audit;
mod client;
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
    /// Organizations on a server.
    Org {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::OrgCommand,
    },
    /// API keys of an organization.
    Key {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::KeyCommand,
    },
    /// Relationship tuples on a server.
    Tuple {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::TupleCommand,
    },
    /// Users, groups and agents (and agents' credentials) on a server.
    Principal {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: client::PrincipalCommand,
    },
    /// The audit log: query, export, verify (online or offline), tail.
    Audit {
        #[command(flatten)]
        conn: client::Conn,
        #[command(subcommand)]
        cmd: audit::AuditCommand,
    },
    /// Ask a server whether USER has RELATION on OBJECT (exit 0 allowed, 1 denied).
    Check {
        #[command(flatten)]
        conn: client::Conn,
        #[command(flatten)]
        args: client::CheckArgs,
    },
}

/// Runs a parsed command line; the exit code is the command's verdict.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Model(cmd) => model::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Org { conn, cmd } => client::org(conn, cmd),
        Command::Key { conn, cmd } => client::key(conn, cmd),
        Command::Tuple { conn, cmd } => client::tuple(conn, cmd),
        Command::Check { conn, args } => client::check(conn, args),
        Command::Principal { conn, cmd } => client::principal(conn, cmd),
        Command::Audit { conn, cmd } => audit::run(conn, cmd),
    }
}
