//! `warden serve`: runs the server. Settings come from a TOML file (`--config`), then
//! `WARDEN_*` environment variables, then flags; later ones win.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Every setting is optional here: unset ones fall back to the file, then defaults.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML file with any of the settings below (keys as the flags, with `_`).
    #[arg(long, env = "WARDEN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8380].
    #[arg(long, env = "WARDEN_LISTEN")]
    listen: Option<SocketAddr>,
    /// Database: `postgres://...` or `sqlite://PATH` [default: SQLite in the data dir].
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    database_url: Option<String>,
    /// Folder for the embedded SQLite database [default: ./warden-data].
    #[arg(long, env = "WARDEN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Log format [default: text].
    #[arg(long, env = "WARDEN_LOG_FORMAT", value_enum)]
    log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `warden_server=debug` [default: info].
    #[arg(long, env = "WARDEN_LOG")]
    log_level: Option<String>,
    /// Largest accepted request body, in bytes [default: 1048576].
    #[arg(long, env = "WARDEN_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// How long a request waits for the revision it asks for, in ms [default: 2000].
    #[arg(long, env = "WARDEN_CONSISTENCY_WAIT_MS")]
    consistency_wait_ms: Option<u64>,
    /// How often to look for other nodes' writes, in ms [default: 500].
    #[arg(long, env = "WARDEN_POLL_INTERVAL_MS")]
    poll_interval_ms: Option<u64>,
    /// Public base URL: the OAuth issuer and the base of discovery documents (e.g.
    /// `https://authz.example.com`) [default: http://<listen address>].
    #[arg(long, env = "WARDEN_PUBLIC_URL")]
    public_url: Option<String>,
    /// Access token lifetime in seconds, at most 3600 [default: 300].
    #[arg(long, env = "WARDEN_TOKEN_LIFETIME_SECS")]
    token_lifetime_secs: Option<i64>,
    /// How often the audit chain heads get a signed checkpoint, in seconds
    /// [default: 60].
    #[arg(long, env = "WARDEN_AUDIT_CHECKPOINT_SECS")]
    audit_checkpoint_secs: Option<u64>,
    /// FOR BENCHMARKS ONLY: record nothing in the audit log. Decisions and changes
    /// then leave no trace; never run a real deployment like this.
    #[arg(long, env = "WARDEN_AUDIT_DISABLED")]
    audit_disabled: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    data_dir: Option<PathBuf>,
    log_format: Option<LogFormat>,
    log_level: Option<String>,
    max_body_bytes: Option<usize>,
    consistency_wait_ms: Option<u64>,
    poll_interval_ms: Option<u64>,
    public_url: Option<String>,
    token_lifetime_secs: Option<i64>,
    audit_checkpoint_secs: Option<u64>,
    audit_disabled: Option<bool>,
}

/// The settings after merging file < env < flags.
struct Settings {
    config: warden_server::Config,
    log_format: LogFormat,
    log_level: String,
    sqlite: bool,
}

fn settings(args: ServeArgs) -> anyhow::Result<Settings> {
    let file: FileConfig = match &args.config {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read config file {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("invalid config file {}", p.display()))?
        }
        None => FileConfig::default(),
    };
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from("warden-data"));
    let database_url = args
        .database_url
        .or(file.database_url)
        .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("warden.db").display()));
    let mut config = warden_server::Config {
        database_url,
        ..Default::default()
    };
    if let Some(l) = args.listen.or(file.listen) {
        config.listen = l;
    }
    if let Some(b) = args.max_body_bytes.or(file.max_body_bytes) {
        config.max_body_bytes = b;
    }
    if let Some(ms) = args.poll_interval_ms.or(file.poll_interval_ms) {
        config.poll_interval = Duration::from_millis(ms.max(10));
    }
    if let Some(ms) = args.consistency_wait_ms.or(file.consistency_wait_ms) {
        config.limits.consistency_wait = Duration::from_millis(ms);
    }
    config.limits.public_url = args.public_url.or(file.public_url);
    if let Some(t) = args.token_lifetime_secs.or(file.token_lifetime_secs) {
        if !(1..=warden_server::state::MAX_TOKEN_LIFETIME).contains(&t) {
            anyhow::bail!(
                "token lifetime must be 1 to {} seconds",
                warden_server::state::MAX_TOKEN_LIFETIME
            );
        }
        config.limits.token_lifetime_secs = t;
    }
    if let Some(secs) = args.audit_checkpoint_secs.or(file.audit_checkpoint_secs) {
        config.audit_tasks.checkpoint_every = Duration::from_secs(secs.max(1));
    }
    if args.audit_disabled || file.audit_disabled == Some(true) {
        config.limits.audit = false;
    }
    let sqlite = config.database_url.starts_with("sqlite:");
    Ok(Settings {
        config,
        log_format: args
            .log_format
            .or(file.log_format)
            .unwrap_or(LogFormat::Text),
        log_level: args
            .log_level
            .or(file.log_level)
            .unwrap_or_else(|| "info".into()),
        sqlite,
    })
}

fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .with_context(|| format!("invalid log filter `{level}`"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))
}

/// Creates the data folder, readable by this user only (it holds key digests and all
/// authorization data).
fn ensure_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data folder {}", dir.display()))
}

pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let s = settings(args)?;
    init_logging(s.log_format, &s.log_level)?;
    if s.sqlite {
        // Create the folder the SQLite file goes in.
        let path = s.config.database_url["sqlite:".len()..]
            .trim_start_matches("//")
            .split('?')
            .next()
            .unwrap_or("");
        if !path.is_empty()
            && !path.contains(":memory:")
            && let Some(parent) = Path::new(path)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
        {
            ensure_dir(parent)?;
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async move {
        let server = warden_server::start(s.config).await?;
        // Handlers first, then "listening": a SIGTERM sent as soon as the line appears
        // must find them installed (it killed the process outright otherwise).
        let signal = shutdown_signal();
        println!("warden listening on http://{}", server.local_addr);
        match &server.bootstrap_key {
            Some(key) => println!("bootstrap admin key (shown once; store it now): {key}"),
            None => println!("admin key: already set up (create more with an admin key)"),
        }
        signal.await;
        tracing::info!("shutting down");
        server.shutdown().await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// A future that completes at SIGTERM or Ctrl-C, with the handlers installed when this
/// is called, not when the future is first polled.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
