//! Property tests: the engine against a deliberately naive reference evaluator.
//!
//! Random models and tuple sets are generated from a seed. They are acyclic by
//! construction (usersets and parents always point at a "lower" type, computed
//! relations at an earlier relation of the same type), so the reference can be a plain
//! recursive definition of membership over the list of tuples, with no indexes, no
//! cycle handling and no depth limit. The engine must agree with it on Check,
//! ListObjects and ListUsers.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

use proptest::prelude::*;
use serde_json::{Value, json};
use warden_engine::{
    CheckRequest, Engine, ListObjectsRequest, ListUsersRequest, Model, TupleKey, TupleStore,
    UserFilter,
};

/// A tiny deterministic generator (xorshift), so one u64 seed describes a whole case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Clone)]
enum Rw {
    This(Vec<Restriction>),
    Computed(String),
    Ttu(String),
    Union(Vec<Rw>),
    Inter(Vec<Rw>),
    Diff(Box<Rw>, Box<Rw>),
}

#[derive(Debug, Clone, PartialEq)]
enum Restriction {
    User,
    UserWildcard,
    Userset(String, String),
}

struct TypeSpec {
    name: String,
    /// (relation name, rewrite), in definition order.
    relations: Vec<(String, Rw)>,
    parent: Option<String>,
}

struct Case {
    types: Vec<TypeSpec>,
    tuples: Vec<TupleKey>,
}

const USERS: [&str; 4] = ["user:u0", "user:u1", "user:u2", "user:u3"];
const OBJECTS: usize = 3;

fn gen_case(seed: u64) -> Case {
    let mut rng = Rng(seed | 1);
    let ntypes = 1 + rng.below(3);
    let mut types: Vec<TypeSpec> = Vec::new();
    for t in 0..ntypes {
        let name = format!("t{t}");
        let parent = (t > 0).then(|| format!("t{}", t - 1));
        let nrel = 1 + rng.below(3);
        let mut relations = Vec::new();
        for r in 0..nrel {
            let rw = gen_rw(&mut rng, &types, parent.is_some(), r, 2);
            relations.push((format!("r{r}"), rw));
        }
        types.push(TypeSpec {
            name,
            relations,
            parent,
        });
    }
    // Tuples: for each object and each directly assignable relation, a random subset
    // of what its restrictions admit.
    let mut tuples = Vec::new();
    for (ti, ty) in types.iter().enumerate() {
        for o in 0..OBJECTS {
            let object = format!("{}:o{o}", ty.name);
            if ty.parent.is_some() && rng.chance(70) {
                let p = format!("t{}:o{}", ti - 1, rng.below(OBJECTS));
                tuples.push(TupleKey::new(p, "parent", object.clone()));
            }
            for (rel, rw) in &ty.relations {
                let mut restrictions = Vec::new();
                collect_restrictions(rw, &mut restrictions);
                for res in restrictions {
                    let candidates: Vec<String> = match &res {
                        Restriction::User => USERS.iter().map(|u| u.to_string()).collect(),
                        Restriction::UserWildcard => vec!["user:*".into()],
                        Restriction::Userset(t, r) => {
                            (0..OBJECTS).map(|i| format!("{t}:o{i}#{r}")).collect()
                        }
                    };
                    for c in candidates {
                        let t = TupleKey::new(c, rel.clone(), object.clone());
                        if rng.chance(30) && !tuples.contains(&t) {
                            tuples.push(t);
                        }
                    }
                }
            }
        }
    }
    Case { types, tuples }
}

