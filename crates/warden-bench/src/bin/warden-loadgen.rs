//! Load generator for a running Warden server.
//!
//! `warden-loadgen seed --database-url URL --tuples N` fills a database with the
//! benchmark dataset (organization `bench`, the benchmark model, N tuples), written
//! through the storage layer in batches of 1,000. Then start `warden serve` on that
//! database (its log reports the load time) and run
//! `warden-loadgen run --server URL --api-key KEY`, which sends random
//! `document#can_view` checks over keep-alive HTTP connections for a while and prints
//! throughput and latency percentiles.

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

async fn run(
    server: &str,
    key: &str,
    tuples: usize,
    seconds: u64,
    conns: usize,
) -> anyhow::Result<()> {
    let ds = warden_bench::generate(tuples);
    let bodies: Arc<Vec<String>> = Arc::new(
        warden_bench::sample_checks(&ds, 8192, 7)
            .into_iter()
            .map(|r| {
                json!({"user": r.user, "relation": r.relation, "object": r.object, "context": r.context})
                    .to_string()
            })
            .collect(),
    );
    let url = format!("{}/v1/orgs/bench/check", server.trim_end_matches('/'));
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
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (http, url, key, bodies) = (http.clone(), url.clone(), key.to_string(), bodies.clone());
        let (next, allowed, errors) = (next.clone(), allowed.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < deadline {
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
                        if text.contains("\"allowed\":true") {
                            allowed.fetch_add(1, Ordering::Relaxed);
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
    all.sort();
    println!(
        "{} checks in {:.1} s over {conns} connections: {:.0} checks/s; p50 {:?} p90 {:?} p99 {:?} max {:?}; {} allowed, {} errors",
        all.len(),
        took.as_secs_f64(),
        all.len() as f64 / took.as_secs_f64(),
        percentile(&all, 0.50),
        percentile(&all, 0.90),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or_default(),
        allowed.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
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
            Cmd::Run {
                server,
                api_key,
                tuples,
                seconds,
                connections,
            } => run(&server, &api_key, tuples, seconds, connections).await,
        }
    })
}
