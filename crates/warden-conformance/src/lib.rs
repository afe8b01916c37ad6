//! Shared plumbing for the peer conformance suites: where the data lives, which cases
//! are known to differ (and why), and the one-line-per-file summary.
//!
//! The data itself is never copied into this repository: it is read at test time from
//! `../shared/conformance/` beside the checkout, or from the folder named by
//! `WARDEN_OPENFGA_CONFORMANCE` (same layout as `shared/conformance/openfga`).

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The root of the workspace (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

/// The OpenFGA conformance folder, or `None` (after a loud message) when it is absent
/// outside CI. In CI (`CI` set) a missing folder is an error.
pub fn openfga_root() -> anyhow::Result<Option<PathBuf>> {
    let dir = match std::env::var_os("WARDEN_OPENFGA_CONFORMANCE") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("../shared/conformance/openfga"),
    };
    if dir.is_dir() {
        return Ok(Some(dir));
    }
    if std::env::var_os("CI").is_some() {
        anyhow::bail!("OpenFGA conformance data not found at {}", dir.display());
    }
    eprintln!(
        "\n!!! SKIPPING OpenFGA conformance: no data at {} (set WARDEN_OPENFGA_CONFORMANCE) !!!\n",
        dir.display()
    );
    Ok(None)
}

/// The AuthZEN interop folder (`WARDEN_AUTHZEN_CONFORMANCE` or
/// `../shared/conformance/authzen`), or `None` (after a loud message) when absent
/// outside CI.
pub fn authzen_root() -> anyhow::Result<Option<PathBuf>> {
    let dir = match std::env::var_os("WARDEN_AUTHZEN_CONFORMANCE") {
        Some(d) => PathBuf::from(d),
        None => workspace_root().join("../shared/conformance/authzen"),
    };
    if dir.is_dir() {
        return Ok(Some(dir));
    }
    if std::env::var_os("CI").is_some() {
        anyhow::bail!("AuthZEN conformance data not found at {}", dir.display());
    }
    eprintln!(
        "\n!!! SKIPPING AuthZEN interop: no data at {} (set WARDEN_AUTHZEN_CONFORMANCE) !!!\n",
        dir.display()
    );
    Ok(None)
}

/// One case that is allowed to fail, with the reason it does.
#[derive(Debug, Clone, Deserialize)]
pub struct KnownDifference {
    /// Path relative to the suite root, e.g. `language/dsl-syntax-validation-cases.yaml`.
    pub file: String,
    /// The case's name (or `test name / assertion index` for engine suites).
    pub case: String,
    pub reason: String,
}

/// The known-differences list (`conformance/openfga-known-differences.yaml`).
#[derive(Debug, Default)]
pub struct KnownDifferences(Vec<KnownDifference>);

impl KnownDifferences {
    pub fn load() -> anyhow::Result<Self> {
        let path = workspace_root().join("conformance/openfga-known-differences.yaml");
        let text = std::fs::read_to_string(&path)?;
        let list: Option<Vec<KnownDifference>> = serde_yaml::from_str(&text)?;
        Ok(KnownDifferences(list.unwrap_or_default()))
    }

    /// The reason `case` of `file` may fail, if it is listed.
    pub fn reason(&self, file: &str, case: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|d| d.file == file && d.case == case)
            .map(|d| d.reason.as_str())
    }
}

/// Tallies one file's cases and prints the summary line CI shows.
#[derive(Debug)]
pub struct FileReport {
    file: String,
    passed: usize,
    total: usize,
    /// Failures that are not in the known-differences list.
    pub unexpected: Vec<String>,
    known: usize,
}

impl FileReport {
    pub fn new(file: impl Into<String>) -> Self {
        FileReport {
            file: file.into(),
            passed: 0,
            total: 0,
            unexpected: Vec::new(),
            known: 0,
        }
    }

    /// Records one case: `Ok(())` passed, `Err(why)` failed.
    pub fn record(&mut self, known: &KnownDifferences, case: &str, outcome: Result<(), String>) {
        self.total += 1;
        match outcome {
            Ok(()) => self.passed += 1,
            Err(why) => {
                if known.reason(&self.file, case).is_some() {
                    self.known += 1;
                } else {
                    self.unexpected.push(format!("{case}: {why}"));
                }
            }
        }
    }

    /// Prints `openfga conformance <file>: passed N/M` and returns the unexpected failures.
    pub fn finish(self) -> Vec<String> {
        let known = if self.known > 0 {
            format!(" ({} known differences)", self.known)
        } else {
            String::new()
        };
        println!(
            "openfga conformance {}: passed {}/{}{}",
            self.file, self.passed, self.total, known
        );
        for f in &self.unexpected {
            println!("  FAIL {f}");
        }
        self.unexpected
    }
}
