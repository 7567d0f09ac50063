//! Spans on real PostgreSQL, read by a `tracing` layer of the test's own:
//! every client method's span and its attributes, a real deadlock's and a
//! real statement timeout's, a transaction over its statements, a checkout
//! that timed out, no literal anywhere, and the trace context reaching the
//! server.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use db_monitor::tokio_postgres::types::Type;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitorLayer, MonitorConfig, ServerView, TraceParent};
use futures_util::{pin_mut, SinkExt, TryStreamExt};
use support::http::get_json;
use support::pg::shared_config;
use support::sources::{pool_of, TestPool};
use support::spans::{capture, Captured, Spans};
use support::unique;
use tower::Layer;
use tracing::Instrument;

/// The one closed `db_monitor` span named `name` (panics unless exactly one).
fn one(spans: &Spans, name: &str) -> Captured {
    let mut found: Vec<Captured> = spans.monitor().into_iter().filter(|s| s.name() == name).collect();
    assert_eq!(found.len(), 1, "spans named {name:?}: {:#?}", spans.monitor());
    assert!(found[0].closed, "{name:?} is closed");
    found.remove(0)
}

/// What every statement span of the pool `pool` says of its database.
fn assert_connection_fields(span: &Captured, pool: &str) {
    let config = shared_config();
    assert_eq!(span.field("otel.kind"), Some("client"), "{span:?}");
    assert_eq!(span.field("db.system.name"), Some("postgresql"));
    assert_eq!(span.field("db.namespace"), config.get_dbname());
    assert_eq!(span.field("db.client.connection.pool.name"), Some(pool));
    let address = match &config.get_hosts()[0] {
        db_monitor::tokio_postgres::config::Host::Tcp(host) => host.clone(),
        db_monitor::tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
    };
    assert_eq!(span.field("server.address"), Some(address.as_str()));
    assert_eq!(
        span.field("server.port"),
        Some(config.get_ports().first().copied().unwrap_or(5432).to_string().as_str())
    );
    let waited: f64 = span
        .field("db_monitor.checkout.wait_ms")
        .expect("wait")
        .parse()
        .unwrap();
    assert!(waited >= 0.0);
}