fn gen_rw(rng: &mut Rng, lower: &[TypeSpec], has_parent: bool, index: usize, depth: u32) -> Rw {
    let pick = rng.below(if depth == 0 { 3 } else { 6 });
    match pick {
        0 => {
            let mut rs = vec![Restriction::User];
            if rng.chance(40) {
                rs.push(Restriction::UserWildcard);
            }
            if !lower.is_empty() && rng.chance(50) {
                let t = &lower[rng.below(lower.len())];
                let (r, _) = &t.relations[rng.below(t.relations.len())];
                rs.push(Restriction::Userset(t.name.clone(), r.clone()));
            }
            Rw::This(rs)
        }
        1 if index > 0 => Rw::Computed(format!("r{}", rng.below(index))),
        2 if has_parent => {
            let parent = &lower[lower.len() - 1];
            let (r, _) = &parent.relations[rng.below(parent.relations.len())];
            Rw::Ttu(r.clone())
        }
        3 => Rw::Union(vec![
            gen_rw(rng, lower, has_parent, index, depth - 1),
            gen_rw(rng, lower, has_parent, index, depth - 1),
        ]),
        4 => Rw::Inter(vec![
            gen_rw(rng, lower, has_parent, index, depth - 1),
            gen_rw(rng, lower, has_parent, index, depth - 1),
        ]),
        5 => Rw::Diff(
            Box::new(gen_rw(rng, lower, has_parent, index, depth - 1)),
            Box::new(gen_rw(rng, lower, has_parent, index, depth - 1)),
        ),
        _ => Rw::This(vec![Restriction::User]),
    }
}

fn collect_restrictions(rw: &Rw, out: &mut Vec<Restriction>) {
    match rw {
        Rw::This(rs) => {
            for r in rs {
                if !out.contains(r) {
                    out.push(r.clone());
                }
            }
        }
        Rw::Union(c) | Rw::Inter(c) => c.iter().for_each(|c| collect_restrictions(c, out)),
        Rw::Diff(a, b) => {
            collect_restrictions(a, out);
            collect_restrictions(b, out);
        }
        _ => {}
    }
}

fn rw_json(rw: &Rw) -> Value {
    match rw {
        Rw::This(_) => json!({"this": {}}),
        Rw::Computed(r) => json!({"computedUserset": {"relation": r}}),
        Rw::Ttu(r) => {
            json!({"tupleToUserset": {"tupleset": {"relation": "parent"}, "computedUserset": {"relation": r}}})
        }
        Rw::Union(c) => json!({"union": {"child": c.iter().map(rw_json).collect::<Vec<_>>()}}),
        Rw::Inter(c) => {
            json!({"intersection": {"child": c.iter().map(rw_json).collect::<Vec<_>>()}})
        }
        Rw::Diff(a, b) => json!({"difference": {"base": rw_json(a), "subtract": rw_json(b)}}),
    }
}

fn model_json(case: &Case) -> Value {
    let mut defs = vec![json!({"type": "user", "relations": {}})];
    for t in &case.types {
        let mut relations = serde_json::Map::new();
        let mut meta = serde_json::Map::new();
        if let Some(p) = &t.parent {
            relations.insert("parent".into(), json!({"this": {}}));
            meta.insert(
                "parent".into(),
                json!({"directly_related_user_types": [{"type": p}]}),
            );
        }
        for (name, rw) in &t.relations {
            relations.insert(name.clone(), rw_json(rw));
            let mut rs = Vec::new();
            collect_restrictions(rw, &mut rs);
            let refs: Vec<Value> = rs
                .iter()
                .map(|r| match r {
                    Restriction::User => json!({"type": "user"}),
                    Restriction::UserWildcard => json!({"type": "user", "wildcard": {}}),
                    Restriction::Userset(t, r) => json!({"type": t, "relation": r}),
                })
                .collect();
            meta.insert(name.clone(), json!({"directly_related_user_types": refs}));
        }
        defs.push(json!({"type": t.name, "relations": relations, "metadata": {"relations": meta}}));
    }
    json!({"schema_version": "1.1", "type_definitions": defs})
}

/// The reference: does `user` (a plain `user:x`) have `rel` on `object`? Straight from
/// the definitions, scanning every tuple each time.
fn member(case: &Case, object: &str, rel: &str, user: &str) -> bool {
    let ty_name = object.split(':').next().unwrap_or("");
    let Some(ty) = case.types.iter().find(|t| t.name == ty_name) else {
        return false;
    };
    if rel == "parent" {
        return false;
    }
    let Some((_, rw)) = ty.relations.iter().find(|(r, _)| r == rel) else {
        return false;
    };
    eval(case, object, rel, rw, user)
}

