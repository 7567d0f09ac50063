//! The alert engine: rules over what the pool records, alerts with
//! severities, cooldowns and a lifecycle, and the notifiers they go to.
//!
//! # Rules
//!
//! Thresholds come from [`AlertThresholds`](crate::AlertThresholds) (and
//! so from the environment). Each alert has a *key* within its type, so that
//! one deadlocking statement and another are two alerts:
//!
//! | type | fires when | key | severity | kind |
//! |---|---|---|---|---|
//! | [`ConnectionFailure`](AlertType::ConnectionFailure) | `consecutive_failures` (5) connects failed or connections were lost in a row, with no successful connect between | `consecutive` | high | condition |
//! | | the server shut a connection down (`admin_shutdown`, 57P01/57P02/57P03) | `admin_shutdown` | critical | event |
//! | [`PoolExhaustion`](AlertType::PoolExhaustion) | a checkout timed out with every connection in use (`pool_exhausted`) | `timeout` | critical | event |
//! | | utilization at or over `pool_utilization` (0.9) at a trend sample (the peak since the previous one; its verdict holds until the next sample), or at an evaluation while checkouts wait | `utilization` | high | condition |
//! | [`SlowQuery`](AlertType::SlowQuery) | a statement ran at least `slow_query_threshold` (2 s) | fingerprint | medium | event |
//! | [`HighErrorRate`](AlertType::HighErrorRate) | the share of failed statements over 5 min / 15 min / 1 h is over `error_rate_5min` (0.1) / `error_rate_15min` (0.05) / `error_rate_1hour` (0.02), with at least `error_rate_min_statements` (20) statements in the window | `5m` / `15m` / `1h` | high / medium / low | condition |
//! | [`TransactionTimeout`](AlertType::TransactionTimeout) | a statement, lock or idle-in-transaction timeout (57014, 55P03, 25P03) | the error type | medium | event |
//! | [`Deadlock`](AlertType::Deadlock) | any deadlock (40P01) | fingerprint of the statement that was cancelled | high | event |
//! | [`PerformanceDegradation`](AlertType::PerformanceDegradation) | a statement's p95 over the last 5 minutes is `degradation_factor` (2) times its p95 over the hour before, with `degradation_min_samples` (20) runs in each | fingerprint | medium | condition |
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
//!   resolved by hand ([`MonitoredPool::resolve_alert`](crate::MonitoredPool::resolve_alert))
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
//! Without a running background task no alert fires.
//!
//! Notifiers are called from the background task, one after the other,
//! and must not block: the webhook notifier only queues.
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
//!     .build();
//! # let _ = monitor;
//! ```

mod book;
mod notify;
pub(crate) mod rules;
#[cfg(feature = "webhook")]
mod webhook;

use std::fmt;

use serde::Serialize;

pub(crate) use book::{AlertBook, Lifetime, Notice, Observation};
pub use notify::{AlertEvent, LogNotifier, Notifier};
#[cfg(feature = "webhook")]
pub use webhook::{AlertmanagerNotifier, AlertmanagerNotifierBuilder, WebhookError, WebhookStats};

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AlertType {
    /// Connects fail or connections are lost, or the server shut one down.
    ConnectionFailure,
    /// Checkouts time out or the pool runs full.
    PoolExhaustion,
    /// A statement ran longer than the slow threshold.
    SlowQuery,
    /// Too many statements fail.
    HighErrorRate,
    /// A statement, lock or idle-in-transaction timeout.
    TransactionTimeout,
    /// A deadlock.
    Deadlock,
    /// A statement got much slower than it was.
    PerformanceDegradation,
}

impl AlertType {
    /// Every type, in declaration order.
    pub const ALL: [AlertType; 7] = [
        AlertType::ConnectionFailure,
        AlertType::PoolExhaustion,
        AlertType::SlowQuery,
        AlertType::HighErrorRate,
        AlertType::TransactionTimeout,
        AlertType::Deadlock,
        AlertType::PerformanceDegradation,
    ];

