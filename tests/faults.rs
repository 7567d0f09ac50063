//! Every failure class produced for real on PostgreSQL, checked by its
//! `ErrorKind` and by what the monitor recorded.

mod support;

use std::sync::Arc;
use std::time::Duration;

use db_monitor::names::{
    ABANDONED_CONNECTIONS, CANCEL_REQUESTS, CONNECTION_FAILED_FAST, CONNECTION_TIMEOUTS, CONNECTION_WAIT_TIME, ERRORS,
    OPERATIONS_CANCELLED, OPERATION_DURATION, STREAMS_ENDED_EARLY,
};
use db_monitor::stats::ErrorSource;
use db_monitor::tokio_postgres::IsolationLevel;
use db_monitor::{ErrorKind, MonitorConfig};
use support::leaks::{captured_logs, Quoting, QuotingParam};
use support::pg::{shared_config, TempPostgres};
use support::sources::{pool_of, TestConn, TestPool};
use support::{deadlock, eventually, monitor, pool, pool_with, server_processes, unique, Frozen};

fn kind_of(result: Result<impl Sized, db_monitor::tokio_postgres::Error>) -> (ErrorKind, Option<String>) {
    let err = result.err().expect("the statement should have failed");
    (ErrorKind::of(&err), err.code().map(|c| c.code().to_owned()))
}

async fn a_real_deadlock_is_classified_once<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "deadlock", 4).await;
    let (update, error) = deadlock(&pool).await;
    assert_eq!(ErrorKind::of(&error), ErrorKind::Deadlock);
    assert_eq!(error.code().unwrap().code(), "40P01");
    let table = update.split_whitespace().nth(1).unwrap().to_owned();

    assert_eq!(
        rec.counter(
            ERRORS,
            &[("error_type", "deadlock"), ("db_response_status_code", "40P01")]
        ),
        1
    );
    let summary = format!("UPDATE {table}");
    assert_eq!(
        rec.count(
            OPERATION_DURATION,
            &[("db_query_summary", &summary), ("error_type", "deadlock")]
        ),
        1
    );
    assert_eq!(rec.count(OPERATION_DURATION, &[("db_query_summary", &summary)]), 4);
    let stats = pool.monitor().query_stats();
    let entry = stats
        .iter()
        .find(|q| q.table.as_deref() == Some(table.as_str()) && q.operation == db_monitor::sql::Operation::Update)
        .unwrap();
    assert_eq!((entry.calls, entry.errors), (4, 1));
    assert_eq!(entry.normalized, format!("UPDATE {table} SET v = v + ? WHERE id = ?"));
    // The other side of the deadlock, from the pids in the DETAIL: the
    // pool's other connection and where it was checked out.
    let kept = pool.monitor().error_report(None);
    let message = &kept.recent[0].message;
    assert!(
        message.starts_with("deadlock detected; the other side: connection ")
            && message.contains("(at tests/support/mod.rs:"),
        "{message}"
    );
    assert!(!message.contains("Process"), "no text of the DETAIL is kept: {message}");
}

async fn a_real_serialization_failure_is_classified<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "serialization", 3).await;
    let table = unique("serial");
    pool.get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, v int); INSERT INTO {table} VALUES (1, 0)"
        ))
        .await
        .unwrap();
    let mut a = pool.get().await.unwrap();
    let mut b = pool.get().await.unwrap();
    let ta = a
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await
        .unwrap();
    let tb = b
        .build_transaction()
        .isolation_level(IsolationLevel::Serializable)
        .start()
        .await
        .unwrap();
    let select = format!("SELECT v FROM {table} WHERE id = 1");
    ta.query_one(&select, &[]).await.unwrap();
    tb.query_one(&select, &[]).await.unwrap();
    let update = format!("UPDATE {table} SET v = v + 1 WHERE id = 1");
    ta.execute(&update, &[]).await.unwrap();
    ta.commit().await.unwrap();
    let (kind, code) = kind_of(tb.execute(&update, &[]).await);
    assert_eq!(
        (kind, code.as_deref()),
        (ErrorKind::SerializationFailure, Some("40001"))
    );
    tb.rollback().await.unwrap();
    assert_eq!(
        rec.counter(
            ERRORS,
            &[
                ("error_type", "serialization_failure"),
                ("db_response_status_code", "40001")
            ]
        ),
        1
    );
    assert_eq!(
        rec.count("db_monitor_transaction_duration_seconds", &[("outcome", "committed")]),
        1
    );
    assert_eq!(
        rec.count("db_monitor_transaction_duration_seconds", &[("outcome", "rolled_back")]),
        1
    );
}

