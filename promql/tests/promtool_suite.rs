//! Runs every promtool unit-test file in `alerter/tests/promql/` through the engine: each
//! `promql_expr_test` case there passes under Debian's `promtool test rules` (Prometheus 2.42), so a case
//! failing here is an engine bug.

use std::path::PathBuf;

use fleetwatch_promql::testfile::run_file;

#[test]
fn promtool_suite_passes() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../alerter/tests/promql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no test files in {}", dir.display());
    let (mut cases, mut failures) = (0, Vec::new());
    for f in &files {
        let report = run_file(f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let name = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("{name}: {} cases, {} failed", report.cases, report.failures.len());
        cases += report.cases;
        failures.extend(report.failures.into_iter().map(|e| format!("{name}:\n{e}")));
    }
    for f in &failures {
        println!("FAILED {f}\n");
    }
    println!("promtool suite: {} cases in {} files", cases, files.len());
    assert!(failures.is_empty(), "{} of {} cases failed", failures.len(), cases);
    assert!(cases >= 320, "expected at least 320 cases, found {cases}");
}
