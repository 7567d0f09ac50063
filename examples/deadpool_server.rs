//! The axum example's application on deadpool-postgres instead of bb8:
//! the same routes, the same `DbMonitorLayer` and reports.
//!
//! ```text
//! cargo run --example deadpool_server --features deadpool
//! ```
//!
//! The environment is the axum example's (`DATABASE_URL`, `BIND`,
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, …); without `DATABASE_URL` it starts a
//! throwaway PostgreSQL.

#[path = "axum_server.rs"]
pub(crate) mod axum_server;

use std::future::Future;

use axum_server::{DemoPool, APPLICATION_NAME};
use db_monitor::deadpool_postgres::{ManagerConfig, RecyclingMethod};
use db_monitor::tokio_postgres::{Config, NoTls};
use db_monitor::{DbMonitor, GetError, MonitoredDeadpool, MonitoredObject, PoolMonitor};

type Error = Box<dyn std::error::Error + Send + Sync>;

impl DemoPool for MonitoredDeadpool<NoTls> {
    type Conn = MonitoredObject<NoTls>;

    async fn open(monitor: &DbMonitor, pg: Config) -> Result<Self, Error> {
        // As a deadpool-postgres application configures its manager.
        let recycling = ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        };
        let manager = monitor.manager("primary", pg, NoTls).setup(APPLICATION_NAME);
        Ok(monitor.deadpool(manager.deadpool_builder(recycling))?)
    }

    #[track_caller]
    fn checkout(&self) -> impl Future<Output = Result<Self::Conn, GetError>> + Send {
        self.get()
    }

    fn monitor(&self) -> &PoolMonitor {
        MonitoredDeadpool::monitor(self)
    }
}

#[allow(dead_code)]
#[tokio::main]
async fn main() -> Result<(), Error> {
    axum_server::run::<MonitoredDeadpool<NoTls>>("deadpool-example").await
}
