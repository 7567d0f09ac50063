//! The reports users read from a pool: written here, on the engines'
//! floor, as methods of [`MonitoredPool`]. Each reads the stores and the
//! pool's state and computes; none writes a metric.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, SystemTime};

use super::{score, ComprehensiveReport, Inputs, PerformanceScore};
use crate::funnel::{Event, QueryEntry};
use crate::pool::PoolMonitor;
use crate::sql::Operation;
use crate::stats::alert_book::{AlertHistory, AlertReport};
use crate::stats::{
    self, clamp_minutes, ErrorReport, PoolTrendReport, QueryPerformanceReport, RecentStatement, SlowQueryReport,
};
use crate::units::nanos;

impl PoolMonitor {
    /// The error store: errors in the last `minutes` (everything retained
    /// when `None`; at most 24 hours), their classes and SQLSTATEs,
    /// recurring patterns, and statement error rates over 5 minutes,
    /// 15 minutes and 1 hour.
    pub fn error_report(&self, minutes: Option<u32>) -> ErrorReport {
        let rates = self.error_rates();
        let minutes = minutes.map(clamp_minutes);
        self.stores()
            .errors
            .report(&self.sink().name, SystemTime::now(), minutes, rates)
    }

    /// Statement error rates over 5 minutes, 15 minutes and 1 hour.
    pub(crate) fn error_rates(&self) -> Vec<stats::ErrorRate> {
        let now = std::time::Instant::now();
        let current = self.observe_totals(now);
        let history = &self.stores().totals;
        [5u32, 15, 60]
            .into_iter()
            .map(|m| stats::rate(m, history.over(now, current, Duration::from_secs(60 * u64::from(m)))))
            .collect()
    }

    /// The slow-query store: runs at or over the slow threshold in the last
    /// `minutes` (everything retained when `None`; at most 24 hours),
    /// grouped by statement; at most `limit` groups and `limit` recent runs.
    pub fn slow_query_report(&self, minutes: Option<u32>, limit: usize) -> SlowQueryReport {
        let now = std::time::Instant::now();
        let current = self.observe_totals(now);
        let minutes = minutes.map(clamp_minutes);
        // Database time is kept per minute for the last hour.
        let window = Duration::from_secs(60 * u64::from(minutes.unwrap_or(60).min(60)));
        let (delta, _) = self.stores().totals.over(now, current, window);
        let mut report = self.stores().slow.report(
            &self.sink().name,
            self.sink().config.slow_query_threshold,
            SystemTime::now(),
            minutes,
            limit,
            nanos(delta.busy_ns),
        );
        // Each group's plan, and the rows the client saw beside its estimate.
        for group in &mut report.groups {
            let Ok(fingerprint) = u64::from_str_radix(&group.fingerprint, 16) else {
                continue;
            };
            group.plan = self.stores().plans.get(fingerprint);
            group.client_rows_per_call = self.sink().queries.by_fingerprint(fingerprint).and_then(|e| {
                let t = e.stats.totals();
                (t.calls > 0).then(|| t.rows as f64 / t.calls as f64)
            });
        }
        report.plans_unavailable = match &self.sink().config.server_view {
            None => Some("plans are read by the server view, which is off (MonitorConfig::server_view)".to_owned()),
            Some(_) => self.stores().plans.why_unavailable(),
        };
        report
    }

    /// The pool trend: the samples of the last `minutes` (every sample
    /// retained when `None`), with peak and average utilization, waiters,
    /// timeouts and waiting. Samples are taken by the background task
    /// ([`DbMonitor::start`](crate::DbMonitor::start)) or [`sample`](Self::sample).
    pub fn trend_report(&self, minutes: Option<u32>) -> PoolTrendReport {
        let minutes = minutes.map(clamp_minutes);
        self.stores()
            .trend
            .report(&self.sink().name, SystemTime::now(), minutes)
    }

    /// The active alerts, most severe first (see [`crate::alerts`]).
    pub fn alerts(&self) -> AlertReport {
        self.stores().alerts.report(&self.sink().name)
    }

    /// Resolved alerts, newest first: at most `limit`, and at most
    /// [`alert_history`](crate::MonitorConfig::alert_history) are kept.
    pub fn alert_history(&self, limit: usize) -> AlertHistory {
        self.stores().alerts.history(&self.sink().name, limit)
    }

