//! `warden audit query | export | verify | tail`: reading the audit log of a server,
//! and verifying it (against the server, or offline on an export).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::client::{Client, Conn};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Records matching filters, oldest first (`--desc` for newest first).
    Query {
        #[command(flatten)]
        filter: Filter,
        /// Records to show (per page with --all; 1-1000).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Newest first.
        #[arg(long)]
        desc: bool,
        /// Follow the cursor to the last matching record.
        #[arg(long)]
        all: bool,
    },
    /// The whole retained log as JSON Lines (verifiable offline with `verify --file`).
    Export {
        #[arg(long)]
        org: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Verify the hash chain and signed checkpoints; exit 0 intact, 1 tampered. With
    /// `--org`, downloads the export and the server's keys and verifies here; with
    /// `--file`, verifies an export offline.
    Verify {
        #[arg(long, required_unless_present = "file")]
        org: Option<String>,
        /// An export file (offline).
        #[arg(long, conflicts_with = "org")]
        file: Option<PathBuf>,
        /// The server's JWKS (a file), trusted for checkpoint signatures offline.
        /// Without it, the keys inside the export are used, which proves the log is
        /// as its signer left it but not who the signer was.
        #[arg(long, requires = "file")]
        jwks: Option<PathBuf>,
    },
    /// The latest records, then new ones as they arrive.
    Tail {
        #[command(flatten)]
        filter: Filter,
        /// How many recent records to show first.
        #[arg(long, short = 'n', default_value_t = 20)]
        lines: u32,
        /// Keep waiting for new records.
        #[arg(long, short)]
        follow: bool,
        /// How often to ask for new records, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
    },
}

#[derive(Debug, Args)]
pub struct Filter {
    #[arg(long)]
    org: String,
    /// From this time (RFC 3339 or epoch milliseconds).
    #[arg(long)]
    from: Option<String>,
    /// Until this time (exclusive).
    #[arg(long)]
    to: Option<String>,
    #[arg(long)]
    user: Option<String>,
    #[arg(long)]
    agent: Option<String>,
    /// An agent anywhere in the delegation chain.
    #[arg(long)]
    actor: Option<String>,
    #[arg(long)]
    resource: Option<String>,
    #[arg(long)]
    action: Option<String>,
    /// decision, change or outcome.
    #[arg(long)]
    kind: Option<String>,
    /// allow or deny.
    #[arg(long)]
    decision: Option<String>,
    /// Free text in the reasons and details.
    #[arg(long)]
    text: Option<String>,
    /// A record (decision) id.
    #[arg(long)]
    id: Option<String>,
}

impl Filter {
    fn query(&self) -> String {
        let pairs = [
            ("from", &self.from),
            ("to", &self.to),
            ("user", &self.user),
            ("agent", &self.agent),
            ("actor", &self.actor),
            ("resource", &self.resource),
            ("action", &self.action),
            ("kind", &self.kind),
            ("decision", &self.decision),
            ("q", &self.text),
            ("id", &self.id),
        ];
        let mut q = reqwest::Url::parse("http://x/").map_or_else(
            |_| String::new(),
            |mut u| {
                {
                    let mut p = u.query_pairs_mut();
                    for (k, v) in pairs {
                        if let Some(v) = v {
                            p.append_pair(k, v);
                        }
                    }
                }
                u.query().unwrap_or("").to_string()
            },
        );
        if !q.is_empty() {
            q.push('&');
        }
        q
    }
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| ms.to_string())
}

/// One record as a line a person reads.
fn line(r: &Value) -> String {
    let s = |k: &str| r[k].as_str().unwrap_or("");
    let verdict = match r["allowed"].as_bool() {
        Some(true) => "ALLOW",
        Some(false) => "DENY ",
        None => "",
    };
    let mut who = String::new();
    if !s("user").is_empty() {
        who.push_str(s("user"));
    } else if !s("subject").is_empty() && s("agent").is_empty() {
        who.push_str(s("subject"));
    }
    if !s("agent").is_empty() {
        if !who.is_empty() {
            who.push_str(" via ");
        }
        who.push_str(s("agent"));
    }
    if let Some(actors) = r["actors"].as_array() {
        for a in actors {
            who.push_str(&format!(" > {}", a.as_str().unwrap_or("")));
        }
    }
    let mut out = format!(
        "{} #{:<6} {:8} {} {} {} {}",
        time(r["time_ms"].as_i64().unwrap_or(0)),
        r["seq"],
        s("kind"),
        verdict,
        s("action"),
        s("resource"),
        who
    );
    if let Some(o) = r["outcome"]["result"].as_str() {
        out.push_str(&format!(" [outcome: {o}]"));
    }
    if let Some(refers) = r["refers_to"].as_str() {
        out.push_str(&format!(" [for {refers}]"));
    }
    out.push_str(&format!("  id={}", s("id")));
    out
}

