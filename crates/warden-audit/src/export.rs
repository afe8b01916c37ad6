//! The export: one organization's retained log as JSON Lines, verifiable offline.
//!
//! Line 1 is `{"header": ...}` (organization, the cut checkpoint the log starts after,
//! the server's public keys); then every signed checkpoint (`{"checkpoint": ...}`),
//! among them one of kind `export` that the server signs over the chain's end as it
//! exports; then every record in sequence order (`{"record": ...}`); last, the end of
//! the chain when the export began (`{"head": {"seq": N, "hash": "..."}}`). A file cut
//! short, or rewritten and rehashed with its checkpoint lines dropped, no longer ends
//! at a signed head.

use std::io::BufRead;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::chain::{ChainVerifier, Tamper};
use crate::checkpoint::Checkpoint;
use crate::record::AuditRecord;

/// The format name in every export's header.
pub const FORMAT: &str = "warden-audit-export/2";

/// Records verified per page.
const PAGE: usize = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportHeader {
    pub format: String,
    pub org: String,
    pub exported_at_ms: i64,
    /// The cut checkpoint the retained log starts after (none: from record 1).
    #[serde(default)]
    pub anchor: Option<Checkpoint>,
    /// The server's public signing keys (JWKs) when the export was made.
    #[serde(default)]
    pub keys: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum ExportLine {
    Header(ExportHeader),
    Checkpoint(Checkpoint),
    Record(Box<AuditRecord>),
    Head { seq: u64, hash: String },
}

#[derive(Debug, Error)]
pub enum ExportError {
    #[error("cannot read the export: {0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Format { line: usize, message: String },
}

/// What verification found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub org: String,
    /// Records verified (up to the first problem).
    pub records: u64,
    pub first_seq: Option<u64>,
    pub last_seq: Option<u64>,
    /// Signed checkpoints whose signatures verified.
    pub checkpoints: u64,
    /// Where the public keys came from: `given` (trusted) or `export` (the file's own).
    pub keys: &'static str,
    /// The first problem, if any.
    #[serde(serialize_with = "problem")]
    pub problem: Option<Tamper>,
}

impl Report {
    /// What a verification found: `checkpoints` signed checkpoints verified, the
    /// records `v` walked (none if the checkpoints did not verify), the first problem.
    pub fn of(
        org: &str,
        keys: &'static str,
        checkpoints: u64,
        v: Option<&ChainVerifier>,
        problem: Option<Tamper>,
    ) -> Report {
        let (records, first_seq) = v.map_or((0, None), ChainVerifier::counted);
        Report {
            org: org.to_string(),
            records,
            first_seq,
            last_seq: v.and_then(|v| v.last()).map(|(s, _)| s),
            checkpoints,
            keys,
            problem,
        }
    }

    pub fn ok(&self) -> bool {
        self.problem.is_none()
    }
}

fn problem<S: serde::Serializer>(p: &Option<Tamper>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        None => s.serialize_none(),
        Some(t) => serde_json::json!({"seq": t.seq(), "message": t.to_string()}).serialize(s),
    }
}

/// Verifies checkpoints against `keys` and prepares a chain verifier: starting after
/// the anchor (a cut checkpoint), expecting every checkpoint's hash at its position.
pub fn prepare(
    org: &str,
    anchor: Option<&Checkpoint>,
    checkpoints: &[Checkpoint],
    keys: &[serde_json::Value],
) -> Result<ChainVerifier, Tamper> {
    let bad = |cp: &Checkpoint, reason: String| Tamper::BadCheckpoint {
        seq: cp.seq,
        reason,
    };
    let from = match anchor {
        None => None,
        Some(a) => {
            a.verify(keys).map_err(|e| bad(a, e.to_string()))?;
            if a.org != org || a.kind != "cut" {
                return Err(bad(a, "the anchor is not this organization's cut".into()));
            }
            Some((a.seq, a.hash.clone()))
        }
    };
    let mut v = ChainVerifier::new(from);
    for cp in checkpoints {
        cp.verify(keys).map_err(|e| bad(cp, e.to_string()))?;
        if cp.org != org {
            return Err(bad(cp, format!("it is organization `{}`'s", cp.org)));
        }
        v.expect(cp.seq, cp.hash.clone());
    }
    Ok(v)
}

