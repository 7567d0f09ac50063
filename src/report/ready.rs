//! Readiness: whether this instance can serve database work in time, from
//! the pool's live load, its reach and its forecast (the layer's
//! `{prefix}/ready`).

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use serde::Serialize;

use crate::config::Readiness;
use crate::pool::PoolMonitor;
use crate::stats::PoolLoad;

/// Checkouts the last ten seconds need before their wait's 95th percentile
/// can make the pool unready.
const MIN_CHECKOUTS: u64 = 10;

/// Whether the pool can serve database work in time, and why not (the
/// layer's `GET {prefix}/ready`; see [`Readiness`] for the conditions).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ReadinessReport {
    /// The pool's name.
    pub pool: String,
    /// `ready` or `not_ready`.
    pub status: &'static str,
    /// What makes it unready (empty when ready): this instance's own
    /// conditions (its pool saturated, its checkouts slow, its pool
    /// forecast to run out), and a shared one where configured to count.
    pub reasons: Vec<NotReady>,
    /// Conditions every instance on the same database shares (the
    /// database out of reach), listed but not counted: taking every
    /// instance out of service at once for them would turn an outage of
    /// the database into one of the whole service at the load balancer.
    /// [`Readiness::out_of_reach_unready`] counts them.
    pub shared_reasons: Vec<NotReady>,
    /// The pool's load over the last seconds.
    pub load: PoolLoad,
    /// Seconds until the forecast exhaustion, when one is forecast.
    pub exhausted_in_seconds: Option<f64>,
    /// When to ask again, as the `Retry-After` of an unready answer.
    #[serde(rename = "retry_after_ms", serialize_with = "crate::units::ser_ms")]
    pub retry_after: Duration,
}

impl ReadinessReport {
    /// Whether the pool is ready.
    pub fn is_ready(&self) -> bool {
        self.reasons.is_empty()
    }
}

/// One reason a pool is unready.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct NotReady {
    /// `database_out_of_reach`, `saturated`, `slow_checkouts` or
    /// `exhaustion_forecast`.
    pub reason: &'static str,
    /// The figure and its bound, in words.
    pub detail: String,
}

impl PoolMonitor {
    /// Whether the pool can serve database work in time now. Reads the
    /// pool's load and state only: no query, no lock held while reading.
    pub fn readiness(&self) -> ReadinessReport {
        let config = &self.sink().config.readiness;
        let load = self.load();
        // A forecast of the future only (the live load judges the present:
        // `saturated`); the forecast's `exhausted` held a pool unready for
        // seconds after its saturation had ended.
        let exhausted_in = self.stores().forecast.forecast().and_then(|f| f.reported_seconds());
        // Two atomics, not a snapshot (which lists every connection).
        let shared = &self.shared;
        let full = shared.in_use.load(Relaxed) >= shared.max_size.load(Relaxed);
        let (reasons, shared_reasons) = reasons(&load, full, self.out_of_reach(), exhausted_in, config);
        ReadinessReport {
            pool: self.name().to_owned(),
            status: if reasons.is_empty() { "ready" } else { "not_ready" },
            reasons,
            shared_reasons,
            load,
            exhausted_in_seconds: exhausted_in,
            retry_after: config.retry_after,
        }
    }
}

