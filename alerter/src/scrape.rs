//! Scraping one target: the HTTP request as Prometheus sends it, parsing the body by content type,
//! target labels and `metric_relabel_configs`, dropping series no rule selects, appending to the
//! store, staleness markers, the synthetic `up`/`scrape_*` series, and the per-target loop that
//! does this on the target's interval at a stable offset.
//!
//! Each target keeps a cache from a sample's series text (as written in the exposition) to its
//! store id or to "dropped", so a steady-state scrape allocates nothing per sample and takes the
//! store lock once.

use crate::config::HttpClientConfig;
use crate::relabel::{relabel, LabelPairs, RelabelConfig};
use crate::series_cache::{SeriesCache, Slot};
use crate::store::{Rejected, SeriesId, Store};
use crate::targets::Target;
use crate::telemetry::Telemetry;
use fleetwatch_common::client::{gunzip_into, ClientSettings, HttpClient};
use fleetwatch_common::client_config::auth_of;
use fleetwatch_common::expfmt::{Entry, Label, ScrapeFormat, ScrapeParser};
use fleetwatch_promql::Labels;
use hyper::header::{HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::Semaphore;

/// What Prometheus 2.42 sends as `Accept` when scraping.
pub const ACCEPT: &str =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The body size limit when a scrape config sets none (Prometheus has none; a sidecar must not
/// let one runaway target take its memory). Decompressed size counts.
pub const DEFAULT_BODY_LIMIT: u64 = 16 << 20;

pub fn client_for(c: &HttpClientConfig) -> Result<HttpClient, fleetwatch_common::client::ClientError> {
    let auth = auth_of(&c.basic_auth, &c.authorization);
    HttpClient::new(
        ClientSettings { auth, tls: c.tls_config.settings(), follow_redirects: c.follow_redirects },
        &format!("fleetwatch-alerter/{}", env!("CARGO_PKG_VERSION")),
    )
}

/// Per-job scrape settings shared by the job's targets.
#[derive(Clone)]
pub struct JobSettings {
    pub client: HttpClient,
    pub honor_labels: bool,
    pub honor_timestamps: bool,
    pub sample_limit: u64,
    pub body_size_limit: u64,
    pub metric_relabel: Arc<Vec<RelabelConfig>>,
}

/// A scrape that failed: a bounded reason (for metrics) and the message (for logs and the API).
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub reason: &'static str,
    pub message: String,
}

fn fail(reason: &'static str, message: impl Into<String>) -> Failure {
    Failure { reason, message: message.into() }
}

/// Counts from one successful ingest.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Ingested {
    pub scraped: u64,
    pub post_relabel: u64,
    pub added: u64,
    pub stored: u64,
    pub not_selected: u64,
}

/// Where one target's scrape state lives between scrapes.
#[derive(Default)]
pub struct TargetCache {
    series: SeriesCache,
    generation: u64,
    scrape_no: u64,
    /// Sorted ids appended by the last successful scrape (staleness is judged against them).
    previous: Vec<SeriesId>,
    /// Ids of the synthetic series, by name.
    synthetic: HashMap<&'static str, Option<SeriesId>>,
}

/// A sample whose series is not cached yet.
struct Pending {
    slot: u32,
    labels: Labels,
    t: i64,
    v: f64,
}

/// Parses a body and stores what the rules select. On error nothing is stored.
pub fn ingest(
    body: &str,
    format: ScrapeFormat,
    target: &[(String, String)],
    settings: &JobSettings,
    cache: &mut TargetCache,
    store: &RwLock<Store>,
    now_ms: i64,
) -> Result<Ingested, Failure> {
    for _attempt in 0..3 {
        let generation = read_generation(store);
        if cache.generation != generation {
            cache.series.clear();
            cache.synthetic.clear();
            cache.generation = generation;
        }
        cache.scrape_no += 1;
        let parsed = parse_body(body, format, target, settings, cache, now_ms)?;
        let mut st = store.write().unwrap_or_else(|p| p.into_inner());
        if st.generation() != generation {
            continue; // ids were freed while we parsed: decide again from scratch.
        }
        return commit(parsed, cache, &mut st, now_ms);
    }
    Err(fail("store_busy", "the store changed during three attempts to ingest"))
}

