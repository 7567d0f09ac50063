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
mod error_counts;
mod errors;
pub(crate) mod forecast;
pub(crate) mod histogram;
mod nplusone;
mod performance;
mod recent;
mod requests;
pub(crate) mod ring;
pub(crate) mod routes;
pub(crate) mod series;
pub(crate) mod server;
mod slow;
mod totals;
mod trend;

use std::time::SystemTime;

use crate::config::MonitorConfig;
use crate::units::unix_ms;

pub use errors::{ErrorPattern, ErrorRate, ErrorRecord, ErrorReport, ErrorSource};
pub use forecast::{ForecastEvidence, LittleCheck, PoolForecast, StatementAnomaly};
pub use nplusone::NPlusOnePattern;
pub use performance::{
    Apdex, Degradation, GroupPerformance, LatencyStats, QueryPerformanceReport, StatementPerformance,
};
pub use recent::{RecentStatement, StatementOutcome};
pub use requests::RouteStats;
pub use series::{SeriesPoint, StatementSeries};
pub use server::{LockNode, OtherBackends, ServerBackend, ServerStatement};
pub use slow::{SlowQuery, SlowQueryGroup, SlowQueryReport, GETTING_SLOWER};
pub use trend::{PoolSample, PoolTrendReport};

pub(crate) use alert_book::AlertBook;
pub(crate) use errors::{rate, ErrorLog, NewError};
pub(crate) use nplusone::NPlusOneLog;
pub(crate) use performance::{
    degradation, report as performance_report, Cumulative, StatementHistory, StatementWindow, Window, Windows,
};
pub(crate) use recent::{describe as describe_recent, outcome_word, RawRecent, RecentRing};
pub(crate) use requests::RouteLog;
pub(crate) use slow::{NewSlow, SlowLog};
pub(crate) use totals::{Totals, TotalsHistory};
pub(crate) use trend::{PoolReading, PoolTrend};

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
    pub(crate) alerts: AlertBook,
    pub(crate) server: server::ServerStore,
    pub(crate) forecast: forecast::ForecastStore,
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
            alerts: AlertBook::new(config.alert_history),
            server: server::ServerStore::default(),
            forecast: forecast::ForecastStore::default(),
        }
    }
}
