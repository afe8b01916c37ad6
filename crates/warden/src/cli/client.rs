//! Commands that talk to a running server: organizations, keys, models, tuples, checks.
//! `--server` and `--api-key` (or `WARDEN_SERVER`, `WARDEN_API_KEY`) say where and as
//! whom; `--json` prints the server's JSON instead of the human summary.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Debug, Clone, Args)]
pub struct Conn {
    /// Server base URL.
    #[arg(
        long,
        env = "WARDEN_SERVER",
        default_value = "http://127.0.0.1:8380",
        global = true
    )]
    server: String,
    /// API key (`wdn_...`).
    #[arg(long, env = "WARDEN_API_KEY", global = true, hide_env_values = true)]
    api_key: Option<String>,
    /// Print the server's JSON answer.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organization (server administrator key).
    Create { id: String },
    /// List organizations (server administrator key).
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Create an API key; its token is printed once.
    Create {
        #[arg(long)]
        org: String,
        /// checker, writer or admin; or directory (the SCIM endpoints only).
        #[arg(long)]
        role: String,
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List an organization's keys (never their secrets).
    List {
        #[arg(long)]
        org: String,
    },
    /// Revoke a key.
    Revoke {
        #[arg(long)]
        org: String,
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TupleCommand {
    /// Write tuples: one given as USER RELATION OBJECT, or all of a file (`--file`,
    /// YAML/JSON list or CSV as `warden model test` reads them), in batches of 1000.
    Write(TupleArgs),
    /// Delete tuples, given the same way.
    Delete(TupleArgs),
    /// Read tuples, optionally filtered.
    Read {
        #[arg(long)]
        org: String,
        /// `type` or `type:id`.
        #[arg(long)]
        object: Option<String>,
        #[arg(long)]
        relation: Option<String>,
        #[arg(long)]
        user: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct TupleArgs {
    #[arg(long)]
    org: String,
    #[arg(long, conflicts_with_all = ["user", "relation", "object"])]
    file: Option<PathBuf>,
    user: Option<String>,
    relation: Option<String>,
    object: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long)]
    org: String,
    user: String,
    relation: String,
    object: String,
    /// Request context for conditions, as a JSON object.
    #[arg(long)]
    context: Option<String>,
    /// Answer from at least this revision (a write's consistency token).
    #[arg(long)]
    at_least_revision: Option<i64>,
    /// Show why an allowed answer is allowed.
    #[arg(long)]
    explain: bool,
}

pub(crate) struct Client {
    pub(crate) conn: Conn,
    http: reqwest::Client,
    rt: tokio::runtime::Runtime,
}

impl Client {
    pub(crate) fn new(conn: Conn) -> anyhow::Result<Client> {
        Ok(Client {
            conn,
            http: reqwest::Client::new(),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
        })
    }

    /// Sends a request; a non-2xx answer becomes an error with the server's message.
    pub(crate) fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.conn.server.trim_end_matches('/'));
        let mut req = self.http.request(method, &url);
        if let Some(k) = &self.conn.api_key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        self.rt.block_on(async {
            let res = req
                .send()
                .await
                .with_context(|| format!("cannot reach {url}"))?;
            let status = res.status();
            let text = res.text().await.unwrap_or_default();
            let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            if status.is_success() {
                Ok(v)
            } else {
                bail!(
                    "{} {}: {}",
                    status.as_u16(),
                    v["code"].as_str().unwrap_or("error"),
                    v["message"].as_str().unwrap_or(&v.to_string())
                )
            }
        })
    }

    pub(crate) fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, Some(body))
    }

    pub(crate) fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.call(reqwest::Method::GET, path, None)
    }

    /// Streams a GET answer's body into `out` (for large downloads).
    pub(crate) fn download(&self, path: &str, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
        let url = format!("{}{path}", self.conn.server.trim_end_matches('/'));
        let mut req = self.http.get(&url);
        if let Some(k) = &self.conn.api_key {
            req = req.bearer_auth(k);
        }
        self.rt.block_on(async {
            let mut res = req
                .send()
                .await
                .with_context(|| format!("cannot reach {url}"))?;
            if !res.status().is_success() {
                let status = res.status().as_u16();
                let v: Value = res.json().await.unwrap_or(Value::Null);
                bail!(
                    "{status} {}: {}",
                    v["code"].as_str().unwrap_or("error"),
                    v["message"].as_str().unwrap_or("")
                );
            }
            while let Some(chunk) = res.chunk().await? {
                out.write_all(&chunk)?;
            }
            Ok(())
        })
    }

    /// Prints the JSON, or the human line.
    pub(crate) fn show(&self, v: &Value, human: impl FnOnce(&Value) -> String) {
        if self.conn.json {
            println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
        } else {
            println!("{}", human(v));
        }
    }
}