async fn statement_timeout_and_lock_timeout_are_told_apart<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "timeouts", 3).await;
    let table = unique("locked");
    let conn = pool.get().await.unwrap();
    conn.batch_execute(&format!("CREATE TABLE {table} (id int)"))
        .await
        .unwrap();
    conn.batch_execute("SET statement_timeout = '100ms'").await.unwrap();
    let (kind, code) = kind_of(conn.query("SELECT pg_sleep(5)", &[]).await);
    assert_eq!((kind, code.as_deref()), (ErrorKind::StatementTimeout, Some("57014")));
    conn.batch_execute("RESET statement_timeout").await.unwrap();

    let mut holder = pool.get().await.unwrap();
    let tx = holder.transaction().await.unwrap();
    tx.batch_execute(&format!("LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
        .await
        .unwrap();
    conn.batch_execute("SET lock_timeout = '100ms'").await.unwrap();
    let (kind, code) = kind_of(conn.query(&format!("SELECT * FROM {table}"), &[]).await);
    assert_eq!((kind, code.as_deref()), (ErrorKind::LockTimeout, Some("55P03")));
    tx.rollback().await.unwrap();

    assert_eq!(
        rec.counter(
            ERRORS,
            &[
                ("error_type", "statement_timeout"),
                ("db_response_status_code", "57014")
            ]
        ),
        1
    );
    assert_eq!(
        rec.counter(
            ERRORS,
            &[("error_type", "lock_timeout"), ("db_response_status_code", "55P03")]
        ),
        1
    );
    assert_eq!(
        rec.count(
            OPERATION_DURATION,
            &[("db_query_summary", "SELECT"), ("error_type", "statement_timeout")]
        ),
        1
    );
}

async fn idle_in_transaction_timeout_is_kept_from_the_connection_task<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "idle_tx", 2).await;
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute("SET idle_in_transaction_session_timeout = '100ms'")
        .await
        .unwrap();
    let tx = conn.transaction().await.unwrap();
    tx.query_one("SELECT 1", &[]).await.unwrap();
    // The server ends the session while the client is idle: only the
    // connection's background task sees the error, with its SQLSTATE.
    assert!(
        eventually(Duration::from_secs(10), || {
            rec.counter(
                ERRORS,
                &[
                    ("error_type", "idle_in_transaction_timeout"),
                    ("db_response_status_code", "25P03"),
                ],
            ) == 1
        })
        .await
    );
    let err = tx.query_one("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(ErrorKind::of(&err), ErrorKind::ConnectionFailure);
    drop(tx);
    assert!(conn.is_closed());
}

/// The backend pid of a connection, by the simple protocol: no prepared
/// statement is left whose `Close`, sent when it drops, could still be
/// awaiting its answer when the backend is terminated (the server's 57P01
/// would then answer that request, not reach the connection: 1 run in 16
/// here lost it so).
async fn backend_pid(conn: &db_monitor::MonitoredClient) -> i32 {
    let messages = conn.simple_query("SELECT pg_backend_pid()").await.unwrap();
    messages
        .iter()
        .find_map(|message| match message {
            db_monitor::tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(|pid| pid.parse().unwrap()),
            _ => None,
        })
        .expect("a row")
}

async fn terminating_an_idle_connection_records_57p01_and_the_pool_recovers<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "terminate_idle", 2).await;
    let victim = pool.get().await.unwrap();
    let pid = backend_pid(&victim).await;
    let victim_id = victim.connection_id();
    drop(victim);
    // Outside the pool, which could hand out the victim itself.
    let (admin, connection) = shared_config()
        .connect(db_monitor::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let terminated: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(terminated);
    assert!(
        eventually(Duration::from_secs(10), || {
            rec.counter(
                ERRORS,
                &[("error_type", "admin_shutdown"), ("db_response_status_code", "57P01")],
            ) == 1
        })
        .await,
        "{}",
        rec.dump(ERRORS)
    );
    // The next checkout skips the dead connection and works.
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.connection_id(), victim_id);
    assert_eq!(conn.query_one_scalar::<i32, _>("SELECT 1", &[]).await.unwrap(), 1);
    // The dead connection was already counted: no second error for it.
    assert_eq!(rec.counter(ERRORS, &[]), 1);
}

async fn terminating_a_busy_connection_fails_its_statement_once<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "terminate_busy", 3).await;
    let victim = pool.get().await.unwrap();
    let pid = backend_pid(&victim).await;
    let admin = pool.get().await.unwrap();
    let killer = async {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'";
        while admin.query_one_scalar::<i64, _>(sql, &[&pid]).await.unwrap() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        admin
            .query_one_scalar::<bool, _>("SELECT pg_terminate_backend($1)", &[&pid])
            .await
            .unwrap()
    };
    let (result, killed) = tokio::join!(victim.query("SELECT pg_sleep(30)", &[]), killer);
    assert!(killed);
    let (kind, code) = kind_of(result);
    assert_eq!((kind, code.as_deref()), (ErrorKind::AdminShutdown, Some("57P01")));
    drop(victim);
    tokio::time::sleep(Duration::from_millis(100)).await;
    // One failure, one error: the bare end of stream that follows is not a second one.
    assert_eq!(
        rec.counter(ERRORS, &[("error_type", "admin_shutdown")]),
        1,
        "{}",
        rec.dump(ERRORS)
    );
    assert_eq!(rec.counter(ERRORS, &[]), 1, "{}", rec.dump(ERRORS));
    assert_eq!(rec.count(OPERATION_DURATION, &[("error_type", "admin_shutdown")]), 1);
    pool.monitor().publish_state();
    assert_eq!(
        rec.counter("db_monitor_connection_closed_total", &[("reason", "broken")]),
        1
    );
}

async fn a_full_pool_times_out_as_pool_exhausted<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = P::make(&monitor, "full", shared_config(), 2, Duration::from_millis(200)).await;
    let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::PoolExhausted);
    assert!(err.to_string().contains("2 of 2 connections in use"), "{err}");
    assert!(err.waited() >= Duration::from_millis(200));
    assert_eq!(ErrorKind::of_error(&err), ErrorKind::PoolExhausted);
    assert_eq!(rec.counter(CONNECTION_TIMEOUTS, &[("reason", "pool_exhausted")]), 1);
    assert_eq!(rec.counter(CONNECTION_TIMEOUTS, &[("reason", "connect_timeout")]), 0);
    assert_eq!(
        rec.counter(
            ERRORS,
            &[("error_type", "pool_exhausted"), ("db_response_status_code", "")]
        ),
        1
    );
    let waits = rec.samples(CONNECTION_WAIT_TIME, &[("db_client_connection_pool_name", "full")]);
    assert_eq!(waits.len(), 3);
    assert!(waits.iter().any(|w| *w >= 0.2));
    assert_eq!(
        rec.gauge("db_client_connection_count", &[("db_client_connection_state", "used")]),
        Some(2.0)
    );
    drop(held);
    pool.monitor().publish_state();
    assert_eq!(
        rec.gauge("db_client_connection_count", &[("db_client_connection_state", "used")]),
        Some(0.0)
    );
    assert!(pool.get().await.is_ok());
}