/// Every client method once, each checked for its span's name, text,
/// rows and the pool's attributes.
async fn every_method_has_a_span_named_by_its_summary<P: TestPool>() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "spans_methods", 2).await;
    let table = unique("span_items");
    let conn = pool.get().await.unwrap();
    conn.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, v text); INSERT INTO {table} SELECT g, 'v' FROM generate_series(1, 5) g"
    ))
    .await
    .unwrap();
    let (spans, _guard) = capture();
    let select = format!("SELECT id FROM {table} WHERE id <= $1");
    let select_name = format!("SELECT {table}");
    let update = format!("UPDATE {table} SET v = $1 WHERE id <= $2");
    let update_name = format!("UPDATE {table}");
    // Parameters as written, literals as `?` (the convention's
    // db.query.text for parameterized text).
    let select_text = format!("SELECT id FROM {table} WHERE id <= $1");
    let update_text = format!("UPDATE {table} SET v = $1 WHERE id <= $2");
    let simple_text = format!("SELECT id FROM {table}");
    let batch_text = format!("UPDATE {table} SET v = ?");
    let copy_out_text = format!("COPY {table}(id, v) TO STDOUT");
    let copy_in_text = format!("COPY {table}(id, v) FROM STDIN");

    // (method, span name, returned rows, affected rows)
    let mut expected: Vec<(&str, String, Option<u64>, Option<u64>)> = Vec::new();
    let mut check = |method: &'static str, name: &str, text: &str, returned: Option<u64>, affected: Option<u64>| {
        expected.push((method, name.to_owned(), returned, affected));
        let span = one(&spans, name);
        assert_connection_fields(&span, "spans_methods");
        assert_eq!(span.field("db.query.summary"), Some(name), "{method}");
        assert_eq!(
            span.field("db.response.returned_rows")
                .map(|n| n.parse::<u64>().unwrap()),
            returned,
            "{method}: {span:?}"
        );
        assert_eq!(
            span.field("db_monitor.rows_affected")
                .map(|n| n.parse::<u64>().unwrap()),
            affected,
            "{method}: {span:?}"
        );
        assert_eq!(span.field("error.type"), None, "{method}");
        assert_eq!(span.field("db.operation.name"), None, "{method}: parsed, so not set");
        assert_eq!(span.field("db.query.text"), Some(text), "{method}: the masked text");
        for known in ["otel.name", "db.query.summary", "db.query.text", "db.namespace"] {
            assert!(
                span.at_creation.iter().any(|f| f == known),
                "{method}: {known} is set when the span is created, for head samplers: {:?}",
                span.at_creation
            );
        }
        spans.clear();
    };

    let prepared = conn.prepare(&select).await.unwrap();
    {
        let span = one(&spans, &format!("PREPARE {select_name}"));
        assert_eq!(span.field("db.operation.name"), Some("PREPARE"));
        assert_eq!(
            span.field("db.query.summary"),
            Some(format!("PREPARE {select_name}").as_str())
        );
        spans.clear();
    }
    conn.query(&prepared, &[&3_i32]).await.unwrap();
    check("query (prepared)", &select_name, &select_text, Some(3), None);
    conn.query(&select, &[&2_i32]).await.unwrap();
    check("query", &select_name, &select_text, Some(2), None);
    conn.query_one(&select, &[&1_i32]).await.unwrap();
    check("query_one", &select_name, &select_text, Some(1), None);
    conn.query_opt(&select, &[&0_i32]).await.unwrap();
    check("query_opt", &select_name, &select_text, Some(0), None);
    let stream = conn.query_raw(&select, [4_i32]).await.unwrap();
    let rows: Vec<_> = stream.try_collect().await.unwrap();
    assert_eq!(rows.len(), 4);
    check("query_raw", &select_name, &select_text, Some(4), None);
    conn.query_typed(&select, &[(&5_i32, Type::INT4)]).await.unwrap();
    check("query_typed", &select_name, &select_text, Some(5), None);
    conn.query_typed_one(&select, &[(&1_i32, Type::INT4)]).await.unwrap();
    check("query_typed_one", &select_name, &select_text, Some(1), None);
    conn.query_typed_opt(&select, &[(&1_i32, Type::INT4)]).await.unwrap();
    check("query_typed_opt", &select_name, &select_text, Some(1), None);
    let stream = conn.query_typed_raw(&select, [(2_i32, Type::INT4)]).await.unwrap();
    let rows: Vec<_> = stream.try_collect().await.unwrap();
    assert_eq!(rows.len(), 2);
    check("query_typed_raw", &select_name, &select_text, Some(2), None);
    conn.execute(&update, &[&"w", &2_i32]).await.unwrap();
    check("execute", &update_name, &update_text, None, Some(2));
    conn.execute_typed(&update, &[(&"w", Type::TEXT), (&3_i32, Type::INT4)])
        .await
        .unwrap();
    check("execute_typed", &update_name, &update_text, None, Some(3));
    conn.execute_raw(
        &update,
        [&"x" as &(dyn db_monitor::tokio_postgres::types::ToSql + Sync), &4_i32],
    )
    .await
    .unwrap();
    check("execute_raw", &update_name, &update_text, None, Some(4));
    let ids: Vec<i32> = conn.query_scalar(&select, &[&3_i32]).await.unwrap();
    assert_eq!(ids.len(), 3);
    check("query_scalar", &select_name, &select_text, Some(3), None);
    let _: i32 = conn.query_one_scalar(&select, &[&1_i32]).await.unwrap();
    check("query_one_scalar", &select_name, &select_text, Some(1), None);
    let _: Option<i32> = conn.query_opt_scalar(&select, &[&0_i32]).await.unwrap();
    check("query_opt_scalar", &select_name, &select_text, Some(0), None);
    let simple = format!("SELECT id FROM {table}");
    conn.simple_query(&simple).await.unwrap();
    check("simple_query", &select_name, &simple_text, Some(5), None);
    let stream = conn.simple_query_raw(&simple).await.unwrap();
    let _: Vec<_> = stream.try_collect().await.unwrap();
    check("simple_query_raw", &select_name, &simple_text, Some(5), None);
    conn.batch_execute(&format!("UPDATE {table} SET v = 'y'"))
        .await
        .unwrap();
    check("batch_execute", &update_name, &batch_text, None, None);
    let copy_name = format!("COPY {table}");
    let out = conn.copy_out(&format!("COPY {table} (id, v) TO STDOUT")).await.unwrap();
    let copied: Vec<_> = out.try_collect().await.unwrap();
    assert!(!copied.is_empty());
    check("copy_out", &copy_name, &copy_out_text, None, None);
    let sink = conn
        .copy_in::<_, bytes::Bytes>(&format!("COPY {table} (id, v) FROM STDIN"))
        .await
        .unwrap();
    pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"100\tz\n")).await.unwrap();
    sink.finish().await.unwrap();
    check("copy_in", &copy_name, &copy_in_text, None, None);
    assert_eq!(expected.len(), 20, "every statement method");
    drop(conn);
    drop(pool);
}

