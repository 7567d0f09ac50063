//! Answers computed once and shared, so that a flood of monitor requests
//! costs the application what one request does.
//!
//! For each key (a document with its parameters, the exposition, the
//! health verdict) at most one computation runs at a time; the callers
//! that arrive meanwhile wait for it and take its answer, and the answer is
//! reused until it is `fresh_for` old. Blocking work (serializing a
//! document, rendering the exposition) runs on Tokio's blocking pool, one
//! computation at a time across every key, never on the async workers.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

/// Keys kept before idle ones are forgotten (the parameters of a document
/// make its key, so a caller could otherwise grow the map at will).
const MAX_KEYS: usize = 64;

type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

/// Single-flight answers with a short reuse window.
pub(crate) struct Shared<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    /// One blocking computation at a time, whatever its key.
    blocking: Semaphore,
    fresh_for: Duration,
}

impl<K, V> fmt::Debug for Shared<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("fresh_for", &self.fresh_for)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V: Clone + Send + 'static> Shared<K, V> {
    pub(crate) fn new(fresh_for: Duration) -> Self {
        Shared {
            slots: Mutex::new(HashMap::new()),
            blocking: Semaphore::new(1),
            fresh_for,
        }
    }

    /// The answer for `key`: a fresh one if there is one (or one computed
    /// after this call began), else `make`'s, which this call computes
    /// while later callers of the same key wait.
    pub(crate) async fn get<F>(&self, key: K, make: F) -> V
    where
        F: std::future::Future<Output = V>,
    {
        let asked = Instant::now();
        let slot = self.slot(key);
        let mut answer = slot.lock().await;
        if let Some((at, value)) = answer.as_ref() {
            if *at >= asked || at.elapsed() < self.fresh_for {
                return value.clone();
            }
        }
        let value = make.await;
        *answer = Some((Instant::now(), value.clone()));
        value
    }

    /// Like [`get`](Self::get), computing with `f` on the blocking pool
    /// (one blocking computation at a time); `failed` is the answer when
    /// `f` panics.
    pub(crate) async fn get_blocking(
        &self,
        key: K,
        f: impl FnOnce() -> V + Send + 'static,
        failed: impl FnOnce() -> V,
    ) -> V {
        self.get(key, async {
            // The semaphore is never closed.
            let _permit = self.blocking.acquire().await;
            tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| failed())
        })
        .await
    }

    /// Forgets every answer (after a change that they would not show).
    pub(crate) fn clear(&self) {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    fn slot(&self, key: K) -> Slot<V> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if slots.len() >= MAX_KEYS && !slots.contains_key(&key) {
            // Keep the slots someone is waiting on; the others are only a
            // cache.
            slots.retain(|_, slot| Arc::strong_count(slot) > 1);
        }
        slots.entry(key).or_default().clone()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering::SeqCst};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_computation_and_reuse_it_briefly() {
        let shared = Arc::new(Shared::<&str, u32>::new(Duration::from_secs(1)));
        let runs = Arc::new(AtomicU32::new(0));
        let call = |shared: Arc<Shared<&'static str, u32>>, runs: Arc<AtomicU32>| async move {
            shared
                .get("doc", async {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    runs.fetch_add(1, SeqCst) + 1
                })
                .await
        };
        let answers: Vec<u32> =
            futures_util::future::join_all((0..10).map(|_| tokio::spawn(call(shared.clone(), runs.clone()))))
                .await
                .into_iter()
                .map(Result::unwrap)
                .collect();
        assert_eq!(answers, vec![1; 10], "one computation, every caller its answer");
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(call(shared.clone(), runs.clone()).await, 1, "still fresh");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert_eq!(call(shared.clone(), runs.clone()).await, 2, "stale: computed again");
        shared.clear();
        assert_eq!(call(shared.clone(), runs.clone()).await, 3, "cleared: computed again");
    }

    #[tokio::test(start_paused = true)]
    async fn with_no_reuse_window_waiters_still_share_the_computation_they_waited_for() {
        let shared = Arc::new(Shared::<u8, u32>::new(Duration::ZERO));
        let runs = Arc::new(AtomicU32::new(0));
        let answers = futures_util::future::join_all((0..5).map(|_| {
            let (shared, runs) = (shared.clone(), runs.clone());
            tokio::spawn(async move {
                shared
                    .get(0, async {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        runs.fetch_add(1, SeqCst) + 1
                    })
                    .await
            })
        }))
        .await;
        assert!(answers.into_iter().all(|a| a.unwrap() == 1));
        assert_eq!(runs.load(SeqCst), 1);
    }

    #[tokio::test]
    async fn idle_keys_are_forgotten_past_the_bound() {
        let shared = Shared::<usize, usize>::new(Duration::from_secs(60));
        for key in 0..1000 {
            assert_eq!(shared.get(key, async move { key }).await, key);
        }
        assert!(shared.slots.lock().unwrap().len() <= MAX_KEYS);
        let blocking = shared.get_blocking(5000, || 7, || 0).await;
        assert_eq!(blocking, 7);
        let panicked = shared.get_blocking(5001, || panic!("boom"), || 99).await;
        assert_eq!(panicked, 99);
    }
}
