//! One server-wide poller for a fleet: the pollers of every instance of
//! a pool (by its name) on a database and role try one session-level
//! advisory lock each cycle; the holder runs the server-wide queries. The lock ends with the holder's
//! session (its process killed, its connection lost), and another poller
//! takes it at its next cycle.

use tokio_postgres::{Client, Error};

use crate::config::ServerView;
use crate::stats::PollerRole;

/// The advisory lock's first key (`dbmo`); the second is the `hashtext`
/// of the role and the pool's name: the instances of one application (one
/// pool name) elect one poller, while other applications, and other roles
/// (whose statements `pg_stat_statements` shows apart), each have theirs.
pub(crate) const LOCK_CLASS: i32 = 0x6462_6d6f;

/// Takes the lock if no one holds it (the session keeps it).
pub(crate) const TRY_LOCK: &str =
    "SELECT pg_try_advisory_lock($1, hashtext(current_user || '/' || $2)), pg_backend_pid()";

/// The poller holding the lock.
pub(crate) const HOLDER: &str = "SELECT l.pid, a.application_name FROM pg_locks l \
     LEFT JOIN pg_stat_activity a ON a.pid = l.pid \
     WHERE l.locktype = 'advisory' AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND l.classid = $1::int8::oid AND l.objid = (hashtext(current_user || '/' || $2)::int8 & 4294967295)::oid \
     AND l.objsubid = 2";

/// A poller's side of the election, for the life of its connection.
#[derive(Debug, Default)]
pub(crate) struct Election {
    /// This session holds the lock.
    held: bool,
    pid: Option<i32>,
}

impl Election {
    /// This cycle's role: the holder keeps the lock without a query; the
    /// others try it, and name who holds it when they fail (its
    /// `application_name` shown as the budget shows it). `queries` is
    /// counted up by the queries run.
    pub(crate) async fn role(
        &mut self,
        client: &Client,
        pool: &str,
        view: &ServerView,
        queries: &mut u32,
    ) -> Result<PollerRole, Error> {
        if !view.elect {
            return Ok(PollerRole {
                election: false,
                leader: true,
                pid: self.pid,
                ..PollerRole::default()
            });
        }
        if !self.held {
            *queries += 1;
            let row = client.query_one(TRY_LOCK, &[&LOCK_CLASS, &pool]).await?;
            self.held = row.try_get::<_, Option<bool>>(0).ok().flatten().unwrap_or(false);
            self.pid = row.try_get::<_, Option<i32>>(1).ok().flatten();
        }
        if self.held {
            return Ok(PollerRole {
                election: true,
                leader: true,
                pid: self.pid,
                ..PollerRole::default()
            });
        }
        *queries += 1;
        let holder = client.query_opt(HOLDER, &[&i64::from(LOCK_CLASS), &pool]).await?;
        Ok(PollerRole {
            election: true,
            leader: false,
            pid: self.pid,
            leader_pid: holder
                .as_ref()
                .and_then(|r| r.try_get::<_, Option<i32>>(0).ok().flatten()),
            leader_application_name: holder
                .as_ref()
                .and_then(|r| r.try_get::<_, Option<String>>(1).ok().flatten())
                .map(|name| super::budget::shown(&name, view)),
        })
    }
}
