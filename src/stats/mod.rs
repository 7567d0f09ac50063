//! Bounded in-process stores of what a pool recorded, and the snapshots
//! read from them.
//!
//! The stores sit beside the statement hot path, not on it: errors and slow
//! statements are rare events and take a short lock; statement counts for
//! the error-rate windows come from the exact cumulative per-statement
//! counters, snapshotted once a minute (by the background task, or when a
//! report is read) and subtracted, so a statement costs nothing extra.
//!
//! Snapshots are `#[non_exhaustive]` structs with public fields that
//! serialize with serde: times as milliseconds since the Unix epoch
//! (`*_unix_ms`), durations as milliseconds (`*_ms`), fingerprints as 16
//! hexadecimal digits, SQL only in its normalized form.
//!
//! # The stores
//!
//! | store | holds | bounded by |
//! |---|---|---|
//! | errors | kind, SQLSTATE, source, normalized statement, server message masked (see [what text leaves the process](crate::guide::privacy); never `DETAIL`), time; recurring (kind, statement) patterns; statement error rates over 5 min, 15 min, 1 h | `error_history` (1000) |
//! | slow queries | runs at or over `slow_query_threshold`, grouped by statement: count, mean, max, first and last seen, share of database time, whether it is getting slower (mean of the newer half over the older half, at least 1.2) | `query_history` (1000) |
//! | load | checkouts waiting now and since when without a pause; the checkouts ended in the last 10 s, served and failed, and their waits (one-second slots) | 16 slots (never reset: it forgets by itself) |
//! | database load | the pool's active backends sampled once a second (server view), per minute as average active sessions per route × wait event type and event (`CPU`: waiting on nothing) | 60 minutes, 256 slices a minute (never reset) |
//! | objectives | per route with an [`Objective`](crate::Objective): requests per minute, those over the latency bound and those with a failed statement | 24 hours of minutes per route |
//! | pool trend | a sample a minute (or per `health_check_interval`, if shorter), summing the pool's own counts read each second: size, idle, in use, the most waiters, mean utilization, the peak in use, the seconds with checkouts queued, timeouts and waiting in the interval | `pool_trend_samples` (1440) |
//! | recent statements | the last statements: normalized text, fingerprint, operation, table, duration, outcome, time (lock-free per-thread parts; the request route joins with the tower layer) | `query_history` (1000; 0 turns it off) |
//! | statement performance | per statement: count, errors, success rate, total, mean, min, max, p50/p95/p99, rows, over any window from 1 minute to 24 hours; grouped by operation and by table; degradation (p95 of the last 5 minutes ≥ `degradation_factor` × p95 of the hour before, with `degradation_min_samples` runs in each) | one-minute slots for the last hour, quarter hours for the rest of the day, per statement (capped by `max_fingerprints`) |
//!
//! Latency percentiles come from a log-linear histogram (256 buckets over
//! microseconds, eight per power of two: within 6.25%, clamped to the window's
//! exact minimum and maximum) rather than hdrhistogram: the hot path only
//! increments one counter in a fixed per-thread array, and arrays merge by
//! addition. Windows are differences between cumulative snapshots taken once
//! a minute, so their edges are whole slots; each report gives the time it
//! actually covers.
//!
//! # Reading them
//!
//! Every report is a method of the pool's
//! [`PoolMonitor`](crate::PoolMonitor) (`pool.monitor()`), read on demand;
//! the background task ([`DbMonitor::start`](crate::DbMonitor::start), or
//! [`DbMonitor::layer`](crate::DbMonitor::layer)) samples the pool, takes
//! the minute snapshots and resets the stores every
//! `metrics_reset_interval` (never the metrics recorder). The JSON routes
//! of [the layer](crate::layer) serve the same documents.
//!
//! ```no_run
//! # async fn run(pool: db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>, monitor: db_monitor::DbMonitor) {
//! let background = monitor.start(&pool);                 // sampler, minute snapshots, periodic reset
//! let errors = pool.monitor().error_report(Some(15));    // last 15 minutes; rates over 5 min / 15 min / 1 h
//! let slow = pool.monitor().slow_query_report(Some(60), 10);
//! let trend = pool.monitor().trend_report(None);         // every sample retained (1440 by default)
//! let perf = pool.monitor().query_performance(60, 20);   // p50/p95/p99 by statement, operation, table
//! let recent = pool.monitor().recent_statements(50);     // the last statements, newest first
//! let score = pool.monitor().performance(60);            // 0-100, its parts, recommendations
//! let everything = pool.monitor().comprehensive(60, 20); // all of the above in one document
//! pool.monitor().reset_stores();                         // never touches the metrics recorder
//! background.shutdown().await;                           // or drop the handle
//! # let _ = (errors, slow, trend, perf, recent, score, everything);
//! # }
//! ```
//!
//! # Example
//!
//! ```no_run
//! # async fn run(pool: db_monitor::MonitoredPool<db_monitor::tokio_postgres::NoTls>) -> Result<(), serde_json::Error> {
//! let last_hour = pool.monitor().query_performance(60, 20);
//! for s in &last_hour.by_statement {
//!     println!("{:>8} runs  p95 {:>8.1?} ms  {}", s.stats.count, s.stats.p95_ms, s.statement);
//! }
//! let errors = pool.monitor().error_report(Some(15));
//! println!("{}", serde_json::to_string_pretty(&errors)?);
//! # Ok(()) }
//! ```

