//! The promtool-like subcommands: `check config`, `check metrics`, `check rules` and `scrape`, each
//! returning the process exit code (0 ok, 1 error, 3 lint problems, as promtool).

use crate::cli::InputFormat;
use crate::config::Config;
use crate::lint;
use crate::scrape::{client_for, ACCEPT};
use fleetwatch_common::expfmt::{Entry, Label, ScrapeFormat, ScrapeParser};
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

/// Validates config files the way the daemon loads them: syntax, fields, rule files, credentials
/// and TLS files.
pub fn check_config(files: &[std::path::PathBuf]) -> i32 {
    let mut code = 0;
    for f in files {
        println!("Checking {}", f.display());
        match check_one(f) {
            Ok(summary) => println!("  SUCCESS: {summary}"),
            Err(e) => {
                println!("  FAILED: {e}");
                code = 1;
            }
        }
    }
    code
}

fn check_one(path: &Path) -> Result<String, String> {
    let config = Config::load(Some(path)).map_err(|e| e.to_string())?;
    let rules = crate::rules::load_globs(&config.rule_files, &config.base_dir).map_err(|e| e.to_string())?;
    for sc in &config.scrape_configs {
        let http = sc.http();
        client_for(&http).map_err(|e| format!("job {:?}: {e}", sc.job_name))?;
        for file in http
            .basic_auth
            .iter()
            .filter_map(|b| b.password_file.as_ref())
            .chain(http.authorization.iter().filter_map(|a| a.credentials_file.as_ref()))
        {
            fleetwatch_common::config::read_secret_file(file).map_err(|e| format!("job {:?}: {}: {e}", sc.job_name, file.display()))?;
        }
    }
    Ok(format!("{} scrape configs, {} rule files ({} rules) found", config.scrape_configs.len(), rules.files.len(), rules.rule_count()))
}

/// Reads an exposition from stdin; prints parse errors and lint problems as promtool does.
pub fn check_metrics(format: InputFormat) -> i32 {
    let mut input = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut input) {
        eprintln!("error reading stdin: {e}");
        return 1;
    }
    let format = match format {
        InputFormat::Text => ScrapeFormat::Text,
        InputFormat::Openmetrics => ScrapeFormat::OpenMetrics,
        InputFormat::Auto if input.trim_end().ends_with("# EOF") => ScrapeFormat::OpenMetrics,
        InputFormat::Auto => ScrapeFormat::Text,
    };
    match lint::check(&input, format) {
        Err(e) => {
            eprintln!("error while linting: {e}");
            1
        }
        Ok(problems) if problems.is_empty() => 0,
        Ok(problems) => {
            let mut err = std::io::stderr().lock();
            for p in problems {
                let _ = writeln!(err, "{} {}", p.metric, p.text);
            }
            3
        }
    }
}

/// Scrapes a URL once with the daemon's request and parser and prints each entry.
pub async fn scrape(url: &str, timeout: Duration) -> i32 {
    let client = match client_for(&Default::default()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let headers = [
        (hyper::header::ACCEPT, hyper::header::HeaderValue::from_static(ACCEPT)),
        (hyper::header::ACCEPT_ENCODING, hyper::header::HeaderValue::from_static("gzip")),
    ];
    let resp = match client.get(url, &headers, timeout, crate::scrape::DEFAULT_BODY_LIMIT).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("scrape failed: {e}");
            return 1;
        }
    };
    if resp.status != 200 {
        eprintln!("scrape failed: server returned HTTP status {}", resp.status);
        return 1;
    }
    let format = ScrapeFormat::from_content_type(resp.content_type.as_deref());
    let Ok(body) = std::str::from_utf8(&resp.body) else {
        eprintln!("scrape failed: body is not valid UTF-8");
        return 1;
    };
    match print_parsed(body, format, &mut std::io::stdout().lock()) {
        Ok(n) => {
            eprintln!("{n} samples ({format:?}, {} bytes)", body.len());
            0
        }
        Err(e) => {
            eprintln!("scrape failed: {e}");
            1
        }
    }
}

/// Writes one line per entry: metadata as `# KIND name value`, samples as
/// `name{sorted labels} value [timestamp_ms]`. Returns the sample count.
pub fn print_parsed(body: &str, format: ScrapeFormat, out: &mut dyn Write) -> Result<usize, String> {
    let mut parser = ScrapeParser::new(body, format);
    let mut labels: Vec<Label> = Vec::new();
    let mut n = 0;
    while let Some(entry) = parser.next(&mut labels).map_err(|e| e.to_string())? {
        let line = match entry {
            Entry::Help { name, text } => format!("# HELP {name} {text}"),
            Entry::Type { name, kind } => format!("# TYPE {name} {}", kind.name()),
            Entry::Unit { name, unit } => format!("# UNIT {name} {unit}"),
            Entry::Sample(s) => {
                n += 1;
                labels.sort_by(|a, b| a.name.cmp(b.name));
                let shown: Vec<String> = labels.iter().map(|l| format!("{}={:?}", l.name, l.value.as_ref())).collect();
                let ts = s.timestamp_ms.map(|t| format!(" {t}")).unwrap_or_default();
                format!("{}{{{}}} {}{ts}", s.name, shown.join(", "), crate::api::format_value(s.value))
            }
        };
        writeln!(out, "{line}").map_err(|e| e.to_string())?;
    }
    Ok(n)
}

/// Checks rule files as `promtool check rules` does: `Checking FILE`, then `  SUCCESS: N rules found` or
/// `  FAILED:` and the error (on stderr). Duplicate rules (same name and labels) fail a file with a lint
/// error but, as promtool's default `--lint=duplicate-rules`, leave the exit code 0.
pub fn check_rules(files: &[std::path::PathBuf]) -> i32 {
    let mut code = 0;
    for f in files {
        println!("Checking {}", f.display());
        match check_rule_file(f) {
            Ok(n) => println!("  SUCCESS: {n} rules found"),
            Err((e, lint)) => {
                eprintln!("  FAILED:\n{e}");
                if !lint {
                    code = 1;
                }
            }
        }
        println!();
    }
    code
}

/// The number of rules in a valid file, or the error and whether it is only a lint problem.
fn check_rule_file(path: &Path) -> Result<usize, (String, bool)> {
    let file = crate::unittest::load_rule_file(path).map_err(|e| (e, false))?;
    crate::evaluate::compile(std::slice::from_ref(&file), 60_000).map_err(|e| (e, false))?;
    let dups = crate::unittest::duplicate_rules(&file);
    if !dups.is_empty() {
        let mut msg = format!("lint error {} duplicate rule(s) found.\n", dups.len());
        for (name, labels) in dups {
            msg.push_str(&format!("Metric: {name}\nLabel(s):\n"));
            for (k, v) in labels {
                msg.push_str(&format!("\t{k}: {v}\n"));
            }
        }
        msg.push_str("Might cause inconsistency while recording expressions");
        return Err((msg, true));
    }
    Ok(file.file.groups.iter().map(|g| g.rules.len()).sum())
}
