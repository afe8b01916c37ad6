//! Benchmark support: a generator for a realistic multi-tenant authorization dataset.
//!
//! Each organization has users, nested teams (groups inside groups), a folder tree
//! several levels deep, documents in the leaf folders, and grants of every kind the
//! engine handles: direct, through groups, inherited through folders, public
//! (`user:*`), and conditional (time-limited). About 1,000 tuples per organization.

use warden_engine::{TupleKey, TupleStore};

/// The benchmark model, as JSON (OpenFGA schema 1.1).
pub const MODEL_JSON: &str = r#"{
  "schema_version": "1.1",
  "type_definitions": [
    {"type": "user", "relations": {}},
    {"type": "group", "relations": {"member": {"this": {}}},
     "metadata": {"relations": {"member": {"directly_related_user_types": [{"type": "user"}, {"type": "group", "relation": "member"}]}}}},
    {"type": "org", "relations": {"admin": {"this": {}}, "member": {"union": {"child": [{"this": {}}, {"computedUserset": {"relation": "admin"}}]}}},
     "metadata": {"relations": {"admin": {"directly_related_user_types": [{"type": "user"}]},
                                 "member": {"directly_related_user_types": [{"type": "user"}, {"type": "group", "relation": "member"}]}}}},
    {"type": "folder",
     "relations": {
       "org": {"this": {}},
       "parent": {"this": {}},
       "owner": {"union": {"child": [{"this": {}}, {"tupleToUserset": {"tupleset": {"relation": "org"}, "computedUserset": {"relation": "admin"}}}]}},
       "editor": {"union": {"child": [{"this": {}}, {"computedUserset": {"relation": "owner"}}, {"tupleToUserset": {"tupleset": {"relation": "parent"}, "computedUserset": {"relation": "editor"}}}]}},
       "viewer": {"union": {"child": [{"this": {}}, {"computedUserset": {"relation": "editor"}}, {"tupleToUserset": {"tupleset": {"relation": "parent"}, "computedUserset": {"relation": "viewer"}}}]}}
     },
     "metadata": {"relations": {
       "org": {"directly_related_user_types": [{"type": "org"}]},
       "parent": {"directly_related_user_types": [{"type": "folder"}]},
       "owner": {"directly_related_user_types": [{"type": "user"}, {"type": "group", "relation": "member"}]},
       "editor": {"directly_related_user_types": [{"type": "user"}, {"type": "group", "relation": "member"}]},
       "viewer": {"directly_related_user_types": [{"type": "user"}, {"type": "user", "wildcard": {}}, {"type": "group", "relation": "member"}, {"type": "user", "condition": "not_expired"}]}
     }}},
    {"type": "document",
     "relations": {
       "parent": {"this": {}},
       "owner": {"this": {}},
       "blocked": {"this": {}},
       "editor": {"union": {"child": [{"this": {}}, {"computedUserset": {"relation": "owner"}}, {"tupleToUserset": {"tupleset": {"relation": "parent"}, "computedUserset": {"relation": "editor"}}}]}},
       "viewer": {"union": {"child": [{"this": {}}, {"computedUserset": {"relation": "editor"}}, {"tupleToUserset": {"tupleset": {"relation": "parent"}, "computedUserset": {"relation": "viewer"}}}]}},
       "can_view": {"difference": {"base": {"computedUserset": {"relation": "viewer"}}, "subtract": {"computedUserset": {"relation": "blocked"}}}}
     },
     "metadata": {"relations": {
       "parent": {"directly_related_user_types": [{"type": "folder"}]},
       "owner": {"directly_related_user_types": [{"type": "user"}]},
       "blocked": {"directly_related_user_types": [{"type": "user"}]},
       "editor": {"directly_related_user_types": [{"type": "user"}, {"type": "group", "relation": "member"}]},
       "viewer": {"directly_related_user_types": [{"type": "user"}, {"type": "user", "wildcard": {}}, {"type": "group", "relation": "member"}, {"type": "user", "condition": "not_expired"}]},
       "can_view": {"directly_related_user_types": []}
     }}}
  ],
  "conditions": {
    "not_expired": {"name": "not_expired", "expression": "current_time < expires",
      "parameters": {"current_time": {"type_name": "TYPE_NAME_TIMESTAMP"}, "expires": {"type_name": "TYPE_NAME_TIMESTAMP"}}}
  }
}"#;

pub const USERS_PER_ORG: usize = 50;
pub const GROUPS_PER_ORG: usize = 10;
/// Folder tree: depth 4, fan-out 3 (40 folders), 10 documents per leaf folder.
pub const FOLDER_DEPTH: usize = 4;
pub const FOLDER_FANOUT: usize = 3;
pub const DOCS_PER_LEAF: usize = 10;

/// Small deterministic generator (xorshift) so datasets are reproducible.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// A generated dataset: its tuples, and sample queries known to be allowed or denied.
pub struct Dataset {
    pub tuples: Vec<TupleKey>,
    pub orgs: usize,
}

