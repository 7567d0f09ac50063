//! Where the pool's time goes: each checkout's hold, split into the time
//! its statements ran and the time the connection was held idle (the
//! handler keeping it between statements, or awaiting other work), by
//! route and by the `get()` call site that checked it out.

use std::collections::HashMap;
use std::panic::Location;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;

use crate::units::ms;

/// Route and call site pairs kept per pool; checkouts of later pairs are
/// counted in [`HoldReport::not_kept`] only.
pub(crate) const MAX_HOLDERS: usize = 200;

/// The checkouts of one route and call site since the stores were last
/// reset.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HoldStats {
    /// The route of the requests that checked the connections out (`GET
    /// /stories/{id}`), or `None` outside a request.
    pub route: Option<String>,
    /// The `get()` call site (`src/handlers.rs:42`).
    pub call_site: String,
    /// Checkouts returned.
    pub checkouts: u64,
    /// Time held per checkout, on average, in milliseconds.
    pub held_ms_per_checkout: f64,
    /// Of it, the time its statements ran (their durations summed, at
    /// most the hold), per checkout, in milliseconds.
    pub in_statements_ms_per_checkout: f64,
    /// Of it, the time held with no statement running, per checkout, in
    /// milliseconds.
    pub held_idle_ms_per_checkout: f64,
    /// The share of the hold that was idle (0 to 1).
    pub held_idle_share: f64,
    /// The longest hold, in milliseconds.
    pub max_held_ms: f64,
    /// The longest idle part of one hold, in milliseconds.
    pub max_held_idle_ms: f64,
    /// Connection-seconds held idle in all, what this pair kept from the
    /// other requests.
    pub held_idle_seconds: f64,
}

/// The pool's checkouts by route and call site, the most idle time held
/// first (`GET {prefix}/metrics/holders`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct HoldReport {
    /// At most `limit` pairs, the most connection-seconds held idle first.
    pub holders: Vec<HoldStats>,
    /// Checkouts of route and call site pairs past the 200 kept.
    pub not_kept: u64,
}

struct Hold {
    /// The route's name, looked up at the pair's first checkout.
    route: Option<Arc<str>>,
    site: &'static Location<'static>,
    checkouts: u64,
    held_ns: u64,
    busy_ns: u64,
    max_held_ns: u64,
    max_idle_ns: u64,
}

#[derive(Default)]
struct Holders {
    /// By route id and the call site's address.
    by_key: HashMap<(u32, usize), Hold, foldhash::fast::RandomState>,
    not_kept: u64,
}

/// The holds of one pool, behind one lock that each return takes once.
#[derive(Default)]
pub(crate) struct HoldLog {
    holders: Mutex<Holders>,
}

impl HoldLog {
    /// Counts a checkout by the request of route id `route` (0: none) at
    /// `site`, returned after `held`, whose statements ran for `busy` in
    /// all (more than `held` when they were pipelined: capped).
    pub(crate) fn record(&self, route: u32, site: &'static Location<'static>, held: Duration, busy: Duration) {
        let held_ns = crate::units::saturating_nanos(held);
        let busy_ns = crate::units::saturating_nanos(busy).min(held_ns);
        let key = (route, std::ptr::from_ref(site) as usize);
        let mut guard = self.holders.lock().unwrap_or_else(|e| e.into_inner());
        let holders = &mut *guard;
        let room = holders.by_key.len() < MAX_HOLDERS;
        let hold = match holders.by_key.get_mut(&key) {
            Some(entry) => entry,
            None if room => holders.by_key.entry(key).or_insert_with(|| new_holder(route, site)),
            None => {
                holders.not_kept += 1;
                return;
            }
        };
        hold.checkouts += 1;
        hold.held_ns = hold.held_ns.saturating_add(held_ns);
        hold.busy_ns = hold.busy_ns.saturating_add(busy_ns);
        hold.max_held_ns = hold.max_held_ns.max(held_ns);
        hold.max_idle_ns = hold.max_idle_ns.max(held_ns - busy_ns);
    }