fn read_generation(store: &RwLock<Store>) -> u64 {
    store.read().unwrap_or_else(|p| p.into_inner()).generation()
}

struct Parsed {
    appends: Vec<(SeriesId, i64, f64)>,
    pending: Vec<Pending>,
    counts: Ingested,
}

fn parse_body(
    body: &str,
    format: ScrapeFormat,
    target: &[(String, String)],
    settings: &JobSettings,
    cache: &mut TargetCache,
    now_ms: i64,
) -> Result<Parsed, Failure> {
    let mut parser = ScrapeParser::new(body, format);
    let mut labels: Vec<Label> = Vec::new();
    cache.series.begin();
    let mut out = Parsed { appends: Vec::new(), pending: Vec::new(), counts: Ingested::default() };
    let scrape_no = cache.scrape_no;
    while let Some(entry) = parser.next(&mut labels).map_err(|e| fail("parse", e.to_string()))? {
        let Entry::Sample(s) = entry else { continue };
        out.counts.scraped += 1;
        let t = match s.timestamp_ms {
            Some(ts) if settings.honor_timestamps => ts,
            _ => now_ms,
        };
        let found = cache.series.find(s.series);
        let known = found.filter(|&n| !cache.series.slot(n).retry);
        if let Some(n) = known {
            let e = cache.series.slot(n);
            if e.last_seen == scrape_no {
                return Err(fail("duplicate_series", format!("duplicate sample for series {}", s.series)));
            }
            e.last_seen = scrape_no;
            out.counts.post_relabel += e.kept as u64;
            match e.id {
                Some(id) => out.appends.push((id, t, s.value)),
                None => out.counts.not_selected += e.kept as u64,
            }
        } else {
            let labels = target_labels(s.name, &labels, target, settings);
            let slot = Slot { id: None, kept: labels.is_some(), retry: false, last_seen: scrape_no };
            let n = match found {
                Some(n) => {
                    *cache.series.slot(n) = slot;
                    n
                }
                None => cache.series.insert(s.series, slot),
            };
            if let Some(l) = labels {
                out.counts.post_relabel += 1;
                out.pending.push(Pending { slot: n, labels: l, t, v: s.value });
            }
        }
        if settings.sample_limit > 0 && out.counts.post_relabel > settings.sample_limit {
            return Err(fail("sample_limit", format!("sample limit exceeded ({})", settings.sample_limit)));
        }
    }
    Ok(out)
}

/// The stored label set of a scraped sample: its labels with the target's (renaming clashes to
/// `exported_*` unless `honor_labels`), then `metric_relabel_configs`. `None` when dropped.
fn target_labels(name: &str, scraped: &[Label], target: &[(String, String)], settings: &JobSettings) -> Option<Labels> {
    let mut pairs: LabelPairs = Vec::with_capacity(scraped.len() + target.len() + 1);
    pairs.push(("__name__".into(), name.to_string()));
    pairs.extend(scraped.iter().map(|l| (l.name.to_string(), l.value.to_string())));
    for (n, v) in target {
        let clash = pairs.iter().position(|(pn, _)| pn == n);
        match clash {
            Some(_) if settings.honor_labels => {}
            Some(i) => {
                let mut exported = format!("exported_{n}");
                while pairs.iter().any(|(pn, _)| *pn == exported) {
                    exported.insert_str(0, "exported_");
                }
                pairs[i].0 = exported;
                pairs.push((n.clone(), v.clone()));
            }
            None => pairs.push((n.clone(), v.clone())),
        }
    }
    pairs.retain(|(_, v)| !v.is_empty());
    if !relabel(&mut pairs, &settings.metric_relabel) {
        return None;
    }
    pairs.iter().any(|(n, _)| n == "__name__").then(|| Labels::from_pairs(pairs))
}

