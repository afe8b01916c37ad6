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
    let model = tmp("t.fga", MODEL);
    let pass = tmp(
        "pass.fga.yaml",
        "model_file: ./t.fga\ntuples:\n  - {user: user:anne, relation: owner, object: doc:1}\ntests:\n  - name: owners view\n    check:\n      - user: user:anne\n        object: doc:1\n        assertions: {viewer: true, owner: true}\n    list_objects:\n      - user: user:anne\n        type: doc\n        assertions: {viewer: [doc:1]}\n    list_users:\n      - object: doc:1\n        user_filter: [{type: user}]\n        assertions: {viewer: {users: [user:anne]}}\n",
    );
    let _ = model;
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
