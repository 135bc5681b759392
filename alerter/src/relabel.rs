//! Prometheus relabeling: the `relabel_configs` / `metric_relabel_configs` entries (actions
//! replace, keep, drop, hashmod, labelmap, labeldrop, labelkeep, lowercase, uppercase, keepequal,
//! dropequal) and applying a list of them to a label set, with Prometheus's defaults and semantics.

use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer};

/// A label set being relabeled: `(name, value)` pairs, names unique, any order.
pub type LabelPairs = Vec<(String, String)>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    #[serde(rename = "hashmod")]
    HashMod,
    #[serde(rename = "labelmap")]
    LabelMap,
    #[serde(rename = "labeldrop")]
    LabelDrop,
    #[serde(rename = "labelkeep")]
    LabelKeep,
    Lowercase,
    Uppercase,
    #[serde(rename = "keepequal")]
    KeepEqual,
    #[serde(rename = "dropequal")]
    DropEqual,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, try_from = "RawRelabel")]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub regex: AnchoredRegex,
    pub modulus: u64,
    pub target_label: String,
    pub replacement: String,
    pub action: Action,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabel {
    #[serde(default)]
    source_labels: Vec<String>,
    separator: Option<String>,
    regex: Option<AnchoredRegex>,
    modulus: Option<u64>,
    target_label: Option<String>,
    replacement: Option<String>,
    #[serde(default)]
    action: Action,
}

impl TryFrom<RawRelabel> for RelabelConfig {
    type Error = String;
    fn try_from(r: RawRelabel) -> Result<Self, String> {
        let c = RelabelConfig {
            source_labels: r.source_labels,
            separator: r.separator.unwrap_or_else(|| ";".into()),
            regex: match r.regex {
                Some(re) => re,
                None => AnchoredRegex::new("(.*)").map_err(|e| e.to_string())?,
            },
            modulus: r.modulus.unwrap_or(0),
            target_label: r.target_label.unwrap_or_default(),
            replacement: r.replacement.unwrap_or_else(|| "$1".into()),
            action: r.action,
        };
        c.validate()?;
        Ok(c)
    }
}

impl RelabelConfig {
    /// Prometheus's checks for fields each action requires or forbids.
    fn validate(&self) -> Result<(), String> {
        use Action::*;
        let needs_target = matches!(self.action, Replace | HashMod | Lowercase | Uppercase | KeepEqual | DropEqual);
        if needs_target && self.target_label.is_empty() {
            return Err(format!("relabel configuration for {:?} action requires 'target_label' value", self.action_name()));
        }
        if self.action == HashMod && self.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".into());
        }
        if matches!(self.action, Lowercase | Uppercase | KeepEqual | DropEqual | HashMod)
            && !fleetwatch_common::expfmt::is_valid_label_name(&self.target_label)
        {
            return Err(format!("{:?} is invalid 'target_label' for {} action", self.target_label, self.action_name()));
        }
        if self.action == Replace && !self.target_label.contains('$') && !fleetwatch_common::expfmt::is_valid_label_name(&self.target_label)
        {
            return Err(format!("{:?} is invalid 'target_label' for replace action", self.target_label));
        }
        if matches!(self.action, LabelDrop | LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != ";"
                || self.replacement != "$1")
        {
            return Err(format!("{} action requires only 'regex', and no other fields", self.action_name()));
        }
        for name in &self.source_labels {
            if !fleetwatch_common::expfmt::is_valid_label_name(name) {
                return Err(format!("{name:?} is not a valid label name in source_labels"));
            }
        }
        Ok(())
    }

    fn action_name(&self) -> &'static str {
        match self.action {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
        }
    }
}

/// A relabel regex, fully anchored as Prometheus anchors them (`^(?:re)$`).
#[derive(Debug, Clone)]
pub struct AnchoredRegex {
    pub regex: regex::Regex,
    pub source: String,
}

impl AnchoredRegex {
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        Ok(AnchoredRegex { regex: regex::Regex::new(&format!("^(?s:{source})$"))?, source: source.to_string() })
    }
}

