//! Container names, images and labels from the Docker Engine API (`GET /containers/json?all=true`)
//! over its unix socket; Podman's Docker-compatible socket answers the same. A background task
//! refreshes the cache on an interval, and early when a scrape meets a container it does not
//! know; a scrape only reads the cache.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::Notify;

/// What the API says about one container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Meta {
    pub name: String,
    pub image: String,
    /// Only the allow-listed labels, as (key, value).
    pub labels: Vec<(String, String)>,
}

pub type MetaMap = HashMap<String, Arc<Meta>>;

/// The cache, shared by the refresher and the collector and kept across config reloads.
#[derive(Default)]
pub struct MetadataState {
    map: RwLock<Arc<MetaMap>>,
    up: AtomicBool,
    wake: Notify,
    pub dropped: std::sync::atomic::AtomicU64,
}

impl MetadataState {
    pub fn snapshot(&self) -> Arc<MetaMap> {
        self.map.read().map(|m| m.clone()).unwrap_or_default()
    }

    pub fn up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Asks the refresher to run now (a scrape saw an unknown container); never waits.
    pub fn request_refresh(&self) {
        self.wake.notify_one();
    }

    /// Replaces the cache (the refresher's job; tests fill it directly).
    pub fn replace(&self, map: MetaMap) {
        if let Ok(mut m) = self.map.write() {
            *m = Arc::new(map);
        }
    }

    fn store(&self, result: Result<MetaMap, MetadataError>, socket: &Path) {
        match result {
            Ok(map) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    tracing::info!(socket = %socket.display(), containers = map.len(), "container metadata source up");
                }
                self.replace(map);
            }
            Err(e) => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::warn!(socket = %socket.display(), err = %e, "container metadata source down");
                } else {
                    tracing::debug!(socket = %socket.display(), err = %e, "container metadata source still down");
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("connect: {0}")]
    Connect(std::io::Error),
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    #[error("request: {0}")]
    Request(#[from] hyper::http::Error),
    #[error("status {0}")]
    Status(u16),
    #[error("body: {0}")]
    Body(String),
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("timed out after {0:?}")]
    Timeout(Duration),
}

/// The refresher's settings.
#[derive(Debug, Clone)]
pub struct Source {
    pub socket: PathBuf,
    pub interval: Duration,
    pub timeout: Duration,
    pub labels: Vec<String>,
}

/// The running refresher; dropping it stops the task.
pub struct Refresher(tokio::task::AbortHandle);

impl Drop for Refresher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Refresher {
    /// Starts the task on the current tokio runtime (`None` outside one, e.g. `--config.check`).
    pub fn start(source: Source, state: Arc<MetadataState>) -> Option<Refresher> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(Refresher(handle.spawn(refresh_loop(source, state)).abort_handle()))
    }
}

/// At least this long between two refreshes, however often scrapes ask.
const MIN_GAP: Duration = Duration::from_millis(500);

async fn refresh_loop(source: Source, state: Arc<MetadataState>) {
    loop {
        let result = fetch(&source).await;
        state.store(result, &source.socket);
        tokio::time::sleep(MIN_GAP).await;
        let _ = tokio::time::timeout(source.interval.saturating_sub(MIN_GAP), state.wake.notified()).await;
    }
}

/// One `GET /containers/json?all=true`, bounded by the timeout and a 32 MiB body.
pub async fn fetch(source: &Source) -> Result<MetaMap, MetadataError> {
    let body = tokio::time::timeout(source.timeout, get(&source.socket, "/containers/json?all=true"))
        .await
        .map_err(|_| MetadataError::Timeout(source.timeout))??;
    parse_list(&body, &source.labels)
}

async fn get(socket: &Path, path: &str) -> Result<Bytes, MetadataError> {
    let stream = tokio::net::UnixStream::connect(socket).await.map_err(MetadataError::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let conn = tokio::spawn(conn);
    let req = hyper::Request::get(path).header(hyper::header::HOST, "docker").body(Empty::<Bytes>::new())?;
    let result = async {
        let resp = sender.send_request(req).await?;
        if !resp.status().is_success() {
            return Err(MetadataError::Status(resp.status().as_u16()));
        }
        let body = Limited::new(resp.into_body(), 32 << 20).collect().await.map_err(|e| MetadataError::Body(e.to_string()))?;
        Ok(body.to_bytes())
    }
    .await;
    conn.abort();
    result
}

#[derive(Deserialize)]
struct ApiContainer {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Names", default)]
    names: Option<Vec<String>>,
    #[serde(rename = "Image", default)]
    image: Option<String>,
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
}

/// The API's container list as id → metadata, keeping only the allow-listed labels.
pub fn parse_list(body: &[u8], allowed_labels: &[String]) -> Result<MetaMap, MetadataError> {
    let list: Vec<ApiContainer> = serde_json::from_slice(body)?;
    Ok(list
        .into_iter()
        .map(|c| {
            let name = c.names.unwrap_or_default().into_iter().next().unwrap_or_default();
            let mut labels: Vec<(String, String)> =
                c.labels.unwrap_or_default().into_iter().filter(|(k, _)| allowed_labels.iter().any(|a| a == k)).collect();
            labels.sort();
            let meta = Meta { name: name.trim_start_matches('/').to_string(), image: c.image.unwrap_or_default(), labels };
            (c.id, Arc::new(meta))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_and_podman_lists() {
        let body = br#"[
          {"Id":"aaa","Names":["/web"],"Image":"nginx:1.25","Labels":{"com.docker.compose.service":"web","secret":"x"},"State":"running"},
          {"Id":"bbb","Names":null,"Image":"localhost/busybox:latest","Labels":null},
          {"Id":"ccc"}
        ]"#;
        let map = parse_list(body, &["com.docker.compose.service".to_string()]).unwrap();
        assert_eq!(
            *map["aaa"],
            Meta { name: "web".into(), image: "nginx:1.25".into(), labels: vec![("com.docker.compose.service".into(), "web".into())] }
        );
        assert_eq!(map["bbb"].image, "localhost/busybox:latest");
        assert_eq!(map["bbb"].name, "");
        assert_eq!(*map["ccc"], Meta::default());
        assert!(parse_list(b"{}", &[]).is_err());
    }

    #[tokio::test]
    async fn missing_socket_is_an_error_not_a_hang() {
        let source = Source {
            socket: PathBuf::from("/nonexistent/docker.sock"),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            labels: vec![],
        };
        assert!(matches!(fetch(&source).await, Err(MetadataError::Connect(_))));
    }

    #[tokio::test]
    async fn slow_socket_times_out() {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("slow.sock");
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let _keep = tokio::spawn(async move {
            let (_stream, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        let source = Source { socket, interval: Duration::from_secs(1), timeout: Duration::from_millis(200), labels: vec![] };
        assert!(matches!(fetch(&source).await, Err(MetadataError::Timeout(_))));
    }
}
