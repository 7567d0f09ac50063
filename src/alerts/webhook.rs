//! [`AlertmanagerNotifier`]: alerts to Alertmanager's API
//! (`POST /api/v2/alerts`), queued, batched, retried, never blocking.

use std::fmt;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{Alert, AlertEvent, Notifier};

/// Sends alerts to an Alertmanager (or anything that speaks its v2 API).
///
/// Each alert event becomes one entry of a `POST /api/v2/alerts`:
///
/// - labels: `alertname` ([`AlertType::alert_name`](super::AlertType::alert_name),
///   e.g. `DbDeadlock`), `alert_type`, `severity`, `pool`, `key`,
///   `alert_id`, plus the builder's [`label`](AlertmanagerNotifierBuilder::label)s
///   (e.g. `instance`);
/// - annotations: `summary` (the alert's message), `occurrences`,
///   `first_seen`;
/// - `startsAt` (first seen), `endsAt` (only when resolved: the time it was
///   resolved), `generatorURL` when [set](AlertmanagerNotifierBuilder::generator_url).
///
/// [`notify`](Notifier::notify) only puts the entry on a bounded queue; a
/// task sends what is queued in batches (up to 64 a request), retrying a
/// failed request with exponential backoff, each attempt under a timeout.
/// A slow or dead receiver therefore never blocks the monitor: what does
/// not fit in the queue is dropped and counted ([`stats`](Self::stats)),
/// and so is a batch that failed every attempt.
///
/// Alertmanager ends an alert `resolve_timeout` (5 min by default) after it
/// last heard of it unless the alert carries an `endsAt`; an active alert
/// is sent again on every [`Repeated`](AlertEvent::Repeated) event, that
/// is once per cooldown while it keeps firing, so keep the cooldown below
/// Alertmanager's `resolve_timeout` for an alert to stay firing there.
///
/// Plain `http://` only: run Alertmanager on loopback or behind a local
/// TLS-terminating proxy.
///
/// # Example
///
/// ```no_run
/// use db_monitor::alerts::AlertmanagerNotifier;
/// use db_monitor::{DbMonitor, MonitorConfig};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let alertmanager = AlertmanagerNotifier::builder("http://127.0.0.1:9093")
///     .label("instance", "orders-api-1")
///     .generator_url("http://orders-api-1:8080/health/database/alerts")
///     .build()?;
/// let monitor = DbMonitor::builder(MonitorConfig::from_env()?)
///     .notifier(alertmanager)
///     .build()?;
/// # let _ = monitor; Ok(()) }
/// ```
pub struct AlertmanagerNotifier {
    queue: mpsc::Sender<Entry>,
    counters: Arc<Counters>,
    labels: Arc<[(String, String)]>,
    generator_url: Option<String>,
    url: Uri,
}

impl fmt::Debug for AlertmanagerNotifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlertmanagerNotifier")
            .field("url", &shown(&self.url))
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

/// Builds an [`AlertmanagerNotifier`].
#[derive(Clone)]
#[must_use]
pub struct AlertmanagerNotifierBuilder {
    url: String,
    labels: Vec<(String, String)>,
    generator_url: Option<String>,
    queue: usize,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl fmt::Debug for AlertmanagerNotifierBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let url = self
            .url
            .parse::<Uri>()
            .map_or_else(|_| "<invalid>".to_owned(), |u| shown(&u));
        f.debug_struct("AlertmanagerNotifierBuilder")
            .field("url", &url)
            .field("labels", &self.labels)
            .field("queue", &self.queue)
            .field("timeout", &self.timeout)
            .field("retries", &self.retries)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// A URL as it may be logged: scheme, host, port and path, never the
/// credentials of a `user:password@` or the query.
fn shown(uri: &Uri) -> String {
    let host = uri.host().unwrap_or("");
    let port = uri.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}{}", uri.scheme_str().unwrap_or("http"), uri.path())
}

