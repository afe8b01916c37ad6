//! Runs OpenFGA's modular-model data: `language/transformer-module/*` (module files
//! combined into one model, or the errors they must produce, each in its file) and
//! `language/fga-mod-transformer-cases.yaml` (the `fga.mod` manifest).

use std::collections::BTreeSet;
use std::path::Path;

use warden_conformance::{FileReport, KnownDifferences, openfga_root};
use warden_model::module::{ModuleSource, combine, mod_file_json, parse_mod_file};

/// All `.fga` files under `dir`, paths relative to it, sorted.
fn module_files(dir: &Path) -> anyhow::Result<Vec<ModuleSource>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<ModuleSource>) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(root, &path, out)?;
            } else if path.extension().is_some_and(|e| e == "fga") {
                let rel = path
                    .strip_prefix(root)?
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(ModuleSource {
                    path: rel,
                    text: std::fs::read_to_string(&path)?,
                });
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Drops what only differs in form: nulls and empty `relations` maps in metadata.
fn normalize(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|k, x| {
                !(x.is_null() || (k == "relations" && x.as_object().is_some_and(|o| o.is_empty())))
            });
            m.values_mut().for_each(normalize);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(normalize),
        _ => {}
    }
}

#[derive(serde::Deserialize)]
struct ExpectedFileError {
    file: String,
    line: Span,
    column: Span,
    #[serde(default)]
    metadata: Option<Meta>,
}

#[derive(serde::Deserialize)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(serde::Deserialize)]
struct Meta {
    #[serde(rename = "errorType")]
    error_type: Option<String>,
}

fn modules_of(model: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut add = |m: Option<&serde_json::Value>| {
        if let Some(s) = m.and_then(|m| m.as_str()) {
            out.insert(s.to_string());
        }
    };
    for t in model["type_definitions"].as_array().into_iter().flatten() {
        add(t.pointer("/metadata/module"));
        for r in t
            .pointer("/metadata/relations")
            .and_then(|r| r.as_object())
            .into_iter()
            .flatten()
        {
            add(r.1.get("module"));
        }
    }
    for c in model["conditions"].as_object().into_iter().flatten() {
        add(c.1.pointer("/metadata/module"));
    }
    out
}

fn run_module_case(dir: &Path) -> anyhow::Result<Result<(), String>> {
    let expected_json = dir.join("authorization-model.json");
    if !dir.join("module").is_dir() {
        // Only the combined JSON is given: the modules it names must be the expected ones.
        let model: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_json)?)?;
        let want: BTreeSet<String> =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected_modules.json"))?)?;
        let parsed = warden_model::parse_json(&std::fs::read_to_string(&expected_json)?);
        return Ok(match parsed {
            Err(e) => Err(format!("combined JSON refused: {e}")),
            Ok(_) if modules_of(&model) == want => Ok(()),
            Ok(_) => Err(format!("modules {:?}, want {want:?}", modules_of(&model))),
        });
    }
    let files = module_files(&dir.join("module"))?;
    let got = combine(&files);
    if expected_json.is_file() {
        let mut want: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&expected_json)?)?;
        return Ok(match got {
            Err(errs) => Err(format!("refused: {errs:?}")),
            Ok(model) => {
                let mut got = serde_json::to_value(&model)?;
                normalize(&mut got);
                normalize(&mut want);
                if got == want {
                    Ok(())
                } else {
                    Err(format!("combined model differs:\n got {got}\n want {want}"))
                }
            }
        });
    }
    let want: Vec<ExpectedFileError> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected_errors.json"))?)?;
    let errs = match got {
        Ok(_) => return Ok(Err("invalid modules accepted".into())),
        Err(e) => e,
    };
    let missing: Vec<String> = want
        .iter()
        .filter(|x| {
            !errs.iter().any(|g| {
                g.file.as_deref() == Some(x.file.as_str())
                    && g.line == x.line.start
                    && g.column == x.column.start
                    && g.column_end == x.column.end
                    && x.metadata
                        .as_ref()
                        .and_then(|m| m.error_type.as_deref())
                        .is_none_or(|t| t == g.kind.as_str())
            })
        })
        .map(|x| format!("{}@{}:{}", x.file, x.line.start, x.column.start))
        .collect();
    Ok(if missing.is_empty() {
        Ok(())
    } else {
        let got: Vec<String> = errs
            .iter()
            .map(|g| {
                format!(
                    "{}@{}:{}:{} {}",
                    g.file.as_deref().unwrap_or("?"),
                    g.line,
                    g.column,
                    g.column_end,
                    g.message
                )
            })
            .collect();
        Err(format!("missing {missing:?}; got {got:?}"))
    })
}

#[test]
fn openfga_transformer_module_conformance() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let known = KnownDifferences::load()?;
    let mut report = FileReport::new("language/transformer-module");
    let mut dirs: Vec<_> = std::fs::read_dir(root.join("language/transformer-module"))?
        .filter_map(|e| e.ok())
        .collect();
    dirs.sort_by_key(|e| e.file_name());
    for dir in dirs {
        let name = dir.file_name().to_string_lossy().to_string();
        let outcome = run_module_case(&dir.path())?;
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

#[derive(serde::Deserialize)]
struct ModCase {
    name: String,
    #[serde(rename = "modFile")]
    mod_file: String,
    #[serde(default)]
    json: Option<String>,
    #[serde(default)]
    expected_errors: Vec<ExpectedModError>,
}

#[derive(serde::Deserialize)]
struct ExpectedModError {
    line: Span,
    column: Span,
}

#[test]
fn openfga_fga_mod_conformance() -> anyhow::Result<()> {
    let Some(root) = openfga_root()? else {
        return Ok(());
    };
    let known = KnownDifferences::load()?;
    let rel = "language/fga-mod-transformer-cases.yaml";
    let cases: Vec<ModCase> = serde_yaml::from_str(&std::fs::read_to_string(root.join(rel))?)?;
    let mut report = FileReport::new(rel);
    for case in &cases {
        let got = parse_mod_file(&case.mod_file);
        let outcome = match (&got, case.expected_errors.is_empty()) {
            (Ok(m), true) => match &case.json {
                None => Ok(()),
                Some(j) => {
                    let want: serde_json::Value = serde_json::from_str(j)?;
                    let got = mod_file_json(m);
                    if got == want {
                        Ok(())
                    } else {
                        Err(format!("got {got}\n want {want}"))
                    }
                }
            },
            (Ok(_), false) => Err("invalid manifest accepted".to_string()),
            (Err(errs), true) => Err(format!("valid manifest refused: {errs:?}")),
            (Err(errs), false) => {
                let spans = |l0, c0, c1| {
                    errs.iter()
                        .any(|e| (e.line, e.column, e.column_end) == (l0, c0, c1))
                };
                let missing: Vec<_> = case
                    .expected_errors
                    .iter()
                    .filter(|x| !spans(x.line.start, x.column.start, x.column.end))
                    .map(|x| (x.line.start, x.column.start, x.column.end))
                    .collect();
                if missing.is_empty() && errs.len() == case.expected_errors.len() {
                    Ok(())
                } else {
                    Err(format!("missing {missing:?}; got {errs:?}"))
                }
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
