//! The schema and its migrations. Each migration is SQL both SQLite and PostgreSQL
//! accept; they run in order, once, inside a transaction, on every start.

use crate::{Backend, Db, Result};

/// Migrations in order; the index + 1 is the schema version.
const MIGRATIONS: &[&[&str]] = &[
    &[
        "CREATE TABLE warden_revision (id INTEGER PRIMARY KEY, value BIGINT NOT NULL)",
        "INSERT INTO warden_revision (id, value) VALUES (1, 0)",
        "CREATE TABLE orgs (
        id TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL,
        revision BIGINT NOT NULL
    )",
        "CREATE TABLE models (
        org_id TEXT NOT NULL REFERENCES orgs(id),
        id TEXT NOT NULL,
        model_json TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        revision BIGINT NOT NULL,
        PRIMARY KEY (org_id, id)
    )",
        "CREATE INDEX models_by_revision ON models (org_id, revision)",
        "CREATE TABLE tuples (
        org_id TEXT NOT NULL REFERENCES orgs(id),
        object_type TEXT NOT NULL,
        object_id TEXT NOT NULL,
        relation TEXT NOT NULL,
        subject TEXT NOT NULL,
        condition_name TEXT,
        condition_context TEXT,
        revision BIGINT NOT NULL,
        PRIMARY KEY (org_id, object_type, object_id, relation, subject)
    )",
        "CREATE INDEX tuples_by_subject ON tuples (org_id, subject)",
        "CREATE TABLE changes (
        revision BIGINT NOT NULL,
        seq INTEGER NOT NULL,
        org_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        object TEXT,
        relation TEXT,
        subject TEXT,
        condition_name TEXT,
        condition_context TEXT,
        model_id TEXT,
        created_at BIGINT NOT NULL,
        PRIMARY KEY (revision, seq)
    )",
        "CREATE INDEX changes_by_org ON changes (org_id, revision)",
        "CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        org_id TEXT REFERENCES orgs(id),
        role TEXT NOT NULL,
        name TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_used_at BIGINT,
        revoked_at BIGINT
    )",
    ],
    &["CREATE TABLE org_settings (
        org_id TEXT PRIMARY KEY REFERENCES orgs(id),
        settings_json TEXT NOT NULL,
        revision BIGINT NOT NULL
    )"],
    &["CREATE TABLE principals (
        org_id TEXT NOT NULL REFERENCES orgs(id),
        kind TEXT NOT NULL,
        id TEXT NOT NULL,
        display_name TEXT NOT NULL,
        owner TEXT,
        purpose TEXT,
        scopes_json TEXT NOT NULL,
        status TEXT NOT NULL,
        expires_at BIGINT,
        password_hash TEXT,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL,
        revision BIGINT NOT NULL,
        PRIMARY KEY (org_id, kind, id)
    )"],
    &[
        "CREATE TABLE signing_keys (
            kid TEXT PRIMARY KEY,
            private_der TEXT NOT NULL,
            public_x TEXT NOT NULL,
            state TEXT NOT NULL,
            created_at BIGINT NOT NULL
        )",
        "CREATE TABLE credentials (
            org_id TEXT NOT NULL REFERENCES orgs(id),
            agent_id TEXT NOT NULL,
            id TEXT NOT NULL,
            kind TEXT NOT NULL,
            public_jwk TEXT,
            secret_hash TEXT,
            created_at BIGINT NOT NULL,
            last_used_at BIGINT,
            expires_at BIGINT,
            revoked_at BIGINT,
            PRIMARY KEY (org_id, id)
        )",
        "CREATE TABLE revoked_tokens (
            jti TEXT PRIMARY KEY,
            org_id TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            revoked_at BIGINT NOT NULL
        )",
        "CREATE TABLE used_assertions (jti TEXT PRIMARY KEY, expires_at BIGINT NOT NULL)",
    ],
    &[
        "ALTER TABLE principals ADD COLUMN redirect_uris TEXT",
        "CREATE TABLE auth_codes (
            code_hash TEXT PRIMARY KEY,
            org_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            redirect_uri TEXT NOT NULL,
            code_challenge TEXT NOT NULL,
            resource TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT
        )",
        "CREATE TABLE refresh_tokens (
            token_hash TEXT PRIMARY KEY,
            family TEXT NOT NULL,
            org_id TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            scope TEXT NOT NULL,
            resource TEXT NOT NULL,
            expires_at BIGINT NOT NULL,
            used_at BIGINT,
            revoked_at BIGINT
        )",
        "CREATE INDEX refresh_by_family ON refresh_tokens (family)",
    ],
    &["CREATE TABLE dynamic_clients (
        client_id TEXT PRIMARY KEY,
        metadata_json TEXT NOT NULL,
        org_id TEXT,
        created_at BIGINT NOT NULL
    )"],
    &[
        "CREATE TABLE audit_records (
            org_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            id TEXT NOT NULL,
            time_ms BIGINT NOT NULL,
            kind TEXT NOT NULL,
            action TEXT NOT NULL,
            resource TEXT,
            subject TEXT,
            user_id TEXT,
            agent_id TEXT,
            actors TEXT,
            jti TEXT,
            client_id TEXT,
            caller TEXT,
            allowed INTEGER,
            detail TEXT NOT NULL,
            model_id TEXT,
            revision BIGINT,
            approval_id TEXT,
            refers_to TEXT,
            request_id TEXT,
            client_addr TEXT,
            prev_hash TEXT NOT NULL,
            hash TEXT NOT NULL,
            PRIMARY KEY (org_id, seq)
        )",
        // Only indexes that grow at their end (ids are UUIDv7, time-ordered): an
        // index on user, agent or resource would dirty a random page per record in
        // every group commit, which cost two thirds of decision throughput.
        "CREATE INDEX audit_by_id ON audit_records (org_id, id)",
        "CREATE INDEX audit_by_time ON audit_records (org_id, time_ms)",
        "CREATE INDEX audit_by_ref ON audit_records (org_id, refers_to) WHERE refers_to IS NOT NULL",
        "CREATE TABLE audit_checkpoints (
            org_id TEXT NOT NULL,
            seq BIGINT NOT NULL,
            kind TEXT NOT NULL,
            hash TEXT NOT NULL,
            time_ms BIGINT NOT NULL,
            jws TEXT NOT NULL,
            PRIMARY KEY (org_id, seq, kind)
        )",
        "CREATE TABLE audit_sinks (
            org_id TEXT PRIMARY KEY,
            delivered_seq BIGINT NOT NULL,
            lease_owner TEXT,
            lease_until BIGINT NOT NULL
        )",
    ],
    &[
        "ALTER TABLE principals ADD COLUMN tokens_not_before BIGINT",
        "ALTER TABLE principals ADD COLUMN flag TEXT",
        // SCIM resources as served (canonical JSON without id, meta and the derived
        // `members` / `groups`); memberships live in `tuples`.
        "CREATE TABLE scim_resources (
            org_id TEXT NOT NULL,
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            name_key TEXT NOT NULL,
            external_id TEXT,
            doc TEXT NOT NULL,
            revision BIGINT NOT NULL,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL,
            PRIMARY KEY (org_id, kind, id)
        )",
        "CREATE UNIQUE INDEX scim_user_names ON scim_resources (org_id, name_key) WHERE kind = 'User'",
        "CREATE INDEX scim_by_name ON scim_resources (org_id, kind, name_key)",
    ],
    &[
        // Human approval requests: who asked, for whom, what, on what, under which
        // context (digest), and what became of the request.
        "CREATE TABLE approvals (
            org_id TEXT NOT NULL,
            id TEXT NOT NULL,
            rule TEXT NOT NULL,
            status TEXT NOT NULL,
            agent_id TEXT NOT NULL,
            user_id TEXT NOT NULL,
            actors TEXT NOT NULL,
            relation TEXT NOT NULL,
            object TEXT NOT NULL,
            context_digest TEXT NOT NULL,
            context TEXT NOT NULL,
            decision_id TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL,
            decided_at BIGINT,
            decided_by TEXT,
            valid_until BIGINT,
            reason TEXT,
            used_at BIGINT,
            used_by TEXT,
            PRIMARY KEY (org_id, id)
        )",
        "CREATE INDEX approvals_by_status ON approvals (org_id, status, created_at)",
    ],
    // The webhook URL an audit delivery cursor belongs to (NULL: set before this
    // column, adopted by the first delivery).
    &["ALTER TABLE audit_sinks ADD COLUMN url TEXT"],
];

pub(crate) async fn run(db: &Db) -> Result<()> {
    let mut tx = db.begin_write().await?;
    if db.backend() == Backend::Postgres {
        // Several nodes may start at once: one migrates, the others wait for it.
        sqlx::query("SELECT 1 FROM (SELECT pg_advisory_xact_lock(7243001)) AS l")
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("CREATE TABLE IF NOT EXISTS warden_schema (version BIGINT NOT NULL)")
        .execute(&mut *tx)
        .await?;
    let current: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM warden_schema")
        .fetch_one(&mut *tx)
        .await?;
    let current = current.unwrap_or(0) as usize;
    for (i, steps) in MIGRATIONS.iter().enumerate().skip(current) {
        for sql in *steps {
            sqlx::query(*sql).execute(&mut *tx).await?;
        }
        sqlx::query("INSERT INTO warden_schema (version) VALUES ($1)")
            .bind((i + 1) as i64)
            .execute(&mut *tx)
            .await?;
        tracing::info!(version = i + 1, "schema migrated");
    }
    tx.commit().await?;
    Ok(())
}
