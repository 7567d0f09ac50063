//! The pool trend: one sample a minute (or per health-check interval, if
//! shorter) in a bounded ring, each summing the second-by-second readings
//! of the checkout path's own counts taken since the one before, so that
//! a saturation of a few seconds between two samples is not missed.

use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use super::ring::Ring;
use crate::units::unix_ms;

/// The pool at one sample, and what happened since the previous one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PoolSample {
    /// When it was taken, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// bb8's `max_size`.
    pub max_size: u32,
    /// Connections open (or opening).
    pub size: u32,
    /// Idle connections.
    pub idle: u32,
    /// Connections checked out at the sample.
    pub in_use: u32,
    /// The most checkouts pending at once over the interval (read each
    /// second, and at the sample).
    pub waiters: u64,
    /// The mean of `in_use / max_size` over the interval, read each second
    /// (at the sample alone when no second was read, as without a
    /// background task).
    pub utilization: f64,
    /// Seconds of the interval in which checkouts were queued for a
    /// connection (every connection checked out and more pending).
    pub waiting_seconds: u32,
    /// Seconds read over the interval.
    pub seconds: u32,
    /// The most connections checked out at once since the previous sample,
    /// so that a spike between samples is not missed.
    pub peak_in_use: u32,
    /// `peak_in_use / max_size`.
    pub peak_utilization: f64,
    /// Checkouts that timed out since the previous sample.
    pub timeouts: u64,
    /// Time checkouts spent waiting since the previous sample, in milliseconds.
    pub wait_time_ms: f64,
}

/// The pool trend over a window ([`PoolMonitor::trend_report`](crate::PoolMonitor::trend_report)).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PoolTrendReport {
    /// The pool's name.
    pub pool: String,
    /// The window, in minutes (absent: every sample retained).
    pub window_minutes: Option<u32>,
    /// The time between the oldest sample in the window and now, in seconds.
    pub covered_seconds: f64,
    /// The highest `peak_utilization` of the samples.
    pub peak_utilization: f64,
    /// The mean `utilization` of the samples.
    pub average_utilization: f64,
    /// The most waiters at a sample.
    pub max_waiters: u64,
    /// Timeouts over the samples.
    pub timeouts: u64,
    /// Waiting over the samples, in milliseconds.
    pub wait_time_ms: f64,
    /// The samples, oldest first.
    pub samples: Vec<PoolSample>,
}

/// One reading of a pool's state, as the trend takes it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolReading {
    /// When it was taken.
    pub(crate) at: SystemTime,
    /// bb8's `max_size`.
    pub(crate) max_size: u32,
    /// Connections bb8 counts.
    pub(crate) size: u32,
    /// Idle connections.
    pub(crate) idle: u32,
    /// Connections checked out now.
    pub(crate) in_use: u32,
    /// Checkouts waiting.
    pub(crate) waiters: u64,
    /// The most checked out at once since the previous reading.
    pub(crate) peak_in_use: u32,
    /// bb8's cumulative checkout timeouts.
    pub(crate) timed_out_total: u64,
    /// bb8's cumulative checkout wait.
    pub(crate) wait_total: Duration,
}

/// The seconds read since the previous sample.
#[derive(Default)]
struct Seconds {
    count: u32,
    in_use_sum: u64,
    peak_in_use: u32,
    waiters: u64,
    queued: u32,
}

/// One second's reading of the pool's own counts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSecond {
    /// Connections checked out now.
    pub(crate) in_use: u32,
    /// The most checked out at once since the previous reading.
    pub(crate) peak_in_use: u32,
    /// Checkouts pending now.
    pub(crate) pending: u64,
    /// Of them, those queued for a connection (not in a ping).
    pub(crate) queued: u64,
}

/// The bounded trend of one pool.
pub(crate) struct PoolTrend {
    ring: Mutex<Ring<PoolSample>>,
    /// bb8's cumulative (timeouts, wait time) at the previous sample.
    previous: Mutex<(u64, Duration)>,
    seconds: Mutex<Seconds>,
}