/// Why an [`AlertmanagerNotifier`] could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum WebhookError {
    /// The URL does not parse or is not `http://host[:port][/path]`.
    InvalidUrl(String),
    /// `build` was called outside a Tokio runtime.
    NoRuntime,
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WebhookError::InvalidUrl(why) => write!(f, "invalid alertmanager url: {why}"),
            WebhookError::NoRuntime => f.write_str("the alertmanager notifier must be built inside a tokio runtime"),
        }
    }
}

impl std::error::Error for WebhookError {}

/// What an [`AlertmanagerNotifier`] did so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WebhookStats {
    /// Alert events accepted into the queue.
    pub queued: u64,
    /// Alert events Alertmanager accepted (a 2xx answer).
    pub sent: u64,
    /// Alert events given up on after every attempt failed.
    pub failed: u64,
    /// Alert events dropped because the queue was full.
    pub dropped: u64,
    /// Requests that were retried.
    pub retries: u64,
}

#[derive(Default)]
struct Counters {
    queued: AtomicU64,
    sent: AtomicU64,
    failed: AtomicU64,
    dropped: AtomicU64,
    retries: AtomicU64,
}

/// One alert as Alertmanager's API wants it.
#[derive(Serialize)]
struct Entry {
    #[serde(serialize_with = "as_object")]
    labels: Vec<(String, String)>,
    #[serde(serialize_with = "as_object")]
    annotations: [(&'static str, String); 3],
    #[serde(rename = "startsAt")]
    starts_at: String,
    #[serde(rename = "endsAt", skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    generator_url: Option<String>,
}

/// Serializes a list of pairs as a JSON object.
fn as_object<K: Serialize, S: serde::Serializer>(pairs: &[(K, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

impl AlertmanagerNotifier {
    /// A builder for a notifier posting to `url`: Alertmanager's address
    /// (`http://127.0.0.1:9093`, to which `/api/v2/alerts` is added) or the
    /// full endpoint.
    pub fn builder(url: impl Into<String>) -> AlertmanagerNotifierBuilder {
        AlertmanagerNotifierBuilder {
            url: url.into(),
            labels: Vec::new(),
            generator_url: None,
            queue: 1024,
            timeout: Duration::from_secs(5),
            retries: 3,
            backoff: Duration::from_millis(500),
        }
    }

    /// What it did so far.
    pub fn stats(&self) -> WebhookStats {
        let c = &self.counters;
        WebhookStats {
            queued: c.queued.load(Relaxed),
            sent: c.sent.load(Relaxed),
            failed: c.failed.load(Relaxed),
            dropped: c.dropped.load(Relaxed),
            retries: c.retries.load(Relaxed),
        }
    }

    fn entry(&self, alert: &Alert, resolved: bool) -> Entry {
        let mut labels = vec![
            ("alertname".to_owned(), alert.alert_type.alert_name().to_owned()),
            ("alert_type".to_owned(), alert.alert_type.as_str().to_owned()),
            ("severity".to_owned(), alert.severity.as_str().to_owned()),
            ("pool".to_owned(), alert.pool.clone()),
            ("key".to_owned(), alert.key.clone()),
            ("alert_id".to_owned(), alert.id.clone()),
        ];
        labels.extend(self.labels.iter().cloned());
        Entry {
            labels,
            annotations: [
                ("summary", alert.message.clone()),
                ("occurrences", alert.occurrences.to_string()),
                ("first_seen", rfc3339(alert.first_seen_unix_ms)),
            ],
            starts_at: rfc3339(alert.first_seen_unix_ms),
            ends_at: resolved.then(|| rfc3339(alert.resolved_unix_ms.unwrap_or(alert.last_seen_unix_ms))),
            generator_url: self.generator_url.clone(),
        }
    }
}

impl Notifier for AlertmanagerNotifier {
    fn notify(&self, event: AlertEvent<'_>) {
        let entry = self.entry(event.alert(), matches!(event, AlertEvent::Resolved(_)));
        match self.queue.try_send(entry) {
            Ok(()) => {
                self.counters.queued.fetch_add(1, Relaxed);
            }
            Err(_) => {
                let dropped = self.counters.dropped.fetch_add(1, Relaxed) + 1;
                // Log the first drop and then ever more rarely.
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        target: "db_monitor::alerts",
                        url = %shown(&self.url),
                        dropped,
                        "alertmanager queue full: alert notification dropped"
                    );
                }
            }
        }
    }
}

impl AlertmanagerNotifierBuilder {
    /// Adds a label to every alert sent, e.g. `("instance", "api-1")` to
    /// tell replicas apart. None by default.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }

    /// Sets `generatorURL`, the link Alertmanager shows for the alert's
    /// source (e.g. the service's `…/alerts` route). Unset by default.
    pub fn generator_url(mut self, url: impl Into<String>) -> Self {
        self.generator_url = Some(url.into());
        self
    }

    /// Sets how many alert events may wait to be sent; more are dropped
    /// and counted. Defaults to 1024.
    pub fn queue(mut self, capacity: usize) -> Self {
        self.queue = capacity.max(1);
        self
    }

    /// Sets the timeout of one request (connect, send and answer).
    /// Defaults to 5 s.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets how many times a failed request is retried, waiting `backoff`,
    /// then twice that, and so on (at most 30 s). Defaults to 3 retries
    /// after 500 ms.
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.backoff = backoff;
        self
    }

    /// Builds the notifier and starts its sending task on the current Tokio
    /// runtime. The task ends once the notifier is dropped and its queue is
    /// sent.
    ///
    /// # Errors
    ///
    /// [`WebhookError::InvalidUrl`] for a URL that is not
    /// `http://host[:port][/path]`; [`WebhookError::NoRuntime`] outside a
    /// Tokio runtime.
    pub fn build(self) -> Result<AlertmanagerNotifier, WebhookError> {
        let url = endpoint(&self.url)?;
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| WebhookError::NoRuntime)?;
        let (queue, receiver) = mpsc::channel(self.queue);
        let counters = Arc::new(Counters::default());
        let sender = Sender {
            url: url.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            counters: counters.clone(),
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff,
        };
        runtime.spawn(sender.run(receiver));
        Ok(AlertmanagerNotifier {
            queue,
            counters,
            labels: self.labels.into(),
            generator_url: self.generator_url,
            url,
        })
    }
}

/// The endpoint for a base URL or a full one.
fn endpoint(url: &str) -> Result<Uri, WebhookError> {
    let uri: Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| WebhookError::InvalidUrl(e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(WebhookError::InvalidUrl(
            "only http:// is supported (run Alertmanager on loopback or behind a TLS proxy)".to_owned(),
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| WebhookError::InvalidUrl("no host".to_owned()))?;
    if !matches!(uri.path(), "" | "/") {
        return Ok(uri);
    }
    Uri::builder()
        .scheme("http")
        .authority(authority.clone())
        .path_and_query("/api/v2/alerts")
        .build()
        .map_err(|e| WebhookError::InvalidUrl(e.to_string()))
}

const BATCH: usize = 64;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Sender {
    url: Uri,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>,
    counters: Arc<Counters>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
}

impl Sender {
    async fn run(self, mut receiver: mpsc::Receiver<Entry>) {
        let mut batch = Vec::with_capacity(BATCH);
        while receiver.recv_many(&mut batch, BATCH).await > 0 {
            let n = batch.len() as u64;
            match serde_json::to_vec(&Batch(&batch)) {
                Ok(body) => {
                    if self.send(Bytes::from(body)).await {
                        self.counters.sent.fetch_add(n, Relaxed);
                    } else {
                        self.counters.failed.fetch_add(n, Relaxed);
                    }
                }
                Err(e) => {
                    self.counters.failed.fetch_add(n, Relaxed);
                    tracing::warn!(target: "db_monitor::alerts", "could not encode alerts: {e}");
                }
            }
            batch.clear();
        }
    }

    /// Posts `body`, retrying; whether Alertmanager accepted it.
    async fn send(&self, body: Bytes) -> bool {
        let mut backoff = self.backoff;
        for attempt in 0..=self.retries {
            if attempt > 0 {
                self.counters.retries.fetch_add(1, Relaxed);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            match tokio::time::timeout(self.timeout, self.post(body.clone())).await {
                Ok(Ok(())) => return true,
                Ok(Err(why)) => {
                    tracing::warn!(target: "db_monitor::alerts", url = %shown(&self.url), attempt, "alertmanager: {why}");
                }
                Err(_) => tracing::warn!(
                    target: "db_monitor::alerts",
                    url = %shown(&self.url),
                    attempt,
                    "alertmanager: no answer within {:?}",
                    self.timeout
                ),
            }
        }
        false
    }

    async fn post(&self, body: Bytes) -> Result<(), String> {
        let request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| crate::classify::error_chain(&e, false))?;
        let status = response.status();
        // Read the answer (so that the connection can be reused) up to
        // what is logged of it: a receiver that sends more, or never ends
        // its body, costs no more memory or time than that.
        let mut body = response.into_body();
        let mut answer = Vec::new();
        while answer.len() < MAX_ANSWER {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        let room = MAX_ANSWER - answer.len();
                        answer.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
                Some(Err(e)) => return Err(e.to_string()),
                None => break,
            }
        }
        if status.is_success() {
            Ok(())
        } else {
            let text = String::from_utf8_lossy(&answer).into_owned();
            Err(format!("answered {status}: {}", text.trim()))
        }
    }
}

/// The bytes of Alertmanager's answer read (and, on failure, logged).
const MAX_ANSWER: usize = 200;

#[derive(Serialize)]
#[serde(transparent)]
struct Batch<'a>(&'a [Entry]);

/// Milliseconds since the Unix epoch as RFC 3339 UTC, e.g.
/// `2026-11-26T17:44:24.123Z`.
pub(crate) fn rfc3339(unix_ms: u64) -> String {
    let secs = unix_ms / 1000;
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(rfc3339(1_795_715_064_123), "2026-11-26T17:44:24.123Z");
        assert_eq!(rfc3339(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
    }

    #[test]
    fn base_urls_get_the_api_path_and_others_are_kept_or_refused() {
        assert_eq!(
            endpoint("http://127.0.0.1:9093").unwrap().to_string(),
            "http://127.0.0.1:9093/api/v2/alerts"
        );
        assert_eq!(
            endpoint("http://am:9093/").unwrap().to_string(),
            "http://am:9093/api/v2/alerts"
        );
        assert_eq!(endpoint("http://am/hook").unwrap().to_string(), "http://am/hook");
        assert!(matches!(endpoint("https://am:9093"), Err(WebhookError::InvalidUrl(_))));
        assert!(matches!(endpoint("not a url"), Err(WebhookError::InvalidUrl(_))));
    }

    #[test]
    fn urls_are_shown_without_credentials_or_query() {
        let url = "http://alerts:s3cret-pass@am:9093/api/v2/alerts?token=s3cret-query";
        assert_eq!(shown(&url.parse().unwrap()), "http://am:9093/api/v2/alerts");
        let builder = AlertmanagerNotifier::builder(url);
        let debug = format!("{builder:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        assert!(debug.contains("http://am:9093/api/v2/alerts"), "{debug}");
    }

    fn alert(n: u64) -> Alert {
        Alert {
            id: format!("{n:016x}"),
            pool: "p".into(),
            alert_type: super::super::AlertType::Deadlock,
            severity: super::super::AlertSeverity::High,
            key: "00000000000000aa".into(),
            message: "deadlock detected (40P01)".into(),
            first_seen_unix_ms: 1_795_715_064_123,
            last_seen_unix_ms: 1_795_715_064_123,
            occurrences: 1,
            status: super::super::AlertStatus::Active,
            resolved_unix_ms: None,
            resolved_by: None,
        }
    }

    async fn settle(notifier: &AlertmanagerNotifier) -> WebhookStats {
        for _ in 0..500 {
            let s = notifier.stats();
            if s.sent + s.failed == s.queued {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the queue never drained: {:?}", notifier.stats());
    }

    #[tokio::test]
    async fn a_dead_receiver_loses_only_what_overflows_and_is_counted() {
        // A port nobody listens on: every attempt is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let notifier = AlertmanagerNotifier::builder(format!("http://127.0.0.1:{port}"))
            .queue(4)
            .retries(2, Duration::from_millis(5))
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        // notify() never waits: 100 events go in or are dropped at once.
        for n in 0..100 {
            notifier.notify(AlertEvent::Fired(&alert(n)));
        }
        let queued_now = notifier.stats().queued;
        assert!((4..=8).contains(&queued_now), "{:?}", notifier.stats());
        let stats = settle(&notifier).await;
        assert_eq!(stats.queued + stats.dropped, 100);
        assert_eq!((stats.sent, stats.failed), (0, stats.queued));
        assert!(stats.retries >= 2, "{stats:?}");
    }

    #[tokio::test]
    async fn a_receiver_that_never_answers_is_timed_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Accepts connections and reads, but never answers.
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        let notifier = AlertmanagerNotifier::builder(url)
            .retries(1, Duration::from_millis(5))
            .timeout(Duration::from_millis(100))
            .build()
            .unwrap();
        notifier.notify(AlertEvent::Resolved(&alert(1)));
        let stats = settle(&notifier).await;
        assert_eq!((stats.queued, stats.sent, stats.failed, stats.retries), (1, 0, 1, 1));
        silent.abort();
    }

    #[tokio::test]
    async fn an_answer_that_never_ends_is_read_no_further_than_its_start() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        // Answers 200, then sends a chunked body that never ends.
        let endless = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = [0u8; 4096];
                    let _ = socket.read(&mut request).await;
                    let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
                    if socket.write_all(head.as_bytes()).await.is_err() {
                        return;
                    }
                    let chunk = format!("{:x}\r\n{}\r\n", 1 << 16, "x".repeat(1 << 16));
                    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
                });
            }
        });
        let notifier = AlertmanagerNotifier::builder(url)
            .retries(0, Duration::from_millis(5))
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let start = std::time::Instant::now();
        notifier.notify(AlertEvent::Fired(&alert(1)));
        let stats = settle(&notifier).await;
        assert_eq!((stats.sent, stats.failed), (1, 0), "{stats:?}");
        assert!(
            start.elapsed() < Duration::from_secs(4),
            "not read to its (missing) end"
        );
        endless.abort();
    }

    #[tokio::test]
    async fn the_payload_is_alertmanagers_postable_alert() {
        let notifier = AlertmanagerNotifier::builder("http://127.0.0.1:9")
            .label("instance", "api-1")
            .generator_url("http://api-1/health/database/alerts")
            .build()
            .unwrap();
        let mut resolved = alert(7);
        resolved.status = super::super::AlertStatus::Resolved;
        resolved.resolved_unix_ms = Some(1_795_715_065_000);
        let json = serde_json::to_value(Batch(&[
            notifier.entry(&alert(7), false),
            notifier.entry(&resolved, true),
        ]))
        .unwrap();
        assert_eq!(
            json[0],
            serde_json::json!({
                "labels": {
                    "alertname": "DbDeadlock",
                    "alert_type": "deadlock",
                    "severity": "high",
                    "pool": "p",
                    "key": "00000000000000aa",
                    "alert_id": "0000000000000007",
                    "instance": "api-1"
                },
                "annotations": {
                    "summary": "deadlock detected (40P01)",
                    "occurrences": "1",
                    "first_seen": "2026-11-26T17:44:24.123Z"
                },
                "startsAt": "2026-11-26T17:44:24.123Z",
                "generatorURL": "http://api-1/health/database/alerts"
            })
        );
        assert_eq!(json[1]["endsAt"], "2026-11-26T17:44:25.000Z");
    }

    #[test]
    fn building_outside_a_runtime_is_an_error() {
        let err = AlertmanagerNotifier::builder("http://127.0.0.1:9093")
            .build()
            .unwrap_err();
        assert!(matches!(err, WebhookError::NoRuntime));
    }
}
