//! `DbMonitorLayer` on plain hyper 1, without axum: a tower service made
//! of a function, wrapped by the layer, served through hyper-util's
//! `TowerToHyperService`.
//!
//! ```text
//! cargo run --example hyper_server
//! ```
//!
//! With `DATABASE_URL` unset it starts a throwaway PostgreSQL from the
//! server binaries on `PATH` and removes it on exit (Ctrl-C).

#[path = "../tests/support/pg.rs"]
mod pg;

use std::convert::Infallible;

use bytes::Bytes;
use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitor, DbMonitorLayer, MonitorConfig, MonitoredPool};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tower::Layer;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The application: `GET /now` asks the database for the time.
async fn handle(pool: MonitoredPool<NoTls>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/now" {
        let mut response = Response::new(Full::new(Bytes::from_static(b"try /now\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let now = async {
        let conn = pool.get().await?;
        let row = conn.query_one("SELECT now()::text", &[]).await?;
        Ok::<String, Error>(row.get(0))
    };
    Ok(match now.await {
        Ok(now) => Response::new(Full::new(Bytes::from(format!("{now}\n")))),
        Err(e) => {
            let mut response = Response::new(Full::new(Bytes::from(format!("{e}\n"))));
            *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            response
        }
    })
}

/// Accepts connections on `listener` and serves each with the layered service.
pub(crate) async fn serve(listener: tokio::net::TcpListener, pool: MonitoredPool<NoTls>) -> Result<(), Error> {
    let app = tower::service_fn({
        let pool = pool.clone();
        move |request| handle(pool.clone(), request)
    });
    let service = DbMonitorLayer::new(pool).layer(app);
    loop {
        let (stream, _) = listener.accept().await?;
        let service = TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                eprintln!("connection: {e}");
            }
        });
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let config = MonitorConfig::from_env()?.max_size(4);
    // Kept until the end of main: dropping it stops the throwaway server.
    let (_server, pg) = pg::example_server(config.database_config());
    let monitor = DbMonitor::new(config.clone())?;
    let pool = monitor
        .pool(monitor.manager("primary", pg, NoTls), config.pool_builder())
        .await?;
    let background = monitor.start(&pool);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    println!("listening on {base}: try curl -i {base}/now and curl {base}/health/database");
    println!("Ctrl-C stops the server (and the throwaway PostgreSQL).");
    tokio::select! {
        result = serve(listener, pool) => result?,
        _ = tokio::signal::ctrl_c() => {}
    }
    background.shutdown().await;
    Ok(())
}