impl<'de> Deserialize<'de> for AnchoredRegex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        AnchoredRegex::new(&s).map_err(|e| serde::de::Error::custom(format!("invalid regex {s:?}: {e}")))
    }
}

fn get<'a>(labels: &'a LabelPairs, name: &str) -> &'a str {
    labels.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).unwrap_or("")
}

/// Sets a label; an empty value removes it, as in Prometheus.
pub fn set(labels: &mut LabelPairs, name: &str, value: String) {
    match labels.iter().position(|(n, _)| n == name) {
        Some(i) if value.is_empty() => {
            labels.swap_remove(i);
        }
        Some(i) => labels[i].1 = value,
        None if value.is_empty() => {}
        None => labels.push((name.to_string(), value)),
    }
}

/// Applies the configs in order; false when the label set is dropped.
pub fn relabel(labels: &mut LabelPairs, configs: &[RelabelConfig]) -> bool {
    configs.iter().all(|c| apply(labels, c))
}

fn apply(labels: &mut LabelPairs, c: &RelabelConfig) -> bool {
    let joined = || c.source_labels.iter().map(|n| get(labels, n)).collect::<Vec<_>>().join(&c.separator);
    let re = &c.regex.regex;
    match c.action {
        Action::Keep => return re.is_match(&joined()),
        Action::Drop => return !re.is_match(&joined()),
        Action::KeepEqual => return joined() == get(labels, &c.target_label),
        Action::DropEqual => return joined() != get(labels, &c.target_label),
        Action::Replace => replace(labels, c, &joined()),
        Action::Lowercase => {
            let v = joined().to_lowercase();
            set(labels, &c.target_label, v);
        }
        Action::Uppercase => {
            let v = joined().to_uppercase();
            set(labels, &c.target_label, v);
        }
        Action::HashMod => {
            let digest = Md5::digest(joined().as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&digest[8..]);
            set(labels, &c.target_label, (u64::from_be_bytes(tail) % c.modulus).to_string());
        }
        Action::LabelMap => {
            let mapped: Vec<(String, String)> =
                labels.iter().filter_map(|(n, v)| re.captures(n).map(|caps| (expand(&caps, &c.replacement), v.clone()))).collect();
            for (n, v) in mapped {
                set(labels, &n, v);
            }
        }
        Action::LabelDrop => labels.retain(|(n, _)| !re.is_match(n)),
        Action::LabelKeep => labels.retain(|(n, _)| re.is_match(n)),
    }
    true
}

fn replace(labels: &mut LabelPairs, c: &RelabelConfig, value: &str) {
    let Some(caps) = c.regex.regex.captures(value) else { return };
    let target = expand(&caps, &c.target_label);
    if !fleetwatch_common::expfmt::is_valid_label_name(&target) {
        return;
    }
    let result = expand(&caps, &c.replacement);
    set(labels, &target, result);
}

