//! `test rules`: runs promtool's rule unit-test files (Prometheus 2.42's `promtool test rules`) with the
//! alerter's own rule evaluator.
//!
//! For each test group the input series are appended to a fresh store step by step, as promtool's lazy
//! loader does, and every rule group of the test file's rule files is evaluated at each multiple of the
//! file's `evaluation_interval` from 0 up to the group's latest `eval_time` (a rule group's own `interval`
//! is ignored, as promtool ignores it). Recording-rule results, `ALERTS` and `ALERTS_FOR_STATE` go back to
//! the store. An `alert_rule_test` is checked after the step its `eval_time` falls in (`step <= eval_time
//! < step + evaluation_interval`) against the rule's firing alerts; `promql_expr_test` cases run at the end
//! against the whole store. Output, messages and exit codes follow promtool's.

use crate::alert_state::State;
use crate::evaluate::{self, Context, GroupEval, Sink, StorageSink};
use crate::rules::{self, LoadedFile};
use crate::template::go_quote;
use fleetwatch_promql::testfile::{format_duration, run_promql_expr_test, AlertTestCase, TestFile, TestGroup};
use fleetwatch_promql::{is_stale_nan, Labels, MemStorage, Sample, Storage};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Component, Path, PathBuf};

/// Runs the unit-test files, printing to stdout and stderr as promtool does; the exit code is 1 when any
/// file failed.
pub fn test_rules(files: &[PathBuf]) -> i32 {
    let (stdout, stderr) = (std::io::stdout(), std::io::stderr());
    run(files, &mut stdout.lock(), &mut stderr.lock())
}

/// Runs the unit-test files: progress and blank lines go to `out`, warnings and failures to `err`.
pub fn run(files: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut failed = false;
    for file in files {
        let _ = writeln!(out, "Unit Testing:  {}", file.display());
        let errors = test_file(file, err);
        if errors.is_empty() {
            let _ = writeln!(out, "  SUCCESS");
        } else {
            failed = true;
            let _ = writeln!(err, "  FAILED:");
            for e in &errors {
                let _ = writeln!(err, "{e}");
                let _ = writeln!(out);
            }
        }
        let _ = writeln!(out);
    }
    i32::from(failed)
}

/// Runs one test file; the result lists its failures (empty when it passed).
pub fn test_file(path: &Path, warnings: &mut dyn Write) -> Vec<String> {
    let tf = match TestFile::load(path) {
        Ok(tf) => tf,
        Err(e) => return vec![e.to_string()],
    };
    let base = path.parent().unwrap_or(Path::new(""));
    let rule_paths = match resolve_rule_files(&tf.rule_files, base, warnings) {
        Ok(p) => p,
        Err(e) => return vec![e],
    };
    let order = match eval_order(&tf.group_eval_order) {
        Ok(o) => o,
        Err(e) => return vec![e],
    };
    let loaded = load_rule_files(&rule_paths);
    tf.tests.iter().flat_map(|g| test_group(&tf, g, &loaded, &order)).collect()
}

/// Joins relative rule file patterns to the test file's directory and expands the globs; a pattern
/// matching nothing is a warning.
fn resolve_rule_files(patterns: &[String], base: &Path, warnings: &mut dyn Write) -> Result<Vec<PathBuf>, String> {
    let mut files: Vec<PathBuf> = Vec::new();
    for pattern in patterns {
        let full = if pattern.is_empty() || Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { clean(&base.join(pattern)) };
        let shown = full.display().to_string();
        let mut matched: Vec<PathBuf> = glob::glob(&shown).map_err(|e| format!("{shown}: {e}"))?.flatten().collect();
        matched.sort();
        if matched.is_empty() {
            let _ = writeln!(warnings, "  WARNING: no file match pattern {shown}");
        }
        for m in matched {
            if !files.contains(&m) {
                files.push(m);
            }
        }
    }
    Ok(files)
}

