//! An application's workload through plain bb8-postgres and through the
//! monitored pool, side by side in one run: the drop-in measure.
//!
//! ```text
//! cargo bench --bench adoption
//! ```
//!
//! Each operation is one request of a service written the way bb8-postgres
//! services are: a checkout; a `query_raw` stream read for its first row
//! and dropped; a statement from the connection's statement cache (on the
//! plain side the application's own cache in its connection type, on the
//! monitored side `prepare_cached`); a text query through a function
//! generic over the client; and every fourth request a transaction whose
//! `INSERT` fails on a duplicate key and which is then dropped; then again
//! with the stream alone (a request that reads one row and returns, whose
//! connection the monitor settles with a ping on its return). Every
//! connection gets `SET search_path` from a `connection_customizer` on both
//! sides. The plain side runs the same generic functions on
//! `tokio_postgres::Client`, so only the pool differs.
//!
//! Method as in `pool_throughput`: at 1, 4 and 16 tasks, every task does
//! one operation on each pool in turn (alternating which goes first); a
//! round's ratio is the plain pool's time over the monitored pool's, and
//! a level's is the median over its rounds. Ends with
//! `dbm/raw throughput ratio: X.XXX`, the worst level's median of both
//! workloads.
//! `ADOPTION_BENCH_ROUNDS` (default 30) and `ADOPTION_BENCH_MILLIS`
//! (default 200) set the rounds per level and their length.

#[path = "support/paired.rs"]
mod paired;
#[path = "../tests/support/pg.rs"]
mod pg;
/// The application's data access, generic over the client.
#[path = "../tests/support/stories.rs"]
mod stories;
#[path = "support/workload.rs"]
mod workload;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb8_postgres::PostgresConnectionManager;
use db_monitor::tokio_postgres::{Client, Error, NoTls, Statement};
use db_monitor::{DbMonitor, MonitorConfig, MonitoredClient, MonitoredPool};
use metrics_exporter_prometheus::PrometheusBuilder;

const SCHEMA: &str = "adoption_bench";

/// The plain application's connection: tokio-postgres's client with its
/// own statement cache, as such services keep one.
struct CachedClient {
    client: Client,
    cache: Mutex<HashMap<String, Statement>>,
}

impl CachedClient {
    async fn prepare_cached(&self, sql: &str) -> Result<Statement, Error> {
        if let Some(statement) = self.cache.lock().unwrap().get(sql) {
            return Ok(statement.clone());
        }
        let statement = self.client.prepare(sql).await?;
        self.cache.lock().unwrap().insert(sql.to_owned(), statement.clone());
        Ok(statement)
    }
}

/// bb8-postgres's manager, handing out [`CachedClient`]s.
struct CachingManager(PostgresConnectionManager<NoTls>);

impl bb8::ManageConnection for CachingManager {
    type Connection = CachedClient;
    type Error = Error;

    async fn connect(&self) -> Result<CachedClient, Error> {
        Ok(CachedClient {
            client: self.0.connect().await?,
            cache: Mutex::new(HashMap::new()),
        })
    }

    async fn is_valid(&self, conn: &mut CachedClient) -> Result<(), Error> {
        self.0.is_valid(&mut conn.client).await
    }

    fn has_broken(&self, conn: &mut CachedClient) -> bool {
        conn.client.is_closed()
    }
}

/// The application's customizer, on both pools.
#[derive(Debug)]
struct SearchPath;

impl bb8::CustomizeConnection<CachedClient, Error> for SearchPath {
    fn on_acquire<'a>(
        &'a self,
        conn: &'a mut CachedClient,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(async move { conn.client.batch_execute(&format!("SET search_path = {SCHEMA}")).await })
    }
}

impl bb8::CustomizeConnection<MonitoredClient, Error> for SearchPath {
    fn on_acquire<'a>(
        &'a self,
        conn: &'a mut MonitoredClient,
    ) -> Pin<Box<dyn Future<Output = Result<(), Error>> + Send + 'a>> {
        Box::pin(async move { conn.batch_execute(&format!("SET search_path = {SCHEMA}")).await })
    }
}

static RAW_IDS: AtomicU32 = AtomicU32::new(0);
static MONITORED_IDS: AtomicU32 = AtomicU32::new(0);

async fn raw_request(pool: bb8::Pool<CachingManager>, full: bool) {
    let id = workload::next_id(&RAW_IDS);
    let conn = pool.get().await.unwrap();
    stories::first_story_from(&conn.client, id).await.unwrap().unwrap();
    if !full {
        return;
    }
    let statement = conn.prepare_cached(workload::BY_ID).await.unwrap();
    conn.client.query_one(&statement, &[&id]).await.unwrap();
    stories::story_title(&conn.client, id).await.unwrap().unwrap();
    if id % 4 == 0 {
        let mut conn = conn;
        let tx = conn.client.transaction().await.unwrap();
        stories::add_story(&tx, id, "again").await.unwrap_err();
    }
}

async fn monitored_request(pool: MonitoredPool<NoTls>, full: bool) {
    let id = workload::next_id(&MONITORED_IDS);
    let mut conn = pool.get().await.unwrap();
    stories::first_story_from(&*conn, id).await.unwrap().unwrap();
    if !full {
        return;
    }
    let statement = conn.prepare_cached(workload::BY_ID).await.unwrap();
    conn.query_one(&statement, &[&id]).await.unwrap();
    stories::story_title(&*conn, id).await.unwrap().unwrap();
    if id % 4 == 0 {
        let tx = conn.transaction().await.unwrap();
        stories::add_story(&tx, id, "again").await.unwrap_err();
    }
}

fn main() {
    workload::main(SCHEMA, |config, rounds, length| async move {
        let max = *workload::LEVELS.iter().max().unwrap() as u32;
        let raw = bb8::Pool::builder()
            .max_size(max)
            .connection_customizer(Box::new(SearchPath))
            .build(CachingManager(PostgresConnectionManager::new(config.clone(), NoTls)))
            .await
            .expect("plain pool");
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        let monitor =
            DbMonitor::with_recorder(MonitorConfig::default(), Arc::new(recorder)).expect("a valid configuration");
        let builder = bb8::Pool::builder()
            .max_size(max)
            .connection_customizer(Box::new(SearchPath));
        let monitored = monitor
            .pool(monitor.manager("adoption", config.clone(), NoTls), builder)
            .await
            .expect("monitored pool");
        let upkeep = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                handle.run_upkeep();
            }
        });
        let worst = workload::both_workloads(
            rounds,
            length,
            |full| {
                let raw = raw.clone();
                move || raw_request(raw.clone(), full)
            },
            |full| {
                let monitored = monitored.clone();
                move || monitored_request(monitored.clone(), full)
            },
        )
        .await;
        upkeep.abort();
        let state = monitored.state().statistics;
        println!(
            "monitored pool: {} connections created, {} closed broken, {} closed invalid",
            state.connections_created, state.connections_closed_broken, state.connections_closed_invalid
        );
        worst
    });
}
