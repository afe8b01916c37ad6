//! Engine behaviour on small hand-written models: bad input, tuple validation, atomic
//! writes, Expand, explanations, contextual tuples and the depth limit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

use serde_json::json;
use warden_engine::{
    CheckRequest, Engine, ErrorCode, ExpandRequest, ListObjectsRequest, Model, TupleKey,
    TupleStore, UsersetTree,
};

/// user; group(member: [user, group#member]); folder(viewer: [user]);
/// doc(parent: [folder], owner: [user], viewer: [user, user:*, group#member] or owner or viewer from parent)
fn model() -> Model {
    let schema = serde_json::from_value(json!({
        "schema_version": "1.1",
        "type_definitions": [
            {"type": "user"},
            {"type": "group", "relations": {"member": {"this": {}}},
             "metadata": {"relations": {"member": {"directly_related_user_types": [{"type": "user"}, {"type": "group", "relation": "member"}]}}}},
            {"type": "folder", "relations": {"viewer": {"this": {}}},
             "metadata": {"relations": {"viewer": {"directly_related_user_types": [{"type": "user"}]}}}},
            {"type": "doc", "relations": {
                "parent": {"this": {}},
                "owner": {"this": {}},
                "viewer": {"union": {"child": [{"this": {}}, {"computedUserset": {"relation": "owner"}},
                    {"tupleToUserset": {"tupleset": {"relation": "parent"}, "computedUserset": {"relation": "viewer"}}}]}}},
             "metadata": {"relations": {
                "parent": {"directly_related_user_types": [{"type": "folder"}]},
                "owner": {"directly_related_user_types": [{"type": "user"}]},
                "viewer": {"directly_related_user_types": [{"type": "user"}, {"type": "user", "wildcard": {}}, {"type": "group", "relation": "member"}]}}}}
        ]
    }))
    .unwrap();
    Model::new(schema).unwrap()
}

fn t(user: &str, relation: &str, object: &str) -> TupleKey {
    TupleKey::new(user, relation, object)
}

fn check(engine: &Engine<'_>, user: &str, relation: &str, object: &str) -> Result<bool, ErrorCode> {
    engine
        .check(&CheckRequest::new(user, relation, object))
        .map(|r| r.allowed)
        .map_err(|e| e.code())
}

#[test]
fn refuses_tuples_the_model_does_not_allow_with_a_reason() {
    let m = model();
    let mut s = TupleStore::new();
    let cases = [
        (t("user:anne", "viewer", "nosuch:1"), "not defined"),
        (t("user:anne", "editor", "doc:1"), "editor"),
        (t("folder:x", "viewer", "doc:1"), "does not allow `folder`"),
        (t("user:*", "owner", "doc:1"), "does not allow `user:*`"),
        (t("group:eng#owner", "viewer", "doc:1"), "group#owner"),
        (t("user:anne", "viewer", "doc"), "type:id"),
        (t("user anne", "viewer", "doc:1"), "whitespace"),
        (t("user:anne", "viewer", "doc:*"), "`*`"),
        (t("", "viewer", "doc:1"), "type:id"),
    ];
    for (tuple, why) in cases {
        let err = s.write(&m, std::slice::from_ref(&tuple), &[]).unwrap_err();
        assert_eq!(err.code(), ErrorCode::InvalidTuple, "{tuple}");
        assert!(
            err.to_string().contains(why),
            "{tuple}: {err} should mention {why}"
        );
    }
    assert!(s.is_empty());
}

