//! Engine behaviour promtool files cannot show: errors (Prometheus's messages), rejected constructs, range
//! queries, matrix and string results, and what a query needs from the store.

use fleetwatch_promql::{
    parse, selector_needs, selector_ranges, stale_nan, Engine, EvalError, Labels, MemStorage, ParseError, Sample, Unsupported, Value,
};

fn store(series: &[(&str, &[(i64, f64)])]) -> MemStorage {
    let mut st = MemStorage::new();
    for (desc, samples) in series {
        let (l, _) = fleetwatch_promql::testfile::parse_series_desc(desc).expect("series parses");
        for (t, v) in samples.iter() {
            st.add(l.clone(), Sample { t: *t, v: *v });
        }
    }
    st
}

fn eval(st: &MemStorage, q: &str, t: i64) -> Result<Value, EvalError> {
    Engine::default().instant(st, &parse(q).unwrap_or_else(|e| panic!("{q}: {e}")), t)
}

fn err(st: &MemStorage, q: &str) -> String {
    match eval(st, q, 60_000) {
        Ok(v) => panic!("{q}: expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

fn vector(v: Value) -> Vec<(String, f64)> {
    match v {
        Value::Vector(v) => {
            let mut out: Vec<(String, f64)> = v.into_iter().map(|(l, x)| (l.to_string(), x)).collect();
            out.sort_by(|a, b| a.0.cmp(&b.0));
            out
        }
        other => panic!("expected a vector, got {other:?}"),
    }
}

fn sample_store() -> MemStorage {
    store(&[
        ("a{job=\"x\", inst=\"1\"}", &[(0, 1.0), (60_000, 2.0)]),
        ("a{job=\"x\", inst=\"2\"}", &[(0, 3.0), (60_000, 4.0)]),
        ("b{job=\"x\", inst=\"1\"}", &[(0, 10.0), (60_000, 20.0)]),
        ("b{job=\"x\", inst=\"3\"}", &[(0, 30.0), (60_000, 40.0)]),
        ("c{job=\"y\"}", &[(60_000, 5.0)]),
    ])
}

#[test]
fn duplicate_labelsets_are_errors() {
    let st = sample_store();
    assert_eq!(err(&st, "-{job=\"x\", inst=\"1\"}"), "vector cannot contain metrics with the same labelset");
    assert_eq!(err(&st, "rate({job=\"x\", inst=\"1\"}[5m])"), "vector cannot contain metrics with the same labelset");
    assert_eq!(err(&st, "{inst=\"1\"} * 2"), "vector cannot contain metrics with the same labelset");
    assert_eq!(err(&st, "label_replace(a, \"inst\", \"same\", \"inst\", \".*\")"), "vector cannot contain metrics with the same labelset");
    // Comparisons keep the name, so nothing collides.
    assert_eq!(vector(eval(&st, "{inst=\"1\"} > 0", 60_000).unwrap()).len(), 2);
}

#[test]
fn matching_errors_use_prometheus_messages() {
    let st = sample_store();
    assert_eq!(
        err(&st, "c + on(job) a"),
        "found duplicate series for the match group {job=\"x\"} on the right hand-side of the operation: \
         [{__name__=\"a\", inst=\"2\", job=\"x\"}, {__name__=\"a\", inst=\"1\", job=\"x\"}];many-to-many matching not allowed: \
         matching labels must be unique on one side"
    );
    assert!(err(&st, "a + on(job) group_right c").contains("on the left hand-side"));
    assert_eq!(
        err(&st, "a * on(job) group_left b"),
        "found duplicate series for the match group {job=\"x\"} on the right hand-side of the operation: \
         [{__name__=\"b\", inst=\"3\", job=\"x\"}, {__name__=\"b\", inst=\"1\", job=\"x\"}];many-to-many matching not allowed: \
         matching labels must be unique on one side"
    );
    let st2 = store(&[("a{job=\"x\", inst=\"1\"}", &[(0, 1.0)]), ("a{job=\"x\", inst=\"2\"}", &[(0, 2.0)]), ("d{job=\"x\"}", &[(0, 1.0)])]);
    assert_eq!(
        eval(&st2, "a * on(job) d", 0).unwrap_err(),
        EvalError::ManyToOneNotExplicit,
        "one-to-one matching of two series against one"
    );
    assert_eq!(eval(&st2, "a * on(job) group_left(inst) d", 0).unwrap_err(), EvalError::GroupingNotUnique);
    assert_eq!(vector(eval(&st2, "a * on(job) group_left d", 0).unwrap()).len(), 2);
}

#[test]
fn invalid_arguments() {
    let st = sample_store();
    assert_eq!(err(&st, "label_replace(a, \"x\", \"y\", \"job\", \"(\")"), "invalid regular expression in label_replace(): (");
    assert_eq!(err(&st, "label_replace(a, \"1x\", \"y\", \"job\", \".*\")"), "invalid destination label name in label_replace(): 1x");
    assert_eq!(err(&st, "label_join(a, \"x\", \"-\", \"not-valid\")"), "invalid source label name in label_join(): not-valid");
    assert_eq!(err(&st, "count_values(\"not valid\", a)"), "invalid label name \"not valid\"");
    assert_eq!(err(&st, "topk(NaN, a)"), "Scalar value NaN overflows int64");
    // Checked even when there is nothing to relabel.
    assert!(eval(&st, "label_replace(nonexistent, \"x\", \"y\", \"job\", \"(\")", 0).is_err());
}

#[test]
fn unsupported_constructs_are_rejected() {
    let cases = [
        ("sin(a)", Unsupported::Function("sin".into())),
        ("day_of_year(a)", Unsupported::Function("day_of_year".into())),
        ("histogram_count(a)", Unsupported::Function("histogram_count".into())),
        ("limitk(1, a)", Unsupported::Aggregation("limitk".into())),
        ("a atan2 b", Unsupported::Operator("atan2".into())),
    ];
    for (q, want) in cases {
        match parse(q) {
            Err(ParseError::Unsupported(u)) => assert_eq!(u, want, "{q}"),
            other => panic!("{q}: expected {want:?}, got {other:?}"),
        }
    }
    assert!(matches!(parse("a + fill(0) b"), Err(ParseError::Unsupported(Unsupported::FillModifier(_))) | Err(ParseError::Syntax(_))));
    assert!(matches!(parse("{a=\"1\" or b=\"2\"}"), Err(ParseError::Unsupported(Unsupported::OrMatchers(_))) | Err(ParseError::Syntax(_))));
    assert!(matches!(parse("sum(a"), Err(ParseError::Syntax(_))));
    // The engine refuses them too when handed an unchecked AST.
    let raw = promql_parser::parser::parse("sin(vector(1))").unwrap();
    assert!(matches!(Engine::default().instant(&MemStorage::new(), &raw, 0), Err(EvalError::Unsupported(_))));
}

#[test]
fn value_kinds() {
    let st = sample_store();
    assert_eq!(eval(&st, "1 + 1", 0).unwrap(), Value::Scalar(2.0));
    assert_eq!(eval(&st, "\"hello\"", 0).unwrap(), Value::String("hello".into()));
    match eval(&st, "a{inst=\"1\"}[1m]", 60_000).unwrap() {
        Value::Matrix(m) => {
            assert_eq!(m.len(), 1);
            assert_eq!(m[0].0.to_string(), "a{inst=\"1\", job=\"x\"}");
            assert_eq!(m[0].1, vec![Sample { t: 0, v: 1.0 }, Sample { t: 60_000, v: 2.0 }]);
        }
        other => panic!("{other:?}"),
    }
    match eval(&st, "a{inst=\"1\"}[1m:30s]", 60_000).unwrap() {
        Value::Matrix(m) => assert_eq!(m[0].1, vec![Sample { t: 0, v: 1.0 }, Sample { t: 30_000, v: 1.0 }, Sample { t: 60_000, v: 2.0 }]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn range_queries() {
    let st = store(&[
        ("x{i=\"1\"}", &[(0, 1.0), (60_000, 2.0), (120_000, stale_nan()), (180_000, 4.0)]),
        ("y{i=\"1\"}", &[(0, 0.0), (60_000, 60.0), (120_000, 120.0), (180_000, 180.0)]),
    ]);
    let e = Engine::default();
    let r = e.range(&st, &parse("x").unwrap(), 0, 180_000, 60_000).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].1.iter().map(|s| (s.t, s.v)).collect::<Vec<_>>(), vec![(0, 1.0), (60_000, 2.0), (180_000, 4.0)]);
    let r = e.range(&st, &parse("rate(y[1m])").unwrap(), 60_000, 180_000, 60_000).unwrap();
    assert_eq!(r[0].0.to_string(), "{i=\"1\"}");
    assert_eq!(r[0].1.iter().map(|s| s.v).collect::<Vec<_>>(), vec![1.0, 1.0, 1.0]);
    let r = e.range(&st, &parse("time()").unwrap(), 0, 120_000, 60_000).unwrap();
    assert_eq!(r, vec![(Labels::empty(), vec![Sample { t: 0, v: 0.0 }, Sample { t: 60_000, v: 60.0 }, Sample { t: 120_000, v: 120.0 }])]);
    // @ start() and end() refer to the range's ends.
    let r = e.range(&st, &parse("y @ end()").unwrap(), 0, 120_000, 60_000).unwrap();
    assert!(r[0].1.iter().all(|s| s.v == 120.0));
    let r = e.range(&st, &parse("y @ start()").unwrap(), 60_000, 120_000, 60_000).unwrap();
    assert!(r[0].1.iter().all(|s| s.v == 60.0));
    // A range query of a matrix is an error.
    assert_eq!(
        e.range(&st, &parse("y[1m]").unwrap(), 0, 60_000, 60_000).unwrap_err().to_string(),
        "invalid expression type \"range vector\" for range query, must be Scalar or instant Vector"
    );
    assert!(e.range(&st, &parse("y").unwrap(), 0, 60_000, 0).is_err());
    // Subqueries inside range queries see every step.
    let r = e.range(&st, &parse("max_over_time(y[2m:1m])").unwrap(), 60_000, 180_000, 60_000).unwrap();
    assert_eq!(r[0].1.iter().map(|s| s.v).collect::<Vec<_>>(), vec![60.0, 120.0, 180.0]);
}

#[test]
fn selector_needs_cover_ranges_offsets_and_subqueries() {
    let e = parse("rate(a[5m] offset 1m) + on() group_left max_over_time(b[10m:1m] offset 2m) + c + d offset -1m").unwrap();
    let needs = selector_needs(&e, 300_000);
    let got: Vec<(String, i64, i64)> =
        needs.iter().map(|n| (n.matchers.iter().map(|m| m.to_string()).collect(), n.lookback_ms, n.lookahead_ms)).collect();
    assert_eq!(
        got,
        vec![
            ("__name__=\"a\"".to_string(), 360_000, 0),
            ("__name__=\"b\"".to_string(), 1_020_000, 0),
            ("__name__=\"c\"".to_string(), 300_000, 0),
            ("__name__=\"d\"".to_string(), 240_000, 60_000),
        ]
    );
    assert!(needs.iter().all(|n| !n.pinned));
    let e = parse("x @ 100").unwrap();
    assert!(selector_needs(&e, 300_000)[0].pinned);
    let r = selector_ranges(&e, 1_000_000, 1_000_000, 300_000);
    assert_eq!((r[0].mint, r[0].maxt), (-200_000, 100_000));
}

#[test]
fn go_regex_semantics_in_selectors() {
    let st = store(&[("m{v=\"٣\"}", &[(0, 1.0)]), ("m{v=\"3\"}", &[(0, 2.0)])]);
    // \d is ASCII-only in Go (and so in Prometheus).
    assert_eq!(vector(eval(&st, "m{v=~\"\\\\d\"}", 0).unwrap()), vec![("m{v=\"3\"}".to_string(), 2.0)]);
    assert_eq!(vector(eval(&st, "m{v!~\"\\\\d\"}", 0).unwrap()), vec![("m{v=\"٣\"}".to_string(), 1.0)]);
}

#[test]
fn lookback_is_configurable() {
    let st = store(&[("m", &[(0, 1.0)])]);
    let short = Engine { lookback_ms: 60_000, ..Engine::default() };
    let e = parse("m").unwrap();
    assert_eq!(vector(short.instant(&st, &e, 60_000).unwrap()).len(), 1);
    assert_eq!(vector(short.instant(&st, &e, 60_001).unwrap()).len(), 0);
    assert_eq!(vector(Engine::default().instant(&st, &e, 300_000).unwrap()).len(), 1);
}

#[test]
fn collisions_across_steps_are_errors_in_range_evaluations() {
    // Two series that only differ by name and exist at different times.
    let st = store(&[("a{job=\"x\"}", &[(0, 1.0), (60_000, 2.0)]), ("b{job=\"x\"}", &[(600_000, 1.0), (660_000, 2.0)])]);
    let e = Engine::default();
    // Each instant evaluation sees one of them...
    assert_eq!(vector(eval(&st, "rate({job=\"x\"}[1m])", 660_000).unwrap()).len(), 1);
    // ...but a range evaluation produces both series, as Prometheus reports.
    assert_eq!(e.range(&st, &parse("rate({job=\"x\"}[1m])").unwrap(), 60_000, 660_000, 60_000).unwrap_err(), EvalError::DuplicateLabelset);
    assert_eq!(eval(&st, "max_over_time(rate({job=\"x\"}[1m])[15m:1m])", 660_000).unwrap_err(), EvalError::DuplicateLabelset);
    assert_eq!(eval(&st, "max_over_time((-{job=\"x\"})[15m:1m])", 660_000).unwrap_err(), EvalError::DuplicateLabelset);
    // Keeping the name keeps them apart.
    assert_eq!(vector(eval(&st, "last_over_time(last_over_time({job=\"x\"}[1m])[15m:1m])", 660_000).unwrap()).len(), 2);
}

#[test]
fn step_invariant_parts_are_evaluated_once_per_range_evaluation() {
    let st = store(&[
        ("k", &[(0, 1.0), (60_000, 1.0), (120_000, 2.0), (180_000, 3.0)]),
        ("y{i=\"1\"}", &[(0, 1.0)]),
        ("y{i=\"2\"}", &[(0, 2.0)]),
        ("y{i=\"3\"}", &[(0, 3.0)]),
    ]);
    let e = Engine::default();
    // topk's operand is fixed by @, so Prometheus 2.42 evaluates it (and its k) at the first step only.
    let r = e.range(&st, &parse("count(topk(scalar(k), y @ 0))").unwrap(), 60_000, 180_000, 60_000).unwrap();
    assert_eq!(r[0].1.iter().map(|s| s.v).collect::<Vec<_>>(), vec![1.0, 1.0, 1.0]);
    let r = e.range(&st, &parse("count(topk(scalar(k), y))").unwrap(), 60_000, 180_000, 60_000).unwrap();
    assert_eq!(r[0].1.iter().map(|s| s.v).collect::<Vec<_>>(), vec![1.0, 2.0, 3.0]);
}

#[test]
fn extreme_queries_do_not_panic() {
    let st = sample_store();
    let e = Engine { max_steps: 10_000, ..Engine::default() };
    let queries = [
        "a offset 100000000y",
        "a offset -100000000y",
        "a @ 9000000000000000",
        "a @ -9000000000000000 offset 100000000y",
        "rate(a[100000000y])",
        "max_over_time(a[100000000y:1ms])",
        "max_over_time(a[1h:1ms])",
        "max_over_time(max_over_time(a[1h:1s])[1h:1s])",
        "count_over_time(a[5m:1m] @ 9000000000000000 offset -100000000y)",
        "topk(1e300, a)",
        "topk(-Inf, a)",
        "quantile(NaN, a)",
        "round(a, 0)",
        "round(a, NaN)",
        "clamp(a, NaN, NaN)",
        "histogram_quantile(NaN, a)",
        "label_replace(a, \"x\", \"$999999999999999999999\", \"job\", \"(.*)\")",
        "label_replace(a, \"x\", \"${\", \"job\", \"(.*)\")",
        "label_join(a, \"x\", \"\")",
        "hour(a * 1e300) + minute(-a * Inf) + year(a / 0) + days_in_month(a * NaN)",
        "predict_linear(a[5m], Inf)",
        "time() * Inf",
        "1 / 0 % 0 ^ -Inf",
        "vector(NaN) == bool NaN",
        "timestamp(a @ 9000000000000000 offset -100000000y)",
        "absent_over_time(a[1ms])",
        "sum_over_time(a[1ms] offset -1ms)",
    ];
    for q in queries {
        let expr = parse(q).unwrap_or_else(|err| panic!("{q}: {err}"));
        let _ = e.instant(&st, &expr, 60_000);
        let _ = e.range(&st, &expr, -60_000, 120_000, 30_000);
        let _ = e.range(&st, &expr, i64::MIN / 2, i64::MIN / 2 + 1, 1);
    }
}
