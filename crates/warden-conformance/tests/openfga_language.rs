//! Runs OpenFGA's language test data (`language/transformer/*`): DSL -> JSON must give
//! the expected JSON, JSON -> DSL the expected DSL.

use warden_conformance::{FileReport, KnownDifferences, openfga_root};

#[test]
fn openfga_transformer_conformance() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let known = KnownDifferences::load()?;
    let mut report = FileReport::new("language/transformer");
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("language/transformer"))?
        .filter_map(|e| e.ok())
        .collect();
    dirs.sort_by_key(|e| e.file_name());
    for dir in dirs {
        let name = dir.file_name().to_string_lossy().to_string();
        let dsl = std::fs::read_to_string(dir.path().join("authorization-model.fga"))?;
        let json = std::fs::read_to_string(dir.path().join("authorization-model.json"))?;
        let expected: serde_json::Value = serde_json::from_str(&json)?;
        let to_json = warden_model::parse_dsl(&dsl)
            .map_err(|e| format!("parse: {e}"))
            .and_then(|m| serde_json::to_value(&m).map_err(|e| e.to_string()))
            .and_then(|got| {
                if got == expected {
                    Ok(())
                } else {
                    Err(format!(
                        "DSL -> JSON differs:\n got {got}\n want {expected}"
                    ))
                }
            });
        report.record(&known, &format!("{name} dsl->json"), to_json);
        let to_dsl = warden_model::parse_json(&json)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                let got = warden_model::to_dsl(&m);
                if got.trim_end() == dsl.trim_end() {
                    Ok(())
                } else {
                    Err(format!("JSON -> DSL differs:\n got\n{got}\n want\n{dsl}"))
                }
            });
        report.record(&known, &format!("{name} json->dsl"), to_dsl);
    }
    let failures = report.finish();
    assert!(
        failures.is_empty(),
        "{} unexpected failures",
        failures.len()
    );
    Ok(())
}

#[derive(serde::Deserialize)]
struct ValidationCase {
    name: String,
    dsl: String,
    #[serde(default)]
    expected_errors: Vec<ExpectedError>,
}

#[derive(serde::Deserialize)]
struct ExpectedError {
    line: Span,
    column: Span,
    #[serde(default)]
    metadata: Option<ErrorMeta>,
}

#[derive(serde::Deserialize)]
struct Span {
    start: usize,
}

#[derive(serde::Deserialize)]
struct ErrorMeta {
    #[serde(rename = "errorType")]
    error_type: Option<String>,
}

/// Parses and validates; all errors found.
fn dsl_errors(dsl: &str) -> Vec<warden_model::ModelError> {
    warden_model::validate_dsl(dsl)
}

fn run_validation_file(rel: &str, semantic: bool) -> anyhow::Result<Vec<String>> {
    let Some(root) = openfga_root()? else {
        return Ok(Vec::new());
    };
    let known = KnownDifferences::load()?;
    let cases: Vec<ValidationCase> =
        serde_yaml::from_str(&std::fs::read_to_string(root.join(rel))?)?;
    let mut report = FileReport::new(rel);
    for case in &cases {
        let got = dsl_errors(&case.dsl);
        let outcome = if case.expected_errors.is_empty() {
            match got.first() {
                None => Ok(()),
                Some(e) => Err(format!("valid model refused: {e}")),
            }
        } else if !semantic {
            // A syntax error stops our parser; OpenFGA's parser recovers and may report
            // more. The first error must be where OpenFGA's first one is.
            let want = &case.expected_errors[0];
            match got.first() {
                None => Err("invalid model accepted".to_string()),
                Some(g) if g.line == want.line.start && g.column == want.column.start => Ok(()),
                Some(g) => Err(format!(
                    "first error at {}:{}, expected {}:{} ({})",
                    g.line, g.column, want.line.start, want.column.start, g.message
                )),
            }
        } else {
            // Each expected error must be found: same position (and type, where the
            // data gives one).
            let missing: Vec<String> = case
                .expected_errors
                .iter()
                .filter(|x| {
                    !got.iter().any(|g| {
                        g.line == x.line.start
                            && g.column == x.column.start
                            && (!semantic
                                || x.metadata
                                    .as_ref()
                                    .and_then(|m| m.error_type.as_deref())
                                    .is_none_or(|t| t == g.kind.as_str()))
                    })
                })
                .map(|x| {
                    let t = x
                        .metadata
                        .as_ref()
                        .and_then(|m| m.error_type.clone())
                        .unwrap_or_default();
                    format!("{t}@{}:{}", x.line.start, x.column.start)
                })
                .collect();
            if got.is_empty() {
                Err("invalid model accepted".to_string())
            } else if missing.is_empty() {
                Ok(())
            } else {
                let g: Vec<String> = got
                    .iter()
                    .map(|g| format!("{}@{}:{}", g.kind.as_str(), g.line, g.column))
                    .collect();
                Err(format!("expected {missing:?}, got {g:?}"))
            }
        };
        report.record(&known, &case.name, outcome);
    }
    Ok(report.finish())
}

