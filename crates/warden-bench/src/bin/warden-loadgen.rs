//! Load generator for a running Warden server.
//!
//! `warden-loadgen seed --database-url URL --tuples N` fills a database with the
//! benchmark dataset (organization `bench`, the benchmark model, N tuples), written
//! through the storage layer in batches of 1,000. Then start `warden serve` on that
//! database (its log reports the load time) and run
//! `warden-loadgen run --server URL --api-key KEY`, which sends random
//! `document#can_view` checks over keep-alive HTTP connections for a while and prints
//! throughput and latency percentiles (`--rate` offers a fixed load instead of as much
//! as fits; `--batch N` sends `batch-check` requests of N checks).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use serde_json::json;

#[derive(Parser)]
#[command(
    name = "warden-loadgen",
    about = "Seed a Warden database and load a Warden server"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Fill a database with the benchmark dataset.
    Seed {
        #[arg(long)]
        database_url: String,
        #[arg(long, default_value_t = 1_000_000)]
        tuples: usize,
        /// Also create an admin key for `bench` and print it.
        #[arg(long)]
        key: bool,
    },
    /// Set up an organization with a user, an agent and a scope, then measure token
    /// issuance (client_credentials) and the full delegated decision over HTTP (token
    /// verification + scope + the user's and the agent's checks).
    Authz {
        #[arg(long, default_value = "http://127.0.0.1:8380")]
        server: String,
        /// A server administrator key.
        #[arg(long, env = "WARDEN_API_KEY")]
        api_key: String,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        #[arg(long, default_value_t = 16)]
        connections: usize,
    },
    /// Send checks to a server and report throughput and latency.
    Run {
        #[arg(long, default_value = "http://127.0.0.1:8380")]
        server: String,
        #[arg(long, env = "WARDEN_API_KEY")]
        api_key: String,
        /// Size of the seeded dataset (to pick existing users and documents).
        #[arg(long, default_value_t = 1_000_000)]
        tuples: usize,
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Concurrent connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Offered load in checks per second (spread over the connections); without
        /// it, as fast as the server answers. With it, the machine's CPU use during
        /// the run is printed too (what a load costs, not how much fits).
        #[arg(long)]
        rate: Option<f64>,
        /// Checks per request: with more than 1, each request is a `batch-check` of
        /// this many items, and throughput and the rate count checks, not requests.
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
        batch: u16,
    },
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn seed(url: &str, tuples: usize, key: bool) -> anyhow::Result<()> {
    let db = warden_storage::Db::connect(url).await?;
    if db.get_org("bench").await.is_err() {
        db.create_org("bench").await?;
    }
    db.write_model("bench", warden_bench::MODEL_JSON).await?;
    let started = Instant::now();
    let ds = warden_bench::generate(tuples);
    println!(
        "generated {} tuples in {:?}",
        ds.tuples.len(),
        started.elapsed()
    );
    let started = Instant::now();
    for (i, chunk) in ds.tuples.chunks(1000).enumerate() {
        db.write_tuples("bench", chunk, &[]).await?;
        if i % 100 == 99 {
            println!("  {} written", (i + 1) * 1000);
        }
    }
    println!(
        "stored {} tuples in {:?}",
        ds.tuples.len(),
        started.elapsed()
    );
    if key {
        let k = db
            .create_key(Some("bench"), warden_storage::Role::Admin, "loadgen")
            .await?;
        println!("key: {}", k.token);
    }
    db.close().await;
    Ok(())
}

/// Busy and total jiffies of the whole machine (Linux `/proc/stat`).
fn cpu_jiffies() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().sum();
    let idle = v.get(3)? + v.get(4).unwrap_or(&0);
    Some((total - idle, total))
}