#[test]
fn a_batch_with_one_bad_tuple_writes_nothing() {
    let m = model();
    let mut s = TupleStore::new();
    let batch = [
        t("user:anne", "viewer", "doc:1"),
        t("user:bob", "nope", "doc:1"),
    ];
    assert!(s.write(&m, &batch, &[]).is_err());
    assert_eq!(s.len(), 0);
    // Duplicates, and deleting what is absent, are refused too (and change nothing).
    s.write(&m, &[t("user:anne", "viewer", "doc:1")], &[])
        .unwrap();
    assert!(
        s.write(&m, &[t("user:anne", "viewer", "doc:1")], &[])
            .is_err()
    );
    assert!(
        s.write(
            &m,
            &[t("user:bob", "viewer", "doc:1")],
            &[t("user:carl", "viewer", "doc:1")]
        )
        .is_err()
    );
    assert_eq!(s.len(), 1);
    // Write + delete in one batch is atomic.
    s.write(
        &m,
        &[t("user:bob", "viewer", "doc:1")],
        &[t("user:anne", "viewer", "doc:1")],
    )
    .unwrap();
    let e = Engine::new(&m, &s);
    assert_eq!(check(&e, "user:anne", "viewer", "doc:1"), Ok(false));
    assert_eq!(check(&e, "user:bob", "viewer", "doc:1"), Ok(true));
}

#[test]
fn bad_requests_are_validation_errors() {
    let m = model();
    let s = TupleStore::new();
    let e = Engine::new(&m, &s);
    for (user, rel, obj) in [
        ("user:anne", "viewer", "nosuch:1"),
        ("user:anne", "nosuch", "doc:1"),
        ("nosuch:anne", "viewer", "doc:1"),
        ("group:eng#nosuch", "viewer", "doc:1"),
        ("anne", "viewer", "doc:1"),
        ("user:anne", "viewer", "doc1"),
        ("user:anne#", "viewer", "doc:1"),
    ] {
        assert_eq!(
            check(&e, user, rel, obj),
            Err(ErrorCode::Validation),
            "{obj}#{rel}@{user}"
        );
    }
    let lo = |t: &str, r: &str| {
        e.list_objects(&ListObjectsRequest {
            user: "user:anne".into(),
            relation: r.into(),
            object_type: t.into(),
            ..Default::default()
        })
        .map_err(|e| e.code())
    };
    assert_eq!(lo("nosuch", "viewer"), Err(ErrorCode::TypeNotFound));
    assert_eq!(lo("doc", "nosuch"), Err(ErrorCode::RelationNotFound));
}

#[test]
fn resolves_through_groups_parents_and_wildcards_with_a_path() {
    let m = model();
    let mut s = TupleStore::new();
    s.write(
        &m,
        &[
            t("user:anne", "member", "group:a"),
            t("group:a#member", "member", "group:b"),
            t("group:b#member", "viewer", "doc:1"),
            t("folder:f", "parent", "doc:2"),
            t("user:carl", "viewer", "folder:f"),
            t("user:*", "viewer", "doc:3"),
        ],
        &[],
    )
    .unwrap();
    let e = Engine::new(&m, &s);
    assert_eq!(check(&e, "user:anne", "viewer", "doc:1"), Ok(true));
    assert_eq!(check(&e, "user:carl", "viewer", "doc:1"), Ok(false));
    assert_eq!(check(&e, "user:carl", "viewer", "doc:2"), Ok(true));
    assert_eq!(check(&e, "user:zed", "viewer", "doc:3"), Ok(true));
    assert_eq!(check(&e, "group:a#member", "viewer", "doc:1"), Ok(true));

    let mut req = CheckRequest::new("user:anne", "viewer", "doc:1");
    req.explain = true;
    let r = e.check(&req).unwrap();
    assert_eq!(
        r.path,
        vec![
            "doc:1#viewer <- group:b#member (userset)",
            "group:b#member <- group:a#member (userset)",
            "group:a#member <- user:anne (direct)",
        ]
    );
    let mut req = CheckRequest::new("user:carl", "viewer", "doc:2");
    req.explain = true;
    assert_eq!(
        e.check(&req).unwrap().path,
        vec![
            "doc:2#viewer <- folder:f#viewer (from parent)",
            "folder:f#viewer <- user:carl (direct)"
        ]
    );
}

