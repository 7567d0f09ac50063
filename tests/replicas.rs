//! A replica set over two real PostgreSQL servers: reads spread over both,
//! move to the other within seconds when one is frozen (SIGSTOP of its
//! postmaster and backends), and come back once it runs again.

mod support;

use std::time::{Duration, Instant};

use db_monitor::{MonitorConfig, ReplicaReport, ReplicaSet};
use support::pg::TempPostgres;
use support::{monitor, pool_with, server_processes, Frozen};

fn reads_of(report: &ReplicaReport, pool: &str) -> u64 {
    report.replicas.iter().find(|r| r.pool == pool).map_or(0, |r| r.reads)
}

/// `n` reads by eight concurrent readers, as a service's requests come,
/// each bounded by `bound` (a read on a frozen server hangs); how many
/// answered.
async fn read(set: &ReplicaSet<db_monitor::tokio_postgres::NoTls>, n: usize, bound: Duration) -> usize {
    const READERS: usize = 8;
    let mut readers = tokio::task::JoinSet::new();
    for reader in 0..READERS {
        let set = set.clone();
        let share = n / READERS + usize::from(reader < n % READERS);
        readers.spawn(async move {
            let mut answered = 0;
            for _ in 0..share {
                let one = async {
                    let conn = set.read().await.ok()?;
                    conn.query_one("SELECT 1", &[]).await.ok()
                };
                if tokio::time::timeout(bound, one).await.ok().flatten().is_some() {
                    answered += 1;
                }
            }
            answered
        });
    }
    let mut answered = 0;
    while let Some(done) = readers.join_next().await {
        answered += done.unwrap();
    }
    answered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_leave_a_frozen_replica_within_seconds_and_come_back_after() {
    if !support::pg::can_start_servers() {
        eprintln!("skipped: needs its own servers (initdb not on PATH)");
        return;
    }
    let (a, b) = (TempPostgres::start(&[]), TempPostgres::start(&[]));
    let (monitor, rec) = monitor(MonitorConfig::default());
    let timeout = Duration::from_secs(5);
    let primary = pool_with(&monitor, "primary", support::pg::shared_config(), 2, 0, timeout).await;
    let replica_a = pool_with(&monitor, "replica-a", a.config(), 4, 0, timeout).await;
    let replica_b = pool_with(&monitor, "replica-b", b.config(), 4, 0, timeout).await;
    let set = ReplicaSet::new(primary, [replica_a, replica_b]);

    // Both serve.
    assert_eq!(read(&set, 200, Duration::from_secs(2)).await, 200);
    let report = set.report();
    assert!(
        reads_of(&report, "replica-a") > 20 && reads_of(&report, "replica-b") > 20,
        "{report:#?}"
    );
    assert_eq!(report.primary_reads, 0);
    assert!(
        report.replicas.iter().all(|r| r.healthy && r.load_ms > 0.0),
        "{report:#?}"
    );
    assert_eq!(
        rec.counter(
            db_monitor::names::REPLICA_READS,
            &[("db_client_connection_pool_name", "replica-b")]
        ),
        reads_of(&report, "replica-b")
    );

    // B frozen: within seconds, every read goes to A.
    let (admin, connection) = b.config().connect(db_monitor::tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    let data: String = admin.query_one("SHOW data_directory", &[]).await.unwrap().get(0);
    drop(admin);
    let frozen = Frozen::new(server_processes(&data));
    let since = Instant::now();
    let moved = loop {
        let before = set.report();
        read(&set, 20, Duration::from_millis(300)).await;
        let after = set.report();
        if reads_of(&after, "replica-b") == reads_of(&before, "replica-b") && !after.replicas[1].healthy {
            break since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(10),
            "reads still go to the frozen replica: {after:#?}"
        );
    };
    eprintln!("reads left the frozen replica within {moved:?}");
    let before = set.report();
    assert_eq!(read(&set, 50, Duration::from_secs(2)).await, 50, "A serves every read");
    let after = set.report();
    assert_eq!(reads_of(&after, "replica-b"), reads_of(&before, "replica-b"));
    assert!(after.replicas[1].last_failure.is_some(), "{after:#?}");

    // B runs again: it is checked healthy, and reads reach it again.
    drop(frozen);
    let since = Instant::now();
    let back = loop {
        let before = set.report();
        read(&set, 20, Duration::from_secs(2)).await;
        if reads_of(&set.report(), "replica-b") > reads_of(&before, "replica-b") {
            break since.elapsed();
        }
        assert!(
            since.elapsed() < Duration::from_secs(15),
            "no read reached the recovered replica: {:#?}",
            set.report()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("reads came back {back:?} after the replica ran again");

    // The layer serves the set's report; without a set, `null`.
    use tower::{Layer, ServiceExt};
    let inner = tower::service_fn(|_: http::Request<http_body_util::Full<bytes::Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(bytes::Bytes::new())))
    });
    let get = |layer: db_monitor::DbMonitorLayer| {
        let service = layer.layer(inner);
        async move {
            use http_body_util::BodyExt;
            let request = http::Request::get("/health/database/replicas")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let response = service.oneshot(request).await.unwrap();
            assert_eq!(response.status(), http::StatusCode::OK);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            serde_json::from_slice::<serde_json::Value>(&body).unwrap()
        }
    };
    let served = get(db_monitor::DbMonitorLayer::new(set.primary().clone()).replicas(&set)).await;
    assert_eq!(served["primary"], "primary");
    assert_eq!(served["replicas"][1]["pool"], "replica-b");
    assert!(served["replicas"][1]["reads"].as_u64().unwrap() > 0, "{served:#}");
    assert_eq!(
        get(db_monitor::DbMonitorLayer::new(set.primary().clone())).await,
        serde_json::Value::Null
    );
}