    /// The `limit` pairs that held connections idle longest.
    pub(crate) fn report(&self, limit: usize) -> HoldReport {
        let holders = self.holders.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<(u64, u64, HoldStats)> = holders
            .by_key
            .values()
            .map(|h| {
                let idle_ns = h.held_ns - h.busy_ns;
                let per = |ns: u64| ms(Duration::from_nanos(ns)) / h.checkouts.max(1) as f64;
                let stats = HoldStats {
                    route: h.route.as_deref().map(str::to_owned),
                    call_site: format!("{}:{}", h.site.file(), h.site.line()),
                    checkouts: h.checkouts,
                    held_ms_per_checkout: per(h.held_ns),
                    in_statements_ms_per_checkout: per(h.busy_ns),
                    held_idle_ms_per_checkout: per(idle_ns),
                    held_idle_share: if h.held_ns == 0 {
                        0.0
                    } else {
                        idle_ns as f64 / h.held_ns as f64
                    },
                    max_held_ms: ms(Duration::from_nanos(h.max_held_ns)),
                    max_held_idle_ms: ms(Duration::from_nanos(h.max_idle_ns)),
                    held_idle_seconds: Duration::from_nanos(idle_ns).as_secs_f64(),
                };
                (idle_ns, h.held_ns, stats)
            })
            .collect();
        list.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(b.1.cmp(&a.1))
                .then_with(|| (&a.2.route, &a.2.call_site).cmp(&(&b.2.route, &b.2.call_site)))
        });
        HoldReport {
            holders: list.into_iter().take(limit).map(|(_, _, s)| s).collect(),
            not_kept: holders.not_kept,
        }
    }

    pub(crate) fn clear(&self) {
        *self.holders.lock().unwrap_or_else(|e| e.into_inner()) = Holders::default();
    }
}

/// A pair's first checkout: its route's name is looked up once.
#[cold]
fn new_holder(route: u32, site: &'static Location<'static>) -> Hold {
    Hold {
        route: super::routes::route_name(route),
        site,
        checkouts: 0,
        held_ns: 0,
        busy_ns: 0,
        max_held_ns: 0,
        max_idle_ns: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn here() -> &'static Location<'static> {
        Location::caller()
    }

    #[test]
    fn holds_split_into_statements_and_idle_the_most_idle_first() {
        let log = HoldLog::default();
        let ms = Duration::from_millis;
        let (a, b) = (here(), here());
        // Three holds of 250 ms with 50 ms of statements: 200 ms idle each.
        for _ in 0..3 {
            log.record(0, a, ms(250), ms(50));
        }
        // Busier, never idle; pipelined statements summing over the hold
        // are capped at it.
        log.record(0, b, ms(100), ms(100));
        log.record(0, b, ms(100), ms(300));
        let report = log.report(10);
        assert_eq!(report.holders.len(), 2);
        let first = &report.holders[0];
        assert_eq!(first.call_site, format!("{}:{}", a.file(), a.line()));
        assert_eq!(first.checkouts, 3);
        assert_eq!(first.held_ms_per_checkout, 250.0);
        assert_eq!(first.in_statements_ms_per_checkout, 50.0);
        assert_eq!(first.held_idle_ms_per_checkout, 200.0);
        assert_eq!(first.held_idle_share, 0.8);
        assert_eq!((first.max_held_ms, first.max_held_idle_ms), (250.0, 200.0));
        assert!((first.held_idle_seconds - 0.6).abs() < 1e-9);
        let second = &report.holders[1];
        assert_eq!(
            (second.held_idle_share, second.in_statements_ms_per_checkout),
            (0.0, 100.0)
        );
        assert_eq!(log.report(1).holders.len(), 1, "the limit");
        log.clear();
        assert!(log.report(10).holders.is_empty());
    }

    #[test]
    fn pairs_past_the_bound_are_counted_not_kept() {
        let log = HoldLog::default();
        let site = here();
        for route in 0..MAX_HOLDERS as u32 + 5 {
            log.record(route, site, Duration::from_millis(1), Duration::ZERO);
        }
        let report = log.report(usize::MAX);
        assert_eq!((report.holders.len(), report.not_kept), (MAX_HOLDERS, 5));
    }
}
