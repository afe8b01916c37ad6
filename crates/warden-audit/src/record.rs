//! One audit record and its hash.
//!
//! Every record of an organization carries a sequence number (1, 2, 3, ... with no
//! gaps), the hash of the record before it, and its own hash: SHA-256 over the previous
//! hash and the record's canonical JSON (every field but `seq` and `hash`, in
//! declaration order). The sequence number is left out on purpose: the order is
//! proven by the links, so renumbering rows cannot hide an inserted or removed record.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The `prev_hash` of an organization's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record: a decision, an administrative change, or an outcome report.
/// Reading one refuses fields it does not know: they would not be covered by the hash.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditRecord {
    pub org: String,
    /// Position in the organization's chain, from 1.
    pub seq: u64,
    /// The record id (for a decision, its decision id).
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// `decision`, `change` or `outcome`.
    pub kind: String,
    /// What was asked or done: a relation for decisions (`viewer`), an operation for
    /// changes (`tuples.write`), the result for outcomes.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The subject of a plain check, as sent (`user:anne`, `group:eng#member`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The initiating user, if any (`user:anne`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The acting agent, if any (`agent:bot`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Further actors in the delegation chain (sub-agents), outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<String>,
    /// The access token's id (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The OAuth client of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Who called Warden: `key:<api key id>` or `client:<oauth client id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    /// For decisions: the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    /// The checks and their outcomes (the failed check, the granting path), or what a
    /// change did. Never a secret or a token value.
    #[serde(default)]
    pub detail: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    /// The revision the decision was computed at, or the change committed as. It names
    /// the whole policy state: model, settings and tuples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    /// For an outcome: the decision it reports on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refers_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    pub prev_hash: String,
    #[serde(default)]
    pub hash: String,
}

/// The hashed view of a record: every field but `seq` and `hash`. `D` is the detail:
/// its JSON value, or that value already serialized (which writes the same bytes).
#[derive(Serialize)]
struct Canonical<'a, D: Serialize + ?Sized> {
    org: &'a str,
    id: &'a str,
    time_ms: i64,
    kind: &'a str,
    action: &'a str,
    resource: &'a Option<String>,
    subject: &'a Option<String>,
    user: &'a Option<String>,
    agent: &'a Option<String>,
    actors: &'a [String],
    jti: &'a Option<String>,
    client_id: &'a Option<String>,
    caller: &'a Option<String>,
    allowed: &'a Option<bool>,
    detail: &'a D,
    model_id: &'a Option<String>,
    revision: &'a Option<i64>,
    approval_id: &'a Option<String>,
    refers_to: &'a Option<String>,
    request_id: &'a Option<String>,
    client_addr: &'a Option<String>,
}

impl AuditRecord {
    /// The hashed content: canonical JSON of every field but `seq`, `prev_hash` and
    /// `hash`. It does not depend on the record's place in the chain, so it can be
    /// made before the record is chained.
    pub fn content(&self) -> Vec<u8> {
        self.content_with(&self.detail)
    }

    /// [`content`](Self::content) with the detail given separately (as a value, or as
    /// its JSON text).
    fn content_with<D: Serialize + ?Sized>(&self, detail: &D) -> Vec<u8> {
        let c = Canonical {
            org: &self.org,
            id: &self.id,
            time_ms: self.time_ms,
            kind: &self.kind,
            action: &self.action,
            resource: &self.resource,
            subject: &self.subject,
            user: &self.user,
            agent: &self.agent,
            actors: &self.actors,
            jti: &self.jti,
            client_id: &self.client_id,
            caller: &self.caller,
            allowed: &self.allowed,
            detail,
            model_id: &self.model_id,
            revision: &self.revision,
            approval_id: &self.approval_id,
            refers_to: &self.refers_to,
            request_id: &self.request_id,
            client_addr: &self.client_addr,
        };
        // Serializing plain data into a Vec cannot fail.
        serde_json::to_vec(&c).unwrap_or_default()
    }

