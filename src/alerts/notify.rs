//! Where alerts go: the [`Notifier`] trait, the default [`LogNotifier`],
//! closures, and `()` for nothing.

use crate::alert_kind::AlertSeverity;
use crate::stats::alert_book::AlertEvent;

/// Receives alert events.
///
/// Called from the pool's background task, one notifier after the other:
/// an implementation must return quickly and never block (queue the work,
/// as [`AlertmanagerNotifier`](crate::alerts::AlertmanagerNotifier) does).
/// A closure `Fn(AlertEvent<'_>)` is a notifier, and `()` is one that does
/// nothing.
pub trait Notifier: Send + Sync + 'static {
    /// Something happened to an alert.
    fn notify(&self, event: AlertEvent<'_>);
}

impl<F> Notifier for F
where
    F: Fn(AlertEvent<'_>) + Send + Sync + 'static,
{
    fn notify(&self, event: AlertEvent<'_>) {
        self(event)
    }
}

impl Notifier for () {
    fn notify(&self, _event: AlertEvent<'_>) {}
}

/// The default notifier: one `tracing` event per alert event, at `ERROR`
/// for critical and high alerts, `WARN` for medium and `INFO` for low, and
/// at `INFO` for resolutions. Target `db_monitor::alerts`.
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct LogNotifier;

impl Notifier for LogNotifier {
    fn notify(&self, event: AlertEvent<'_>) {
        let alert = event.alert();
        let what = match event {
            AlertEvent::Fired(_) => "fired",
            AlertEvent::Repeated(_) => "repeated",
            AlertEvent::Resolved(_) => {
                tracing::info!(
                    target: "db_monitor::alerts",
                    alert_id = %alert.id,
                    pool = %alert.pool,
                    alert_type = alert.alert_type.as_str(),
                    key = %alert.key,
                    occurrences = alert.occurrences,
                    resolved_by = alert.resolved_by.as_deref().unwrap_or(""),
                    "database alert resolved: {}",
                    alert.message
                );
                return;
            }
        };
        macro_rules! log {
            ($level:ident) => {
                tracing::$level!(
                    target: "db_monitor::alerts",
                    alert_id = %alert.id,
                    pool = %alert.pool,
                    alert_type = alert.alert_type.as_str(),
                    severity = alert.severity.as_str(),
                    key = %alert.key,
                    occurrences = alert.occurrences,
                    "database alert {what}: {}",
                    alert.message
                )
            };
        }
        match alert.severity {
            AlertSeverity::Critical | AlertSeverity::High => log!(error),
            AlertSeverity::Medium => log!(warn),
            AlertSeverity::Low => log!(info),
        }
    }
}