/// Go's `Regexp.Expand`: `$1`, `${1}`, `$name`, `${name}`, `$$`; unknown groups expand to "".
fn expand(caps: &regex::Captures, template: &str) -> String {
    let mut out = String::new();
    caps.expand(template, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(yaml: &str) -> Vec<RelabelConfig> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> LabelPairs {
        pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    fn sorted(mut l: LabelPairs) -> LabelPairs {
        l.sort();
        l
    }

    #[test]
    fn replace_with_defaults_copies_the_joined_value() {
        let c = configs("- source_labels: [a, b]\n  target_label: c\n");
        let mut l = labels(&[("a", "x"), ("b", "y")]);
        assert!(relabel(&mut l, &c));
        assert_eq!(get(&l, "c"), "x;y");
    }

    #[test]
    fn replace_uses_groups_and_deletes_on_empty() {
        let c = configs("- source_labels: [__address__]\n  regex: '([^:]+):\\d+'\n  target_label: instance\n  replacement: '${1}'\n");
        let mut l = labels(&[("__address__", "web1:9100")]);
        relabel(&mut l, &c);
        assert_eq!(get(&l, "instance"), "web1");
        // No match: nothing changes.
        let mut l = labels(&[("__address__", "web1")]);
        relabel(&mut l, &c);
        assert_eq!(get(&l, "instance"), "");
        // Empty result removes the label.
        let c = configs("- source_labels: [x]\n  target_label: a\n");
        let mut l = labels(&[("a", "1")]);
        relabel(&mut l, &c);
        assert!(l.is_empty());
    }

    #[test]
    fn regex_is_anchored() {
        let c = configs("- source_labels: [a]\n  regex: 'b'\n  action: keep\n");
        assert!(!relabel(&mut labels(&[("a", "abc")]), &c));
        assert!(relabel(&mut labels(&[("a", "b")]), &c));
    }

    #[test]
    fn keep_and_drop() {
        let keep = configs("- source_labels: [env]\n  regex: prod|staging\n  action: keep\n");
        assert!(relabel(&mut labels(&[("env", "prod")]), &keep));
        assert!(!relabel(&mut labels(&[("env", "dev")]), &keep));
        assert!(!relabel(&mut labels(&[]), &keep));
        let drop = configs("- source_labels: [__name__]\n  regex: 'go_.*'\n  action: drop\n");
        assert!(!relabel(&mut labels(&[("__name__", "go_goroutines")]), &drop));
        assert!(relabel(&mut labels(&[("__name__", "up")]), &drop));
    }

    #[test]
    fn hashmod_matches_prometheus() {
        // md5("web1:9100") = ... ; the value is the big-endian u64 of bytes 8..16, mod 10.
        let c = configs("- source_labels: [__address__]\n  modulus: 10\n  target_label: shard\n  action: hashmod\n");
        let mut l = labels(&[("__address__", "web1:9100")]);
        relabel(&mut l, &c);
        let digest = Md5::digest(b"web1:9100");
        let expected = u64::from_be_bytes(digest[8..].try_into().unwrap()) % 10;
        assert_eq!(get(&l, "shard"), expected.to_string());
    }

    #[test]
    fn labelmap_labeldrop_labelkeep() {
        let c = configs("- regex: '__meta_(.+)'\n  action: labelmap\n- regex: '__meta_.*'\n  action: labeldrop\n");
        let mut l = labels(&[("__meta_team", "a"), ("job", "n")]);
        relabel(&mut l, &c);
        assert_eq!(sorted(l), labels(&[("job", "n"), ("team", "a")]));
        let c = configs("- regex: 'job|instance'\n  action: labelkeep\n");
        let mut l = labels(&[("job", "n"), ("instance", "i"), ("x", "y")]);
        relabel(&mut l, &c);
        assert_eq!(sorted(l), labels(&[("instance", "i"), ("job", "n")]));
    }

    #[test]
    fn case_and_equality_actions() {
        let c = configs("- source_labels: [a]\n  target_label: b\n  action: lowercase\n");
        let mut l = labels(&[("a", "AbC")]);
        relabel(&mut l, &c);
        assert_eq!(get(&l, "b"), "abc");
        let c = configs("- source_labels: [a]\n  target_label: b\n  action: keepequal\n");
        assert!(relabel(&mut labels(&[("a", "1"), ("b", "1")]), &c));
        assert!(!relabel(&mut labels(&[("a", "1"), ("b", "2")]), &c));
    }

    #[test]
    fn invalid_configs_are_rejected() {
        for (yaml, want) in [
            ("- action: replace\n  source_labels: [a]\n", "requires 'target_label'"),
            ("- action: hashmod\n  source_labels: [a]\n  target_label: b\n", "non-zero modulus"),
            ("- action: labeldrop\n  regex: a\n  source_labels: [b]\n", "requires only 'regex'"),
            ("- action: explode\n", "unknown variant"),
            ("- regex: '('\n  target_label: a\n", "invalid regex"),
            ("- target_label: a\n  sourcelabels: [b]\n", "unknown field"),
        ] {
            let err = serde_yaml_ng::from_str::<Vec<RelabelConfig>>(yaml).unwrap_err().to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn target_label_may_use_groups() {
        let c = configs("- source_labels: [a]\n  regex: '(.*)'\n  target_label: 'x_${1}'\n  replacement: v\n");
        let mut l = labels(&[("a", "b")]);
        relabel(&mut l, &c);
        assert_eq!(get(&l, "x_b"), "v");
    }
}