#[test]
fn openfga_dsl_semantic_validation() -> anyhow::Result<()> {
    let failures = run_validation_file("language/dsl-semantic-validation-cases.yaml", true)?;
    assert!(
        failures.is_empty(),
        "{} unexpected failures",
        failures.len()
    );
    Ok(())
}

#[test]
fn openfga_dsl_syntax_validation() -> anyhow::Result<()> {
    let failures = run_validation_file("language/dsl-syntax-validation-cases.yaml", false)?;
    assert!(
        failures.is_empty(),
        "{} unexpected failures",
        failures.len()
    );
    Ok(())
}

#[derive(serde::Deserialize)]
struct JsonCase {
    name: String,
    json: String,
    #[serde(default)]
    expected_errors: Vec<JsonExpected>,
}

#[derive(serde::Deserialize)]
struct JsonExpected {
    #[serde(default)]
    metadata: Option<ErrorMeta>,
}

/// `language/json-validation-cases.yaml`: JSON models and the error types they raise.
#[test]
fn openfga_json_validation() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let known = KnownDifferences::load()?;
    let rel = "language/json-validation-cases.yaml";
    let cases: Vec<JsonCase> = serde_yaml::from_str(&std::fs::read_to_string(root.join(rel))?)?;
    let mut report = FileReport::new(rel);
    for case in &cases {
        let got = match warden_model::parse_json(&case.json) {
            Err(e) => vec![e],
            Ok(m) => warden_model::validate::validate_all(&m, None),
        };
        let kinds: Vec<&str> = got.iter().map(|e| e.kind.as_str()).collect();
        let outcome = if case.expected_errors.is_empty() {
            if got.is_empty() {
                Ok(())
            } else {
                Err(format!("valid model refused: {got:?}"))
            }
        } else {
            let missing: Vec<&str> = case
                .expected_errors
                .iter()
                .filter_map(|x| x.metadata.as_ref()?.error_type.as_deref())
                .filter(|t| !kinds.contains(t))
                .collect();
            if got.is_empty() {
                Err("invalid model accepted".into())
            } else if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("expected {missing:?}, got {kinds:?}"))
            }
        };
        report.record(&known, &case.name, outcome);
    }
    let failures = report.finish();
    assert!(
        failures.is_empty(),
        "{} unexpected failures",
        failures.len()
    );
    Ok(())
}

#[derive(serde::Deserialize)]
struct JsonSyntaxCase {
    name: String,
    json: String,
    #[serde(default = "yes")]
    valid: bool,
}

fn yes() -> bool {
    true
}