pub(crate) mod alert_book;
pub(crate) mod counters;
pub(crate) mod db_load;
mod error_counts;
mod errors;
pub(crate) mod forecast;
pub(crate) mod histogram;
mod holds;
mod load;
mod nplusone;
pub(crate) mod objectives;
mod performance;
pub(crate) mod plans;
mod recent;
mod requests;
pub(crate) mod ring;
pub(crate) mod routes;
mod serial;
pub(crate) mod series;
pub(crate) mod server;
mod slow;
mod totals;
mod trend;

use std::time::SystemTime;

use crate::config::MonitorConfig;
use crate::units::unix_ms;

pub use db_load::{LoadMinute, LoadSlice};
pub use errors::{ErrorPattern, ErrorRate, ErrorRecord, ErrorReport, ErrorSource};
pub use forecast::{ForecastEvidence, LittleCheck, PoolForecast, StatementAnomaly};
pub use holds::{HoldReport, HoldStats};
pub use load::PoolLoad;
pub(crate) use load::Room;
pub use nplusone::NPlusOnePattern;
pub use objectives::{BurnRates, ObjectiveStatus};
pub use performance::{
    Apdex, Degradation, GroupPerformance, LatencySplit, LatencyStats, QueryPerformanceReport, StatementPerformance,
};
pub use plans::{PlanNode, SeqScan, StatementPlan, LARGE_TABLE_ROWS};
pub use recent::{RecentStatement, StatementOutcome};
pub use requests::RouteStats;
pub use serial::SerialReadsPattern;
pub use series::{SeriesPoint, StatementSeries};
pub use server::{
    BackendsByApplication, ConnectionBudget, LockNode, MonitoredInstance, OtherBackends, PollerRole, ServerBackend,
    ServerStatement,
};
pub use slow::{SlowQuery, SlowQueryGroup, SlowQueryReport, GETTING_SLOWER};
pub use trend::{PoolSample, PoolTrendReport};

pub(crate) use alert_book::AlertBook;

/// Where a request's pattern (N+1, redundant statement, serial reads)
/// came from: the request's route and its first checkout's `get()` call
/// site.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Origin<'a> {
    pub(crate) route: Option<&'a std::sync::Arc<str>>,
    pub(crate) site: Option<&'static std::panic::Location<'static>>,
}

