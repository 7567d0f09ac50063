//! Every alert type fired from a real PostgreSQL failure, through the
//! pool, the stores and the background task, as an application runs it.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use db_monitor::alerts::{Alert, AlertEvent, AlertSeverity, AlertType};
use db_monitor::names::ALERTS_ACTIVE;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{AlertThresholds, DbMonitor, MonitorConfig, MonitorHandle, MonitoredPool};
use support::pg::TempPostgres;
use support::{deadlock, eventually, pool_with, Recorded};

/// What the notifiers heard: (event, type, key, severity, occurrences).
type Heard = Arc<Mutex<Vec<(&'static str, AlertType, String, AlertSeverity, u64)>>>;

struct Setup {
    pool: MonitoredPool<NoTls>,
    rec: Arc<Recorded>,
    heard: Heard,
    _background: MonitorHandle,
}

/// Quick to evaluate and to clear; error rates judged at once (the
/// scenario suite checks the default's minute of evidence).
fn thresholds() -> AlertThresholds {
    AlertThresholds::default()
        .evaluation_interval(Duration::from_millis(50))
        .clear_after(Duration::from_millis(300))
        .error_rate_evidence(Duration::ZERO)
}

/// A pool with a running background task and a notifier that remembers.
async fn setup(name: &str, config: MonitorConfig, server: db_monitor::tokio_postgres::Config, size: u32) -> Setup {
    setup_with(name, config, server, size, 0, Duration::from_secs(5)).await
}

async fn setup_with(
    name: &str,
    config: MonitorConfig,
    server: db_monitor::tokio_postgres::Config,
    size: u32,
    min_idle: u32,
    timeout: Duration,
) -> Setup {
    let heard: Heard = Arc::default();
    let sink = heard.clone();
    let (monitor, rec) = support::monitor_with(config, |builder| {
        builder.notifier(move |event: AlertEvent<'_>| {
            let what = match event {
                AlertEvent::Fired(_) => "fired",
                AlertEvent::Repeated(_) => "repeated",
                AlertEvent::Resolved(_) => "resolved",
                _ => "other",
            };
            let a = event.alert();
            sink.lock()
                .unwrap()
                .push((what, a.alert_type, a.key.clone(), a.severity, a.occurrences));
        })
    });
    let pool = pool_with(&monitor, name, server, size, min_idle, timeout).await;
    let background = monitor.start(&pool);
    Setup {
        pool,
        rec,
        heard,
        _background: background,
    }
}

impl Setup {
    /// Waits (at most 10 s) for an active alert of `alert_type` matching `check`.
    async fn active(&self, alert_type: AlertType, check: impl Fn(&Alert) -> bool) -> Alert {
        let mut found = None;
        let appeared = eventually(Duration::from_secs(10), || {
            found = self
                .pool
                .monitor()
                .alerts()
                .active
                .into_iter()
                .find(|a| a.alert_type == alert_type && check(a));
            found.is_some()
        })
        .await;
        assert!(
            appeared,
            "no active {alert_type} alert; active: {:#?}",
            self.pool.monitor().alerts().active
        );
        found.unwrap()
    }

    /// Waits (at most 10 s) until the alert `id` was resolved by its rule.
    async fn resolved_by_rule(&self, id: &str) -> bool {
        eventually(Duration::from_secs(10), || {
            self.pool
                .monitor()
                .alert_history(10)
                .resolved
                .iter()
                .any(|r| r.id == id && r.resolved_by.as_deref() == Some("rule"))
        })
        .await
    }

    /// The active alerts of `alert_type` now.
    fn active_of(&self, alert_type: AlertType) -> Vec<Alert> {
        let active = self.pool.monitor().alerts().active;
        active.into_iter().filter(|a| a.alert_type == alert_type).collect()
    }

    fn heard(&self, what: &str, alert_type: AlertType) -> usize {
        let heard = self.heard.lock().unwrap();
        heard.iter().filter(|h| h.0 == what && h.1 == alert_type).count()
    }

