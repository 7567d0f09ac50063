//! The server-side view (opt-in): a poller of `pg_stat_activity`, the
//! lock tree and `pg_stat_statements`, on one connection of its own, whose
//! rows it joins to the pool's connections (each knows its backend pid)
//! and sends through the funnel as one sample per cycle.
//!
//! What it costs the server: two to five queries per cycle (activity
//! always; the lock queries only when a backend waits on a lock, as
//! pganalyze does; the extension check and the statements), each bounded by
//! `statement_timeout` and `lock_timeout`. The texts of `pg_stat_statements`
//! are read only for `queryid`s not seen before.

mod budget;
mod cycle;
mod election;
mod plans;
mod sampler;

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::config::ServerView;
use crate::funnel::Event;
use crate::pool::shared::PoolShared;

pub(crate) use cycle::Texts;

/// Runs the poller of `pool` until the pool is gone (or, as a branch of
/// the background task, until the task stops).
pub(crate) async fn run(pool: Weak<PoolShared>, view: ServerView) {
    let interval = view
        .interval
        .clamp(Duration::from_millis(100), Duration::from_secs(24 * 3600));
    let mut backoff = Duration::from_secs(1);
    let mut texts = Texts::default();
    loop {
        let Some(shared) = pool.upgrade() else { return };
        let Some(connect) = shared.side_connect.get().cloned() else {
            return;
        };
        // The poller's name advertises its pool's maximum, for the other
        // instances' connection budget.
        let mut named = view.clone();
        named.application_name = budget::advertised(
            &view.application_name,
            shared.max_size.load(std::sync::atomic::Ordering::Relaxed),
        );
        drop(shared);
        match connect(named).await {
            Ok(client) => {
                backoff = Duration::from_secs(1);
                // The two loops share the connection (their queries are
                // pipelined); either ends when the connection does.
                tokio::select! {
                    () = cycles(&pool, &client, &view, interval, &mut texts) => {}
                    () = load(&pool, &client, view.load_interval) => {}
                }
                if pool.upgrade().is_none() {
                    return;
                }
            }
            Err(error) => {
                let Some(shared) = pool.upgrade() else { return };
                shared.record(Event::ServerFailed(&error));
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

/// The server-wide cycles (or a follower's), until the pool is gone or
/// the connection closed. A cycle longer than the interval delays the
/// next one: two never overlap, and no burst follows a slow one.
async fn cycles(
    pool: &Weak<PoolShared>,
    client: &tokio_postgres::Client,
    view: &ServerView,
    interval: Duration,
    texts: &mut Texts,
) {
    let mut ticks = crate::units::ticks(interval);
    let mut election = election::Election::default();
    let mut planner = plans::Planner::default();
    loop {
        ticks.tick().await;
        let Some(shared) = pool.upgrade() else { return };
        let result = match cycle::run(client, &shared, view, texts, &mut election).await {
            Ok((sample, failed)) => {
                shared.record(Event::ServerSample {
                    sample: Arc::new(sample),
                    failed: failed.as_ref(),
                });
                // Plans of the slow statements (after the sample, so that
                // they never delay it).
                planner.run(client, &shared, view).await.map(drop)
            }
            Err(error) => Err(error),
        };
        if let Err(error) = result {
            shared.record(Event::ServerFailed(&error));
            if client.is_closed() {
                return;
            }
        }
    }
}

/// The load sampler, every `period` (never when it is zero), until the
/// pool is gone or the connection closed. A failed sample is a failed
/// cycle of the view's (the next sample tries again).
async fn load(pool: &Weak<PoolShared>, client: &tokio_postgres::Client, period: Duration) {
    if period.is_zero() {
        return std::future::pending().await;
    }
    let mut ticks = crate::units::ticks(period);
    loop {
        ticks.tick().await;
        let Some(shared) = pool.upgrade() else { return };
        let at_unix_ms = crate::units::unix_ms(std::time::SystemTime::now());
        match sampler::sample(client, &shared).await {
            Ok(active) => shared.record(Event::LoadSample { at_unix_ms, active }),
            Err(error) => {
                shared.record(Event::ServerFailed(&error));
                if client.is_closed() {
                    return;
                }
            }
        }
    }
}
