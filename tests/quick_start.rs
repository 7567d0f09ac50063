//! The quick start's way in, on real PostgreSQL: the monitor from the
//! environment's settings, `connect` to the configured database, the layer
//! made before any runtime runs, and `DbError` as a handler's answer.

mod support;

use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{ConnectError, DbError, ErrorKind, MonitorConfig, MonitoredPool};
use http::StatusCode;
use support::{eventually, monitor};
use tower::ServiceExt;

#[tokio::test]
async fn connect_opens_a_pool_to_the_configured_database_sized_by_max_size() {
    let pg = support::pg::shared_config();
    let (monitor, _) = monitor(MonitorConfig::default().database(pg).max_size(3));
    let pool = monitor.connect(NoTls).await.expect("a pool");
    assert_eq!(pool.monitor().name(), "primary");
    let conn = pool.get().await.unwrap();
    let one: i32 = conn.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    assert_eq!(pool.state().connections, 1, "lazy: one checkout, one connection");
    assert_eq!(pool.inner().state().connections, 1);
    drop(conn);
    let held: Vec<_> = futures_util::future::join_all((0..3).map(|_| pool.get())).await;
    assert!(held.iter().all(Result::is_ok));
    assert_eq!(pool.state().connections, 3, "max_size is the pool's bound");
}

#[tokio::test]
async fn connect_without_a_database_names_database_url() {
    let (monitor, _) = monitor(MonitorConfig::default());
    let err = monitor.connect(NoTls).await.map(drop).unwrap_err();
    let ConnectError::Config(config) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(config.variable(), "DATABASE_URL");
    assert!(err.to_string().starts_with("DATABASE_URL is not set"), "{err}");
}

#[tokio::test]
async fn connect_answers_with_the_error_of_a_min_idle_connection_that_fails() {
    // A server that refuses at once: with min_idle 1, connect opens one
    // connection and its error is the answer.
    let mut refused: db_monitor::tokio_postgres::Config = "host=127.0.0.1 port=1 user=nobody dbname=x".parse().unwrap();
    refused.connect_timeout(Duration::from_secs(2));
    let (monitor, _) = monitor(
        MonitorConfig::default()
            .database(refused)
            .min_idle(1)
            .pool_timeout(Duration::from_secs(2)),
    );
    let err = monitor.connect(NoTls).await.map(drop).unwrap_err();
    assert!(matches!(err, ConnectError::Database(_)), "{err:?}");
}

/// GET `uri` on `app`: the status, headers and body.
async fn call(app: &Router, uri: &str) -> (StatusCode, http::HeaderMap, bytes::Bytes) {
    use http_body_util::BodyExt;
    let request = http::Request::get(uri).body(axum::body::Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
}

async fn orders(State(pool): State<MonitoredPool<NoTls>>) -> Result<String, DbError> {
    let conn = pool.get().await?;
    let row = conn.query_one("SELECT $1::int4 + 1", &[&41_i32]).await?;
    Ok(format!("{}", row.get::<_, i32>(0)))
}

async fn fails(State(pool): State<MonitoredPool<NoTls>>) -> Result<String, DbError> {
    let conn = pool.get().await?;
    conn.batch_execute("SET statement_timeout = '20ms'").await?;
    let result = conn.query("SELECT pg_sleep(1), 'a literal'", &[]).await;
    conn.batch_execute("RESET statement_timeout").await?;
    result?;
    Ok("slept".to_owned())
}

async fn holds(State(pool): State<MonitoredPool<NoTls>>) -> Result<String, DbError> {
    let _a = pool.get().await?;
    let _b = pool.get().await?;
    Ok("held two".to_owned())
}

/// The router is built on a thread with no runtime, as an application's
/// `main` may build it before starting one; the layer starts the
/// background task on the first request.
#[test]
fn a_layer_made_outside_a_runtime_starts_its_background_on_the_first_request() {
    let pg = support::pg::shared_config();
    let (monitor, _) = monitor(
        MonitorConfig::default()
            .database(pg)
            .max_size(1)
            .pool_timeout(Duration::from_millis(200))
            .health_check_interval(Duration::from_millis(200)),
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let pool = runtime.block_on(monitor.connect(NoTls)).expect("a pool");
    let app: Router = Router::new()
        .route("/orders", get(orders))
        .route("/fails", get(fails))
        .route("/holds", get(holds))
        .with_state(pool.clone())
        .layer(monitor.layer(&pool));
    assert!(
        pool.monitor().trend_report(None).samples.is_empty(),
        "nothing ran the background yet"
    );
    runtime.block_on(async move {
        let (status, _, body) = call(&app, "/orders").await;
        assert_eq!(status, StatusCode::OK, "{body:?}");
        assert_eq!(&body[..], b"42");
        // The background task samples the pool as it starts.
        assert!(
            eventually(Duration::from_secs(5), || !pool
                .monitor()
                .trend_report(None)
                .samples
                .is_empty())
            .await,
            "the background task ran after the first request"
        );

        // A statement timeout: a 504 naming the class, nothing of the statement.
        let (status, headers, body) = call(&app, "/fails").await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(headers["content-type"], "application/json");
        assert_eq!(&body[..], br#"{"error":"statement_timeout"}"#);

        // A checkout that times out (the handler holds the one connection
        // and asks for another): a 503.
        let (status, _, body) = call(&app, "/holds").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(&body[..], br#"{"error":"pool_exhausted"}"#);
    });
}

#[tokio::test]
async fn db_error_keeps_its_kind_and_source() {
    let pool = {
        let (monitor, _) = monitor(MonitorConfig::default());
        support::pool(&monitor, "db_error", 2).await
    };
    let (_, deadlock) = support::deadlock(&pool).await;
    let error = DbError::from(deadlock);
    assert_eq!(error.kind(), ErrorKind::Deadlock);
    assert_eq!(error.status(), StatusCode::CONFLICT);
    assert!(error.as_statement().is_some() && error.as_checkout().is_none());
    assert!(std::error::Error::source(&error).is_some());
}