/// `span_level` sets the spans' level, or turns them off: a subscriber
/// that takes INFO sees no statement at DEBUG, one that takes DEBUG does,
/// and with the spans off no subscriber sees any.
async fn the_span_level_is_a_setting<P: TestPool>() {
    use tracing::Level;
    for (level, subscriber, seen) in [
        (Some(Level::DEBUG), Level::INFO, false),
        (Some(Level::DEBUG), Level::DEBUG, true),
        (Some(Level::INFO), Level::INFO, true),
        (None, Level::TRACE, false),
    ] {
        let (monitor, _rec) = support::monitor(MonitorConfig::default().span_level(level));
        let pool = pool_of::<P>(&monitor, "spans_level", 1).await;
        let (spans, _guard) = support::spans::capture_at(subscriber);
        let mut conn = pool.get().await.unwrap();
        conn.query_one("SELECT 1", &[]).await.unwrap();
        let tx = conn.transaction().await.unwrap();
        tx.rollback().await.unwrap();
        let monitor_spans = spans.monitor();
        assert_eq!(
            !monitor_spans.is_empty(),
            seen,
            "spans at {level:?}, a subscriber at {subscriber}: {monitor_spans:?}"
        );
        if seen {
            assert!(monitor_spans.iter().any(|s| s.name() == "SELECT" && s.closed));
            assert!(monitor_spans.iter().any(|s| s.name() == "transaction"));
        }
    }
}

/// Real statements of several operations and tables: a `WITH` query, a
/// join and an `INSERT … SELECT` are summarized operation by operation in
/// the order written, their text keeps its parameters, and the database
/// is the pool's.
async fn a_summary_names_each_operation_and_table_in_order<P: TestPool>() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "spans_summary", 1).await;
    let (a, b) = (unique("sum_a"), unique("sum_b"));
    let conn = pool.get().await.unwrap();
    conn.batch_execute(&format!(
        "CREATE TABLE {a} (id int PRIMARY KEY, v text); CREATE TABLE {b} (id int, v text);
         INSERT INTO {a} VALUES (1, 'x'), (2, 'y')"
    ))
    .await
    .unwrap();
    let (spans, _guard) = capture();
    let cases = [
        (
            format!("WITH recent AS (SELECT id FROM {a} WHERE id > $1) SELECT * FROM recent"),
            format!("SELECT {a} SELECT recent"),
        ),
        (
            format!("SELECT x.v FROM {a} x JOIN {b} y ON x.id = y.id WHERE x.id = $1"),
            format!("SELECT {a} {b}"),
        ),
        (
            format!("INSERT INTO {b} SELECT id, v FROM {a} WHERE id > $1"),
            format!("INSERT {b} SELECT {a}"),
        ),
    ];
    for (sql, summary) in &cases {
        conn.execute(sql.as_str(), &[&0_i32]).await.unwrap();
        let span = one(&spans, summary);
        assert_eq!(span.field("db.query.summary"), Some(summary.as_str()));
        assert_eq!(span.field("db.query.text"), Some(sql.as_str()), "parameters as written");
        assert_eq!(span.field("db.operation.name"), None, "not parsed from the text");
        assert_eq!(span.field("db.collection.name"), None, "not parsed from the text");
        let config = shared_config();
        assert_eq!(span.field("db.namespace"), config.get_dbname().or(config.get_user()));
        spans.clear();
    }
}

/// A statement the server answered with a warning carries its SQLSTATE
/// (PostgreSQL's convention: `db.response.status_code` when the response
/// ended with a warning or an error) and is no failure; the next
/// statement does not inherit it.
async fn a_warning_gives_its_sqlstate_to_its_statement<P: TestPool>() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "spans_warning", 1).await;
    let conn = pool.get().await.unwrap();
    let (spans, _guard) = capture();
    // A warning the server writes itself (01000 is the class of warnings):
    // a transaction ended where none is open.
    conn.batch_execute("COMMIT").await.unwrap();
    conn.query_one("SELECT 1", &[]).await.unwrap();
    let commit = one(&spans, "COMMIT");
    assert_eq!(commit.field("db.response.status_code"), Some("25P01"), "{commit:?}");
    assert_eq!(commit.field("error.type"), None);
    assert_eq!(commit.field("otel.status_code"), None);
    let select = one(&spans, "SELECT");
    assert_eq!(select.field("db.response.status_code"), None, "{select:?}");
}