    /// What the database cost each route's requests through
    /// [`DbMonitorLayer`](crate::DbMonitorLayer) since the stores were last
    /// reset: requests, statements and database time per request, the p95
    /// and the longest, requests with a failed statement. The most database
    /// time first; at most 200 routes are kept.
    pub fn route_report(&self) -> Vec<crate::stats::RouteStats> {
        self.stores().routes.report()
    }

    /// Statements that one request sent more than once with the same
    /// parameters, by route (with
    /// [`DbMonitorLayer::redundant_statements`](crate::DbMonitorLayer::redundant_statements)
    /// on; empty otherwise). Each is an [`NPlusOnePattern`](crate::stats::NPlusOnePattern):
    /// its runs are runs with one parameter set.
    pub fn redundant_statements(&self) -> Vec<crate::stats::NPlusOnePattern> {
        self.stores().redundant.report()
    }

    /// Reads that requests through [`DbMonitorLayer`](crate::DbMonitorLayer)
    /// ran one after another where they could have run together (see
    /// [`DbMonitorLayer::serial_reads`](crate::DbMonitorLayer::serial_reads)),
    /// by route and statements, the most time they could have saved first.
    pub fn serial_reads(&self) -> Vec<crate::stats::SerialReadsPattern> {
        self.stores().serial.report()
    }

    /// Where the pool's time goes: every checkout returned since the
    /// stores were last reset, by the route of its request and its `get()`
    /// call site, its hold split into the time its statements ran and the
    /// time the connection was held idle (the handler keeping it between
    /// statements or across other awaits, which starves other requests
    /// without loading the database). At most `limit` pairs, the most
    /// connection-seconds held idle first; at most 200 pairs are kept.
    /// Empty unless [`MonitorConfig::hold_times`](crate::MonitorConfig::hold_times)
    /// is on.
    pub fn hold_report(&self, limit: usize) -> crate::stats::HoldReport {
        self.stores().holds.report(limit)
    }

    /// The last statements the pool ran (at most `limit`, and at most
    /// [`query_history`](crate::MonitorConfig::query_history) are kept),
    /// newest first, normalized.
    pub fn recent_statements(&self, limit: usize) -> Vec<RecentStatement> {
        let entries = self.sink().queries.entries();
        let by_fingerprint: std::collections::HashMap<u64, &QueryEntry> =
            entries.iter().map(|e| (e.fingerprint, &**e)).collect();
        self.stores()
            .recent
            .read(limit)
            .iter()
            .map(|raw| {
                let entry = by_fingerprint.get(&raw.fingerprint);
                stats::describe_recent(
                    raw,
                    self.sink().epoch_wall,
                    entry.map(|e| (&*e.normalized, e.operation, e.table.as_deref())),
                )
            })
            .collect()
    }

    /// The performance score over the last `minutes` (1 to 1440): its
    /// parts and recommendations (see [`crate::report`] for the formula).
    /// Reading it writes no metric: the background task publishes the
    /// `db_monitor_performance_score` gauge.
    pub fn performance(&self, minutes: u32) -> PerformanceScore {
        self.comprehensive(minutes, 10).performance
    }

    /// The pool's statements slot by slot (a minute) over the last
    /// `minutes` (1 to 60): runs, failures, p50/p95/p99 and the kept
    /// failures by kind; what the dashboard draws.
    pub fn series(&self, minutes: u32) -> crate::stats::StatementSeries {
        let minutes = minutes.clamp(1, 60);
        let now = std::time::Instant::now();
        let wall = std::time::SystemTime::now();
        self.observe_totals(now);
        let slot = self.sink().config.slot;
        let span = Duration::from_secs(60 * u64::from(minutes)).max(slot.saturating_mul(2));
        let from = now.checked_sub(span).unwrap_or(now);
        let entries = self.sink().queries.entries();
        let windows = entries.iter().flat_map(|e| e.history.slot_windows(from, now)).collect();
        // What ran since each statement's last slot closed: the current slot.
        let mut live = crate::stats::Window::default();
        for e in &entries {
            live.merge(&e.history.window(Some(now), now, Some(&e.stats.cumulative(false))));
        }
        let from_ms = crate::units::unix_ms(wall).saturating_sub(u64::try_from(span.as_millis()).unwrap_or(u64::MAX));
        let errors = self.stores().errors.kinds_since(from_ms);
        crate::stats::series::series(&self.sink().name, minutes, slot, (now, wall), (windows, live), errors)
    }