async fn run(
    server: &str,
    key: &str,
    tuples: usize,
    seconds: u64,
    conns: usize,
    rate: Option<f64>,
    batch: usize,
) -> anyhow::Result<()> {
    let ds = warden_bench::generate(tuples);
    let checks: Vec<serde_json::Value> = warden_bench::sample_checks(&ds, 8192, 7)
        .into_iter()
        .map(|r| json!({"user": r.user, "relation": r.relation, "object": r.object, "context": r.context}))
        .collect();
    let bodies: Arc<Vec<String>> = Arc::new(if batch > 1 {
        checks
            .chunks(batch)
            .filter(|c| c.len() == batch)
            .map(|c| json!({ "checks": c }).to_string())
            .collect()
    } else {
        checks.iter().map(|c| c.to_string()).collect()
    });
    let path = if batch > 1 { "batch-check" } else { "check" };
    let url = format!("{}/v1/orgs/bench/{path}", server.trim_end_matches('/'));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(conns)
        .build()?;
    // One warm-up request, which also checks the setup.
    let res = http
        .post(&url)
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(bodies[0].clone())
        .send()
        .await
        .context("server unreachable")?;
    if !res.status().is_success() {
        bail!(
            "check failed: {} {}",
            res.status(),
            res.text().await.unwrap_or_default()
        );
    }
    let next = Arc::new(AtomicUsize::new(0));
    let allowed = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let cpu_before = cpu_jiffies();
    // With a rate, each connection sends on its own schedule.
    let interval = rate.map(|r| Duration::from_secs_f64((conns * batch) as f64 / r.max(1.0)));
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, url, key, bodies) = (http.clone(), url.clone(), key.to_string(), bodies.clone());
        let (next, allowed, errors) = (next.clone(), allowed.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut due = Instant::now();
            while Instant::now() < deadline {
                if let Some(iv) = interval {
                    due += iv;
                    tokio::time::sleep_until(due.into()).await;
                }
                let i = next.fetch_add(1, Ordering::Relaxed) % bodies.len();
                let t = Instant::now();
                let res = http
                    .post(&url)
                    .bearer_auth(&key)
                    .header("content-type", "application/json")
                    .body(bodies[i].clone())
                    .send()
                    .await;
                match res {
                    Ok(r) if r.status().is_success() => {
                        let text = r.text().await.unwrap_or_default();
                        lat.push(t.elapsed());
                        let yes = text.matches("\"allowed\":true").count();
                        allowed.fetch_add(yes, Ordering::Relaxed);
                        if batch > 1 && text.matches("\"allowed\":").count() != batch {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let took = started.elapsed();
    if let (Some((b0, t0)), Some((b1, t1))) = (cpu_before, cpu_jiffies())
        && t1 > t0
    {
        println!(
            "machine CPU busy during the run: {:.1}% of all cores",
            100.0 * (b1 - b0) as f64 / (t1 - t0) as f64
        );
    }
    all.sort();
    // Latencies are per request; counts and throughput per check.
    let checks = all.len() * batch;
    let per = if batch > 1 {
        format!(" in requests of {batch}")
    } else {
        String::new()
    };
    println!(
        "{checks} checks{per} in {:.1} s over {conns} connections: {:.0} checks/s; p50 {:?} p90 {:?} p99 {:?} max {:?}; {} allowed, {} errors",
        took.as_secs_f64(),
        checks as f64 / took.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default(),
        allowed.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
    );
    Ok(())
}

/// Sends `make(i)` requests for `seconds` over `conns` connections; prints a summary.
async fn hammer<F, Fut>(label: &str, seconds: u64, conns: usize, make: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let errors = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (make, next, errors) = (make.clone(), next.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let t = Instant::now();
                if make(i).await {
                    lat.push(t.elapsed());
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await?);
    }
    let took = started.elapsed();
    all.sort();
    println!(
        "{label}: {} in {:.1} s over {conns} connections: {:.0}/s; p50 {:?} p90 {:?} p99 {:?}; {} errors",
        all.len(),
        took.as_secs_f64(),
        all.len() as f64 / took.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        errors.load(Ordering::Relaxed),
    );
    Ok(())
}

/// The hidden `ticket` field of a page.
fn ticket(html: &str) -> anyhow::Result<String> {
    let start = html
        .find("name=\"ticket\" value=\"")
        .context("no ticket in the page")?
        + 21;
    Ok(html[start..].split('"').next().unwrap_or("").to_string())
}

async fn authz(server: &str, admin: &str, seconds: u64, conns: usize) -> anyhow::Result<()> {
    let base = server.trim_end_matches('/').to_string();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(conns)
        .build()?;
    let call = |method: reqwest::Method, path: &str, key: &str, body: serde_json::Value| {
        let req = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(key)
            .json(&body);
        async move {
            let res = req.send().await?;
            let status = res.status();
            let v: serde_json::Value = res.json().await.unwrap_or_default();
            if !status.is_success() {
                bail!("{status}: {v}");
            }
            anyhow::Ok(v)
        }
    };
    let org = format!("authz{}", std::process::id());
    call(reqwest::Method::POST, "/v1/orgs", admin, json!({"id": org})).await?;
    call(
        reqwest::Method::POST,
        &format!("/v1/orgs/{org}/models"),
        admin,
        json!({"dsl": "model\n  schema 1.1\ntype user\ntype agent\ntype document\n  relations\n    define viewer: [user, agent]\n"}),
    )
    .await?;
    call(
        reqwest::Method::PUT,
        &format!("/v1/orgs/{org}/settings"),
        admin,
        json!({"scopes": {"docs.read": ["document#viewer"]}}),
    )
    .await?;
    call(
        reqwest::Method::PUT,
        &format!("/v1/orgs/{org}/users/anne"),
        admin,
        json!({"password": "correct horse battery"}),
    )
    .await?;
    let redirect = "http://127.0.0.1:9/cb";
    call(
        reqwest::Method::PUT,
        &format!("/v1/orgs/{org}/agents/bot"),
        admin,
        json!({"owner": "user:anne", "allowed_scopes": ["docs.read"], "redirect_uris": [redirect]}),
    )
    .await?;
    let cred = call(
        reqwest::Method::POST,
        &format!("/v1/orgs/{org}/agents/bot/credentials"),
        admin,
        json!({"kind": "secret"}),
    )
    .await?;
    let secret = cred["secret"].as_str().unwrap_or("").to_string();
    let writes: Vec<serde_json::Value> = (0..1000)
        .flat_map(|d| {
            [
                json!({"user": "user:anne", "relation": "viewer", "object": format!("document:{d}")}),
                json!({"user": "agent:bot", "relation": "viewer", "object": format!("document:{}", d * 2)}),
            ]
        })
        .collect();
    for chunk in writes.chunks(1000) {
        call(
            reqwest::Method::POST,
            &format!("/v1/orgs/{org}/tuples/write"),
            admin,
            json!({"writes": chunk}),
        )
        .await?;
    }
    let client_id = format!("{org}:bot");
    // Token issuance.
    let token_url = format!("{base}/oauth2/token");
    {
        let (http, url, cid, secret) = (
            http.clone(),
            token_url.clone(),
            client_id.clone(),
            secret.clone(),
        );
        hammer(
            "token issuance (client_credentials, client_secret_basic)",
            seconds,
            conns,
            move |_| {
                let req = http
                    .post(&url)
                    .basic_auth(&cid, Some(&secret))
                    .form(&[("grant_type", "client_credentials")]);
                async move { req.send().await.is_ok_and(|r| r.status().is_success()) }
            },
        )
        .await?;
    }
    // A user token through the real pages (code flow with PKCE).
    let verifier = "loadgen-verifier-0123456789-0123456789-0123456789-abcdef";
    use base64::Engine as _;
    use sha2::Digest as _;
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let page = http
        .get(format!("{base}/oauth2/authorize"))
        .query(&[
            ("response_type", "code"),
            ("client_id", client_id.as_str()),
            ("redirect_uri", redirect),
            ("scope", "docs.read"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .send()
        .await?
        .text()
        .await?;
    let page = http
        .post(format!("{base}/oauth2/authorize/signin"))
        .form(&[
            ("ticket", ticket(&page)?.as_str()),
            ("username", "anne"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await?
        .text()
        .await?;
    let res = http
        .post(format!("{base}/oauth2/authorize/consent"))
        .form(&[("ticket", ticket(&page)?.as_str()), ("decision", "approve")])
        .send()
        .await?;
    let location = res
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_string();
    let code = location
        .split("code=")
        .nth(1)
        .and_then(|c| c.split('&').next())
        .unwrap_or("")
        .to_string();
    let tok: serde_json::Value = http
        .post(&token_url)
        .basic_auth(&client_id, Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect),
            ("code_verifier", verifier),
        ])
        .send()
        .await?
        .json()
        .await?;
    let user_token = tok["access_token"]
        .as_str()
        .context("no user token")?
        .to_string();
    // The full delegated decision: token verification, scope, user and agent checks.
    let allowed = Arc::new(AtomicUsize::new(0));
    {
        let (http, url, key, token, allowed) = (
            http.clone(),
            format!("{base}/v1/orgs/{org}/authorize"),
            admin.to_string(),
            user_token,
            allowed.clone(),
        );
        hammer("delegated decision (POST /authorize with a user token)", seconds, conns, move |i| {
            let body = json!({"token": token, "relation": "viewer", "object": format!("document:{}", i % 1000)}).to_string();
            let req = http.post(&url).bearer_auth(&key).header("content-type", "application/json").body(body);
            let allowed = allowed.clone();
            async move {
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        if r.text().await.unwrap_or_default().contains("\"allowed\":true") {
                            allowed.fetch_add(1, Ordering::Relaxed);
                        }
                        true
                    }
                    _ => false,
                }
            }
        })
        .await?;
    }
    println!(
        "  ({} decisions allowed: user and agent both hold every other document)",
        allowed.load(Ordering::Relaxed)
    );
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        match cli.cmd {
            Cmd::Seed {
                database_url,
                tuples,
                key,
            } => seed(&database_url, tuples, key).await,
            Cmd::Authz {
                server,
                api_key,
                seconds,
                connections,
            } => authz(&server, &api_key, seconds, connections).await,
            Cmd::Run {
                server,
                api_key,
                tuples,
                seconds,
                connections,
                rate,
                batch,
            } => {
                run(
                    &server,
                    &api_key,
                    tuples,
                    seconds,
                    connections,
                    rate,
                    usize::from(batch),
                )
                .await
            }
        }
    })
}
