//! What the monitor costs a real HTTP service, per request, all of it: an
//! axum service with the four classic database endpoints, on bb8 and on
//! deadpool-postgres, plain and monitored, built the same way.
//!
//! ```text
//! cargo bench --bench service --features deadpool
//! ```
//!
//! Endpoints (the web-framework benchmark's database tests):
//!
//! - `/db`: one random row of a 10,000-row `world` by id (`prepare_cached`
//!   and `query_one`), as JSON;
//! - `/queries`: 20 random rows, one statement each, as a JSON array;
//! - `/fortunes`: every row of a 12-row `fortune` table, one added in
//!   memory, sorted by message, rendered as HTML with escaping;
//! - `/updates`: 20 random rows read and each updated with a new random
//!   number.
//!
//! Arms: `plain` is bb8-postgres (or deadpool-postgres) as an application
//! uses it; `monitored` is the same application on the monitor's pool with
//! `DbMonitorLayer` on the router, the monitor's background task running
//! and its Prometheus recorder installed, as the README sets it up;
//! `layered` is `plain` with a layer that does nothing on the router, which
//! shows what axum adds for any `Router::layer`.
//!
//! Two measures, each printed as a table:
//!
//! 1. **Instructions per request**, the deterministic figure: callgrind
//!    counts the whole server process (`serve`, on a current-thread
//!    runtime) serving `SHORT` and then `LONG` sequential keep-alive
//!    requests from a client process of its own; the slope between the two
//!    is one request, start-up excluded. The monitor's background task
//!    does its work per second, not per request, and under callgrind a
//!    longer run lasts more seconds: it is left out of these runs and
//!    counted apart, per second of an idle server. Set `CALLGRIND=0` to
//!    skip.
//! 2. **Throughput and CPU per request** under `wrk` (bounded: `-d`
//!    seconds, 16 connections), the server on two worker threads, in
//!    `ROUNDS` rounds whose arm order rotates, with an A/A arm (`plain`
//!    again) that shows the noise; CPU is the server's user and system
//!    time over the requests served. Set `THROUGHPUT=0` to skip. These
//!    vary with the machine's load; the instruction counts do not.
//!
//! A throwaway PostgreSQL is started unless `DATABASE_URL` is set.
//!
//! To look at one case: `POOLS=deadpool ENDPOINTS=/db` (comma-separated
//! lists) run only those, `IDLE=0` skips the idle background's count, and
//! `PROFILES=dir` keeps callgrind's files there for `callgrind_annotate`.
//! The monitored arm reads its settings from the environment
//! (`ASYNC_DB_HOLD_TIMES=true` prices that option);
//! `REDUNDANT_STATEMENTS=true` turns the layer's redundant-statement check
//! on, `SQL_COMMENTS=true` its route comments.

#[path = "../tests/support/pg.rs"]
mod pg;

use std::fmt::Write as _;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use db_monitor::tokio_postgres::{Config, NoTls};

const ENDPOINTS: [&str; 4] = ["/db", "/queries", "/fortunes", "/updates"];
const QUERIES: usize = 20;
const WORLD_ROWS: i32 = 10_000;

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or_default();
    match arg(0) {
        "serve" => serve(arg(1), arg(2), arg(3).parse().expect("requests"), arg(4), arg(5)),
        "client" => client(arg(1).parse().expect("port"), arg(2), arg(3).parse().expect("requests")),
        _ => orchestrate(),
    }
}

// ---- The service ----------------------------------------------------------

/// A random number stream (xorshift), the same in every arm and run, so
/// that each arm reads and writes the same rows.
struct Rng(AtomicU64);

impl Rng {
    fn id(&self) -> i32 {
        let mut x = self.0.load(Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Relaxed);
        1 + (x % WORLD_ROWS as u64) as i32
    }
}

