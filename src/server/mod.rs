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

mod cycle;

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

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
        drop(shared);
        match connect(view.clone()).await {
            Ok(client) => {
                backoff = Duration::from_secs(1);
                let mut ticks = tokio::time::interval(interval);
                // A cycle longer than the interval delays the next one: two
                // never overlap, and no burst follows a slow one.
                ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let Some(shared) = pool.upgrade() else { return };
                    let result = cycle::run(&client, &shared, &view, &mut texts).await;
                    match result {
                        Ok((sample, failed)) => shared.record(Event::ServerSample {
                            sample: Arc::new(sample),
                            failed: failed.as_ref(),
                        }),
                        Err(error) => {
                            shared.record(Event::ServerFailed(&error));
                            if client.is_closed() {
                                break;
                            }
                        }
                    }
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
