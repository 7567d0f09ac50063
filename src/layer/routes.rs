//! The layer's routes: parsing, guarding, answering in JSON.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{Method, Response, StatusCode};
use serde::Serialize;

use super::budget::Budget;
use super::cache::Shared;
use super::dashboard::Asset;
use super::future::Routed;
use super::layer::LayerConfig;
use crate::classify::error_message;
use crate::funnel::Event;
use crate::pool::{MakeTls, MonitoredPool, PoolSnapshot};
use crate::stats::MAX_WINDOW_MINUTES;

/// Wrong admin tokens accepted a second before token checks are refused.
const MAX_FAILED_TOKENS_PER_SECOND: u64 = 10;

/// The largest `limit` a route accepts.
pub const MAX_LIMIT: usize = 1000;

/// What the routes need of a pool, without its TLS type.
pub(crate) trait RoutePool: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Active alerts.
    fn active_alerts(&self) -> usize;
    fn json(&self, what: Read) -> serde_json::Result<Vec<u8>>;
    fn resolve_alert(&self, id: &str, by: &str) -> Option<crate::alerts::Alert>;
    fn reset_stores(&self);
    fn reset_errors(&self);
    fn snapshot(&self) -> PoolSnapshot;
    /// Publishes the pool's gauges as they are now.
    fn publish_state(&self);
    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>>;
    /// Records an N+1 pattern seen in a request.
    fn n_plus_one(&self, route: Option<&Arc<str>>, fingerprint: u64, runs: u64, threshold: u64);
    /// Records a finished request of `route`.
    fn request_done(&self, route: &Arc<str>, statements: u64, database_time: Duration, failed: bool);
}

/// How long a health check's checkout took, and the database's answer to
/// its `SELECT 1` alone.
pub(crate) struct Ping {
    checkout: Duration,
    answer: Duration,
}

/// The shared answers of one layer: documents by route and parameters, the
/// health verdict, the exposition (see [`Shared`]).
pub(crate) struct Caches {
    /// The bytes per second documents and the exposition may send.
    budget: Arc<Budget>,
    /// Wrong admin tokens a second (10): past them, token checks answer
    /// 429 for a second.
    failed_tokens: Budget,
    documents: Shared<Read, Result<Bytes, String>>,
    health: Shared<(), (StatusCode, Bytes)>,
    #[cfg(feature = "prometheus")]
    exposition: Shared<(), Bytes>,
}

impl Caches {
    pub(crate) fn new(fresh_for: Duration, bytes_per_second: Option<u64>) -> Self {
        Caches {
            budget: Arc::new(Budget::new(bytes_per_second)),
            failed_tokens: Budget::new(Some(MAX_FAILED_TOKENS_PER_SECOND)),
            documents: Shared::new(fresh_for),
            health: Shared::new(fresh_for),
            #[cfg(feature = "prometheus")]
            exposition: Shared::new(fresh_for),
        }
    }

    /// Forgets what a mutating route changed.
    fn changed(&self) {
        self.documents.clear();
        self.health.clear();
    }
}

/// A reading route and its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Read {
    Comprehensive { minutes: u32, limit: usize },
    QueryPerformance { minutes: u32, limit: usize },
    PoolTrends { minutes: Option<u32> },
    SlowQueries { minutes: Option<u32>, limit: usize },
    Errors { minutes: Option<u32>, limit: usize },
    Alerts,
    AlertHistory { limit: usize },
    Performance { minutes: u32 },
    ServerActivity,
    ServerLocks,
    ServerStatements { limit: usize },
    Series { minutes: u32 },
}

impl<Tls: MakeTls> RoutePool for MonitoredPool<Tls> {
    fn name(&self) -> &str {
        MonitoredPool::name(self)
    }

    fn active_alerts(&self) -> usize {
        self.shared.sink.stores.alerts.active().len()
    }