/// What the endpoints need of a pool: the same statements, each as its
/// pool's application would write them.
trait Db: Clone + Send + Sync + 'static {
    fn row(&self, id: i32) -> impl Future<Output = Result<(i32, i32), Error>> + Send;
    fn rows(&self, ids: Vec<i32>) -> impl Future<Output = Result<Vec<(i32, i32)>, Error>> + Send;
    fn fortunes(&self) -> impl Future<Output = Result<Vec<(i32, String)>, Error>> + Send;
    fn update(&self, ids: Vec<i32>, numbers: Vec<i32>) -> impl Future<Output = Result<Vec<(i32, i32)>, Error>> + Send;
}

const ROW: &str = "SELECT id, randomnumber FROM world WHERE id = $1";
const FORTUNES: &str = "SELECT id, message FROM fortune";
const UPDATE: &str = "UPDATE world SET randomnumber = $1 WHERE id = $2";

/// The endpoints' statements on one pool type: the same text for each, as
/// its application writes them (the plain pools' guards deref to
/// tokio-postgres's `Client`, the monitor's to `MonitoredClient`, with the
/// same method names).
macro_rules! impl_db {
    ($pool:ty, $get:ident, $prepare:ident) => {
        impl Db for $pool {
            async fn row(&self, id: i32) -> Result<(i32, i32), Error> {
                let conn = self.$get().await?;
                let statement = conn.$prepare(ROW).await?;
                let row = conn.query_one(&statement, &[&id]).await?;
                Ok((row.get(0), row.get(1)))
            }

            async fn rows(&self, ids: Vec<i32>) -> Result<Vec<(i32, i32)>, Error> {
                let conn = self.$get().await?;
                let statement = conn.$prepare(ROW).await?;
                let mut out = Vec::with_capacity(ids.len());
                for id in ids {
                    let row = conn.query_one(&statement, &[&id]).await?;
                    out.push((row.get(0), row.get(1)));
                }
                Ok(out)
            }

            async fn fortunes(&self) -> Result<Vec<(i32, String)>, Error> {
                let conn = self.$get().await?;
                let statement = conn.$prepare(FORTUNES).await?;
                let rows = conn.query(&statement, &[]).await?;
                Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
            }

            async fn update(&self, ids: Vec<i32>, numbers: Vec<i32>) -> Result<Vec<(i32, i32)>, Error> {
                let conn = self.$get().await?;
                let read = conn.$prepare(ROW).await?;
                let write = conn.$prepare(UPDATE).await?;
                let mut out = Vec::with_capacity(ids.len());
                for (id, number) in ids.into_iter().zip(numbers) {
                    let row = conn.query_one(&read, &[&id]).await?;
                    let _old: i32 = row.get(1);
                    conn.execute(&write, &[&number, &id]).await?;
                    out.push((id, number));
                }
                Ok(out)
            }
        }
    };
}

type PlainBb8 = bb8::Pool<bb8_postgres::PostgresConnectionManager<NoTls>>;
type PlainDeadpool = db_monitor::deadpool_postgres::Pool;

// bb8-postgres has no statement cache: its applications prepare per
// checkout (both arms alike); deadpool-postgres's cache is used by both.
impl_db!(PlainBb8, get, prepare);
impl_db!(PlainDeadpool, get, prepare_cached);
impl_db!(db_monitor::MonitoredPool<NoTls>, get, prepare);
impl_db!(db_monitor::MonitoredDeadpool<NoTls>, get, prepare_cached);

#[derive(Clone)]
struct App<P> {
    pool: P,
    rng: Arc<Rng>,
}