    /// Each route objective as its requests met it over the last 24 hours:
    /// compliance, the error budget left, and the burn rates the
    /// [`ObjectiveBurn`](crate::alerts::AlertType::ObjectiveBurn) alert
    /// reads (see [`Objective`](crate::Objective)).
    pub fn objectives(&self) -> Vec<crate::stats::ObjectiveStatus> {
        self.stores().objectives.statuses(SystemTime::now())
    }

    /// When the pool is forecast to run out, with the evidence: the
    /// background task's last sample (absent before its first; see
    /// [`ForecastThresholds`](crate::ForecastThresholds)).
    pub fn forecast(&self) -> Option<crate::stats::PoolForecast> {
        self.stores().forecast.forecast()
    }

    /// The statements anomalous now against their own baseline (the
    /// anomaly detector's last minute; see
    /// [`AnomalyThresholds`](crate::AnomalyThresholds)), most deviations
    /// first.
    pub fn anomalies(&self) -> Vec<crate::stats::StatementAnomaly> {
        self.stores().forecast.anomalies()
    }

    /// Computes the performance score over the last hour and sets the
    /// `db_monitor_performance_score` gauge. The background task does this
    /// at every sample; call it to publish the score of a pool that has
    /// none.
    pub fn publish_score(&self) -> PerformanceScore {
        let performance = self.performance(60);
        self.shared.record(Event::Score(performance.score));
        performance
    }

    /// Everything about the pool in one document, over the last `minutes`
    /// (1 to 1440; the error and slow-query lists at most `limit` long).
    pub fn comprehensive(&self, minutes: u32, limit: usize) -> ComprehensiveReport {
        let minutes = clamp_minutes(minutes);
        let queries = self.query_performance(minutes, limit);
        let slow = self.slow_query_report(Some(minutes), limit);
        let mut errors = self.error_report(Some(minutes));
        errors.recent.truncate(limit);
        let trend = self.trend_report(Some(minutes));
        let max_size = self.shared.max_size.load(Relaxed);
        let alerts = self.alerts();
        let performance = score(&Inputs {
            config: &self.sink().config,
            max_size,
            queries: &queries,
            slow: &slow,
            errors: &errors,
            trend: &trend,
            alerts: &alerts.active,
            forecast: self.stores().forecast.forecast(),
            objectives: self.objectives(),
        });
        ComprehensiveReport {
            pool: self.snapshot(),
            recent_statements: self.recent_statements(limit),
            performance,
            queries,
            slow_queries: slow,
            errors,
            pool_trend: trend,
            n_plus_one: self.stores().n_plus_one.report(),
            routes: self.route_report(),
            holders: self.hold_report(limit).holders,
            serial_reads: self.serial_reads(),
            redundant_statements: self.redundant_statements(),
            readiness: self.readiness(),
            alerts,
            server: self.server_summary(),
        }
    }

    /// Takes this minute's snapshot of the pool's totals if none was taken
    /// yet (the background task does it every minute), and returns them.
    pub(crate) fn observe_totals(&self, now: std::time::Instant) -> stats::Totals {
        self.sink().queries.snapshot_minute(now);
        let current = self.sink().queries.totals();
        self.stores().totals.observe(now, current);
        current
    }

    /// Statement performance over the last `minutes` (1 to 1440): counts,
    /// success rate, mean, min, max, p50/p95/p99 and rows overall, by
    /// operation, by table and by statement (at most `limit` statements,
    /// most total time first), and the statements whose p95 has degraded.
    ///
    /// See [`crate::stats`] for how windows are kept and how precise the
    /// percentiles are.
    pub fn query_performance(&self, minutes: u32, limit: usize) -> QueryPerformanceReport {
        let minutes = clamp_minutes(minutes);
        let now = std::time::Instant::now();
        self.observe_totals(now);
        let config = &self.sink().config;
        let from = now.checked_sub(Duration::from_secs(60 * u64::from(minutes)));
        let recent_from = now.checked_sub(Duration::from_secs(5 * 60));
        let baseline_from = now.checked_sub(Duration::from_secs(65 * 60));
        let entries = self.sink().queries.entries();
        let mut statements = Vec::with_capacity(entries.len());
        let mut degraded = Vec::new();
        for e in &entries {
            let live = e.stats.cumulative(false);
            let window = e.history.window(from, now, Some(&live));
            if let Some(recent_from) = recent_from {
                let recent = e.history.window(Some(recent_from), now, Some(&live));
                let baseline = e.history.window(baseline_from, recent_from, None);
                degraded.extend(stats::degradation(
                    e.fingerprint,
                    &e.normalized,
                    &recent,
                    &baseline,
                    config.degradation_factor,
                    config.degradation_min_samples,
                ));
            }
            statements.push(stats::StatementWindow {
                fingerprint: e.fingerprint,
                statement: &e.normalized,
                operation: e.operation,
                table: e.table.as_deref(),
                window,
            });
        }
        stats::performance_report(stats::Windows {
            pool: &self.sink().name,
            window_minutes: minutes,
            slow_threshold: config.slow_query_threshold,
            now,
            statements,
            limit,
            degraded,
            anomalies: self.stores().forecast.anomalies(),
        })
    }

