//! Verifying a run of one organization's records: the first record that is not where
//! and what the chain says it must be, and how it went wrong.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::record::{AuditRecord, GENESIS};

/// How a chain was found broken, at which sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Tamper {
    #[error("record {seq} was changed: its hash does not match its content")]
    Edited { seq: u64 },
    #[error("record {seq} is missing: it was removed")]
    Missing { seq: u64 },
    #[error("record {seq} is out of place: records were reordered")]
    OutOfPlace { seq: u64 },
    #[error("record {seq} was inserted: the record after it follows the one before it")]
    Inserted { seq: u64 },
    #[error(
        "record {seq} does not follow the record before it: a record between them was \
         removed, or one of them replaced"
    )]
    Unchained { seq: u64 },
    #[error("record {seq} differs from the signed checkpoint for that position")]
    CheckpointMismatch { seq: u64 },
    #[error(
        "the log ends at record {last} but a signed checkpoint or the chain head names \
         record {expected}: records at the end were removed"
    )]
    Truncated { last: u64, expected: u64 },
    #[error("checkpoint for record {seq}: {reason}")]
    BadCheckpoint { seq: u64, reason: String },
    #[error(
        "the end of the log (record {seq}) is not covered by a signed checkpoint: the \
         export's signed head is missing or was replaced"
    )]
    Unsigned { seq: u64 },
}

