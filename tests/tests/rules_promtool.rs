//! The shipped rules and the PromQL engine suite against Debian's promtool: every rule file in
//! `rules/` passes `promtool check rules`, and every unit-test file in `rules/tests/` and
//! `alerter/tests/promql/` passes `promtool test rules` (the engine's own run of the same files is
//! `promql/tests/promtool_suite.rs`), and so do the template tests in `alerter/tests/templates/`
//! (rendered by the alerter's template module in its unit tests).

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::{repo_root, require, run};

fn yml_files(dir: &str) -> Vec<PathBuf> {
    let dir = repo_root().join(dir);
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "yml")).collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

#[test]
fn shipped_rules_pass_promtool_check_rules() {
    if !require("promtool", "shipped_rules_pass_promtool_check_rules") {
        return;
    }
    let files = yml_files("rules");
    assert!(!files.is_empty(), "no rule files in rules/");
    let (code, out, err) = run(Command::new("promtool").args(["check", "rules"]).args(&files));
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn unit_test_files_pass_promtool_test_rules() {
    if !require("promtool", "unit_test_files_pass_promtool_test_rules") {
        return;
    }
    let mut files = yml_files("alerter/tests/promql");
    assert!(files.len() >= 10, "the engine suite is missing: {files:?}");
    files.extend(yml_files("rules/tests"));
    files.extend(yml_files("alerter/tests/templates").into_iter().filter(|p| p.to_string_lossy().ends_with("_test.yml")));
    let (code, out, err) = run(Command::new("promtool").args(["test", "rules"]).args(&files));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("SUCCESS").count(), files.len(), "{out}");
}