/// Verifies an export. `trusted_keys` (the server's JWKS, obtained independently) are
/// used when given; otherwise the keys in the export itself, which proves the log is
/// intact as the key holder signed it, not who that was.
pub fn verify_export(
    input: impl BufRead,
    trusted_keys: Option<&[serde_json::Value]>,
) -> Result<Report, ExportError> {
    let mut lines = input.lines().enumerate();
    let parse = |n: usize, s: &str| -> Result<ExportLine, ExportError> {
        serde_json::from_str(s).map_err(|e| ExportError::Format {
            line: n + 1,
            message: e.to_string(),
        })
    };
    let header = match lines.next() {
        Some((n, l)) => match parse(n, &l?)? {
            ExportLine::Header(h) if h.format == FORMAT => h,
            ExportLine::Header(h) => {
                return Err(ExportError::Format {
                    line: 1,
                    message: format!(
                        "format `{}` is not {FORMAT} (exports before {FORMAT} carry no signed head; export again)",
                        h.format
                    ),
                });
            }
            _ => {
                return Err(ExportError::Format {
                    line: 1,
                    message: format!("not a {FORMAT} file (no header)"),
                });
            }
        },
        None => {
            return Err(ExportError::Format {
                line: 1,
                message: "empty file".into(),
            });
        }
    };
    let (keys, keys_from) = match trusted_keys {
        Some(k) => (k.to_vec(), "given"),
        None => (header.keys.clone(), "export"),
    };
    let org = header.org.as_str();
    let mut checkpoints = Vec::new();
    let mut verifier: Option<ChainVerifier> = None;
    let mut page: Vec<AuditRecord> = Vec::new();
    let mut head = None;
    let mut last_line = 1;
    for (n, line) in lines {
        let line = line?;
        last_line = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        if head.is_some() {
            return Err(ExportError::Format {
                line: n + 1,
                message: "nothing may follow the head line".into(),
            });
        }
        match parse(n, &line)? {
            ExportLine::Header(_) => {
                return Err(ExportError::Format {
                    line: n + 1,
                    message: "a second header".into(),
                });
            }
            ExportLine::Checkpoint(cp) => {
                if verifier.is_some() {
                    return Err(ExportError::Format {
                        line: n + 1,
                        message: "checkpoints come before the records".into(),
                    });
                }
                checkpoints.push(cp);
            }
            ExportLine::Record(r) => {
                let v = match &mut verifier {
                    Some(v) => v,
                    None => match prepare(org, header.anchor.as_ref(), &checkpoints, &keys) {
                        Ok(v) => verifier.insert(v),
                        Err(t) => return Ok(Report::of(org, keys_from, 0, None, Some(t))),
                    },
                };
                let cps = checkpoints.len() as u64;
                if r.org != org {
                    let t = Tamper::Edited { seq: r.seq };
                    return Ok(Report::of(org, keys_from, cps, Some(v), Some(t)));
                }
                page.push(*r);
                if page.len() >= PAGE {
                    if let Err(t) = v.run(&page) {
                        return Ok(Report::of(org, keys_from, cps, Some(v), Some(t)));
                    }
                    page.clear();
                }
            }
            ExportLine::Head { seq, hash } => head = Some((seq, hash)),
        }
    }
    let Some(head) = head else {
        return Err(ExportError::Format {
            line: last_line + 1,
            message: "no head line: the file is incomplete".into(),
        });
    };
    let mut v = match verifier {
        Some(v) => v,
        None => match prepare(org, header.anchor.as_ref(), &checkpoints, &keys) {
            Ok(v) => v,
            Err(t) => return Ok(Report::of(org, keys_from, 0, None, Some(t))),
        },
    };
    let result = v
        .run(&page)
        .and_then(|()| v.finish(Some((head.0, head.1.as_str()))))
        .and_then(|_| signed_head(&checkpoints, &head));
    Ok(Report::of(
        org,
        keys_from,
        checkpoints.len() as u64,
        Some(&v),
        result.err(),
    ))
}

