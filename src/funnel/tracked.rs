//! The custom source: operations timed by name with
//! [`DbMonitor::track`](crate::DbMonitor::track).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Histogram, Label};

use super::handles::Registry;
use crate::classify::ErrorKind;
use crate::names;

/// The `db_monitor_tracked_duration_seconds` handles of every tracked name.
pub(crate) struct Tracked {
    registry: Registry,
    names: papaya::HashMap<&'static str, Arc<TrackedMetrics>, foldhash::fast::RandomState>,
}

struct TrackedMetrics {
    ok: Histogram,
    failed: [OnceLock<Histogram>; ErrorKind::ALL.len()],
}

impl Tracked {
    pub(crate) fn new(registry: Registry) -> Self {
        Tracked {
            registry,
            names: papaya::HashMap::builder()
                .hasher(foldhash::fast::RandomState::default())
                .build(),
        }
    }

    /// Records one run of the operation `name`: `Ok` or failed with `kind`.
    pub(crate) fn record(&self, name: &'static str, elapsed: Duration, failed: Option<ErrorKind>) {
        let handles = self.handles(name);
        match failed {
            None => handles.ok.record(elapsed),
            Some(kind) => handles.failed[kind.index()]
                .get_or_init(|| {
                    self.registry.histogram(
                        names::TRACKED_DURATION,
                        vec![
                            Label::new(names::TRACKED_OPERATION, name),
                            Label::new(names::ERROR_TYPE, kind.as_str()),
                        ],
                    )
                })
                .record(elapsed),
        }
    }

    fn handles(&self, name: &'static str) -> Arc<TrackedMetrics> {
        let map = self.names.pin();
        if let Some(handles) = map.get(name) {
            return handles.clone();
        }
        map.get_or_insert_with(name, || {
            Arc::new(TrackedMetrics {
                ok: self.registry.histogram(
                    names::TRACKED_DURATION,
                    vec![Label::new(names::TRACKED_OPERATION, name)],
                ),
                failed: Default::default(),
            })
        })
        .clone()
    }
}