fn commit(parsed: Parsed, cache: &mut TargetCache, st: &mut Store, now_ms: i64) -> Result<Ingested, Failure> {
    let Parsed { mut appends, pending, mut counts } = parsed;
    for p in pending {
        match st.get_or_create(p.labels) {
            Ok(id) => {
                cache.series.slot(p.slot).id = Some(id);
                counts.added += 1;
                appends.push((id, p.t, p.v));
            }
            Err(Rejected::NotSelected) => counts.not_selected += 1,
            // Decided again next scrape, when the store may have room.
            Err(Rejected::SeriesLimit) => cache.series.slot(p.slot).retry = true,
        }
    }
    let mut ids: Vec<SeriesId> = appends.iter().map(|a| a.0).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        let shown = st.labels(w[0]).map(|l| l.to_string()).unwrap_or_default();
        return Err(fail("duplicate_series", format!("duplicate sample for series {shown} (after relabeling)")));
    }
    for &(id, t, v) in &appends {
        st.append(id, t, v);
    }
    for gone in difference(&cache.previous, &ids) {
        st.mark_stale(gone, now_ms);
    }
    cache.previous = ids;
    counts.stored = appends.len() as u64;
    cache.series.finish();
    if cache.scrape_no.is_multiple_of(16) {
        cache.series.prune(cache.scrape_no, 16);
    }
    Ok(counts)
}

/// Ids in sorted `a` that are not in sorted `b`.
fn difference(a: &[SeriesId], b: &[SeriesId]) -> Vec<SeriesId> {
    a.iter().copied().filter(|x| b.binary_search(x).is_err()).collect()
}

/// The target is down or its body was bad: everything it exposed goes stale now.
pub fn mark_all_stale(cache: &mut TargetCache, store: &RwLock<Store>, now_ms: i64) {
    let mut st = store.write().unwrap_or_else(|p| p.into_inner());
    if st.generation() == cache.generation {
        for &id in &cache.previous {
            st.mark_stale(id, now_ms);
        }
    }
    cache.previous.clear();
}

/// The synthetic series of one scrape, as Prometheus writes them.
pub fn report(
    target: &[(String, String)],
    cache: &mut TargetCache,
    store: &RwLock<Store>,
    now_ms: i64,
    up: bool,
    seconds: f64,
    n: &Ingested,
) {
    let values: [(&'static str, f64); 5] = [
        ("up", if up { 1.0 } else { 0.0 }),
        ("scrape_duration_seconds", seconds),
        ("scrape_samples_scraped", n.scraped as f64),
        ("scrape_samples_post_metric_relabeling", n.post_relabel as f64),
        ("scrape_series_added", n.added as f64),
    ];
    let mut st = store.write().unwrap_or_else(|p| p.into_inner());
    if st.generation() != cache.generation {
        cache.synthetic.clear();
        cache.series.clear();
        cache.generation = st.generation();
    }
    for (name, v) in values {
        let id = *cache.synthetic.entry(name).or_insert_with(|| {
            let mut pairs: LabelPairs = target.to_vec();
            pairs.push(("__name__".into(), name.into()));
            st.get_or_create(Labels::from_pairs(pairs)).ok()
        });
        if let Some(id) = id {
            st.append(id, now_ms, v);
        }
    }
}

/// Marks the synthetic series stale (the target went away).
pub fn stale_synthetic(cache: &mut TargetCache, store: &RwLock<Store>, now_ms: i64) {
    let mut st = store.write().unwrap_or_else(|p| p.into_inner());
    if st.generation() == cache.generation {
        for id in cache.synthetic.values().flatten() {
            st.mark_stale(*id, now_ms);
        }
    }
}

/// The state of a target as `/api/v1/targets` shows it.
#[derive(Debug, Clone, Default)]
pub struct Health {
    pub last_scrape: Option<SystemTime>,
    pub last_duration: f64,
    pub last_error: String,
    pub up: Option<bool>,
    pub samples: u64,
}

/// Everything a scrape loop needs that is shared with the rest of the daemon.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<RwLock<Store>>,
    pub telemetry: Arc<Telemetry>,
    pub concurrency: Arc<Semaphore>,
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// The delay before a target's first scrape: a stable offset within its interval derived from
/// its identity, so a fleet's scrapes spread over the interval instead of bunching.
pub fn first_delay(key: &str, interval: Duration, now_ms: i64) -> Duration {
    let interval_ms = interval.as_millis().max(1) as i64;
    let offset = (fnv1a(key.as_bytes()) % interval_ms as u64) as i64;
    let next = (offset - now_ms.rem_euclid(interval_ms)).rem_euclid(interval_ms);
    Duration::from_millis(next as u64)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf29ce484222325u64, |h, b| (h ^ *b as u64).wrapping_mul(0x100000001b3))
}

