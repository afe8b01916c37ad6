//! The real `warden serve` process: what it prints, its settings precedence (file <
//! env < flag), and durability (an acknowledged write survives SIGKILL).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test fixtures fail loudly"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::{Value, json};

struct Running {
    child: Child,
    addr: String,
    key: Option<String>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn data_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warden-serve-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Starts `warden serve` in `dir` and reads its address (and bootstrap key) from stdout.
fn serve(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warden"));
    cmd.arg("serve")
        .args(args)
        .current_dir(dir)
        .env_remove("WARDEN_LISTEN")
        .env("WARDEN_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let addr = first
        .strip_prefix("warden listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_string();
    // The second line gives the bootstrap key, or says there is none to give.
    let second = lines.next().unwrap().unwrap();
    let key = second
        .split_whitespace()
        .last()
        .filter(|k| k.starts_with("wdn_"))
        .map(str::to_string);
    Running { child, addr, key }
}

async fn post(addr: &str, key: &str, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn acknowledged_writes_survive_sigkill() {
    let dir = data_dir("durable");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut s = serve(&dir, &["--listen", &listen], &[]);
    assert!(
        dir.join("warden-data/warden.db").is_file(),
        "SQLite under ./warden-data by default"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("warden-data"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "the data folder is private");
    }
    let key = s.key.clone().expect("bootstrap key printed on first start");
    assert!(key.starts_with("wdn_"), "{key}");
    let addr = s.addr.clone();
    let (st, _) = post(&addr, &key, "/v1/orgs", json!({"id": "acme"})).await;
    assert_eq!(st, 201);
    let (st, _) = post(
        &addr,
        &key,
        "/v1/orgs/acme/models",
        json!({"dsl": "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n"}),
    )
    .await;
    assert_eq!(st, 201);
    let (st, w) = post(
        &addr,
        &key,
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [{"user": "user:anne", "relation": "viewer", "object": "doc:1"}]}),
    )
    .await;
    assert_eq!(st, 200, "{w}");
    // A batch that fails validation leaves nothing behind.
    let (st, _) = post(
        &addr,
        &key,
        "/v1/orgs/acme/tuples/write",
        json!({"writes": [
            {"user": "user:bob", "relation": "viewer", "object": "doc:2"},
            {"user": "user:bob", "relation": "nosuch", "object": "doc:2"}
        ]}),
    )
    .await;
    assert_eq!(st, 400);
    s.child.kill().unwrap(); // SIGKILL: no shutdown, no flush.
    s.child.wait().unwrap();

    let mut s = serve(&dir, &["--listen", &listen], &[]);
    assert!(s.key.is_none(), "no second bootstrap key");
    let check = |user: &str, obj: &str| json!({"user": user, "relation": "viewer", "object": obj});
    let (_, r) = post(
        &s.addr,
        &key,
        "/v1/orgs/acme/check",
        check("user:anne", "doc:1"),
    )
    .await;
    assert_eq!(
        r["allowed"],
        json!(true),
        "the acknowledged write survived: {r}"
    );
    let (_, r) = post(
        &s.addr,
        &key,
        "/v1/orgs/acme/check",
        check("user:bob", "doc:2"),
    )
    .await;
    assert_eq!(
        r["allowed"],
        json!(false),
        "the failed batch left nothing: {r}"
    );
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn settings_come_from_file_then_env_then_flags() {
    let dir = data_dir("settings");
    let (pf, pe, pl) = (free_port(), free_port(), free_port());
    std::fs::write(
        dir.join("warden.toml"),
        format!("listen = \"127.0.0.1:{pf}\"\ndata_dir = \"from-file\"\n"),
    )
    .unwrap();
    let file = dir.join("warden.toml");
    let file = file.to_str().unwrap();

    let mut s = serve(&dir, &["--config", file], &[]);
    assert_eq!(s.addr, format!("127.0.0.1:{pf}"), "the file applies");
    assert!(dir.join("from-file/warden.db").is_file());
    s.child.kill().unwrap();
    s.child.wait().unwrap();

    let env_listen = format!("127.0.0.1:{pe}");
    let mut s = serve(&dir, &["--config", file], &[("WARDEN_LISTEN", &env_listen)]);
    assert_eq!(s.addr, env_listen, "env beats the file");
    s.child.kill().unwrap();
    s.child.wait().unwrap();

    let flag_listen = format!("127.0.0.1:{pl}");
    let mut s = serve(
        &dir,
        &["--config", file, "--listen", &flag_listen],
        &[("WARDEN_LISTEN", &env_listen)],
    );
    assert_eq!(s.addr, flag_listen, "the flag beats env");
    s.child.kill().unwrap();
    s.child.wait().unwrap();

    // A token lifetime above the hard maximum is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--token-lifetime-secs", "86400"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("token lifetime"));

    // A bad config file is a clear error, not a crash.
    std::fs::write(dir.join("bad.toml"), "listen = 5\nnope = true\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["serve", "--config", dir.join("bad.toml").to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid config file"), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let dir = data_dir("sigterm");
    let port = free_port();
    let s = serve(&dir, &["--listen", &format!("127.0.0.1:{port}")], &[]);
    let pid = s.child.id();
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let mut child = s.child;
    let out = child.wait().unwrap();
    assert_eq!(out.code(), Some(0), "graceful shutdown exits 0");
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs the `warden` CLI against a server; returns (exit code, stdout, stderr).
fn cli(server: &str, key: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .env("WARDEN_SERVER", format!("http://{server}"))
        .env("WARDEN_API_KEY", key)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_drives_a_server() {
    let dir = data_dir("cli");
    let mut s = serve(
        &dir,
        &["--listen", &format!("127.0.0.1:{}", free_port())],
        &[],
    );
    let admin = s.key.clone().unwrap();
    let addr = s.addr.clone();
    std::fs::write(
        dir.join("m.fga"),
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("t.yaml"),
        "- user: user:bob\n  relation: viewer\n  object: doc:2\n- user: user:carl\n  relation: viewer\n  object: doc:2\n",
    )
    .unwrap();
    let (code, out, err) = cli(&addr, &admin, &["org", "create", "acme"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("created organization"), "{out}");
    let (code, out, _) = cli(
        &addr,
        &admin,
        &[
            "key", "create", "--org", "acme", "--role", "writer", "--json",
        ],
    );
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    let writer = v["token"].as_str().unwrap().to_string();
    let m = dir.join("m.fga");
    let (code, out, err) = cli(
        &addr,
        &writer,
        &["model", "write", "--org", "acme", m.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("is current"), "{out}");
    let (code, _, err) = cli(
        &addr,
        &writer,
        &[
            "tuple",
            "write",
            "--org",
            "acme",
            "user:anne",
            "viewer",
            "doc:1",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let t = dir.join("t.yaml");
    let (code, out, err) = cli(
        &addr,
        &writer,
        &[
            "tuple",
            "write",
            "--org",
            "acme",
            "--file",
            t.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("wrote 2 tuples"), "{out}");
    let (code, out, _) = cli(
        &addr,
        &writer,
        &["tuple", "read", "--org", "acme", "--object", "doc:2"],
    );
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (code, out, _) = cli(
        &addr,
        &writer,
        &["check", "--org", "acme", "user:anne", "viewer", "doc:1"],
    );
    assert_eq!((code, out.trim()), (0, "allowed"));
    let (code, out, _) = cli(
        &addr,
        &writer,
        &["check", "--org", "acme", "user:zed", "viewer", "doc:1"],
    );
    assert_eq!((code, out.trim()), (1, "denied"));
    let (code, out, _) = cli(
        &addr,
        &writer,
        &[
            "tuple",
            "delete",
            "--org",
            "acme",
            "user:anne",
            "viewer",
            "doc:1",
            "--json",
        ],
    );
    assert_eq!(code, 0);
    let rev = serde_json::from_str::<Value>(&out).unwrap()["revision"]
        .as_i64()
        .unwrap();
    let (code, _, _) = cli(
        &addr,
        &writer,
        &[
            "check",
            "--org",
            "acme",
            "user:anne",
            "viewer",
            "doc:1",
            "--at-least-revision",
            &rev.to_string(),
        ],
    );
    assert_eq!(code, 1);
    // Principals and credentials.
    let (code, _, err) = cli(
        &addr,
        &admin,
        &[
            "principal",
            "put",
            "--org",
            "acme",
            "user",
            "anne",
            "--display-name",
            "Anne",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(
        &addr,
        &admin,
        &[
            "principal",
            "put",
            "--org",
            "acme",
            "agent",
            "bot",
            "--owner",
            "user:anne",
            "--purpose",
            "tests",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = cli(
        &addr,
        &admin,
        &["principal", "list", "--org", "acme", "agent"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("bot") && out.contains("active"), "{out}");
    let (code, out, _) = cli(
        &addr,
        &admin,
        &[
            "principal",
            "status",
            "--org",
            "acme",
            "agent",
            "bot",
            "suspended",
        ],
    );
    assert_eq!(code, 0);
    assert!(out.contains("suspended"), "{out}");
    let (code, out, err) = cli(
        &addr,
        &admin,
        &[
            "principal",
            "credential",
            "--org",
            "acme",
            "bot",
            "--secret",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("client_id acme:bot") && out.contains("wcs_"),
        "{out}"
    );
    let (code, _, err) = cli(
        &addr,
        &admin,
        &["principal", "put", "--org", "acme", "robot", "x"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("unknown kind"), "{err}");

    // Errors: the server's code and message, exit 2.
    let (code, _, err) = cli(
        &addr,
        "wdn_bad",
        &["check", "--org", "acme", "user:anne", "viewer", "doc:1"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("401 unauthenticated"), "{err}");
    let (code, _, err) = cli(&addr, &writer, &["org", "create", "other"]);
    assert_eq!(code, 2);
    assert!(err.contains("403 forbidden"), "{err}");
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Decisions answered under load, then SIGKILL: after a restart every answered
/// decision has its record, the log verifies, and `warden audit` reads, exports and
/// verifies it (catching an edit made directly in the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answered_decision_survives_sigkill_and_the_cli_verifies_the_log() {
    let dir = data_dir("audit-crash");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut s = serve(&dir, &["--listen", &listen], &[]);
    let key = s.key.clone().unwrap();
    let addr = s.addr.clone();
    assert_eq!(
        post(&addr, &key, "/v1/orgs", json!({"id": "acme"})).await.0,
        201
    );
    let (st, _) = post(
        &addr,
        &key,
        "/v1/orgs/acme/models",
        json!({"dsl": "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user]\n"}),
    )
    .await;
    assert_eq!(st, 201);
    let answered = std::sync::Arc::new(parking_lot::Mutex::new(Vec::<String>::new()));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..16 {
        let (answered, stop, addr, key) =
            (answered.clone(), stop.clone(), addr.clone(), key.clone());
        workers.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                let res = http
                    .post(format!("http://{addr}/v1/orgs/acme/check"))
                    .bearer_auth(&key)
                    .json(&json!({"user": format!("user:w{w}-{i}"), "relation": "viewer", "object": "doc:1"}))
                    .send()
                    .await;
                // Only a complete 200 answer counts as answered.
                let Ok(res) = res else { continue };
                if res.status() != 200 {
                    continue;
                }
                if let Ok(v) = res.json::<Value>().await
                    && let Some(id) = v["decision_id"].as_str()
                {
                    answered.lock().push(id.to_string());
                }
            }
        }));
    }
    // Let the load run, then kill the server under it.
    for _ in 0..100 {
        if answered.lock().len() >= 2000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let answered = answered.lock().clone();
    assert!(
        answered.len() >= 100,
        "only {} decisions answered",
        answered.len()
    );

    let mut s = serve(&dir, &["--listen", &listen], &[]);
    let addr = s.addr.clone();
    let export = tempfile(&dir, "export.jsonl");
    let (code, _, err) = cli(
        &addr,
        &key,
        &["audit", "export", "--org", "acme", "-o", &export],
    );
    assert_eq!(code, 0, "{err}");
    let text = std::fs::read_to_string(&export).unwrap();
    let recorded: std::collections::HashSet<String> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| v["record"]["id"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<&String> = answered
        .iter()
        .filter(|id| !recorded.contains(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} answered decisions have no record after SIGKILL",
        missing.len(),
        answered.len()
    );
    eprintln!(
        "{} answered decisions before SIGKILL, all recorded",
        answered.len()
    );

    // The CLI: online and offline verification agree that the log is intact.
    let (code, out, err) = cli(&addr, &key, &["audit", "verify", "--org", "acme"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("OK:"), "{out}");
    assert!(out.contains("keys: the server's JWKS"), "{out}");
    let (code, out, _) = cli(&addr, &key, &["audit", "verify", "--file", &export]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("keys: the export's own"), "{out}");
    let jwks = reqwest::get(format!("http://{addr}/oauth2/jwks"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let jwks_file = tempfile(&dir, "jwks.json");
    std::fs::write(&jwks_file, jwks).unwrap();
    let (code, out, _) = cli(
        &addr,
        &key,
        &["audit", "verify", "--file", &export, "--jwks", &jwks_file],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("keys: the JWKS file given"), "{out}");
    // Query and tail print readable lines.
    let (code, out, _) = cli(
        &addr,
        &key,
        &["audit", "query", "--org", "acme", "--kind", "change"],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains("org.create") && out.contains("model.write"),
        "{out}"
    );
    let (code, out, _) = cli(&addr, &key, &["audit", "tail", "--org", "acme", "-n", "3"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("decision") && out.contains("DENY"), "{out}");

    // An edit made directly in the database: both verifications name the record.
    let db = format!("sqlite://{}", dir.join("warden-data/warden.db").display());
    {
        use sqlx::Connection;
        sqlx::any::install_default_drivers();
        let mut conn = sqlx::AnyConnection::connect(&db).await.unwrap();
        sqlx::query("UPDATE audit_records SET allowed = 1 WHERE org_id = 'acme' AND seq = 40")
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let (code, out, _) = cli(&addr, &key, &["audit", "verify", "--org", "acme"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("TAMPERED") && out.contains("#40"), "{out}");
    let (code, _, _) = cli(
        &addr,
        &key,
        &["audit", "export", "--org", "acme", "-o", &export],
    );
    assert_eq!(code, 0);
    let (code, out, _) = cli(
        &addr,
        &key,
        &["audit", "verify", "--file", &export, "--json"],
    );
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["problem"]["seq"], json!(40), "{report}");
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile(dir: &Path, name: &str) -> String {
    dir.join(name).to_str().unwrap().to_string()
}
