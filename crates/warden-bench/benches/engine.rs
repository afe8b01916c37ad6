//! Engine benchmarks on the generated multi-tenant dataset at 10k, 100k and 1M tuples.
//!
//! First prints a report per size (load time, memory per tuple, check p50/p99 for
//! allowed and denied answers, list_objects and list_users latency), then runs the
//! criterion benchmarks. `WARDEN_BENCH_SIZES=10000,100000` limits the sizes.
//! Run: `cargo bench -p warden-bench --bench engine`.

#![allow(
    clippy::expect_used,
    reason = "a benchmark with a broken fixture should stop loudly"
)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion};
use warden_bench::{Dataset, Rng, USERS_PER_ORG, generate, load, rss_bytes};
use warden_engine::{Engine, ListObjectsRequest, ListUsersRequest, Model, TupleStore, UserFilter};

fn model() -> Model {
    let schema = serde_json::from_str(warden_bench::MODEL_JSON).expect("benchmark model parses");
    Model::new(schema).expect("benchmark model compiles")
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn report(n: usize) -> (Model, TupleStore, Dataset) {
    let ds = generate(n);
    let model = model();
    let rss0 = rss_bytes().unwrap_or(0);
    let t0 = Instant::now();
    let store = load(&ds);
    let load_time = t0.elapsed();
    let rss1 = rss_bytes().unwrap_or(0);
    let tuples = store.len();
    let engine = Engine::new(&model, &store);

    let reqs = warden_bench::sample_checks(&ds, 200_000, 42);
    let mut allowed = Vec::new();
    let mut denied = Vec::new();
    let mut errors = 0;
    for r in &reqs {
        let t = Instant::now();
        let res = engine.check(r);
        let d = t.elapsed();
        match res {
            Ok(x) if x.allowed => allowed.push(d),
            Ok(_) => denied.push(d),
            Err(_) => errors += 1,
        }
    }
    allowed.sort();
    denied.sort();
    let mut all: Vec<Duration> = allowed.iter().chain(&denied).copied().collect();
    all.sort();

    let mut rng = Rng(7);
    let mut lo = Vec::new();
    let mut lo_sizes = 0;
    for _ in 0..200 {
        let o = rng.below(ds.orgs);
        let req = ListObjectsRequest {
            user: format!("user:o{o}u{}", rng.below(USERS_PER_ORG)),
            relation: "can_view".into(),
            object_type: "document".into(),
            context: warden_bench::context(),
            contextual_tuples: vec![],
        };
        let t = Instant::now();
        lo_sizes += engine.list_objects(&req).map(|v| v.len()).unwrap_or(0);
        lo.push(t.elapsed());
    }
    lo.sort();
    let mut lu = Vec::new();
    let mut lu_sizes = 0;
    for _ in 0..200 {
        let o = rng.below(ds.orgs);
        let req = ListUsersRequest {
            object: format!("document:o{o}d{}", rng.below(270)),
            relation: "can_view".into(),
            user_filters: vec![UserFilter::parse("user")],
            context: warden_bench::context(),
            contextual_tuples: vec![],
        };
        let t = Instant::now();
        lu_sizes += engine.list_users(&req).map(|v| v.len()).unwrap_or(0);
        lu.push(t.elapsed());
    }
    lu.sort();

    println!("== dataset {n} (actual {tuples} tuples, {} orgs)", ds.orgs);
    println!(
        "load: {:.3} s ({:.0} tuples/s)",
        load_time.as_secs_f64(),
        tuples as f64 / load_time.as_secs_f64()
    );
    println!(
        "memory: {:.0} bytes/tuple by RSS delta, {:.0} bytes/tuple by store accounting",
        (rss1.saturating_sub(rss0)) as f64 / tuples as f64,
        store.heap_bytes() as f64 / tuples as f64
    );
    println!(
        "check: {} allowed, {} denied, {errors} errors; all p50 {:?} p99 {:?}; allowed p50 {:?} p99 {:?}; denied p50 {:?} p99 {:?}",
        allowed.len(),
        denied.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&allowed, 0.5),
        percentile(&allowed, 0.99),
        percentile(&denied, 0.5),
        percentile(&denied, 0.99),
    );
    println!(
        "list_objects: p50 {:?} p99 {:?} (avg {} results); list_users: p50 {:?} p99 {:?} (avg {} results)",
        percentile(&lo, 0.5),
        percentile(&lo, 0.99),
        lo_sizes / 200,
        percentile(&lu, 0.5),
        percentile(&lu, 0.99),
        lu_sizes / 200
    );
    (model, store, ds)
}

fn main() {
    let sizes: Vec<usize> = std::env::var("WARDEN_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 100_000, 1_000_000]);
    let mut c = Criterion::default().configure_from_args().sample_size(20);
    for n in sizes {
        let (model, store, ds) = report(n);
        let engine = Engine::new(&model, &store);
        let reqs = warden_bench::sample_checks(&ds, 4096, 99);
        let mut group = c.benchmark_group("engine");
        group.measurement_time(Duration::from_secs(3));
        group.bench_function(BenchmarkId::new("check_random", n), |b| {
            let mut i = 0;
            b.iter(|| {
                i = (i + 1) % reqs.len();
                black_box(engine.check(&reqs[i]).map(|r| r.allowed).unwrap_or(false))
            })
        });
        let lo = ListObjectsRequest {
            user: "user:o0u1".into(),
            relation: "can_view".into(),
            object_type: "document".into(),
            context: warden_bench::context(),
            contextual_tuples: vec![],
        };
        group.bench_function(BenchmarkId::new("list_objects", n), |b| {
            b.iter(|| black_box(engine.list_objects(&lo).map(|v| v.len()).unwrap_or(0)))
        });
        let lu = ListUsersRequest {
            object: "document:o0d5".into(),
            relation: "can_view".into(),
            user_filters: vec![UserFilter::parse("user")],
            context: warden_bench::context(),
            contextual_tuples: vec![],
        };
        group.bench_function(BenchmarkId::new("list_users", n), |b| {
            b.iter(|| black_box(engine.list_users(&lu).map(|v| v.len()).unwrap_or(0)))
        });
        group.finish();
    }
    c.final_summary();
}