/// `BEGIN`, the statements, a savepoint's and `COMMIT` are children of the
/// transaction's span, the savepoint's statements of its own span, and the
/// transaction is a child of the request's span.
async fn a_transaction_span_holds_its_statements<P: TestPool>() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "spans_tx", 2).await;
    let table = unique("span_tx");
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"))
        .await
        .unwrap();
    let (spans, _guard) = capture();
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    async {
        let mut tx = conn.transaction().await.unwrap();
        tx.execute(&insert, &[&1_i32]).await.unwrap();
        let inner = tx.savepoint("sp_inner").await.unwrap();
        inner.execute(&insert, &[&2_i32]).await.unwrap();
        inner.commit().await.unwrap();
        tx.commit().await.unwrap();
        conn.query(&format!("SELECT id FROM {table}"), &[]).await.unwrap();
        {
            let tx = conn.transaction().await.unwrap();
            tx.execute(&insert, &[&3_i32]).await.unwrap();
            // Dropped: abandoned.
        }
    }
    .instrument(tracing::info_span!("request"))
    .await;

    let all = spans.all();
    let request = all.iter().find(|s| s.callsite == "request").unwrap().index;
    let transactions: Vec<&Captured> = all.iter().filter(|s| s.name() == "transaction").collect();
    assert_eq!(transactions.len(), 3, "{all:#?}");
    let (outer, nested, abandoned) = (transactions[0], transactions[1], transactions[2]);
    assert_eq!(outer.parent, Some(request));
    assert_eq!(nested.parent, Some(outer.index));
    assert_eq!(abandoned.parent, Some(request));
    assert_eq!(outer.field("otel.kind"), Some("internal"));
    assert_eq!(outer.field("db_monitor.transaction.outcome"), Some("committed"));
    assert_eq!(nested.field("db_monitor.transaction.outcome"), Some("committed"));
    assert_eq!(abandoned.field("db_monitor.transaction.outcome"), Some("abandoned"));
    assert!(transactions.iter().all(|t| t.closed));
    let children = |parent: usize| -> Vec<String> {
        all.iter()
            .filter(|s| s.parent == Some(parent))
            .map(|s| s.name().to_owned())
            .collect()
    };
    let insert_name = format!("INSERT {table}");
    assert_eq!(
        children(outer.index),
        ["BEGIN", insert_name.as_str(), "transaction", "COMMIT"],
        "{all:#?}"
    );
    assert_eq!(children(nested.index), ["SAVEPOINT", insert_name.as_str(), "COMMIT"]);
    assert_eq!(children(abandoned.index), ["BEGIN", insert_name.as_str()]);
    assert_eq!(
        children(request),
        ["transaction", format!("SELECT {table}").as_str(), "transaction"]
    );
    let begin = all.iter().find(|s| s.name() == "BEGIN").unwrap();
    assert_eq!(begin.field("db.operation.name"), Some("BEGIN"), "known without parsing");
    let commit = all.iter().find(|s| s.name() == "COMMIT").unwrap();
    assert_eq!(commit.field("db.operation.name"), Some("COMMIT"));
}