    /// Replaces NUL characters in the plain text fields with U+FFFD: PostgreSQL cannot
    /// store them, and one such record would fail the whole group commit it is in.
    /// (The JSON fields escape them.) Done before hashing, so the stored record is
    /// the hashed one.
    pub fn scrub(&mut self) {
        let fix = |s: &mut String| {
            if s.contains('\0') {
                *s = s.replace('\0', "\u{FFFD}");
            }
        };
        for s in [
            &mut self.org,
            &mut self.id,
            &mut self.kind,
            &mut self.action,
        ] {
            fix(s);
        }
        for s in [
            &mut self.resource,
            &mut self.subject,
            &mut self.user,
            &mut self.agent,
            &mut self.jti,
            &mut self.client_id,
            &mut self.caller,
            &mut self.model_id,
            &mut self.approval_id,
            &mut self.refers_to,
            &mut self.request_id,
            &mut self.client_addr,
        ]
        .into_iter()
        .flatten()
        {
            fix(s);
        }
    }

    /// The hash this record must carry: over `prev_hash` and its content.
    pub fn compute_hash(&self) -> String {
        link(&self.prev_hash, &self.content())
    }

    /// Chains this record after `prev` (or first, with `None`): sets `seq`,
    /// `prev_hash` and `hash`.
    pub fn seal(&mut self, prev: Option<(u64, &str)>) {
        let (seq, prev_hash) = match prev {
            Some((s, h)) => (s + 1, h.to_string()),
            None => (1, GENESIS.to_string()),
        };
        self.seq = seq;
        self.prev_hash = prev_hash;
        self.hash = self.compute_hash();
    }
}

/// SHA-256 over a previous hash and a record's content, hex-encoded.
fn link(prev_hash: &str, content: &[u8]) -> String {
    let mut out = String::with_capacity(64);
    link_into(prev_hash, content, &mut out);
    out
}

/// [`link`] into `out`, reusing its buffer.
fn link_into(prev_hash: &str, content: &[u8], out: &mut String) {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(content);
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.clear();
    for b in h.finalize() {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
}

/// A record not yet chained, with everything that does not depend on its place in
/// the chain worked out ahead: its hashed content and its JSON columns. Chaining must
/// happen in order, on one writer; preparing can happen on whichever thread made the
/// record, so that what remains for the writer is one SHA-256 per record.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub record: AuditRecord,
    content: Vec<u8>,
    /// `detail` as JSON text.
    pub detail_json: String,
    /// `actors` as a JSON array, or `None` when there are none.
    pub actors_json: Option<String>,
}

impl Prepared {
    pub fn new(mut record: AuditRecord) -> Prepared {
        record.scrub();
        // The detail is serialized once, for its column and, verbatim, inside the
        // content (the same bytes serializing the value in place would write).
        let (content, detail_json) = match serde_json::value::to_raw_value(&record.detail) {
            Ok(raw) => (
                record.content_with(&*raw),
                String::from(Box::<str>::from(raw)),
            ),
            // A JSON value always serializes; should it not, take the long way.
            Err(_) => (record.content(), record.detail.to_string()),
        };
        // The hashes are written on the writer's thread into buffers made here, so
        // that the memory is the request's to free (a free across threads costs more).
        record.prev_hash.reserve(64);
        record.hash.reserve(64);
        let actors_json = (!record.actors.is_empty())
            .then(|| serde_json::to_string(&record.actors).unwrap_or_default());
        Prepared {
            record,
            content,
            detail_json,
            actors_json,
        }
    }

    /// Chains the record after `prev` (or first, with `None`), like
    /// [`AuditRecord::seal`].
    pub fn seal(&mut self, prev: Option<(u64, &str)>) {
        let r = &mut self.record;
        match prev {
            Some((s, h)) => {
                r.seq = s + 1;
                h.clone_into(&mut r.prev_hash);
            }
            None => {
                r.seq = 1;
                GENESIS.clone_into(&mut r.prev_hash);
            }
        }
        link_into(&r.prev_hash, &self.content, &mut r.hash);
    }
}