impl Origin<'_> {
    /// The route as log lines show it (empty without one).
    pub(crate) fn route_name(&self) -> &str {
        self.route.map_or("", |r| r)
    }

    /// The call site as reports show it: `src/handlers.rs:42`.
    pub(crate) fn site_name(&self) -> Option<String> {
        self.site.map(|s| format!("{}:{}", s.file(), s.line()))
    }
}
pub(crate) use errors::{rate, ErrorLog, NewError};
pub(crate) use nplusone::NPlusOneLog;
pub(crate) use performance::{
    degradation, report as performance_report, Cumulative, SplitSums, StatementHistory, StatementWindow, Window,
    Windows,
};
pub(crate) use recent::{describe as describe_recent, outcome_word, RawRecent, RecentRing};
pub(crate) use requests::RouteLog;
pub(crate) use slow::{NewSlow, SlowLog};
pub(crate) use totals::{Totals, TotalsHistory};
pub(crate) use trend::{PoolReading, PoolSecond, PoolTrend};

/// The longest window a report covers, in minutes (24 hours).
pub const MAX_WINDOW_MINUTES: u32 = 24 * 60;

/// A window length in minutes, kept within 1 minute to 24 hours.
pub(crate) fn clamp_minutes(minutes: u32) -> u32 {
    minutes.clamp(1, MAX_WINDOW_MINUTES)
}

/// The start of the last `minutes` before `now`, in milliseconds since the
/// Unix epoch (`None`: no window, everything).
pub(crate) fn window_start(now: SystemTime, minutes: Option<u32>) -> Option<u64> {
    minutes.map(|m| unix_ms(now).saturating_sub(u64::from(m) * 60_000))
}

/// What a store recorded since a sequence number (for the alert engine,
/// which reads each store from where it left off).
#[derive(Debug)]
pub(crate) struct Since<T> {
    /// Records past the sequence number that the ring no longer holds.
    pub(crate) missed: u64,
    /// The records still held, oldest first.
    pub(crate) items: Vec<T>,
    /// Where to read from next time.
    pub(crate) next: u64,
}

/// The stores of one pool.
pub(crate) struct PoolStores {
    pub(crate) errors: ErrorLog,
    pub(crate) slow: SlowLog,
    pub(crate) totals: TotalsHistory,
    pub(crate) trend: PoolTrend,
    pub(crate) recent: RecentRing,
    pub(crate) n_plus_one: NPlusOneLog,
    pub(crate) routes: RouteLog,
    /// Checkouts' holds by route and call site.
    pub(crate) holds: holds::HoldLog,
    /// Statements sent twice with the same parameters in one request, by
    /// route (the layer; N+1's shape).
    pub(crate) redundant: NPlusOneLog,
    /// Serial reads by route and statements (the layer).
    pub(crate) serial: serial::SerialLog,
    pub(crate) alerts: AlertBook,
    pub(crate) server: server::ServerStore,
    /// The database load of the pool's backends (the server view's
    /// sampler); kept across a reset, as the server view's sample is.
    pub(crate) db_load: db_load::LoadStore,
    /// Generic plans of slow statements (the server view's poller).
    pub(crate) plans: plans::PlanStore,
    pub(crate) forecast: forecast::ForecastStore,
    pub(crate) load: load::CheckoutLoad,
    pub(crate) objectives: objectives::ObjectiveBook,
}

impl PoolStores {
    pub(crate) fn new(config: &MonitorConfig) -> Self {
        PoolStores {
            errors: ErrorLog::new(config.error_history),
            slow: SlowLog::new(config.query_history),
            totals: TotalsHistory::new(),
            trend: PoolTrend::new(config.pool_trend_samples),
            recent: RecentRing::new(config.query_history, counters::stripe_count()),
            n_plus_one: NPlusOneLog::new(config.max_fingerprints),
            routes: RouteLog::default(),
            holds: holds::HoldLog::default(),
            serial: serial::SerialLog::new(config.max_fingerprints),
            redundant: NPlusOneLog::new(config.max_fingerprints),
            alerts: AlertBook::new(config.alert_history),
            server: server::ServerStore::default(),
            db_load: db_load::LoadStore::default(),
            plans: plans::PlanStore::default(),
            forecast: forecast::ForecastStore::default(),
            load: load::CheckoutLoad::default(),
            objectives: objectives::ObjectiveBook::new(&config.objectives),
        }
    }
}