/// A real deadlock, a real statement timeout and an abandoned statement:
/// each span has the crate's `error.type`, the SQLSTATE and an error status.
async fn failures_carry_their_kind_and_sqlstate<P: TestPool>() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "spans_failures", 3).await;
    let (spans, _guard) = capture();

    let (_update, error) = support::deadlock(&pool).await;
    assert_eq!(error.code().unwrap().code(), "40P01");
    let (transactions, failed): (Vec<Captured>, Vec<Captured>) = spans
        .monitor()
        .into_iter()
        .filter(|s| s.field("error.type").is_some())
        .partition(|s| s.name() == "transaction");
    assert_eq!(failed.len(), 1, "{failed:#?}");
    // The deadlocked side's transaction, dropped after its failure, failed.
    assert_eq!(transactions.len(), 1, "{transactions:#?}");
    assert_eq!(transactions[0].field("db_monitor.transaction.outcome"), Some("failed"));
    assert_eq!(failed[0].field("error.type"), Some("deadlock"));
    assert_eq!(failed[0].field("db.response.status_code"), Some("40P01"));
    assert_eq!(failed[0].field("otel.status_code"), Some("ERROR"));
    assert!(failed[0].name().starts_with("UPDATE deadlock_"), "{:?}", failed[0]);
    spans.clear();

    let conn = pool.get().await.unwrap();
    conn.batch_execute("SET statement_timeout = '50ms'").await.unwrap();
    spans.clear();
    let error = conn.query("SELECT pg_sleep($1)", &[&2.0_f64]).await.unwrap_err();
    assert_eq!(error.code().unwrap().code(), "57014");
    let span = one(&spans, "SELECT");
    assert_eq!(span.field("error.type"), Some("statement_timeout"));
    assert_eq!(span.field("db.response.status_code"), Some("57014"));
    assert_eq!(span.field("otel.status_code"), Some("ERROR"));
    assert_eq!(span.field("db.query.text"), Some("SELECT pg_sleep($1)"));
    conn.batch_execute("RESET statement_timeout").await.unwrap();
    spans.clear();

    let abandoned = conn.query("SELECT pg_sleep(5)", &[]);
    assert!(tokio::time::timeout(Duration::from_millis(100), abandoned)
        .await
        .is_err());
    let span = one(&spans, "SELECT");
    assert_eq!(span.field("error.type"), Some("cancelled"));
    assert_eq!(span.field("db.response.status_code"), None);
    // One statement with the one before (they differ in a literal only):
    // its text is theirs, the first one's, and holds no value.
    assert_eq!(span.field("db.query.text"), Some("SELECT pg_sleep($1)"));
}

/// A checkout that times out is a span with its `error.type` and wait; a
/// checkout that succeeds has none.
async fn a_checkout_timeout_is_a_span<P: TestPool>() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = P::make(
        &monitor,
        "spans_checkout",
        shared_config(),
        1,
        Duration::from_millis(150),
    )
    .await;
    let (spans, _guard) = capture();
    let held = pool.get().await.unwrap();
    assert!(spans.monitor().is_empty(), "a checkout that succeeds has no span");
    let error = pool.get().await.unwrap_err();
    assert_eq!(error.kind(), db_monitor::ErrorKind::PoolExhausted);
    let span = one(&spans, "checkout");
    assert_eq!(span.field("error.type"), Some("pool_exhausted"));
    assert_eq!(span.field("otel.status_code"), Some("ERROR"));
    assert_eq!(span.field("db.client.connection.pool.name"), Some("spans_checkout"));
    let waited: f64 = span.field("db_monitor.checkout.wait_ms").unwrap().parse().unwrap();
    assert!(waited >= 150.0, "{waited}");
    drop(held);
}

/// Markers in literals, parameters and failing statements (a unique
/// violation whose DETAIL holds the value, a conversion error quoting it)
/// appear in no field of any span.
async fn no_literal_reaches_a_span<P: TestPool>() {
    const MARKER: &str = "zq7marker";
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let pool = pool_of::<P>(&monitor, "spans_literals", 2).await;
    let table = unique("span_secret");
    let mut conn = pool.get().await.unwrap();
    let (spans, _guard) = capture();
    conn.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, v text UNIQUE); INSERT INTO {table} VALUES (1, '{MARKER}')"
    ))
    .await
    .unwrap();
    let marked = format!("{MARKER}-param");
    conn.query(
        &format!("SELECT * FROM {table} WHERE v = '{MARKER}' OR v = $1"),
        &[&marked],
    )
    .await
    .unwrap();
    conn.query(
        &format!("SELECT * FROM {table} WHERE id = 731958246 AND v <> E'{MARKER}'"),
        &[],
    )
    .await
    .unwrap();
    let _ = conn
        .execute(&format!("INSERT INTO {table} VALUES (2, '{MARKER}')"), &[])
        .await
        .unwrap_err();
    let _ = conn.query(&format!("SELECT '{MARKER}'::int"), &[]).await.unwrap_err();
    let _ = conn.prepare(&format!("SELEC '{MARKER}'")).await.unwrap_err();
    let tx = conn.transaction().await.unwrap();
    tx.execute(&format!("UPDATE {table} SET v = $$ {MARKER} $$ WHERE id = 1"), &[])
        .await
        .unwrap();
    let _ = tx
        .execute(&format!("INSERT INTO {table} VALUES (1, '{MARKER}')"), &[])
        .await
        .unwrap_err();
    drop(tx);
    let all = spans.monitor();
    assert!(all.len() >= 9, "{all:#?}");
    for span in &all {
        for (field, value) in &span.fields {
            assert!(
                !value.contains(MARKER) && !value.contains("731958246"),
                "{field} = {value:?} in {span:#?}"
            );
        }
    }
    assert!(all
        .iter()
        .any(|s| s.field("error.type") == Some("constraint_violation")));
}

