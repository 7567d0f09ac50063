//! `DbMonitorLayer` on a tonic gRPC server: the standard gRPC health
//! service, whose check runs `SELECT 1` on a monitored pool, with the
//! layer's JSON routes answering on the same port.
//!
//! ```text
//! cargo run --example tonic_server --features tonic
//! ```
//!
//! With `DATABASE_URL` unset it starts a throwaway PostgreSQL from the
//! server binaries on `PATH` and removes it on exit (Ctrl-C). No `protoc`
//! is needed: the health service's code comes with `tonic-health`.

#[path = "../tests/support/pg.rs"]
mod pg;

use db_monitor::tokio_postgres::NoTls;
use db_monitor::{DbMonitor, DbMonitorLayer, MonitorConfig, MonitoredPool};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// The gRPC health service, answered by asking the database.
struct DatabaseHealth {
    pool: MonitoredPool<NoTls>,
}

#[tonic::async_trait]
impl Health for DatabaseHealth {
    async fn check(&self, _request: Request<HealthCheckRequest>) -> Result<Response<HealthCheckResponse>, Status> {
        let serving = async {
            let conn = self.pool.get().await.ok()?;
            conn.query_one("SELECT 1", &[]).await.ok()
        };
        let status = match serving.await {
            Some(_) => ServingStatus::Serving,
            None => ServingStatus::NotServing,
        };
        Ok(Response::new(HealthCheckResponse { status: status as i32 }))
    }

    type WatchStream = futures_util::stream::Empty<Result<HealthCheckResponse, Status>>;

    async fn watch(&self, _request: Request<HealthCheckRequest>) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch is not served by this example"))
    }
}

/// Serves the health service with `DbMonitorLayer` on `listener`.
pub(crate) async fn serve(listener: tokio::net::TcpListener, pool: MonitoredPool<NoTls>) -> Result<(), Error> {
    // A gRPC request is labelled with its path (`/package.Service/Method`,
    // a fixed set) by default.
    let layer = DbMonitorLayer::new(pool.clone());
    tonic::transport::Server::builder()
        // HTTP/1 too, so that the JSON routes answer curl.
        .accept_http1(true)
        .layer(layer)
        .add_service(HealthServer::new(DatabaseHealth { pool }))
        .serve_with_incoming(TcpIncoming::from(listener))
        .await?;
    Ok(())
}

/// Asks the server at `url` for its health, as a gRPC client would.
pub(crate) async fn check(url: String) -> Result<String, Error> {
    let channel = tonic::transport::Channel::from_shared(url)?.connect().await?;
    let mut client = HealthClient::new(channel);
    let response = client.check(HealthCheckRequest { service: String::new() }).await?;
    Ok(format!("{:?}", response.into_inner().status()))
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
    let addr = listener.local_addr()?;
    println!("gRPC health on {addr}; the layer's routes on http://{addr}/health/database");
    let server_task = tokio::spawn(serve(listener, pool.clone()));
    println!("a health check: {}", check(format!("http://{addr}")).await?);
    println!("Ctrl-C stops the server (and the throwaway PostgreSQL).");
    tokio::select! {
        result = server_task => result??,
        _ = tokio::signal::ctrl_c() => {}
    }
    background.shutdown().await;
    Ok(())
}