/// A port that refuses: the checkout does not wait the pool's timeout
/// for connects that keep failing; it fails once the first has, with
/// that connect's error (bb8 by the monitor's fail-fast, deadpool by its
/// own connect-on-demand).
async fn a_refused_port_fails_fast_with_the_connect_error<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let config = support::pg::refused_config();
    let pool = P::make(&monitor, "refused", config, 2, Duration::from_secs(30)).await;
    for attempt in 0..3 {
        let err = pool.get().await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectTimeout);
        assert!(err.failed_fast(), "attempt {attempt}: {err}");
        assert!(err.waited() < Duration::from_secs(5), "{:?}", err.waited());
        let source = std::error::Error::source(&err)
            .expect("the last connect error is the source")
            .to_string();
        assert!(source.to_lowercase().contains("refused"), "{source}");
        assert!(err.to_string().contains("out of reach"), "{err}");
    }
    assert_eq!(rec.counter(CONNECTION_FAILED_FAST, &[]), 3);
    assert_eq!(rec.counter(CONNECTION_TIMEOUTS, &[("reason", "connect_timeout")]), 0);
    assert!(
        rec.counter(
            ERRORS,
            &[("error_type", "connection_failure"), ("db_response_status_code", "")]
        ) >= 1
    );
    let snapshot = pool.monitor().snapshot();
    assert!(snapshot.consecutive_connect_failures >= 1);
    assert!(snapshot.out_of_reach || snapshot.connections == 0);
}

/// Off, a bb8 checkout waits its timeout for connects that keep failing,
/// as bb8 alone does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_fail_fast_off_a_bb8_checkout_waits_its_timeout() {
    let (monitor, rec) = monitor(MonitorConfig::default().fail_fast(false));
    let pool = pool_with(
        &monitor,
        "patient",
        support::pg::refused_config(),
        2,
        0,
        Duration::from_millis(600),
    )
    .await;
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectTimeout);
    assert!(!err.failed_fast());
    assert!(err.waited() >= Duration::from_millis(600), "{:?}", err.waited());
    assert_eq!(rec.counter(CONNECTION_TIMEOUTS, &[("reason", "connect_timeout")]), 1);
    assert_eq!(rec.counter(CONNECTION_FAILED_FAST, &[]), 0);
}