fn json(body: String) -> Response {
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

fn failed(e: &Error) -> Response {
    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response()
}

async fn db<P: Db>(State(app): State<App<P>>) -> Response {
    match app.pool.row(app.rng.id()).await {
        Ok((id, number)) => json(format!("{{\"id\":{id},\"randomNumber\":{number}}}")),
        Err(e) => failed(&e),
    }
}

fn world_json(rows: &[(i32, i32)]) -> String {
    let mut out = String::with_capacity(rows.len() * 36 + 2);
    out.push('[');
    for (i, (id, number)) in rows.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{{\"id\":{id},\"randomNumber\":{number}}}");
    }
    out.push(']');
    out
}

async fn queries<P: Db>(State(app): State<App<P>>) -> Response {
    let ids = (0..QUERIES).map(|_| app.rng.id()).collect();
    match app.pool.rows(ids).await {
        Ok(rows) => json(world_json(&rows)),
        Err(e) => failed(&e),
    }
}

fn escape(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
}

async fn fortunes<P: Db>(State(app): State<App<P>>) -> Response {
    let mut rows = match app.pool.fortunes().await {
        Ok(rows) => rows,
        Err(e) => return failed(&e),
    };
    rows.push((0, "Additional fortune added at request time.".to_owned()));
    rows.sort_by(|a, b| a.1.cmp(&b.1));
    let mut html = String::with_capacity(1200);
    html.push_str(
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
    );
    for (id, message) in &rows {
        let _ = write!(html, "<tr><td>{id}</td><td>");
        escape(&mut html, message);
        html.push_str("</td></tr>");
    }
    html.push_str("</table></body></html>");
    ([(CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn updates<P: Db>(State(app): State<App<P>>) -> Response {
    let ids: Vec<i32> = (0..QUERIES).map(|_| app.rng.id()).collect();
    let numbers = (0..QUERIES).map(|_| app.rng.id()).collect();
    match app.pool.update(ids, numbers).await {
        Ok(rows) => json(world_json(&rows)),
        Err(e) => failed(&e),
    }
}

fn router<P: Db>(pool: P) -> Router {
    Router::new()
        .route("/db", get(db::<P>))
        .route("/queries", get(queries::<P>))
        .route("/fortunes", get(fortunes::<P>))
        .route("/updates", get(updates::<P>))
        .with_state(App {
            pool,
            rng: Arc::new(Rng(AtomicU64::new(0x2545_F491_4F6C_DD1D))),
        })
}

const POOL_SIZE: u32 = 16;

/// The router of `arm` on `pool`, and what must live as long as it.
async fn build(arm: &str, pool: &str, pg: Config) -> Result<(Router, Box<dyn std::any::Any + Send>), Error> {
    // `layered`: the plain service with a layer that does nothing, on the
    // router as DbMonitorLayer goes: what axum itself adds for any
    // `Router::layer` (each route's service wrapped, boxed and cloned per
    // request), the part of the monitored arm's cost that is not the
    // monitor's.
    if arm == "layered" {
        let (router, keep) = Box::pin(build("plain", pool, pg)).await?;
        return Ok((router.layer(tower::layer::layer_fn(|inner| inner)), keep));
    }
    match (arm, pool) {
        ("plain", "bb8") => {
            let manager = bb8_postgres::PostgresConnectionManager::new(pg, NoTls);
            let pool = bb8::Pool::builder().max_size(POOL_SIZE).build(manager).await?;
            Ok((router(pool), Box::new(())))
        }
        ("plain", "deadpool") => {
            use db_monitor::deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
            let config = ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            };
            let pool = Pool::builder(Manager::from_config(pg, NoTls, config))
                .max_size(POOL_SIZE as usize)
                .build()?;
            Ok((router(pool), Box::new(())))
        }
        ("monitored", "bb8") => {
            let (monitor, keep) = monitor()?;
            let manager = monitor.manager("bench", pg, NoTls);
            let pool = monitor.pool(manager, bb8::Pool::builder().max_size(POOL_SIZE)).await?;
            let background = background(&monitor, pool.monitor());
            let layer = layer(&pool);
            Ok((router(pool).layer(layer), Box::new((keep, background))))
        }
        ("monitored", "deadpool") => {
            use db_monitor::deadpool_postgres::{ManagerConfig, RecyclingMethod};
            let (monitor, keep) = monitor()?;
            let manager = monitor.manager("bench", pg, NoTls);
            let config = ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            };
            // The plain pool's settings: deadpool_builder's 30 s wait and
            // connect timeouts (deadpool's own default is none) cost a
            // timer per checkout, which plain deadpool-postgres does not pay.
            let builder = manager
                .deadpool_builder(config)
                .max_size(POOL_SIZE as usize)
                .wait_timeout(None)
                .create_timeout(None);
            let pool = monitor.deadpool(builder)?;
            let background = background(&monitor, pool.monitor());
            let layer = layer(&pool);
            Ok((router(pool).layer(layer), Box::new((keep, background))))
        }
        other => Err(format!("unknown arm and pool: {other:?}").into()),
    }
}

/// The layer as the README puts it on the router; with
/// `REDUNDANT_STATEMENTS=true`, looking for redundant statements too, and
/// with `SQL_COMMENTS=true`, tagging statements with their route (to price
/// those options).
fn layer(pool: &(impl Clone + Into<db_monitor::PoolMonitor>)) -> db_monitor::DbMonitorLayer {
    let redundant = std::env::var("REDUNDANT_STATEMENTS").as_deref() == Ok("true");
    let comments = std::env::var("SQL_COMMENTS").as_deref() == Ok("true");
    db_monitor::DbMonitorLayer::new(pool.clone())
        .redundant_statements(redundant)
        .sql_comments(comments)
}

/// The monitor's background task, unless `BACKGROUND=off`: its work is
/// per second, not per request, and under callgrind (some fifty times
/// slower) a run of more requests lasts more seconds, so that its ticks
/// would count as a cost per request. The instruction counts run without
/// it and measure it apart, per second.
fn background(monitor: &db_monitor::DbMonitor, pool: &db_monitor::PoolMonitor) -> Option<db_monitor::MonitorHandle> {
    (std::env::var("BACKGROUND").as_deref() != Ok("off")).then(|| monitor.start(pool.clone()))
}

/// The monitor as the README sets it up, with its Prometheus recorder;
/// its settings from the environment (`ASYNC_DB_HOLD_TIMES=true`, …), the
/// defaults otherwise.
fn monitor() -> Result<(db_monitor::DbMonitor, db_monitor::prometheus::PrometheusHandle), Error> {
    let handle = db_monitor::prometheus::PrometheusSetup::new().install()?;
    Ok((
        db_monitor::DbMonitor::new(db_monitor::MonitorConfig::from_env()?)?,
        handle,
    ))
}

/// Serves until `requests` have been answered (0: until killed), printing
/// `port N` once listening. `threads` 0 is a current-thread runtime.
fn serve(arm: &str, pool: &str, requests: u64, url: &str, threads: &str) {
    let threads: usize = threads.parse().unwrap_or(0);
    let runtime = if threads == 0 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
    .expect("runtime");
    runtime.block_on(async move {
        let pg: Config = url.parse().expect("a PostgreSQL URL");
        let (app, _keep) = build(arm, pool, pg).await.expect("the service");
        let served = Arc::new(AtomicU64::new(0));
        let done = Arc::new(tokio::sync::Notify::new());
        let app = app.layer(axum::middleware::map_response({
            let (served, done) = (served.clone(), done.clone());
            move |response: Response| {
                let (served, done) = (served.clone(), done.clone());
                async move {
                    if served.fetch_add(1, Relaxed) + 1 == requests {
                        done.notify_one();
                    }
                    response
                }
            }
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("port {}", listener.local_addr().expect("address").port());
        let serve_for = std::env::var("SERVE_FOR").ok().and_then(|s| s.parse().ok());
        let shutdown = async move {
            if requests > 0 {
                done.notified().await;
            } else if let Some(seconds) = serve_for {
                tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .expect("serve");
    });
}

/// `requests` sequential GETs of `path` on one keep-alive connection.
fn client(port: u16, path: &str, requests: u64) {
    use http_body_util::{BodyExt, Empty};
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (mut sender, connection) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        for _ in 0..requests {
            let request = http::Request::get(path)
                .header("host", "127.0.0.1")
                .body(Empty::<bytes::Bytes>::new())
                .expect("request");
            let response = sender.send_request(request).await.expect("response");
            assert_eq!(response.status(), 200, "{path}");
            response.into_body().collect().await.expect("body");
        }
    });
}

// ---- The measures ---------------------------------------------------------

fn orchestrate() {
    let mut server = None;
    let url = match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            let pg = pg::TempPostgres::start(&["-c", "max_connections=100"]);
            let url = url_of(&pg.config());
            server = Some(pg);
            url
        }
    };
    setup(&url);
    let exe = std::env::current_exe().expect("this program");
    let pools = chosen("POOLS", &["bb8", "deadpool"]);
    if std::env::var("CALLGRIND").as_deref() != Ok("0") {
        instructions(&exe, &url, &pools);
    }
    if std::env::var("THROUGHPUT").as_deref() != Ok("0") {
        throughput(&exe, &url, &pools);
    }
    drop(server);
}

/// The names of `all` listed in the environment variable `var`
/// (comma-separated), or all of them when it is unset.
fn chosen(var: &str, all: &[&'static str]) -> Vec<&'static str> {
    match std::env::var(var) {
        Ok(list) if !list.is_empty() => {
            let picked: Vec<_> = all
                .iter()
                .copied()
                .filter(|name| list.split(',').any(|l| l == *name))
                .collect();
            assert!(!picked.is_empty(), "{var}={list} names none of {all:?}");
            picked
        }
        _ => all.to_vec(),
    }
}

fn url_of(config: &Config) -> String {
    let host = match &config.get_hosts()[0] {
        db_monitor::tokio_postgres::config::Host::Tcp(host) => host.clone(),
        #[cfg(unix)]
        db_monitor::tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
    };
    format!(
        "host={host} port={} user={} dbname={}",
        config.get_ports()[0],
        config.get_user().unwrap_or("postgres"),
        config.get_dbname().unwrap_or("postgres")
    )
}

/// The two tables, as the benchmark's databases have them.
fn setup(url: &str) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let config: Config = url.parse().expect("url");
        let (client, connection) = config.connect(NoTls).await.expect("connect");
        tokio::spawn(connection);
        client
            .batch_execute(&format!(
                "DROP TABLE IF EXISTS world, fortune;
                 CREATE TABLE world (id int PRIMARY KEY, randomnumber int NOT NULL);
                 INSERT INTO world SELECT g, 1 + (g * 7919) % {WORLD_ROWS} FROM generate_series(1, {WORLD_ROWS}) g;
                 CREATE TABLE fortune (id int PRIMARY KEY, message text NOT NULL);
                 INSERT INTO fortune VALUES
                   (1, 'fortune: No such file or directory'),
                   (2, 'A computer scientist is someone who fixes things that aren''t broken.'),
                   (3, 'After enough decimal places, nobody gives a damn.'),
                   (4, 'A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1'),
                   (5, 'A computer program does what you tell it to do, not what you want it to do.'),
                   (6, 'Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen'),
                   (7, 'Any program that runs right is obsolete.'),
                   (8, 'A list is only as strong as its weakest link. — Donald Knuth'),
                   (9, 'Feature: A bug with seniority.'),
                   (10, 'Computers make very fast, very accurate mistakes.'),
                   (11, '<script>alert(\"This should not be displayed in a browser alert box.\");</script>'),
                   (12, 'フレームワークのベンチマーク');
                 ANALYZE world, fortune"
            ))
            .await
            .expect("tables");
    });
}

/// Starts `serve` (under `wrap`, e.g. valgrind) and waits for its port.
fn start(exe: &std::path::Path, wrap: &[String], args: &[String], env: &[(&str, &str)]) -> (Child, u16) {
    let mut command = match wrap.split_first() {
        Some((program, rest)) => {
            let mut c = Command::new(program);
            c.args(rest).arg(exe);
            c
        }
        None => Command::new(exe),
    };
    let mut child = command
        .arg("serve")
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the server");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).expect("its port");
    let port = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("the server said {line:?}"));
    (child, port)
}

/// Requests served before callgrind's counts are zeroed.
const WARM_UP: u64 = 100;

/// The arguments that run a program under callgrind, writing to `out`.
fn callgrind(out: &std::path::Path) -> Vec<String> {
    vec![
        "valgrind".to_owned(),
        "--tool=callgrind".to_owned(),
        format!("--callgrind-out-file={}", out.display()),
    ]
}

/// Zeroes the counts of the callgrind run `pid`.
fn zero(pid: u32) {
    let zeroed = Command::new("callgrind_control")
        .args(["--zero", &pid.to_string()])
        .output()
        .expect("callgrind_control");
    assert!(zeroed.status.success(), "callgrind_control --zero failed");
}

/// The total instructions callgrind wrote to `out`, which is then removed,
/// or moved into the directory `PROFILES` names (for `callgrind_annotate`).
fn totals(out: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(out).expect("callgrind's output");
    match std::env::var_os("PROFILES") {
        Some(dir) => {
            let name = out.file_name().expect("a file name").to_string_lossy().replace('/', "");
            std::fs::rename(out, std::path::Path::new(&dir).join(name)).expect("PROFILES is a directory");
        }
        None => {
            let _ = std::fs::remove_file(out);
        }
    }
    text.lines()
        .find_map(|l| l.strip_prefix("summary: ").or_else(|| l.strip_prefix("totals: ")))
        .and_then(|n| n.trim().parse().ok())
        .expect("callgrind's totals")
}

/// The server's instructions serving `requests` of `path`, by callgrind.
fn count(exe: &std::path::Path, url: &str, arm: &str, pool: &str, path: &str, requests: u64) -> u64 {
    let out = std::env::temp_dir().join(format!(
        "service-{}-{arm}-{pool}-{}-{requests}.out",
        std::process::id(),
        path.trim_start_matches('/')
    ));
    // A multi-threaded runtime with one worker, as services run: glibc's
    // allocator and system calls take their multi-threaded paths, as in a
    // service (on a current-thread runtime a plain service would be
    // single-threaded and pay less for each).
    let args = [arm, pool, &(WARM_UP + requests).to_string(), url, "1"].map(str::to_owned);
    let (mut child, port) = start(exe, &callgrind(&out), &args, &[("BACKGROUND", "off")]);
    let client = |n: u64| {
        let status = Command::new(exe)
            .args(["client", &port.to_string(), path, &n.to_string()])
            .status()
            .expect("the client");
        assert!(status.success(), "the client failed on {arm} {pool} {path}");
    };
    // Warm (connections open, statements prepared, lazy statics and the
    // clock's calibration done, which varies from run to run by a million
    // instructions under valgrind), then counted from zero.
    client(WARM_UP);
    zero(child.id());
    client(requests);
    assert!(child.wait().expect("the server").success());
    totals(&out)
}

fn instructions(exe: &std::path::Path, url: &str, pools: &[&str]) {
    if Command::new("valgrind").arg("--version").output().is_err() {
        println!("valgrind is not installed (apt-get install valgrind): no instruction counts");
        return;
    }
    let short: u64 = std::env::var("SHORT").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let long: u64 = std::env::var("LONG").ok().and_then(|v| v.parse().ok()).unwrap_or(2500);
    println!(
        "instructions per request (callgrind, the whole server process, slope between {short} and {long} requests)"
    );
    println!("| pool | endpoint | plain | monitored | added | of which a no-op layer |");
    println!("|---|---|---|---|---|---|");
    for pool in pools {
        for path in chosen("ENDPOINTS", &ENDPOINTS) {
            let slope = |arm: &str| {
                let (a, b) = (
                    count(exe, url, arm, pool, path, short),
                    count(exe, url, arm, pool, path, long),
                );
                b.saturating_sub(a) as f64 / (long - short) as f64
            };
            let (plain, monitored, layered) = (slope("plain"), slope("monitored"), slope("layered"));
            println!(
                "| {pool} | {path} | {plain:.0} | {monitored:.0} | {:+.0} ({:+.1} %) | {:+.0} |",
                monitored - plain,
                (monitored / plain - 1.0) * 100.0,
                layered - plain
            );
        }
    }
    if std::env::var("IDLE").as_deref() == Ok("0") {
        return;
    }
    for pool in pools {
        println!(
            "the background task (a monitored {pool} server, idle): {:.0} instructions per second",
            background_per_second(exe, url, pool)
        );
    }
}

/// The server's user and system time so far, in seconds.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's closing parenthesis: fields 14 and 15 overall.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn throughput(exe: &std::path::Path, url: &str, pools: &[&str]) {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("wrk is not installed (apt-get install wrk): no throughput");
        return;
    }
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let seconds: u64 = std::env::var("SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    println!();
    println!(
        "throughput under wrk (16 connections, {seconds} s a run, {rounds} rounds, arm order rotated; medians; A/A is plain again)"
    );
    println!(
        "| pool | endpoint | plain req/s | monitored / plain | A/A / plain | plain CPU µs/req | monitored CPU µs/req |"
    );
    println!("|---|---|---|---|---|---|---|");
    let arms = ["plain", "monitored", "plain"];
    for pool in pools {
        for path in ["/db", "/fortunes"] {
            let mut results: [Vec<(f64, f64)>; 3] = Default::default();
            for round in 0..rounds {
                for k in 0..arms.len() {
                    let which = (round + k) % arms.len();
                    let args = [arms[which], pool, "0", url, "2"].map(str::to_owned);
                    let (mut child, port) = start(exe, &[], &args, &[]);
                    let pid = child.id();
                    let before = cpu_seconds(pid);
                    let out = Command::new("wrk")
                        .args([
                            "-t2",
                            "-c16",
                            &format!("-d{seconds}s"),
                            &format!("http://127.0.0.1:{port}{path}"),
                        ])
                        .output()
                        .expect("wrk");
                    let cpu = cpu_seconds(pid) - before;
                    let _ = child.kill();
                    let _ = child.wait();
                    let text = String::from_utf8_lossy(&out.stdout);
                    let requests: f64 = text
                        .lines()
                        .find_map(|l| l.trim().split_once(" requests in "))
                        .and_then(|(n, _)| n.trim().parse().ok())
                        .unwrap_or(0.0);
                    let per_second = text
                        .lines()
                        .find_map(|l| l.strip_prefix("Requests/sec:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0.0);
                    let cpu_us = if requests > 0.0 { cpu / requests * 1e6 } else { f64::NAN };
                    results[which].push((per_second, cpu_us));
                }
            }
            let median = |v: &[(f64, f64)], f: fn(&(f64, f64)) -> f64| {
                let mut xs: Vec<f64> = v.iter().map(f).collect();
                xs.sort_by(f64::total_cmp);
                xs[xs.len() / 2]
            };
            let rate = |i: usize| median(&results[i], |r| r.0);
            let cpu = |i: usize| median(&results[i], |r| r.1);
            println!(
                "| {pool} | {path} | {:.0} | {:.3} | {:.3} | {:.1} | {:.1} |",
                rate(0),
                rate(1) / rate(0),
                rate(2) / rate(0),
                cpu(0),
                cpu(1)
            );
        }
    }
}

/// The background task's instructions per second on an idle monitored
/// server, by callgrind: the slope between two run lengths.
fn background_per_second(exe: &std::path::Path, url: &str, pool: &str) -> f64 {
    let run = |seconds: u64| {
        let out = std::env::temp_dir().join(format!("service-{}-idle-{pool}-{seconds}.out", std::process::id()));
        let args = ["monitored", pool, "0", url, "0"].map(str::to_owned);
        let seconds_text = seconds.to_string();
        let (mut child, _port) = start(exe, &callgrind(&out), &args, &[("SERVE_FOR", &seconds_text)]);
        // Counted from a second after the start: the clock's calibration
        // and the pool's first connects vary by a million instructions
        // from run to run under valgrind.
        std::thread::sleep(std::time::Duration::from_secs(1));
        zero(child.id());
        assert!(child.wait().expect("the server").success());
        totals(&out)
    };
    let (short, long) = (run(5), run(25));
    long.saturating_sub(short) as f64 / 20.0
}
