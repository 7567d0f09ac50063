//! The alert kinds: [`AlertType`] and [`AlertSeverity`], the vocabulary
//! that configuration, stores and the alert engine share. Re-exported from
//! [`crate::alerts`].

use std::fmt;

use serde::Serialize;

/// Declares [`AlertType`] from one row per variant: its doc, its
/// `snake_case` name, its Alertmanager `alertname`, the variable of its
/// cooldown, and the advice the performance report gives when one is
/// active (`None`: the report advises from its figures instead). A new
/// variant cannot be added without all five.
macro_rules! alert_types {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident => $name:literal, $alert_name:literal, $cooldown:literal, $advice:expr;
    )+) => {
        /// What an alert is about.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        #[non_exhaustive]
        pub enum AlertType {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl AlertType {
            /// Every type, in declaration order.
            pub const ALL: [AlertType; [$(AlertType::$variant),+].len()] = [$(AlertType::$variant),+];

            /// A stable `snake_case` name: the `alert_type` label and JSON value.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(AlertType::$variant => $name,)+
                }
            }

            /// The name as Alertmanager's `alertname`: `DbConnectionFailure`, …
            pub const fn alert_name(self) -> &'static str {
                match self {
                    $(AlertType::$variant => $alert_name,)+
                }
            }

            /// The environment variable that sets this type's cooldown alone.
            pub const fn cooldown_variable(self) -> &'static str {
                match self {
                    $(AlertType::$variant => $cooldown,)+
                }
            }

            /// What the performance report advises while an alert of this
            /// type is active, or `None` where it advises from its figures
            /// (the pool's trend, the slow statements, the error patterns).
            pub(crate) const fn advice(self) -> Option<&'static str> {
                match self {
                    $(AlertType::$variant => $advice,)+
                }
            }
        }
    };
}

alert_types! {
    /// Connects fail or connections are lost, or the server shut one down.
    ConnectionFailure => "connection_failure", "DbConnectionFailure", "ASYNC_DB_ALERT_COOLDOWN_CONNECTION_FAILURE",
        Some("check that the server is up, reachable and not restarting");
    /// Checkouts time out or the pool runs full.
    PoolExhaustion => "pool_exhaustion", "DbPoolExhaustion", "ASYNC_DB_ALERT_COOLDOWN_POOL_EXHAUSTION", None;
    /// A statement ran longer than the slow threshold.
    SlowQuery => "slow_query", "DbSlowQuery", "ASYNC_DB_ALERT_COOLDOWN_SLOW_QUERY", None;
    /// Too many statements fail.
    HighErrorRate => "high_error_rate", "DbHighErrorRate", "ASYNC_DB_ALERT_COOLDOWN_HIGH_ERROR_RATE", None;
    /// A statement, lock or idle-in-transaction timeout.
    TransactionTimeout => "transaction_timeout", "DbTransactionTimeout", "ASYNC_DB_ALERT_COOLDOWN_TRANSACTION_TIMEOUT",
        None;
    /// A deadlock.
    Deadlock => "deadlock", "DbDeadlock", "ASYNC_DB_ALERT_COOLDOWN_DEADLOCK", None;
    /// A statement got much slower than it was.
    PerformanceDegradation => "performance_degradation", "DbPerformanceDegradation",
        "ASYNC_DB_ALERT_COOLDOWN_PERFORMANCE_DEGRADATION", None;
    /// One of the pool's backends sits idle in a transaction (server view).
    IdleInTransaction => "idle_in_transaction", "DbIdleInTransaction", "ASYNC_DB_ALERT_COOLDOWN_IDLE_IN_TRANSACTION",
        Some("commit or roll back before awaiting anything else, and set idle_in_transaction_session_timeout");
    /// One of the pool's backends holds a transaction open too long
    /// (server view).
    LongTransaction => "long_transaction", "DbLongTransaction", "ASYNC_DB_ALERT_COOLDOWN_LONG_TRANSACTION",
        Some("keep transactions short: a long one holds locks and holds back vacuum");
    /// One of the pool's backends waits on a lock too long (server view).
    BlockedBackend => "blocked_backend", "DbBlockedBackend", "ASYNC_DB_ALERT_COOLDOWN_BLOCKED_BACKEND",
        Some("find what the blocker's route does inside its transaction (GET …/server/locks)");
    /// The pool is forecast to run out of connections.
    PoolExhaustionForecast => "pool_exhaustion_forecast", "DbPoolExhaustionForecast",
        "ASYNC_DB_ALERT_COOLDOWN_POOL_EXHAUSTION_FORECAST",
        Some("raise ASYNC_DB_MAX_SIZE before it runs out, or find what holds connections longer (Little's law above)");
    /// A statement's latency has left its own baseline.
    LatencyAnomaly => "latency_anomaly", "DbLatencyAnomaly", "ASYNC_DB_ALERT_COOLDOWN_LATENCY_ANOMALY",
        Some("see what changed for it: a deploy, its plan (EXPLAIN), a lock (GET …/server/locks), the data's size");
    /// A statement's failure rate has left its own baseline.
    ErrorRateAnomaly => "error_rate_anomaly", "DbErrorRateAnomaly", "ASYNC_DB_ALERT_COOLDOWN_ERROR_RATE_ANOMALY",
        Some("see its errors and their SQLSTATE (GET …/errors)");
    /// A route's objective burns its error budget too fast.
    ObjectiveBurn => "objective_burn", "DbObjectiveBurn", "ASYNC_DB_ALERT_COOLDOWN_OBJECTIVE_BURN",
        Some("see which statements the route runs and which take its time or fail (GET …/objectives, …/metrics/query-performance)");
    /// The monitored pools can open more connections than the server
    /// allows, or its free connections are few (server view, elected
    /// poller).
    ConnectionBudget => "connection_budget", "DbConnectionBudget", "ASYNC_DB_ALERT_COOLDOWN_CONNECTION_BUDGET",
        Some("lower the pools' maximum sizes, or put a connection pooler (PgBouncer) in front (GET …/server/connections)");
}

impl AlertType {
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