/// A path with `.` and `name/..` removed lexically, as Go's `filepath.Join` leaves it.
fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            Component::ParentDir if matches!(out.last(), Some(Component::RootDir)) => {}
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// The position of each group named in `group_eval_order`; unnamed groups count as position 0.
fn eval_order(names: &[String]) -> Result<HashMap<String, usize>, String> {
    let mut order = HashMap::new();
    for (i, name) in names.iter().enumerate() {
        if order.insert(name.clone(), i).is_some() {
            return Err(format!("group name repeated in evaluation order: {name}"));
        }
    }
    Ok(order)
}

/// Loads every rule file, collecting the errors of all of them.
fn load_rule_files(paths: &[PathBuf]) -> Result<Vec<LoadedFile>, Vec<String>> {
    let (mut files, mut errors) = (Vec::new(), Vec::new());
    for p in paths {
        match load_rule_file(p) {
            Ok(f) => files.push(f),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// Reads and validates one rule file as Prometheus does: without expanding `${NAME}` from the environment
/// (templates use `${1}` in `reReplaceAll`).
pub fn load_rule_file(path: &Path) -> Result<LoadedFile, String> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| format!("{origin}: {e}"))?;
    rules::load_text(&escape_env(&text), &origin).map_err(|e| e.to_string())
}

/// Escapes every `${` that `rules::load_text`'s environment expansion would expand, so it reads the text
/// unchanged. Expansion skips YAML comments, so on each line the longest prefix of occurrences whose
/// escaping expands back to the original is escaped.
fn escape_env(text: &str) -> String {
    text.split_inclusive('\n').map(escape_line).collect()
}

fn escape_line(line: &str) -> String {
    let at: Vec<usize> = line.match_indices("${").map(|(i, _)| i).collect();
    if at.is_empty() {
        return line.to_string();
    }
    let expands_back = |s: &String| fleetwatch_common::config::expand_env(s, |_| None).is_ok_and(|e| e == line);
    (0..=at.len()).rev().map(|k| escape_at(line, &at[..k])).find(expands_back).unwrap_or_else(|| line.to_string())
}

/// `line` with a `$` inserted before each position in `at` (ascending).
fn escape_at(line: &str, at: &[usize]) -> String {
    let mut out = String::with_capacity(line.len() + at.len());
    let mut from = 0;
    for &i in at {
        out.push_str(&line[from..i]);
        out.push('$');
        from = i;
    }
    out.push_str(&line[from..]);
    out
}

/// Runs one test group; the result lists its failures.
fn test_group(
    tf: &TestFile,
    group: &TestGroup,
    loaded: &Result<Vec<LoadedFile>, Vec<String>>,
    order: &HashMap<String, usize>,
) -> Vec<String> {
    let interval = tf.eval_interval_ms();
    let series = match group.series() {
        Ok(s) => s,
        Err(e) => return vec![e.to_string()],
    };
    let files = match loaded {
        Ok(f) => f,
        Err(errors) => return errors.clone(),
    };
    let mut groups = match evaluate::compile(files, interval) {
        Ok(g) => g,
        Err(e) => return vec![e],
    };
    groups.sort_by_key(|g| order.get(&g.name).copied().unwrap_or(0));
    if let Some(t) = group.alert_rule_test.iter().find(|t| t.alertname.is_empty()) {
        let in_group = if group.name.is_empty() { String::new() } else { format!(" (in TestGroup {})", group.name) };
        return vec![format!(
            "an item under alert_rule_test misses required attribute alertname at eval_time {}{in_group}",
            format_duration(t.eval_time)
        )];
    }
    let engine = tf.engine();
    let ctx = Context { engine: &engine, external_labels: &group.external_labels, external_url: &group.external_url };
    let mut runner = Runner { store: TestStore::default(), loader: Loader::new(series), groups, interval };
    let mut errors = match runner.evaluate(group, &ctx) {
        Ok(failures) => failures,
        Err(errors) => return errors,
    };
    errors.extend(group.promql_expr_test.iter().filter_map(|case| run_promql_expr_test(&engine, &runner.store.mem, case).err()));
    errors
}

/// One test group's evaluation: the store, the input series still to load and the compiled rule groups.
struct Runner {
    store: TestStore,
    loader: Loader,
    groups: Vec<GroupEval>,
    interval: i64,
}

impl Runner {
    /// Evaluates the rule groups at every step and checks the alert tests as their time comes. `Ok` holds
    /// the alert test failures; a rule evaluation error ends the run with `Err` (failures so far included).
    fn evaluate(&mut self, group: &TestGroup, ctx: &Context) -> Result<Vec<String>, Vec<String>> {
        let mut by_time: BTreeMap<i64, Vec<&AlertTestCase>> = BTreeMap::new();
        for t in &group.alert_rule_test {
            by_time.entry(t.eval_time).or_default().push(t);
        }
        let mut failures = Vec::new();
        let max = group.max_eval_time();
        let mut ts = 0;
        while ts <= max {
            self.loader.load_till(ts, &mut self.store);
            let errors = self.eval_step(ts, ctx);
            if !errors.is_empty() {
                failures.extend(errors);
                return Err(failures);
            }
            for (_, cases) in by_time.range(ts..ts.saturating_add(self.interval)) {
                failures.extend(cases.iter().filter_map(|case| check_alerts(&self.groups, case, &group.name)));
            }
            ts = match ts.checked_add(self.interval) {
                Some(next) => next,
                None => break,
            };
        }
        Ok(failures)
    }

    /// Evaluates every rule group at `ts`; the result lists the rules that failed, as promtool reports them.
    fn eval_step(&mut self, ts: i64, ctx: &Context) -> Vec<String> {
        let mut errors = Vec::new();
        for g in &mut self.groups {
            g.eval(ts, &mut self.store, ctx);
            let mut rejected = std::mem::take(&mut self.store.rejected);
            for rule in &g.rules {
                let err = rule.last_error.clone().or_else(|| rejected.remove(&rule.name));
                if let Some(e) = err {
                    errors.push(format!("    rule: {}, time: {}, err: {e}", rule.name, go_duration(ts)));
                }
            }
        }
        errors
    }
}

/// The store a test group runs on. Appends follow the TSDB head's rules: a sample older than the series'
/// latest is out of order, one at the same time with another value a duplicate; both are dropped, and a
/// rule's rejected sample (but not a staleness marker) is an error of that rule, as in Prometheus.
#[derive(Default)]
struct TestStore {
    mem: MemStorage,
    latest: HashMap<Labels, Sample>,
    /// Rejected rule output by rule name (the first error of the current group evaluation).
    rejected: HashMap<String, String>,
}

impl TestStore {
    fn append(&mut self, labels: Labels, s: Sample) -> Result<(), &'static str> {
        match self.latest.get(&labels) {
            Some(l) if l.t > s.t => return Err("out of order sample"),
            Some(l) if l.t == s.t && l.v.to_bits() != s.v.to_bits() => return Err("duplicate sample for timestamp"),
            Some(l) if l.t == s.t => return Ok(()),
            _ => {}
        }
        self.latest.insert(labels.clone(), s);
        self.mem.add(labels, s);
        Ok(())
    }
}

