//! `textfile`: metrics from `*.prom` files in `--collector.textfile.directory`, as node_exporter's
//! textfile collector. Files are written elsewhere and renamed in; a malformed file sets
//! `node_textfile_scrape_error`, is logged and skipped, and the other files are still exported.

use super::{CollectError, Collector, Context};
use fleetwatch_common::expfmt::{parse_text, Family, MetricType, ParsedFamily};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

pub struct Textfile {
    dir: Option<PathBuf>,
}

pub fn build(ctx: &Context) -> Result<Box<dyn Collector>, CollectError> {
    Ok(Box::new(Textfile { dir: ctx.config.textfile.directory.clone() }))
}

/// Families gathered across files, merged by name.
#[derive(Default)]
struct Merged {
    families: BTreeMap<String, (MetricType, Family)>,
    series: HashSet<String>,
}

impl Merged {
    /// Adds one file's families, or none of them if any conflicts with what is already there.
    fn add_file(&mut self, file: &Path, parsed: Vec<ParsedFamily>) -> Result<(), String> {
        let mut staged = Vec::new();
        let mut new_series = HashSet::new();
        for pf in parsed {
            if pf.samples.iter().any(|s| s.timestamp_ms.is_some()) {
                return Err("textfile contains unsupported client-side timestamps".to_string());
            }
            if let Some((kind, _)) = self.families.get(&pf.name) {
                if *kind != pf.kind {
                    return Err(format!(
                        "metric {} has type {} here but {} in another file",
                        pf.name,
                        pf.kind.text_name(),
                        kind.text_name()
                    ));
                }
            }
            let help = pf.help.clone().unwrap_or_else(|| format!("Metric read from {}", file.display()));
            let mut fam = Family::new(pf.name.clone(), help, pf.kind);
            for s in &pf.samples {
                let key = series_key(&s.name, &s.labels);
                if self.series.contains(&key) || !new_series.insert(key) {
                    return Err(format!("metric {} was already collected with the same labels", s.name));
                }
                let labels: Vec<(&str, &str)> = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                let suffix = &s.name[pf.name.len().min(s.name.len())..];
                fam.add_with_suffix(suffix, &labels, s.value);
            }
            staged.push((pf.kind, fam));
        }
        self.series.extend(new_series);
        for (kind, fam) in staged {
            match self.families.get_mut(fam.name()) {
                Some((_, existing)) => existing.absorb(fam),
                None => {
                    self.families.insert(fam.name().to_string(), (kind, fam));
                }
            }
        }
        Ok(())
    }
}

fn series_key(name: &str, labels: &[(String, String)]) -> String {
    let mut sorted: Vec<_> = labels.iter().collect();
    sorted.sort();
    let mut key = name.to_string();
    for (k, v) in sorted {
        key.push('\0');
        key.push_str(k);
        key.push('\0');
        key.push_str(v);
    }
    key
}

/// Reads and parses one file, returning its modification time and families.
fn read_file(path: &Path) -> Result<(f64, Vec<ParsedFamily>), String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    let mtime = meta.modified().map_err(|e| e.to_string())?.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let parsed = parse_text(&text).map_err(|e| e.to_string())?;
    Ok((mtime, parsed))
}

impl Textfile {
    fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
        let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot read directory {}: {e}", dir.display()))?;
        let mut files: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "prom") && p.is_file()).collect();
        files.sort();
        Ok(files)
    }
}

impl Collector for Textfile {
    fn collect(&self, out: &mut Vec<Family>) -> Result<(), CollectError> {
        let mut error = false;
        let mut merged = Merged::default();
        let mut mtimes = Family::gauge("node_textfile_mtime_seconds", "Unixtime mtime of textfiles successfully read.");
        let files = match &self.dir {
            Some(dir) => Self::files(dir).unwrap_or_else(|e| {
                tracing::error!(err = %e, "textfile collector");
                error = true;
                vec![]
            }),
            None => vec![],
        };
        for path in files {
            let result = read_file(&path).and_then(|(mtime, parsed)| merged.add_file(&path, parsed).map(|_| mtime));
            match result {
                Ok(mtime) => {
                    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    mtimes.add(&[("file", &name)], mtime);
                }
                Err(e) => {
                    tracing::error!(file = %path.display(), err = %e, "skipping malformed textfile");
                    error = true;
                }
            }
        }
        out.extend(merged.families.into_values().map(|(_, f)| f));
        out.push(mtimes);
        let mut err = Family::gauge("node_textfile_scrape_error", "1 if there was an error opening or reading a file, 0 otherwise");
        err.add(&[], if error { 1.0 } else { 0.0 });
        out.push(err);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleetwatch_common::expfmt::{encode, Format};

    fn run(dir: &Path) -> String {
        let t = Textfile { dir: Some(dir.to_path_buf()) };
        let mut fams = Vec::new();
        t.collect(&mut fams).unwrap();
        encode(&fams, Format::Text)
    }

    #[test]
    fn exports_good_files_and_flags_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.prom"),
            "# HELP backup_ok Last backup worked.\n# TYPE backup_ok gauge\nbackup_ok{job=\"db\"} 1\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("b.prom"), "# TYPE backup_ok gauge\nbackup_ok{job=\"web\"} 0\nbatch_runs_total 3\n").unwrap();
        std::fs::write(dir.path().join("conflict.prom"), "# TYPE backup_ok counter\nbackup_ok{job=\"mail\"} 0\nconflict_only 1\n").unwrap();
        std::fs::write(dir.path().join("broken.prom"), "this is { not metrics\n").unwrap();
        std::fs::write(dir.path().join("dup.prom"), "backup_ok{job=\"db\"} 5\n").unwrap();
        std::fs::write(dir.path().join("ts.prom"), "stamped 1 1700000000000\n").unwrap();
        std::fs::write(dir.path().join("ignored.txt"), "nope 1\n").unwrap();
        let out = run(dir.path());
        assert!(
            out.contains(
                "# HELP backup_ok Last backup worked.\n# TYPE backup_ok gauge\nbackup_ok{job=\"db\"} 1\nbackup_ok{job=\"web\"} 0\n"
            ),
            "{out}"
        );
        assert!(out.contains("batch_runs_total 3\n"), "{out}");
        assert!(out.contains("node_textfile_mtime_seconds{file=\"a.prom\"}"), "{out}");
        assert!(out.contains("node_textfile_mtime_seconds{file=\"b.prom\"}"), "{out}");
        for bad in ["broken.prom", "dup.prom", "ts.prom", "conflict", "mail", "ignored.txt", "nope", "stamped"] {
            assert!(!out.contains(bad), "{bad} leaked into {out}");
        }
        assert!(out.contains("node_textfile_scrape_error 1\n"), "{out}");
    }

    #[test]
    fn clean_directory_reports_no_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("h.prom"),
            "# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n",
        )
        .unwrap();
        let out = run(dir.path());
        assert!(out.contains("# TYPE lat histogram\nlat_bucket{le=\"1\"} 1\nlat_bucket{le=\"+Inf\"} 2\nlat_sum 3\nlat_count 2\n"), "{out}");
        assert!(out.contains("node_textfile_scrape_error 0\n"));
    }

    #[test]
    fn missing_directory_is_an_error() {
        let out = run(Path::new("/nonexistent/textfile/dir"));
        assert!(out.contains("node_textfile_scrape_error 1\n"));
    }
}
