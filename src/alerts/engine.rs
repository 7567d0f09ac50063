//! The alert engine's side of a pool: reading the stores into the rules,
//! entering what they observe into the alert book, telling the listener
//! (the monitor's notifiers).

use std::sync::atomic::Ordering::Relaxed;
use std::time::SystemTime;

use super::rules;
use crate::funnel::Event;
use crate::pool::PoolMonitor;
use crate::stats::alert_book::{Alert, AlertEvent, Notice, Observation};

impl PoolMonitor {
    /// Empties this pool's stores: errors, slow queries, the trend, the
    /// recent statements, the N+1 patterns, the per-statement counts and
    /// the error-rate history. The metrics recorder's counters are never
    /// reset. The background task does this every
    /// [`metrics_reset_interval`](crate::MonitorConfig::metrics_reset_interval).
    ///
    /// What the alert engine has not read yet is handed to its rules
    /// first, so that a reset loses no alert.
    pub fn reset_stores(&self) {
        self.alert_events();
        self.sink().reset_stores();
    }

    /// Empties the error store only (errors and patterns; the error rates,
    /// which come from the statement counters, stay). As with
    /// [`reset_stores`](Self::reset_stores), the alert engine reads what it
    /// has not read yet first.
    pub fn reset_errors(&self) {
        self.alert_events();
        self.stores().errors.clear();
    }

    /// Resolves the active alert `id` by hand, recording `by` (who or what
    /// resolved it) and telling the notifiers. `None` when no active alert
    /// has that id (an unknown id, or one resolved already).
    pub fn resolve_alert(&self, id: &str, by: &str) -> Option<Alert> {
        let notice = self.stores().alerts.resolve(id, by, SystemTime::now())?;
        let alert = match &notice {
            Notice::Resolved(alert) => alert.clone(),
            Notice::Fired(alert) | Notice::Repeated(alert) => alert.clone(),
        };
        self.deliver(vec![notice]);
        Some(alert)
    }

    /// Applies every rule now: the event rules to what the stores recorded
    /// since the last evaluation, then the condition rules (degradation
    /// included) and the expiries. The background task does this on its own
    /// ([`crate::alerts`], "When rules are evaluated"); call it to evaluate
    /// a pool without one, or at a moment of your choosing.
    pub fn evaluate_alerts(&self) {
        self.alert_events();
        self.alert_conditions(true);
    }

    /// The event rules, over the stores' records since the last reading.
    pub(crate) fn alert_events(&self) {
        let book = &self.stores().alerts;
        let _evaluating = book.evaluating();
        let (errors_seq, slow_seq) = book.cursors();
        let errors = self.stores().errors.since(errors_seq);
        let slow = self.stores().slow.since(slow_seq);
        book.advance(errors.next, slow.next);
        if errors.missed + slow.missed > 0 {
            tracing::debug!(
                pool = %self.shared.name(),
                errors = errors.missed,
                slow = slow.missed,
                "records went past the stores before the alert engine read them"
            );
        }
        let mut observations = rules::fold(
            errors
                .items
                .iter()
                .filter_map(rules::from_error)
                .chain(slow.items.iter().map(rules::from_slow)),
        );
        observations.extend(self.connection_streak());
        self.apply(observations, Vec::new());
    }