impl PoolTrend {
    pub(crate) fn new(capacity: usize) -> Self {
        PoolTrend {
            ring: Mutex::new(Ring::new(capacity)),
            previous: Mutex::new((0, Duration::ZERO)),
            seconds: Mutex::new(Seconds::default()),
        }
    }

    /// Adds one second's reading to the next sample.
    pub(crate) fn second(&self, reading: PoolSecond) {
        let mut s = self.seconds.lock().unwrap_or_else(|e| e.into_inner());
        s.count += 1;
        s.in_use_sum += u64::from(reading.in_use);
        s.peak_in_use = s.peak_in_use.max(reading.peak_in_use).max(reading.in_use);
        s.waiters = s.waiters.max(reading.pending);
        s.queued += u32::from(reading.queued > 0);
    }

    /// Records a sample from bb8's state, the peak since the previous
    /// sample, and bb8's cumulative timeouts and wait time.
    pub(crate) fn sample(&self, reading: &PoolReading) {
        let PoolReading {
            at,
            max_size,
            size,
            idle,
            in_use,
            waiters,
            peak_in_use,
            timed_out_total,
            wait_total,
        } = *reading;
        let (timeouts, waited) = {
            let mut previous = self.previous.lock().unwrap_or_else(|e| e.into_inner());
            let delta = (
                timed_out_total.saturating_sub(previous.0),
                wait_total.saturating_sub(previous.1),
            );
            *previous = (timed_out_total, wait_total);
            delta
        };
        let ratio = |n: u32| {
            if max_size == 0 {
                0.0
            } else {
                f64::from(n) / f64::from(max_size)
            }
        };
        let seconds = std::mem::take(&mut *self.seconds.lock().unwrap_or_else(|e| e.into_inner()));
        let peak_in_use = peak_in_use.max(in_use).max(seconds.peak_in_use);
        let utilization = if seconds.count > 0 && max_size > 0 {
            seconds.in_use_sum as f64 / f64::from(seconds.count) / f64::from(max_size)
        } else {
            ratio(in_use)
        };
        let sample = PoolSample {
            at_unix_ms: unix_ms(at),
            max_size,
            size,
            idle,
            in_use,
            waiters: waiters.max(seconds.waiters),
            utilization,
            waiting_seconds: seconds.queued,
            seconds: seconds.count,
            peak_in_use,
            peak_utilization: ratio(peak_in_use),
            timeouts,
            wait_time_ms: waited.as_secs_f64() * 1e3,
        };
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
    }

    pub(crate) fn report(&self, pool: &str, now: SystemTime, minutes: Option<u32>) -> PoolTrendReport {
        let now_ms = unix_ms(now);
        let since = super::window_start(now, minutes);
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let samples: Vec<PoolSample> = ring
            .iter()
            .filter(|s| since.is_none_or(|t| s.at_unix_ms >= t))
            .cloned()
            .collect();
        let n = samples.len().max(1) as f64;
        PoolTrendReport {
            pool: pool.to_owned(),
            window_minutes: minutes,
            covered_seconds: samples
                .first()
                .map_or(0.0, |s| now_ms.saturating_sub(s.at_unix_ms) as f64 / 1e3),
            peak_utilization: samples.iter().map(|s| s.peak_utilization).fold(0.0, f64::max),
            average_utilization: samples.iter().map(|s| s.utilization).sum::<f64>() / n,
            max_waiters: samples.iter().map(|s| s.waiters).max().unwrap_or(0),
            timeouts: samples.iter().map(|s| s.timeouts).sum(),
            wait_time_ms: samples.iter().map(|s| s.wait_time_ms).sum(),
            samples,
        }
    }

    /// The newest sample, if any.
    pub(crate) fn latest(&self) -> Option<PoolSample> {
        self.ring
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .next_back()
            .cloned()
    }

    pub(crate) fn clear(&self) {
        self.ring.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *self.seconds.lock().unwrap_or_else(|e| e.into_inner()) = Seconds::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(3_000_000 + 60 * minute)
    }