impl Tamper {
    /// The sequence number of the first bad record.
    pub fn seq(&self) -> u64 {
        match self {
            Tamper::Edited { seq }
            | Tamper::Missing { seq }
            | Tamper::OutOfPlace { seq }
            | Tamper::Inserted { seq }
            | Tamper::Unchained { seq }
            | Tamper::CheckpointMismatch { seq }
            | Tamper::Unsigned { seq }
            | Tamper::BadCheckpoint { seq, .. } => *seq,
            Tamper::Truncated { last, .. } => last + 1,
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
    let mut v = ChainVerifier::new(from);
    v.run(records)?;
    Ok(v.last())
}

/// Verifies a chain page by page (so a log of any length fits in memory), against
/// signed checkpoints.
#[derive(Debug, Clone, Default)]
pub struct ChainVerifier {
    prev: Option<(u64, String)>,
    /// The hash of the record before `prev`, to recognize an insertion.
    before_prev: Option<String>,
    /// Hashes that records must have, by sequence number (from verified checkpoints).
    expected: BTreeMap<u64, String>,
    count: u64,
    first: Option<u64>,
}

impl ChainVerifier {
    /// Starts after `from` (a verified cut checkpoint), or at the chain's start.
    pub fn new(from: Option<(u64, String)>) -> ChainVerifier {
        ChainVerifier {
            prev: from,
            ..Default::default()
        }
    }

    /// Records at these positions must carry these hashes (verified checkpoints).
    pub fn expect(&mut self, seq: u64, hash: String) {
        self.expected.insert(seq, hash);
    }

    /// The last record verified so far.
    pub fn last(&self) -> Option<(u64, String)> {
        self.prev.clone()
    }

    /// How many records were verified, and the first one's sequence number.
    pub fn counted(&self) -> (u64, Option<u64>) {
        (self.count, self.first)
    }

    /// Verifies the next page of records, in stored order.
    pub fn run(&mut self, records: &[AuditRecord]) -> Result<(), Tamper> {
        for (i, r) in records.iter().enumerate() {
            let expected = self.prev.as_ref().map_or(1, |(s, _)| s + 1);
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
            let prev_hash = self.prev.as_ref().map_or(GENESIS, |(_, h)| h.as_str());
            if r.prev_hash != prev_hash {
                // It follows the record two back: the one in between was slipped in.
                if self.before_prev.as_deref() == Some(r.prev_hash.as_str()) {
                    return Err(Tamper::Inserted { seq: r.seq - 1 });
                }
                // It follows a record stored further on: rows were swapped.
                if records[i + 1..].iter().any(|x| x.hash == r.prev_hash) {
                    return Err(Tamper::OutOfPlace { seq: r.seq });
                }
                return Err(Tamper::Unchained { seq: r.seq });
            }
            if let Some(h) = self.expected.get(&r.seq)
                && *h != r.hash
            {
                return Err(Tamper::CheckpointMismatch { seq: r.seq });
            }
            self.before_prev = Some(
                self.prev
                    .take()
                    .map_or_else(|| GENESIS.to_string(), |(_, h)| h),
            );
            self.prev = Some((r.seq, r.hash.clone()));
            self.count += 1;
            self.first.get_or_insert(r.seq);
        }
        Ok(())
    }

    /// After the last page: no checkpoint, and not `head` (the end of the chain as the
    /// source stated it, e.g. an export's last line), may lie beyond the last record.
    pub fn finish(&self, head: Option<(u64, &str)>) -> Result<Option<(u64, String)>, Tamper> {
        let last = self.prev.as_ref().map_or(0, |(s, _)| *s);
        if let Some((&seq, _)) = self.expected.range(last + 1..).next() {
            return Err(Tamper::Truncated {
                last,
                expected: seq,
            });
        }
        if let Some((seq, hash)) = head {
            if seq > last {
                return Err(Tamper::Truncated {
                    last,
                    expected: seq,
                });
            }
            if seq < last {
                return Err(Tamper::Inserted { seq: seq + 1 });
            }
            if self.prev.as_ref().is_some_and(|(_, h)| h != hash) {
                return Err(Tamper::CheckpointMismatch { seq });
            }
        }
        Ok(self.prev.clone())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn chain(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 0..n {
            let mut r = AuditRecord {
                org: "acme".into(),
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
                revision: Some(7),
                ..Default::default()
            };
            let prev = out.last().map(|p| (p.seq, p.hash.clone()));
            r.seal(prev.as_ref().map(|(s, h)| (*s, h.as_str())));
            out.push(r);
        }
        out
    }

    /// Renumbers a run 1, 2, 3, ... as a database row shift would.
    fn renumber(rs: &mut [AuditRecord]) {
        for (i, r) in rs.iter_mut().enumerate() {
            r.seq = i as u64 + 1;
        }
    }

    #[test]
    fn an_untouched_chain_verifies() {
        let c = chain(10);
        let last = verify(&c, None).unwrap().unwrap();
        assert_eq!(last.0, 10);
        // From a checkpoint in the middle.
        let cp = (c[4].seq, c[4].hash.clone());
        assert_eq!(verify(&c[5..], Some(cp)).unwrap().unwrap().0, 10);
        assert_eq!(verify(&[], None), Ok(None));
    }

    #[test]
    fn edits_are_caught_at_the_edited_record() {
        let c = chain(10);
        let mut e = c.clone();
        e[3].allowed = Some(!c[3].allowed.unwrap_or(false));
        assert_eq!(verify(&e, None), Err(Tamper::Edited { seq: 4 }));
        // Edited and re-hashed: the next record no longer follows it.
        let mut e2 = c.clone();
        e2[3].user = Some("user:mallory".into());
        e2[3].hash = e2[3].compute_hash();
        assert_eq!(verify(&e2, None), Err(Tamper::Unchained { seq: 5 }));
    }

    #[test]
    fn removals_are_caught_with_or_without_renumbering() {
        let c = chain(10);
        let mut d = c.clone();
        d.remove(5);
        assert_eq!(verify(&d, None), Err(Tamper::Missing { seq: 6 }));
        renumber(&mut d);
        assert_eq!(verify(&d, None), Err(Tamper::Unchained { seq: 6 }));
        // Removing the tail is only visible against a checkpoint or the head.
        assert_eq!(verify(&c[..8], None).unwrap().unwrap().0, 8);
        let mut v = ChainVerifier::new(None);
        v.expect(9, c[8].hash.clone());
        v.run(&c[..8]).unwrap();
        assert_eq!(
            v.finish(None),
            Err(Tamper::Truncated {
                last: 8,
                expected: 9
            })
        );
        let mut v = ChainVerifier::new(None);
        v.run(&c[..8]).unwrap();
        assert_eq!(
            v.finish(Some((10, &c[9].hash))).unwrap_err().seq(),
            9,
            "the head names the removed tail"
        );
    }

    #[test]
    fn reorders_are_caught_at_the_first_moved_record() {
        let c = chain(10);
        // Rows swapped, sequence numbers kept in place.
        let mut r = c.clone();
        r.swap(2, 3);
        renumber(&mut r);
        assert_eq!(verify(&r, None), Err(Tamper::OutOfPlace { seq: 3 }));
        // Rows swapped with their sequence numbers.
        let mut r2 = c.clone();
        r2.swap(2, 3);
        assert_eq!(verify(&r2, None), Err(Tamper::OutOfPlace { seq: 3 }));
    }

    #[test]
    fn insertions_are_named_even_when_the_forgery_is_well_hashed() {
        let c = chain(10);
        let mut i = c.clone();
        let mut forged = c[5].clone();
        forged.id = "forged".into();
        forged.seal(Some((c[5].seq, &c[5].hash)));
        i.insert(6, forged);
        renumber(&mut i);
        assert_eq!(verify(&i, None), Err(Tamper::Inserted { seq: 7 }));
        // A well-hashed rewrite from the insertion on is caught by a signed
        // checkpoint taken before it.
        let mut rewritten = c[..6].to_vec();
        let mut forged = c[6].clone();
        forged.id = "forged".into();
        rewritten.push(forged);
        for r in c[6..].iter().cloned() {
            rewritten.push(r);
        }
        for k in 6..rewritten.len() {
            let prev = (rewritten[k - 1].seq, rewritten[k - 1].hash.clone());
            rewritten[k].seal(Some((prev.0, &prev.1)));
        }
        assert!(verify(&rewritten, None).is_ok());
        let mut v = ChainVerifier::new(None);
        v.expect(8, c[7].hash.clone());
        assert_eq!(
            v.run(&rewritten),
            Err(Tamper::CheckpointMismatch { seq: 8 })
        );
        // Inserted at the very start.
        let mut j = c.clone();
        let mut first = c[0].clone();
        first.id = "forged".into();
        first.seal(None);
        j.insert(0, first);
        renumber(&mut j);
        assert_eq!(verify(&j, None), Err(Tamper::Inserted { seq: 1 }));
    }
}