/// `language/json-syntax-transformer-validation-cases.yaml`: JSON models the DSL can or
/// cannot express.
#[test]
fn openfga_json_syntax_transformer() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let known = KnownDifferences::load()?;
    let rel = "language/json-syntax-transformer-validation-cases.yaml";
    let cases: Vec<JsonSyntaxCase> =
        serde_yaml::from_str(&std::fs::read_to_string(root.join(rel))?)?;
    let mut report = FileReport::new(rel);
    for case in &cases {
        let got = warden_model::parse_json(&case.json).and_then(|m| warden_model::try_to_dsl(&m));
        let outcome = match (got, case.valid) {
            (Ok(dsl), true) => {
                // What is printed must parse back to the same relations.
                match warden_model::parse_dsl(&dsl) {
                    Ok(_) => Ok(()),
                    Err(e) => Err(format!("printed DSL does not parse: {e}\n{dsl}")),
                }
            }
            (Ok(_), false) => Err("printed a model the DSL cannot express".into()),
            (Err(e), true) => Err(format!("refused: {e}")),
            (Err(_), false) => Ok(()),
        };
        report.record(&known, &case.name, outcome);
    }
    let failures = report.finish();
    assert!(
        failures.is_empty(),
        "{} unexpected failures",
        failures.len()
    );
    Ok(())
}

#[derive(serde::Deserialize)]
struct ObjectIdCase {
    name: String,
    object_id: String,
    valid: bool,
}

/// `language/object-id-validation-cases.yaml`: the modelling language's object-id rule.
#[test]
fn openfga_object_ids() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let known = KnownDifferences::load()?;
    let rel = "language/object-id-validation-cases.yaml";
    let cases: Vec<ObjectIdCase> = serde_yaml::from_str(&std::fs::read_to_string(root.join(rel))?)?;
    let mut report = FileReport::new(rel);
    for case in &cases {
        let got = warden_model::validate::valid_object_id(&case.object_id);
        let outcome = if got == case.valid {
            Ok(())
        } else {
            Err(format!("valid = {got}, want {}", case.valid))
        };
        report.record(&known, &case.name, outcome);
    }
    let failures = report.finish();
    assert!(
        failures.is_empty(),
        "{} unexpected failures",
        failures.len()
    );
    Ok(())
}

/// `language/stores/*`: store files as `fga model test` reads them. Valid ones load
/// and all their assertions pass; invalid ones are refused.
#[test]
fn openfga_store_files() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let known = KnownDifferences::load()?;
    let mut report = FileReport::new("language/stores");
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("language/stores"))?
        .filter_map(|e| e.ok())
        .collect();
    dirs.sort_by_key(|e| e.file_name());
    for dir in dirs {
        let name = dir.file_name().to_string_lossy().to_string();
        let invalid = dir.path().join("expected_errors.json").is_file();
        let outcome = match (
            warden_modeltest::load(&dir.path().join("store.fga.yaml")),
            invalid,
        ) {
            (Ok(store), false) => {
                let r = warden_modeltest::run(&store);
                if r.passed() {
                    Ok(())
                } else {
                    Err(format!("assertions failed: {r:?}"))
                }
            }
            (Ok(_), true) => Err("invalid store file accepted".into()),
            (Err(e), false) => Err(format!("refused: {e}")),
            (Err(_), true) => Ok(()),
        };
        report.record(&known, &name, outcome);
    }
    let failures = report.finish();
    assert!(
        failures.is_empty(),
        "{} unexpected failures",
        failures.len()
    );
    Ok(())
}

/// The validator must accept every model OpenFGA's own engine suite runs on (the
/// engine tests would be meaningless on a model a server refuses).
#[test]
fn engine_suite_models_are_valid() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let mut refused = Vec::new();
    for f in [
        "engine/consolidated_1_1_tests.yaml",
        "engine/abac_tests.yaml",
    ] {
        let v: serde_yaml::Value = serde_yaml::from_str(&std::fs::read_to_string(root.join(f))?)?;
        for t in v["tests"].as_sequence().into_iter().flatten() {
            for s in t["stages"].as_sequence().into_iter().flatten() {
                if let Some(m) = s["model"].as_str() {
                    let errs = warden_model::validate_dsl(m);
                    if !errs.is_empty() {
                        refused.push(format!("{f} / {:?}: {errs:?}", t["name"].as_str()));
                    }
                }
            }
        }
    }
    assert!(refused.is_empty(), "valid models refused: {refused:#?}");
    Ok(())
}
