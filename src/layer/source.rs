//! What the routes need of a pool, without its TLS type: [`RoutePool`],
//! and its implementation for [`PoolMonitor`].

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::read::Read;
use crate::funnel::Event;
use crate::pool::{Ping, PoolMonitor, PoolSnapshot};
use crate::stats::Origin;

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
    /// Whether the pool can serve in time (no query).
    fn readiness(&self) -> crate::report::ReadinessReport;
    /// Publishes the pool's gauges as they are now (at a scrape).
    #[cfg_attr(not(feature = "prometheus"), allow(dead_code))]
    fn publish_state(&self);
    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>>;
    /// Records an N+1 pattern seen in a request.
    fn n_plus_one(&self, origin: Origin<'_>, fingerprint: u64, runs: u64, threshold: u64);
    /// Records a statement a request sent `runs` times with the same
    /// parameters.
    fn redundant(&self, origin: Origin<'_>, fingerprint: u64, runs: u64);
    /// Records a run of serial reads seen in a request.
    fn serial_reads(&self, origin: Origin<'_>, run: &crate::funnel::scope::SerialRun);
    /// Whether a request's own duration is needed (a route has an
    /// objective): otherwise the layer reads no clock for it.
    fn times_requests(&self) -> bool;
    /// Records a finished request of `route`: its statements, their time
    /// and whether one failed; and the request itself, `elapsed` until it
    /// was answered or dropped, and whether it went `bad`.
    fn request_done(&self, route: &Arc<str>, db: (u64, Duration, bool), elapsed: Duration, bad: bool);
}

impl RoutePool for PoolMonitor {
    fn name(&self) -> &str {
        PoolMonitor::name(self)
    }

    fn readiness(&self) -> crate::report::ReadinessReport {
        PoolMonitor::readiness(self)
    }

    fn active_alerts(&self) -> usize {
        self.stores().alerts.active().len()
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
            Read::ServerLoad { minutes } => serde_json::to_vec(&self.server_load(minutes)),
            Read::ServerConnections => serde_json::to_vec(&self.server_connections()),
            Read::Running => serde_json::to_vec(&self.running_statements()),
            Read::Holders { limit } => serde_json::to_vec(&self.hold_report(limit)),
            Read::Series { minutes } => serde_json::to_vec(&self.series(minutes)),
            Read::Objectives => serde_json::to_vec(&self.objectives()),
        }
    }

    fn resolve_alert(&self, id: &str, by: &str) -> Option<crate::alerts::Alert> {
        PoolMonitor::resolve_alert(self, id, by)
    }

    fn reset_stores(&self) {
        PoolMonitor::reset_stores(self);
    }

    fn reset_errors(&self) {
        PoolMonitor::reset_errors(self);
    }

    fn snapshot(&self) -> PoolSnapshot {
        PoolMonitor::snapshot(self)
    }

    fn publish_state(&self) {
        PoolMonitor::publish_state(self);
    }

    fn ping(&self, timeout: Duration) -> Pin<Box<dyn Future<Output = Result<Ping, String>> + Send + '_>> {
        self.source.ping(timeout)
    }

    fn n_plus_one(&self, origin: Origin<'_>, fingerprint: u64, runs: u64, threshold: u64) {
        self.shared.record(Event::NPlusOne {
            origin,
            fingerprint,
            runs,
            threshold,
        });
    }

    fn redundant(&self, origin: Origin<'_>, fingerprint: u64, runs: u64) {
        self.shared.record(Event::Redundant {
            origin,
            fingerprint,
            runs,
        });
    }

    fn serial_reads(&self, origin: Origin<'_>, run: &crate::funnel::scope::SerialRun) {
        self.shared.record(Event::SerialReads { origin, run });
    }

    fn times_requests(&self) -> bool {
        !self.stores().objectives.is_empty()
    }

    fn request_done(&self, route: &Arc<str>, db: (u64, Duration, bool), elapsed: Duration, bad: bool) {
        let (statements, database_time, failed) = db;
        self.shared.record(Event::Request {
            route,
            statements,
            nanos: crate::units::saturating_nanos(database_time),
            failed,
            elapsed,
            bad,
        });
    }
}
