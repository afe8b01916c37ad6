//! The Warden service: the decision engine behind HTTP, fed from storage.
//!
//! [`start`] opens the database (migrating it), loads every organization into memory,
//! creates the bootstrap administrator key on first start, binds, and serves until
//! [`Server::shutdown`]. The routes are in [`routes`]; the in-memory state and how it
//! follows storage (and other nodes) in [`state`].

pub mod audit;
pub mod auth;
pub mod error;
mod json;
pub mod metrics;
pub mod openapi;
pub mod routes;
mod signed;
pub mod state;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::watch;
use warden_storage::{Db, Role, StorageError};

pub use state::{AppState, Limits};

/// The PostgreSQL channel writes are announced on.
pub const NOTIFY_CHANNEL: &str = "warden_changes";

/// What the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `sqlite://PATH` or `postgres://...`.
    pub database_url: String,
    pub max_body_bytes: usize,
    /// How often to look for other nodes' writes (besides notifications).
    pub poll_interval: Duration,
    pub limits: Limits,
    /// Audit checkpoints, retention and webhook delivery intervals.
    pub audit_tasks: audit::tasks::TaskConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8380)),
            database_url: "sqlite://warden-data/warden.db".into(),
            max_body_bytes: 1024 * 1024,
            poll_interval: Duration::from_millis(500),
            limits: Limits::default(),
            audit_tasks: audit::tasks::TaskConfig::default(),
        }
    }
}

#[derive(Debug, Error)]
pub enum ServerError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
}

/// A running server.
pub struct Server {
    pub local_addr: SocketAddr,
    /// The administrator key created on first start (`None` if one existed). Shown
    /// once: only its hash is stored.
    pub bootstrap_key: Option<String>,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<(), std::io::Error>>,
    follower: tokio::task::JoinHandle<()>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Stops accepting, finishes in-flight requests, and closes the database.
    pub async fn shutdown(self) -> Result<(), ServerError> {
        let _ = self.shutdown.send(true);
        let res = self.task.await;
        let _ = self.follower.await;
        for t in self.background {
            let _ = t.await;
        }
        self.state.db.close().await;
        match res {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServerError::Serve(e)),
            Err(e) => Err(ServerError::Serve(std::io::Error::other(e))),
        }
    }
}

/// Opens storage, loads, bootstraps and starts serving.
pub async fn start(config: Config) -> Result<Server, ServerError> {
    let db = Db::connect(&config.database_url).await?;
    let bootstrap_key = if db.has_admin_key().await? {
        None
    } else {
        Some(db.create_key(None, Role::Admin, "bootstrap").await?.token)
    };
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(ServerError::Serve)?;
    let issuer = match &config.limits.public_url {
        Some(u) => u.trim_end_matches('/').to_string(),
        None => format!("http://{local_addr}"),
    };
    let state = Arc::new(AppState::load(db, config.limits.clone(), issuer).await?);
    let (shutdown, rx) = watch::channel(false);
    let app = routes::router(state.clone(), config.max_body_bytes);
    let mut serve_rx = rx.clone();
    let task = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = serve_rx.wait_for(|stop| *stop).await;
        })
        .await
    });
    let background = audit::tasks::spawn(state.clone(), config.audit_tasks.clone(), rx.clone());
    let follower = tokio::spawn(state.clone().follow(config.poll_interval, rx));
    tracing::info!(%local_addr, "listening");
    Ok(Server {
        local_addr,
        bootstrap_key,
        state,
        shutdown,
        task,
        follower,
        background,
    })
}
