//! Units shared by every floor: wall times as milliseconds since the Unix
//! epoch, durations as milliseconds, fingerprints as 16 hexadecimal
//! digits, and the serde helpers that write them so.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn ser_unix_ms<S: serde::Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(unix_ms(*at))
}

/// A duration in milliseconds, fractional.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub(crate) fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(ms(*d))
}

pub(crate) fn ser_opt_ms<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_some(&ms(*d)),
        None => s.serialize_none(),
    }
}

pub(crate) fn ser_hex<S: serde::Serializer>(fingerprint: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex(*fingerprint))
}

pub(crate) fn ser_opt_hex<S: serde::Serializer>(fingerprint: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
    match fingerprint {
        Some(fp) => ser_hex(fp, s),
        None => s.serialize_none(),
    }
}

/// A fingerprint as shown in snapshots.
pub(crate) fn hex(fingerprint: u64) -> String {
    format!("{fingerprint:016x}")
}

/// A `Duration` from a nanosecond counter.
pub(crate) fn nanos(n: u64) -> Duration {
    Duration::from_nanos(n)
}

/// `d` in nanoseconds, saturating at `u64::MAX`.
pub(crate) fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// The statement clock now: quanta's clock (the TSC where it is usable),
/// read directly rather than through `quanta::Instant::now`, which first
/// looks for a per-thread mock clock. Instants of the statement clock are
/// only compared with each other.
#[inline]
pub(crate) fn now() -> quanta::Instant {
    static CLOCK: OnceLock<quanta::Clock> = OnceLock::new();
    CLOCK.get_or_init(quanta::Clock::new).now()
}

/// The longest between two pool trend samples, whatever the
/// `health_check_interval`: a pool chart of five-minute points hides a
/// saturation of a minute.
pub(crate) const TREND_EVERY: Duration = Duration::from_secs(60);

/// `at` in nanoseconds on a process-wide scale on which instants from any
/// pool compare: from the first call, offset by 2^62 ns (146 years) so
/// that instants read before it compare too.
#[inline]
pub(crate) fn since_start(at: quanta::Instant) -> u64 {
    const ORIGIN: u64 = 1 << 62;
    static START: OnceLock<quanta::Instant> = OnceLock::new();
    let start = *START.get_or_init(now);
    if at >= start {
        ORIGIN.saturating_add(saturating_nanos(at.saturating_duration_since(start)))
    } else {
        ORIGIN.saturating_sub(saturating_nanos(start.saturating_duration_since(at)))
    }
}

/// A Tokio interval whose late ticks are delayed, not bunched: a tick
/// that runs longer than the period delays the next, and no burst follows.
pub(crate) fn ticks(period: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}
