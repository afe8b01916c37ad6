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