/// The connection's `application_name`, as a checkout of `pool` sees it.
async fn application_name(pool: &impl TestPool) -> String {
    let conn = pool.get().await.unwrap();
    conn.query_one("SELECT current_setting('application_name')", &[])
        .await
        .unwrap()
        .get::<_, String>(0)
}

/// The application's own customizer, naming each connection as it is
/// acquired.
#[derive(Debug)]
struct NameOnAcquire;

impl db_monitor::bb8::CustomizeConnection<db_monitor::MonitoredClient, db_monitor::tokio_postgres::Error>
    for NameOnAcquire
{
    fn on_acquire<'a>(
        &'a self,
        conn: &'a mut db_monitor::MonitoredClient,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), db_monitor::tokio_postgres::Error>> + Send + 'a>>
    {
        Box::pin(async move { conn.batch_execute("SET application_name = 'from-customizer'").await })
    }
}

/// With a trace context set, each checkout shows its trace to the server
/// in `application_name` before its first statement runs, and a checkout
/// outside any trace gives the connection its own name back.
async fn the_trace_context_reaches_the_server<P: TestPool>() {
    let current: Arc<Mutex<Option<TraceParent>>> = Arc::default();
    let source = current.clone();
    let config = MonitorConfig::default()
        .trace_context(move || *source.lock().unwrap())
        .server_view(ServerView::default().interval(Duration::from_millis(100)));
    let (monitor, _rec) = support::monitor(config);
    let pool = pool_of::<P>(&monitor, "spans_context", 1).await;
    let _background = monitor.start(pool.monitor().clone());
    let own = application_name(&pool).await;
    assert_eq!(own, "db-monitor-tests");
    let parent = TraceParent::new([0x3c; 16], [0x5d; 8], true).unwrap();
    *current.lock().unwrap() = Some(parent);
    assert_eq!(application_name(&pool).await, parent.to_string());
    // Seen from another session too, while the statement runs.
    let other = pool.get().await.unwrap();
    let pid: i32 = other.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let (watcher, connection) = shared_config().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let seen: String = watcher
        .query_one("SELECT application_name FROM pg_stat_activity WHERE pid = $1", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, parent.to_string());
    // The server view names the trace of the backend's checkout.
    let service = DbMonitorLayer::new(pool.monitor().clone()).layer(tower::service_fn(|_: http::Request<_>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    }));
    let trace_id = "3c".repeat(16);
    let mut shown = serde_json::Value::Null;
    for _ in 0..100 {
        shown = get_json(&service, "/health/database/server/activity").await;
        if shown["backends"][0]["trace_id"] == trace_id.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(shown["backends"][0]["trace_id"], trace_id.as_str(), "{shown:#}");
    drop(other);
    *current.lock().unwrap() = None;
    assert_eq!(application_name(&pool).await, own, "reset outside a trace");
}

