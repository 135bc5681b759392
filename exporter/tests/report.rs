//! The month-end report on recorded logs (exporter/tests/fixtures/report): exact CSV, worked out
//! by hand. alice, 2024-05-01: active 08:00-12:00 and 13:00-17:00 (480 min), idle 12:00-13:00 and
//! 17:00-24:00 (480), one idle action, 4 + 6 file modifications; commits a1 (+10 -2), a2 (+3 -3),
//! l1 (+1 -1) and the merge m1 (no lines), each counted once although logged hourly again; a0 is
//! from April 30. 2024-05-02: idle until 09:00 (540), active 09:00-09:45:30 (45.5, rounded to
//! 46), a3 (+7 -1). bob: a1 in his own log counts for him (+10 -2) on 05-01; b1 (+4) and active
//! 23:00-24:00 on 05-02 (the hour after midnight falls outside the range).

use fleetwatch_exporter::git::report::{run, Args};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/report")
}

fn args(format: &str, activity: bool) -> Args {
    Args {
        from: "2024-05-01".into(),
        to: "2024-05-02".into(),
        format: format.into(),
        git_stats_dir: Some(fixtures().join("git")),
        config_file: None,
        activity_log: if activity { vec![fixtures().join("activity")] } else { Vec::new() },
    }
}

#[test]
fn report_on_recorded_logs_is_exact() {
    let want = std::fs::read_to_string(fixtures().join("expected.csv")).unwrap();
    assert_eq!(run(&args("csv", true)).unwrap(), want);
}

#[test]
fn without_activity_log_only_git_figures_and_json_has_the_same_rows() {
    let csv = run(&args("csv", false)).unwrap();
    assert_eq!(
        csv.lines().skip(1).collect::<Vec<_>>(),
        [
            "2024-05-01,alice,0,0,0,0,4,14,6",
            "2024-05-01,bob,0,0,0,0,1,10,2",
            "2024-05-02,alice,0,0,0,0,1,7,1",
            "2024-05-02,bob,0,0,0,0,1,4,0"
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&run(&args("json", true)).unwrap()).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 4);
    assert_eq!(json[2]["date"], "2024-05-02");
    assert_eq!(json[2]["user"], "alice");
    assert_eq!(json[2]["active_minutes"], 46);
    assert_eq!(json[2]["insertions"], 7);
}

#[test]
fn bad_arguments_are_errors() {
    let mut a = args("csv", false);
    a.from = "2024-13-01".into();
    assert!(run(&a).unwrap_err().to_string().contains("invalid date"));
    let mut a = args("xml", false);
    assert!(run(&a).unwrap_err().to_string().contains("unknown format"));
    a.format = "csv".into();
    a.to = "2024-04-01".into();
    assert!(run(&a).is_err());
}
