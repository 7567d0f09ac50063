//! A small application written the way bb8-postgres and deadpool-postgres
//! services are written, moved onto the monitored pool (each test on both):
//! its own customizer (`connection_customizer`, `post_create`), a
//! `query_raw` stream read for its first row and dropped, a per-connection
//! statement cache (`prepare_cached`), data-access functions generic over
//! the client, and a transaction dropped after a failed statement. Run on
//! real PostgreSQL, it must behave as it did on tokio-postgres alone, and
//! the monitor must say what happened.

mod support;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use db_monitor::names::{
    ABANDONED_CONNECTIONS, CANCEL_REQUESTS, CONNECTIONS_CLOSED, CONNECTIONS_CREATED, OPERATIONS_CANCELLED,
    PREPARED_CACHE, STREAMS_ENDED_EARLY, TRANSACTION_DURATION,
};
use db_monitor::tokio_postgres::{Error, NoTls};
use db_monitor::{MonitorConfig, MonitoredClient, MonitoredPool};
use support::pg::shared_config;
use support::sources::TestPool;
use support::{eventually, monitor, unique, Recorded};

/// The application's customizer: every connection searches its schema.
#[derive(Debug)]
struct SearchPath(String);

impl db_monitor::bb8::CustomizeConnection<MonitoredClient, Error> for SearchPath {
    fn on_acquire<'a>(
        &'a self,
        conn: &'a mut MonitoredClient,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(async move {
            conn.batch_execute(&format!("SET search_path = {}, public", self.0))
                .await
        })
    }
}

/// The application's data access (shared with `benches/adoption.rs`).
#[path = "support/stories.rs"]
mod store;

/// The default settings, with a grace no loaded machine's ping misses.
fn patient() -> MonitorConfig {
    MonitorConfig::default().abandoned_grace(Duration::from_secs(3))
}

/// A pool built as the application builds it: its own builder with its
/// customizer (bb8's `connection_customizer`, deadpool's `post_create`
/// hook), two connections at most.
trait AppPool: TestPool {
    fn build(monitor: &db_monitor::DbMonitor, name: &str, schema: &str) -> impl Future<Output = Self> + Send;
}

impl AppPool for MonitoredPool<NoTls> {
    async fn build(monitor: &db_monitor::DbMonitor, name: &str, schema: &str) -> Self {
        let builder = db_monitor::bb8::Pool::builder()
            .max_size(2)
            .connection_timeout(Duration::from_secs(5))
            .connection_customizer(Box::new(SearchPath(schema.to_owned())));
        monitor
            .pool(monitor.manager(name, shared_config(), NoTls), builder)
            .await
            .expect("pool")
    }
}

#[cfg(feature = "deadpool")]
impl AppPool for db_monitor::MonitoredDeadpool<NoTls> {
    async fn build(monitor: &db_monitor::DbMonitor, name: &str, schema: &str) -> Self {
        use db_monitor::deadpool::managed::{Hook, HookError};
        let search_path = format!("SET search_path = {schema}, public");
        let hook = Hook::async_fn(move |conn: &mut MonitoredClient, _| {
            let sql = search_path.clone();
            Box::pin(async move { conn.batch_execute(&sql).await.map_err(HookError::Backend) })
        });
        let builder = monitor
            .manager(name, shared_config(), NoTls)
            .deadpool_builder(db_monitor::deadpool_postgres::ManagerConfig::default())
            .max_size(2)
            .wait_timeout(Some(Duration::from_secs(5)))
            .post_create(hook);
        monitor.deadpool(builder).expect("pool")
    }
}