    fn json(&self, what: Read) -> serde_json::Result<Vec<u8>> {
        match what {
            Read::Comprehensive { minutes, limit } => serde_json::to_vec(&self.comprehensive(minutes, limit)),
            Read::QueryPerformance { minutes, limit } => serde_json::to_vec(&self.query_performance(minutes, limit)),
            Read::PoolTrends { minutes } => serde_json::to_vec(&self.trend_report(minutes)),
            Read::SlowQueries { minutes, limit } => serde_json::to_vec(&self.slow_query_report(minutes, limit)),
            Read::Errors { minutes, limit } => {
                let mut report = self.error_report(minutes);
                report.recent.truncate(limit);
                serde_json::to_vec(&report)
            }
            Read::Alerts => serde_json::to_vec(&self.alerts()),
            Read::AlertHistory { limit } => serde_json::to_vec(&self.alert_history(limit)),
            Read::Performance { minutes } => serde_json::to_vec(&self.performance(minutes)),
            Read::ServerActivity => serde_json::to_vec(&self.server_activity()),
            Read::ServerLocks => serde_json::to_vec(&self.server_locks()),
            Read::ServerStatements { limit } => serde_json::to_vec(&self.server_statements(limit)),
            Read::Series { minutes } => serde_json::to_vec(&self.series(minutes)),
        }
    }

    fn resolve_alert(&self, id: &str, by: &str) -> Option<crate::alerts::Alert> {
        MonitoredPool::resolve_alert(self, id, by)
    }

    fn reset_stores(&self) {
        MonitoredPool::reset_stores(self);
    }

    fn reset_errors(&self) {
        MonitoredPool::reset_errors(self);
    }

    fn snapshot(&self) -> PoolSnapshot {
        MonitoredPool::snapshot(self)
    }

    fn publish_state(&self) {
        MonitoredPool::publish_state(self);
    }

    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>> {
        // The monitor's own work: checked out from bb8 directly and run on
        // the raw client, so that neither the checkout nor `SELECT 1` is
        // counted among the application's (nor feeds the forecast).
        // Bounded as a whole by `timeout`; a connection whose `SELECT 1`
        // got no answer in time is retired rather than handed to the
        // application with the statement still in flight.
        Box::pin(async move {
            let start = Instant::now();
            let conn = match tokio::time::timeout(timeout, self.inner().get()).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(bb8::RunError::User(e))) => {
                    return Err(format!("connect failed: {}", self.shared.sink.describe(&e)))
                }
                Ok(Err(bb8::RunError::TimedOut)) | Err(_) => {
                    return Err(match self.shared.last_connect_error() {
                        Some(e) if self.shared.consecutive_connect_failures.load(Relaxed) > 0 => {
                            format!("no connection within {timeout:?}: connect failed: {e}")
                        }
                        _ => format!("no connection within {timeout:?}"),
                    })
                }
            };
            let checked_out = Instant::now();
            let left = timeout.saturating_sub(checked_out - start);
            match tokio::time::timeout(left, conn.raw().simple_query("SELECT 1")).await {
                Ok(Ok(_)) => Ok(Ping {
                    checkout: checked_out - start,
                    answer: checked_out.elapsed(),
                }),
                Ok(Err(e)) => Err(error_message(&e, self.shared.sink.config.expose_application_messages).into_owned()),
                Err(_) => {
                    conn.retire();
                    Err(format!("no answer to SELECT 1 within {timeout:?}"))
                }
            }
        })
    }

    fn n_plus_one(&self, route: Option<&Arc<str>>, fingerprint: u64, runs: u64, threshold: u64) {
        self.shared.record(Event::NPlusOne {
            route,
            fingerprint,
            runs,
            threshold,
        });
    }

    fn request_done(&self, route: &Arc<str>, statements: u64, database_time: Duration, failed: bool) {
        self.shared.record(Event::Request {
            route,
            statements,
            nanos: crate::units::saturating_nanos(database_time),
            failed,
        });
    }
}

/// Answers a request under the prefix; `rest` is the path after it.
pub(crate) fn respond(config: Arc<LayerConfig>, parts: http::request::Parts, rest: String) -> Routed {
    Box::pin(async move {
        match route(&config, &parts, &rest).await {
            Ok(response) => response,
            Err(Reject(response)) => *response,
        }
    })
}

