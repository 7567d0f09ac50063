//! The objectives of the pool's routes: per declared route, its requests
//! per minute (all, over the latency bound, with a failed statement) for
//! the last 24 hours, and what they say: compliance, the error budget
//! left, and the burn rates over the windows of the multiwindow,
//! multi-burn-rate alerts (5 min, 30 min, 1 h, 6 h).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::config::Objective;

/// Minutes kept per route.
const MINUTES: usize = 24 * 60;

/// The windows the burn rates are read over, in minutes.
pub(crate) const BURN_WINDOWS: [u32; 4] = [5, 30, 60, 360];

/// One objective of one route, as its requests have met it: a part of
/// the `…/objectives` and performance documents.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ObjectiveStatus {
    /// The route.
    pub route: String,
    /// `latency` (database time under `bound_ms`) or `success` (no
    /// statement failed).
    pub objective: &'static str,
    /// The share of requests that should meet it (0.99).
    pub target: f64,
    /// The latency bound, in milliseconds (latency objectives).
    pub bound_ms: Option<f64>,
    /// The minutes counted (up to 1440; fewer for a young monitor or after
    /// a reset).
    pub window_minutes: u32,
    /// Requests in the window.
    pub requests: u64,
    /// Of them, those that missed the objective.
    pub bad: u64,
    /// The share that met it (absent without requests).
    pub compliance: Option<f64>,
    /// The share of the window's error budget left: 1 when no request
    /// missed, 0 when exactly the budget was spent, below 0 past it.
    pub budget_remaining: Option<f64>,
    /// The rate at which the error budget burns over each window (1: as
    /// fast as the target allows): 5 min, 30 min, 1 h and 6 h.
    pub burn_rates: BurnRates,
}

/// The burn rates of an objective over the alert windows (absent for a
/// window without requests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BurnRates {
    /// Over the last 5 minutes.
    pub five_minutes: Option<f64>,
    /// Over the last 30 minutes.
    pub thirty_minutes: Option<f64>,
    /// Over the last hour.
    pub one_hour: Option<f64>,
    /// Over the last 6 hours.
    pub six_hours: Option<f64>,
}

#[derive(Clone, Copy, Default)]
struct Minute {
    /// Minutes since the Unix epoch.
    at: u64,
    requests: u64,
    slow: u64,
    failed: u64,
}

struct Route {
    objective: Objective,
    minutes: Mutex<VecDeque<Minute>>,
}

/// The declared objectives and their counts.
pub(crate) struct ObjectiveBook {
    routes: Vec<Route>,
}

impl ObjectiveBook {
    /// Whether any route has an objective.
    pub(crate) fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    pub(crate) fn new(objectives: &[Objective]) -> Self {
        ObjectiveBook {
            routes: objectives
                .iter()
                .map(|objective| Route {
                    objective: objective.clone(),
                    minutes: Mutex::new(VecDeque::new()),
                })
                .collect(),
        }
    }

    /// Which objective `route` has, if any.
    #[inline]
    pub(crate) fn index(&self, route: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.objective.route == route)
    }

    /// Counts a request of objective `index` at `at` answered after
    /// `elapsed`, gone wrong (`failed`) or not; says whether it missed the
    /// latency bound (a failed request misses it too).
    pub(crate) fn record(&self, index: usize, at: SystemTime, elapsed: Duration, failed: bool) -> bool {
        let Some(route) = self.routes.get(index) else {
            return false;
        };
        // A request that went wrong was not answered well in time either.
        let slow = route
            .objective
            .latency
            .is_some_and(|(bound, _)| failed || elapsed >= bound);
        let minute = minute_of(at);
        let mut minutes = route.minutes.lock().unwrap_or_else(|e| e.into_inner());
        if minutes.back().is_none_or(|m| m.at < minute) {
            if minutes.len() == MINUTES {
                minutes.pop_front();
            }
            minutes.push_back(Minute {
                at: minute,
                ..Minute::default()
            });
        }
        // A clock that stepped back counts in the newest minute.
        if let Some(m) = minutes.back_mut() {
            m.requests += 1;
            m.slow += u64::from(slow);
            m.failed += u64::from(failed);
        }
        slow
    }

    /// Every objective's status at `now`.
    pub(crate) fn statuses(&self, now: SystemTime) -> Vec<ObjectiveStatus> {
        let now = minute_of(now);
        let mut statuses = Vec::new();
        for route in &self.routes {
            let minutes: Vec<Minute> = route
                .minutes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .copied()
                .collect();
            let o = &route.objective;
            let kinds = o
                .latency
                .map(|(bound, target)| ("latency", target, Some(bound)))
                .into_iter()
                .chain(o.success.map(|target| ("success", target, None)));
            for (objective, target, bound) in kinds {
                let bad = |m: &Minute| if bound.is_some() { m.slow } else { m.failed };
                let over = |window: u32| {
                    let from = now.saturating_sub(u64::from(window) - 1);
                    minutes
                        .iter()
                        .filter(|m| m.at >= from && m.at <= now)
                        .fold((0, 0), |(r, b), m| (r + m.requests, b + bad(m)))
                };
                let burn = |window: u32| {
                    let (requests, bad) = over(window);
                    (requests > 0).then(|| bad as f64 / requests as f64 / (1.0 - target))
                };
                let (requests, bad_requests) = over(MINUTES as u32);
                let window_minutes = minutes
                    .first()
                    .map_or(0, |m| (now.saturating_sub(m.at) + 1).min(MINUTES as u64) as u32);
                let compliance = (requests > 0).then(|| 1.0 - bad_requests as f64 / requests as f64);
                statuses.push(ObjectiveStatus {
                    route: o.route.clone(),
                    objective,
                    target,
                    bound_ms: bound.map(|b| b.as_secs_f64() * 1e3),
                    window_minutes,
                    requests,
                    bad: bad_requests,
                    compliance,
                    budget_remaining: compliance.map(|c| 1.0 - (1.0 - c) / (1.0 - target)),
                    burn_rates: BurnRates {
                        five_minutes: burn(BURN_WINDOWS[0]),
                        thirty_minutes: burn(BURN_WINDOWS[1]),
                        one_hour: burn(BURN_WINDOWS[2]),
                        six_hours: burn(BURN_WINDOWS[3]),
                    },
                });
            }
        }
        statuses
    }

    pub(crate) fn clear(&self) {
        for route in &self.routes {
            route.minutes.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
    }
}

