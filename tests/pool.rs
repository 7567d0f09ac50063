//! The monitored pool on real PostgreSQL: exact accounting under
//! concurrency, every client method, sessions, leaks, `track`, label caps.

mod support;

use std::pin::pin;
use std::time::Duration;

use db_monitor::names::{
    CONNECTIONS_CREATED, CONNECTION_COUNT, CONNECTION_LEAKS, CONNECTION_MAX, CONNECTION_USE_TIME, CONNECTION_WAIT_TIME,
    ERRORS, OPERATION_DURATION, QUERY_SUMMARY, RESPONSE_STATUS_CODE, TRACKED_DURATION, TRANSACTION_DURATION,
};
use db_monitor::sql::Operation;
use db_monitor::tokio_postgres::types::Type;
use db_monitor::tokio_postgres::SimpleQueryMessage;
use db_monitor::{AlertThresholds, ErrorKind, MonitorConfig};
use futures_util::{SinkExt, TryStreamExt};
use support::{eventually, monitor, pool, pool_with, unique};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounting_is_exact_for_32_tasks_of_2000_statements() {
    const TASKS: usize = 32;
    const BATCHES: usize = 20;
    const PER_BATCH: usize = 100;
    let (monitor, rec) = monitor(MonitorConfig::default());
    // bb8 lets a task that just returned a connection take it again ahead
    // of woken waiters, so with 32 tasks on 8 connections one waiter can
    // wait a long time: the timeout here is generous on purpose.
    let pool = pool_with(
        &monitor,
        "accounting",
        support::pg::shared_config(),
        8,
        0,
        Duration::from_secs(120),
    )
    .await;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut failures = 0;
            for _ in 0..BATCHES {
                let conn = pool.get().await.unwrap();
                for i in 0..PER_BATCH {
                    if i == PER_BATCH - 1 {
                        // Division by zero: 22012, an `other` error.
                        let err = conn.query_one("SELECT 1 / $1::int4", &[&0_i32]).await.unwrap_err();
                        assert_eq!(ErrorKind::of(&err), ErrorKind::Other);
                        failures += 1;
                    } else {
                        let v: i32 = conn.query_one("SELECT $1::int4", &[&(t as i32)]).await.unwrap().get(0);
                        assert_eq!(v, t as i32);
                    }
                }
                let session = conn.session();
                assert_eq!((session.statements, session.errors), (PER_BATCH as u64, 1));
            }
            failures
        }));
    }
    let mut failures = 0;
    for task in tasks {
        failures += task.await.unwrap();
    }
    let total = TASKS * BATCHES * PER_BATCH;
    let errors = TASKS * BATCHES;
    assert_eq!((total, failures), (64_000, errors));

    let pool_label = [("db_client_connection_pool_name", "accounting")];
    assert_eq!(rec.count(OPERATION_DURATION, &pool_label), total);
    assert_eq!(rec.count(OPERATION_DURATION, &[("error_type", "other")]), errors);
    assert_eq!(
        rec.counter(ERRORS, &[("error_type", "other"), ("db_response_status_code", "22012")]),
        errors as u64
    );
    assert_eq!(rec.counter(ERRORS, &[]), errors as u64);

    let stats = pool.monitor().query_stats();
    assert_eq!(stats.iter().map(|q| q.calls).sum::<u64>(), total as u64);
    assert_eq!(stats.iter().map(|q| q.errors).sum::<u64>(), errors as u64);
    let ok = stats.iter().find(|q| q.normalized == "SELECT ?::int4").unwrap();
    let bad = stats.iter().find(|q| q.normalized == "SELECT ? / ?::int4").unwrap();
    assert_eq!(
        (ok.calls, ok.errors, ok.rows),
        ((total - errors) as u64, 0, (total - errors) as u64)
    );
    assert_eq!((bad.calls, bad.errors), (errors as u64, errors as u64));
    assert_ne!(ok.fingerprint, bad.fingerprint);

    let snapshot = pool.monitor().snapshot();
    assert_eq!(
        snapshot.open_connections.iter().map(|c| c.statements).sum::<u64>(),
        total as u64
    );
    assert_eq!(
        snapshot.open_connections.iter().map(|c| c.checkouts).sum::<u64>(),
        (TASKS * BATCHES) as u64
    );
    assert_eq!(rec.count(CONNECTION_WAIT_TIME, &pool_label), TASKS * BATCHES);
    assert_eq!(rec.count(CONNECTION_USE_TIME, &pool_label), TASKS * BATCHES);
    assert_eq!(snapshot.in_use, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_method_is_timed_under_its_statement() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "methods", 2).await;
    let table = unique("items");
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY, name text)"))
        .await
        .unwrap();

    let insert = format!("INSERT INTO {table} (id, name) VALUES ($1, $2)");
    for (id, name) in [(1, "secret-value-123"), (2, "b"), (3, "c")] {
        assert_eq!(conn.execute(&insert, &[&id, &name]).await.unwrap(), 1);
    }
    let select = conn
        .prepare(&format!("SELECT id, name FROM {table} WHERE id <= $1 ORDER BY id"))
        .await
        .unwrap();
    assert_eq!(select.operation(), Operation::Select);
    assert_eq!(select.table(), Some(table.as_str()));
    assert_eq!(
        select.normalized(),
        format!("SELECT id, name FROM {table} WHERE id <= ? ORDER BY id")
    );
    assert_eq!(conn.query(&select, &[&3_i32]).await.unwrap().len(), 3);
    assert_eq!(
        conn.query_one(&select, &[&1_i32]).await.unwrap().get::<_, String>(1),
        "secret-value-123"
    );
    assert!(conn.query_opt(&select, &[&0_i32]).await.unwrap().is_none());
    let streamed: Vec<_> = conn
        .query_raw(&select, [3_i32])
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.len(), 3);
    let by_text = format!("SELECT name FROM {table} WHERE id = $1");
    assert_eq!(
        conn.query_typed(&by_text, &[(&2_i32, Type::INT4)]).await.unwrap().len(),
        1
    );
    assert!(conn.query_typed_one(&by_text, &[(&2_i32, Type::INT4)]).await.is_ok());
    assert!(conn
        .query_typed_opt(&by_text, &[(&9_i32, Type::INT4)])
        .await
        .unwrap()
        .is_none());
    let typed_stream = conn.query_typed_raw(&by_text, [(3_i32, Type::INT4)]).await.unwrap();
    assert_eq!(typed_stream.try_collect::<Vec<_>>().await.unwrap().len(), 1);
    let update = format!("UPDATE {table} SET name = $1 WHERE id = $2");
    assert_eq!(
        conn.execute_typed(&update, &[(&"x", Type::TEXT), (&2_i32, Type::INT4)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        conn.execute_raw(
            &update,
            [&"y" as &(dyn db_monitor::tokio_postgres::types::ToSql + Sync), &3_i32]
        )
        .await
        .unwrap(),
        1
    );
    let names: Vec<String> = conn
        .query_scalar(&format!("SELECT name FROM {table} ORDER BY id"), &[])
        .await
        .unwrap();
    assert_eq!(names.len(), 3);
    let count: i64 = conn
        .query_one_scalar(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap();
    assert_eq!(count, 3);
    let none: Option<i32> = conn
        .query_opt_scalar(&format!("SELECT id FROM {table} WHERE id = 42"), &[])
        .await
        .unwrap();
    assert!(none.is_none());
    let messages = conn.simple_query(&format!("SELECT id FROM {table}")).await.unwrap();
    assert_eq!(
        messages
            .iter()
            .filter(|m| matches!(m, SimpleQueryMessage::Row(_)))
            .count(),
        3
    );
    let raw_simple: Vec<_> = conn
        .simple_query_raw(&format!("SELECT id FROM {table} WHERE id > 1"))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(raw_simple.len() >= 2);

    let copy_in = format!("COPY {table} (id, name) FROM STDIN");
    let sink = conn.copy_in::<_, bytes::Bytes>(&copy_in).await.unwrap();
    let mut sink = pin!(sink);
    sink.send(bytes::Bytes::from_static(b"10\tcopied\n11\tcopied\n"))
        .await
        .unwrap();
    assert_eq!(sink.as_mut().finish().await.unwrap(), 2);
    let copy_out = format!("COPY {table} TO STDOUT");
    let chunks: Vec<_> = conn.copy_out(&copy_out).await.unwrap().try_collect().await.unwrap();
    assert!(!chunks.is_empty());

    let tx = conn.transaction().await.unwrap();
    tx.execute(&insert, &[&20_i32, &"tx"]).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = conn.transaction().await.unwrap();
    {
        let sp = tx.savepoint("sp1").await.unwrap();
        sp.execute(&insert, &[&21_i32, &"sp"]).await.unwrap();
        sp.rollback().await.unwrap();
    }
    tx.rollback().await.unwrap();
    {
        let tx = conn.transaction().await.unwrap();
        tx.execute(&insert, &[&22_i32, &"dropped"]).await.unwrap();
    }
    let final_count: i64 = conn
        .query_one_scalar(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap();
    assert_eq!(
        final_count, 6,
        "the committed row and the copied rows stay; rolled back and dropped ones do not"
    );

    let stats = pool.monitor().query_stats();
    let calls = |normalized: &str| {
        stats
            .iter()
            .find(|q| q.normalized == normalized)
            .map(|q| (q.calls, q.rows))
    };
    assert_eq!(
        calls(&format!("INSERT INTO {table}(id, name) VALUES (...)")),
        Some((6, 6))
    );
    assert_eq!(
        calls(&format!("SELECT id, name FROM {table} WHERE id <= ? ORDER BY id")),
        Some((4, 7))
    );
    assert_eq!(calls(&format!("SELECT name FROM {table} WHERE id = ?")), Some((4, 3)));
    assert_eq!(
        calls(&format!("UPDATE {table} SET name = ? WHERE id = ?")),
        Some((2, 2))
    );
    assert_eq!(
        calls(&format!("COPY {table}(id, name) FROM STDIN")).map(|c| c.0),
        Some(1)
    );
    assert_eq!(calls(&format!("COPY {table} TO STDOUT")).map(|c| c.0), Some(1));
    assert_eq!(calls("BEGIN").map(|c| c.0), Some(3));
    assert_eq!(calls("COMMIT").map(|c| c.0), Some(1));
    assert_eq!(calls("ROLLBACK").map(|c| c.0), Some(2));
    assert_eq!(calls("SAVEPOINT").map(|c| c.0), Some(1));
    assert_eq!(rec.count(TRANSACTION_DURATION, &[("outcome", "committed")]), 1);
    assert_eq!(rec.count(TRANSACTION_DURATION, &[("outcome", "rolled_back")]), 2);
    assert_eq!(rec.count(TRANSACTION_DURATION, &[("outcome", "abandoned")]), 1);

    // The summaries: operations and tables as written; no label of the
    // operation or the table alone (the convention says not to take them
    // from the text).
    let summaries = rec.label_values(OPERATION_DURATION, QUERY_SUMMARY);
    for summary in [
        "BEGIN".to_owned(),
        "COMMIT".to_owned(),
        format!("COPY {table}"),
        format!("INSERT {table}"),
        "ROLLBACK".to_owned(),
        "SAVEPOINT".to_owned(),
        format!("SELECT {table}"),
        format!("UPDATE {table}"),
    ] {
        assert!(summaries.contains(&summary), "{summary} missing from {summaries:?}");
    }
    for label in ["db_operation_name", "db_collection_name"] {
        assert!(rec.label_values(OPERATION_DURATION, label).is_empty(), "{label}");
    }
    // The database the statements went to.
    let config = support::pg::shared_config();
    let database = config.get_dbname().or(config.get_user()).unwrap().to_owned();
    assert_eq!(rec.label_values(OPERATION_DURATION, "db_namespace"), [database]);
    assert!(!rec.label_values(OPERATION_DURATION, "server_address").is_empty());
    // No literal value reaches any label.
    for name in [OPERATION_DURATION, ERRORS] {
        for label in ["db_query_summary", "db_namespace", "server_address"] {
            for value in rec.label_values(name, label) {
                assert!(!value.contains("secret") && !value.contains("copied"), "{value}");
            }
        }
    }
    assert!(stats.iter().all(|q| !q.normalized.contains("secret")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_connections_report_their_own_counts() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "sessions", 2).await;
    let conn = pool.get().await.unwrap();
    let checked_out_line = line!() - 1;
    conn.query_one("SELECT 1", &[]).await.unwrap();
    conn.query("SELECT pg_sleep(0.05)", &[]).await.unwrap();
    assert!(conn
        .query("SELECT * FROM no_such_table_for_sessions", &[])
        .await
        .is_err());
    let session = conn.session();
    assert_eq!((session.statements, session.errors, session.cancelled), (3, 1, 0));
    assert!(session.database_time >= Duration::from_millis(50));
    assert!(session.held >= session.database_time);
    assert_eq!(conn.checked_out_at().line(), checked_out_line);
    assert!(conn.checked_out_at().file().ends_with("pool.rs"));

    let id = conn.connection_id();
    let listed = pool
        .monitor()
        .snapshot()
        .open_connections
        .into_iter()
        .find(|c| c.id == id)
        .unwrap();
    assert!(listed.held_for.is_some());
    assert_eq!((listed.statements, listed.errors, listed.checkouts), (3, 1, 1));
    drop(conn);
    let listed = pool
        .monitor()
        .snapshot()
        .open_connections
        .into_iter()
        .find(|c| c.id == id)
        .unwrap();
    assert!(listed.held_for.is_none());

    // A new checkout of the same connection starts a new session.
    let again = pool.get().await.unwrap();
    assert_eq!(again.connection_id(), id);
    assert_eq!(again.session().statements, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_held_past_the_leak_threshold_is_counted() {
    let config = MonitorConfig::default().leak_threshold(Some(Duration::from_millis(50)));
    let (monitor, rec) = monitor(config);
    let pool = pool(&monitor, "leaky", 2).await;
    let short = pool.get().await.unwrap();
    drop(short);
    assert_eq!(rec.counter(CONNECTION_LEAKS, &[]), 0);
    let long = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(long);
    assert_eq!(
        rec.counter(CONNECTION_LEAKS, &[("db_client_connection_pool_name", "leaky")]),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn track_times_an_operation_and_classifies_its_database_error() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "tracked", 2).await;
    let found: Result<i32, Box<dyn std::error::Error + Send + Sync>> = monitor
        .track("load_one", async {
            let conn = pool.get().await?;
            Ok(conn.query_one_scalar("SELECT 1", &[]).await?)
        })
        .await;
    assert_eq!(found.unwrap(), 1);
    let missing: Result<i32, Box<dyn std::error::Error + Send + Sync>> = monitor
        .track("load_missing", async {
            let conn = pool.get().await?;
            Ok(conn
                .query_one_scalar("SELECT id FROM no_such_table_for_track", &[])
                .await?)
        })
        .await;
    assert!(missing.is_err());
    let direct: Result<u64, db_monitor::tokio_postgres::Error> = monitor
        .track("raw_error", async {
            pool.get().await.unwrap().execute("SELEC 1", &[]).await
        })
        .await;
    assert!(direct.is_err());

    assert_eq!(rec.count(TRACKED_DURATION, &[("operation", "load_one")]), 1);
    assert_eq!(
        rec.count(
            TRACKED_DURATION,
            &[("operation", "load_missing"), ("error_type", "syntax_or_access")]
        ),
        1
    );
    assert_eq!(
        rec.count(
            TRACKED_DURATION,
            &[("operation", "raw_error"), ("error_type", "syntax_or_access")]
        ),
        1
    );
    assert_eq!(
        rec.counter(
            ERRORS,
            &[("error_type", "syntax_or_access"), ("db_response_status_code", "42P01")]
        ),
        1
    );
    assert_eq!(
        rec.counter(
            ERRORS,
            &[("error_type", "syntax_or_access"), ("db_response_status_code", "42601")]
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn labels_stay_bounded_past_every_cap() {
    let config = MonitorConfig::default()
        .max_query_summaries(3)
        .max_fingerprints(4)
        .statement_cache_size(2)
        .max_status_codes(2);
    let (monitor, rec) = monitor(config);
    let pool = pool(&monitor, "capped", 1).await;
    let conn = pool.get().await.unwrap();
    // Six tables: six summaries and six fingerprints.
    for i in 0..6 {
        let sql = format!("SELECT {i} FROM (SELECT 1) AS t{i}, pg_class AS c{i} LIMIT 0");
        conn.query(&sql, &[]).await.unwrap();
        conn.query(&format!("SELECT * FROM pg_namespace n{i} WHERE oid = {i}"), &[])
            .await
            .unwrap();
    }
    let summaries = rec.label_values(OPERATION_DURATION, QUERY_SUMMARY);
    assert!(summaries.len() <= 3, "{summaries:?}");
    assert!(summaries.contains(&"OTHER".to_owned()), "{summaries:?}");
    let stats = pool.monitor().query_stats();
    assert!(stats.len() <= 5, "4 fingerprints and the other bucket: {}", stats.len());
    assert!(stats.iter().any(|q| q.fingerprint == 0 && q.normalized == "other"));
    assert_eq!(
        stats.iter().map(|q| q.calls).sum::<u64>(),
        12,
        "past every cap, nothing is lost"
    );

    // Texts past the statement cache are fingerprinted on each run (and,
    // past the fingerprint cap, counted in the other bucket).
    let other = |stats: &[db_monitor::QueryStats]| stats.iter().find(|q| q.fingerprint == 0).map_or(0, |q| q.calls);
    let other_before = other(&pool.monitor().query_stats());
    let texts: Vec<String> = (0..5).map(|i| format!("SELECT {i} AS literal_only")).collect();
    for sql in &texts {
        conn.query(sql.as_str(), &[]).await.unwrap();
    }
    let stats = pool.monitor().query_stats();
    assert_eq!(
        stats.iter().map(|q| q.calls).sum::<u64>(),
        17,
        "texts past the cache are counted on every run"
    );
    assert_eq!(other(&stats), other_before + 5);

    // SQLSTATEs chosen by the caller cannot grow the label set either.
    for code in ["P0101", "P0102", "P0103", "P0104"] {
        let sql = format!("DO $$ BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '{code}'; END $$");
        let err = conn.batch_execute(&sql).await.unwrap_err();
        assert_eq!(err.code().unwrap().code(), code);
    }
    let codes = rec.label_values(ERRORS, RESPONSE_STATUS_CODE);
    assert!(codes.len() <= 3, "{codes:?}");
    assert!(codes.contains(&"other".to_owned()), "{codes:?}");
    assert_eq!(rec.counter(ERRORS, &[("error_type", "other")]), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bb8_state_and_statistics_are_published() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_with(
        &monitor,
        "published",
        support::pg::shared_config(),
        5,
        2,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(monitor.pool_names(), vec!["published".to_owned()]);
    let conn = pool.get().await.unwrap();
    let labels = [
        ("db_client_connection_pool_name", "published"),
        ("db_system_name", "postgresql"),
    ];
    assert_eq!(rec.gauge(CONNECTION_MAX, &labels), Some(5.0));
    assert_eq!(
        rec.gauge(CONNECTION_COUNT, &[("db_client_connection_state", "used")]),
        Some(1.0)
    );
    assert_eq!(rec.gauge("db_client_connection_idle_min", &labels), Some(2.0));
    assert!(rec.counter(CONNECTIONS_CREATED, &labels) >= 2);
    assert_eq!(
        rec.counter("db_monitor_connection_gets_total", &[("result", "direct")]),
        1
    );
    drop(conn);
    pool.monitor().publish_state();
    assert_eq!(
        rec.gauge(CONNECTION_COUNT, &[("db_client_connection_state", "used")]),
        Some(0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_statements_run_on_every_new_connection() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let manager = monitor
        .manager(
            "configured",
            support::pg::shared_config(),
            db_monitor::tokio_postgres::NoTls,
        )
        .setup("SET statement_timeout = '123ms'");
    let pool = monitor
        .pool(manager, db_monitor::bb8::Pool::builder().max_size(2).min_idle(Some(0)))
        .await
        .unwrap();
    let conn = pool.get().await.unwrap();
    let timeout: String = conn.query_one_scalar("SHOW statement_timeout", &[]).await.unwrap();
    assert_eq!(timeout, "123ms");
    assert_eq!(pool.monitor().snapshot().connections_set_up, 1);
    assert_eq!(rec.count(OPERATION_DURATION, &[("db_query_summary", "SET")]), 1);
}

/// Statements that return rows record how many in the convention's
/// histogram, one per statement, labelled like the duration; with
/// `returned_rows(false)` the histogram is not there at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn returned_rows_are_a_histogram_unless_turned_off() {
    use db_monitor::names::RETURNED_ROWS;
    for on in [true, false] {
        let (monitor, rec) = monitor(MonitorConfig::default().returned_rows(on));
        let pool = pool(&monitor, "rows", 1).await;
        let conn = pool.get().await.unwrap();
        let rows = conn.query("SELECT generate_series(1, 7)", &[]).await.unwrap();
        assert_eq!(rows.len(), 7);
        conn.execute("SET search_path = public", &[]).await.unwrap();
        let recorded = rec.count(RETURNED_ROWS, &[("db_query_summary", "SELECT")]);
        assert_eq!(recorded, usize::from(on), "returned_rows({on})");
        assert_eq!(
            rec.count(RETURNED_ROWS, &[("db_query_summary", "SET")]),
            0,
            "no rows returned"
        );
        assert_eq!(rec.label_values(RETURNED_ROWS, QUERY_SUMMARY).is_empty(), !on);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_monitor_watches_several_named_pools_apart() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let primary = pool(&monitor, "primary", 2).await;
    let replica = pool(&monitor, "replica", 2).await;
    let mut names = monitor.pool_names();
    names.sort();
    assert_eq!(names, ["primary", "replica"]);
    for _ in 0..3 {
        primary.get().await.unwrap().query_one("SELECT 1", &[]).await.unwrap();
    }
    replica.get().await.unwrap().query_one("SELECT 1", &[]).await.unwrap();
    let on = |pool: &str| {
        rec.count(
            OPERATION_DURATION,
            &[("db_client_connection_pool_name", pool), ("db_query_summary", "SELECT")],
        )
    };
    assert_eq!((on("primary"), on("replica")), (3, 1));
    assert_eq!(primary.monitor().query_stats()[0].calls, 3);
    assert_eq!(replica.monitor().query_stats()[0].calls, 1);
    // A dropped pool is forgotten once bb8 has closed its connections.
    drop(replica);
    assert!(eventually(Duration::from_secs(5), || monitor.pool_names() == ["primary"]).await);
}

#[tokio::test(flavor = "current_thread")]
async fn the_background_task_takes_any_interval_and_a_zero_reset_interval_never_resets() {
    // Settings out of range are refused, by name, when the monitor is
    // built.
    let alerts = |d| AlertThresholds::default().evaluation_interval(d);
    for (variable, config) in [
        (
            "ASYNC_DB_HEALTH_CHECK_INTERVAL",
            MonitorConfig::default().health_check_interval(Duration::ZERO),
        ),
        (
            "ASYNC_DB_HEALTH_CHECK_INTERVAL",
            MonitorConfig::default().health_check_interval(Duration::MAX),
        ),
        (
            "ASYNC_DB_ALERT_EVALUATION_INTERVAL",
            MonitorConfig::default().alerts(alerts(Duration::MAX)),
        ),
        (
            "ASYNC_DB_METRICS_RESET_INTERVAL",
            MonitorConfig::default().metrics_reset_interval(Duration::MAX),
        ),
    ] {
        let err = db_monitor::DbMonitor::new(config).unwrap_err();
        assert_eq!(err.variable(), variable, "{err}");
    }
    // The extremes that pass: the shortest periods and a zero reset
    // interval, then the longest.
    let config = MonitorConfig::default()
        .health_check_interval(Duration::from_nanos(1))
        .metrics_reset_interval(Duration::ZERO)
        .alerts(alerts(Duration::from_secs(24 * 3600)));
    let (monitor, _rec) = monitor(config);
    let pool = pool_with(
        &monitor,
        "odd_intervals",
        support::pg::shared_config(),
        2,
        1,
        Duration::from_secs(5),
    )
    .await;
    let conn = pool.get().await.unwrap();
    assert!(conn.query("SELECT * FROM no_such_table_here", &[]).await.is_err());
    drop(conn);
    tokio::time::pause();
    let background = monitor.start(&pool);
    for _ in 0..30 {
        tokio::time::advance(Duration::from_secs(1)).await;
        tokio::task::yield_now().await;
    }
    assert!(!background.is_finished(), "the task is alive");
    let samples = pool.monitor().trend_report(None).samples.len();
    assert!((2..=31).contains(&samples), "sampled, at most every second: {samples}");
    assert_eq!(
        pool.monitor().error_report(None).errors,
        1,
        "a zero reset interval never resets"
    );

    let huge = MonitorConfig::default()
        .metrics_reset_interval(Duration::from_secs(365 * 24 * 3600))
        .health_check_interval(Duration::from_secs(24 * 3600));
    let (monitor, _rec) = support::monitor(huge);
    let pool = pool_with(
        &monitor,
        "huge_intervals",
        support::pg::shared_config(),
        1,
        1,
        Duration::from_secs(5),
    )
    .await;
    let background_huge = monitor.start(&pool);
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::task::yield_now().await;
    assert!(!background_huge.is_finished(), "no deadline overflowed");
    background_huge.shutdown().await;
    background.shutdown().await;
}

#[tokio::test(flavor = "current_thread")]
async fn the_background_task_samples_an_idle_pool_and_stops() {
    // The defaults: a sample every 300 s, a store reset every hour.
    let period = Duration::from_secs(300);
    let reset = Duration::from_secs(3600);
    let (monitor, rec) = monitor(MonitorConfig::default());
    // No lifetime and no idle timeout: the hours this test advances its
    // clock by would have bb8's reaper replace connections meanwhile, and
    // the count of tasks at the end would catch a replacement half done.
    let builder = db_monitor::bb8::Pool::builder()
        .max_size(3)
        .min_idle(Some(2))
        .connection_timeout(Duration::from_secs(5))
        .max_lifetime(None)
        .idle_timeout(None);
    let manager = monitor.manager(
        "sampled",
        support::pg::shared_config(),
        db_monitor::tokio_postgres::NoTls,
    );
    let pool = monitor.pool(manager, builder).await.unwrap();
    let held = pool.get().await.unwrap();
    assert!(held
        .query("SELECT * FROM no_such_table_for_the_sampler", &[])
        .await
        .is_err());
    let used = || {
        rec.gauge(
            CONNECTION_COUNT,
            &[
                ("db_client_connection_pool_name", "sampled"),
                ("db_client_connection_state", "used"),
            ],
        )
    };
    assert_eq!(used(), Some(1.0));
    // bb8 opens a third connection to keep two idle beside the held one:
    // let it finish (its tasks are counted at the end).
    assert!(
        eventually(Duration::from_secs(5), || {
            let state = pool.state();
            (state.connections, state.idle_connections) == (3, 2)
        })
        .await,
        "{:?}",
        pool.state()
    );

    // From here on, only the sampler publishes: no checkout happens.
    tokio::time::pause();
    let background = monitor.start(&pool);
    // Let the task start and take its first sample (its first tick is a
    // timer, which fires when the runtime turns its timer driver).
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(pool.monitor().trend_report(None).samples.len(), 1);
    drop(held);
    tokio::time::advance(period / 2).await;
    assert_eq!(used(), Some(1.0), "nothing published between samples");
    tokio::time::advance(period).await;
    tokio::task::yield_now().await;
    assert_eq!(used(), Some(0.0), "the sampler published the returned connection");
    let trend = pool.monitor().trend_report(None);
    assert_eq!(trend.samples.len(), 2);
    assert_eq!((trend.samples[0].in_use, trend.samples[1].in_use), (1, 0));
    assert_eq!(
        trend.samples[1].peak_in_use, 1,
        "the connection held between the samples"
    );
    assert_eq!((trend.samples[0].max_size, trend.peak_utilization), (3, 1.0 / 3.0));

    // The stores are emptied every reset interval; the metrics are not.
    assert_eq!(pool.monitor().error_report(None).errors, 1);
    tokio::time::advance(reset).await;
    tokio::task::yield_now().await;
    assert_eq!(pool.monitor().error_report(None).errors, 0);
    assert!(pool.monitor().query_stats().iter().all(|q| q.calls == 0));
    assert_eq!(
        rec.counter("db_monitor_errors_total", &[("error_type", "syntax_or_access")]),
        1
    );

    assert!(!background.is_finished());
    background.shutdown().await;

    // Dropping a handle stops its task too.
    let dropped = monitor.start(&pool);
    let task_count = || tokio::runtime::Handle::current().metrics().num_alive_tasks();
    let alive = task_count();
    drop(dropped);
    tokio::time::advance(period).await;
    tokio::task::yield_now().await;
    assert_eq!(task_count(), alive - 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_error_store_keeps_masked_errors_patterns_and_rates() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool_with(
        &monitor,
        "error_store",
        support::pg::shared_config(),
        1,
        0,
        Duration::from_millis(300),
    )
    .await;
    let table = unique("emails");
    let conn = pool.get().await.unwrap();
    conn.batch_execute(&format!("CREATE TABLE {table} (email text UNIQUE)"))
        .await
        .unwrap();
    let insert = format!("INSERT INTO {table} (email) VALUES ($1)");
    conn.execute(&insert, &[&"secret@example.com"]).await.unwrap();
    for _ in 0..3 {
        // DETAIL: Key (email)=(secret@example.com) already exists.
        let err = conn.execute(&insert, &[&"secret@example.com"]).await.unwrap_err();
        assert!(err.as_db_error().unwrap().detail().unwrap().contains("secret"));
    }
    // The message quotes the input: invalid input syntax for type integer: "hunter2"
    assert!(conn.simple_query("SELECT 'hunter2'::int").await.is_err());
    for _ in 0..10 {
        conn.query_one("SELECT 1", &[]).await.unwrap();
    }
    // A checkout timeout (the only connection is held).
    assert!(pool.get().await.is_err());

    let report = pool.monitor().error_report(None);
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("secret") && !json.contains("hunter2"), "{json}");
    assert_eq!(report.errors, 5);
    assert_eq!(report.by_type.get("constraint_violation"), Some(&3));
    assert_eq!(report.by_type.get("pool_exhausted"), Some(&1));
    assert_eq!(report.by_sqlstate.get("22P02"), Some(&1));
    let newest = &report.recent[0];
    assert_eq!(newest.source, db_monitor::stats::ErrorSource::Checkout);
    let invalid = report
        .recent
        .iter()
        .find(|r| r.sqlstate.as_deref() == Some("22P02"))
        .unwrap();
    assert_eq!(invalid.message, "invalid input syntax for type integer: \"?\"");
    assert_eq!(invalid.statement.as_deref(), Some("SELECT ?::int"));
    let unique_violation = report
        .recent
        .iter()
        .find(|r| r.sqlstate.as_deref() == Some("23505"))
        .unwrap();
    assert!(
        unique_violation
            .message
            .starts_with("duplicate key value violates unique constraint"),
        "{}",
        unique_violation.message
    );
    let pattern = &report.patterns[0];
    assert_eq!((pattern.error_type, pattern.count), (ErrorKind::ConstraintViolation, 3));
    assert_eq!(
        pattern.statement.as_deref(),
        Some(format!("INSERT INTO {table}(email) VALUES (...)").as_str())
    );

    // Rates: failed statements over statements, exactly as counted.
    let statements: u64 = pool.monitor().query_stats().iter().map(|q| q.calls).sum();
    assert_eq!(statements, 1 + 1 + 3 + 1 + 10);
    for rate in &report.rates {
        assert_eq!((rate.statements, rate.errors), (statements, 4));
        assert_eq!(rate.rate, Some(4.0 / statements as f64));
        assert!(rate.covered_seconds < 60.0, "the pool is younger than every window");
    }
    assert_eq!(pool.monitor().error_report(Some(1)).errors, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_slow_query_store_groups_slow_runs_by_statement() {
    let config = MonitorConfig::default().slow_query_threshold(Duration::from_millis(100));
    let (monitor, rec) = monitor(config);
    let pool = pool(&monitor, "slow_store", 1).await;
    let conn = pool.get().await.unwrap();
    for _ in 0..4 {
        conn.query("SELECT pg_sleep(0.15)", &[]).await.unwrap();
    }
    conn.query("SELECT pg_sleep(0.001)", &[]).await.unwrap(); // same statement, not slow
    conn.batch_execute("SET statement_timeout = '120ms'").await.unwrap();
    assert!(conn.query("SELECT pg_sleep(5), 'x'", &[]).await.is_err());
    conn.batch_execute("RESET statement_timeout").await.unwrap();

    let report = pool.monitor().slow_query_report(Some(60), 10);
    assert_eq!(report.threshold_ms, 100.0);
    assert_eq!(report.occurrences, 5);
    let sleeps = report
        .groups
        .iter()
        .find(|g| g.statement == "SELECT pg_sleep(?)")
        .unwrap();
    assert_eq!(sleeps.count, 4);
    assert!(sleeps.mean_ms >= 150.0 && sleeps.max_ms >= sleeps.mean_ms);
    assert!(sleeps.share_of_database_time > 0.5 && sleeps.share_of_database_time <= 1.0);
    assert!(sleeps.trend.is_some());
    let timed_out = report.recent.iter().find(|q| q.error_type.is_some()).unwrap();
    assert_eq!(timed_out.error_type, Some(ErrorKind::StatementTimeout));
    assert_eq!(timed_out.statement, "SELECT pg_sleep(?), ?");
    assert_eq!(
        rec.counter("db_monitor_slow_queries_total", &[("db_query_summary", "SELECT")]),
        5
    );
    assert_eq!(pool.monitor().slow_query_report(None, 1).groups.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_performance_reports_percentiles_by_statement_operation_and_table() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "performance", 1).await;
    let table = unique("perf");
    let conn = pool.get().await.unwrap();
    conn.batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"))
        .await
        .unwrap();
    for _ in 0..10 {
        conn.query("SELECT pg_sleep(0.02)", &[]).await.unwrap();
    }
    let insert = format!("INSERT INTO {table} (id) VALUES ($1)");
    for id in 0..30 {
        conn.execute(&insert, &[&id]).await.unwrap();
    }
    for id in 0..5 {
        assert!(conn.execute(&insert, &[&id]).await.is_err()); // duplicate keys
    }

    let report = pool.monitor().query_performance(60, 10);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["by_statement"][0]["p95_ms"].is_number(), "flattened stats: {json}");
    assert!(report.covered_seconds < 60.0);
    let sleep = report
        .by_statement
        .iter()
        .find(|s| s.statement == "SELECT pg_sleep(?)")
        .unwrap();
    let s = &sleep.stats;
    assert_eq!((s.count, s.errors, s.success_rate), (10, 0, Some(1.0)));
    let (p50, min, max) = (s.p50_ms.unwrap(), s.min_ms.unwrap(), s.max_ms.unwrap());
    // A sleep's floor holds under any load; a ceiling would not (a p50
    // under 80 ms and "the sleeps took longest" both failed beside two
    // busy loops), so the order is checked on the report's own figures.
    assert!(min >= 20.0 && min <= p50 && p50 <= max, "{s:?}");
    assert!(s.p95_ms.unwrap() <= max && s.p99_ms.unwrap() <= max);
    assert!((s.mean_ms.unwrap() - s.total_ms / 10.0).abs() < 1e-9);
    let totals: Vec<f64> = report.by_statement.iter().map(|s| s.stats.total_ms).collect();
    assert!(
        totals.windows(2).all(|w| w[0] >= w[1]),
        "most total time first: {totals:?}"
    );

    let inserts = report
        .by_statement
        .iter()
        .find(|s| s.operation == db_monitor::sql::Operation::Insert)
        .unwrap();
    assert_eq!(
        (inserts.stats.count, inserts.stats.errors, inserts.stats.rows),
        (35, 5, 30)
    );
    assert_eq!(inserts.stats.success_rate, Some(30.0 / 35.0));
    let by_table = report.by_table.iter().find(|g| g.name == table).unwrap();
    assert_eq!(by_table.stats.count, 36, "the CREATE TABLE and the 35 inserts");
    let by_op = report.by_operation.iter().find(|g| g.name == "SELECT").unwrap();
    assert_eq!(by_op.stats.count, 10);
    assert_eq!(report.overall.count, 1 + 10 + 35);
    assert!(report.degraded.is_empty(), "no baseline hour yet");
    assert_eq!(
        pool.monitor().query_performance(1, 10).overall.count,
        report.overall.count
    );
    assert_eq!(pool.monitor().query_performance(5000, 1).by_statement.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_workload_gives_the_expected_comprehensive_report() {
    let config = MonitorConfig::default().slow_query_threshold(Duration::from_millis(100));
    let (monitor, rec) = monitor(config);
    let pool = pool_with(
        &monitor,
        "workload",
        support::pg::shared_config(),
        4,
        0,
        Duration::from_millis(500),
    )
    .await;
    let table = unique("orders");
    pool.get()
        .await
        .unwrap()
        .batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY, customer int)"))
        .await
        .unwrap();
    pool.monitor().sample(); // the trend's first sample, before the burst

    // Known work: 3 slow statements, 40 fast ones, 8 failures (duplicates).
    let insert = format!("INSERT INTO {table} (id, customer) VALUES ($1, $2)");
    let slow = format!("SELECT count(*), pg_sleep(0.15) FROM {table} WHERE customer = $1");
    {
        let conn = pool.get().await.unwrap();
        for id in 0..40 {
            conn.execute(&insert, &[&id, &(id % 4)]).await.unwrap();
        }
        for id in 0..8 {
            assert!(conn.execute(&insert, &[&id, &0]).await.is_err());
        }
    }
    // All four connections at once (the peak), running the slow statement.
    let held: Vec<_> = futures_util::future::join_all((0..4).map(|_| pool.get())).await;
    let held: Vec<_> = held.into_iter().map(Result::unwrap).collect();
    futures_util::future::join_all(held.iter().take(3).map(|c| c.query_one(&slow, &[&1_i32]))).await;
    drop(held);
    pool.monitor().sample(); // the peak of 4 between the samples, although none is in use now

    let report = pool.monitor().comprehensive(60, 10);
    let json = serde_json::to_string(&report).unwrap();
    assert!(!json.contains("pg_sleep(0.15)"), "statements appear normalized only");

    let group = &report.slow_queries.groups[0];
    assert_eq!(
        group.statement,
        format!("SELECT count(*), pg_sleep(?) FROM {table} WHERE customer = ?")
    );
    assert_eq!(group.count, 3);
    assert!(group.mean_ms >= 150.0);

    assert_eq!(report.errors.by_type.get("constraint_violation"), Some(&8));
    let statements = 1 + 40 + 8 + 3; // CREATE, inserts, failures, slow ones
    let hour = report.errors.rates.iter().find(|r| r.window_minutes == 60).unwrap();
    assert_eq!((hour.statements, hour.errors), (statements, 8));

    let peak = report.pool_trend.samples.last().unwrap();
    assert_eq!((peak.in_use, peak.peak_in_use, peak.peak_utilization), (0, 4, 1.0));
    assert_eq!(report.pool.in_use, 0);

    let perf = &report.queries;
    assert_eq!(perf.overall.count, statements);
    assert_eq!(
        perf.apdex.frustrated + perf.apdex.tolerating,
        3,
        "the three slow runs are over 100 ms"
    );
    let by_table = perf.by_table.iter().find(|g| g.name == table).unwrap();
    assert_eq!((by_table.stats.count, by_table.stats.errors), (statements, 8));

    let score = &report.performance;
    assert!(score.score < 100.0, "{score:?}");
    assert_eq!(score.parts.pool.score, 0.25, "a 100% peak");
    let advice = score.recommendations.join("\n");
    assert!(advice.contains("pool at 100%"), "{advice}");
    assert!(
        advice.contains(&format!("`{}` took over 100 ms 3 times", group.statement)),
        "{advice}"
    );
    assert!(
        advice.contains("failed 8 times with constraint_violation (23505)"),
        "{advice}"
    );
    // Reading a report writes no metric; publishing the score does.
    pool.monitor().publish_score();
    assert_eq!(
        rec.gauge(
            "db_monitor_performance_score",
            &[("db_client_connection_pool_name", "workload")]
        ),
        Some(score.score)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recent_statements_are_kept_newest_first_with_their_outcome() {
    let config = MonitorConfig::default().query_history(6);
    let (monitor, _rec) = monitor(config);
    let pool = pool(&monitor, "recent", 1).await;
    let conn = pool.get().await.unwrap();
    for i in 0..10 {
        conn.query_one("SELECT $1::int", &[&i]).await.unwrap();
    }
    assert!(conn.query("SELECT * FROM no_such_table_for_recent", &[]).await.is_err());
    let abandoned = tokio::time::timeout(Duration::from_millis(50), conn.query("SELECT pg_sleep(5)", &[])).await;
    assert!(abandoned.is_err());

    let recent = pool.monitor().recent_statements(100);
    assert!(
        recent.len() <= 6 + 1,
        "bounded by query_history (rounded up per thread stripe): {}",
        recent.len()
    );
    assert_eq!(recent[0].statement, "SELECT pg_sleep(?)");
    assert_eq!(recent[0].outcome, db_monitor::stats::StatementOutcome::Cancelled);
    assert_eq!(
        recent[1].outcome,
        db_monitor::stats::StatementOutcome::Failed(ErrorKind::SyntaxOrAccess)
    );
    assert_eq!(recent[2].statement, "SELECT ?::int");
    assert_eq!(recent[2].outcome, db_monitor::stats::StatementOutcome::Ok);
    assert!(recent.windows(2).all(|w| w[0].at_unix_ms >= w[1].at_unix_ms));
    assert!(recent[0].duration_ms >= 50.0);
    let json = serde_json::to_value(&recent[1]).unwrap();
    assert_eq!(json["outcome"]["failed"], "syntax_or_access");
    assert_eq!(pool.monitor().recent_statements(2).len(), 2);
    drop(conn);
    pool.monitor().reset_stores();
    assert!(pool.monitor().recent_statements(100).is_empty());
}

/// A result read in pages through a portal, and binary COPY both ways with
/// tokio-postgres's own `binary_copy` types: every page and the copy are
/// runs of their statements, with their rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn portal_pages_and_binary_copy_are_recorded_with_their_rows() {
    use db_monitor::tokio_postgres::binary_copy::BinaryCopyInWriter;

    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool(&monitor, "portals", 2).await;
    let table = unique("paged");
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(&format!("CREATE TABLE {table} (id int, name text)"))
        .await
        .unwrap();

    // Binary COPY in: tokio-postgres's writer over the monitored sink.
    let sink = conn
        .copy_in(&format!("COPY {table} (id, name) FROM STDIN BINARY"))
        .await
        .unwrap();
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT4, Type::TEXT]);
    let mut writer = std::pin::pin!(writer);
    for id in 0..10_i32 {
        writer.as_mut().write(&[&id, &format!("name {id}")]).await.unwrap();
    }
    assert_eq!(writer.finish().await.unwrap(), 10);

    // Pages of 4, 4 and 2 rows, then none.
    let select = format!("SELECT id FROM {table} ORDER BY id");
    let tx = conn.transaction().await.unwrap();
    let portal = tx.bind(select.as_str(), &[]).await.unwrap();
    let mut pages = Vec::new();
    loop {
        let page = tx.query_portal(&portal, 4).await.unwrap();
        pages.push(page.len());
        if page.is_empty() {
            break;
        }
    }
    assert_eq!(pages, [4, 4, 2, 0]);
    let streamed: Vec<_> = tx
        .query_portal_raw(&tx.bind(select.as_str(), &[]).await.unwrap(), 3)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.len(), 3);
    tx.commit().await.unwrap();

    // Binary COPY out, read as rows.
    let rows: Vec<_> = conn
        .copy_out_binary(
            &format!("COPY {table} (id, name) TO STDOUT BINARY"),
            &[Type::INT4, Type::TEXT],
        )
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(rows.len(), 10);
    assert_eq!(rows[9].get::<i32>(0), 9);
    assert_eq!(rows[9].get::<&str>(1), "name 9");
    drop(conn);

    let stats = pool.monitor().query_stats();
    let of = |normalized: &str| {
        stats
            .iter()
            .find(|s| s.normalized == normalized)
            .unwrap_or_else(|| panic!("no {normalized}: {stats:#?}"))
    };
    // Two binds and five pages (4, 4, 2, 0 rows; then 3 streamed).
    let paged = of(&format!("SELECT id FROM {table} ORDER BY id"));
    assert_eq!((paged.calls, paged.rows), (7, 13));
    let copied = of(&format!("COPY {table}(id, name) TO STDOUT BINARY"));
    assert_eq!((copied.calls, copied.rows), (1, 10));
    let copy_in = of(&format!("COPY {table}(id, name) FROM STDIN BINARY"));
    assert_eq!(copy_in.calls, 1);
}