/// `GET /metrics`: the Prometheus exposition.
#[cfg(feature = "prometheus")]
pub(crate) fn exposition(
    config: Arc<LayerConfig>,
    parts: http::request::Parts,
    handle: metrics_exporter_prometheus::PrometheusHandle,
) -> Routed {
    Box::pin(async move {
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route answers GET only",
                None,
            );
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        if let Err(Reject(response)) = guard_read(&config, &parts) {
            return *response;
        }
        let caches = config.caches();
        // A scrape sees the pool as it is, not as the last checkout left it.
        config.pool.publish_state();
        let Some(body) = caches
            .exposition
            .get_blocking(
                (),
                &caches.budget,
                move || Bytes::from(handle.render()),
                Bytes::new,
                Bytes::len,
            )
            .await
        else {
            return over_budget(&caches.budget);
        };
        let mut response = Response::new(body);
        response.headers_mut().insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        response
    })
}

/// The routes, by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route<'a> {
    Health,
    Comprehensive,
    ResetAll,
    QueryPerformance,
    PoolTrends,
    SlowQueries,
    Errors,
    ResetErrors,
    Alerts,
    AlertHistory,
    Resolve(&'a str),
    Performance,
    ServerActivity,
    ServerLocks,
    ServerStatements,
    Series,
    Dashboard(Asset),
}

