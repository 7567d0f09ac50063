//! The load sampler: the pool's own backends, read once a second (one
//! query filtered by their pids), each active one counted under the route
//! of the request holding it and its wait event (`CPU` when it waits on
//! nothing).

use std::sync::Arc;

use tokio_postgres::{Client, Error};

use crate::pool::shared::PoolShared;
use crate::stats::db_load::{ActiveBackend, NO_ROUTE};

/// One sample: the pool's active backends.
pub(crate) async fn sample(client: &Client, pool: &PoolShared) -> Result<Vec<ActiveBackend>, Error> {
    let conns = pool.live_connections();
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
