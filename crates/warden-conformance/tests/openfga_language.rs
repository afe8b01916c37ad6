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
    match warden_model::parse_dsl(dsl) {
        Err(e) => vec![e],
        Ok(m) => warden_model::validate::validate_all(&m, Some(dsl)),
    }
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
        } else {
            // Each expected error must be found: same position (and type, where the
            // data gives one for a semantic error).
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
