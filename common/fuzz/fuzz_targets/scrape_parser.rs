//! Fuzzes the scrape body parser. The first byte picks the format, the rest is the body. Besides
//! not panicking, it checks that parsing is deterministic, that the end and errors are sticky, that
//! every sample is well formed, and that each sample line re-parses alone to the same sample.

#![no_main]

use fleetwatch_common::expfmt::{is_valid_label_name, is_valid_metric_name, Entry, ScrapeFormat, ScrapeParser};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else { return };
    let Ok(body) = std::str::from_utf8(rest) else { return };
    let format = if first & 1 == 0 { ScrapeFormat::Text } else { ScrapeFormat::OpenMetrics };
    let once = run(body, format);
    assert_eq!(once, run(body, format), "parsing is not deterministic");
});

/// The whole parse in owned form: one string per entry, then the outcome.
fn run(body: &str, format: ScrapeFormat) -> Vec<String> {
    let mut parser = ScrapeParser::new(body, format);
    let mut labels = Vec::new();
    let mut out = Vec::new();
    loop {
        match parser.next(&mut labels) {
            Ok(Some(entry)) => {
                check_entry(body, format, &entry, &labels);
                out.push(format!("{} {entry:?} {labels:?} {}", parser.line(), bits(&entry)));
            }
            Ok(None) => {
                assert!(matches!(parser.next(&mut labels), Ok(None)), "the end is not sticky");
                out.push("end".into());
                return out;
            }
            Err(err) => {
                assert!(err.line >= 1 && err.line <= body.split('\n').count() + 1, "error line {} out of range", err.line);
                assert!(labels.is_empty(), "labels left after an error");
                assert_eq!(parser.next(&mut labels).err(), Some(err.clone()), "the error is not sticky");
                out.push(err.to_string());
                return out;
            }
        }
    }
}

/// The sample's numbers as bits, so that NaN compares equal to itself.
fn bits(entry: &Entry<'_>) -> String {
    match entry {
        Entry::Sample(s) => format!("{:x} {:?}", s.value.to_bits(), s.exemplar.as_ref().map(|e| e.value.to_bits())),
        _ => String::new(),
    }
}

fn check_entry(body: &str, format: ScrapeFormat, entry: &Entry<'_>, labels: &[fleetwatch_common::expfmt::Label<'_>]) {
    let Entry::Sample(sample) = entry else {
        assert!(labels.is_empty(), "labels filled for a metadata entry");
        return;
    };
    assert!(is_valid_metric_name(sample.name), "bad name {:?}", sample.name);
    assert!(sample.series.starts_with(sample.name), "series {:?} does not start with {:?}", sample.series, sample.name);
    assert!(body.contains(sample.series), "series not from the body");
    for (i, label) in labels.iter().enumerate() {
        assert!(is_valid_label_name(label.name) && label.name != "__name__", "bad label name {:?}", label.name);
        assert!(labels[..i].iter().all(|l| l.name != label.name), "duplicate label {:?}", label.name);
    }
    if let Some(exemplar) = &sample.exemplar {
        assert_eq!(format, ScrapeFormat::OpenMetrics, "exemplar in the text format");
        assert!(exemplar.labels.starts_with('{') && exemplar.labels.ends_with('}'), "exemplar labels {:?}", exemplar.labels);
    }
    check_reparse(format, sample, labels);
}

/// The sample written back as a line of its own parses to the same name, labels and value.
fn check_reparse(format: ScrapeFormat, sample: &fleetwatch_common::expfmt::Sample<'_>, labels: &[fleetwatch_common::expfmt::Label<'_>]) {
    let line = match format {
        ScrapeFormat::Text => format!("{} {:?}\n", sample.series, sample.value),
        ScrapeFormat::OpenMetrics => format!("{} {:?}\n# EOF\n", sample.series, sample.value),
    };
    let mut parser = ScrapeParser::new(&line, format);
    let mut again = Vec::new();
    let Ok(Some(Entry::Sample(copy))) = parser.next(&mut again) else { panic!("{line:?} does not re-parse") };
    assert_eq!((copy.series, copy.name), (sample.series, sample.name));
    assert!(copy.value.to_bits() == sample.value.to_bits() || (copy.value.is_nan() && sample.value.is_nan()), "value changed in {line:?}");
    assert_eq!(again, labels, "labels changed in {line:?}");
}