    /// A stable `snake_case` name: the `alert_type` label and JSON value.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertType::ConnectionFailure => "connection_failure",
            AlertType::PoolExhaustion => "pool_exhaustion",
            AlertType::SlowQuery => "slow_query",
            AlertType::HighErrorRate => "high_error_rate",
            AlertType::TransactionTimeout => "transaction_timeout",
            AlertType::Deadlock => "deadlock",
            AlertType::PerformanceDegradation => "performance_degradation",
        }
    }

    /// The name as Alertmanager's `alertname`: `DbConnectionFailure`, …
    pub const fn alert_name(self) -> &'static str {
        match self {
            AlertType::ConnectionFailure => "DbConnectionFailure",
            AlertType::PoolExhaustion => "DbPoolExhaustion",
            AlertType::SlowQuery => "DbSlowQuery",
            AlertType::HighErrorRate => "DbHighErrorRate",
            AlertType::TransactionTimeout => "DbTransactionTimeout",
            AlertType::Deadlock => "DbDeadlock",
            AlertType::PerformanceDegradation => "DbPerformanceDegradation",
        }
    }

    /// The environment variable that sets this type's cooldown alone.
    pub const fn cooldown_variable(self) -> &'static str {
        match self {
            AlertType::ConnectionFailure => "ASYNC_DB_ALERT_COOLDOWN_CONNECTION_FAILURE",
            AlertType::PoolExhaustion => "ASYNC_DB_ALERT_COOLDOWN_POOL_EXHAUSTION",
            AlertType::SlowQuery => "ASYNC_DB_ALERT_COOLDOWN_SLOW_QUERY",
            AlertType::HighErrorRate => "ASYNC_DB_ALERT_COOLDOWN_HIGH_ERROR_RATE",
            AlertType::TransactionTimeout => "ASYNC_DB_ALERT_COOLDOWN_TRANSACTION_TIMEOUT",
            AlertType::Deadlock => "ASYNC_DB_ALERT_COOLDOWN_DEADLOCK",
            AlertType::PerformanceDegradation => "ASYNC_DB_ALERT_COOLDOWN_PERFORMANCE_DEGRADATION",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AlertType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AlertType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// How urgent an alert is; ordered from `Low` to `Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum AlertSeverity {
    /// Worth a look.
    Low,
    /// Needs attention soon.
    Medium,
    /// Users are affected.
    High,
    /// The database is unusable for the service.
    Critical,
}

impl AlertSeverity {
    /// Every severity, from `Low` to `Critical`.
    pub const ALL: [AlertSeverity; 4] = [
        AlertSeverity::Low,
        AlertSeverity::Medium,
        AlertSeverity::High,
        AlertSeverity::Critical,
    ];

    /// A stable lowercase name: the `severity` label and JSON value.
    pub const fn as_str(self) -> &'static str {
        match self {
            AlertSeverity::Low => "low",
            AlertSeverity::Medium => "medium",
            AlertSeverity::High => "high",
            AlertSeverity::Critical => "critical",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for AlertSeverity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for AlertSeverity {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// Whether an alert is still active.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AlertStatus {
    /// Firing.
    Active,
    /// Resolved (see [`Alert::resolved_by`]).
    Resolved,
}

/// One alert: what fired, how often, and its state.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Alert {
    /// Its id: 16 lowercase hexadecimal digits, unique within the process,
    /// fixed for the alert's life, safe in a URL path.
    pub id: String,
    /// The pool it is about.
    pub pool: String,
    /// Its type.
    pub alert_type: AlertType,
    /// Its severity (the highest seen while active).
    pub severity: AlertSeverity,
    /// What it is about within its type: a fingerprint (16 hex digits), an
    /// error type, a window (`5m`) or a fixed word (see the rules table).
    pub key: String,
    /// What happened, with its evidence (SQL only normalized, never a
    /// literal or parameter). The latest occurrence's.
    pub message: String,
    /// When it first fired, in milliseconds since the Unix epoch.
    pub first_seen_unix_ms: u64,
    /// When it last fired.
    pub last_seen_unix_ms: u64,
    /// How many times its rule fired while it was active.
    pub occurrences: u64,
    /// Active or resolved.
    pub status: AlertStatus,
    /// When it was resolved.
    pub resolved_unix_ms: Option<u64>,
    /// Who or what resolved it: `rule` (a condition alert whose condition
    /// cleared), `expiry` (an event alert not seen for `expire_after`), or
    /// the name given to [`resolve_alert`](crate::MonitoredPool::resolve_alert).
    pub resolved_by: Option<String>,
}

/// The active alerts of a pool and its history ([`MonitoredPool::alerts`](crate::MonitoredPool::alerts)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AlertReport {
    /// The pool's name.
    pub pool: String,
    /// Active alerts, most severe first, then the most recently seen.
    pub active: Vec<Alert>,
    /// Active alerts by severity name.
    pub active_by_severity: std::collections::BTreeMap<String, u64>,
    /// Notifications the notifiers were given since the pool was created.
    pub notifications: u64,
    /// New alerts not kept because 1024 were active already.
    pub suppressed: u64,
}

/// Resolved alerts, newest first ([`MonitoredPool::alert_history`](crate::MonitoredPool::alert_history)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AlertHistory {
    /// The pool's name.
    pub pool: String,
    /// Resolved alerts, newest first.
    pub resolved: Vec<Alert>,
    /// Resolved alerts no longer kept (past `alert_history`).
    pub evicted: u64,
}