impl Sink for TestStore {
    fn write(&mut self, labels: Labels, t: i64, v: f64) {
        let name = rule_name(&labels);
        if let Err(e) = self.append(labels, Sample { t, v }) {
            if !is_stale_nan(v) {
                self.rejected.entry(name).or_insert_with(|| e.to_string());
            }
        }
    }
}

impl StorageSink for TestStore {
    fn as_storage(&self) -> &dyn Storage {
        &self.mem
    }
}

/// The rule that wrote a series: its `alertname` for `ALERTS` and `ALERTS_FOR_STATE`, else its name.
fn rule_name(labels: &Labels) -> String {
    match labels.name() {
        Some("ALERTS" | "ALERTS_FOR_STATE") => labels.get_or_empty("alertname").to_string(),
        other => other.unwrap_or("").to_string(),
    }
}

/// The input series, appended up to each evaluation time as promtool's lazy loader does.
struct Loader {
    series: Vec<(Labels, Vec<Sample>, usize)>,
    /// The earliest sample not loaded yet.
    next: i64,
}

impl Loader {
    fn new(series: Vec<(Labels, Vec<Sample>)>) -> Loader {
        Loader { series: series.into_iter().map(|(l, s)| (l, s, 0)).collect(), next: i64::MIN }
    }

    /// Appends every sample at or before `ts`; of samples sharing a timestamp the first is kept.
    fn load_till(&mut self, ts: i64, store: &mut TestStore) {
        if self.next > ts {
            return;
        }
        let mut next = i64::MAX;
        for (labels, samples, pos) in &mut self.series {
            while let Some(s) = samples.get(*pos).filter(|s| s.t <= ts) {
                let _ = store.append(labels.clone(), *s);
                *pos += 1;
            }
            if let Some(s) = samples.get(*pos) {
                next = next.min(s.t);
            }
        }
        self.next = next;
    }
}

