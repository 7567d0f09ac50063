//! The events the sources hand to the funnel: one type per thing that can
//! happen, none of them holding a pool or an HTTP type.

use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use super::table::QueryEntry;
use crate::classify::ErrorKind;
use crate::stats::forecast::{PoolForecast, StatementAnomaly};
use crate::stats::server::ServerSample;
use crate::stats::{Origin, PoolReading};

/// Every event, born in exactly one source.
pub(crate) enum Event<'a> {
    /// A statement ended (the client wrappers).
    Statement(StatementEnd<'a>),
    /// A transaction ended (the transaction wrapper).
    Transaction { outcome: TxOutcome, elapsed: Duration },
    /// `connect` finished, successfully or not (the manager).
    Connect {
        elapsed: Duration,
        error: Option<&'a tokio_postgres::Error>,
    },
    /// The pool's validity check (`test_on_check_out`) failed (the manager).
    Invalid(&'a tokio_postgres::Error),
    /// A connection's background task ended (the manager). `error` is set
    /// only for news: an error that no statement has reported already.
    ConnectionClosed {
        connection: u64,
        error: Option<&'a tokio_postgres::Error>,
    },
    /// The server sent a notice on one of the pool's connections (the
    /// connection's driver).
    Notice {
        connection: u64,
        notice: &'a tokio_postgres::error::DbError,
    },
    /// `get()` finished, successfully or with a failure of this kind
    /// (a timeout, or a connect error's class when it `failed_fast`).
    Checkout {
        at: quanta::Instant,
        waited: Duration,
        timeout: Option<ErrorKind>,
        failed_fast: bool,
    },
    /// A checkout began to wait for a connection at `at` (`Some`), or
    /// stopped waiting (`None`: served, failed, or dropped).
    Waiting(Option<quanta::Instant>),
    /// A request was answered 503 before its handler ran.
    Shed,
    /// The background task's reading of the pool's own counts, each second.
    PoolSecond(crate::stats::PoolSecond),
    /// A replica set sent a read to this pool.
    ReplicaChosen,
    /// A checkout was returned after being held for `held`, of which its
    /// statements ran for `busy` (summed), by the request of route id
    /// `route` (0: none) from the `get()` at `location`.
    Return {
        at: quanta::Instant,
        held: Duration,
        busy: Duration,
        route: u32,
        location: &'static Location<'static>,
    },
    /// One request ran one statement more than the N+1 threshold (the
    /// layer).
    NPlusOne {
        origin: Origin<'a>,
        fingerprint: u64,
        runs: u64,
        threshold: u64,
    },
    /// One request sent one statement `runs` times with the same
    /// parameters (the layer).
    Redundant {
        origin: Origin<'a>,
        fingerprint: u64,
        runs: u64,
    },
    /// One request ran reads one after another that could have run
    /// together (the layer).
    SerialReads {
        origin: Origin<'a>,
        run: &'a crate::funnel::scope::SerialRun,
    },
    /// A request through the layer finished under `route` (the layer).
    Request {
        route: &'a Arc<str>,
        statements: u64,
        nanos: u64,
        failed: bool,
        /// The request as its client saw it: how long until it was
        /// answered (or dropped), and whether it went wrong (a 5xx
        /// answer, a failed statement, or dropped before its answer).
        elapsed: Duration,
        bad: bool,
    },
    /// The pool's state was read: to the trend (when `sample`) and the
    /// gauges.
    PoolState {
        reading: &'a PoolReading,
        counters: &'a PoolCounters,
        sample: bool,
    },
    /// The performance score was computed (the background task).
    Score(f64),
    /// The active alerts changed (the alert engine).
    AlertsChanged,
    /// The server-side poller took a sample, of which a part may have
    /// failed.
    ServerSample {
        sample: Arc<ServerSample>,
        failed: Option<&'a tokio_postgres::Error>,
    },
    /// The load sampler read the pool's active backends.
    LoadSample {
        at_unix_ms: u64,
        active: Vec<crate::stats::db_load::ActiveBackend>,
    },
    /// The poller read the generic plan of a slow statement.
    Plan {
        fingerprint: u64,
        plan: crate::stats::plans::StatementPlan,
    },
    /// A cycle of the server-side poller failed, or it could not connect.
    ServerFailed(&'a tokio_postgres::Error),
    /// One part of the background work panicked (it runs again); the
    /// panic's message when it is a fixed string of the code.
    BackgroundFailed {
        part: &'static str,
        message: Option<&'static str>,
    },
    /// The exhaustion forecast was updated (the background task).
    Forecast(&'a PoolForecast),
    /// The anomaly detector observed a minute (the background task): the
    /// statements anomalous now.
    Anomalies(Vec<StatementAnomaly>),
}

/// A statement that ended: its entry, when, how long, and how.
pub(crate) struct StatementEnd<'a> {
    pub(crate) entry: &'a QueryEntry,
    /// When it ended (the statement clock).
    pub(crate) end: quanta::Instant,
    pub(crate) elapsed: Duration,
    /// `elapsed` in nanoseconds (saturating).
    pub(crate) nanos: u64,
    pub(crate) outcome: Outcome<'a>,
    /// Its latency split's parts (the checkout's wait, the queue, the
    /// first row).
    pub(crate) split: crate::stats::counters::RunSplit,
    /// For a deadlock, the other side among the source's own connections,
    /// as the source names them (`connection 3 (PUT /accounts/{id} at
    /// src/accounts.rs:42)`).
    pub(crate) deadlock_peers: Option<&'a str>,
}

/// What a statement came to.
#[derive(Clone, Copy)]
pub(crate) enum Outcome<'a> {
    /// Finished; with the row count where the method knows it.
    Ok(Rows),
    /// Failed with this error.
    Failed(&'a tokio_postgres::Error),
    /// The caller dropped the future before it finished.
    Cancelled,
}

/// The rows a statement's method reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rows {
    /// Rows returned (`query`, row streams).
    Returned(u64),
    /// Rows the command affected (`execute`).
    Affected(u64),
    /// The method does not say (`batch_execute`, `COPY`).
    Unknown,
}

impl Rows {
    /// The count, whichever it is.
    #[inline]
    pub(crate) fn count(self) -> Option<u64> {
        match self {
            Rows::Returned(n) | Rows::Affected(n) => Some(n),
            Rows::Unknown => None,
        }
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TxOutcome {
    Committed,
    RolledBack,
    /// Dropped without commit or rollback: tokio-postgres rolls it back.
    Abandoned,
    /// `COMMIT` or `ROLLBACK` itself failed, or the transaction was dropped
    /// after one of its statements failed.
    Failed,
}

impl TxOutcome {
    pub(crate) const ALL: [TxOutcome; 4] = [
        TxOutcome::Committed,
        TxOutcome::RolledBack,
        TxOutcome::Abandoned,
        TxOutcome::Failed,
    ];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            TxOutcome::Committed => "committed",
            TxOutcome::RolledBack => "rolled_back",
            TxOutcome::Abandoned => "abandoned",
            TxOutcome::Failed => "failed",
        }
    }
}

/// bb8's cumulative statistics and the pool's floor, as published.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolCounters {
    pub(crate) idle_min: u32,
    pub(crate) created: u64,
    pub(crate) closed_broken: u64,
    pub(crate) closed_invalid: u64,
    pub(crate) closed_max_lifetime: u64,
    pub(crate) closed_idle_timeout: u64,
    pub(crate) gets_direct: u64,
    pub(crate) gets_waited: u64,
    pub(crate) gets_timed_out: u64,
}