/// What makes a pool with this load, reach and forecast unready (`full`:
/// every connection is checked out now), and the shared conditions that
/// do not count.
fn reasons(
    load: &PoolLoad,
    full: bool,
    out_of_reach: bool,
    exhausted_in: Option<f64>,
    config: &Readiness,
) -> (Vec<NotReady>, Vec<NotReady>) {
    let mut reasons = Vec::new();
    let mut shared = Vec::new();
    if out_of_reach {
        let reason = NotReady {
            reason: "database_out_of_reach",
            detail: "no connection is open and connects are failing".to_owned(),
        };
        if config.out_of_reach_unready {
            reasons.push(reason);
        } else {
            shared.push(reason);
        }
    }
    // Checkouts pending without a pause on a pool with a connection free
    // are in bb8's validity ping or connecting: busy, not saturated.
    if let Some(waiting_for) = load.waiting_for.filter(|w| full && *w >= config.saturated_for) {
        reasons.push(NotReady {
            reason: "saturated",
            detail: format!(
                "every connection is taken and checkouts have been pending without a pause for {:.1?} (bound {:?}; {} pending)",
                waiting_for, config.saturated_for, load.waiting
            ),
        });
    }
    let checkouts = load.served + load.failed;
    if let Some(p95) = load
        .wait_p95
        .filter(|p| *p > config.wait_p95 && checkouts >= MIN_CHECKOUTS)
    {
        reasons.push(NotReady {
            reason: "slow_checkouts",
            detail: format!(
                "checkout wait p95 {:.1?} over the last {:.0?} (bound {:?}; {checkouts} checkouts)",
                p95, load.window, config.wait_p95
            ),
        });
    }
    let within = config.exhaustion_within.as_secs_f64();
    if let Some(seconds) = exhausted_in.filter(|s| within > 0.0 && *s <= within) {
        reasons.push(NotReady {
            reason: "exhaustion_forecast",
            detail: format!("the pool is forecast to run out in {seconds:.0} s (bound {within:.0} s)"),
        });
    }
    (reasons, shared)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load() -> PoolLoad {
        PoolLoad {
            window: Duration::from_secs(10),
            waiting: 0,
            queued: 0,
            waiting_for: None,
            served: 100,
            failed: 0,
            served_per_second: 10.0,
            returned_per_second: 10.0,
            mean_hold: Some(Duration::from_millis(5)),
            capacity_per_second: 10.0,
            wait_p95: Some(Duration::from_millis(2)),
            requests_shed: 0,
        }
    }

    fn why(load: &PoolLoad, out: bool, exhausted_in: Option<f64>) -> Vec<&'static str> {
        let config = Readiness::default().out_of_reach_unready(true);
        reasons(load, true, out, exhausted_in, &config)
            .0
            .into_iter()
            .map(|r| r.reason)
            .collect()
    }

    #[test]
    fn the_database_out_of_reach_is_shared_and_does_not_count_by_default() {
        let (own, shared) = reasons(&load(), false, true, None, &Readiness::default());
        assert!(own.is_empty(), "{own:?}");
        assert_eq!(shared.len(), 1);
        assert_eq!(shared[0].reason, "database_out_of_reach");
    }

    #[test]
    fn a_quiet_pool_is_ready() {
        assert!(why(&load(), false, None).is_empty());
        assert!(why(&load(), false, Some(3600.0)).is_empty());
    }

    #[test]
    fn each_condition_makes_it_unready_past_its_bound_only() {
        let mut saturated = load();
        saturated.waiting = 3;
        saturated.waiting_for = Some(Duration::from_secs(9));
        assert!(why(&saturated, false, None).is_empty(), "under 10 s");
        saturated.waiting_for = Some(Duration::from_secs(10));
        assert_eq!(why(&saturated, false, None), ["saturated"]);
        let config = Readiness::default();
        assert!(
            reasons(&saturated, false, false, None, &config).0.is_empty(),
            "a connection free: pending checkouts are pinging, not waiting"
        );

        let mut slow = load();
        slow.wait_p95 = Some(Duration::from_millis(1500));
        assert_eq!(why(&slow, false, None), ["slow_checkouts"]);
        slow.served = 5;
        assert!(why(&slow, false, None).is_empty(), "too few checkouts to judge");

        assert_eq!(why(&load(), true, None), ["database_out_of_reach"]);
        assert_eq!(why(&load(), false, Some(45.0)), ["exhaustion_forecast"]);
        let never = Readiness::default().exhaustion_within(Duration::ZERO);
        assert!(reasons(&load(), true, false, Some(1.0), &never).0.is_empty());
    }

    #[test]
    fn every_reason_is_listed() {
        let mut all = load();
        all.waiting = 1;
        all.waiting_for = Some(Duration::from_secs(60));
        all.wait_p95 = Some(Duration::from_secs(5));
        assert_eq!(
            why(&all, true, Some(10.0)),
            [
                "database_out_of_reach",
                "saturated",
                "slow_checkouts",
                "exhaustion_forecast"
            ]
        );
    }
}
