//! The `warden` command: one binary for the server and the tools around it.

mod cli;

/// mimalloc instead of the system allocator: audit records are built on request
/// threads and freed on the audit writer's, a pattern glibc's allocator handles
/// slowly (arena consolidation on cross-thread frees).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