/// The server stops under a pool with a 30 s checkout timeout: a checkout
/// waiting for a connection fails once the pool's connects fail, new
/// checkouts fail at once with the connect error, and the pool serves
/// again within seconds of the server's return.
async fn a_stopped_server_fails_checkouts_at_once_and_they_recover_on_its_return<P: TestPool>() {
    if !support::pg::can_start_servers() {
        eprintln!("skipped: needs its own server (initdb not on PATH)");
        return;
    }
    let server = Arc::new(TempPostgres::start(&[]));
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = Arc::new(P::make(&monitor, "stopped", server.config(), 2, Duration::from_secs(30)).await);
    let held = (pool.get().await.unwrap(), pool.get().await.unwrap());
    assert_eq!(held.0.query_one_scalar::<i32, _>("SELECT 1", &[]).await.unwrap(), 1);
    assert_eq!(held.1.query_one_scalar::<i32, _>("SELECT 1", &[]).await.unwrap(), 1);
    // A checkout waiting on a full pool.
    let waiter = tokio::spawn({
        let pool = pool.clone();
        async move { pool.get().await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!waiter.is_finished());

    let stopper = server.clone();
    tokio::task::spawn_blocking(move || stopper.stop()).await.unwrap();
    // The holders meet the shutdown and give their connections back.
    assert!(held.0.query_one_scalar::<i32, _>("SELECT 1", &[]).await.is_err());
    drop(held);
    let waited = tokio::time::timeout(Duration::from_secs(10), waiter)
        .await
        .expect("the waiting checkout fails once connects fail, long before its 30 s")
        .unwrap()
        .unwrap_err();
    assert_eq!(waited.kind(), ErrorKind::ConnectTimeout);
    assert!(waited.failed_fast(), "{waited}");

    // New checkouts fail at once, with the connect error.
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let err = pool.get().await.unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
        assert!(err.failed_fast(), "{err}");
        let source = std::error::Error::source(&err)
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!source.is_empty(), "{err}");
    }
    assert!(rec.counter(CONNECTION_FAILED_FAST, &[]) >= 4);
    assert_eq!(rec.counter(CONNECTION_TIMEOUTS, &[("reason", "connect_timeout")]), 0);

    let starter = server.clone();
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .unwrap();
    let back = std::time::Instant::now();
    let mut recovered = None;
    while back.elapsed() < Duration::from_secs(15) {
        if let Ok(conn) = pool.get().await {
            if conn.query_one_scalar::<i32, _>("SELECT 1", &[]).await.ok() == Some(1) {
                recovered = Some(back.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let recovered = recovered.expect("the pool serves again after the server's return");
    eprintln!("served again {recovered:?} after the server's return");
    assert!(recovered < Duration::from_secs(5), "{recovered:?}");
    assert!(!pool.monitor().snapshot().out_of_reach);
}

async fn an_abandoned_statement_retires_its_connection_and_is_cancelled_on_the_server<P: TestPool>() {
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "abandoned", 1).await;
    let conn = pool.get().await.unwrap();
    let abandoned_id = conn.connection_id();
    let abandoned_pid = backend_pid(&conn).await;
    let sleep = "SELECT pg_sleep(30.0417)";
    let outcome = tokio::time::timeout(Duration::from_millis(200), conn.query(sleep, &[])).await;
    assert!(outcome.is_err(), "the statement should still be running when abandoned");
    assert_eq!(conn.session().cancelled, 1);
    drop(conn);

    assert_eq!(rec.counter(OPERATIONS_CANCELLED, &[("db_query_summary", "SELECT")]), 1);
    let stats = pool.monitor().query_stats();
    let entry = stats.iter().find(|q| q.normalized == "SELECT pg_sleep(?)").unwrap();
    assert_eq!((entry.calls, entry.cancelled, entry.errors), (1, 1, 0));
    assert_eq!(
        entry.total_time,
        Duration::ZERO,
        "time until abandonment is not a latency"
    );
    // Not an error, and not a duration sample: a cancelled statement has no outcome.
    assert_eq!(rec.counter(ERRORS, &[]), 0);
    assert_eq!(rec.count(OPERATION_DURATION, &[("db_query_summary", "SELECT")]), 1);

    // The next caller gets a fresh connection, not one queued behind the sleep...
    let next = pool.get().await.unwrap();
    assert_ne!(next.connection_id(), abandoned_id);
    assert_eq!(next.query_one_scalar::<i32, _>("SELECT 1", &[]).await.unwrap(), 1);
    // ...and the server stopped the abandoned work (the cancel request), long
    // before the 30 s sleep would have ended on its own.
    let still_running = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'";
    let mut running = 1;
    for _ in 0..250 {
        running = next
            .query_one_scalar::<i64, _>(still_running, &[&abandoned_pid])
            .await
            .unwrap();
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(running, 0, "the abandoned statement is still running on the server");
    pool.monitor().publish_state();
    assert_eq!(
        rec.counter("db_monitor_connection_closed_total", &[("reason", "broken")]),
        1
    );
}

/// A stream dropped while the server is still sending (ten million rows)
/// is a finished statement with the rows its reader took, and ended early;
/// past the grace the server is still at it, so the statement is cancelled
/// there and its connection retired.
async fn a_row_stream_dropped_while_the_server_still_sends_is_cancelled_there<P: TestPool>() {
    use futures_util::StreamExt;
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "stream", 1).await;
    let conn = pool.get().await.unwrap();
    let first_id = conn.connection_id();
    let sql = "SELECT g FROM generate_series(1, 10000000) g";
    {
        // The stream is dropped at the end of this block, after ten rows.
        let mut rows = std::pin::pin!(conn.query_raw(sql, std::iter::empty::<i32>()).await.unwrap());
        for _ in 0..10 {
            rows.next().await.unwrap().unwrap();
        }
    }
    drop(conn);
    assert_eq!(rec.counter(STREAMS_ENDED_EARLY, &[]), 1);
    assert_eq!(rec.counter(OPERATIONS_CANCELLED, &[]), 0);
    let stats = pool.monitor().query_stats();
    let entry = stats
        .iter()
        .find(|q| q.normalized == "SELECT g FROM generate_series(?, ?) g")
        .unwrap();
    assert_eq!((entry.calls, entry.cancelled, entry.rows), (1, 0, 10));
    // The connection with ten million rows still in flight is not reused...
    let next = pool.get().await.unwrap();
    assert_ne!(next.connection_id(), first_id);
    // ...and the server was told to stop.
    assert_eq!(rec.counter(ABANDONED_CONNECTIONS, &[("outcome", "retired")]), 1);
    let sent = [("outcome", "sent")];
    assert!(eventually(Duration::from_secs(5), || rec.counter(CANCEL_REQUESTS, &sent) == 1).await);
    // A stream read to its end is a finished statement with its row count.
    let all: Vec<_> = next
        .query_raw("SELECT g FROM generate_series(1, 5) g", std::iter::empty::<i32>())
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(all.len(), 5);
    let stats = pool.monitor().query_stats();
    let entry = stats
        .iter()
        .find(|q| q.normalized == "SELECT g FROM generate_series(?, ?) g")
        .unwrap();
    assert_eq!((entry.calls, entry.cancelled, entry.rows), (2, 0, 15));
    assert_eq!(rec.counter(STREAMS_ENDED_EARLY, &[]), 1);
}

/// A statement abandoned just after it was sent ends on the server at
/// once; the cancel request sent for it arrives later. The next statement
/// of the same checkout waits for that request to be done, so the server
/// never cancels it instead.
async fn a_cancel_request_never_falls_on_the_next_statement_of_the_checkout<P: TestPool>() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "cancel_fence", 1).await;
    let conn = pool.get().await.unwrap();
    let (mut abandoned, mut cancelled_instead) = (0, 0);
    for _ in 0..40 {
        {
            // Ends on the server at once, well before a cancel request (a
            // connection of its own) could arrive.
            let quick = conn.simple_query("SELECT 1");
            let mut quick = std::pin::pin!(quick);
            // One poll puts it on the wire (and may even see its answer:
            // then it was not abandoned); the block's end abandons it.
            if futures_util::poll!(quick.as_mut()).is_ready() {
                continue;
            }
        }
        abandoned += 1;
        let next = conn.batch_execute("SELECT pg_sleep(0.05)").await;
        if next.as_ref().err().and_then(|e| e.code()).map(|c| c.code()) == Some("57014") {
            cancelled_instead += 1;
        }
        if abandoned == 10 {
            break;
        }
    }
    assert_eq!(abandoned, 10);
    assert_eq!(conn.session().cancelled, 10);
    assert_eq!(
        cancelled_instead, 0,
        "the next statement was cancelled in the abandoned one's place"
    );
}

/// A row stream owns what it needs and can outlive its checkout. Its
/// connection then does not go to the next caller, on whose statement the
/// stream's cancel request would otherwise fall.
async fn a_stream_outliving_its_checkout_keeps_its_connection_from_the_next_caller<P: TestPool>() {
    use futures_util::StreamExt;
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "late_stream", 1).await;
    let conn = pool.get().await.unwrap();
    let first_id = conn.connection_id();
    let sql = "SELECT g FROM generate_series(1, 10000000) g";
    let mut rows = Box::pin(conn.query_raw(sql, std::iter::empty::<i32>()).await.unwrap());
    rows.next().await.unwrap().unwrap();
    drop(conn);
    let next = pool.get().await.unwrap();
    assert_ne!(next.connection_id(), first_id, "the stream's connection was handed out");
    drop(rows);
    next.batch_execute("SELECT pg_sleep(0.2)")
        .await
        .expect("the late stream's cancel request fell on the next caller");
}

