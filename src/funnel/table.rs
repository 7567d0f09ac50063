//! The statement table: statement text → entry (with a per-thread cache in
//! front), fingerprint → entry, and the metric handles of each
//! `db_query_summary`. An entry holds what the lexer found, its handles,
//! its counters and its per-minute history.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use metrics::{Counter, Histogram, Label};

use super::handles::{CappedHandles, Registry};
use crate::classify::{ErrorKind, SqlStateCode};
use crate::config::MonitorConfig;
use crate::names;
use crate::sql::{self, Operation};
use crate::stats::counters::QueryCounters;
use crate::stats::{StatementHistory, Totals};

/// Texts longer than this are not cached by text (they are fingerprinted on
/// each run instead), so that the cache's memory stays bounded.
const MAX_CACHED_TEXT: usize = 8 * 1024;

/// The bytes of text a pool's statement cache keeps at most. The texts are
/// raw (literals included): they are kept only to find their entries
/// again, and forgotten at every store reset.
const MAX_CACHED_BYTES: usize = 4 << 20;

/// Failure histograms one summary keeps (by error type and SQLSTATE);
/// past it, failures of a new pair are labelled with the code `other`.
const MAX_FAILURE_LABELS: usize = 16;

/// Metric handles for one `db_query_summary`, shared by the fingerprints
/// that have the same summary.
pub(crate) struct SummaryMetrics {
    /// The statement labels: the pool's and the database's, and the summary.
    labels: Vec<Label>,
    /// The crate's own labels: the pool's and the summary.
    short: Vec<Label>,
    pub(crate) ok: Histogram,
    /// `db_client_response_returned_rows`, unless the configuration leaves
    /// it out.
    pub(crate) rows: Option<Histogram>,
    failed: CappedHandles<(ErrorKind, Option<SqlStateCode>), Histogram>,
    pub(crate) slow: Counter,
    pub(crate) cancelled: Counter,
    n_plus_one: OnceLock<Counter>,
}

impl SummaryMetrics {
    /// `base`: the pool's labels; `target`: the database's
    /// (`db_namespace`, `server_address`, `server_port`).
    fn new(m: &Registry, base: &[Label], target: &[Label], summary: &str, rows: bool) -> Self {
        let mut short = base.to_vec();
        short.push(Label::new(names::QUERY_SUMMARY, summary.to_owned()));
        let mut labels = short.clone();
        labels.extend_from_slice(target);
        SummaryMetrics {
            ok: m.histogram(names::OPERATION_DURATION, labels.clone()),
            rows: rows.then(|| m.histogram(names::RETURNED_ROWS, labels.clone())),
            failed: CappedHandles::new(MAX_FAILURE_LABELS),
            slow: m.counter(names::SLOW_QUERIES, short.clone()),
            cancelled: m.counter(names::OPERATIONS_CANCELLED, short.clone()),
            n_plus_one: OnceLock::new(),
            labels,
            short,
        }
    }

    /// The N+1 counter, registered on the first pattern.
    pub(crate) fn n_plus_one(&self, m: &Registry) -> &Counter {
        self.n_plus_one
            .get_or_init(|| m.counter(names::N_PLUS_ONE, self.short.clone()))
    }

    /// The failure histogram for `kind` and the SQLSTATE `code` (none for
    /// a failure without one), registered on the first such failure.
    pub(crate) fn failed(
        &self,
        kind: ErrorKind,
        code: Option<&str>,
        register: impl FnOnce(Vec<Label>) -> Histogram,
    ) -> Histogram {
        let code = code.map(|c| SqlStateCode::new(c).unwrap_or(SqlStateCode::OTHER));
        let overflow = (kind, Some(SqlStateCode::OTHER));
        self.failed.get((kind, code), overflow, |(kind, code)| {
            let mut labels = self.labels.clone();
            labels.push(Label::new(names::ERROR_TYPE, kind.as_str()));
            if let Some(code) = code {
                labels.push(Label::new(names::RESPONSE_STATUS_CODE, code.as_str().to_owned()));
            }
            register(labels)
        })
    }
}

/// One normalized statement: what the lexer found, its metric handles and
/// its counters.
pub(crate) struct QueryEntry {
    pub(crate) fingerprint: u64,
    pub(crate) normalized: Arc<str>,
    /// The text spans show as `db.query.text`: parameters as written,
    /// literals as `?`.
    pub(crate) text: Box<str>,
    pub(crate) operation: Operation,
    pub(crate) table: Option<Box<str>>,
    /// `SELECT orders`: the operations and tables in the order written
    /// (`db.query.summary`), as the spans name it and the metrics label it.
    pub(crate) summary: Box<str>,
    pub(crate) metrics: Arc<SummaryMetrics>,
    pub(crate) stats: QueryCounters,
    /// Per-minute slots for the windowed reports.
    pub(crate) history: StatementHistory,
    /// Its slow threshold: its own if one is set
    /// ([`MonitorConfig::slow_statement`]), else the pool's.
    pub(crate) slow: Duration,
}