pub fn run(conn: Conn, cmd: AuditCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AuditCommand::Query {
            filter,
            limit,
            desc,
            all,
        } => {
            let c = Client::new(conn)?;
            let base = format!(
                "/v1/orgs/{}/audit?{}limit={limit}&order={}",
                filter.org,
                filter.query(),
                if desc { "desc" } else { "asc" }
            );
            let mut cursor: Option<u64> = None;
            let mut count = 0usize;
            loop {
                let path = match cursor {
                    Some(cur) => format!("{base}&cursor={cur}"),
                    None => base.clone(),
                };
                let v = c.get(&path)?;
                for r in v["records"].as_array().into_iter().flatten() {
                    count += 1;
                    if c.conn.json {
                        println!("{r}");
                    } else {
                        println!("{}", line(r));
                    }
                }
                match v["next_cursor"].as_u64() {
                    Some(next) if all => cursor = Some(next),
                    _ => break,
                }
            }
            if !c.conn.json {
                eprintln!("{count} records");
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Export { org, output } => {
            let c = Client::new(conn)?;
            let path = format!("/v1/orgs/{org}/audit/export");
            match output {
                Some(file) => {
                    let mut f = std::fs::File::create(&file)
                        .with_context(|| format!("cannot create {}", file.display()))?;
                    c.download(&path, &mut f)?;
                    f.sync_all()?;
                    eprintln!("exported to {}", file.display());
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    c.download(&path, &mut lock)?;
                    lock.flush()?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AuditCommand::Verify { org, file, jwks } => {
            let json = conn.json;
            // The report, and whose keys checked its signatures, in words.
            let (report, keys_from) = match (org, file) {
                (_, Some(file)) => {
                    let (keys, from) = match jwks {
                        Some(j) => (
                            Some(read_jwks(
                                &std::fs::read_to_string(&j)
                                    .with_context(|| format!("cannot read {}", j.display()))?,
                            )?),
                            "the JWKS file given",
                        ),
                        None => (None, "the export's own, not independently checked"),
                    };
                    let f = std::fs::File::open(&file)
                        .with_context(|| format!("cannot open {}", file.display()))?;
                    let report =
                        warden_audit::verify_export(std::io::BufReader::new(f), keys.as_deref())?;
                    (report, from)
                }
                (Some(org), None) => {
                    let c = Client::new(conn)?;
                    let keys = read_jwks(&c.get("/oauth2/jwks")?.to_string())?;
                    let mut buf = Vec::new();
                    c.download(&format!("/v1/orgs/{org}/audit/export"), &mut buf)?;
                    let report = warden_audit::verify_export(&buf[..], Some(&keys))?;
                    (report, "the server's JWKS")
                }
                (None, None) => anyhow::bail!("give --org or --file"),
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                match &report.problem {
                    None => println!(
                        "OK: organization {}: {} records{} verified; {} signed checkpoints (keys: {})",
                        report.org,
                        report.records,
                        match (report.first_seq, report.last_seq) {
                            (Some(a), Some(b)) => format!(" (#{a}-#{b})"),
                            _ => String::new(),
                        },
                        report.checkpoints,
                        keys_from
                    ),
                    Some(p) => println!(
                        "TAMPERED: organization {}: first bad record #{}: {p} ({} records before it verified)",
                        report.org,
                        p.seq(),
                        report.records
                    ),
                }
            }
            Ok(if report.ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        AuditCommand::Tail {
            filter,
            lines,
            follow,
            interval_ms,
        } => {
            let c = Client::new(conn)?;
            let q = filter.query();
            let org = &filter.org;
            // The last `lines` matching records, newest first, a page at a time.
            let mut recent: Vec<Value> = Vec::new();
            let mut before: Option<u64> = None;
            while recent.len() < lines as usize {
                let want = (lines as usize - recent.len()).min(1000);
                let cursor = before.map(|b| format!("&cursor={b}")).unwrap_or_default();
                let v = c.get(&format!(
                    "/v1/orgs/{org}/audit?{q}limit={want}&order=desc{cursor}"
                ))?;
                recent.extend(v["records"].as_array().cloned().unwrap_or_default());
                match v["next_cursor"].as_u64() {
                    Some(next) => before = Some(next),
                    None => break,
                }
            }
            recent.reverse();
            let show = |r: &Value| {
                if c.conn.json {
                    println!("{r}");
                } else {
                    println!("{}", line(r));
                }
            };
            let mut cursor = recent.last().and_then(|r| r["seq"].as_u64()).unwrap_or(0);
            for r in &recent {
                show(r);
            }
            if !follow {
                return Ok(ExitCode::SUCCESS);
            }
            if cursor == 0 {
                // Nothing matched yet: start from the current end of the log.
                let v = c.get(&format!("/v1/orgs/{org}/audit?limit=1&order=desc"))?;
                cursor = v["records"][0]["seq"].as_u64().unwrap_or(0);
            }
            loop {
                let v = c.get(&format!(
                    "/v1/orgs/{org}/audit?{q}limit=1000&cursor={cursor}"
                ))?;
                for r in v["records"].as_array().into_iter().flatten() {
                    cursor = r["seq"].as_u64().unwrap_or(cursor);
                    show(r);
                }
                std::io::stdout().flush()?;
                std::thread::sleep(std::time::Duration::from_millis(interval_ms.max(50)));
            }
        }
    }
}

fn read_jwks(text: &str) -> anyhow::Result<Vec<Value>> {
    let v: Value = serde_json::from_str(text).context("the JWKS is not JSON")?;
    v["keys"]
        .as_array()
        .cloned()
        .context("the JWKS has no `keys` list")
}