/// A loopback TCP proxy to a server, for the faults a network makes.
///
/// - Once [partitioned](Self::partition), it stops accepting: its listen
///   queue (of one) fills, and the kernel drops every later SYN, so a new
///   connection hangs in `connect` as behind a network partition. The
///   connections already open keep working.
/// - Once [cut](Self::cut), it closes every connection it carries on both
///   sides, as a crashed server or a proxy would: the client reads a bare
///   end of stream, with no word from the server.
struct FaultProxy {
    port: u16,
    accepting: tokio::task::JoinHandle<()>,
    cut: Arc<tokio::sync::watch::Sender<u64>>,
    _listener: Arc<tokio::net::TcpListener>,
}

impl FaultProxy {
    /// A proxy to the shared server.
    async fn to_shared() -> Self {
        let shared = shared_config();
        let target = match (shared.get_hosts().first(), shared.get_ports().first()) {
            (Some(db_monitor::tokio_postgres::config::Host::Tcp(host)), Some(port)) => {
                tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .unwrap()
                    .next()
                    .unwrap()
            }
            _ => panic!("the shared server is reached over TCP"),
        };
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = Arc::new(socket.listen(1).unwrap());
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(tokio::sync::watch::Sender::new(0));
        let accepting = {
            let listener = listener.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    // Cut by the next cut, not by one before it.
                    let mut cut_seen = cut.subscribe();
                    tokio::spawn(async move {
                        if let Ok(mut server) = tokio::net::TcpStream::connect(target).await {
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = cut_seen.changed() => {}
                            }
                        }
                    });
                }
            })
        };
        FaultProxy {
            port,
            accepting,
            cut,
            _listener: listener,
        }
    }

    /// Closes every connection the proxy carries now; later ones work.
    fn cut(&self) {
        self.cut.send_modify(|cuts| *cuts += 1);
    }

    /// Stops accepting and fills the listen queue, so that every later
    /// connect hangs.
    async fn partition(&self) -> Vec<tokio::net::TcpStream> {
        self.accepting.abort();
        let mut queued = Vec::new();
        while let Ok(Ok(stream)) = tokio::time::timeout(
            Duration::from_millis(200),
            tokio::net::TcpStream::connect(("127.0.0.1", self.port)),
        )
        .await
        {
            queued.push(stream);
            assert!(queued.len() < 16, "the listen queue does not fill");
        }
        queued
    }

    /// A client configuration for the shared server through the proxy.
    fn config(&self) -> db_monitor::tokio_postgres::Config {
        let like = shared_config();
        let mut config = db_monitor::tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(like.get_user().unwrap_or("postgres"));
        if let Some(db) = like.get_dbname() {
            config.dbname(db);
        }
        if let Some(password) = like.get_password() {
            config.password(password);
        }
        config
    }
}

/// Under a partition, each cancel request is a connection that hangs: at
/// most four are in progress per pool, each gives up after 5 s, and the
/// rest are counted as skipped (their connections are retired anyway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_requests_are_capped_and_time_out_under_a_partition() {
    let proxy = FaultProxy::to_shared().await;
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_with(&monitor, "cancel_cap", proxy.config(), 8, 0, Duration::from_secs(5)).await;
    let mut conns = Vec::new();
    for _ in 0..8 {
        let conn = pool.get().await.unwrap();
        let abandoned =
            tokio::time::timeout(Duration::from_millis(50), conn.batch_execute("SELECT pg_sleep(10)")).await;
        assert!(abandoned.is_err());
        conns.push(conn);
    }
    let _queued = proxy.partition().await;
    drop(conns);
    let outcome = |outcome: &str| {
        rec.counter(
            db_monitor::names::CANCEL_REQUESTS,
            &[("db_client_connection_pool_name", "cancel_cap"), ("outcome", outcome)],
        )
    };
    // Each connection is settled past the grace, still sleeping: retired,
    // with a cancel request.
    assert!(
        eventually(Duration::from_secs(2), || outcome("skipped") == 4).await,
        "past four in progress, none is started"
    );
    assert!(
        eventually(Duration::from_secs(8), || outcome("timed_out") == 4).await,
        "sent {}, failed {}, timed out {}",
        outcome("sent"),
        outcome("failed"),
        outcome("timed_out")
    );
    assert_eq!(outcome("sent") + outcome("failed"), 0);
}