/// Per pool: statement text → entry (bounded cache), fingerprint → entry
/// (bounded, the rest in `other`), summary → metric handles (bounded).
///
/// In front of the shared text map, each thread keeps a small direct-mapped
/// cache of the texts it ran last ([`L1`]): a hit there costs one hash and
/// one comparison, with no atomic operation. The shared map (lock-free
/// reads) answers the misses.
pub(crate) struct QueryTable {
    /// Distinguishes this table (and its texts since the last reset) in
    /// the per-thread caches.
    id: AtomicU64,
    texts: papaya::HashMap<Arc<str>, Arc<QueryEntry>, foldhash::fast::RandomState>,
    /// The bytes of the texts in `texts`.
    text_bytes: AtomicUsize,
    fingerprints: papaya::HashMap<u64, Arc<QueryEntry>, foldhash::fast::RandomState>,
    summaries: CappedHandles<Box<str>, Arc<SummaryMetrics>>,
    other: Arc<QueryEntry>,
    registry: Registry,
    base: Vec<Label>,
    target: Vec<Label>,
    /// Whether the summaries get a rows histogram.
    returned_rows: bool,
    max_texts: usize,
    max_fingerprints: usize,
    slow: Duration,
    slow_statements: std::collections::BTreeMap<u64, Duration>,
    /// The length of a history slot.
    slot: std::time::Duration,
}

/// The fingerprint reported for statements counted in the `other` entry.
pub(crate) const OTHER_FINGERPRINT: u64 = 0;

/// Slots of the per-thread statement cache (a power of two).
const L1_SLOTS: usize = 128;

/// One slot of the per-thread cache: a text of one table and its entry.
///
/// A slot keeps its entry (and so the entry's metric handles) alive until
/// it is overwritten, even after its pool is gone: at most `L1_SLOTS`
/// entries per thread.
struct L1Slot {
    table: u64,
    hash: u64,
    text: Arc<str>,
    entry: Arc<QueryEntry>,
}

/// The per-thread cache's hash of a statement text: its length and three
/// of its 8-byte words (first, middle, last), mixed. It only picks a slot
/// (a hit compares the whole text), so it need not see every byte, and it
/// costs the same for a long text as for a short one.
#[inline]
fn l1_hash(sql: &str) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let bytes = sql.as_bytes();
    let n = bytes.len();
    let word = |b: &[u8]| b.first_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w));
    let (first, middle, last) = if n >= 8 {
        (
            word(bytes),
            word(&bytes[n / 2 - 4..]),
            bytes.last_chunk::<8>().map_or(0, |w| u64::from_le_bytes(*w)),
        )
    } else {
        // Short texts: their bytes, zero-padded.
        let mut w = [0u8; 8];
        w[..n].copy_from_slice(bytes);
        (u64::from_le_bytes(w), 0, 0)
    };
    let mut h = (n as u64 ^ first).wrapping_mul(K);
    h = (h.rotate_left(29) ^ middle).wrapping_mul(K);
    h = (h.rotate_left(29) ^ last).wrapping_mul(K);
    h ^ (h >> 32)
}

thread_local! {
    static L1: RefCell<[Option<L1Slot>; L1_SLOTS]> = const { RefCell::new([const { None }; L1_SLOTS]) };
}

static NEXT_TABLE_ID: AtomicU64 = AtomicU64::new(1);

impl QueryTable {
    /// `base`: the labels of every series of the pool; `target`: the
    /// database's, which the statement histograms carry as well.
    pub(crate) fn new(registry: &Registry, config: &MonitorConfig, base: &[Label], target: &[Label]) -> Self {
        let summaries = CappedHandles::new(config.max_query_summaries.max(1));
        let other: Box<str> = Operation::Other.as_str().into();
        let other_metrics = summaries.get(other.clone(), other, |summary| {
            Arc::new(SummaryMetrics::new(
                registry,
                base,
                target,
                summary,
                config.returned_rows,
            ))
        });
        QueryTable {
            id: AtomicU64::new(NEXT_TABLE_ID.fetch_add(1, Relaxed)),
            texts: papaya::HashMap::builder().hasher(Default::default()).build(),
            text_bytes: AtomicUsize::new(0),
            fingerprints: papaya::HashMap::builder().hasher(Default::default()).build(),
            summaries,
            other: Arc::new(QueryEntry {
                fingerprint: OTHER_FINGERPRINT,
                normalized: "other".into(),
                text: "other".into(),
                operation: Operation::Other,
                table: None,
                summary: Operation::Other.as_str().into(),
                metrics: other_metrics,
                stats: QueryCounters::default(),
                history: Default::default(),
                slow: config.slow_query_threshold,
            }),
            registry: registry.clone(),
            base: base.to_vec(),
            target: target.to_vec(),
            returned_rows: config.returned_rows,
            max_texts: config.statement_cache_size,
            max_fingerprints: config.max_fingerprints,
            slow: config.slow_query_threshold,
            slow_statements: config.slow_statements.clone(),
            slot: config.slot,
        }
    }

