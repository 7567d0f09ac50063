//! The load sampler: the pool's own backends in use, read once a second
//! (one query filtered by their pids, none when no connection is in use),
//! each active one counted under the route of the request holding it and
//! its wait event (`CPU` when it waits on nothing).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio_postgres::{Client, Error};

use crate::pool::shared::PoolShared;
use crate::stats::db_load::{ActiveBackend, NO_ROUTE};

/// One sample: the pool's active backends. Only connections checked out
/// or running a statement (a stream that outlived its checkout) can be
/// active on the server: with none, the sample is empty and costs no
/// query.
pub(crate) async fn sample(client: &Client, pool: &PoolShared) -> Result<Vec<ActiveBackend>, Error> {
    let conns: Vec<_> = pool
        .live_connections()
        .into_iter()
        .filter(|c| c.checked_out.load(Relaxed) != 0 || c.running().is_some())
        .collect();
    let rows = super::cycle::own_activity(client, &conns).await?;
    let ours = super::cycle::Ours::of(&conns);
    let cpu: Arc<str> = Arc::from("CPU");
    let no_route: Arc<str> = Arc::from(NO_ROUTE);
    Ok(rows
        .iter()
        .filter(|r| r.state.as_deref() == Some("active"))
        .filter_map(|r| {
            let conn = ours.get(r)?;
            let (wait_event_type, wait_event) = match (&r.wait_type, &r.wait_event) {
                (Some(t), e) => (
                    Arc::from(t.as_str()),
                    e.as_deref().map_or_else(|| Arc::from(t.as_str()), Arc::from),
                ),
                (None, _) => (cpu.clone(), cpu.clone()),
            };
            Some(ActiveBackend {
                route: conn.holder_route().unwrap_or_else(|| no_route.clone()),
                wait_event_type,
                wait_event,
            })
        })
        .collect())
}
