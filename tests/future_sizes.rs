//! Futures that an application moves by value at every request stay
//! small: the monitored checkout and statement futures are no larger than
//! the plain pool's own plus a bound, and the layer's response future adds
//! a bound to its inner one. Each move of a large future is a `memcpy`:
//! unboxed, deadpool's connect made the checkout future 8,680 bytes
//! (plain deadpool-postgres: 1,616), and cost 12,000 instructions a
//! request in benches/service.rs.

mod support;

use std::convert::Infallible;
use std::future::Ready;

use db_monitor::tokio_postgres::NoTls;
use db_monitor::MonitorConfig;
use http::Response;

fn size_of_val<T>(_: &T) -> usize {
    std::mem::size_of::<T>()
}

/// What the monitor may add to a future the application already has.
const CHECKOUT_BOUND: usize = 128;
const STATEMENT_BOUND: usize = 256;
const LAYER_BOUND: usize = 128;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_and_statement_futures_stay_near_the_plain_pools() {
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let config = support::pg::shared_config();
    let monitored = support::pool(&monitor, &support::unique("sizes"), 2).await;
    let plain = bb8::Pool::builder()
        .max_size(2)
        .build(bb8_postgres::PostgresConnectionManager::new(config.clone(), NoTls))
        .await
        .unwrap();
    let (ours, theirs) = (size_of_val(&monitored.get()), size_of_val(&plain.get()));
    assert!(
        ours <= theirs + CHECKOUT_BOUND,
        "bb8 checkout: {ours} bytes, plain {theirs}"
    );

    let conn = monitored.get().await.unwrap();
    let raw = plain.get().await.unwrap();
    let statement = conn.prepare("SELECT 1").await.unwrap();
    let raw_statement = raw.prepare("SELECT 1").await.unwrap();
    for (what, ours, theirs) in [
        (
            "query_one",
            size_of_val(&conn.query_one(&statement, &[])),
            size_of_val(&raw.query_one(&raw_statement, &[])),
        ),
        (
            "query",
            size_of_val(&conn.query(&statement, &[])),
            size_of_val(&raw.query(&raw_statement, &[])),
        ),
        (
            "execute",
            size_of_val(&conn.execute(&statement, &[])),
            size_of_val(&raw.execute(&raw_statement, &[])),
        ),
        (
            "prepare",
            size_of_val(&conn.prepare("SELECT 1")),
            size_of_val(&raw.prepare("SELECT 1")),
        ),
    ] {
        assert!(ours <= theirs + STATEMENT_BOUND, "{what}: {ours} bytes, plain {theirs}");
    }
}

#[cfg(feature = "deadpool")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadpool_checkout_future_stays_near_deadpool_postgres_own() {
    use db_monitor::deadpool_postgres::{Manager, ManagerConfig, Pool};
    let (monitor, _rec) = support::monitor(MonitorConfig::default());
    let config = support::pg::shared_config();
    let manager = monitor.manager(&support::unique("sizes_deadpool"), config.clone(), NoTls);
    let monitored = monitor
        .deadpool(manager.deadpool_builder(ManagerConfig::default()).max_size(2))
        .unwrap();
    let plain = Pool::builder(Manager::new(config, NoTls)).max_size(2).build().unwrap();
    let (ours, theirs) = (size_of_val(&monitored.get()), size_of_val(&plain.get()));
    assert!(
        ours <= theirs + CHECKOUT_BOUND,
        "deadpool checkout: {ours} bytes, plain {theirs}"
    );
    let conn = monitored.get().await.unwrap();
    let raw = plain.get().await.unwrap();
    let (ours, theirs) = (
        size_of_val(&conn.prepare_cached("SELECT 1")),
        size_of_val(&raw.prepare_cached("SELECT 1")),
    );
    assert!(
        ours <= theirs + STATEMENT_BOUND,
        "prepare_cached: {ours} bytes, plain {theirs}"
    );
}

#[test]
fn the_layers_response_future_adds_a_bound_to_its_inner_one() {
    type Inner = Ready<Result<Response<String>, Infallible>>;
    type Wrapped = db_monitor::layer::ResponseFuture<Inner, String>;
    let added = std::mem::size_of::<Wrapped>() - std::mem::size_of::<Inner>();
    assert!(
        added <= LAYER_BOUND,
        "the layer adds {added} bytes to each request's future"
    );
    // And the shedding layer's.
    type Shed = db_monitor::layer::ShedFuture<Inner>;
    let added = std::mem::size_of::<Shed>() - std::mem::size_of::<Inner>();
    assert!(added <= LAYER_BOUND, "ShedLayer adds {added} bytes");
}
