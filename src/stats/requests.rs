//! Requests by route: what the database cost each route's requests
//! (requests, statements and database time per request, its p95), from the
//! request scopes of [`DbMonitorLayer`](crate::DbMonitorLayer).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use super::histogram::{bucket_of, Histogram};
use crate::units::ms;

/// Routes kept per pool; requests of later routes are not kept (those
/// kept go on counting).
pub(crate) const MAX_ROUTES: usize = 200;

/// The bytes of route labels kept per pool, at most.
pub(crate) const MAX_ROUTE_BYTES: usize = 64 << 10;

/// One route's requests since the stores were last reset.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RouteStats {
    /// The route label (`GET /stories/{id}`, a gRPC path, or your
    /// `route_label`).
    pub route: String,
    /// Requests that finished.
    pub requests: u64,
    /// Statements they ran on this pool.
    pub statements: u64,
    /// Statements per request, on average.
    pub statements_per_request: f64,
    /// Database time per request (the sum of its statements' times), on
    /// average, in milliseconds.
    pub database_ms_per_request: f64,
    /// The 95th percentile of a request's database time, in milliseconds.
    pub p95_database_ms: Option<f64>,
    /// The longest database time of one request, in milliseconds.
    pub max_database_ms: f64,
    /// Requests that had a failed statement.
    pub requests_with_errors: u64,
}

#[derive(Default)]
struct Agg {
    requests: u64,
    statements: u64,
    total_ns: u64,
    max_ns: u64,
    with_errors: u64,
    histogram: Histogram,
}

/// The routes of one pool, behind one lock that each routed request takes
/// once at its end (foldhash: the label is hashed on every request).
#[derive(Default)]
pub(crate) struct RouteLog {
    routes: Mutex<Routes>,
}

#[derive(Default)]
struct Routes {
    by_label: HashMap<Arc<str>, Agg, foldhash::fast::RandomState>,
    /// The bytes of the labels in `by_label`.
    bytes: usize,
}

impl RouteLog {
    /// Counts one finished request of `route`: its statements, their time,
    /// and whether one failed.
    pub(crate) fn record(&self, route: &Arc<str>, statements: u64, nanos: u64, failed: bool) {
        let mut guard = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let routes = &mut *guard;
        let room = routes.by_label.len() < MAX_ROUTES && routes.bytes + route.len() <= MAX_ROUTE_BYTES;
        let agg = match routes.by_label.get_mut(route) {
            Some(agg) => agg,
            None if room => {
                routes.bytes += route.len();
                routes.by_label.entry(route.clone()).or_default()
            }
            None => return,
        };
        agg.requests += 1;
        agg.statements += statements;
        agg.total_ns = agg.total_ns.saturating_add(nanos);
        agg.max_ns = agg.max_ns.max(nanos);
        agg.with_errors += u64::from(failed);
        agg.histogram.add(bucket_of(nanos), 1);
    }

    /// Every route, the most database time first.
    pub(crate) fn report(&self) -> Vec<RouteStats> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<(u64, RouteStats)> = routes
            .by_label
            .iter()
            .map(|(route, a)| {
                let per = |n: f64| if a.requests == 0 { 0.0 } else { n / a.requests as f64 };
                let max = Duration::from_nanos(a.max_ns);
                let stats = RouteStats {
                    route: route.to_string(),
                    requests: a.requests,
                    statements: a.statements,
                    statements_per_request: per(a.statements as f64),
                    database_ms_per_request: per(ms(Duration::from_nanos(a.total_ns))),
                    p95_database_ms: a.histogram.quantile(0.95, None, Some(max)).map(ms),
                    max_database_ms: ms(max),
                    requests_with_errors: a.with_errors,
                };
                (a.total_ns, stats)
            })
            .collect();
        list.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.route.cmp(&b.1.route)));
        list.into_iter().map(|(_, s)| s).collect()
    }

    pub(crate) fn clear(&self) {
        *self.routes.lock().unwrap_or_else(|e| e.into_inner()) = Routes::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_bounded_by_its_labels_bytes_too() {
        let log = RouteLog::default();
        for i in 0..100 {
            log.record(&Arc::from(format!("{i:04}{}", "x".repeat(4 << 10))), 1, 1, false);
        }
        let kept = log.report();
        let bytes: usize = kept.iter().map(|r| r.route.len()).sum();
        assert!(
            bytes <= MAX_ROUTE_BYTES && kept.len() < 20,
            "{} routes, {bytes} bytes",
            kept.len()
        );
        log.clear();
        log.record(&Arc::from("GET /after"), 1, 1, false);
        assert_eq!(log.report().len(), 1, "a reset frees the room");
    }

    #[test]
    fn requests_add_up_by_route_and_the_table_is_bounded() {
        let log = RouteLog::default();
        let orders: Arc<str> = Arc::from("GET /orders");
        for i in 1..=20u64 {
            log.record(&orders, 3, i * 1_000_000, i == 20);
        }
        log.record(&Arc::from("GET /ping"), 0, 0, false);
        let report = log.report();
        assert_eq!(report[0].route, "GET /orders", "the most database time first");
        let o = &report[0];
        assert_eq!((o.requests, o.statements, o.requests_with_errors), (20, 60, 1));
        assert_eq!(o.statements_per_request, 3.0);
        assert!((o.database_ms_per_request - 10.5).abs() < 1e-9, "{o:?}");
        assert_eq!(o.max_database_ms, 20.0);
        let p95 = o.p95_database_ms.unwrap();
        assert!((18.0..=20.0).contains(&p95), "{p95}");
        assert_eq!(report[1].requests, 1);
        for i in 0..MAX_ROUTES + 10 {
            log.record(&Arc::from(format!("GET /r{i}")), 1, 1, false);
        }
        assert_eq!(log.report().len(), MAX_ROUTES);
        assert_eq!(
            log.report().iter().find(|r| r.route == "GET /orders").unwrap().requests,
            20
        );
        log.clear();
        assert!(log.report().is_empty());
    }
}