/// A connection that ends without a word from the server (it crashed, a
/// proxy or the network cut it, or its reason went to a request whose
/// caller had left) is a lost connection, kept once, and the pool goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_cut_without_a_word_is_kept_as_lost() {
    let proxy = FaultProxy::to_shared().await;
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_with(&monitor, "cut", proxy.config(), 2, 1, Duration::from_secs(5)).await;
    assert!(eventually(Duration::from_secs(5), || pool.state().idle_connections == 1).await);
    proxy.cut();
    let lost = [("error_type", "connection_failure"), ("db_response_status_code", "")];
    assert!(
        eventually(Duration::from_secs(10), || rec.counter(ERRORS, &lost) == 1).await,
        "{}",
        rec.dump(ERRORS)
    );
    let report = pool.monitor().error_report(None);
    assert_eq!(report.errors, 1, "{report:#?}");
    let kept = &report.recent[0];
    assert_eq!(kept.error_type, ErrorKind::ConnectionFailure);
    assert_eq!(kept.source, ErrorSource::Connection);
    assert_eq!(kept.sqlstate, None);
    assert_eq!(kept.message, "connection closed without a word from the server");
    // The next checkout skips the dead connection and works.
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.query_one_scalar::<i32, _>("SELECT 1", &[]).await.unwrap(), 1);
    assert_eq!(rec.counter(ERRORS, &[]), 1, "{}", rec.dump(ERRORS));
}

async fn max_connections_exhausted_on_the_server_is_too_many_connections<P: TestPool>() {
    if !support::pg::can_start_servers() {
        eprintln!("skipped: needs its own server (initdb not on PATH)");
        return;
    }
    let server = TempPostgres::start(&["-c", "max_connections=3", "-c", "superuser_reserved_connections=0"]);
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = P::make(&monitor, "crowded", server.config(), 6, Duration::from_millis(800)).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.get().await.unwrap());
    }
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectTimeout);
    let source = std::error::Error::source(&err).unwrap().to_string();
    assert!(source.contains("too many clients"), "{source}");
    assert!(
        rec.counter(
            ERRORS,
            &[
                ("error_type", "too_many_connections"),
                ("db_response_status_code", "53300")
            ]
        ) >= 1
    );
    drop(held);
}

async fn a_server_restart_fails_then_recovers_without_a_new_pool<P: TestPool>() {
    if !support::pg::can_start_servers() {
        eprintln!("skipped: needs its own server (initdb not on PATH)");
        return;
    }
    let server = std::sync::Arc::new(TempPostgres::start(&[]));
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = P::make(&monitor, "restarted", server.config(), 3, Duration::from_millis(800)).await;
    let busy = pool.get().await.unwrap();
    assert_eq!(busy.query_one_scalar::<i32, _>("SELECT 1", &[]).await.unwrap(), 1);
    // And one idle connection.
    let idle = pool.get().await.unwrap();
    assert_eq!(idle.query_one_scalar::<i32, _>("SELECT 1", &[]).await.unwrap(), 1);
    drop(idle);

    // A statement in flight when the server goes down fails.
    let stopper = server.clone();
    let (during, ()) = tokio::join!(busy.query("SELECT pg_sleep(10)", &[]), async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        tokio::task::spawn_blocking(move || stopper.stop()).await.unwrap();
    });
    let (kind, code) = kind_of(during);
    assert_eq!((kind, code.as_deref()), (ErrorKind::AdminShutdown, Some("57P01")));
    drop(busy);
    // Idle connections learn it from their background task, with the SQLSTATE.
    let shutdowns = [("error_type", "admin_shutdown"), ("db_response_status_code", "57P01")];
    assert!(
        eventually(Duration::from_secs(5), || rec.counter(ERRORS, &shutdowns) >= 2).await,
        "{}",
        rec.dump(ERRORS)
    );

    // While it is down, checkouts fail as connect timeouts, at once.
    let err = pool.get().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectTimeout);
    assert!(err.failed_fast(), "{err}");
    assert!(rec.counter(ERRORS, &[("error_type", "connection_failure")]) >= 1);

    let starter = server.clone();
    tokio::task::spawn_blocking(move || starter.start_again())
        .await
        .unwrap();
    let mut recovered = false;
    for _ in 0..50 {
        if let Ok(conn) = pool.get().await {
            if conn.query_one_scalar::<i32, _>("SELECT 1", &[]).await.ok() == Some(1) {
                recovered = true;
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "the same pool should serve again after the restart");
    assert_eq!(pool.monitor().snapshot().consecutive_connect_failures, 0);
}

async fn client_side_conversion_errors_are_kept_without_the_value_they_quote<P: TestPool>() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "faults_conversion", 1).await;
    let conn = pool.get().await.unwrap();
    let decode = conn
        .query_one_scalar::<Quoting, _>("SELECT 'decode-marker-alice@x.com'::text", &[])
        .await
        .unwrap_err();
    let cause = |e: &db_monitor::tokio_postgres::Error| std::error::Error::source(e).map(|c| c.to_string());
    assert!(
        cause(&decode).is_some_and(|c| c.contains("decode-marker")),
        "the caller still sees it"
    );
    let encode = conn
        .query("SELECT $1::text", &[&QuotingParam("encode-marker-bob@y.com")])
        .await
        .unwrap_err();
    assert!(cause(&encode).is_some_and(|c| c.contains("encode-marker")));
    drop(conn);

    let report = pool.monitor().error_report(None);
    assert_eq!(report.errors, 2, "{report:#?}");
    let kept =
        serde_json::to_string(&report).unwrap() + &serde_json::to_string(&pool.monitor().comprehensive(5, 50)).unwrap();
    for marker in ["decode-marker", "encode-marker", "alice@x.com", "bob@y.com"] {
        assert!(!kept.contains(marker), "{marker} was kept: {kept}");
    }
    let messages: Vec<&str> = report.recent.iter().map(|e| e.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.starts_with("error deserializing column 0")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("error serializing parameter 0")),
        "{messages:?}"
    );
}

