//! When the pool reports itself unready ([`Readiness`], read by the
//! layer's `{prefix}/ready`).

use std::time::Duration;

/// When `GET {prefix}/ready` answers 503: the pool cannot serve database
/// work in time. Each condition is read from the pool's live load (the
/// last ten seconds of checkouts), none from a query, so the check costs
/// the database nothing.
///
/// The pool is not ready while any of these holds:
/// - the database is out of reach (no connection open, connects failing);
/// - checkouts have been pending without a pause for [`saturated_for`](Self::saturated_for),
///   and every connection is checked out (the pool saturated);
/// - the 95th percentile of the last ten seconds' checkout waits is over
///   [`wait_p95`](Self::wait_p95) (with at least ten checkouts in them);
/// - the exhaustion forecast is due within [`exhaustion_within`](Self::exhaustion_within).
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Readiness {
    pub(crate) saturated_for: Duration,
    pub(crate) wait_p95: Duration,
    pub(crate) exhaustion_within: Duration,
    pub(crate) retry_after: Duration,
    pub(crate) out_of_reach_unready: bool,
}

impl Default for Readiness {
    fn default() -> Self {
        Readiness {
            saturated_for: Duration::from_secs(10),
            wait_p95: Duration::from_secs(1),
            exhaustion_within: Duration::from_secs(60),
            retry_after: Duration::from_secs(5),
            out_of_reach_unready: false,
        }
    }
}

impl Readiness {
    /// Sets how long checkouts may be pending without a pause (some
    /// checkout pending at every moment) while every connection is checked
    /// out (the pool saturated) before the pool is unready (`ASYNC_DB_READY_SATURATED_FOR`). Defaults to 10 s.
    pub fn saturated_for(mut self, d: Duration) -> Self {
        self.saturated_for = d;
        self
    }

    /// Sets the bound on the 95th percentile of the last ten seconds'
    /// checkout waits (`ASYNC_DB_READY_WAIT_P95`). Defaults to 1 s.
    pub fn wait_p95(mut self, d: Duration) -> Self {
        self.wait_p95 = d;
        self
    }

    /// Sets how close a forecast exhaustion of the pool makes it unready
    /// (`ASYNC_DB_READY_EXHAUSTION_WITHIN`; `0` never). Defaults to 60 s.
    pub fn exhaustion_within(mut self, d: Duration) -> Self {
        self.exhaustion_within = d;
        self
    }

    /// Sets the `Retry-After` of an unready answer, in whole seconds
    /// (`ASYNC_DB_READY_RETRY_AFTER`). Defaults to 5 s.
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = d;
        self
    }

    /// Sets whether the database being out of reach makes this instance
    /// unready (`ASYNC_DB_READY_OUT_OF_REACH`, `true`/`false`). Defaults to
    /// `false`: that reason is every instance's at once, so taking each
    /// out of the load balancer for it turns a database outage into a
    /// total one (every request refused at the balancer, none answered
    /// with the application's own error or fallback), and a partial one
    /// (some instances cut off) into a total one too. The report still
    /// lists it, among its [shared
    /// reasons](crate::report::ReadinessReport::shared_reasons). Turn it
    /// on where another pool of instances, on another database, can take
    /// the traffic.
    pub fn out_of_reach_unready(mut self, on: bool) -> Self {
        self.out_of_reach_unready = on;
        self
    }
}