/// Generates about `target` tuples (whole organizations of ~1,000 tuples each).
pub fn generate(target: usize) -> Dataset {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let per_org = 1_000;
    let orgs = (target / per_org).max(1);
    let mut tuples = Vec::with_capacity(target + target / 10);
    for o in 0..orgs {
        org_tuples(&mut rng, o, &mut tuples);
    }
    Dataset { tuples, orgs }
}

fn user(o: usize, u: usize) -> String {
    format!("user:o{o}u{u}")
}

fn org_tuples(rng: &mut Rng, o: usize, out: &mut Vec<TupleKey>) {
    let org = format!("org:o{o}");
    out.push(TupleKey::new(user(o, 0), "admin", org.clone()));
    // Teams: group g contains 5 users and (except the last) group g+1: nested teams.
    for g in 0..GROUPS_PER_ORG {
        let group = format!("group:o{o}g{g}");
        for _ in 0..5 {
            let u = rng.below(USERS_PER_ORG);
            let t = TupleKey::new(user(o, u), "member", group.clone());
            if !out.iter().rev().take(8).any(|x| x == &t) {
                out.push(t);
            }
        }
        if g + 1 < GROUPS_PER_ORG {
            out.push(TupleKey::new(
                format!("group:o{o}g{}#member", g + 1),
                "member",
                group,
            ));
        }
    }
    out.push(TupleKey::new(
        format!("group:o{o}g0#member"),
        "member",
        org.clone(),
    ));
    // Folder tree.
    let mut level = vec![format!("folder:o{o}f0")];
    out.push(TupleKey::new(org.clone(), "org", level[0].clone()));
    let mut next_id = 1;
    let mut leaves = Vec::new();
    for depth in 1..FOLDER_DEPTH {
        let mut next = Vec::new();
        for parent in &level {
            for _ in 0..FOLDER_FANOUT {
                let f = format!("folder:o{o}f{next_id}");
                next_id += 1;
                out.push(TupleKey::new(parent.clone(), "parent", f.clone()));
                // Grants on folders: a team edits, a user views.
                let g = rng.below(GROUPS_PER_ORG);
                out.push(TupleKey::new(
                    format!("group:o{o}g{g}#member"),
                    "editor",
                    f.clone(),
                ));
                out.push(TupleKey::new(
                    user(o, rng.below(USERS_PER_ORG)),
                    "viewer",
                    f.clone(),
                ));
                next.push(f);
            }
        }
        if depth == FOLDER_DEPTH - 1 {
            leaves.clone_from(&next);
        }
        level = next;
    }
    // Documents in leaf folders.
    let mut d = 0;
    for leaf in &leaves {
        for _ in 0..DOCS_PER_LEAF {
            let doc = format!("document:o{o}d{d}");
            d += 1;
            out.push(TupleKey::new(leaf.clone(), "parent", doc.clone()));
            out.push(TupleKey::new(
                user(o, rng.below(USERS_PER_ORG)),
                "owner",
                doc.clone(),
            ));
            match rng.below(20) {
                0 => out.push(TupleKey::new("user:*", "viewer", doc.clone())),
                1 => {
                    let mut ctx = serde_json::Map::new();
                    ctx.insert("expires".into(), "2030-01-01T00:00:00Z".into());
                    out.push(
                        TupleKey::new(user(o, rng.below(USERS_PER_ORG)), "viewer", doc.clone())
                            .with_condition("not_expired", ctx),
                    );
                }
                2 => out.push(TupleKey::new(
                    user(o, rng.below(USERS_PER_ORG)),
                    "blocked",
                    doc.clone(),
                )),
                _ => out.push(TupleKey::new(
                    user(o, rng.below(USERS_PER_ORG)),
                    "viewer",
                    doc.clone(),
                )),
            }
        }
    }
}

/// Loads a dataset into a fresh store without per-tuple model validation (as the
/// server does when it loads tuples that were validated when written).
pub fn load(ds: &Dataset) -> TupleStore {
    let mut store = TupleStore::new();
    for t in &ds.tuples {
        let _ = store.insert(t);
    }
    store
}

/// Resident set size of this process in bytes (Linux), for memory-per-tuple figures.
pub fn rss_bytes() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: usize = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// The request context the benchmark model's conditions need.
pub fn context() -> warden_engine::Context {
    let mut c = warden_engine::Context::new();
    c.insert("current_time".into(), "2026-11-24T00:00:00Z".into());
    c
}

/// `n` random checks of `document#can_view` within one organization each.
pub fn sample_checks(ds: &Dataset, n: usize, seed: u64) -> Vec<warden_engine::CheckRequest> {
    let mut rng = Rng(seed);
    let docs_per_org = 27 * DOCS_PER_LEAF;
    (0..n)
        .map(|_| {
            let o = rng.below(ds.orgs);
            let mut req = warden_engine::CheckRequest::new(
                format!("user:o{o}u{}", rng.below(USERS_PER_ORG)),
                "can_view",
                format!("document:o{o}d{}", rng.below(docs_per_org)),
            );
            req.context = context();
            req
        })
        .collect()
}