pub fn org(conn: Conn, cmd: OrgCommand) -> anyhow::Result<ExitCode> {
    let c = Client::new(conn)?;
    match cmd {
        OrgCommand::Create { id } => {
            let v = c.post("/v1/orgs", json!({ "id": id }))?;
            c.show(&v, |v| {
                format!(
                    "created organization {} (revision {})",
                    v["id"].as_str().unwrap_or(""),
                    v["revision"]
                )
            });
        }
        OrgCommand::List => {
            let v = c.get("/v1/orgs")?;
            c.show(&v, |v| {
                v["orgs"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|o| o["id"].as_str().unwrap_or("").to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn key(conn: Conn, cmd: KeyCommand) -> anyhow::Result<ExitCode> {
    let c = Client::new(conn)?;
    match cmd {
        KeyCommand::Create { org, role, name } => {
            let v = c.post(
                &format!("/v1/orgs/{org}/keys"),
                json!({"role": role, "name": name}),
            )?;
            c.show(&v, |v| {
                format!(
                    "key {} ({} of {}); token, shown once:\n{}",
                    v["id"].as_str().unwrap_or(""),
                    v["role"].as_str().unwrap_or(""),
                    org,
                    v["token"].as_str().unwrap_or("")
                )
            });
        }
        KeyCommand::List { org } => {
            let v = c.get(&format!("/v1/orgs/{org}/keys"))?;
            c.show(&v, |v| {
                v["keys"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|k| {
                        format!(
                            "{}  {:8} {}{}",
                            k["id"].as_str().unwrap_or(""),
                            k["role"].as_str().unwrap_or(""),
                            k["name"].as_str().unwrap_or(""),
                            if k["revoked_at"].is_null() {
                                ""
                            } else {
                                "  (revoked)"
                            }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        KeyCommand::Revoke { org, id } => {
            c.call(
                reqwest::Method::DELETE,
                &format!("/v1/orgs/{org}/keys/{id}"),
                None,
            )?;
            if !c.conn.json {
                println!("revoked key {id}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `warden model write --org ORG FILE`: validates locally, then stores the model.
pub fn model_write(conn: Conn, org: &str, file: &std::path::Path) -> anyhow::Result<ExitCode> {
    let model = match warden_modeltest::load_model(file) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(1));
        }
    };
    let c = Client::new(conn)?;
    let v = c.post(
        &format!("/v1/orgs/{org}/models"),
        json!({ "model": serde_json::to_value(&model)? }),
    )?;
    c.show(&v, |v| {
        format!(
            "model {} written; it is current (revision {})",
            v["id"].as_str().unwrap_or(""),
            v["revision"]
        )
    });
    Ok(ExitCode::SUCCESS)
}

fn tuples_of(args: &TupleArgs) -> anyhow::Result<Vec<Value>> {
    match (&args.file, &args.user, &args.relation, &args.object) {
        (Some(f), ..) => {
            let list = warden_modeltest::load_tuples(f).map_err(|e| anyhow::anyhow!("{e}"))?;
            list.iter()
                .map(|t| serde_json::to_value(t.key()).map_err(Into::into))
                .collect()
        }
        (None, Some(u), Some(r), Some(o)) => {
            Ok(vec![json!({"user": u, "relation": r, "object": o})])
        }
        _ => bail!("give USER RELATION OBJECT, or --file"),
    }
}

pub fn tuple(conn: Conn, cmd: TupleCommand) -> anyhow::Result<ExitCode> {
    let c = Client::new(conn)?;
    match cmd {
        TupleCommand::Write(args) => {
            let tuples = tuples_of(&args)?;
            let mut last = Value::Null;
            for chunk in tuples.chunks(1000) {
                last = c.post(
                    &format!("/v1/orgs/{}/tuples/write", args.org),
                    json!({ "writes": chunk }),
                )?;
            }
            c.show(&last, |v| {
                format!("wrote {} tuples (revision {})", tuples.len(), v["revision"])
            });
        }
        TupleCommand::Delete(args) => {
            let tuples = tuples_of(&args)?;
            let mut last = Value::Null;
            for chunk in tuples.chunks(1000) {
                last = c.post(
                    &format!("/v1/orgs/{}/tuples/delete", args.org),
                    json!({ "tuples": chunk }),
                )?;
            }
            c.show(&last, |v| {
                format!(
                    "deleted {} tuples (revision {})",
                    tuples.len(),
                    v["revision"]
                )
            });
        }
        TupleCommand::Read {
            org,
            object,
            relation,
            user,
        } => {
            let mut all = Vec::new();
            let mut token: Option<String> = None;
            loop {
                let v = c.post(
                    &format!("/v1/orgs/{org}/tuples/read"),
                    json!({
                        "filter": {"object": object, "relation": relation, "user": user},
                        "page_size": 1000,
                        "continuation_token": token,
                    }),
                )?;
                all.extend(v["tuples"].as_array().cloned().unwrap_or_default());
                match v["continuation_token"].as_str() {
                    Some(t) => token = Some(t.to_string()),
                    None => break,
                }
            }
            let v = json!({ "tuples": all });
            c.show(&v, |v| {
                v["tuples"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|t| {
                        let cond = t["condition"]["name"]
                            .as_str()
                            .map(|n| format!(" with {n}"))
                            .unwrap_or_default();
                        format!(
                            "{}#{}@{}{cond}",
                            t["object"].as_str().unwrap_or(""),
                            t["relation"].as_str().unwrap_or(""),
                            t["user"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Exit status: 0 allowed, 1 denied (errors are 2, as everywhere).
pub fn check(conn: Conn, args: CheckArgs) -> anyhow::Result<ExitCode> {
    let context: Value = match &args.context {
        Some(s) => serde_json::from_str(s).context("--context must be a JSON object")?,
        None => json!({}),
    };
    let mut body = json!({
        "user": args.user, "relation": args.relation, "object": args.object,
        "context": context, "explain": args.explain,
    });
    if let Some(r) = args.at_least_revision {
        body["consistency"] = json!({ "at_least_revision": r });
    }
    let c = Client::new(conn)?;
    let v = c.post(&format!("/v1/orgs/{}/check", args.org), body)?;
    let allowed = v["allowed"].as_bool().unwrap_or(false);
    c.show(&v, |v| {
        let mut s = if allowed { "allowed" } else { "denied" }.to_string();
        for step in v["path"].as_array().into_iter().flatten() {
            s.push_str(&format!("\n  {}", step.as_str().unwrap_or("")));
        }
        s
    });
    Ok(if allowed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

#[derive(Debug, Subcommand)]
pub enum PrincipalCommand {
    /// Create or replace a user, group or agent.
    Put {
        #[arg(long)]
        org: String,
        /// `user`, `group` or `agent`.
        kind: String,
        id: String,
        #[arg(long, default_value = "")]
        display_name: String,
        /// Users: read the password from standard input (never from the command line).
        #[arg(long)]
        password_stdin: bool,
        /// Agents: `user:<id>` or `group:<id>`.
        #[arg(long)]
        owner: Option<String>,
        /// Agents: what it is for.
        #[arg(long)]
        purpose: Option<String>,
        /// Agents: an allowed scope (repeat for several).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Agents: a redirect URI for the code flow (repeat for several).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
    },
    /// List users, groups or agents.
    List {
        #[arg(long)]
        org: String,
        kind: String,
    },
    /// Change a principal's status (active, suspended, retired, deprovisioned).
    Status {
        #[arg(long)]
        org: String,
        kind: String,
        id: String,
        status: String,
    },
    /// Add a credential to an agent: `--jwk FILE` (a public key) or `--secret`.
    Credential {
        #[arg(long)]
        org: String,
        agent: String,
        #[arg(long, conflicts_with = "secret")]
        jwk: Option<PathBuf>,
        #[arg(long)]
        secret: bool,
    },
}

fn plural(kind: &str) -> anyhow::Result<&'static str> {
    match kind {
        "user" | "users" => Ok("users"),
        "group" | "groups" => Ok("groups"),
        "agent" | "agents" => Ok("agents"),
        other => bail!("unknown kind `{other}`: user, group or agent"),
    }
}

pub fn principal(conn: Conn, cmd: PrincipalCommand) -> anyhow::Result<ExitCode> {
    let c = Client::new(conn)?;
    match cmd {
        PrincipalCommand::Put {
            org,
            kind,
            id,
            display_name,
            password_stdin,
            owner,
            purpose,
            scopes,
            redirect_uris,
        } => {
            let mut body = json!({ "display_name": display_name });
            if password_stdin {
                let mut pw = String::new();
                std::io::stdin().read_line(&mut pw)?;
                body["password"] = json!(pw.trim_end_matches(['\n', '\r']));
            }
            if let Some(o) = owner {
                body["owner"] = json!(o);
            }
            if let Some(p) = purpose {
                body["purpose"] = json!(p);
            }
            if !scopes.is_empty() {
                body["allowed_scopes"] = json!(scopes);
            }
            if !redirect_uris.is_empty() {
                body["redirect_uris"] = json!(redirect_uris);
            }
            let v = c.call(
                reqwest::Method::PUT,
                &format!("/v1/orgs/{org}/{}/{id}", plural(&kind)?),
                Some(body),
            )?;
            c.show(&v, |v| {
                format!(
                    "{kind} {id}: {} (revision {})",
                    v["status"].as_str().unwrap_or(""),
                    v["revision"]
                )
            });
        }
        PrincipalCommand::List { org, kind } => {
            let p = plural(&kind)?;
            let v = c.get(&format!("/v1/orgs/{org}/{p}"))?;
            c.show(&v, |v| {
                v[p].as_array()
                    .into_iter()
                    .flatten()
                    .map(|x| {
                        format!(
                            "{}  {}  {}",
                            x["id"].as_str().unwrap_or(""),
                            x["status"].as_str().unwrap_or(""),
                            x["display_name"].as_str().unwrap_or("")
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        PrincipalCommand::Status {
            org,
            kind,
            id,
            status,
        } => {
            let v = c.post(
                &format!("/v1/orgs/{org}/{}/{id}/status", plural(&kind)?),
                json!({ "status": status }),
            )?;
            c.show(&v, |v| {
                format!(
                    "{kind} {id} is now {} (revision {})",
                    v["status"].as_str().unwrap_or(""),
                    v["revision"]
                )
            });
        }
        PrincipalCommand::Credential {
            org,
            agent,
            jwk,
            secret,
        } => {
            let body = match (jwk, secret) {
                (Some(f), false) => {
                    let text = std::fs::read_to_string(&f)
                        .with_context(|| format!("cannot read {}", f.display()))?;
                    let jwk: Value =
                        serde_json::from_str(&text).context("the JWK file is not JSON")?;
                    json!({"kind": "jwk", "jwk": jwk})
                }
                (None, true) => json!({"kind": "secret"}),
                _ => bail!("give --jwk FILE or --secret"),
            };
            let v = c.post(&format!("/v1/orgs/{org}/agents/{agent}/credentials"), body)?;
            c.show(&v, |v| {
                let mut s = format!(
                    "credential {} ({}) for client_id {}",
                    v["id"].as_str().unwrap_or(""),
                    v["kind"].as_str().unwrap_or(""),
                    v["client_id"].as_str().unwrap_or("")
                );
                if let Some(sec) = v["secret"].as_str() {
                    s.push_str(&format!("\nsecret, shown once (weaker than a key):\n{sec}"));
                }
                s
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}