/// An alert as promtool compares it: labels and annotations, each sorted by name.
type AlertPairs = (Vec<(String, String)>, Vec<(String, String)>);

/// Compares the firing alerts of `case.alertname` (across all groups) with the expected ones; the error
/// is promtool's report.
fn check_alerts(groups: &[GroupEval], case: &AlertTestCase, group_name: &str) -> Option<String> {
    let mut got: Vec<AlertPairs> = groups
        .iter()
        .flat_map(|g| g.alerts())
        .filter(|(name, a)| *name == case.alertname && a.state == State::Firing)
        .map(|(_, a)| (a.labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), sorted(a.annotations.clone())))
        .collect();
    let mut exp: Vec<AlertPairs> = case
        .exp_alerts
        .iter()
        .map(|e| {
            let mut labels = e.exp_labels.clone();
            labels.insert("alertname".to_string(), case.alertname.clone());
            (labels.into_iter().collect(), e.exp_annotations.clone().into_iter().collect())
        })
        .collect();
    got.sort();
    exp.sort();
    if got == exp {
        return None;
    }
    let name = if group_name.is_empty() { String::new() } else { format!("    name: {group_name},\n") };
    let indent = " ".repeat(12);
    Some(format!(
        "{name}    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        case.alertname,
        format_duration(case.eval_time),
        indent_lines(&alerts_string(&exp), &indent),
        indent_lines(&alerts_string(&got), &indent)
    ))
}

fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort();
    pairs
}

/// A list of alerts as promtool prints it: `[]`, or one numbered `Labels:`/`Annotations:` entry each.
fn alerts_string(alerts: &[AlertPairs]) -> String {
    if alerts.is_empty() {
        return "[]".to_string();
    }
    let entries: Vec<String> = alerts
        .iter()
        .enumerate()
        .map(|(i, (labels, annotations))| {
            let entry = format!("\nLabels:{}\nAnnotations:{}", pairs_string(labels), pairs_string(annotations));
            format!("{i}:{}", indent_lines(&entry, "  "))
        })
        .collect();
    format!("[\n{}\n]", entries.join(",\n"))
}

/// Prefixes every line but the first with `indent`.
fn indent_lines(text: &str, indent: &str) -> String {
    text.split('\n').collect::<Vec<_>>().join(&format!("\n{indent}"))
}

/// Pairs as Prometheus's `labels.Labels.String()`: `{a="b", c="d"}`, values quoted as Go's `%q`.
fn pairs_string(pairs: &[(String, String)]) -> String {
    let shown: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={}", go_quote(v))).collect();
    format!("{{{}}}", shown.join(", "))
}

/// Milliseconds as Go's `time.Duration.String()` prints them (`0s`, `500ms`, `1m0s`, `1h2m3.5s`).
fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let secs = match ms % 1000 {
        0 => format!("{}", ms / 1000 % 60),
        frac => format!("{}.{}", ms / 1000 % 60, format!("{frac:03}").trim_end_matches('0')),
    };
    match (h, m) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

