//! Audit records and their tamper evidence, free of I/O.
//!
//! Every record of an organization carries a sequence number (1, 2, 3, ... with no
//! gaps), the hash of the record before it, and its own hash: SHA-256 over the previous
//! hash and the record's canonical JSON (every field but `hash`, in declaration order).
//! [`verify`] walks a run of records and names the first one that was changed, removed,
//! moved or slipped in. Storage and the server decide where records go; this crate
//! decides what makes them trustworthy.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The `prev_hash` of an organization's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One audit record: a decision, an administrative change, or an outcome report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// What was asked or done (`viewer`, `tuples.write`, ...).
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The initiating user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The acting agent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// Further actors in the delegation chain, outermost first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub actors: Vec<String>,
    /// The access token's id and client (never the token itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// For decisions: the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed: Option<bool>,
    /// The failed checks or the granting paths, or the change's details.
    #[serde(default)]
    pub detail: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_addr: Option<String>,
    pub prev_hash: String,
    #[serde(default)]
    pub hash: String,
}

impl AuditRecord {
    /// The hash this record must carry: over `prev_hash` and every field but `hash`.
    pub fn compute_hash(&self) -> String {
        let mut unsealed = self.clone();
        unsealed.hash = String::new();
        let canonical = serde_json::to_vec(&unsealed).unwrap_or_default();
        let mut h = Sha256::new();
        h.update(self.prev_hash.as_bytes());
        h.update(b"\n");
        h.update(&canonical);
        hex::encode(h.finalize())
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

/// How a chain was found broken, at which sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Tamper {
    #[error("record {seq} was changed (its hash does not match its content)")]
    Edited { seq: u64 },
    #[error("record {seq} is missing (removed)")]
    Missing { seq: u64 },
    #[error("record {seq} is out of place (reordered or inserted)")]
    OutOfPlace { seq: u64 },
    #[error("record {seq} does not follow the record before it (inserted or replaced)")]
    Unchained { seq: u64 },
}

impl Tamper {
    /// The sequence number of the first bad record.
    pub fn seq(&self) -> u64 {
        match self {
            Tamper::Edited { seq }
            | Tamper::Missing { seq }
            | Tamper::OutOfPlace { seq }
            | Tamper::Unchained { seq } => *seq,
        }
    }
}

/// Verifies a run of one organization's records, in the order they are stored,
/// starting after `from` (the sequence number and hash of the record before the run:
/// a checkpoint), or at the beginning with `None`. Returns the last (seq, hash).
pub fn verify(
    records: &[AuditRecord],
    from: Option<(u64, String)>,
) -> Result<Option<(u64, String)>, Tamper> {
    let mut prev = from;
    for (i, r) in records.iter().enumerate() {
        let expected = prev.as_ref().map_or(1, |(s, _)| s + 1);
        if r.seq > expected {
            // Further on, the expected record exists: moved; else: removed.
            return Err(if records[i..].iter().any(|x| x.seq == expected) {
                Tamper::OutOfPlace { seq: expected }
            } else {
                Tamper::Missing { seq: expected }
            });
        }
        if r.seq < expected {
            return Err(Tamper::OutOfPlace { seq: r.seq });
        }
        if r.compute_hash() != r.hash {
            return Err(Tamper::Edited { seq: r.seq });
        }
        let prev_hash = prev.as_ref().map_or(GENESIS, |(_, h)| h.as_str());
        if r.prev_hash != prev_hash {
            return Err(Tamper::Unchained { seq: r.seq });
        }
        prev = Some((r.seq, r.hash.clone()));
    }
    Ok(prev)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let mut r = AuditRecord {
                org: "acme".into(),
                seq: 0,
                id: format!("d{i}"),
                time_ms: 1_700_000_000_000 + i as i64,
                kind: "decision".into(),
                action: "viewer".into(),
                resource: Some(format!("document:{i}")),
                user: Some("user:anne".into()),
                agent: Some("agent:bot".into()),
                actors: vec!["agent:sub".into()],
                jti: Some("j".into()),
                client_id: Some("acme:bot".into()),
                allowed: Some(i % 2 == 0),
                detail: serde_json::json!({"check": "user_holds"}),
                model_id: None,
                revision: Some(7),
                approval_id: None,
                request_id: None,
                client_addr: None,
                prev_hash: String::new(),
                hash: String::new(),
            };
            let prev = out.last().map(|p| (p.seq, p.hash.clone()));
            r.seal(prev.as_ref().map(|(s, h)| (*s, h.as_str())));
            out.push(r);
        }
        out
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain(10);
        let last = verify(&c, None).unwrap().unwrap();
        assert_eq!(last.0, 10);
        // From a checkpoint in the middle.
        let cp = (c[4].seq, c[4].hash.clone());
        assert_eq!(verify(&c[5..], Some(cp)).unwrap().unwrap().0, 10);
    }

    #[test]
    fn edit_delete_reorder_insert_are_each_caught_at_the_first_bad_record() {
        let c = chain(10);
        // Edit: a denial turned into an allow.
        let mut e = c.clone();
        e[3].allowed = Some(true);
        e[3].allowed = Some(!c[3].allowed.unwrap());
        assert_eq!(verify(&e, None), Err(Tamper::Edited { seq: 4 }));
        // Edit and re-hash: the next record no longer follows.
        let mut e2 = c.clone();
        e2[3].user = Some("user:mallory".into());
        e2[3].hash = e2[3].compute_hash();
        assert_eq!(verify(&e2, None), Err(Tamper::Unchained { seq: 5 }));
        // Delete.
        let mut d = c.clone();
        d.remove(5);
        assert_eq!(verify(&d, None), Err(Tamper::Missing { seq: 6 }));
        // Delete the tail is only visible against a checkpoint: verify reports the end.
        assert_eq!(verify(&c[..8], None).unwrap().unwrap().0, 8);
        // Reorder.
        let mut r = c.clone();
        r.swap(2, 3);
        assert_eq!(verify(&r, None), Err(Tamper::OutOfPlace { seq: 3 }));
        // Insert a forged record with a fresh seq after the 6th, renumbering the rest.
        let mut i = c.clone();
        let mut forged = c[5].clone();
        forged.id = "forged".into();
        forged.seal(Some((c[5].seq, &c[5].hash)));
        i.insert(6, forged);
        assert_eq!(verify(&i, None), Err(Tamper::OutOfPlace { seq: 7 }));
    }
}