/// Scrapes a target on its interval until `stop` fires; then marks its series stale.
pub async fn run_loop(
    target: Target,
    settings: JobSettings,
    shared: Shared,
    health: Arc<Mutex<Health>>,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut cache = TargetCache::default();
    let delay = first_delay(&target.key(), target.interval, now_ms());
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = &mut stop => return,
    }
    let mut tick = tokio::time::interval(target.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => break,
        }
        let permit = tokio::select! {
            p = shared.concurrency.clone().acquire_owned() => p,
            _ = &mut stop => break,
        };
        scrape_once(&target, &settings, &shared, &mut cache, &health).await;
        drop(permit);
    }
    let t = now_ms();
    mark_all_stale(&mut cache, &shared.store, t);
    stale_synthetic(&mut cache, &shared.store, t);
}

async fn scrape_once(target: &Target, settings: &JobSettings, shared: &Shared, cache: &mut TargetCache, health: &Mutex<Health>) {
    let started = Instant::now();
    let start_wall = SystemTime::now();
    let ts = now_ms();
    let result = fetch_and_ingest(target, settings, shared, cache, ts).await;
    let seconds = started.elapsed().as_secs_f64();
    shared.telemetry.scrape_done(&target.job, seconds);
    let counts = match &result {
        Ok(n) => {
            shared.telemetry.samples(n.stored, n.not_selected);
            *n
        }
        Err(f) => {
            shared.telemetry.scrape_failed(&target.job, f.reason);
            tracing::debug!(job = %target.job, url = %target.url, reason = f.reason, err = %f.message, "scrape failed");
            mark_all_stale(cache, &shared.store, ts);
            Ingested::default()
        }
    };
    report(&target.labels, cache, &shared.store, ts, result.is_ok(), seconds, &counts);
    let mut h = health.lock().unwrap_or_else(|p| p.into_inner());
    h.last_scrape = Some(start_wall);
    h.last_duration = seconds;
    h.up = Some(result.is_ok());
    h.samples = counts.scraped;
    h.last_error = result.err().map(|f| f.message).unwrap_or_default();
}

async fn fetch_and_ingest(
    target: &Target,
    settings: &JobSettings,
    shared: &Shared,
    cache: &mut TargetCache,
    ts: i64,
) -> Result<Ingested, Failure> {
    let headers = request_headers(target.timeout);
    let limit = if settings.body_size_limit == 0 { DEFAULT_BODY_LIMIT } else { settings.body_size_limit };
    let resp =
        settings.client.get_compressed(&target.url, &headers, target.timeout, limit).await.map_err(|e| fail(e.reason(), e.to_string()))?;
    if resp.status != 200 {
        return Err(fail("http_status", format!("server returned HTTP status {}", resp.status)));
    }
    let format = ScrapeFormat::from_content_type(resp.content_type.as_deref());
    if !resp.gzip {
        let body = std::str::from_utf8(&resp.body).map_err(not_utf8)?;
        return ingest(body, format, &target.labels, settings, cache, &shared.store, ts);
    }
    // Decompress into this thread's buffer and ingest without awaiting in between, so the
    // buffer's memory is reused by every scrape instead of allocated and freed each time.
    DECOMPRESSED.with(|buf| {
        let mut buf = buf.borrow_mut();
        let result = gunzip_into(&resp.body, limit, &mut buf).map_err(|e| fail(e.reason(), e.to_string())).and_then(|()| {
            let body = std::str::from_utf8(&buf).map_err(not_utf8)?;
            ingest(body, format, &target.labels, settings, cache, &shared.store, ts)
        });
        if buf.capacity() > KEPT_BUFFER {
            *buf = Vec::new();
        }
        result
    })
}