impl<'a> Route<'a> {
    fn of(segments: &[&'a str]) -> Option<Self> {
        Some(match *segments {
            [] => Route::Health,
            ["metrics", "comprehensive"] => Route::Comprehensive,
            ["metrics", "comprehensive", "reset"] => Route::ResetAll,
            ["metrics", "query-performance"] => Route::QueryPerformance,
            ["metrics", "pool-trends"] => Route::PoolTrends,
            ["metrics", "slow-queries"] => Route::SlowQueries,
            ["errors"] => Route::Errors,
            ["errors", "reset"] => Route::ResetErrors,
            ["alerts"] => Route::Alerts,
            ["alerts", "history"] => Route::AlertHistory,
            ["alerts", id, "resolve"] => Route::Resolve(id),
            ["performance"] => Route::Performance,
            ["server", "activity"] => Route::ServerActivity,
            ["server", "locks"] => Route::ServerLocks,
            ["server", "statements"] => Route::ServerStatements,
            ["metrics", "series"] => Route::Series,
            ["dashboard"] => Route::Dashboard(Asset::Page),
            ["dashboard", "app.css"] => Route::Dashboard(Asset::Style),
            ["dashboard", "app.js"] => Route::Dashboard(Asset::Script),
            ["dashboard", "favicon.svg"] => Route::Dashboard(Asset::Icon),
            _ => return None,
        })
    }

    fn mutates(self) -> bool {
        matches!(self, Route::ResetAll | Route::ResetErrors | Route::Resolve(_))
    }

    /// The reading route with its parameters.
    fn read(self, q: &Query<'_>) -> Result<Option<Read>, Reject> {
        Ok(Some(match self {
            Route::Comprehensive => Read::Comprehensive {
                minutes: q.minutes()?.unwrap_or(60),
                limit: q.limit()?.unwrap_or(20),
            },
            Route::QueryPerformance => Read::QueryPerformance {
                minutes: q.minutes()?.unwrap_or(60),
                limit: q.limit()?.unwrap_or(20),
            },
            Route::PoolTrends => Read::PoolTrends { minutes: q.minutes()? },
            Route::SlowQueries => Read::SlowQueries {
                minutes: q.minutes()?,
                limit: q.limit()?.unwrap_or(20),
            },
            Route::Errors => Read::Errors {
                minutes: q.minutes()?,
                limit: q.limit()?.unwrap_or(100),
            },
            Route::Alerts => Read::Alerts,
            Route::AlertHistory => Read::AlertHistory {
                limit: q.limit()?.unwrap_or(50),
            },
            Route::Performance => Read::Performance {
                minutes: q.minutes()?.unwrap_or(60),
            },
            Route::ServerActivity => Read::ServerActivity,
            Route::ServerLocks => Read::ServerLocks,
            Route::ServerStatements => Read::ServerStatements {
                limit: q.limit()?.unwrap_or(20),
            },
            Route::Series => Read::Series {
                minutes: bounded(q.minutes, "minutes", 60)?.unwrap_or(60) as u32,
            },
            Route::Health | Route::ResetAll | Route::ResetErrors | Route::Resolve(_) | Route::Dashboard(_) => {
                return Ok(None)
            }
        }))
    }
}

type Answer = Result<Response<Bytes>, Reject>;

/// An error answer, boxed to keep `Result`s small.
pub(crate) struct Reject(Box<Response<Bytes>>);

impl From<Response<Bytes>> for Reject {
    fn from(response: Response<Bytes>) -> Self {
        Reject(Box::new(response))
    }
}

fn reject(status: StatusCode, code: &str, message: &str, parameter: Option<&str>) -> Reject {
    error(status, code, message, parameter).into()
}

async fn route(config: &Arc<LayerConfig>, parts: &http::request::Parts, rest: &str) -> Answer {
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let Some(route) = Route::of(&segments) else {
        return Err(reject(StatusCode::NOT_FOUND, "not_found", "no such route", None));
    };
    let method = if route.mutates() { Method::POST } else { Method::GET };
    let allowed = parts.method == method || (method == Method::GET && parts.method == Method::HEAD);
    if !allowed {
        let mut response = error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            &format!("this route answers {method} only"),
            None,
        );
        let allow = if method == Method::GET { "GET, HEAD" } else { "POST" };
        response.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
        return Err(response.into());
    }
    if let Route::Dashboard(asset) = route {
        if !config.dashboard {
            return Err(reject(StatusCode::NOT_FOUND, "not_found", "no such route", None));
        }
        // The page and its assets hold no data: served without the admin
        // token (a browser sends none when it opens a page; the page asks
        // for it and sends it with each read), under the read guard.
        read_guard(config, parts)?;
        // `…/dashboard/` would resolve the page's relative links one level
        // too deep: sent to `…/dashboard`.
        if asset == Asset::Page && rest.ends_with('/') {
            let path = parts.uri.path().trim_end_matches('/');
            let location = match parts.uri.query() {
                Some(query) => format!("{path}?{query}"),
                None => path.to_owned(),
            };
            let mut response = Response::new(Bytes::new());
            *response.status_mut() = StatusCode::PERMANENT_REDIRECT;
            if let Ok(value) = HeaderValue::try_from(location) {
                response.headers_mut().insert(http::header::LOCATION, value);
            }
            return Ok(response);
        }
        return Ok(super::dashboard::serve(asset));
    }
    if route.mutates() {
        authorize(config, parts, "mutating routes")?;
    } else if route != Route::Health {
        guard_read(config, parts)?;
    }
    let query = Query::parse(parts.uri.query())?;
    let pool = &config.pool;
    let caches = config.caches();
    if let Some(read) = route.read(&query)? {
        let reader = pool.clone();
        let document = caches
            .documents
            .get_blocking(
                read,
                &caches.budget,
                move || reader.json(read).map(Bytes::from).map_err(|e| e.to_string()),
                || Err("the document could not be computed".to_owned()),
                |document| document.as_ref().map_or(0, Bytes::len),
            )
            .await;
        return match document.ok_or_else(|| over_budget(&caches.budget))? {
            Ok(body) => Ok(json_bytes(StatusCode::OK, body)),
            Err(e) => Err(reject(StatusCode::INTERNAL_SERVER_ERROR, "serialization", &e, None)),
        };
    }
    if route.mutates() {
        caches.changed();
    }
    match route {
        Route::ResetAll => {
            pool.reset_stores();
            Ok(json(
                StatusCode::OK,
                &Reset {
                    pool: pool.name(),
                    reset: "stores",
                },
            ))
        }
        Route::ResetErrors => {
            pool.reset_errors();
            Ok(json(
                StatusCode::OK,
                &Reset {
                    pool: pool.name(),
                    reset: "errors",
                },
            ))
        }
        Route::Resolve(id) => match pool.resolve_alert(id, "http") {
            Some(alert) => Ok(json(StatusCode::OK, &alert)),
            None => Err(reject(
                StatusCode::NOT_FOUND,
                "not_found",
                "no active alert has this id",
                None,
            )),
        },
        _ => Ok(health(config).await),
    }
}

