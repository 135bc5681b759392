//! Rule files in Prometheus's format: loading them (from `rule_files` globs, or the shipped rules
//! built into the binary), validating each expression with the PromQL engine's parser, and what
//! the store must keep for them (the selectors and how far back each looks).

use fleetwatch_common::config::{parse_yaml, ConfigError};
use fleetwatch_common::duration::PromDuration;
use fleetwatch_promql::SelectorNeed;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The shipped rules (`rules/*.yml`), built in for the embedded default config.
pub const SHIPPED: &[(&str, &str)] = &[("rules/host.yml", include_str!("../../rules/host.yml"))];

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    #[serde(default)]
    pub groups: Vec<RuleGroup>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleGroup {
    pub name: String,
    pub interval: Option<PromDuration>,
    #[serde(default)]
    pub limit: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub alert: Option<String>,
    pub record: Option<String>,
    pub expr: String,
    #[serde(rename = "for")]
    pub for_: Option<PromDuration>,
    pub keep_firing_for: Option<PromDuration>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
}

impl Rule {
    pub fn name(&self) -> &str {
        self.alert.as_deref().or(self.record.as_deref()).unwrap_or("")
    }
}

/// A loaded rule file with its parsed expressions.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    pub origin: String,
    pub file: RuleFile,
    pub exprs: Vec<Vec<promql_parser::parser::Expr>>,
}

/// All loaded rules.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub files: Vec<LoadedFile>,
}

impl RuleSet {
    /// The store's needs: every selector of every rule, keeping its range (with offsets and
    /// subqueries) plus the lookback window.
    pub fn selector_needs(&self, lookback_ms: i64) -> Vec<SelectorNeed> {
        let exprs = self.files.iter().flat_map(|f| f.exprs.iter().flatten());
        exprs.flat_map(|e| needs_of(e, lookback_ms)).collect()
    }

    pub fn rule_count(&self) -> usize {
        self.files.iter().flat_map(|f| &f.file.groups).map(|g| g.rules.len()).sum()
    }
}

/// One expression's selectors, each looking back its range plus the lookback window.
pub fn needs_of(expr: &promql_parser::parser::Expr, lookback_ms: i64) -> Vec<SelectorNeed> {
    let mut needs = fleetwatch_promql::selector_needs(expr, 0);
    for n in &mut needs {
        n.lookback_ms += lookback_ms;
    }
    needs
}

/// Loads every file matching the globs (relative ones against `base`); no match is not an error,
/// as in Prometheus.
pub fn load_globs(globs: &[String], base: &Path) -> Result<RuleSet, ConfigError> {
    let mut set = RuleSet::default();
    for pattern in globs {
        let full = crate::config::resolve(base, pattern).display().to_string();
        let paths = glob::glob(&full)
            .map_err(|e| ConfigError::Invalid { path: pattern.clone(), message: format!("invalid rule file glob: {e}") })?;
        let mut paths: Vec<PathBuf> = paths.flatten().collect();
        paths.sort();
        for p in paths {
            let text = std::fs::read_to_string(&p).map_err(|source| ConfigError::Read { path: p.display().to_string(), source })?;
            set.files.push(load_text(&text, &p.display().to_string())?);
        }
    }
    Ok(set)
}

/// The shipped rules, from the copies built into the binary.
pub fn load_shipped() -> Result<RuleSet, ConfigError> {
    let files = SHIPPED.iter().map(|(name, text)| load_text(text, name)).collect::<Result<_, _>>()?;
    Ok(RuleSet { files })
}

/// Parses and validates one rule file's text.
pub fn load_text(text: &str, origin: &str) -> Result<LoadedFile, ConfigError> {
    let file: RuleFile = parse_yaml(text, origin)?;
    let mut exprs = Vec::new();
    let mut seen_groups = std::collections::HashSet::new();
    for g in &file.groups {
        let invalid = |rule: Option<&Rule>, message: String| {
            let (line, what) = match rule {
                Some(r) => (line_of(text, r.name()), format!("group {:?}, rule {:?}", g.name, r.name())),
                None => (line_of(text, &g.name), format!("group {:?}", g.name)),
            };
            ConfigError::Parse { path: origin.to_string(), line, column: 1, message: format!("{what}: {message}") }
        };
        if g.name.is_empty() {
            return Err(invalid(None, "group name must not be empty".into()));
        }
        if !seen_groups.insert(g.name.clone()) {
            return Err(invalid(None, "repeated group name".into()));
        }
        let mut group_exprs = Vec::new();
        for r in &g.rules {
            check_rule(r).map_err(|m| invalid(Some(r), m))?;
            let expr = fleetwatch_promql::parse(&r.expr).map_err(|e| invalid(Some(r), format!("expr: {e}")))?;
            group_exprs.push(expr);
        }
        exprs.push(group_exprs);
    }
    Ok(LoadedFile { origin: origin.to_string(), file, exprs })
}

fn check_rule(r: &Rule) -> Result<(), String> {
    match (&r.alert, &r.record) {
        (Some(_), Some(_)) => return Err("only one of 'record' and 'alert' may be set".into()),
        (None, None) => return Err("one of 'record' or 'alert' must be set".into()),
        (None, Some(name)) => {
            if !fleetwatch_common::expfmt::is_valid_metric_name(name) {
                return Err(format!("invalid recording rule name: {name}"));
            }
            if r.for_.is_some() || r.keep_firing_for.is_some() || !r.annotations.is_empty() {
                return Err("invalid field 'for', 'keep_firing_for' or 'annotations' in recording rule".into());
            }
        }
        (Some(_), None) => {}
    }
    if r.expr.trim().is_empty() {
        return Err("field 'expr' must be set in rule".into());
    }
    for name in r.labels.keys() {
        if !fleetwatch_common::expfmt::is_valid_label_name(name) {
            return Err(format!("invalid label name: {name}"));
        }
    }
    Ok(())
}

/// The first line mentioning `needle` (a rule or group name), for error messages.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| !needle.is_empty() && l.contains(needle)).map(|i| i + 1).unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_rules_load() {
        let set = load_shipped().unwrap();
        assert!(set.rule_count() > 5);
        assert!(!set.selector_needs(300_000).is_empty());
    }

    #[test]
    fn errors_name_file_line_group_and_rule() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: Bad\n        expr: rate(x[5m]\n";
        let e = load_text(text, "r.yml").unwrap_err().to_string();
        assert!(e.starts_with("r.yml:4:"), "{e}");
        assert!(e.contains("group \"g\", rule \"Bad\""), "{e}");
        let e = load_text("groups:\n  - name: g\n    rules:\n      - alert: A\n        exp: up\n", "r.yml").unwrap_err().to_string();
        assert!(e.contains("r.yml:5") && e.contains("exp"), "{e}");
    }

    #[test]
    fn needs_cover_ranges_and_offsets() {
        let set = RuleSet {
            files: vec![load_text("groups:\n- name: g\n  rules:\n  - record: r\n    expr: rate(a[10m] offset 5m)\n", "t").unwrap()],
        };
        let needs = set.selector_needs(300_000);
        assert_eq!(needs.len(), 1);
        assert!(needs[0].lookback_ms >= 15 * 60_000, "{:?}", needs[0].lookback_ms);
    }
}