    /// Per-fingerprint statement counts since the pool was created, most
    /// total time first.
    pub fn query_stats(&self) -> Vec<QueryStats> {
        let mut all: Vec<QueryStats> = self
            .shared
            .sink
            .queries
            .entries()
            .iter()
            .map(|e| {
                let s = e.stats.totals();
                QueryStats {
                    fingerprint: e.fingerprint,
                    normalized: e.normalized.to_string(),
                    operation: e.operation,
                    table: e.table.as_deref().map(str::to_owned),
                    calls: s.calls,
                    errors: s.errors,
                    cancelled: s.cancelled,
                    slow: s.slow,
                    rows: s.rows,
                    total_time: nanos(s.total_ns),
                    max_time: nanos(s.max_ns),
                    checkout_wait: nanos(s.split.wait_ns),
                    queued: nanos(s.split.queued_ns),
                    first_row: nanos(s.split.first_row_ns),
                    first_row_runs: s.split.first_rows,
                }
            })
            .collect();
        all.sort_by(|a, b| b.total_time.cmp(&a.total_time).then(a.fingerprint.cmp(&b.fingerprint)));
        all
    }
}

/// Counts for one normalized statement ([`PoolMonitor::query_stats`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueryStats {
    /// The fingerprint (`0` for the `other` bucket past the fingerprint cap).
    pub fingerprint: u64,
    /// The normalized text.
    pub normalized: String,
    /// The operation.
    pub operation: Operation,
    /// The main table.
    pub table: Option<String>,
    /// Runs (successes, failures and cancellations).
    pub calls: u64,
    /// Failed runs.
    pub errors: u64,
    /// Runs abandoned by their caller.
    pub cancelled: u64,
    /// Runs at or over the slow threshold.
    pub slow: u64,
    /// Rows returned or affected, where known.
    pub rows: u64,
    /// Total time of the runs that finished (cancelled runs add none).
    pub total_time: Duration,
    /// Longest run.
    pub max_time: Duration,
    /// The checkout waits charged to it: each checkout's wait goes to the
    /// first statement that finished on its connection (see
    /// [`LatencySplit`](crate::stats::LatencySplit)).
    pub checkout_wait: Duration,
    /// Time its runs spent behind their connection's earlier statements.
    pub queued: Duration,
    /// Time to the first row, summed over the `first_row_runs` streamed
    /// runs that had one.
    pub first_row: Duration,
    /// The streamed runs behind `first_row`.
    pub first_row_runs: u64,
}

impl QueryStats {
    /// Where its time went, as means per finished run (none without
    /// one).
    pub fn split(&self) -> Option<crate::stats::LatencySplit> {
        crate::stats::LatencySplit::of(
            self.calls - self.cancelled,
            crate::units::saturating_nanos(self.total_time),
            &crate::stats::SplitSums {
                wait_ns: crate::units::saturating_nanos(self.checkout_wait),
                queued_ns: crate::units::saturating_nanos(self.queued),
                first_row_ns: crate::units::saturating_nanos(self.first_row),
                first_rows: self.first_row_runs,
            },
        )
    }

    /// Mean time of the runs that finished (successfully or not).
    pub fn mean_time(&self) -> Duration {
        let finished = self.calls - self.cancelled;
        if finished == 0 {
            Duration::ZERO
        } else {
            Duration::from_nanos((self.total_time.as_nanos() / u128::from(finished)) as u64)
        }
    }
}
