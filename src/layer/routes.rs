//! The layer's routes: each request under the prefix to its answer.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW};
#[cfg(feature = "prometheus")]
use http::header::{ACCEPT, CONTENT_TYPE, VARY};
use http::{Method, Response, StatusCode};
use serde::Serialize;

use super::answer::{error, json, json_bytes, over_budget, reject, Answer, Reject};
use super::auth::{authorize, guard_read, read_guard};
use super::dashboard::Asset;
use super::future::Routed;
use super::layer::LayerConfig;
use super::read::{Query, Read, Route};
#[cfg(feature = "prometheus")]
use crate::prometheus::Format;

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
        let format = Format::negotiate(parts.headers.get(ACCEPT).map(HeaderValue::as_bytes));
        let Some(body) = caches
            .exposition
            .get_blocking(
                format,
                &caches.budget,
                move || Bytes::from(format.render(&handle)),
                Bytes::new,
                Bytes::len,
            )
            .await
        else {
            return over_budget(&caches.budget);
        };
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(format.content_type()));
        headers.insert(VARY, HeaderValue::from_static("accept"));
        response
    })
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
        return dashboard(config, parts, asset, rest);
    }
    if route.mutates() {
        authorize(config, parts, "mutating routes")?;
    } else if !matches!(route, Route::Health | Route::Ready) {
        guard_read(config, parts)?;
    }
    let query = Query::parse(parts.uri.query())?;
    let pool = &config.pool;
    if let Some(read) = route.read(&query)? {
        return document(config, read).await;
    }
    if route.mutates() {
        config.caches().changed();
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
        Route::Ready => Ok(ready(config)),
        // `null` without a set: the dashboard asks either way.
        Route::Replicas => Ok(json(StatusCode::OK, &config.replicas.as_ref().map(|report| report()))),
        _ => Ok(health(config).await),
    }
}

/// The readiness answer: computed from the pool's live load, no query, so
/// answered at once; 503 with `Retry-After` when unready.
fn ready(config: &LayerConfig) -> Response<Bytes> {
    let report = config.pool.readiness();
    if report.is_ready() {
        return json(StatusCode::OK, &report);
    }
    let mut response = json(StatusCode::SERVICE_UNAVAILABLE, &report);
    let seconds = report.retry_after.as_secs().max(1);
    response
        .headers_mut()
        .insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

/// A file of the dashboard. The page and its assets hold no data: served
/// without the admin token (a browser sends none when it opens a page; the
/// page asks for it and sends it with each read), under the read guard.
fn dashboard(config: &LayerConfig, parts: &http::request::Parts, asset: Asset, rest: &str) -> Answer {
    if !config.dashboard {
        return Err(reject(StatusCode::NOT_FOUND, "not_found", "no such route", None));
    }
    read_guard(config, parts)?;
    // `…/dashboard/` would resolve the page's relative links one level too
    // deep: sent to `…/dashboard`.
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
    Ok(super::dashboard::serve(asset))
}

/// A reading route's document: computed once at a time and shared, within
/// the byte budget.
async fn document(config: &LayerConfig, read: Read) -> Answer {
    let caches = config.caches();
    let reader = config.pool.clone();
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
    match document.ok_or_else(|| over_budget(&caches.budget))? {
        Ok(body) => Ok(json_bytes(StatusCode::OK, body)),
        Err(e) => Err(reject(StatusCode::INTERNAL_SERVER_ERROR, "serialization", &e, None)),
    }
}

#[derive(Serialize)]
struct Reset<'a> {
    pool: &'a str,
    reset: &'static str,
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