/// The largest decompression buffer a thread keeps between scrapes.
const KEPT_BUFFER: usize = 4 << 20;

thread_local! {
    static DECOMPRESSED: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn not_utf8(e: std::str::Utf8Error) -> Failure {
    fail("parse", format!("body is not valid UTF-8: {e}"))
}

fn request_headers(timeout: Duration) -> Vec<(HeaderName, HeaderValue)> {
    let mut h =
        vec![(hyper::header::ACCEPT, HeaderValue::from_static(ACCEPT)), (hyper::header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"))];
    if let Ok(v) = HeaderValue::from_str(&format!("{}", timeout.as_secs_f64())) {
        h.push((HeaderName::from_static("x-prometheus-scrape-timeout-seconds"), v));
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Selection;

    fn settings(yaml_relabel: &str) -> JobSettings {
        JobSettings {
            client: client_for(&HttpClientConfig::default()).unwrap(),
            honor_labels: false,
            honor_timestamps: true,
            sample_limit: 0,
            body_size_limit: 0,
            metric_relabel: Arc::new(serde_yaml_ng::from_str(yaml_relabel).unwrap()),
        }
    }

    fn target() -> Vec<(String, String)> {
        vec![("instance".into(), "h:1".into()), ("job".into(), "node".into())]
    }

    fn store_selecting(queries: &[&str]) -> RwLock<Store> {
        let mut needs = Vec::new();
        for q in queries {
            let expr = fleetwatch_promql::parse(q).unwrap();
            needs.extend(crate::rules::needs_of(&expr, 300_000));
        }
        RwLock::new(Store::new(Selection::new(needs), 1000))
    }

    fn values(store: &RwLock<Store>, query: &str) -> Vec<(String, Vec<(i64, String)>)> {
        let st = store.read().unwrap();
        let expr = fleetwatch_promql::parse(query).unwrap();
        let mut out = Vec::new();
        for need in fleetwatch_promql::selector_needs(&expr, 0) {
            st.for_each_matching(&need.matchers, &mut |l, s| {
                out.push((l.to_string(), s.iter().map(|x| (x.t, format!("{}", x.v))).collect()));
            });
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn only_selected_series_are_stored_with_target_labels() {
        let store = store_selecting(&["node_load1", "rate(node_cpu_seconds_total{mode=\"idle\"}[5m])"]);
        let mut cache = TargetCache::default();
        let body = "node_load1 0.5\nnode_load5 1\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 10\nnode_cpu_seconds_total{cpu=\"0\",mode=\"user\"} 3\n";
        let n = ingest(body, ScrapeFormat::Text, &target(), &settings("[]"), &mut cache, &store, 1000).unwrap();
        assert_eq!((n.scraped, n.post_relabel, n.added, n.stored, n.not_selected), (4, 4, 2, 2, 2));
        assert_eq!(
            values(&store, "node_load1"),
            vec![(r#"node_load1{instance="h:1", job="node"}"#.to_string(), vec![(1000, "0.5".into())])]
        );
        assert!(values(&store, "node_load5").is_empty());
        // Second scrape: all from the cache, nothing added.
        let n = ingest(body, ScrapeFormat::Text, &target(), &settings("[]"), &mut cache, &store, 2000).unwrap();
        assert_eq!((n.added, n.stored), (0, 2));
    }

    #[tokio::test]
    async fn vanished_series_go_stale_at_once() {
        let store = store_selecting(&["{__name__=~\"a|b\"}"]);
        let mut cache = TargetCache::default();
        ingest("a 1\nb 2\n", ScrapeFormat::Text, &target(), &settings("[]"), &mut cache, &store, 1000).unwrap();
        ingest("a 1\n", ScrapeFormat::Text, &target(), &settings("[]"), &mut cache, &store, 2000).unwrap();
        let b = values(&store, "b");
        assert_eq!(b[0].1.len(), 2);
        assert!(fleetwatch_promql::is_stale_nan(b[0].1[1].1.parse::<f64>().unwrap_or(0.0)) || b[0].1[1].1 == "NaN");
        mark_all_stale(&mut cache, &store, 3000);
        assert_eq!(values(&store, "a")[0].1.last().unwrap(), &(3000, "NaN".to_string()));
    }

    #[tokio::test]
    async fn clashing_labels_are_exported_unless_honored() {
        let store = store_selecting(&["m"]);
        let mut cache = TargetCache::default();
        ingest("m{job=\"app\"} 1\n", ScrapeFormat::Text, &target(), &settings("[]"), &mut cache, &store, 1000).unwrap();
        assert_eq!(values(&store, "m")[0].0, r#"m{exported_job="app", instance="h:1", job="node"}"#);
        let store = store_selecting(&["m"]);
        let mut s = settings("[]");
        s.honor_labels = true;
        ingest("m{job=\"app\"} 1\n", ScrapeFormat::Text, &target(), &s, &mut TargetCache::default(), &store, 1000).unwrap();
        assert_eq!(values(&store, "m")[0].0, r#"m{instance="h:1", job="app"}"#);
    }

    #[tokio::test]
    async fn metric_relabeling_and_sample_limit() {
        let store = store_selecting(&["{__name__=~\".+\"}"]);
        let s = settings("- {source_labels: [__name__], regex: 'go_.*', action: drop}\n");
        let n = ingest("go_x 1\ngo_y 1\nm 1\n", ScrapeFormat::Text, &target(), &s, &mut TargetCache::default(), &store, 1000).unwrap();
        assert_eq!((n.scraped, n.post_relabel, n.stored), (3, 1, 1));
        let mut s = settings("[]");
        s.sample_limit = 2;
        let e = ingest("a 1\nb 1\nc 1\n", ScrapeFormat::Text, &target(), &s, &mut TargetCache::default(), &store, 1000).unwrap_err();
        assert_eq!(e.reason, "sample_limit");
    }

    #[tokio::test]
    async fn duplicates_and_garbage_fail_the_scrape() {
        let store = store_selecting(&["m"]);
        let e =
            ingest("m 1\nm 2\n", ScrapeFormat::Text, &target(), &settings("[]"), &mut TargetCache::default(), &store, 1000).unwrap_err();
        assert_eq!(e.reason, "duplicate_series");
        let e = ingest(
            "m{a=\"1\",b=\"2\"} 1\nm{b=\"2\",a=\"1\"} 2\n",
            ScrapeFormat::Text,
            &target(),
            &settings("[]"),
            &mut TargetCache::default(),
            &store,
            1000,
        )
        .unwrap_err();
        assert_eq!(e.reason, "duplicate_series");
        let e = ingest("m{ 1\n", ScrapeFormat::Text, &target(), &settings("[]"), &mut TargetCache::default(), &store, 1000).unwrap_err();
        assert_eq!(e.reason, "parse");
        let e =
            ingest("m 1\n", ScrapeFormat::OpenMetrics, &target(), &settings("[]"), &mut TargetCache::default(), &store, 1000).unwrap_err();
        assert!(e.message.contains("EOF"), "{e:?}");
    }

    #[tokio::test]
    async fn synthetic_series_are_written() {
        let store = store_selecting(&["up", "scrape_samples_scraped"]);
        let mut cache = TargetCache::default();
        let n = Ingested { scraped: 7, ..Default::default() };
        report(&target(), &mut cache, &store, 1000, true, 0.01, &n);
        assert_eq!(values(&store, "up"), vec![(r#"up{instance="h:1", job="node"}"#.to_string(), vec![(1000, "1".into())])]);
        assert_eq!(values(&store, "scrape_samples_scraped")[0].1, vec![(1000, "7".into())]);
    }

    #[test]
    fn offsets_spread_and_are_stable() {
        let i = Duration::from_secs(15);
        let a = first_delay("a", i, 1_000_000);
        assert_eq!(a, first_delay("a", i, 1_000_000));
        assert!(a < i);
        let distinct: std::collections::HashSet<_> = (0..100).map(|n| first_delay(&format!("t{n}"), i, 0).as_millis() / 1000).collect();
        assert!(distinct.len() >= 10, "{distinct:?}");
    }
}