/// An export must end at the head the server signed as it exported (a checkpoint of
/// kind `export`): without it, whoever cut or rewrote the file could have dropped the
/// checkpoints that would have told. Even an empty log's export has one (over record 0,
/// or over the cut retention left), so a file stripped to its header fails too.
fn signed_head(checkpoints: &[Checkpoint], head: &(u64, String)) -> Result<(), Tamper> {
    let (seq, hash) = head;
    if checkpoints
        .iter()
        .any(|c| c.kind == "export" && c.seq == *seq && c.hash == *hash)
    {
        Ok(())
    } else {
        Err(Tamper::Unsigned { seq: *seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::tests::chain;
    use crate::record::GENESIS as GENESIS_HASH;
    use warden_oauth::keys::SigningKey;

    fn export(records: &[AuditRecord], key: &SigningKey, cps: &[u64]) -> String {
        let mut out = Vec::new();
        out.push(ExportLine::Header(ExportHeader {
            format: FORMAT.into(),
            org: "acme".into(),
            exported_at_ms: 0,
            anchor: None,
            keys: vec![key.public_jwk()],
        }));
        // The stored checkpoints, then the one the server signs over the head.
        let last = records.last().map(|r| r.seq);
        for (s, kind) in cps
            .iter()
            .map(|&s| (s, "periodic"))
            .chain(last.map(|s| (s, "export")))
        {
            let r = &records[s as usize - 1];
            out.push(ExportLine::Checkpoint(
                Checkpoint::sign("acme", s, &r.hash, 0, kind, &key.kid, &key.encoding_key())
                    .unwrap(),
            ));
        }
        for r in records {
            out.push(ExportLine::Record(Box::new(r.clone())));
        }
        if let Some(last) = records.last() {
            out.push(ExportLine::Head {
                seq: last.seq,
                hash: last.hash.clone(),
            });
        }
        out.iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect()
    }

    #[test]
    fn an_export_verifies_offline_and_names_the_first_bad_record() {
        let key = SigningKey::generate().unwrap();
        let c = chain(25);
        let text = export(&c, &key, &[10, 20]);
        let r = verify_export(text.as_bytes(), None).unwrap();
        assert!(r.ok(), "{r:?}");
        assert_eq!((r.records, r.checkpoints, r.last_seq), (25, 3, Some(25)));
        // Trusted keys that did not sign it.
        let other = SigningKey::generate().unwrap();
        let r = verify_export(text.as_bytes(), Some(&[other.public_jwk()])).unwrap();
        assert!(matches!(
            r.problem,
            Some(Tamper::BadCheckpoint { seq: 10, .. })
        ));
        // One edited line.
        let edited = text.replacen("\"id\":\"d13\"", "\"id\":\"d99\"", 1);
        let r = verify_export(edited.as_bytes(), None).unwrap();
        assert_eq!(r.problem, Some(Tamper::Edited { seq: 14 }));
        assert_eq!(r.records, 13);
        // The tail cut off, head line included: the file is incomplete; with a head
        // line made up for record 15, the checkpoint at 20 notices.
        let cut: String = text
            .lines()
            .take(1 + 3 + 15)
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(matches!(
            verify_export(cut.as_bytes(), None),
            Err(ExportError::Format { .. })
        ));
        let made_up = format!(
            "{cut}{{\"head\":{{\"seq\":15,\"hash\":\"{}\"}}}}\n",
            c[14].hash
        );
        let r = verify_export(made_up.as_bytes(), None).unwrap();
        assert_eq!(
            r.problem,
            Some(Tamper::Truncated {
                last: 15,
                expected: 20
            })
        );
        // Garbage is a format error with its line.
        let bad = format!("{text}not json\n");
        assert!(matches!(
            verify_export(bad.as_bytes(), None),
            Err(ExportError::Format { line: 31, .. })
        ));
    }

    /// Rewrites record `seq` (its decision flipped) and rehashes every record after it,
    /// as someone holding the file but not the key could.
    fn rewritten(records: &[AuditRecord], seq: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for r in records {
            let mut r = r.clone();
            if r.seq == seq {
                r.allowed = r.allowed.map(|a| !a);
            }
            if r.seq >= seq {
                let prev = out.last().map(|p| (p.seq, p.hash.clone()));
                r.seal(prev.as_ref().map(|(s, h)| (*s, h.as_str())));
            }
            out.push(r);
        }
        out
    }

    #[test]
    fn a_rewritten_export_without_its_signed_head_fails() {
        let key = SigningKey::generate().unwrap();
        let c = chain(25);
        let forged = rewritten(&c, 20);
        // Rehashed, every checkpoint line dropped, a head line to match.
        let text = export(&forged, &key, &[]);
        let no_checkpoints: String = text
            .lines()
            .filter(|l| !l.starts_with("{\"checkpoint\""))
            .map(|l| format!("{l}\n"))
            .collect();
        let r = verify_export(no_checkpoints.as_bytes(), None).unwrap();
        assert_eq!(r.problem, Some(Tamper::Unsigned { seq: 25 }));
        // The same with the head line gone too: the last record must still be signed.
        let no_head: String = no_checkpoints
            .lines()
            .filter(|l| !l.starts_with("{\"head\""))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(matches!(
            verify_export(no_head.as_bytes(), Some(&[key.public_jwk()])),
            Err(ExportError::Format { .. })
        ));
        // The genuine export's signed head no longer matches the rewrite.
        let genuine = export(&c, &key, &[10]);
        let mixed: String = genuine
            .lines()
            .filter(|l| !l.starts_with("{\"record\"") && !l.starts_with("{\"head\""))
            .map(|l| format!("{l}\n"))
            .chain(
                no_checkpoints
                    .lines()
                    .filter(|l| l.starts_with("{\"record\"") || l.starts_with("{\"head\""))
                    .map(|l| format!("{l}\n")),
            )
            .collect();
        let r = verify_export(mixed.as_bytes(), None).unwrap();
        assert_eq!(r.problem, Some(Tamper::CheckpointMismatch { seq: 25 }));
        // An untouched export with only its export checkpoint verifies.
        let r = verify_export(export(&c, &key, &[]).as_bytes(), None).unwrap();
        assert!(r.ok(), "{r:?}");
    }

    #[test]
    fn an_export_cut_back_to_a_stored_checkpoint_fails() {
        let key = SigningKey::generate().unwrap();
        let c = chain(25);
        let text = export(&c, &key, &[10]);
        // Records after 10, the export checkpoint and the head dropped; a head line
        // for 10, which a periodic checkpoint signs.
        let cut: String = text
            .lines()
            .filter(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                let r = v["record"]["seq"].as_u64();
                v.get("head").is_none()
                    && v["checkpoint"]["kind"] != "export"
                    && r.is_none_or(|s| s <= 10)
            })
            .map(|l| format!("{l}\n"))
            .chain(std::iter::once(format!(
                "{{\"head\":{{\"seq\":10,\"hash\":\"{}\"}}}}\n",
                c[9].hash
            )))
            .collect();
        let r = verify_export(cut.as_bytes(), Some(&[key.public_jwk()])).unwrap();
        assert_eq!(r.problem, Some(Tamper::Unsigned { seq: 10 }));
        // Stripped to its header: incomplete.
        let header: String = text.lines().take(1).map(|l| format!("{l}\n")).collect();
        assert!(verify_export(header.as_bytes(), None).is_err());
        // Structure: two heads, a field the format does not have.
        let twice = format!("{text}{}\n", text.lines().last().unwrap());
        assert!(verify_export(twice.as_bytes(), None).is_err());
        let odd = text.replacen("\"exported_at_ms\"", "\"x\":1,\"exported_at_ms\"", 1);
        assert!(verify_export(odd.as_bytes(), None).is_err());
    }

    #[test]
    fn an_empty_log_exports_a_signed_head() {
        let key = SigningKey::generate().unwrap();
        let header = ExportLine::Header(ExportHeader {
            format: FORMAT.into(),
            org: "acme".into(),
            exported_at_ms: 0,
            anchor: None,
            keys: vec![key.public_jwk()],
        });
        let cp = Checkpoint::sign(
            "acme",
            0,
            GENESIS_HASH,
            0,
            "export",
            &key.kid,
            &key.encoding_key(),
        )
        .unwrap();
        let lines = [
            header,
            ExportLine::Checkpoint(cp),
            ExportLine::Head {
                seq: 0,
                hash: GENESIS_HASH.into(),
            },
        ];
        let text: String = lines
            .iter()
            .map(|l| serde_json::to_string(l).unwrap() + "\n")
            .collect();
        let r = verify_export(text.as_bytes(), None).unwrap();
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.records, 0);
    }

    #[test]
    fn fields_the_hash_does_not_cover_are_refused() {
        let key = SigningKey::generate().unwrap();
        let text = export(&chain(5), &key, &[]);
        let extra = text.replacen(
            "\"id\":\"d2\"",
            "\"id\":\"d2\",\"note\":\"approved by CFO\"",
            1,
        );
        assert!(matches!(
            verify_export(extra.as_bytes(), None),
            Err(ExportError::Format { line: 5, .. })
        ));
        let old = text.replacen(FORMAT, "warden-audit-export/1", 1);
        assert!(matches!(
            verify_export(old.as_bytes(), None),
            Err(ExportError::Format { line: 1, .. })
        ));
    }
}
