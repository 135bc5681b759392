//! Parses an exposition file many times on one thread with the scrape parser and prints the
//! throughput. Usage (build with --release):
//!
//! cargo run --release -p fleetwatch-common --example parse_throughput -- PATH text|openmetrics [PASSES]

use std::hint::black_box;
use std::time::Instant;

use fleetwatch_common::expfmt::{Entry, Label, ScrapeFormat, ScrapeParseError, ScrapeParser};

const USAGE: &str = "usage: parse_throughput PATH text|openmetrics [PASSES]";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or(USAGE)?;
    let format = match args.next().as_deref() {
        Some("text") => ScrapeFormat::Text,
        Some("openmetrics") => ScrapeFormat::OpenMetrics,
        _ => return Err(USAGE.into()),
    };
    let passes: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(5000);
    let body = std::fs::read_to_string(&path)?;
    let mut labels = Vec::new();
    let per_pass = count_samples(&body, format, &mut labels)?;
    let start = Instant::now();
    let mut total = 0u64;
    for _ in 0..passes {
        total += count_samples(black_box(&body), format, &mut labels)?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{path}: {per_pass} samples, {} bytes per pass; {passes} passes in {secs:.3} s: {:.0} samples/s, {:.1} MB/s, {:.1} µs per pass",
        body.len(),
        total as f64 / secs,
        body.len() as f64 * f64::from(passes) / secs / 1e6,
        secs * 1e6 / f64::from(passes),
    );
    Ok(())
}

/// Parses the whole body and counts its samples; `labels` is reused across passes as a caller would.
fn count_samples<'a>(body: &'a str, format: ScrapeFormat, labels: &mut Vec<Label<'a>>) -> Result<u64, ScrapeParseError> {
    let mut parser = ScrapeParser::new(body, format);
    let mut samples = 0;
    while let Some(entry) = parser.next(labels)? {
        if let Entry::Sample(sample) = entry {
            black_box((&sample, &*labels));
            samples += 1;
        }
    }
    Ok(samples)
}