fn eval(case: &Case, object: &str, rel: &str, rw: &Rw, user: &str) -> bool {
    match rw {
        Rw::This(_) => case.tuples.iter().any(|t| {
            t.object == object
                && t.relation == rel
                && (t.user == user
                    || t.user == "user:*"
                    || t.user
                        .split_once('#')
                        .is_some_and(|(o, r)| member(case, o, r, user)))
        }),
        Rw::Computed(r) => member(case, object, r, user),
        Rw::Ttu(r) => case.tuples.iter().any(|t| {
            t.object == object && t.relation == "parent" && member(case, &t.user, r, user)
        }),
        Rw::Union(c) => c.iter().any(|c| eval(case, object, rel, c, user)),
        Rw::Inter(c) => c.iter().all(|c| eval(case, object, rel, c, user)),
        Rw::Diff(a, b) => eval(case, object, rel, a, user) && !eval(case, object, rel, b, user),
    }
}

fn run_case(seed: u64) -> Result<(), TestCaseError> {
    let case = gen_case(seed);
    let schema = serde_json::from_value(model_json(&case))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let model = Model::new(schema).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let mut store = TupleStore::new();
    store
        .write(&model, &case.tuples, &[])
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let engine = Engine::new(&model, &store);
    let fresh = "user:fresh";
    for t in &case.types {
        for (rel, _) in &t.relations {
            for o in 0..OBJECTS {
                let object = format!("{}:o{o}", t.name);
                let mut listed_expected = Vec::new();
                for user in USERS.iter().chain([&fresh]) {
                    let expected = member(&case, &object, rel, user);
                    let got = engine
                        .check(&CheckRequest::new(*user, rel.clone(), object.clone()))
                        .map_err(|e| TestCaseError::fail(e.to_string()))?
                        .allowed;
                    prop_assert_eq!(
                        got,
                        expected,
                        "check {}#{}@{} (seed {})",
                        object,
                        rel,
                        user,
                        seed
                    );
                    if expected {
                        listed_expected.push(user.to_string());
                    }
                }
                // ListUsers: everything listed is a member; every member is listed or
                // covered by a listed `user:*`.
                let listed = engine
                    .list_users(&ListUsersRequest {
                        object: object.clone(),
                        relation: rel.clone(),
                        user_filters: vec![UserFilter::parse("user")],
                        ..Default::default()
                    })
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                let wildcard = listed.iter().any(|u| u == "user:*");
                if wildcard {
                    prop_assert!(
                        member(&case, &object, rel, fresh),
                        "user:* listed for {}#{} (seed {})",
                        object,
                        rel,
                        seed
                    );
                }
                for u in &listed {
                    if u != "user:*" {
                        prop_assert!(
                            member(&case, &object, rel, u),
                            "listed {} on {}#{} (seed {})",
                            u,
                            object,
                            rel,
                            seed
                        );
                    }
                }
                for u in &listed_expected {
                    prop_assert!(
                        wildcard || listed.contains(u),
                        "{} missing from ListUsers {}#{} (seed {})",
                        u,
                        object,
                        rel,
                        seed
                    );
                }
            }
            // ListObjects equals the reference exactly.
            for user in USERS {
                let mut expected: Vec<String> = (0..OBJECTS)
                    .map(|o| format!("{}:o{o}", t.name))
                    .filter(|obj| member(&case, obj, rel, user))
                    .collect();
                expected.sort();
                let got = engine
                    .list_objects(&ListObjectsRequest {
                        user: user.to_string(),
                        relation: rel.clone(),
                        object_type: t.name.clone(),
                        ..Default::default()
                    })
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(
                    got,
                    expected,
                    "list_objects {} {}#{} (seed {})",
                    user,
                    t.name,
                    rel,
                    seed
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        // WARDEN_PROPTEST_CASES=20000 for a longer hunt; CI runs the default.
        cases: std::env::var("WARDEN_PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(400),
        ..ProptestConfig::default()
    })]
    #[test]
    fn engine_agrees_with_reference(seed in any::<u64>()) {
        run_case(seed)?;
    }
}
