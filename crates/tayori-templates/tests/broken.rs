//! The broken-template corpus: each directory under `tests/broken/` is a templates directory
//! with one kind of mistake, and `tests/broken/<case>.expected` holds exactly the `file:line:
//! message` lines `tayori templates check` must print for it (paths relative to the case).
//!
//! After a deliberate change of wording, `TAYORI_BLESS=1 cargo test -p tayori-templates --test
//! broken` rewrites the `.expected` files; review their diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};

use tayori_templates::TemplateSet;

fn corpus() -> PathBuf {
    manifest_dir().join("tests/broken")
}

/// The report for one case, one problem per line, paths relative to the case directory.
fn report(case: &Path) -> String {
    let report = TemplateSet::check(case);
    let prefix = format!("{}/", case.display());
    let mut out = String::new();
    for problem in &report.problems {
        out.push_str(&problem.to_string().replace(&prefix, ""));
        out.push('\n');
    }
    out
}

#[test]
fn every_broken_template_yields_its_file_line_message() {
    let bless = std::env::var_os("TAYORI_BLESS").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(corpus())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() >= 8, "the corpus is missing: {cases:?}");
    let mut failures = Vec::new();
    for case in &cases {
        let actual = report(case);
        let expected_path = case.with_extension("expected");
        if bless {
            fs::write(&expected_path, &actual).unwrap();
            continue;
        }
        let expected = fs::read_to_string(&expected_path).unwrap_or_default();
        assert!(!actual.is_empty(), "{}: no problem found", case.display());
        if actual != expected {
            failures.push(format!(
                "{}:\n--- expected\n{expected}--- actual\n{actual}",
                case.file_name().unwrap().to_string_lossy()
            ));
        }
        // Every problem with a file names its line.
        for line in actual.lines() {
            let (location, _) = line.split_once(": ").unwrap();
            let is_file = case.join(location.split(':').next().unwrap()).is_file();
            assert!(!is_file || location.contains(':'), "no line in {line:?}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// This package's directory, read when the test runs (cargo sets it): a test binary reused
/// from a build in another checkout must still read this checkout's files.
fn manifest_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), std::path::PathBuf::from)
}