async fn notices_are_counted_and_logged_masked_never_with_their_text<P: TestPool>() {
    let logs = captured_logs();
    let (monitor, rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "faults_notices", 1).await;
    let conn = pool.get().await.unwrap();
    conn.batch_execute("DO $$ BEGIN RAISE NOTICE 'processing %', 'notice-marker-carol@z.com'; END $$")
        .await
        .unwrap();
    conn.batch_execute("DO $$ BEGIN RAISE WARNING 'quota of % used', 'warning-marker-dan@w.com'; END $$")
        .await
        .unwrap();
    drop(conn);
    let counted = |severity: &str, code: &str| {
        rec.counter(
            db_monitor::names::NOTICES,
            &[
                ("db_client_connection_pool_name", "faults_notices"),
                ("severity", severity),
                ("db_response_status_code", code),
            ],
        )
    };
    assert!(eventually(Duration::from_secs(5), || counted("NOTICE", "00000") == 1).await);
    assert_eq!(counted("WARNING", "01000"), 1);
    // This crate's lines at any level, and anyone's at INFO and above
    // (tokio-postgres logs every notice's text at INFO when it drives the
    // connection; its DEBUG lines, under its own targets, carry the raw
    // SQL it sends, which is the application's to switch off).
    let logs = logs.lock().unwrap().clone();
    let watched: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("db_monitor") || ["INFO ", "WARN ", "ERROR "].iter().any(|p| l.starts_with(p)))
        .collect();
    for marker in ["notice-marker", "warning-marker", "carol@z.com", "dan@w.com"] {
        assert!(
            !watched.iter().any(|l| l.contains(marker)),
            "{marker} was logged:\n{watched:#?}"
        );
    }
    assert!(
        logs.contains("database notice"),
        "the notices are logged, masked:\n{logs}"
    );
}

async fn messages_the_application_raises_keep_their_sqlstate_and_no_text<P: TestPool>() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "faults_raised", 1).await;
    let conn = pool.get().await.unwrap();
    let raised = [
        "DO $$ BEGIN RAISE EXCEPTION 'user % over quota', 'raise-marker-erin@v.com'; END $$",
        "DO $$ BEGIN RAISE EXCEPTION USING MESSAGE = 'custom-marker-frank@u.com', ERRCODE = '22012'; END $$",
        "DO $$ BEGIN ASSERT 1 = 2, 'assert-marker-gina@t.com'; END $$",
    ];
    let mut codes = Vec::new();
    for sql in raised {
        let error = conn.batch_execute(sql).await.unwrap_err();
        codes.push(error.code().unwrap().code().to_owned());
    }
    assert_eq!(codes, ["P0001", "22012", "P0004"]);
    drop(conn);
    let report = pool.monitor().error_report(None);
    let kept = serde_json::to_string(&report).unwrap();
    for marker in [
        "raise-marker",
        "custom-marker",
        "assert-marker",
        "@v.com",
        "@u.com",
        "@t.com",
    ] {
        assert!(!kept.contains(marker), "{marker} was kept: {kept}");
    }
    assert_eq!(report.by_sqlstate.get("P0001"), Some(&1), "{kept}");
    assert!(report
        .recent
        .iter()
        .all(|e| e.message == "(raised by the application; its text is not kept)"));
}

/// The server's processes (the postmaster of `data` and its children),
/// for signals.
/// With the server frozen (SIGSTOP of the postmaster and every backend,
/// as a host that stops scheduling it), the health check answers 503
/// within its 800 ms timeout, well inside a 1 s probe, from one
/// connection at most, and healthy again once the server runs.
async fn a_frozen_server_gets_its_verdict_inside_a_probe_timeout<P: TestPool>() {
    use tower::{Layer, ServiceExt};
    let server = TempPostgres::start(&[]);
    let (admin, connection) = server
        .config()
        .connect(db_monitor::tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let data: String = admin.query_one("SHOW data_directory", &[]).await.unwrap().get(0);
    drop(admin);
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let pool = P::make(&monitor, "frozen", server.config(), 4, Duration::from_secs(30)).await;
    let service = db_monitor::DbMonitorLayer::new(pool.monitor().clone()).layer(tower::service_fn(
        |_: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
        },
    ));
    let health = |service: &db_monitor::layer::DbMonitorService<_>| {
        let service = service.clone();
        async move {
            let request = http::Request::get("/health/database").body(String::new()).unwrap();
            let started = std::time::Instant::now();
            let response = service.oneshot(request).await.unwrap();
            (response.status(), started.elapsed())
        }
    };
    let (status, _) = health(&service).await;
    assert_eq!(status, http::StatusCode::OK);

    // Past the second for which a verdict is reused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let frozen = Frozen::new(server_processes(&data));
    // Probes in a row and at once, as several load balancers send them.
    let mut verdicts = Vec::new();
    for _ in 0..3 {
        let (a, b) = tokio::join!(health(&service), health(&service));
        verdicts.extend([a, b]);
        let snapshot = pool.monitor().snapshot();
        assert!(snapshot.connections <= 1, "{snapshot:?}");
    }
    drop(frozen);
    for (status, took) in &verdicts {
        assert_eq!(*status, http::StatusCode::SERVICE_UNAVAILABLE);
        assert!(*took < Duration::from_secs(1), "the verdict took {took:?}");
    }
    let mut healthy = false;
    for _ in 0..50 {
        if health(&service).await.0 == http::StatusCode::OK {
            healthy = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healthy, "healthy again once the server runs");
}

/// A storm of more constraint violations than the error store keeps is
/// counted whole: the report's totals, its counts by class and SQLSTATE,
/// and the series' failures by kind say how many happened; `kept` says
/// how many records the store still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_storm_past_the_store_is_counted_whole() {
    let config = MonitorConfig::default().error_history(50);
    let (monitor, _rec) = monitor(config);
    let pool = pool(&monitor, "error_storm", 2).await;
    let table = unique("storm");
    let conn = pool.get().await.unwrap();
    conn.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY); INSERT INTO {table} VALUES (1)"
    ))
    .await
    .unwrap();
    let insert = format!("INSERT INTO {table} VALUES (1)");
    for _ in 0..300 {
        conn.execute(&*insert, &[]).await.unwrap_err();
    }
    drop(conn);
    for report in [pool.monitor().error_report(None), pool.monitor().error_report(Some(5))] {
        assert_eq!(report.errors, 300, "{:?}", report.by_type);
        assert_eq!(report.by_type["constraint_violation"], 300);
        assert_eq!(report.by_sqlstate["23505"], 300);
        assert_eq!((report.kept, report.recent.len()), (50, 50));
        assert_eq!(report.evicted, 250);
    }
    let series = pool.monitor().series(5);
    let charted: u64 = series
        .points
        .iter()
        .filter_map(|p| p.errors_by_kind.get("constraint_violation"))
        .sum();
    assert_eq!(charted, 300);
    pool.monitor().reset_stores();
    assert_eq!(
        pool.monitor().error_report(None).errors,
        0,
        "a reset starts the counts again"
    );
}