    #[test]
    fn samples_carry_the_peak_and_the_interval_deltas() {
        let trend = PoolTrend::new(288);
        trend.sample(&PoolReading {
            at: at(0),
            max_size: 10,
            size: 4,
            idle: 3,
            in_use: 1,
            waiters: 0,
            peak_in_use: 1,
            timed_out_total: 0,
            wait_total: Duration::ZERO,
        });
        // A spike to 10 between samples, two timeouts, 1.5 s of waiting.
        trend.sample(&PoolReading {
            at: at(5),
            max_size: 10,
            size: 10,
            idle: 8,
            in_use: 2,
            waiters: 3,
            peak_in_use: 10,
            timed_out_total: 2,
            wait_total: Duration::from_millis(1500),
        });
        trend.sample(&PoolReading {
            at: at(10),
            max_size: 10,
            size: 10,
            idle: 9,
            in_use: 1,
            waiters: 0,
            peak_in_use: 0,
            timed_out_total: 2,
            wait_total: Duration::from_millis(1500),
        });
        let report = trend.report("p", at(10), None);
        let s = &report.samples[1];
        assert_eq!(
            (s.in_use, s.peak_in_use, s.timeouts, s.wait_time_ms),
            (2, 10, 2, 1500.0)
        );
        assert_eq!((s.utilization, s.peak_utilization), (0.2, 1.0));
        assert_eq!(
            report.samples[2].peak_in_use, 1,
            "the peak is never below the sample itself"
        );
        assert_eq!(
            (report.peak_utilization, report.max_waiters, report.timeouts),
            (1.0, 3, 2)
        );
        assert!((report.average_utilization - 0.4 / 3.0).abs() < 1e-12);
        assert_eq!(report.covered_seconds, 600.0);
        assert_eq!(trend.report("p", at(10), Some(5)).samples.len(), 2);
    }

    #[test]
    fn the_ring_is_bounded() {
        let trend = PoolTrend::new(3);
        for m in 0..10 {
            trend.sample(&PoolReading {
                at: at(m),
                max_size: 4,
                size: 4,
                idle: 4,
                in_use: 0,
                waiters: 0,
                peak_in_use: 0,
                timed_out_total: 0,
                wait_total: Duration::ZERO,
            });
        }
        let report = trend.report("p", at(10), None);
        assert_eq!(report.samples.len(), 3);
        assert_eq!(report.samples[0].at_unix_ms, crate::units::unix_ms(at(7)));
    }

    #[test]
    fn a_sample_sums_the_seconds_read_since_the_one_before() {
        let trend = PoolTrend::new(10);
        // A minute of 4 of 8 in use, with 10 s saturated and queued.
        for second in 0..60 {
            let saturated = (20..30).contains(&second);
            trend.second(PoolSecond {
                in_use: if saturated { 8 } else { 4 },
                peak_in_use: if saturated { 8 } else { 4 },
                pending: if saturated { 3 } else { 0 },
                queued: if saturated { 3 } else { 0 },
            });
        }
        // Read at the minute, the pool quiet again.
        trend.sample(&PoolReading {
            at: at(1),
            max_size: 8,
            size: 8,
            idle: 8,
            in_use: 0,
            waiters: 0,
            peak_in_use: 0,
            timed_out_total: 0,
            wait_total: Duration::ZERO,
        });
        let s = trend.latest().unwrap();
        assert_eq!((s.peak_in_use, s.peak_utilization), (8, 1.0));
        assert_eq!((s.waiters, s.waiting_seconds, s.seconds), (3, 10, 60));
        let mean = (50.0 * 4.0 + 10.0 * 8.0) / 60.0 / 8.0;
        assert!((s.utilization - mean).abs() < 1e-9, "{s:?}");
        // The next sample starts afresh.
        trend.sample(&PoolReading {
            at: at(2),
            max_size: 8,
            size: 8,
            idle: 8,
            in_use: 0,
            waiters: 0,
            peak_in_use: 0,
            timed_out_total: 0,
            wait_total: Duration::ZERO,
        });
        let s = trend.latest().unwrap();
        assert_eq!((s.peak_in_use, s.waiting_seconds, s.seconds), (0, 0, 0));
    }
}