#[derive(Serialize)]
struct Reset<'a> {
    pool: &'a str,
    reset: &'static str,
}

/// 429: the documents have sent their share of bytes for now.
fn over_budget(budget: &Budget) -> Response<Bytes> {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "the monitor's routes have sent their share of bytes for now (max_bytes_per_second)",
        None,
    );
    let seconds = budget.retry_after().as_secs().max(1);
    if let Ok(value) = HeaderValue::try_from(seconds.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

/// Whether a reading route may answer this request: with the admin token
/// when reads need it, and as the read guard says.
fn guard_read(config: &LayerConfig, parts: &http::request::Parts) -> Result<(), Reject> {
    if config.reads_need_token {
        authorize(config, parts, "reading routes")?;
    }
    read_guard(config, parts)
}

/// What the application's read guard says of this request.
fn read_guard(config: &LayerConfig, parts: &http::request::Parts) -> Result<(), Reject> {
    if config.read_guard.as_ref().is_some_and(|allow| !allow(parts)) {
        return Err(reject(
            StatusCode::FORBIDDEN,
            "forbidden",
            "reading these routes is not allowed for this request",
            None,
        ));
    }
    Ok(())
}

/// The admin-token check: the mutating routes, and the reading ones when
/// they need it (`what` names them, for the answer when no token is
/// configured).
fn authorize(config: &LayerConfig, parts: &http::request::Parts, what: &str) -> Result<(), Reject> {
    if config.admin_token.is_none() {
        return Err(reject(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("{what} are disabled: no admin token is configured"),
            None,
        ));
    }
    let failures = &config.caches().failed_tokens;
    if !failures.open() {
        // Guessing is slowed for everyone: the admin waits a second.
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many wrong admin tokens: try again in a second",
            None,
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(response.into());
    }
    if token_matches(config, parts) {
        return Ok(());
    }
    failures.spend(1);
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this route needs Authorization: Bearer <admin token>",
        None,
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(response.into())
}

/// Whether the request carries the admin token: `Authorization: Bearer
/// <token>`, the scheme in any case (RFC 9110), the token compared in a
/// time that depends on neither the given token's length nor its bytes.
fn token_matches(config: &LayerConfig, parts: &http::request::Parts) -> bool {
    let Some(token) = &config.admin_token else { return false };
    let given = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given.trim());
    given.is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes()))
}

/// Whether `given` is `secret`, looking at every byte of `secret` and at
/// `given` only through it: the time taken is the same for every `given`.
/// (`subtle`'s slice comparison returns at once on a length mismatch,
/// which tells the secret's length.)
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let mut same = given.len().ct_eq(&secret.len());
    for (i, &s) in secret.iter().enumerate() {
        // Past its end, `given` is compared as zeros: the lengths differ,
        // so the answer is already no.
        let g = given.get(i).copied().unwrap_or(0);
        same &= g.ct_eq(&s);
    }
    bool::from(same)
}

/// Whether this request could read the reading routes (for what a passing
/// response may tell: `Server-Timing`).
pub(crate) fn may_read(config: &LayerConfig, parts: &http::request::Parts) -> bool {
    (!config.reads_need_token || token_matches(config, parts))
        && config.read_guard.as_ref().is_none_or(|allow| allow(parts))
}

/// `GET` on the prefix itself.
#[derive(Serialize)]
struct Health {
    status: &'static str,
    pool: String,
    /// The database's answer to `SELECT 1`, the round trip alone.
    ping_ms: Option<f64>,
    /// The checkout before it: the pool's wait, bb8's validity check, and
    /// a connect when no connection was idle.
    checkout_ms: Option<f64>,
    error: Option<String>,
    connections: u32,
    idle: u32,
    in_use: u32,
    max_size: u32,
    pending: u64,
    consecutive_connect_failures: u32,
    active_alerts: usize,
}