/// The application's pool of kind `P` on a schema of its own.
async fn app_pool<P: AppPool>(config: MonitorConfig, name: &str) -> (P, std::sync::Arc<Recorded>, String) {
    let schema = unique("adoption");
    let (client, connection) = shared_config().connect(NoTls).await.expect("connect");
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema}; CREATE TABLE {schema}.stories (id int PRIMARY KEY, title text NOT NULL); \
             INSERT INTO {schema}.stories SELECT g, 'story ' || g FROM generate_series(1, 200) g"
        ))
        .await
        .expect("schema");
    let (monitor, rec) = monitor(config);
    let pool = P::build(&monitor, name, &schema).await;
    (pool, rec, schema)
}

async fn a_stream_read_in_part_keeps_its_connection_and_sends_no_cancel<P: AppPool>() {
    // A generous grace: what is tested is the rule (the server had
    // finished, so the connection is kept), not a ping's time on a loaded
    // machine.
    let (pool, rec, _schema) = app_pool::<P>(patient(), "adoption_stream").await;
    for i in 1..=60 {
        // As a web framework runs a handler: boxed as `dyn Future + Send`
        // (axum's handlers are), on a task of its own.
        let pool = pool.clone();
        let handler: Pin<Box<dyn Future<Output = Option<String>> + Send>> = Box::pin(async move {
            let conn = pool.get().await.unwrap();
            store::first_story_from(&*conn, i).await.unwrap()
        });
        let title = tokio::spawn(handler).await.unwrap();
        assert_eq!(title.as_deref(), Some(&*format!("story {i}")));
    }
    // The last return's settling runs in a task of its own.
    assert!(eventually(Duration::from_secs(5), || rec.counter(ABANDONED_CONNECTIONS, &[]) == 60).await);
    assert_eq!(rec.counter(ABANDONED_CONNECTIONS, &[("outcome", "kept")]), 60);
    assert_eq!(rec.counter(CANCEL_REQUESTS, &[]), 0, "{}", rec.dump(CANCEL_REQUESTS));
    assert_eq!(rec.counter(STREAMS_ENDED_EARLY, &[]), 60);
    assert_eq!(rec.counter(OPERATIONS_CANCELLED, &[]), 0);
    pool.monitor().publish_state();
    assert_eq!(
        rec.counter(CONNECTIONS_CLOSED, &[]),
        0,
        "{}",
        rec.dump(CONNECTIONS_CLOSED)
    );
    let created = rec.counter(CONNECTIONS_CREATED, &[]);
    assert!((1..=2).contains(&created), "{created} connections created");
    // The statement is there, as finished, with the rows its reader took.
    let entry = pool
        .monitor()
        .query_stats()
        .into_iter()
        .find(|q| q.normalized == "SELECT title FROM stories WHERE id >= ? ORDER BY id")
        .expect("the statement is in the performance data");
    assert_eq!((entry.calls, entry.cancelled, entry.errors, entry.rows), (60, 0, 0, 60));
}

async fn the_applications_customizer_runs_on_every_connection<P: AppPool>() {
    let (pool, _rec, schema) = app_pool::<P>(MonitorConfig::default(), "adoption_customizer").await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    for conn in [&a, &b] {
        let path: String = conn.query_one_scalar("SHOW search_path", &[]).await.unwrap();
        assert!(path.starts_with(&schema), "{path}");
        // Unqualified names find the schema's table.
        assert_eq!(
            store::story_title(&**conn, 7).await.unwrap().as_deref(),
            Some("story 7")
        );
    }
    // The customizer's own statement is recorded like any other.
    assert!(pool
        .monitor()
        .query_stats()
        .iter()
        .any(|q| q.normalized.starts_with("SET search_path")));
}

