//! Answers computed once and shared, so that a flood of monitor requests
//! costs the application what one request does.
//!
//! For each key (a document with its parameters, the exposition, the
//! health verdict) at most one computation runs at a time; the callers
//! that arrive meanwhile wait for it and take its answer, and the answer is
//! reused until it is `fresh_for` old. Blocking work (serializing a
//! document, rendering the exposition) runs on Tokio's blocking pool, one
//! computation at a time across every key, never on the async workers.
//!
//! A blocking computation cannot be stopped once it runs, so it is owned
//! by a task of its own rather than by the request: when the request is
//! dropped (the client closed the connection) the computation still holds
//! the one permit until it ends, pays the byte budget for what it made,
//! and leaves its answer for the callers that come next. A request dropped
//! while it waits for the permit computes nothing.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::budget::Budget;

/// Keys kept before idle ones are forgotten (the parameters of a document
/// make its key, so a caller could otherwise grow the map at will).
const MAX_KEYS: usize = 64;

type Slot<V> = Arc<tokio::sync::Mutex<Option<(Instant, V)>>>;

/// Single-flight answers with a short reuse window.
pub(crate) struct Shared<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    /// One blocking computation at a time, whatever its key.
    blocking: Arc<Semaphore>,
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
            blocking: Arc::new(Semaphore::new(1)),
            fresh_for,
        }
    }

    /// The answer for `key`, computed with `f` on the blocking pool,
    /// one blocking computation at a time, within `budget`: an answer made
    /// before is sent if the budget [takes](Budget::take) its `weigh`t, one
    /// to make is made only if the budget is open once this call holds the
    /// permit, and is paid for as it is made. `failed` is the answer when
    /// `f` panics. `None`: over budget.
    pub(crate) async fn get_blocking(
        &self,
        key: K,
        budget: &Arc<Budget>,
        f: impl FnOnce() -> V + Send + 'static,
        failed: fn() -> V,
        weigh: fn(&V) -> usize,
    ) -> Option<V> {
        let asked = Instant::now();
        let mut answer = self.slot(key).lock_owned().await;
        if let Some(value) = self.fresh(&answer, asked) {
            return budget.take(weigh(value)).then(|| value.clone());
        }
        if !budget.open() {
            return None;
        }
        // The semaphore is never closed.
        let permit = self.blocking.clone().acquire_owned().await.ok()?;
        // The computations before this one have paid by now.
        if !budget.open() {
            return None;
        }
        let budget = budget.clone();
        let job = tokio::spawn(async move {
            let value = tokio::task::spawn_blocking(f).await.unwrap_or_else(|_| failed());
            drop(permit);
            budget.spend(weigh(&value));
            *answer = Some((Instant::now(), value.clone()));
            value
        });
        // The job only fails if the runtime is shutting down.
        Some(job.await.unwrap_or_else(|_| failed()))
    }

    /// The answer for `key`: a fresh one if there is one (or one computed
    /// after this call began), else `make`'s, which runs while later
    /// callers of the same key wait. `make` runs as a task of its own: a
    /// caller that is dropped (a client that gave up) leaves it running to
    /// its end, and its answer to the callers that come next, so that at
    /// most one runs at a time whoever waits for it. `failed` is the answer
    /// if the task cannot finish (the runtime is shutting down).
    pub(crate) async fn get_spawned<F>(&self, key: K, make: F, failed: fn() -> V) -> V
    where
        F: std::future::Future<Output = V> + Send + 'static,
    {
        let asked = Instant::now();
        let mut answer = self.slot(key).lock_owned().await;
        if let Some(value) = self.fresh(&answer, asked) {
            return value.clone();
        }
        let job = tokio::spawn(async move {
            let value = make.await;
            *answer = Some((Instant::now(), value.clone()));
            value
        });
        job.await.unwrap_or_else(|_| failed())
    }

    /// The answer kept, if it was made after `asked` or is still fresh.
    fn fresh<'a>(&self, answer: &'a Option<(Instant, V)>, asked: Instant) -> Option<&'a V> {
        let (at, value) = answer.as_ref()?;
        (*at >= asked || at.elapsed() < self.fresh_for).then_some(value)
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
            let make = async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                runs.fetch_add(1, SeqCst) + 1
            };
            shared.get_spawned("doc", make, || 0).await
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
                let make = async move {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    runs.fetch_add(1, SeqCst) + 1
                };
                shared.get_spawned(0, make, || 0).await
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
            assert_eq!(shared.get_spawned(key, async move { key }, || 0).await, key);
        }
        assert!(shared.slots.lock().unwrap().len() <= MAX_KEYS);
        let budget = Arc::new(Budget::new(None));
        let blocking = shared.get_blocking(5000, &budget, || 7, || 0, |_| 1).await;
        assert_eq!(blocking, Some(7));
        let panicked = shared
            .get_blocking(5001, &budget, || panic!("boom"), || 99, |_| 1)
            .await;
        assert_eq!(panicked, Some(99));
    }

    /// A computation that takes `ms` on a blocking thread and notes how
    /// many ran at once.
    fn slow(ms: u64, running: Arc<AtomicU32>, most: Arc<AtomicU32>) -> impl FnOnce() -> usize + Send + 'static {
        move || {
            let now = running.fetch_add(1, SeqCst) + 1;
            most.fetch_max(now, SeqCst);
            std::thread::sleep(Duration::from_millis(ms));
            running.fetch_sub(1, SeqCst);
            1000
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn dropped_requests_keep_one_computation_at_a_time_and_still_pay() {
        let shared = Arc::new(Shared::<usize, usize>::new(Duration::from_secs(60)));
        let unlimited = Arc::new(Budget::new(None));
        let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        // Twenty requests for different documents, each given up after
        // 5 ms, while each computation takes 20 ms.
        for key in 0..20 {
            let request = shared.get_blocking(key, &unlimited, slow(20, running.clone(), most.clone()), || 0, |n| *n);
            assert!(tokio::time::timeout(Duration::from_millis(5), request).await.is_err());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(most.load(SeqCst), 1, "never two computations at once");
        assert_eq!(running.load(SeqCst), 0);
        // The one that held the permit ran to its end and left its answer
        // for the next caller.
        let again = shared
            .get_blocking(0, &unlimited, || unreachable!(), || 0, |n| *n)
            .await;
        assert_eq!(again, Some(1000));

        // A computation nobody waited for still pays: 1000 bytes against
        // 100 a second leave the budget in debt.
        let budget = Arc::new(Budget::new(Some(100)));
        let request = shared.get_blocking(100, &budget, slow(20, running.clone(), most.clone()), || 0, |n| *n);
        assert!(tokio::time::timeout(Duration::from_millis(5), request).await.is_err());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!budget.open(), "the dropped request's document was paid for");
        let refused = shared.get_blocking(101, &budget, || unreachable!(), || 0, |n| *n).await;
        assert_eq!(refused, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_requests_cannot_all_pass_one_check() {
        let shared = Arc::new(Shared::<usize, usize>::new(Duration::from_secs(60)));
        // Four answers' worth a second; sixty concurrent requests for
        // different documents.
        let budget = Arc::new(Budget::new(Some(4000)));
        let (running, most) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
        let answers = futures_util::future::join_all((0..60).map(|key| {
            let (shared, budget, f) = (shared.clone(), budget.clone(), slow(1, running.clone(), most.clone()));
            tokio::spawn(async move { shared.get_blocking(key, &budget, f, || 0, |n| *n).await })
        }))
        .await;
        let served = answers.into_iter().filter(|a| a.as_ref().unwrap().is_some()).count();
        // 4,000 bytes, one answer of debt, and what the time earned.
        assert!(
            (4..=8).contains(&served),
            "served {served} of 60 documents of 1000 bytes"
        );
    }
}