/// The trace is set by a `SELECT set_config(…)`, whose constants the server
/// normalizes: `pg_stat_statements` keeps one entry for every traced
/// checkout (a `SET` with a literal made one per trace),
/// the server view lists none of the monitor's own statements, and a
/// checkout outside a trace restores the name the connection's `setup`
/// gave it, not the startup parameter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traced_checkouts_make_one_server_statement_and_keep_the_setup_name() {
    let server = support::pg::TempPostgres::start(&["-c", "shared_preload_libraries=pg_stat_statements"]);
    let (admin, connection) = server.config().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    admin
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let current: Arc<Mutex<Option<TraceParent>>> = Arc::default();
    let source = current.clone();
    let config = MonitorConfig::default()
        .trace_context(move || *source.lock().unwrap())
        .server_view(ServerView::default().interval(Duration::from_millis(100)));
    let (monitor, _rec) = support::monitor(config);
    let manager = monitor
        .manager("spans_set_config", server.config(), NoTls)
        .setup(r"SET application_name = E'orders-api''s \\ v2'");
    let builder = db_monitor::bb8::Pool::builder().max_size(2);
    let pool = monitor.pool(manager, builder).await.unwrap();
    let _background = monitor.start(&pool);
    let own = r"orders-api's \ v2";
    assert_eq!(application_name(&pool).await, own);
    for i in 0..60u8 {
        *current.lock().unwrap() = TraceParent::new([i + 1; 16], [7; 8], true);
        let shown = application_name(&pool).await;
        assert_eq!(shown, current.lock().unwrap().unwrap().to_string());
    }
    *current.lock().unwrap() = None;
    assert_eq!(
        application_name(&pool).await,
        own,
        "the setup's name back, quotes and all"
    );

    // A name the application's customizer gives is the one given back.
    let customized = db_monitor::bb8::Pool::builder()
        .max_size(1)
        .connection_customizer(Box::new(NameOnAcquire));
    let manager = monitor.manager("spans_customized", server.config(), NoTls);
    let named = monitor.pool(manager, customized).await.unwrap();
    assert_eq!(application_name(&named).await, "from-customizer");
    *current.lock().unwrap() = TraceParent::new([9; 16], [7; 8], true);
    assert_eq!(
        application_name(&named).await,
        current.lock().unwrap().unwrap().to_string()
    );
    *current.lock().unwrap() = None;
    assert_eq!(
        application_name(&named).await,
        "from-customizer",
        "the customizer's name back"
    );
    let entries: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_statements WHERE query ILIKE '%application_name%' \
             AND query NOT ILIKE '%pg_stat_activity%' AND query NOT ILIKE '%pg_locks%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    // The setup's SET (one literal), set_config, current_setting; not the
    // server view's own reads of pg_stat_activity and pg_locks, which name
    // the column (whether the election's holder query ran by now is a
    // matter of timing: CI saw 5).
    assert!(entries <= 4, "{entries} entries name application_name");
    let listed = support::eventually(Duration::from_secs(5), || {
        let statements = pool.monitor().server_statements(50);
        statements.missing.is_none() && !statements.statements.is_empty()
    })
    .await;
    assert!(listed);
    let statements = pool.monitor().server_statements(50);
    assert!(
        statements
            .statements
            .iter()
            .all(|s| !s.statement.contains("set_config") && !s.statement.contains("backend_start")),
        "{:#?}",
        statements.statements
    );
}

on_both_pools!(
    current_thread:
    every_method_has_a_span_named_by_its_summary,
    a_transaction_span_holds_its_statements,
    failures_carry_their_kind_and_sqlstate,
    a_checkout_timeout_is_a_span,
    no_literal_reaches_a_span,
    the_trace_context_reaches_the_server,
    the_span_level_is_a_setting,
    a_warning_gives_its_sqlstate_to_its_statement,
    a_summary_names_each_operation_and_table_in_order,
);

/// On deadpool, a name a `post_create` hook gives (deadpool's customizer)
/// is the one a checkout outside a trace gives back.
#[cfg(feature = "deadpool")]
#[tokio::test]
async fn a_deadpool_hook_keeps_its_name_after_a_trace() {
    use db_monitor::deadpool::managed::Hook;
    use db_monitor::deadpool_postgres::ManagerConfig;
    let current: Arc<Mutex<Option<TraceParent>>> = Arc::default();
    let source = current.clone();
    let (monitor, _rec) = support::monitor(MonitorConfig::default().trace_context(move || *source.lock().unwrap()));
    let hook = Hook::async_fn(|conn: &mut db_monitor::MonitoredClient, _| {
        Box::pin(async move {
            conn.batch_execute("SET application_name = 'from-hook'")
                .await
                .map_err(db_monitor::deadpool::managed::HookError::Backend)
        })
    });
    let builder = monitor
        .manager("spans_hook", shared_config(), NoTls)
        .deadpool_builder(ManagerConfig::default())
        .max_size(1)
        .post_create(hook);
    let pool = monitor.deadpool(builder).unwrap();
    assert_eq!(application_name(&pool).await, "from-hook");
    *current.lock().unwrap() = TraceParent::new([4; 16], [2; 8], true);
    assert_eq!(
        application_name(&pool).await,
        current.lock().unwrap().unwrap().to_string()
    );
    *current.lock().unwrap() = None;
    assert_eq!(application_name(&pool).await, "from-hook", "the hook's name back");
}