#[test]
fn contextual_tuples_count_for_one_request_only() {
    let m = model();
    let s = TupleStore::new();
    let e = Engine::new(&m, &s);
    let mut req = CheckRequest::new("user:dan", "viewer", "doc:9");
    req.contextual_tuples = vec![
        t("user:dan", "member", "group:x"),
        t("group:x#member", "viewer", "doc:9"),
    ];
    assert!(e.check(&req).unwrap().allowed);
    assert_eq!(check(&e, "user:dan", "viewer", "doc:9"), Ok(false));
    // An invalid contextual tuple is refused as such.
    req.contextual_tuples = vec![t("user:dan", "nope", "doc:9")];
    assert_eq!(e.check(&req).unwrap_err().code(), ErrorCode::InvalidTuple);
}

#[test]
fn depth_limit_is_an_error_not_a_hang() {
    let m = model();
    let mut s = TupleStore::new();
    let mut tuples = vec![t("user:anne", "member", "group:g0")];
    for i in 0..40 {
        tuples.push(t(
            &format!("group:g{i}#member"),
            "member",
            &format!("group:g{}", i + 1),
        ));
    }
    s.write(&m, &tuples, &[]).unwrap();
    let e = Engine::new(&m, &s);
    assert_eq!(check(&e, "user:anne", "member", "group:g10"), Ok(true));
    assert_eq!(
        check(&e, "user:anne", "member", "group:g40"),
        Err(ErrorCode::ResolutionTooDeep)
    );
    assert_eq!(
        e.with_max_depth(50)
            .check(&CheckRequest::new("user:anne", "member", "group:g40"))
            .map(|r| r.allowed),
        Ok(true)
    );
    // A membership cycle terminates (false, not an error).
    let mut s2 = TupleStore::new();
    s2.write(
        &m,
        &[
            t("group:a#member", "member", "group:b"),
            t("group:b#member", "member", "group:a"),
        ],
        &[],
    )
    .unwrap();
    assert_eq!(
        check(&Engine::new(&m, &s2), "user:x", "member", "group:a"),
        Ok(false)
    );
}

#[test]
fn expand_shows_one_level_of_the_userset_tree() {
    let m = model();
    let mut s = TupleStore::new();
    s.write(
        &m,
        &[
            t("user:anne", "viewer", "doc:1"),
            t("group:g#member", "viewer", "doc:1"),
            t("folder:f", "parent", "doc:1"),
        ],
        &[],
    )
    .unwrap();
    let tree = Engine::new(&m, &s)
        .expand(&ExpandRequest {
            object: "doc:1".into(),
            relation: "viewer".into(),
            contextual_tuples: vec![],
        })
        .unwrap();
    assert_eq!(
        tree,
        UsersetTree::Union {
            name: "doc:1#viewer".into(),
            nodes: vec![
                UsersetTree::Leaf {
                    name: "doc:1#viewer".into(),
                    users: vec!["group:g#member".into(), "user:anne".into()]
                },
                UsersetTree::Computed {
                    name: "doc:1#viewer".into(),
                    userset: "doc:1#owner".into()
                },
                UsersetTree::TupleToUserset {
                    name: "doc:1#viewer".into(),
                    tupleset: "doc:1#parent".into(),
                    computed: vec!["folder:f#viewer".into()]
                },
            ]
        }
    );
}

