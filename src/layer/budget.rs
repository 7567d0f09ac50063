//! The share of bandwidth the layer's documents may take: a token bucket of
//! bytes that may go into debt by one answer, so that an answer larger than
//! a second's worth is still served, and the average stays at the rate.
//!
//! Every check is made with the charge in one step under the bucket's lock
//! ([`take`](Budget::take)), or, for a document being computed, by the one
//! computation that may run at a time, before it starts, and the document
//! is paid for when it is made, whether or not its requester still waits
//! (see the layer's `cache` module): so concurrent requests cannot all pass
//! one check, and requests dropped mid-way still spend.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second for the reading routes' documents and `/metrics`.
#[derive(Debug)]
pub(crate) struct Budget {
    /// Bytes per second; `None`: no limit.
    rate: Option<f64>,
    /// The tokens (bytes) left, at most a second's worth, and when they
    /// were counted.
    state: Mutex<(f64, Instant)>,
}

impl Budget {
    /// A bucket of `bytes_per_second` (`Some(0)` is taken as 1: the
    /// routes answer 429 nearly always, rather than never or dividing by
    /// zero).
    pub(crate) fn new(bytes_per_second: Option<u64>) -> Self {
        let rate = bytes_per_second.map(|r| r.max(1) as f64);
        Budget {
            rate,
            state: Mutex::new((rate.unwrap_or(0.0), Instant::now())),
        }
    }

    /// Whether an answer may be sent now (the bucket is not in debt).
    pub(crate) fn open(&self) -> bool {
        self.refill(Instant::now()) > 0.0
    }

    /// Counts `bytes` sent if the bucket is not in debt, in one step;
    /// whether they may be sent.
    pub(crate) fn take(&self, bytes: usize) -> bool {
        let Some(rate) = self.rate else { return true };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let open = Self::refill_locked(&mut state, rate, Instant::now()) > 0.0;
        if open {
            state.0 -= bytes as f64;
        }
        open
    }

    /// Counts `bytes` made or sent.
    pub(crate) fn spend(&self, bytes: usize) {
        if self.rate.is_some() {
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            state.0 -= bytes as f64;
        }
    }

    /// The tokens now, after adding what the time since the last count
    /// earned (at most a second's worth).
    pub(super) fn refill(&self, now: Instant) -> f64 {
        let Some(rate) = self.rate else { return f64::INFINITY };
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        Self::refill_locked(&mut state, rate, now)
    }

    fn refill_locked(state: &mut (f64, Instant), rate: f64, now: Instant) -> f64 {
        let earned = now.saturating_duration_since(state.1).as_secs_f64() * rate;
        state.0 = (state.0 + earned).min(rate);
        state.1 = now;
        state.0
    }

    /// How long until the bucket is out of debt (for `Retry-After`), from
    /// a second to a day.
    pub(crate) fn retry_after(&self) -> Duration {
        let Some(rate) = self.rate else { return Duration::ZERO };
        let debt = -self.refill(Instant::now()).min(0.0);
        let day = Duration::from_secs(24 * 3600);
        Duration::try_from_secs_f64(debt / rate)
            .unwrap_or(day)
            .clamp(Duration::from_secs(1), day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_stop_once_a_seconds_worth_is_spent_and_resume_as_the_rate_earns() {
        let budget = Budget::new(Some(1000));
        let start = Instant::now();
        assert!(budget.open());
        budget.spend(600);
        assert!(budget.open(), "400 bytes left");
        budget.spend(3000);
        assert!(
            !budget.open(),
            "in debt: an answer larger than a second's worth was still served"
        );
        assert!(budget.retry_after() >= Duration::from_secs(2));
        // 2.6 s later the debt of 2,600 bytes is paid.
        let later = start + Duration::from_millis(2700);
        assert!(budget.refill(later) > 0.0);
    }

    #[test]
    fn a_zero_rate_refuses_instead_of_dividing_by_zero() {
        let budget = Budget::new(Some(0));
        assert!(budget.take(10), "the first second's one byte");
        assert!(!budget.take(10));
        assert!(!budget.open());
        let wait = budget.retry_after();
        assert!((Duration::from_secs(1)..=Duration::from_secs(24 * 3600)).contains(&wait));
    }

    #[test]
    fn take_checks_and_charges_in_one_step() {
        let budget = Budget::new(Some(1000));
        assert!(budget.take(900));
        assert!(budget.take(900), "100 bytes were left: into debt by one answer");
        assert!(!budget.take(1), "in debt: refused, and nothing charged");
        assert!(budget.retry_after() >= Duration::from_secs(1));
    }

    #[test]
    fn without_a_rate_everything_passes() {
        let budget = Budget::new(None);
        budget.spend(usize::MAX);
        assert!(budget.open());
        assert!(budget.take(usize::MAX));
        assert_eq!(budget.retry_after(), Duration::ZERO);
    }
}
