//! Forecasts and anomalies on real PostgreSQL, with the minute and the
//! evidence window shortened by configuration: a statement made slower
//! after its baseline is flagged, and a ramp of concurrent holders on a
//! small pool is forecast before the first checkout times out.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use db_monitor::alerts::AlertType;
use db_monitor::{AlertThresholds, AnomalyThresholds, ForecastThresholds, MonitorConfig};
use support::pg::shared_config;
use support::pool_with;

/// `SELECT pg_sleep($1)` at 1 ms for a baseline, then at 60 ms: the
/// statement is flagged (its alert fires, the query performance marks it
/// with its deviations and baseline), and other statements are not. The
/// step stays many deviations out even when a loaded machine makes the
/// baseline noisy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_made_slower_is_flagged_against_its_baseline() {
    let config = MonitorConfig::default().slot(Duration::from_millis(400)).alerts(
        AlertThresholds::default()
            .evaluation_interval(Duration::from_millis(50))
            .anomaly(AnomalyThresholds::default().warmup(4).min_calls(5).consensus(2, 3)),
    );
    let (monitor, recorded) = support::monitor(config);
    let pool = pool_with(&monitor, "anomaly", shared_config(), 6, 0, Duration::from_secs(5)).await;
    let _background = monitor.start(&pool);

    let slow = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (pool, slow, stop) = (pool.clone(), slow.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let conn = pool.get_owned().await.unwrap();
            while !stop.load(Ordering::Relaxed) {
                let seconds = if slow.load(Ordering::Relaxed) { 0.06_f64 } else { 0.001 };
                conn.query("SELECT pg_sleep($1)", &[&seconds]).await.unwrap();
                // Another statement, steady throughout.
                conn.query("SELECT 1", &[]).await.unwrap();
            }
        }));
    }
    // The baseline: warm-up and a few normal minutes.
    tokio::time::sleep(Duration::from_millis(400 * 8)).await;
    let before = pool.monitor().anomalies();
    slow.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let mut found = None;
    while started.elapsed() < Duration::from_secs(10) {
        let anomalies = pool.monitor().anomalies();
        if let Some(a) = anomalies.iter().find(|a| a.statement.contains("pg_sleep")) {
            found = Some((started.elapsed(), a.clone()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (after, anomaly) = found.unwrap_or_else(|| {
        let sleeps = pool.monitor().query_performance(1, 10);
        let sleeps = sleeps.by_statement.iter().find(|s| s.statement.contains("pg_sleep"));
        panic!("no anomaly; before the step: {before:?}; the statement over the last minute: {sleeps:#?}")
    });
    // Read while the statement is still slow: the query performance marks
    // it, and the gauge counts it.
    let report = pool.monitor().query_performance(5, 10);
    let gauge = recorded.gauge("db_monitor_anomalous_statements", &[("kind", "latency")]);
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    // k = 2 minutes of 400 ms after the step, and the tick's delay.
    assert!(after < Duration::from_secs(3), "flagged after {after:?}");
    assert_eq!(anomaly.kind, "latency");
    // pg_sleep(0.06) takes at least 60 ms (the histogram's p95 may read a
    // few percent under); the baseline is the old level (1 ms, up to about
    // 12 ms on a loaded machine), not the new one.
    assert!(anomaly.current >= 50.0, "{anomaly:?}");
    assert!(anomaly.baseline < 20.0, "{anomaly:?}");
    assert!(anomaly.z >= 4.0 && anomaly.robust_z.unwrap() >= 4.0, "{anomaly:?}");
    assert!(
        !pool.monitor().anomalies().iter().any(|a| a.statement == "SELECT ?"),
        "the steady statement is not anomalous"
    );
    let marked = report
        .by_statement
        .iter()
        .find(|s| s.statement.contains("pg_sleep"))
        .expect("listed");
    let mark = marked
        .anomalies
        .first()
        .unwrap_or_else(|| panic!("not marked: {marked:#?}"));
    assert_eq!(
        (mark.kind, mark.fingerprint.as_str()),
        ("latency", anomaly.fingerprint.as_str())
    );
    assert!(mark.z >= 4.0 && mark.baseline < 20.0, "{mark:?}");
    assert!(report.anomalies.iter().any(|a| a.fingerprint == anomaly.fingerprint));
    assert!(gauge.is_some_and(|n| n >= 1.0), "{gauge:?}");
    let fired = support::eventually(Duration::from_secs(2), || {
        pool.monitor()
            .alerts()
            .active
            .iter()
            .any(|a| a.alert_type == AlertType::LatencyAnomaly && a.message.contains("pg_sleep"))
    })
    .await;
    assert!(fired, "{:#?}", pool.monitor().alerts());
}

/// Holders join a pool of 8 one every 250 ms and keep their connection:
/// the forecast (window 1 s, sampled every 50 ms) is reported, and its
/// gauge set, before the first checkout times out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ramp_of_holders_is_forecast_before_the_first_timeout() {
    let config = MonitorConfig::default().alerts(
        AlertThresholds::default()
            .evaluation_interval(Duration::from_millis(50))
            .forecast(
                ForecastThresholds::default()
                    .interval(Duration::from_millis(50))
                    .window(Duration::from_secs(1))
                    .horizon(Duration::from_secs(60)),
            ),
    );
    let (monitor, recorded) = support::monitor(config);
    let pool = pool_with(&monitor, "forecast", shared_config(), 8, 8, Duration::from_secs(1)).await;
    let _background = monitor.start(&pool);
    // A steady second before the ramp.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(pool.monitor().forecast().map(|f| f.state), Some("steady"));
    let gauge = recorded.gauge("db_monitor_pool_exhausted_in_seconds", &[]);
    assert!(gauge.is_some_and(f64::is_nan), "NaN without a forecast: {gauge:?}");

    let start = Instant::now();
    let (timed_out_tx, mut timed_out) = tokio::sync::mpsc::unbounded_channel();
    let mut holders = Vec::new();
    for i in 0..12u64 {
        let pool = pool.clone();
        let timed_out_tx = timed_out_tx.clone();
        holders.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(250 * i)).await;
            match pool.get_owned().await {
                Ok(conn) => {
                    tokio::time::sleep(Duration::from_secs(8)).await;
                    drop(conn);
                }
                Err(_) => {
                    let _ = timed_out_tx.send(Instant::now());
                }
            }
        }));
    }
    let mut forecast_at = None;
    let mut first_timeout = None;
    while start.elapsed() < Duration::from_secs(8) && (forecast_at.is_none() || first_timeout.is_none()) {
        if forecast_at.is_none() {
            if let Some(f) = pool
                .monitor()
                .forecast()
                .filter(|f| f.exhausted_in_seconds.is_some() && f.state == "forecast")
            {
                forecast_at = Some((Instant::now(), f));
            }
        }
        if first_timeout.is_none() {
            first_timeout = timed_out.try_recv().ok();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (at, forecast) = forecast_at.expect("a forecast");
    let timeout = first_timeout.expect("a checkout timed out");
    assert!(
        at < timeout,
        "forecast {:?} after the first timeout {:?}",
        at - start,
        timeout - start
    );
    let seconds = forecast.exhausted_in_seconds.unwrap();
    assert!(seconds > 0.0 && seconds < 60.0, "{forecast:#?}");
    assert!(forecast.evidence.slope_per_minute > 0.0);
    assert!(forecast.evidence.window_seconds >= 1.0);
    assert!(recorded
        .gauge("db_monitor_pool_exhausted_in_seconds", &[])
        .is_some_and(f64::is_finite));
    let fired = support::eventually(Duration::from_secs(2), || {
        pool.monitor()
            .alerts()
            .active
            .iter()
            .any(|a| a.alert_type == AlertType::PoolExhaustionForecast && a.key == "forecast")
    })
    .await;
    assert!(fired, "{:#?}", pool.monitor().alerts());
    for h in holders {
        h.abort();
    }
}