    /// Runs `f` with the entry of `sql`.
    ///
    /// A hit in this thread's cache is one hash and one comparison; then
    /// the shared map (lock-free); a text seen for the first time is lexed
    /// (once per distinct text while the shared map has room, on every run
    /// past it).
    #[inline]
    pub(crate) fn with_entry<R>(&self, sql: &str, f: impl FnOnce(&QueryEntry) -> R) -> R {
        let hash = l1_hash(sql);
        let slot = (hash as usize) & (L1_SLOTS - 1);
        // Read once: a slot filled across a reset carries the old id.
        let id = self.id.load(Relaxed);
        let mut f = Some(f);
        let hit = L1.try_with(|cache| {
            let cache = cache.try_borrow().ok()?;
            let s = cache[slot].as_ref()?;
            if s.table == id && s.hash == hash && *s.text == *sql {
                f.take().map(|f| f(&s.entry))
            } else {
                None
            }
        });
        if let Ok(Some(result)) = hit {
            return result;
        }
        let (text, entry) = self.shared_lookup(sql);
        if let Some(text) = text {
            let filled = L1Slot {
                table: id,
                hash,
                text,
                entry: entry.clone(),
            };
            let _ = L1.try_with(|cache| {
                if let Ok(mut cache) = cache.try_borrow_mut() {
                    cache[slot] = Some(filled);
                }
            });
        }
        match f {
            Some(f) => f(&entry),
            // `f` is only taken by a hit, which returned above.
            None => unreachable!("statement cache hit without a result"),
        }
    }

    /// The entry of `sql`, owned (for what outlives one call).
    pub(crate) fn entry(&self, sql: &str) -> Arc<QueryEntry> {
        self.shared_lookup(sql).1
    }

    /// The entry of `sql` from the shared map, with the map's own copy of
    /// the text when the text is (now) cached there.
    fn shared_lookup(&self, sql: &str) -> (Option<Arc<str>>, Arc<QueryEntry>) {
        if let Some((text, entry)) = self.texts.pin().get_key_value(sql) {
            return (Some(text.clone()), entry.clone());
        }
        self.miss(sql)
    }

    /// A text not in the shared map: find its entry by fingerprint, and
    /// cache the text while there is room.
    #[cold]
    fn miss(&self, sql: &str) -> (Option<Arc<str>>, Arc<QueryEntry>) {
        let entry = self.resolve(sql);
        let texts = self.texts.pin();
        let room = texts.len() < self.max_texts
            && sql.len() <= MAX_CACHED_TEXT
            && self.text_bytes.load(Relaxed) + sql.len() <= MAX_CACHED_BYTES;
        if room {
            self.text_bytes.fetch_add(sql.len(), Relaxed);
            let text: Arc<str> = Arc::from(sql);
            texts.insert(text.clone(), entry.clone());
            return (Some(text), entry);
        }
        (None, entry)
    }

    /// The entry of `sql` by fingerprint, creating it if there is room.
    fn resolve(&self, sql: &str) -> Arc<QueryEntry> {
        let fp = sql::fingerprint(sql);
        let fingerprints = self.fingerprints.pin();
        if let Some(entry) = fingerprints.get(&fp) {
            return entry.clone();
        }
        if fingerprints.len() >= self.max_fingerprints {
            return self.other.clone();
        }
        let analysis = sql::analyze(sql);
        let summary = analysis.summary.into_boxed_str();
        let metrics = self.summary(summary.clone());
        let entry = Arc::new(QueryEntry {
            fingerprint: fp,
            normalized: Arc::from(analysis.normalized),
            text: analysis.text.into_boxed_str(),
            operation: analysis.operation,
            summary,
            table: analysis.table.map(String::into_boxed_str),
            metrics,
            stats: QueryCounters::default(),
            history: Default::default(),
            slow: self.slow_statements.get(&fp).copied().unwrap_or(self.slow),
        });
        fingerprints.get_or_insert(fp, entry).clone()
    }

