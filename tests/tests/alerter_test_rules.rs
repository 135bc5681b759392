//! `fleetwatch-alerter test rules` and `check rules` against Debian's promtool (2.42): on the shipped
//! rules' tests, the template tests, the PromQL engine suite and the alerter's own unit-test data, both
//! tools pass; on the deliberately failing test file and a broken rule file both fail, with the same output
//! where the messages are not parser errors. Needs `cargo build -p fleetwatch-alerter --bins` first.

mod support;

use std::path::PathBuf;
use std::process::Command;
use support::{bin, repo_root, require, run};

/// The `.yml` files of a directory (relative to the repository root) whose names end with `suffix`.
fn yml_files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(repo_root().join(dir)) {
        Ok(entries) => entries
            .flatten()
            .map(|e| PathBuf::from(dir).join(e.file_name()))
            .filter(|p| p.to_string_lossy().ends_with(suffix) && p.extension().is_some_and(|x| x == "yml"))
            .collect(),
        Err(_) => Vec::new(),
    };
    files.sort();
    files
}

/// Runs a tool in the repository root with the given arguments: (exit code, stdout, stderr).
fn tool(program: PathBuf, args: &[&str], files: &[PathBuf]) -> (i32, String, String) {
    run(Command::new(program).current_dir(repo_root()).args(args).args(files))
}

fn alerter(args: &[&str], files: &[PathBuf]) -> (i32, String, String) {
    tool(bin("fleetwatch-alerter"), args, files)
}

/// promtool's result, or None (after saying why) when it is not installed outside CI.
fn promtool(test: &str, args: &[&str], files: &[PathBuf]) -> Option<(i32, String, String)> {
    require("promtool", test).then(|| tool(PathBuf::from("promtool"), args, files))
}

/// Every unit-test file that must pass: the shipped rules' tests, the template tests, the alerter's
/// own test data and the PromQL engine suite.
fn passing_test_files() -> Vec<PathBuf> {
    let mut files = yml_files("rules/tests", ".yml");
    files.extend(yml_files("alerter/tests/templates", "_test.yml"));
    files.extend(yml_files("alerter/tests/unittest", "_test.yml"));
    let suite = yml_files("alerter/tests/promql", ".yml");
    assert!(suite.len() >= 10, "the PromQL suite is missing: {suite:?}");
    files.extend(suite);
    files
}

#[test]
fn unit_test_files_pass_in_both_tools() {
    let files = passing_test_files();
    let (code, out, err) = alerter(&["test", "rules"], &files);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("  SUCCESS\n").count(), files.len(), "{out}");
    if let Some((p_code, p_out, p_err)) = promtool("unit_test_files_pass_in_both_tools", &["test", "rules"], &files) {
        assert_eq!(p_code, 0, "{p_out}{p_err}");
        assert_eq!(out, p_out, "both tools print the same progress");
    }
}

#[test]
fn the_failing_test_file_fails_in_both_tools_with_the_same_report() {
    let files = [PathBuf::from("alerter/tests/unittest/failing/failing_test.yml")];
    let (code, out, err) = alerter(&["test", "rules"], &files);
    assert_eq!(code, 1, "{out}{err}");
    let golden = std::fs::read_to_string(repo_root().join("alerter/tests/unittest/failing/failing_test.stderr")).unwrap();
    assert_eq!(err, golden);
    assert!(out.starts_with("Unit Testing:  alerter/tests/unittest/failing/failing_test.yml\n"), "{out}");
    if let Some((p_code, p_out, p_err)) = promtool("the_failing_test_file_fails_in_both_tools", &["test", "rules"], &files) {
        assert_eq!(p_code, 1, "{p_out}{p_err}");
        assert_eq!((out, err), (p_out, p_err));
    }
}

#[test]
fn a_failure_fails_the_run_but_not_the_other_files() {
    let files = [PathBuf::from("alerter/tests/unittest/failing/failing_test.yml"), PathBuf::from("alerter/tests/unittest/alerts_test.yml")];
    let (code, out, err) = alerter(&["test", "rules"], &files);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.ends_with("alerts_test.yml\n  SUCCESS\n\n"), "{out}");
}

#[test]
fn rule_files_pass_check_rules_in_both_tools() {
    let mut files = yml_files("rules", ".yml");
    assert!(!files.is_empty(), "no rule files in rules/");
    files.extend(
        ["alerter/tests/unittest/rules.yml", "alerter/tests/unittest/rules_fleet.yml", "alerter/tests/templates/rules.yml"]
            .map(PathBuf::from),
    );
    let (code, out, err) = alerter(&["check", "rules"], &files);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.matches("  SUCCESS: ").count(), files.len(), "{out}");
    if let Some((p_code, p_out, p_err)) = promtool("rule_files_pass_check_rules_in_both_tools", &["check", "rules"], &files) {
        assert_eq!(p_code, 0, "{p_out}{p_err}");
        assert_eq!(out, p_out, "both tools count the same rules");
    }
}

#[test]
fn a_broken_rule_file_fails_check_rules_in_both_tools() {
    let files = [PathBuf::from("alerter/tests/unittest/failing/broken_rules.yml")];
    let (code, out, err) = alerter(&["check", "rules"], &files);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.starts_with("  FAILED:\n") && err.contains("Unbalanced"), "{err}");
    if let Some((p_code, p_out, p_err)) = promtool("a_broken_rule_file_fails_check_rules_in_both_tools", &["check", "rules"], &files) {
        assert_eq!(p_code, 1, "{p_out}{p_err}");
        assert_eq!(out, p_out);
        assert!(p_err.starts_with("  FAILED:\n"), "{p_err}");
    }
}
