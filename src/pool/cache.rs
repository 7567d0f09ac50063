//! [`PreparedCache`]: one connection's prepared statements by text, for
//! `prepare_cached`, bounded, the least recently used evicted first.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_postgres::types::Type;

use super::statement::MonitoredStatement;

/// One connection's cached statements.
///
/// Behind a mutex that only this connection's holder takes (one task at a
/// time), so it is never contended; a hit takes it once and clones the
/// statement (two reference counts). Evicting a statement drops the cache's
/// clone: tokio-postgres closes it on the server once the last clone is
/// gone.
pub(crate) struct PreparedCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    /// By text; one text may be prepared with several parameter types.
    by_text: HashMap<Box<str>, Vec<Cached>>,
    len: usize,
    /// A use counter, for least-recently-used eviction.
    tick: u64,
}

struct Cached {
    types: Box<[Type]>,
    statement: MonitoredStatement,
    used: u64,
}

impl PreparedCache {
    /// A cache of at most `capacity` statements (`0`: nothing is kept).
    pub(crate) fn new(capacity: usize) -> Self {
        PreparedCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The statement prepared from `sql` with parameter `types`, if cached.
    pub(crate) fn get(&self, sql: &str, types: &[Type]) -> Option<MonitoredStatement> {
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        let cached = inner.by_text.get_mut(sql)?.iter_mut().find(|c| &*c.types == types)?;
        cached.used = tick;
        Some(cached.statement.clone())
    }

    /// Keeps `statement`, prepared from `sql` with `types`, evicting the
    /// least recently used statement when full.
    pub(crate) fn insert(&self, sql: &str, types: &[Type], statement: MonitoredStatement) {
        if self.capacity == 0 {
            return;
        }
        let mut inner = self.lock();
        inner.tick += 1;
        let tick = inner.tick;
        if let Some(cached) = inner
            .by_text
            .get_mut(sql)
            .and_then(|list| list.iter_mut().find(|c| &*c.types == types))
        {
            // Prepared twice at once (two futures on one client): keep one.
            cached.used = tick;
            return;
        }
        if inner.len >= self.capacity {
            inner.evict_oldest();
        }
        inner.by_text.entry(sql.into()).or_default().push(Cached {
            types: types.into(),
            statement,
            used: tick,
        });
        inner.len += 1;
    }

    /// Statements cached now.
    pub(crate) fn len(&self) -> usize {
        self.lock().len
    }

    /// Forgets the statement prepared from `sql` with `types`, and returns
    /// it.
    pub(crate) fn remove(&self, sql: &str, types: &[Type]) -> Option<MonitoredStatement> {
        let mut inner = self.lock();
        let list = inner.by_text.get_mut(sql)?;
        let at = list.iter().position(|c| &*c.types == types)?;
        let removed = list.swap_remove(at);
        if list.is_empty() {
            inner.by_text.remove(sql);
        }
        inner.len -= 1;
        Some(removed.statement)
    }

    /// Forgets every statement.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.by_text.clear();
        inner.len = 0;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Drops the least recently used statement (a scan: eviction is rare,
    /// and the cache small).
    fn evict_oldest(&mut self) {
        let oldest = self
            .by_text
            .iter()
            .flat_map(|(text, list)| list.iter().enumerate().map(move |(i, c)| (c.used, text, i)))
            .min_by_key(|(used, _, _)| *used)
            .map(|(_, text, i)| (text.clone(), i));
        let Some((text, i)) = oldest else { return };
        if let Some(list) = self.by_text.get_mut(&text) {
            list.swap_remove(i);
            if list.is_empty() {
                self.by_text.remove(&text);
            }
            self.len -= 1;
        }
    }
}

/// One connection's `prepare_cached` statements, under deadpool-postgres's
/// name and methods (`client.statement_cache.size()`, `.clear()`,
/// `.remove(query, types)`), so that code written for deadpool-postgres
/// keeps working on a monitored connection.
#[derive(Clone)]
pub struct StatementCache(pub(crate) Arc<PreparedCache>);

impl StatementCache {
    /// Statements cached now.
    pub fn size(&self) -> usize {
        self.0.len()
    }

    /// Forgets every statement (after a schema change, for example); each
    /// is closed on the server once no clone of it is left.
    pub fn clear(&self) {
        self.0.clear();
    }

    /// Forgets the statement prepared from `query` with parameter `types`
    /// (`&[]` for `prepare_cached`), and returns it.
    pub fn remove(&self, query: &str, types: &[Type]) -> Option<MonitoredStatement> {
        self.0.remove(query, types)
    }
}

impl std::fmt::Debug for StatementCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementCache").field("size", &self.size()).finish()
    }
}

/// Every live connection's [`StatementCache`] of one pool, under
/// deadpool-postgres's name (`pool.manager().statement_caches.clear()`).
#[derive(Clone, Default)]
pub struct StatementCaches(Arc<Mutex<Vec<std::sync::Weak<PreparedCache>>>>);

impl StatementCaches {
    #[cfg_attr(not(feature = "deadpool"), allow(dead_code))]
    pub(crate) fn attach(&self, cache: &Arc<PreparedCache>) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        list.retain(|c| c.strong_count() > 0);
        list.push(Arc::downgrade(cache));
    }

    fn each(&self, mut f: impl FnMut(&PreparedCache)) {
        let list: Vec<_> = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .collect();
        for cache in list {
            f(&cache);
        }
    }

    /// Empties every connection's cache.
    pub fn clear(&self) {
        self.each(PreparedCache::clear);
    }

    /// Forgets the statement prepared from `query` with `types` on every
    /// connection.
    pub fn remove(&self, query: &str, types: &[Type]) {
        self.each(|c| {
            c.remove(query, types);
        });
    }
}

impl std::fmt::Debug for StatementCaches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementCaches").finish_non_exhaustive()
    }
}