async fn prepare_cached_prepares_each_text_once_per_connection<P: AppPool>() {
    let (pool, rec, _schema) = app_pool::<P>(MonitorConfig::default().prepared_cache_size(2), "adoption_cache").await;
    let conn = pool.get().await.unwrap();
    let sql = "SELECT title FROM stories WHERE id = $1";
    for id in 1..=5 {
        let statement = conn.prepare_cached(sql).await.unwrap();
        assert_eq!(
            store::story_title_prepared(&*conn, &statement, id).await.unwrap(),
            format!("story {id}")
        );
    }
    let on_server = "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1";
    assert_eq!(
        conn.raw().query_one(on_server, &[&sql]).await.unwrap().get::<_, i64>(0),
        1
    );
    assert_eq!(rec.counter(PREPARED_CACHE, &[("result", "hit")]), 4);
    assert_eq!(rec.counter(PREPARED_CACHE, &[("result", "miss")]), 1);
    let info = pool
        .monitor()
        .snapshot()
        .open_connections
        .into_iter()
        .find(|c| c.id == conn.connection_id())
        .unwrap();
    assert_eq!((info.prepared_cache_hits, info.prepared_cache_misses), (4, 1));

    // Bounded: a third text evicts the least recently used, which the
    // server then closes.
    conn.prepare_cached(sql).await.unwrap();
    conn.prepare_cached("SELECT 2").await.unwrap();
    conn.prepare_cached("SELECT 3").await.unwrap();
    assert_eq!(conn.prepared_cache_len(), 2);
    let closed = || async {
        // The close is sent with the next request.
        conn.raw().query_one(on_server, &[&sql]).await.unwrap().get::<_, i64>(0)
    };
    assert_eq!(closed().await, 0, "the evicted statement is closed on the server");
}

async fn one_generic_function_serves_monitored_and_raw_clients<P: AppPool>() {
    let (pool, _rec, schema) = app_pool::<P>(MonitorConfig::default(), "adoption_generic").await;
    let mut conn = pool.get().await.unwrap();
    assert_eq!(store::story_title(&*conn, 3).await.unwrap().as_deref(), Some("story 3"));
    let tx = conn.transaction().await.unwrap();
    assert_eq!(
        store::add_story(&tx, 1001, "in a monitored transaction").await.unwrap(),
        1
    );
    assert_eq!(
        store::first_story_from(&tx, 1001).await.unwrap().as_deref(),
        Some("in a monitored transaction")
    );
    tx.commit().await.unwrap();

    let (mut raw, connection) = shared_config().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    raw.batch_execute(&format!("SET search_path = {schema}")).await.unwrap();
    assert_eq!(
        store::story_title(&raw, 1001).await.unwrap().as_deref(),
        Some("in a monitored transaction")
    );
    let raw_tx = raw.transaction().await.unwrap();
    assert_eq!(
        store::add_story(&raw_tx, 1002, "in a raw transaction").await.unwrap(),
        1
    );
    assert_eq!(
        store::first_story_from(&raw_tx, 1002).await.unwrap().as_deref(),
        Some("in a raw transaction")
    );
    raw_tx.commit().await.unwrap();

    // Only the monitored calls were recorded.
    let stats = pool.monitor().query_stats();
    let calls = |text: &str| stats.iter().find(|q| q.normalized == text).map_or(0, |q| q.calls);
    assert_eq!(calls("SELECT title FROM stories WHERE id = ?"), 1);
    assert_eq!(calls("INSERT INTO stories(id, title) VALUES (...)"), 1);
}

async fn a_transaction_dropped_after_a_failure_is_failed<P: AppPool>() {
    let (pool, rec, _schema) = app_pool::<P>(MonitorConfig::default(), "adoption_tx").await;
    let mut conn = pool.get().await.unwrap();
    {
        let tx = conn.transaction().await.unwrap();
        let duplicate = store::add_story(&tx, 1, "again").await;
        assert!(duplicate.is_err(), "story 1 exists");
        // Dropped here: tokio-postgres rolls it back.
    }
    {
        let tx = conn.transaction().await.unwrap();
        store::story_title(&tx, 1).await.unwrap();
        // Dropped with nothing failed: abandoned.
    }
    assert_eq!(rec.count(TRANSACTION_DURATION, &[("outcome", "failed")]), 1);
    assert_eq!(rec.count(TRANSACTION_DURATION, &[("outcome", "abandoned")]), 1);
    // The connection is fine afterwards.
    assert_eq!(store::story_title(&*conn, 2).await.unwrap().as_deref(), Some("story 2"));
}