impl From<AuditRecord> for Prepared {
    fn from(record: AuditRecord) -> Prepared {
        Prepared::new(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> AuditRecord {
        AuditRecord {
            org: "acme".into(),
            id: "d1".into(),
            time_ms: 1_700_000_000_000,
            kind: "decision".into(),
            action: "viewer".into(),
            resource: Some("doc:1".into()),
            agent: Some("agent:bot".into()),
            actors: vec!["agent:sub".into()],
            allowed: Some(true),
            detail: serde_json::json!({"path": ["doc:1#viewer"]}),
            ..Default::default()
        }
    }

    #[test]
    fn nul_characters_are_replaced_before_hashing() {
        let mut r = sample();
        r.resource = Some("doc:a\0b".into());
        r.action = "view\0".into();
        r.actors = vec!["agent:x\0".into()];
        let mut p = Prepared::new(r);
        p.seal(None);
        assert_eq!(p.record.resource.as_deref(), Some("doc:a\u{FFFD}b"));
        assert_eq!(p.record.action, "view\u{FFFD}");
        assert!(!p.actors_json.as_deref().unwrap_or("").contains('\0'));
        assert_eq!(p.record.hash, p.record.compute_hash());
    }

    #[test]
    fn the_serialized_detail_hashes_like_the_value() {
        // Escapes, non-ASCII, nesting, numbers, nulls and key order must come out of
        // the pre-serialized detail byte for byte as from the value itself.
        for detail in [
            serde_json::json!({"path": ["a \"quoted\" <- b\\c", "\u{1F600} \u{7}\n"]}),
            serde_json::json!({"z": 1, "a": [1.5, -2, null, true], "m": {"y": {}, "b": []}}),
            serde_json::json!("just text"),
            serde_json::Value::Null,
        ] {
            let mut r = sample();
            r.detail = detail.clone();
            let mut p = Prepared::new(r.clone());
            r.seal(None);
            p.seal(None);
            assert_eq!(p.record.hash, r.hash, "{detail}");
            assert_eq!(p.detail_json, detail.to_string());
            assert_eq!(p.content, r.content());
        }
    }

    #[test]
    fn prepared_records_chain_exactly_like_plain_ones() {
        let mut plain = sample();
        let mut prepared = Prepared::new(sample());
        plain.seal(None);
        prepared.seal(None);
        assert_eq!(prepared.record, plain);
        assert_eq!(plain.seq, 1);
        assert_eq!(plain.prev_hash, GENESIS);

        let mut next_plain = sample();
        next_plain.id = "d2".into();
        let mut next_prepared = Prepared::new(next_plain.clone());
        next_plain.seal(Some((plain.seq, &plain.hash)));
        next_prepared.seal(Some((plain.seq, &plain.hash)));
        assert_eq!(next_prepared.record, next_plain);
        assert_eq!(next_plain.seq, 2);
        assert_ne!(next_plain.hash, plain.hash);
        assert_eq!(next_plain.hash, next_plain.compute_hash());

        assert_eq!(prepared.actors_json.as_deref(), Some(r#"["agent:sub"]"#));
        assert_eq!(prepared.detail_json, r#"{"path":["doc:1#viewer"]}"#);
        assert_eq!(Prepared::new(AuditRecord::default()).actors_json, None);
    }

    #[test]
    fn the_hash_covers_content_and_link_but_not_seq() {
        let mut a = sample();
        a.seal(None);
        let mut renumbered = a.clone();
        renumbered.seq = 7;
        assert_eq!(renumbered.compute_hash(), a.hash);
        let mut edited = a.clone();
        edited.allowed = Some(false);
        assert_ne!(edited.compute_hash(), a.hash);
        let mut relinked = a.clone();
        relinked.prev_hash = "1".repeat(64);
        assert_ne!(relinked.compute_hash(), a.hash);
    }
}
