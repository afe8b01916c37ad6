//! The real `warden` binary on real files: exit codes and output of `warden model ...`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test fixtures fail loudly"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn warden(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn tmp(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warden-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, contents).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

const MODEL: &str = "model\n  schema 1.1\n\ntype user\n\ntype doc\n  relations\n    define owner: [user]\n    define viewer: [user] or owner\n";

#[test]
fn validate_reports_position_and_exit_code() {
    let good = tmp("good.fga", MODEL);
    assert_eq!(warden(&["model", "validate", s(&good)]).0, 0);
    let bad = tmp("bad.fga", &MODEL.replace("or owner", "or editor"));
    let (code, _, err) = warden(&["model", "validate", s(&bad)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("bad.fga:9:30: error[missing-definition]"),
        "{err}"
    );
    assert_eq!(warden(&["model", "validate", "/nonexistent.fga"]).0, 2);
}

#[test]
fn transform_round_trips() {
    let dsl = tmp("m.fga", MODEL);
    let (code, json, _) = warden(&["model", "transform", s(&dsl)]);
    assert_eq!(code, 0);
    assert!(json.contains("\"schema_version\": \"1.1\""));
    let json_file = tmp("m.json", &json);
    let (code, back, _) = warden(&["model", "transform", s(&json_file)]);
    assert_eq!(code, 0);
    assert_eq!(back, MODEL);
}

#[test]
fn test_command_counts_and_exit_codes() {
    tmp("t.fga", MODEL);
    let pass = tmp(
        "pass.fga.yaml",
        "model_file: ./t.fga\ntuples:\n  - {user: user:anne, relation: owner, object: doc:1}\ntests:\n  - name: owners view\n    check:\n      - user: user:anne\n        object: doc:1\n        assertions: {viewer: true, owner: true}\n    list_objects:\n      - user: user:anne\n        type: doc\n        assertions: {viewer: [doc:1]}\n    list_users:\n      - object: doc:1\n        user_filter: [{type: user}]\n        assertions: {viewer: {users: [user:anne]}}\n",
    );
    let (code, out, _) = warden(&["model", "test", s(&pass)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("Checks 2/2 passing"));
    assert!(out.contains("ListObjects 1/1 passing"));
    assert!(out.contains("ListUsers 1/1 passing"));

    let fail = tmp(
        "fail.fga.yaml",
        &std::fs::read_to_string(&pass)
            .unwrap()
            .replace("owner: true", "owner: false"),
    );
    let (code, out, _) = warden(&["model", "test", s(&fail)]);
    assert_eq!(code, 1);
    assert!(
        out.contains("FAIL") && out.contains("doc:1#owner@user:anne: expected false, got true"),
        "{out}"
    );
    assert!(out.contains("Checks 1/2 passing"));

    let invalid = tmp("invalid.fga.yaml", "tuples: []\ntests: []\n");
    let (code, _, err) = warden(&["model", "test", s(&invalid)]);
    assert_eq!(code, 2);
    assert!(
        err.contains("`model` or `model_file` must be present"),
        "{err}"
    );
}

#[test]
fn the_shipped_example_passes() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/docs.fga.yaml");
    let (code, out, err) = warden(&["model", "test", s(&example)]);
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn validate_prints_every_error_not_just_the_first() {
    let bad = tmp(
        "two.fga",
        "model\n  schema 1.1\n\ntype user\n\ntype doc\n  relations\n    define a: [nosuch]\n    define b: missing\n",
    );
    let (code, _, err) = warden(&["model", "validate", s(&bad)]);
    assert_eq!(code, 1);
    assert!(err.contains("two.fga:8:16: error[invalid-type]"), "{err}");
    assert!(
        err.contains("two.fga:9:15: error[missing-definition]"),
        "{err}"
    );
}

#[test]
fn malformed_and_hostile_input_is_an_error_not_a_crash() {
    for (name, text) in [
        ("empty.fga", ""),
        ("binary.fga", "\u{0}\u{1}\u{fffd}garbage"),
        (
            "unclosed.fga",
            "model\n  schema 1.1\ntype doc\n  relations\n    define v: ([doc\n",
        ),
        (
            "deep.fga",
            &format!(
                "model\n  schema 1.1\ntype doc\n  relations\n    define v: [doc] or {}a{}\n    define a: [doc]\n",
                "(".repeat(5000),
                ")".repeat(5000)
            ),
        ),
        (
            "cond.fga",
            "model\n  schema 1.1\ntype doc\n  relations\n    define v: [doc with c]\ncondition c(x: list<) {\n  x\n}\n",
        ),
        (
            "bad.json",
            "{\"schema_version\": 1.1, \"type_definitions\": 7}",
        ),
    ] {
        let f = tmp(name, text);
        let (code, _, err) = warden(&["model", "validate", s(&f)]);
        assert_eq!(code, 1, "{name}: {err}");
        assert!(err.contains(name), "{name}: error names the file: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
}

#[test]
fn modular_models_combine_and_place_errors_in_their_files() {
    let dir = std::env::temp_dir().join(format!("warden-cli-mod-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("team")).unwrap();
    std::fs::write(
        dir.join("fga.mod"),
        "schema: '1.2'\ncontents:\n  - core.fga\n  - team/docs.fga\n",
    )
    .unwrap();
    std::fs::write(dir.join("core.fga"), "module core\n\ntype user\n").unwrap();
    std::fs::write(
        dir.join("team/docs.fga"),
        "module docs\n\nextend type user\n  relations\n    define manager: [user]\n\ntype doc\n  relations\n    define viewer: [user] or manager\n",
    )
    .unwrap();
    let m = dir.join("fga.mod");
    let (code, json, err) = warden(&["model", "transform", s(&m)]);
    assert_eq!(code, 1, "`manager` is not a relation of doc: {json}");
    assert!(
        err.contains("docs.fga:9:30: error[missing-definition]"),
        "{err}"
    );

    std::fs::write(
        dir.join("team/docs.fga"),
        "module docs\n\nextend type user\n  relations\n    define manager: [user]\n\ntype doc\n  relations\n    define viewer: [user]\n",
    )
    .unwrap();
    let (code, json, err) = warden(&["model", "transform", s(&m)]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["schema_version"], "1.2");
    assert_eq!(
        v["type_definitions"][0]["metadata"]["relations"]["manager"]["module"],
        "docs"
    );

    // A manifest may not reach outside its folder.
    std::fs::write(&m, "schema: '1.2'\ncontents:\n  - ../outside.fga\n").unwrap();
    let (code, _, err) = warden(&["model", "validate", s(&m)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("invalid contents item ../outside.fga"),
        "{err}"
    );
}
