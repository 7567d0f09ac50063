//! What the routes need of a pool, without its TLS type: [`RoutePool`],
//! and its implementation for [`MonitoredPool`].

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::read::Read;
use crate::classify::error_message;
use crate::funnel::Event;
use crate::pool::{MakeTls, MonitoredPool, PoolSnapshot};

/// What the routes need of a pool, without its TLS type.
pub(crate) trait RoutePool: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// Active alerts.
    fn active_alerts(&self) -> usize;
    fn json(&self, what: Read) -> serde_json::Result<Vec<u8>>;
    fn resolve_alert(&self, id: &str, by: &str) -> Option<crate::alerts::Alert>;
    fn reset_stores(&self);
    fn reset_errors(&self);
    fn snapshot(&self) -> PoolSnapshot;
    /// Publishes the pool's gauges as they are now (at a scrape).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    fn publish_state(&self);
    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>>;
    /// Records an N+1 pattern seen in a request.
    fn n_plus_one(&self, route: Option<&Arc<str>>, fingerprint: u64, runs: u64, threshold: u64);
    /// Records a finished request of `route`.
    fn request_done(&self, route: &Arc<str>, statements: u64, database_time: Duration, failed: bool);
}

/// How long a health check's checkout took, and the database's answer to
/// its `SELECT 1` alone.
pub(crate) struct Ping {
    pub(super) checkout: Duration,
    pub(super) answer: Duration,
}

impl<Tls: MakeTls> RoutePool for MonitoredPool<Tls> {
    fn name(&self) -> &str {
        MonitoredPool::name(self)
    }

    fn active_alerts(&self) -> usize {
        self.shared.sink.stores.alerts.active().len()
    }

    fn json(&self, what: Read) -> serde_json::Result<Vec<u8>> {
        match what {
            Read::Comprehensive { minutes, limit } => serde_json::to_vec(&self.comprehensive(minutes, limit)),
            Read::QueryPerformance { minutes, limit } => serde_json::to_vec(&self.query_performance(minutes, limit)),
            Read::PoolTrends { minutes } => serde_json::to_vec(&self.trend_report(minutes)),
            Read::SlowQueries { minutes, limit } => serde_json::to_vec(&self.slow_query_report(minutes, limit)),
            Read::Errors { minutes, limit } => {
                let mut report = self.error_report(minutes);
                report.recent.truncate(limit);
                serde_json::to_vec(&report)
            }
            Read::Alerts => serde_json::to_vec(&self.alerts()),
            Read::AlertHistory { limit } => serde_json::to_vec(&self.alert_history(limit)),
            Read::Performance { minutes } => serde_json::to_vec(&self.performance(minutes)),
            Read::ServerActivity => serde_json::to_vec(&self.server_activity()),
            Read::ServerLocks => serde_json::to_vec(&self.server_locks()),
            Read::ServerStatements { limit } => serde_json::to_vec(&self.server_statements(limit)),
            Read::Series { minutes } => serde_json::to_vec(&self.series(minutes)),
        }
    }

    fn resolve_alert(&self, id: &str, by: &str) -> Option<crate::alerts::Alert> {
        MonitoredPool::resolve_alert(self, id, by)
    }

    fn reset_stores(&self) {
        MonitoredPool::reset_stores(self);
    }

    fn reset_errors(&self) {
        MonitoredPool::reset_errors(self);
    }

    fn snapshot(&self) -> PoolSnapshot {
        MonitoredPool::snapshot(self)
    }

    fn publish_state(&self) {
        MonitoredPool::publish_state(self);
    }

    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>> {
        // The monitor's own work: checked out from bb8 directly and run on
        // the raw client, so that neither the checkout nor `SELECT 1` is
        // counted among the application's (nor feeds the forecast).
        // Bounded as a whole by `timeout`; a connection whose `SELECT 1`
        // got no answer in time is retired rather than handed to the
        // application with the statement still in flight.
        Box::pin(async move {
            let start = Instant::now();
            let conn = match tokio::time::timeout(timeout, self.inner().get()).await {
                Ok(Ok(conn)) => conn,
                Ok(Err(bb8::RunError::User(e))) => {
                    return Err(format!("connect failed: {}", self.shared.sink.describe(&e)))
                }
                Ok(Err(bb8::RunError::TimedOut)) | Err(_) => {
                    return Err(match self.shared.last_connect_error() {
                        Some(e) if self.shared.consecutive_connect_failures.load(Relaxed) > 0 => {
                            format!("no connection within {timeout:?}: connect failed: {e}")
                        }
                        _ => format!("no connection within {timeout:?}"),
                    })
                }
            };
            let checked_out = Instant::now();
            let left = timeout.saturating_sub(checked_out - start);
            match tokio::time::timeout(left, conn.raw().simple_query("SELECT 1")).await {
                Ok(Ok(_)) => Ok(Ping {
                    checkout: checked_out - start,
                    answer: checked_out.elapsed(),
                }),
                Ok(Err(e)) => Err(error_message(&e, self.shared.sink.config.expose_application_messages).into_owned()),
                Err(_) => {
                    conn.retire();
                    Err(format!("no answer to SELECT 1 within {timeout:?}"))
                }
            }
        })
    }

    fn n_plus_one(&self, route: Option<&Arc<str>>, fingerprint: u64, runs: u64, threshold: u64) {
        self.shared.record(Event::NPlusOne {
            route,
            fingerprint,
            runs,
            threshold,
        });
    }

    fn request_done(&self, route: &Arc<str>, statements: u64, database_time: Duration, failed: bool) {
        self.shared.record(Event::Request {
            route,
            statements,
            nanos: crate::units::saturating_nanos(database_time),
            failed,
        });
    }
}
