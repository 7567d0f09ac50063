//! The alert kinds: [`AlertType`] and [`AlertSeverity`], the vocabulary
//! that configuration, stores and the alert engine share. Re-exported from
//! [`crate::alerts`].

use std::fmt;

use serde::Serialize;

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
    /// One of the pool's backends sits idle in a transaction (server view).
    IdleInTransaction,
    /// One of the pool's backends holds a transaction open too long
    /// (server view).
    LongTransaction,
    /// One of the pool's backends waits on a lock too long (server view).
    BlockedBackend,
    /// The pool is forecast to run out of connections.
    PoolExhaustionForecast,
    /// A statement's latency has left its own baseline.
    LatencyAnomaly,
    /// A statement's failure rate has left its own baseline.
    ErrorRateAnomaly,
}

impl AlertType {
    /// Every type, in declaration order.
    pub const ALL: [AlertType; 13] = [
        AlertType::ConnectionFailure,
        AlertType::PoolExhaustion,
        AlertType::SlowQuery,
        AlertType::HighErrorRate,
        AlertType::TransactionTimeout,
        AlertType::Deadlock,
        AlertType::PerformanceDegradation,
        AlertType::IdleInTransaction,
        AlertType::LongTransaction,
        AlertType::BlockedBackend,
        AlertType::PoolExhaustionForecast,
        AlertType::LatencyAnomaly,
        AlertType::ErrorRateAnomaly,
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
            AlertType::IdleInTransaction => "idle_in_transaction",
            AlertType::LongTransaction => "long_transaction",
            AlertType::BlockedBackend => "blocked_backend",
            AlertType::PoolExhaustionForecast => "pool_exhaustion_forecast",
            AlertType::LatencyAnomaly => "latency_anomaly",
            AlertType::ErrorRateAnomaly => "error_rate_anomaly",
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
            AlertType::IdleInTransaction => "DbIdleInTransaction",
            AlertType::LongTransaction => "DbLongTransaction",
            AlertType::BlockedBackend => "DbBlockedBackend",
            AlertType::PoolExhaustionForecast => "DbPoolExhaustionForecast",
            AlertType::LatencyAnomaly => "DbLatencyAnomaly",
            AlertType::ErrorRateAnomaly => "DbErrorRateAnomaly",
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
            AlertType::IdleInTransaction => "ASYNC_DB_ALERT_COOLDOWN_IDLE_IN_TRANSACTION",
            AlertType::LongTransaction => "ASYNC_DB_ALERT_COOLDOWN_LONG_TRANSACTION",
            AlertType::BlockedBackend => "ASYNC_DB_ALERT_COOLDOWN_BLOCKED_BACKEND",
            AlertType::PoolExhaustionForecast => "ASYNC_DB_ALERT_COOLDOWN_POOL_EXHAUSTION_FORECAST",
            AlertType::LatencyAnomaly => "ASYNC_DB_ALERT_COOLDOWN_LATENCY_ANOMALY",
            AlertType::ErrorRateAnomaly => "ASYNC_DB_ALERT_COOLDOWN_ERROR_RATE_ANOMALY",
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
