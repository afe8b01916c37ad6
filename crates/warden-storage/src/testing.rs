//! Throwaway databases for tests: a SQLite file in a temporary folder, or a fresh
//! PostgreSQL database on the local server (`WARDEN_TEST_POSTGRES`, default
//! `postgres://postgres@127.0.0.1:5432`), dropped when the guard goes.
//!
//! When PostgreSQL is unreachable, tests that need it are skipped with a loud message,
//! unless `WARDEN_REQUIRE_POSTGRES` is set (as `.ci/run` sets it), where it is an error.

use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    drop_sql: Option<(String, String)>,
    _dir: Option<std::path::PathBuf>,
}

impl TestDb {
    /// A new SQLite database file.
    pub fn sqlite() -> TestDb {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("warden-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        TestDb {
            url: format!("sqlite://{}/warden.db", dir.display()),
            drop_sql: None,
            _dir: Some(dir),
        }
    }

    /// A new PostgreSQL database, or `None` (after a loud message) when the server is
    /// unreachable and not required.
    #[allow(
        clippy::panic,
        reason = "a test helper: a required database that is missing fails the test"
    )]
    pub async fn postgres() -> Option<TestDb> {
        sqlx::any::install_default_drivers();
        let base = std::env::var("WARDEN_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into());
        let admin_url = format!("{base}/postgres");
        let mut conn = match sqlx::AnyConnection::connect(&admin_url).await {
            Ok(c) => c,
            Err(e) => {
                if std::env::var_os("WARDEN_REQUIRE_POSTGRES").is_some() {
                    panic!(
                        "PostgreSQL required (WARDEN_REQUIRE_POSTGRES) but unreachable at {admin_url}: {e}"
                    );
                }
                eprintln!(
                    "\n!!! SKIPPING PostgreSQL test: {admin_url} unreachable ({e}); set WARDEN_TEST_POSTGRES !!!\n"
                );
                return None;
            }
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("warden_test_{}_{n}_{}", std::process::id(), crate::now_ms());
        use sqlx::Executor;
        if let Err(e) = conn
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
        {
            panic!("cannot create test database {name}: {e}");
        }
        let _ = conn.close().await;
        Some(TestDb {
            url: format!("{base}/{name}"),
            drop_sql: Some((
                admin_url,
                format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            )),
            _dir: None,
        })
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin, sql)) = self.drop_sql.take() {
            // Drop on a thread of its own: this may run inside an async runtime.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    use sqlx::Executor;
                    if let Ok(mut c) = sqlx::AnyConnection::connect(&admin).await {
                        let _ = c.execute(sqlx::AssertSqlSafe(sql)).await;
                    }
                });
            })
            .join();
        }
        if let Some(dir) = self._dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