/// A request that gives up on a statement the server answers at once (its
/// future dropped after one poll) leaves nothing running: the connection is
/// kept, and no cancel request goes out.
async fn a_statement_abandoned_after_the_server_answered_keeps_its_connection<P: AppPool>() {
    let (pool, rec, _schema) = app_pool::<P>(patient(), "adoption_quick").await;
    let conn = pool.get().await.unwrap();
    let id = conn.connection_id();
    let mut abandoned = 0;
    while abandoned < 5 {
        let quick = conn.simple_query("SELECT 1");
        let mut quick = std::pin::pin!(quick);
        if futures_util::poll!(quick.as_mut()).is_pending() {
            abandoned += 1;
        }
    }
    drop(conn);
    assert!(eventually(Duration::from_secs(5), || rec.counter(ABANDONED_CONNECTIONS, &[]) == 1).await);
    assert_eq!(rec.counter(ABANDONED_CONNECTIONS, &[("outcome", "kept")]), 1);
    assert_eq!(rec.counter(OPERATIONS_CANCELLED, &[]), 5);
    let again = pool.get().await.unwrap();
    assert_eq!(again.connection_id(), id, "the connection went back to the pool");
    assert_eq!(again.query_one_scalar::<i32, _>("SELECT 2", &[]).await.unwrap(), 2);
    assert_eq!(rec.counter(CANCEL_REQUESTS, &[]), 0);
}

/// A framework the layer cannot read routes from (here a plain tower
/// service; axum 0.7 is the same): the first request that runs statements
/// with no route says so once, naming the recipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_a_route_are_told_of_once() {
    use tower::{Layer, ServiceExt};
    let logs = support::leaks::captured_logs();
    let (pool, _rec, _schema) = app_pool::<MonitoredPool<NoTls>>(MonitorConfig::default(), "adoption_unrouted").await;
    let service = db_monitor::DbMonitorLayer::new(pool.clone()).layer(tower::service_fn({
        let pool = pool.clone();
        move |_: http::Request<String>| {
            let pool = pool.clone();
            async move {
                let conn = pool.get().await.unwrap();
                store::story_title(&*conn, 1).await.unwrap();
                Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
            }
        }
    }));
    for _ in 0..3 {
        let request = http::Request::builder().uri("/stories/1").body(String::new()).unwrap();
        service.clone().oneshot(request).await.unwrap();
    }
    let said = logs.lock().unwrap().matches("carry no route").count();
    assert_eq!(said, 1, "{}", logs.lock().unwrap());
    assert!(logs.lock().unwrap().contains("route_label"));
}

/// LISTEN/NOTIFY through the pool: a connection kept checked out listens,
/// and the manager's listener hears what any connection notifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_managers_listener() {
    let (monitor, _rec) = monitor(MonitorConfig::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let manager = monitor
        .manager("adoption_notify", shared_config(), NoTls)
        .notifications(move |n| {
            let _ = tx.send((n.channel().to_owned(), n.payload().to_owned()));
        });
    let builder = db_monitor::bb8::Pool::builder().max_size(2);
    let pool = monitor.pool(manager, builder).await.unwrap();
    let listening = pool.get_owned().await.unwrap();
    listening.batch_execute("LISTEN adoption_orders").await.unwrap();
    let other = pool.get().await.unwrap();
    assert_ne!(other.connection_id(), listening.connection_id());
    other
        .execute("SELECT pg_notify('adoption_orders', $1)", &[&"order 7"])
        .await
        .unwrap();
    let heard = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await;
    assert_eq!(
        heard.expect("a notification within 5 s"),
        Some(("adoption_orders".to_owned(), "order 7".to_owned()))
    );
}