fn minute_of(at: SystemTime) -> u64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book() -> ObjectiveBook {
        ObjectiveBook::new(&[
            Objective::route("GET /login")
                .latency(Duration::from_millis(50), 0.99)
                .success(0.999),
            Objective::route("GET /report").success(0.9),
        ])
    }

    fn at(minute: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(minute * 60 + 30)
    }

    #[test]
    fn requests_count_against_their_route_only() {
        let book = book();
        assert_eq!(book.index("GET /login"), Some(0));
        assert_eq!(book.index("GET /other"), None);
        let now = 1_000_000;
        for i in 0..100 {
            let slow = i < 3;
            let time = Duration::from_millis(if slow { 60 } else { 5 });
            assert_eq!(book.record(0, at(now), time, i == 0), slow);
        }
        let statuses = book.statuses(at(now));
        assert_eq!(statuses.len(), 3);
        let latency = &statuses[0];
        assert_eq!((latency.objective, latency.requests, latency.bad), ("latency", 100, 3));
        assert!((latency.compliance.unwrap() - 0.97).abs() < 1e-9);
        // 3 % bad against a 1 % budget: three budgets spent, two overdrawn.
        assert!((latency.budget_remaining.unwrap() + 2.0).abs() < 1e-9);
        assert!((latency.burn_rates.five_minutes.unwrap() - 3.0).abs() < 1e-9);
        let success = &statuses[1];
        assert_eq!((success.objective, success.bad), ("success", 1));
        assert!((success.burn_rates.one_hour.unwrap() - 10.0).abs() < 1e-6);
        let other = &statuses[2];
        assert_eq!(
            (other.route.as_str(), other.requests, other.compliance),
            ("GET /report", 0, None)
        );
        assert_eq!(other.burn_rates, BurnRates::default());
    }

    #[test]
    fn the_windows_see_only_their_minutes() {
        let book = book();
        let now = 1_000_000;
        // Two hours ago: all slow. Now: all quick.
        for _ in 0..10 {
            book.record(0, at(now - 120), Duration::from_secs(1), false);
        }
        for _ in 0..10 {
            book.record(0, at(now), Duration::ZERO, false);
        }
        let latency = &book.statuses(at(now))[0];
        assert_eq!(latency.burn_rates.five_minutes, Some(0.0));
        assert_eq!(latency.burn_rates.one_hour, Some(0.0));
        assert!((latency.burn_rates.six_hours.unwrap() - 50.0).abs() < 1e-6);
        assert_eq!(latency.window_minutes, 121);
        // A day later, nothing is left in any window.
        let later = &book.statuses(at(now + 2 * 24 * 60))[0];
        assert_eq!((later.requests, later.burn_rates.six_hours), (0, None));
    }

    #[test]
    fn a_day_of_minutes_is_kept_and_no_more() {
        let book = book();
        for minute in 0..(MINUTES as u64 + 100) {
            book.record(1, at(minute), Duration::ZERO, false);
        }
        assert_eq!(book.routes[1].minutes.lock().unwrap().len(), MINUTES);
        book.clear();
        assert_eq!(book.statuses(at(0))[2].requests, 0);
    }
}