#[test]
fn context_of_the_wrong_type_is_a_validation_error_not_a_false() {
    let schema = warden_model::parse_dsl(
        "model\n  schema 1.1\ntype user\ntype doc\n  relations\n    define viewer: [user with in_net]\ncondition in_net(ip: ipaddress, cidr: string, n: int) {\n  ip.in_cidr(cidr) && n < 3\n}\n",
    )
    .unwrap();
    let m = Model::new(schema).unwrap();
    let mut s = TupleStore::new();
    let mut tk = t("user:anne", "viewer", "doc:1");
    tk.condition = Some(warden_engine::tuple::TupleCondition {
        name: "in_net".into(),
        context: Some(json!({"cidr": "10.0.0.0/8"}).as_object().cloned().unwrap()),
    });
    s.write(&m, &[tk], &[]).unwrap();
    let e = Engine::new(&m, &s);
    let run = |ctx: serde_json::Value| {
        let mut req = CheckRequest::new("user:anne", "viewer", "doc:1");
        req.context = ctx.as_object().cloned().unwrap();
        e.check(&req).map(|r| r.allowed).map_err(|e| e.code())
    };
    assert_eq!(run(json!({"ip": "10.1.2.3", "n": 1})), Ok(true));
    assert_eq!(run(json!({"ip": "192.168.0.1", "n": 1})), Ok(false));
    for bad in [
        json!({"ip": "not-an-ip", "n": 1}),
        json!({"ip": 17, "n": 1}),
        json!({"ip": "10.1.2.3", "n": "one"}),
        json!({"ip": "10.1.2.3", "n": 1.5}),
        json!({"ip": "10.1.2.3"}),
    ] {
        assert_eq!(run(bad.clone()), Err(ErrorCode::Validation), "{bad}");
    }
}

#[test]
fn malformed_tuples_are_refused_and_never_stored() {
    let m = model();
    let mut s = TupleStore::new();
    for (user, rel, obj) in [
        ("user:anne", "viewer", "doc:a b"),
        ("user:anne", "viewer", "doc:a\u{0}b"),
        ("user:anne", "viewer", &format!("doc:{}", "x".repeat(300))),
        ("user:anne", "viewer", "doc:*"),
        ("user:anne", "viewer", "doc:"),
        ("user:", "viewer", "doc:1"),
        ("user:anne#", "viewer", "doc:1"),
        ("user:*#member", "viewer", "doc:1"),
        ("", "viewer", "doc:1"),
        ("user:anne", "", "doc:1"),
    ] {
        assert!(
            s.write(&m, &[t(user, rel, obj)], &[]).is_err(),
            "{obj}#{rel}@{user} accepted"
        );
    }
    assert_eq!(s.len(), 0);
}

#[test]
fn deletes_touch_only_the_named_tuple() {
    let m = model();
    let mut s = TupleStore::new();
    let all = [
        t("user:anne", "viewer", "doc:1"),
        t("user:anne", "owner", "doc:1"),
        t("user:bob", "viewer", "doc:1"),
        t("folder:f", "parent", "doc:1"),
        t("user:anne", "viewer", "doc:2"),
    ];
    s.write(&m, &all, &[]).unwrap();
    assert_eq!(s.len(), 5);
    s.write(&m, &[], &[t("user:anne", "viewer", "doc:1")])
        .unwrap();
    let mut left: Vec<String> = s
        .tuples()
        .iter()
        .map(|k| format!("{}#{}@{}", k.object, k.relation, k.user))
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "doc:1#owner@user:anne",
            "doc:1#parent@folder:f",
            "doc:1#viewer@user:bob",
            "doc:2#viewer@user:anne"
        ]
    );
    // Deleting the last tuples of an object removes it entirely; writing again works.
    s.write(
        &m,
        &[],
        &[
            t("user:anne", "owner", "doc:1"),
            t("folder:f", "parent", "doc:1"),
            t("user:bob", "viewer", "doc:1"),
        ],
    )
    .unwrap();
    let e = Engine::new(&m, &s);
    assert_eq!(check(&e, "user:anne", "viewer", "doc:1"), Ok(false));
    assert_eq!(check(&e, "user:anne", "viewer", "doc:2"), Ok(true));
    s.write(&m, &[t("user:bob", "owner", "doc:1")], &[])
        .unwrap();
    let e = Engine::new(&m, &s);
    assert_eq!(check(&e, "user:bob", "viewer", "doc:1"), Ok(true));
    assert_eq!(s.len(), 2);
}