/// A generic data-access function's statement in a monitored transaction,
/// blocked on a row another session holds: listed as running (its text
/// normalized, the application's call site) while it waits past the
/// threshold, and gone from the list once it ends.
async fn a_generic_functions_statement_in_a_transaction_is_listed_while_it_runs<P: AppPool>() {
    let config = patient().slow_query_threshold(Duration::from_millis(100));
    let (pool, _rec, schema) = app_pool::<P>(config, &unique("adoption_running")).await;
    let (outside, connection) = shared_config().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    outside
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM {schema}.stories WHERE id = 5 FOR UPDATE"
        ))
        .await
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    let tx = conn.transaction().await.unwrap();
    let running = || pool.monitor().running_statements().statements;
    let update = store::rename_story(&tx, 5, "renamed");
    let watch = async {
        let listed = eventually(Duration::from_secs(5), || !running().is_empty()).await;
        let seen = running();
        outside.batch_execute("ROLLBACK").await.unwrap();
        (listed, seen)
    };
    let (updated, (listed, seen)) = tokio::join!(update, watch);
    assert_eq!(updated.unwrap(), 1);
    assert!(listed, "never listed");
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0].statement, "UPDATE stories SET title = ? WHERE id = ?");
    assert!(
        seen[0]
            .checkout_site
            .as_deref()
            .is_some_and(|s| s.contains("tests/adoption.rs")),
        "{seen:#?}"
    );
    assert!(seen[0].running_ms >= 100.0, "{seen:#?}");
    assert!(running().is_empty(), "{:#?}", running());
    tx.commit().await.unwrap();
    assert_eq!(store::story_title(&*conn, 5).await.unwrap().as_deref(), Some("renamed"));
}

on_both_pools!(
    a_generic_functions_statement_in_a_transaction_is_listed_while_it_runs,
    a_stream_read_in_part_keeps_its_connection_and_sends_no_cancel,
    the_applications_customizer_runs_on_every_connection,
    prepare_cached_prepares_each_text_once_per_connection,
    one_generic_function_serves_monitored_and_raw_clients,
    a_transaction_dropped_after_a_failure_is_failed,
    a_statement_abandoned_after_the_server_answered_keeps_its_connection,
);

/// Code written for deadpool-postgres's statement caches keeps working:
/// `client.statement_cache.size()`, `.remove(query, types)` and `.clear()`
/// on a connection, `pool.manager().statement_caches.clear()` across the
/// pool (after a schema change, as deadpool's docs suggest).
#[cfg(feature = "deadpool")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deadpool_s_statement_cache_names_reach_the_monitored_caches() {
    let (pool, _rec, _schema) = app_pool::<db_monitor::MonitoredDeadpool<NoTls>>(patient(), "adoption_caches").await;
    let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let first = "SELECT title FROM stories WHERE id = $1";
    for conn in [&a, &b] {
        conn.prepare_cached(first).await.unwrap();
        conn.prepare_cached("SELECT count(*) FROM stories").await.unwrap();
        assert_eq!(conn.statement_cache.size(), 2);
    }
    assert!(a.statement_cache.remove(first, &[]).is_some());
    assert!(a.statement_cache.remove(first, &[]).is_none(), "removed once");
    assert_eq!((a.statement_cache.size(), b.statement_cache.size()), (1, 2));
    a.statement_cache.clear();
    assert_eq!(a.statement_cache.size(), 0);
    pool.manager()
        .statement_caches
        .remove("SELECT count(*) FROM stories", &[]);
    assert_eq!(b.statement_cache.size(), 1);
    pool.manager().statement_caches.clear();
    assert_eq!(b.statement_cache.size(), 0);
    assert_eq!(b.prepared_cache_len(), 0, "the same cache under the crate's own name");
    // Prepared again after the clear, and run.
    let title: String = b
        .query_one(&b.prepare_cached(first).await.unwrap(), &[&3_i32])
        .await
        .unwrap()
        .get(0);
    assert_eq!(title, "story 3");
}
