//! The alert engine: rules over what the pool records, alerts with
//! severities, cooldowns and a lifecycle, and the notifiers they go to.
//!
//! # Rules
//!
//! Thresholds come from [`AlertThresholds`](crate::AlertThresholds) (and
//! so from the environment). Each alert has a *key* within its type, so that
//! one deadlocking statement and another are two alerts. The three after
//! `PerformanceDegradation` need the server view ([`MonitorConfig::server_view`](crate::MonitorConfig::server_view)); their message
//! names the route and `get()` call site holding the connection:
//!
//! | type | fires when | key | severity | kind |
//! |---|---|---|---|---|
//! | [`ConnectionFailure`](AlertType::ConnectionFailure) | `consecutive_failures` (5) connects failed or connections were lost in a row, with no successful connect between | `consecutive` | high | condition |
//! | | the server shut a connection down (`admin_shutdown`, 57P01/57P02/57P03) | `admin_shutdown` | critical | event |
//! | [`PoolExhaustion`](AlertType::PoolExhaustion) | a checkout timed out with every connection in use (`pool_exhausted`) | `timeout` | critical | event |
//! | | utilization at or over `pool_utilization` (0.9) at a trend sample (the peak since the previous one; its verdict holds until the next sample), or at an evaluation while checkouts wait | `utilization` | high | condition |
//! | | checkouts queue for a connection while `held_idle_share` (0.5) or more of the checked-out ones run no statement (each for 50 ms at least: since its checkout or its last statement's end): the pool starved by its holders, not by the database; the message names the route and call site holding the most of them idle | `held_idle` | high | condition |
//! | [`SlowQuery`](AlertType::SlowQuery) | a statement ran at least `slow_query_threshold` (2 s) | fingerprint | medium | event |
//! | [`HighErrorRate`](AlertType::HighErrorRate) | the share of failed statements over 5 min / 15 min / 1 h is over `error_rate_5min` (0.1) / `error_rate_15min` (0.05) / `error_rate_1hour` (0.02), with at least `error_rate_min_statements` (20) statements in the window | `5m` / `15m` / `1h` | high / medium / low | condition |
//! | [`TransactionTimeout`](AlertType::TransactionTimeout) | a statement, lock or idle-in-transaction timeout (57014, 55P03, 25P03) | the error type | medium | event |
//! | [`Deadlock`](AlertType::Deadlock) | any deadlock (40P01) | fingerprint of the statement that was cancelled | high | event |
//! | [`PerformanceDegradation`](AlertType::PerformanceDegradation) | a statement's p95 over the last 5 minutes is `degradation_factor` (2) times its p95 over the hour before, with `degradation_min_samples` (20) runs in each | fingerprint | medium | condition |
//! | [`IdleInTransaction`](AlertType::IdleInTransaction) | one of the pool's backends has been idle in a transaction for `idle_in_transaction` (60 s), at the server view's last sample | `connection N` | medium | condition |
//! | [`LongTransaction`](AlertType::LongTransaction) | one of the pool's backends has had a transaction open for `transaction_age` (300 s) | `connection N` | medium | condition |
//! | [`BlockedBackend`](AlertType::BlockedBackend) | one of the pool's backends has waited on a lock for `blocked` (30 s); the message names its blockers' pids and, when they are the pool's, their routes | `connection N` | high | condition |
//! | [`PoolExhaustionForecast`](AlertType::PoolExhaustionForecast) | the pool is forecast to run out within [`forecast.horizon`](crate::ForecastThresholds::horizon) (1 h): see [`ForecastThresholds`](crate::ForecastThresholds) | the pool's name | high within 15 min, else medium | condition |
//! | [`LatencyAnomaly`](AlertType::LatencyAnomaly) | a statement's p95 left its own baseline in `k` of its last `n` minutes: see [`AnomalyThresholds`](crate::AnomalyThresholds) | fingerprint | medium | condition |
//! | [`ErrorRateAnomaly`](AlertType::ErrorRateAnomaly) | a statement's failure rate left its own baseline, likewise | fingerprint | medium | condition |
//! | [`ObjectiveBurn`](AlertType::ObjectiveBurn) | a route's [`Objective`](crate::Objective) burns its error budget at 14.4 times the rate its target allows over both the last hour and the last 5 minutes (page), or at 6 times over both the last 6 hours and the last 30 minutes (ticket): the SRE workbook's multiwindow, multi-burn-rate alert | `ROUTE latency` / `ROUTE success` | critical (page) / medium (ticket) | condition |
//! | [`ConnectionBudget`](AlertType::ConnectionBudget) | the monitored instances' pools (their maximums, one poller each) can open more connections than the server allows (`max_connections` less the reserved ones), or fewer than [`min_free_connections`](crate::ServerView::min_free_connections) (5) are free, at the elected poller's last cycle | `overcommitted` / `free` | high | condition |
//!
//! # Lifecycle
//!
//! - The first time a rule fires for a (type, key), an [`Alert`] becomes
//!   active and the notifiers hear [`AlertEvent::Fired`].
//! - Each repeat bumps its `occurrences` and `last_seen`, raises its severity
//!   if the repeat is more severe, and takes the repeat's message. Within the
//!   type's cooldown (`AlertThresholds::cooldown`, 5 min) since the
//!   last notification nobody is told; after it the notifiers hear
//!   [`AlertEvent::Repeated`] (which keeps an Alertmanager alert firing).
//! - A *condition* alert resolves itself once its rule has not fired for
//!   `clear_after` (5 min). An *event* alert stays active until it is
//!   resolved by hand ([`PoolMonitor::resolve_alert`](crate::PoolMonitor::resolve_alert))
//!   or until `expire_after` (1 h) has passed since it was last seen. The
//!   notifiers hear [`AlertEvent::Resolved`]; the alert, with who or what
//!   resolved it, goes to the history (the newest `alert_history`, 500).
//!
//! # When rules are evaluated
//!
//! Never on the statement path. A statement that fails or is slow already
//! writes a record to the error or slow-query store; besides that it only
//! sets a flag (one atomic load when the flag is already set, so a burst of
//! 10 000 deadlocks costs what counting them costs). The pool's background
//! task ([`DbMonitor::start`](crate::DbMonitor::start)) wakes on the flag,
//! reads the stores from where it left off and applies the event rules; it
//! applies the condition rules and the expiries every
//! `evaluation_interval` (10 s), and the degradation rule every minute.
//! The forecast and the anomaly detector run in the same task (the forecast
//! every [`forecast.interval`](crate::ForecastThresholds::interval), the
//! detector each minute); their rules read what they last concluded.
//! Without a running background task no alert fires.
//!
//! Notifiers are called from the background task, one after the other,
//! and must not block: the webhook notifier only queues.
//!
//! # Notifiers
//!
//! Every change goes to the notifiers: the `tracing` log by default (`ERROR`
//! for critical and high, `WARN` for medium, `INFO` for low and for
//! resolutions), Alertmanager's webhook, or your own ([`Notifier`], or any
//! `Fn(AlertEvent<'_>)`).
//!
//! - **Alertmanager** ([`AlertmanagerNotifier`], feature `webhook`, on by
//!   default): `POST /api/v2/alerts` with labels `alertname` (`DbDeadlock`,
//!   …), `alert_type`, `severity`, `pool`, `key`, `alert_id` and yours, the
//!   message as `summary`, `startsAt`, `endsAt` on resolution,
//!   `generatorURL`. A bounded queue (1024), batches of up to 64, 3 retries
//!   with exponential backoff from 500 ms, a 5 s timeout per attempt: a slow or
//!   dead receiver never blocks the monitor, and what overflows the queue or
//!   fails every attempt is counted (`stats()`). `http://` only.
//! - `db_monitor_alerts_active{alert_type, severity}` is published for every
//!   combination, zeros included.
//!
//! # Example
//!
//! ```no_run
//! use db_monitor::alerts::{AlertEvent, AlertSeverity};
//! use db_monitor::{DbMonitor, MonitorConfig};
//!
//! let monitor = DbMonitor::builder(MonitorConfig::default())
//!     .notifier(|event: AlertEvent<'_>| {
//!         if let AlertEvent::Fired(alert) = event {
//!             if alert.severity >= AlertSeverity::High {
//!                 eprintln!("page someone: {}", alert.message);
//!             }
//!         }
//!     })
//!     .build()?;
//! # let _ = monitor;
//! # Ok::<(), db_monitor::ConfigError>(())
//! ```

mod engine;
mod notify;
pub(crate) mod rules;
#[cfg(feature = "webhook")]
mod webhook;

pub use crate::alert_kind::{AlertSeverity, AlertType};
pub use crate::stats::alert_book::{Alert, AlertEvent, AlertHistory, AlertReport, AlertStatus};
pub use notify::{LogNotifier, Notifier};
#[cfg(feature = "webhook")]
pub use webhook::{AlertmanagerNotifier, AlertmanagerNotifierBuilder, WebhookError, WebhookStats};
