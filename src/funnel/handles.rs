//! Registering metric handles: through the monitor's own recorder or the
//! global one, with the labels every series carries, and capped maps of
//! handles for label sets that are not known in advance.

use std::fmt;
use std::sync::{Arc, Mutex};

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};

use crate::names;

static METADATA: Metadata<'static> = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// Where handles are registered: the monitor's own recorder, or the
/// global one. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Registry {
    recorder: Option<Arc<dyn Recorder + Send + Sync>>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("own_recorder", &self.recorder.is_some())
            .finish()
    }
}

impl Registry {
    pub(crate) fn new(recorder: Option<Arc<dyn Recorder + Send + Sync>>) -> Self {
        Registry { recorder }
    }

    /// Whether handles go to a recorder of the monitor's own.
    pub(crate) fn has_own_recorder(&self) -> bool {
        self.recorder.is_some()
    }

    /// Runs `f` with the recorder handles are registered with.
    pub(crate) fn with_recorder<T>(&self, f: impl FnOnce(&dyn Recorder) -> T) -> T {
        match &self.recorder {
            Some(recorder) => f(recorder.as_ref()),
            None => metrics::with_recorder(f),
        }
    }

    pub(crate) fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        let key = Key::from_parts(name, labels);
        self.with_recorder(|r| r.register_counter(&key, &METADATA))
    }

    pub(crate) fn gauge(&self, name: &'static str, labels: Vec<Label>) -> Gauge {
        let key = Key::from_parts(name, labels);
        self.with_recorder(|r| r.register_gauge(&key, &METADATA))
    }

    pub(crate) fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        let key = Key::from_parts(name, labels);
        self.with_recorder(|r| r.register_histogram(&key, &METADATA))
    }
}

/// The labels every series of a pool carries.
pub(crate) fn base_labels(pool: &str) -> Vec<Label> {
    vec![
        Label::from_static_parts(names::DB_SYSTEM_NAME, "postgresql"),
        Label::new(names::POOL_NAME, pool.to_owned()),
    ]
}

/// A map from label sets to handles, built lazily and capped: past `cap`
/// distinct keys, new keys share the handle of `overflow_key`.
///
/// A key seen before is found without a lock (a concurrent map read); only
/// building a new handle takes one, so that the cap holds exactly.
pub(crate) struct CappedHandles<K, H> {
    map: papaya::HashMap<K, H, foldhash::fast::RandomState>,
    adding: Mutex<()>,
    cap: usize,
}

impl<K: std::hash::Hash + Eq + Clone + Send + Sync, H: Clone + Send + Sync> CappedHandles<K, H> {
    pub(crate) fn new(cap: usize) -> Self {
        CappedHandles {
            map: papaya::HashMap::builder().hasher(Default::default()).build(),
            adding: Mutex::new(()),
            cap,
        }
    }

    pub(crate) fn get(&self, key: K, overflow_key: K, make: impl FnOnce(&K) -> H) -> H {
        if let Some(h) = self.map.pin().get(&key) {
            return h.clone();
        }
        self.add(key, overflow_key, make)
    }

    #[cold]
    fn add(&self, key: K, overflow_key: K, make: impl FnOnce(&K) -> H) -> H {
        let _adding = self.adding.lock().unwrap_or_else(|e| e.into_inner());
        let map = self.map.pin();
        if let Some(h) = map.get(&key) {
            return h.clone();
        }
        let key = if map.len() >= self.cap { overflow_key } else { key };
        if let Some(h) = map.get(&key) {
            return h.clone();
        }
        let handle = make(&key);
        map.insert(key, handle.clone());
        handle
    }
}