on_both_pools!(
    a_frozen_server_gets_its_verdict_inside_a_probe_timeout,
    a_real_deadlock_is_classified_once,
    a_real_serialization_failure_is_classified,
    statement_timeout_and_lock_timeout_are_told_apart,
    idle_in_transaction_timeout_is_kept_from_the_connection_task,
    terminating_an_idle_connection_records_57p01_and_the_pool_recovers,
    terminating_a_busy_connection_fails_its_statement_once,
    a_full_pool_times_out_as_pool_exhausted,
    a_refused_port_fails_fast_with_the_connect_error,
    a_stopped_server_fails_checkouts_at_once_and_they_recover_on_its_return,
    an_abandoned_statement_retires_its_connection_and_is_cancelled_on_the_server,
    a_row_stream_dropped_while_the_server_still_sends_is_cancelled_there,
    a_cancel_request_never_falls_on_the_next_statement_of_the_checkout,
    a_stream_outliving_its_checkout_keeps_its_connection_from_the_next_caller,
    max_connections_exhausted_on_the_server_is_too_many_connections,
    a_server_restart_fails_then_recovers_without_a_new_pool,
    client_side_conversion_errors_are_kept_without_the_value_they_quote,
    notices_are_counted_and_logged_masked_never_with_their_text,
    messages_the_application_raises_keep_their_sqlstate_and_no_text,
);

/// deadpool's `Clean` recycling (deadpool-postgres's `DISCARD`-like reset)
/// between two checkouts of one connection: the session is reset, the
/// monitor's statement cache survives it, the reset is not counted as the
/// application's work, and a checkout after a traced one shows the
/// connection's own name (the reset gave it back; the monitor knows).
#[cfg(feature = "deadpool")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_clean_recycling_resets_the_session_and_keeps_the_monitor_right() {
    use db_monitor::deadpool_postgres::{ManagerConfig, RecyclingMethod};
    use db_monitor::TraceParent;
    use std::sync::Mutex;
    let current: Arc<Mutex<Option<TraceParent>>> = Arc::default();
    let source = current.clone();
    let (monitor, rec) = monitor(MonitorConfig::default().trace_context(move || *source.lock().unwrap()));
    let clean = ManagerConfig {
        recycling_method: RecyclingMethod::Clean,
    };
    let builder = monitor
        .manager("deadpool_clean", shared_config(), db_monitor::tokio_postgres::NoTls)
        .deadpool_builder(clean)
        .max_size(1);
    let pool = monitor.deadpool(builder).unwrap();
    let by_id = "SELECT $1::int + 1";
    *current.lock().unwrap() = TraceParent::new([6; 16], [1; 8], true);
    let first = pool.get().await.unwrap();
    let id = first.connection_id();
    first.batch_execute("SET work_mem = '7MB'").await.unwrap();
    first.prepare_cached(by_id).await.unwrap();
    let name: String = first
        .query_one_scalar("SELECT current_setting('application_name')", &[])
        .await
        .unwrap();
    assert_eq!(name, current.lock().unwrap().unwrap().to_string());
    drop(first);

    *current.lock().unwrap() = None;
    let second = pool.get().await.unwrap();
    assert_eq!(second.connection_id(), id, "the same connection, recycled");
    let work_mem: String = second.query_one_scalar("SHOW work_mem", &[]).await.unwrap();
    assert_eq!(work_mem, "4MB", "the session was reset");
    let name: String = second
        .query_one_scalar("SELECT current_setting('application_name')", &[])
        .await
        .unwrap();
    assert_eq!(name, "db-monitor-tests", "the connection's own name");
    let statement = second.prepare_cached(by_id).await.unwrap();
    assert_eq!(second.query_one_scalar::<i32, _>(&statement, &[&1]).await.unwrap(), 2);
    assert_eq!(
        rec.counter(db_monitor::names::PREPARED_CACHE, &[("result", "hit")]),
        1,
        "the cache outlived the reset"
    );
    drop(second);
    let stats = pool.monitor().query_stats();
    assert!(
        stats
            .iter()
            .all(|q| !q.normalized.contains("DISCARD") && !q.normalized.contains("CLOSE ALL")),
        "{stats:#?}"
    );
    assert_eq!(rec.counter(ERRORS, &[]), 0, "{}", rec.dump(ERRORS));
}