/// The rules of a rule file's groups that promtool's duplicate-rules lint flags: rules sharing a name and
/// labels, each reported once, sorted by name then labels.
pub fn duplicate_rules(file: &LoadedFile) -> Vec<(String, Vec<(String, String)>)> {
    let mut all: Vec<(String, Vec<(String, String)>)> = file
        .file
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .map(|r| (r.name().to_string(), r.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
        .collect();
    all.sort();
    let mut dups: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for pair in all.windows(2) {
        if pair[0] == pair[1] && dups.last() != Some(&pair[1]) {
            dups.push(pair[1].clone());
        }
    }
    dups
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).expect("write test data");
        p
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(500), "500ms");
        assert_eq!(go_duration(60_000), "1m0s");
        assert_eq!(go_duration(90_500), "1m30.5s");
        assert_eq!(go_duration(3_600_000), "1h0m0s");
        assert_eq!(go_duration(26 * 3_600_000 + 3_004_120), "26h50m4.12s");
    }

    #[test]
    fn paths_are_cleaned_like_go() {
        assert_eq!(clean(Path::new("rules/tests/../host.yml")), PathBuf::from("rules/host.yml"));
        assert_eq!(clean(Path::new("./a/./b")), PathBuf::from("a/b"));
        assert_eq!(clean(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(clean(Path::new("/../x")), PathBuf::from("/x"));
    }

    #[test]
    fn env_references_are_read_literally() {
        for line in ["a: '${1} $${2} $x'\n", "b: \"${HOME}\" # ${HOME}\n", "c: x # ${UNSET_AND_IN_COMMENT}", "plain"] {
            let escaped = escape_line(line);
            assert_eq!(fleetwatch_common::config::expand_env(&escaped, |_| None).as_deref(), Ok(line), "{escaped}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let text = "groups:\n- name: g\n  rules:\n  - alert: A # ${X}\n    expr: up\n    annotations: {a: '${1} ${HOME} $${2}'}\n";
        let file = load_rule_file(&write(dir.path(), "r.yml", text)).expect("loads");
        assert_eq!(file.file.groups[0].rules[0].annotations["a"], "${1} ${HOME} $${2}");
    }

    #[test]
    fn alert_reports_are_formatted_as_promtool() {
        let alert = (vec![("alertname".to_string(), "A".to_string())], vec![("s".to_string(), "x \"y\"\n".to_string())]);
        let shown = indent_lines(&alerts_string(&[alert.clone(), alert]), "    ");
        assert_eq!(
            shown,
            "[\n    0:\n      Labels:{alertname=\"A\"}\n      Annotations:{s=\"x \\\"y\\\"\\n\"},\n    1:\n      Labels:{alertname=\"A\"}\n      Annotations:{s=\"x \\\"y\\\"\\n\"}\n    ]"
        );
        assert_eq!(alerts_string(&[]), "[]");
    }

    const RULES: &str = "groups:\n- name: g\n  interval: 5m\n  rules:\n  - record: x:double\n    expr: x * 2\n  - alert: XHigh\n    expr: x:double > 4\n    for: 1m\n    labels: {severity: page}\n    annotations: {summary: '{{ $value }} on {{ $labels.i }} in {{ $externalLabels.c }}'}\n";

    #[test]
    fn alerts_fire_after_for_and_recording_rules_feed_queries() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "r.yml", RULES);
        let test = "rule_files: [r.yml]\ntests:\n- interval: 1m\n  external_labels: {c: eu}\n  input_series:\n  - series: x{i=\"a\"}\n    values: 1+1x5\n  alert_rule_test:\n  - {eval_time: 2m, alertname: XHigh, exp_alerts: []}\n  - eval_time: 3m30s\n    alertname: XHigh\n    exp_alerts: [{exp_labels: {i: a, severity: page}, exp_annotations: {summary: 8 on a in eu}}]\n  promql_expr_test:\n  - expr: x:double\n    eval_time: 3m\n    exp_samples: [{labels: 'x:double{i=\"a\"}', value: 8}]\n  - expr: ALERTS\n    eval_time: 2m\n    exp_samples: [{labels: 'ALERTS{alertname=\"XHigh\",alertstate=\"pending\",i=\"a\",severity=\"page\"}', value: 1}]\n";
        let path = write(dir.path(), "t.yml", test);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = run(&[path], &mut out, &mut err);
        assert_eq!(code, 0, "{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
        assert!(String::from_utf8_lossy(&out).ends_with("t.yml\n  SUCCESS\n\n"));
    }

    #[test]
    fn failures_and_evaluation_errors_are_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(dir.path(), "r.yml", RULES);
        write(dir.path(), "bad.yml", "groups:\n- name: b\n  rules:\n  - record: y\n    expr: a + on(x) b\n");
        let test = "rule_files: [r.yml, nothing*.yml]\ntests:\n- name: grp\n  interval: 1m\n  input_series:\n  - series: x{i=\"a\"}\n    values: 5\n  alert_rule_test:\n  - {eval_time: 1m, alertname: XHigh, exp_alerts: []}\n";
        let path = write(dir.path(), "t.yml", test);
        let mut err = Vec::new();
        let failures = test_file(&path, &mut err);
        assert!(String::from_utf8_lossy(&err).contains("WARNING: no file match pattern"), "{}", String::from_utf8_lossy(&err));
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].starts_with("    name: grp,\n    alertname: XHigh, time: 1m, \n        exp:[], \n        got:[\n"),
            "{}",
            failures[0]
        );
        let test = "rule_files: [bad.yml]\ntests:\n- interval: 1m\n  input_series:\n  - {series: 'a{x=\"1\",y=\"1\"}', values: '1'}\n  - {series: 'a{x=\"1\",y=\"2\"}', values: '1'}\n  - {series: 'b{x=\"1\",y=\"1\"}', values: '1'}\n  - {series: 'b{x=\"1\",y=\"2\"}', values: '1'}\n  promql_expr_test:\n  - {expr: y, eval_time: 1m, exp_samples: []}\n";
        let failures = test_file(&write(dir.path(), "t2.yml", test), &mut err);
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].starts_with("    rule: y, time: 0s, err: ") && failures[0].contains("many-to-many"), "{}", failures[0]);
    }

    #[test]
    fn conflicting_rule_output_is_a_rule_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        write(
            dir.path(),
            "r.yml",
            "groups:\n- name: g\n  rules:\n  - record: r\n    expr: vector(1)\n  - record: r\n    expr: vector(2)\n",
        );
        let test = "rule_files: [r.yml]\ntests:\n- promql_expr_test:\n  - {expr: r, eval_time: 0, exp_samples: [{value: 1, labels: r}]}\n";
        let failures = test_file(&write(dir.path(), "t.yml", test), &mut Vec::new());
        assert_eq!(failures, vec!["    rule: r, time: 0s, err: duplicate sample for timestamp".to_string()]);
    }

    /// The test data in tests/unittest/: the passing files pass, and the failing one fails with promtool's
    /// report (failing_test.stderr was written by promtool 2.42).
    #[test]
    fn test_data_passes_and_fails_as_with_promtool() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/unittest");
        let passing = [dir.join("alerts_test.yml"), dir.join("ordering_test.yml")];
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(&passing, &mut out, &mut err), 0, "{}{}", String::from_utf8_lossy(&out), String::from_utf8_lossy(&err));
        assert_eq!(String::from_utf8_lossy(&out).matches("  SUCCESS\n").count(), 2);
        let (mut out, mut err) = (Vec::new(), Vec::new());
        assert_eq!(run(&[dir.join("failing/failing_test.yml")], &mut out, &mut err), 1);
        let expected = std::fs::read_to_string(dir.join("failing/failing_test.stderr")).expect("golden report");
        assert_eq!(String::from_utf8_lossy(&err), expected);
        assert_eq!(String::from_utf8_lossy(&out).matches('\n').count(), 1 + 4 + 1, "a blank line per failure and per file");
    }

    #[test]
    fn duplicates_are_found_once() {
        let f = rules::load_text("groups:\n- name: g\n  rules:\n  - {record: a, expr: x}\n  - {record: a, expr: y}\n  - {record: a, expr: z}\n  - {alert: a, expr: z, labels: {s: x}}\n", "d.yml")
            .expect("valid");
        assert_eq!(duplicate_rules(&f), vec![("a".to_string(), vec![])]);
    }
}