    /// Waits (at most 5 s) until the notifiers heard `n` such events. The
    /// book shows an alert before the evaluating thread has told the
    /// notifiers about it, so a test that has just seen it must wait.
    async fn heard_n(&self, what: &str, alert_type: AlertType, n: usize) -> bool {
        eventually(Duration::from_secs(5), || self.heard(what, alert_type) >= n).await
            && self.heard(what, alert_type) == n
    }

    fn gauge(&self, alert_type: AlertType, severity: AlertSeverity) -> Option<f64> {
        self.rec.gauge(
            ALERTS_ACTIVE,
            &[("alert_type", alert_type.as_str()), ("severity", severity.as_str())],
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_deadlock_fires_once_repeats_quietly_and_resolves_by_hand() {
    let s = setup(
        "alert_deadlock",
        MonitorConfig::default().alerts(thresholds()),
        support::pg::shared_config(),
        4,
    )
    .await;
    let (update, _) = deadlock(&s.pool).await;
    let table = update.split_whitespace().nth(1).unwrap();
    let alert = s.active(AlertType::Deadlock, |_| true).await;
    assert_eq!(alert.severity, AlertSeverity::High);
    assert_eq!(alert.key.len(), 16, "keyed by the statement's fingerprint");
    assert!(
        alert.message.starts_with(&format!(
            "deadlock detected (40P01) on `UPDATE {table} SET v = v + ? WHERE id = ?`"
        )),
        "{}",
        alert.message
    );
    assert!(s.heard_n("fired", AlertType::Deadlock, 1).await);
    assert!(
        eventually(Duration::from_secs(5), || s
            .gauge(AlertType::Deadlock, AlertSeverity::High)
            == Some(1.0))
        .await
    );

    // The same statement deadlocks again (a new table is a new statement,
    // so run it on the first one's rows again): within the cooldown only
    // the count moves.
    let mut a = s.pool.get().await.unwrap();
    let mut b = s.pool.get().await.unwrap();
    for c in [&a, &b] {
        c.batch_execute("SET deadlock_timeout = '50ms'").await.unwrap();
    }
    let ta = a.transaction().await.unwrap();
    let tb = b.transaction().await.unwrap();
    ta.execute(&update, &[&1_i32]).await.unwrap();
    tb.execute(&update, &[&2_i32]).await.unwrap();
    let (ra, rb) = tokio::join!(ta.execute(&update, &[&2_i32]), tb.execute(&update, &[&1_i32]));
    assert_eq!([&ra, &rb].iter().filter(|r| r.is_err()).count(), 1);
    drop((ta, tb));
    let repeated = s.active(AlertType::Deadlock, |a| a.occurrences == 2).await;
    assert_eq!(repeated.id, alert.id, "the same alert");
    assert_eq!(s.heard("fired", AlertType::Deadlock), 1);
    assert_eq!(s.heard("repeated", AlertType::Deadlock), 0);

    // Resolved by hand: the notifiers hear it, it moves to the history.
    assert!(s.pool.monitor().resolve_alert("ffffffffffffffff", "test").is_none());
    let resolved = s.pool.monitor().resolve_alert(&alert.id, "the test").expect("active");
    assert_eq!(resolved.resolved_by.as_deref(), Some("the test"));
    assert_eq!(s.heard("resolved", AlertType::Deadlock), 1);
    assert!(s.pool.monitor().alerts().active.iter().all(|a| a.id != alert.id));
    let history = s.pool.monitor().alert_history(10);
    assert_eq!(history.resolved[0].id, alert.id);
    assert_eq!(history.resolved[0].occurrences, 2);
    assert_eq!(s.gauge(AlertType::Deadlock, AlertSeverity::High), Some(0.0));
    let json = serde_json::to_string(&history).unwrap();
    assert!(!json.contains("v + 1"), "no literal in the alert: {json}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_and_lock_timeouts_fire_transaction_timeout_alerts() {
    let s = setup(
        "alert_timeouts",
        MonitorConfig::default().alerts(thresholds()),
        support::pg::shared_config(),
        3,
    )
    .await;
    let conn = s.pool.get().await.unwrap();
    conn.batch_execute("SET statement_timeout = '50ms'").await.unwrap();
    assert!(conn.query("SELECT pg_sleep(2)", &[]).await.is_err());
    let alert = s
        .active(AlertType::TransactionTimeout, |a| a.key == "statement_timeout")
        .await;
    assert_eq!(alert.severity, AlertSeverity::Medium);
    assert!(
        alert
            .message
            .starts_with("statement timeout (57014) on `SELECT pg_sleep(?)`"),
        "{}",
        alert.message
    );
    conn.batch_execute("RESET statement_timeout").await.unwrap();

    // A lock held by another transaction: a lock timeout, its own alert.
    let table = support::unique("locked");
    conn.batch_execute(&format!("CREATE TABLE {table} (id int)"))
        .await
        .unwrap();
    let mut holder = s.pool.get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .await
        .unwrap();
    conn.batch_execute("SET lock_timeout = '50ms'").await.unwrap();
    assert!(conn.query(&format!("SELECT * FROM {table}"), &[]).await.is_err());
    tx.rollback().await.unwrap();
    let lock = s
        .active(AlertType::TransactionTimeout, |a| a.key == "lock_timeout")
        .await;
    assert!(
        lock.message.starts_with("lock timeout (55P03) on `SELECT * FROM "),
        "{}",
        lock.message
    );
    assert_ne!(lock.id, alert.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_statements_fire_one_alert_per_fingerprint() {
    let s = setup(
        "alert_slow",
        MonitorConfig::default()
            .alerts(thresholds())
            .slow_query_threshold(Duration::from_millis(100)),
        support::pg::shared_config(),
        2,
    )
    .await;
    let conn = s.pool.get().await.unwrap();
    for _ in 0..3 {
        conn.query("SELECT pg_sleep(0.12)", &[]).await.unwrap();
    }
    conn.query("SELECT pg_sleep(0.11), 'other'", &[]).await.unwrap();
    conn.query("SELECT 1", &[]).await.unwrap();
    let first = s.active(AlertType::SlowQuery, |a| a.occurrences == 3).await;
    assert!(
        first.message.starts_with("`SELECT pg_sleep(?)` took "),
        "{}",
        first.message
    );
    assert!(first.message.ends_with("(slow threshold 100 ms)"), "{}", first.message);
    s.active(AlertType::SlowQuery, |a| a.message.contains("pg_sleep(?), ?"))
        .await;
    assert!(eventually(Duration::from_secs(2), || s.heard("fired", AlertType::SlowQuery) == 2).await);
    let slow = s.active_of(AlertType::SlowQuery);
    assert_eq!(slow.len(), 2, "{slow:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_really_full_pool_fires_pool_exhaustion_timeout_and_utilization() {
    let s = setup_with(
        "alert_full",
        MonitorConfig::default().alerts(thresholds()),
        support::pg::shared_config(),
        2,
        0,
        Duration::from_millis(600),
    )
    .await;
    let a = s.pool.get().await.unwrap();
    let b = s.pool.get().await.unwrap();
    // A checkout waits (utilization 100% with a waiter) and then times out.
    let err = s.pool.get().await.unwrap_err();
    assert_eq!(err.kind(), db_monitor::ErrorKind::PoolExhausted);
    let timeout = s.active(AlertType::PoolExhaustion, |a| a.key == "timeout").await;
    assert_eq!(timeout.severity, AlertSeverity::Critical);
    let utilization = s.active(AlertType::PoolExhaustion, |a| a.key == "utilization").await;
    assert_eq!(utilization.severity, AlertSeverity::High);
    assert!(
        utilization
            .message
            .starts_with("pool at 100% now (2 of 2 connections in use, 1 checkouts waiting"),
        "{}",
        utilization.message
    );
    // Both connections are held with no statement running while the third
    // checkout queued: the pool starved by its holders, named by a call
    // site of theirs (one connection each; no request holds them).
    let held_idle = s.active(AlertType::PoolExhaustion, |a| a.key == "held_idle").await;
    assert!(
        held_idle
            .message
            .contains("while 2 of the 2 checked-out connections run no statement")
            && held_idle
                .message
                .contains("1 held idle by a checkout outside any request at tests/alerts.rs:"),
        "{}",
        held_idle.message
    );
    // Utilization is a condition: once the pool is free again and
    // clear_after has passed, it resolves itself (as does held_idle); the
    // timeout (an event) stays.
    drop((a, b));
    assert!(s.resolved_by_rule(&utilization.id).await);
    assert!(s.resolved_by_rule(&held_idle.id).await);
    assert!(s.pool.monitor().alerts().active.iter().any(|a| a.id == timeout.id));
    assert!(s.heard_n("resolved", AlertType::PoolExhaustion, 2).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_statements_fire_high_error_rates_with_severity_by_window() {
    let s = setup(
        "alert_errors",
        MonitorConfig::default().alerts(thresholds()),
        support::pg::shared_config(),
        2,
    )
    .await;
    let conn = s.pool.get().await.unwrap();
    // One failure in one statement is no alert.
    assert!(conn.query("SELECT 1 / 0", &[]).await.is_err());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(s.active_of(AlertType::HighErrorRate).is_empty());
    // 11 of 30 fail: over every window's threshold with enough statements.
    for i in 0..29 {
        let sql = if i % 3 == 0 { "SELECT 1 / 0" } else { "SELECT 1" };
        let _ = conn.query(sql, &[]).await;
    }
    // The condition is evaluated again and again; wait for the final counts.
    let five = s
        .active(AlertType::HighErrorRate, |a| {
            a.key == "5m" && a.message.contains("(11 of 30;")
        })
        .await;
    assert_eq!(five.severity, AlertSeverity::High);
    assert!(
        five.message.starts_with("36.7% of statements failed over the last"),
        "{}",
        five.message
    );
    assert!(
        five.message.ends_with("(11 of 30; threshold 10.0%)"),
        "{}",
        five.message
    );
    assert_eq!(
        s.active(AlertType::HighErrorRate, |a| a.key == "15m").await.severity,
        AlertSeverity::Medium
    );
    assert_eq!(
        s.active(AlertType::HighErrorRate, |a| a.key == "1h").await.severity,
        AlertSeverity::Low
    );
    // The score counts them.
    let score = s.pool.monitor().performance(60);
    assert!(score.parts.alerts.score < 1.0, "{:?}", score.parts.alerts);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_server_fires_connection_failure_and_recovery_resolves_it() {
    if !support::pg::can_start_servers() {
        eprintln!("skipped: needs its own server (initdb not on PATH)");
        return;
    }
    let server = Arc::new(TempPostgres::start(&[]));
    let s = setup_with(
        "alert_down",
        MonitorConfig::default().alerts(thresholds()),
        server.config(),
        2,
        1,
        Duration::from_millis(300),
    )
    .await;
    assert!(eventually(Duration::from_secs(5), || s.pool.state().connections == 1).await);

    // The server shuts the idle connection down (57P01): critical.
    let stopper = server.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await.unwrap();
    let shutdown = s
        .active(AlertType::ConnectionFailure, |a| a.key == "admin_shutdown")
        .await;
    assert_eq!(shutdown.severity, AlertSeverity::Critical);
    assert!(shutdown.message.contains("57P01"), "{}", shutdown.message);

    // Connects fail in a row: high, once the streak reaches 5.
    for _ in 0..20 {
        let _ = s.pool.get().await;
        if s.pool.monitor().alerts().active.iter().any(|a| a.key == "consecutive") {
            break;
        }
    }
    let streak = s.active(AlertType::ConnectionFailure, |a| a.key == "consecutive").await;
    assert_eq!(streak.severity, AlertSeverity::High);
    assert!(streak.message.contains("last connect error"), "{}", streak.message);

    // The server comes back: a connect succeeds, the streak ends, and the
    // condition alert resolves itself.
    let starter = server.clone();
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .unwrap();
    let mut served = false;
    for _ in 0..50 {
        if let Ok(conn) = s.pool.get().await {
            served = conn.query_one("SELECT 1", &[]).await.is_ok();
            if served {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served);
    assert!(s.resolved_by_rule(&streak.id).await, "{:#?}", s.pool.monitor().alerts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_background_task_evaluate_alerts_applies_the_rules() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default().alerts(thresholds()));
    let pool = support::pool(&monitor, "alert_manual", 4).await;
    let _ = deadlock(&pool).await;
    assert!(
        pool.monitor().alerts().active.is_empty(),
        "nothing evaluates on its own"
    );
    pool.monitor().evaluate_alerts();
    assert_eq!(pool.monitor().alerts().active.len(), 1);
    assert_eq!(pool.monitor().alerts().active[0].alert_type, AlertType::Deadlock);
    let _ = DbMonitor::clone(&monitor);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_first_hands_what_the_alert_engine_has_not_read_to_its_rules() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default().alerts(thresholds()));
    let pool = support::pool(&monitor, "alert_reset", 4).await;
    let _ = deadlock(&pool).await;
    pool.monitor().reset_stores();
    assert_eq!(pool.monitor().error_report(None).errors, 0, "the store was emptied");
    pool.monitor().evaluate_alerts();
    let active = pool.monitor().alerts().active;
    assert_eq!(active.len(), 1, "the deadlock reached the rules: {active:#?}");
    assert_eq!(active[0].alert_type, AlertType::Deadlock);

    let _ = deadlock(&pool).await;
    pool.monitor().reset_errors();
    pool.monitor().evaluate_alerts();
    let seen: u64 = pool.monitor().alerts().active.iter().map(|a| a.occurrences).sum();
    assert_eq!(seen, 2, "so did the second one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pool_seen_at_a_sample_stays_alerted_until_a_sample_says_otherwise() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default().alerts(thresholds()));
    let pool = support::pool(&monitor, "alert_sampled", 2).await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    pool.monitor().sample();
    drop((a, b));
    pool.monitor().evaluate_alerts();
    let fired = pool.monitor().alerts().active;
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert!(
        fired[0].message.starts_with("pool at 100% at the last sample (2 of 2"),
        "{}",
        fired[0].message
    );
    // Longer than clear_after, but the sample still speaks for its interval.
    tokio::time::sleep(Duration::from_millis(400)).await;
    pool.monitor().evaluate_alerts();
    assert_eq!(pool.monitor().alerts().active.len(), 1);
    // The next sample still counts the two held at the start of its
    // interval; the one after it sees a calm pool, and clear_after later
    // the alert resolves.
    pool.monitor().sample();
    pool.monitor().sample();
    pool.monitor().evaluate_alerts();
    tokio::time::sleep(Duration::from_millis(400)).await;
    pool.monitor().evaluate_alerts();
    assert!(
        pool.monitor().alerts().active.is_empty(),
        "{:#?}",
        pool.monitor().alerts()
    );
    assert_eq!(
        pool.monitor().alert_history(1).resolved[0].resolved_by.as_deref(),
        Some("rule")
    );
}

/// A statement with a slow threshold of its own: it alone fires the slow
/// alert at its threshold, while another statement as slow stays under the
/// pool's threshold, and its slow record carries the threshold it was held
/// to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_s_own_threshold_fires_the_slow_alert_for_it_only() {
    let s = setup(
        "alert_own_threshold",
        MonitorConfig::default()
            .alerts(thresholds())
            .slow_query_threshold(Duration::from_secs(2))
            .slow_statement("SELECT pg_sleep($1), 'strict'", Duration::from_millis(50)),
        support::pg::shared_config(),
        2,
    )
    .await;
    let conn = s.pool.get().await.unwrap();
    // Literals do not matter: the same normalized statement twice.
    conn.query("SELECT pg_sleep(0.1), 'strict'", &[]).await.unwrap();
    conn.query("SELECT pg_sleep(0.06), 'other literal'", &[]).await.unwrap();
    // Another statement, as slow, held to the pool's 2 s.
    conn.query("SELECT pg_sleep(0.1)", &[]).await.unwrap();
    let alert = s.active(AlertType::SlowQuery, |a| a.occurrences == 2).await;
    assert!(alert.message.contains("`SELECT pg_sleep(?), ?`"), "{}", alert.message);
    assert!(alert.message.ends_with("(slow threshold 50 ms)"), "{}", alert.message);
    let slow = s.pool.monitor().slow_query_report(None, 10);
    assert_eq!(slow.recent.len(), 2, "{slow:#?}");
    assert!(slow.recent.iter().all(|r| r.threshold_ms == 50.0), "{slow:#?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let slow_alerts = s.active_of(AlertType::SlowQuery).len();
    assert_eq!(slow_alerts, 1);
}

/// Two routes with latency objectives behind the layer; a statement of one
/// of them is slowed past its bound. Its objective burns its budget over
/// the last hour and the last 5 minutes, so its fast-burn alert fires
/// (critical), and the other route's does not; `…/objectives` and the
/// performance document show both, and the counters count by route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_burning_its_objective_pages_and_the_other_route_does_not() {
    use http::{Request, Response};
    use http_body_util::Full;
    use tower::{Layer, ServiceExt};
    let s = setup(
        "alert_objectives",
        MonitorConfig::default()
            .alerts(thresholds())
            .objective(db_monitor::Objective::route("GET /login").latency(Duration::from_millis(30), 0.99))
            .objective(
                db_monitor::Objective::route("GET /search")
                    .latency(Duration::from_millis(30), 0.99)
                    .success(0.999),
            ),
        support::pg::shared_config(),
        2,
    )
    .await;
    let pool = s.pool.clone();
    let work = tower::service_fn(move |request: Request<Full<bytes::Bytes>>| {
        let pool = pool.clone();
        async move {
            let conn = pool.get().await.expect("checkout");
            let sql = if request.uri().path() == "/login" {
                "SELECT pg_sleep(0.05)" // the slowed statement: past 30 ms
            } else {
                "SELECT 1"
            };
            conn.query(sql, &[]).await.expect("statement");
            Ok::<_, std::convert::Infallible>(Response::new(Full::new(bytes::Bytes::new())))
        }
    });
    let service = db_monitor::DbMonitorLayer::new(s.pool.clone())
        .route_label(|_, uri| Some(format!("GET {}", uri.path())))
        .layer(work);
    for path in ["/login", "/search", "/login", "/search", "/login", "/search"] {
        let request = Request::get(path).body(Full::new(bytes::Bytes::new())).unwrap();
        assert!(service.clone().oneshot(request).await.unwrap().status().is_success());
    }
    let page = s.active(AlertType::ObjectiveBurn, |_| true).await;
    assert_eq!(page.key, "GET /login latency");
    assert_eq!(page.severity, AlertSeverity::Critical);
    assert!(
        page.message.contains("burns its error budget 100.0x"),
        "{}",
        page.message
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let burning: Vec<_> = s
        .active_of(AlertType::ObjectiveBurn)
        .into_iter()
        .map(|a| a.key)
        .collect();
    assert_eq!(burning, ["GET /login latency"]);

    let statuses = s.pool.monitor().objectives();
    let of = |route: &str, objective: &str| {
        statuses
            .iter()
            .find(|o| o.route == route && o.objective == objective)
            .unwrap_or_else(|| panic!("{route} {objective}: {statuses:#?}"))
    };
    let login = of("GET /login", "latency");
    assert_eq!((login.requests, login.bad, login.compliance), (3, 3, Some(0.0)));
    assert!((login.budget_remaining.unwrap() + 99.0).abs() < 1e-6, "{login:#?}");
    let search = of("GET /search", "latency");
    assert_eq!(
        (search.requests, search.bad, search.budget_remaining),
        (3, 0, Some(1.0))
    );
    assert_eq!(of("GET /search", "success").bad, 0);
    assert_eq!(s.pool.monitor().performance(60).objectives, statuses);
    let counted = |name: &str, route: &str| s.rec.counter(name, &[("http_route", route)]);
    assert_eq!(counted(db_monitor::names::OBJECTIVE_REQUESTS, "GET /login"), 3);
    assert_eq!(counted(db_monitor::names::OBJECTIVE_REQUESTS_SLOW, "GET /login"), 3);
    assert_eq!(counted(db_monitor::names::OBJECTIVE_REQUESTS_SLOW, "GET /search"), 0);
}