    /// The handles of one summary; past the cap, summaries share the
    /// handles of `OTHER` (the `other` entry's).
    fn summary(&self, summary: Box<str>) -> Arc<SummaryMetrics> {
        let other = Operation::Other.as_str().into();
        self.summaries.get(summary, other, |summary| {
            Arc::new(SummaryMetrics::new(
                &self.registry,
                &self.base,
                &self.target,
                summary,
                self.returned_rows,
            ))
        })
    }

    /// Forgets every cached text (the entries stay): the per-thread caches
    /// stop answering for the old texts at once, as they go by the table's
    /// id, which changes.
    pub(crate) fn forget_texts(&self) {
        self.id.store(NEXT_TABLE_ID.fetch_add(1, Relaxed), Relaxed);
        self.texts.pin().clear();
        self.text_bytes.store(0, Relaxed);
    }

    /// The cached texts and their bytes.
    #[cfg(test)]
    fn cached(&self) -> (usize, usize) {
        (self.texts.pin().len(), self.text_bytes.load(Relaxed))
    }

    /// Zeroes every statement's counters and history (entries and their
    /// metric handles stay).
    pub(crate) fn reset_counts(&self) {
        let now = std::time::Instant::now();
        for entry in self.entries() {
            entry.stats.reset();
            entry.history.reset(now);
        }
    }

    /// Takes the per-slot (per-minute) snapshot of every statement that is
    /// due one.
    pub(crate) fn snapshot_minute(&self, now: std::time::Instant) {
        for entry in self.entries() {
            entry.history.snapshot(now, self.slot, || entry.stats.cumulative(true));
        }
    }

    /// The pool's cumulative statement totals (since creation or reset).
    pub(crate) fn totals(&self) -> Totals {
        let mut all = Totals::default();
        let fingerprints = self.fingerprints.pin();
        for entry in fingerprints.values().chain(std::iter::once(&self.other)) {
            let t = entry.stats.totals();
            all.statements += t.calls;
            all.errors += t.errors;
            all.busy_ns += t.total_ns;
        }
        all
    }

    /// The entry of a fingerprint.
    pub(crate) fn by_fingerprint(&self, fingerprint: u64) -> Option<Arc<QueryEntry>> {
        self.fingerprints.pin().get(&fingerprint).cloned()
    }

    /// Every entry, `other` last if it was used.
    pub(crate) fn entries(&self) -> Vec<Arc<QueryEntry>> {
        let mut all: Vec<_> = self.fingerprints.pin().values().cloned().collect();
        if self.other.stats.totals().calls > 0 {
            all.push(self.other.clone());
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_cache_is_bounded_by_bytes_and_forgotten_at_a_reset() {
        let config = MonitorConfig::default().statement_cache_size(1_000_000);
        let table = QueryTable::new(&Registry::default(), &config, &[], &[]);
        // 8 KiB texts, each with a literal of its own: past 4 MiB, no more.
        let padding = "x".repeat(8 * 1024 - 64);
        for i in 0..1_000 {
            let sql = format!("SELECT '{padding}' AS literal_{i}, 'secret-{i}'");
            table.with_entry(&sql, |_| ());
        }
        let (texts, bytes) = table.cached();
        assert!(bytes <= MAX_CACHED_BYTES, "{bytes} bytes");
        assert!((400..1_000).contains(&texts), "{texts} texts");
        let kept = format!("SELECT '{padding}' AS literal_0, 'secret-0'");
        let hits_before = table.with_entry(&kept, |e| e.fingerprint);
        table.forget_texts();
        assert_eq!(table.cached(), (0, 0), "a reset forgets every text");
        // The entry stays, found again by fingerprint.
        assert_eq!(table.with_entry(&kept, |e| e.fingerprint), hits_before);
    }

    #[test]
    fn the_cache_hash_sees_length_and_three_words_and_is_by_content() {
        let a = "SELECT id, name FROM users WHERE id = $1";
        let copy = String::from(a);
        assert_eq!(l1_hash(a), l1_hash(copy.as_str()), "by content, not by address");
        assert_ne!(l1_hash(a), l1_hash("SELECT id, name FROM users WHERE id = $2"));
        assert_ne!(l1_hash(a), l1_hash("XELECT id, name FROM users WHERE id = $1"));
        assert_ne!(l1_hash(a), l1_hash("SELECT id, name FROM users WHERE id = $1 "));
        assert_ne!(l1_hash("SELECT 1"), l1_hash("SELECT 2"));
        assert_ne!(l1_hash("BEGIN"), l1_hash("COMMIT"));
        assert_ne!(l1_hash(""), l1_hash(" "));
        // Every length, including those around the 8-byte word boundary.
        let hashes: std::collections::HashSet<u64> = (0..40).map(|n| l1_hash(&"x".repeat(n))).collect();
        assert_eq!(hashes.len(), 40);
    }
}