/// The health answer: one ping at a time, shared by the requests that
/// wait for it, and reused while fresh, so that a flood of health requests
/// holds at most one pool connection.
async fn health(config: &Arc<LayerConfig>) -> Response<Bytes> {
    let (status, body) = config
        .caches()
        .health
        .get_spawned((), check_health(config.clone()), || {
            let body = br#"{"status":"unhealthy","error":"the health check could not run"}"#;
            (StatusCode::SERVICE_UNAVAILABLE, Bytes::from_static(body))
        })
        .await;
    json_bytes(status, body)
}

async fn check_health(config: Arc<LayerConfig>) -> (StatusCode, Bytes) {
    let pool = &config.pool;
    let ping = pool.ping(config.health_timeout).await;
    let snapshot = pool.snapshot();
    let active_alerts = pool.active_alerts();
    let healthy = ping.is_ok();
    let body = Health {
        status: if healthy { "healthy" } else { "unhealthy" },
        pool: snapshot.name,
        ping_ms: ping.as_ref().ok().map(|p| p.answer.as_secs_f64() * 1e3),
        checkout_ms: ping.as_ref().ok().map(|p| p.checkout.as_secs_f64() * 1e3),
        error: ping.err(),
        connections: snapshot.connections,
        idle: snapshot.idle,
        in_use: snapshot.in_use,
        max_size: snapshot.max_size,
        pending: snapshot.pending,
        consecutive_connect_failures: snapshot.consecutive_connect_failures,
        active_alerts,
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, json(status, &body).into_body())
}

/// The query string's `minutes` and `limit`.
struct Query<'q> {
    minutes: Option<&'q str>,
    limit: Option<&'q str>,
}

impl<'q> Query<'q> {
    fn parse(query: Option<&'q str>) -> Result<Self, Reject> {
        let mut q = Query {
            minutes: None,
            limit: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "minutes" => &mut q.minutes,
                "limit" => &mut q.limit,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(invalid(key, "is given more than once"));
            }
        }
        Ok(q)
    }

    fn minutes(&self) -> Result<Option<u32>, Reject> {
        bounded(self.minutes, "minutes", MAX_WINDOW_MINUTES as usize).map(|m| m.map(|m| m as u32))
    }

    fn limit(&self) -> Result<Option<usize>, Reject> {
        bounded(self.limit, "limit", MAX_LIMIT)
    }
}

/// A whole number from 1 to `max`, or nothing when absent.
fn bounded(value: Option<&str>, name: &str, max: usize) -> Result<Option<usize>, Reject> {
    let Some(value) = value else { return Ok(None) };
    let why = format!("must be a whole number from 1 to {max}");
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(name, &why));
    }
    match value.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(name, &why)),
    }
}

fn invalid(parameter: &str, why: &str) -> Reject {
    reject(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        &format!("{parameter} {why}"),
        Some(parameter),
    )
}

/// The JSON of every error answer.
#[derive(Serialize)]
struct ErrorBody<'a> {
    status: u16,
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

fn error(status: StatusCode, code: &str, message: &str, parameter: Option<&str>) -> Response<Bytes> {
    json(
        status,
        &ErrorBody {
            status: status.as_u16(),
            error: code,
            message,
            parameter,
        },
    )
}

fn json(status: StatusCode, value: &impl Serialize) -> Response<Bytes> {
    let body = serde_json::to_vec(value).unwrap_or_else(|e| {
        format!(
            "{{\"status\":500,\"error\":\"serialization\",\"message\":{:?}}}",
            e.to_string()
        )
        .into_bytes()
    });
    json_bytes(status, body)
}

fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_secret_itself_matches() {
        let secret = b"s3cret-token";
        assert!(same_secret(b"s3cret-token", secret));
        for given in [
            &b""[..],
            b"s3cret-toke",
            b"s3cret-token!",
            b"S3cret-token",
            b"s3cret-token\0",
        ] {
            assert!(!same_secret(given, secret), "{given:?}");
        }
    }
}