    /// The condition rules (the degradation rule too when `degradation`)
    /// and the expiries.
    pub(crate) fn alert_conditions(&self, degradation: bool) {
        let t = &self.sink().config.alerts;
        let _evaluating = self.stores().alerts.evaluating();
        let mut observations = rules::error_rates(&self.error_rates(), t);
        let state = self.source.status();
        // A sample speaks for its whole interval: until the next one, the
        // latest sample keeps its verdict (so that a full pool seen at a
        // sample does not resolve between samples).
        let interval = self.sink().config.health_check_interval.min(crate::units::TREND_EVERY);
        let latest = self.stores().trend.latest().filter(|s| {
            let age_ms = crate::units::unix_ms(SystemTime::now()).saturating_sub(s.at_unix_ms);
            u128::from(age_ms) <= interval.as_millis() + 1000
        });
        observations.extend(rules::utilization(
            self.shared.max_size.load(Relaxed),
            self.shared.in_use.load(Relaxed),
            state.pending,
            latest.as_ref(),
            t,
        ));
        observations.extend(self.held_idle());
        observations.extend(self.connection_streak());
        // The server view's rules, over a sample no older than three of its
        // intervals (a poller that stopped sampling clears them).
        if let Some(view) = &self.sink().config.server_view {
            if let Some(sample) = self.stores().server.latest().sample {
                let age_ms = crate::units::unix_ms(SystemTime::now()).saturating_sub(sample.at_unix_ms);
                if u128::from(age_ms) <= view.interval.as_millis() * 3 + 1000 {
                    observations.extend(rules::server(&sample, t));
                }
            }
        }
        if degradation {
            observations.extend(rules::degradations(&self.query_performance(5, 0).degraded));
        }
        // The forecast, over a sample no older than three of its intervals.
        let stores = &self.sink().stores;
        if let Some(forecast) = stores.forecast.forecast() {
            let age_ms = crate::units::unix_ms(SystemTime::now()).saturating_sub(forecast.sampled_unix_ms);
            if u128::from(age_ms) <= t.forecast.interval.as_millis() * 3 + 1000 {
                observations.extend(rules::forecast(self.shared.name(), &forecast));
            }
        }
        observations.extend(rules::anomalies(&stores.forecast.anomalies()));
        observations.extend(rules::objectives(&stores.objectives.statuses(SystemTime::now())));
        let swept = self
            .stores()
            .alerts
            .sweep(tokio::time::Instant::now(), SystemTime::now(), t);
        self.apply(observations, swept);
    }

    /// The held-idle rule over the checked-out connections now, read only
    /// while checkouts queue.
    fn held_idle(&self) -> Option<Observation> {
        let queued = self.load().queued;
        if queued == 0 {
            return None;
        }
        let now = crate::units::saturating_nanos(crate::units::now().saturating_duration_since(self.shared.epoch));
        let held: Vec<rules::HeldConnection> = self
            .shared
            .live_connections()
            .iter()
            .filter_map(|c| {
                // Nanoseconds since the pool's epoch, plus one (0: idle).
                let since = c.checked_out.load(Relaxed).checked_sub(1)?;
                let quiet_since = since.max(c.last_end.load(Relaxed));
                let holder = c.holder();
                Some(rules::HeldConnection {
                    route: holder.route,
                    site: holder.site,
                    running: c.running().is_some(),
                    idle_for: std::time::Duration::from_nanos(now.saturating_sub(quiet_since)),
                })
            })
            .collect();
        rules::held_idle(queued, &held, &self.sink().config.alerts)
    }

    fn connection_streak(&self) -> Option<Observation> {
        let peak = self.stores().alerts.take_streak_peak();
        let last = self.shared.last_connect_error();
        rules::connection_streak(peak, last.as_deref(), &self.sink().config.alerts)
    }

    /// Enters `observations` into the book and tells the notifiers about
    /// them and about `notices` already made.
    fn apply(&self, observations: Vec<Observation>, mut notices: Vec<Notice>) {
        let now = tokio::time::Instant::now();
        let wall = SystemTime::now();
        let t = &self.sink().config.alerts;
        for observation in observations {
            notices.extend(
                self.stores()
                    .alerts
                    .observe(&self.sink().name, observation, now, wall, t),
            );
        }
        self.deliver(notices);
    }

    fn deliver(&self, notices: Vec<Notice>) {
        let listener = &self.sink().listener;
        for notice in &notices {
            listener(match notice {
                Notice::Fired(alert) => AlertEvent::Fired(alert),
                Notice::Repeated(alert) => AlertEvent::Repeated(alert),
                Notice::Resolved(alert) => AlertEvent::Resolved(alert),
            });
        }
        self.shared.record(Event::AlertsChanged);
    }
}
