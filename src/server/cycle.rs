//! One cycle of the poller: its queries, and the joins of their rows to
//! the pool's connections and to the client's fingerprints.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use tokio_postgres::{Client, Error};

use crate::config::ServerView;
use crate::pool::shared::{ConnStats, PoolShared};
use crate::sql;
use crate::stats::server::{LockNode, OtherBackends, ServerBackend, ServerSample, ServerStatement, StatementsPart};

/// The columns of `pg_stat_activity` the view reads. Times in
/// milliseconds; the text is lexed at once and never kept.
///
/// The monitor's own statements are written so that the server's
/// normalized text (`pg_stat_statements`) has the fingerprint of the text
/// sent: constants only where the lexer sees literals (`date_part('epoch',
/// …)`, not `extract(epoch …)`; a parameter, not `false`).
macro_rules! activity {
    ($where:literal) => {
        concat!(
            "SELECT pid, (date_part('epoch', backend_start) * 1000)::int8, \
             coalesce(application_name, ''), state, wait_event_type, wait_event, \
             (date_part('epoch', now() - xact_start) * 1000)::float8, \
             (date_part('epoch', now() - query_start) * 1000)::float8, \
             (date_part('epoch', now() - state_change) * 1000)::float8, query \
             FROM pg_stat_activity WHERE ",
            $where
        )
    };
}

/// Every client backend of this database but the poller's own (a backend
/// of another role shows no type: counted with the others).
const ACTIVITY: &str = activity!(
    "datname = current_database() AND coalesce(backend_type, 'client backend') = 'client backend' \
     AND pid <> pg_backend_pid()"
);

/// The pool's own backends, by pid (`$1`): the load sampler's query, and
/// a follower's activity (see [`ServerView::elect`](crate::ServerView::elect)).
pub(crate) const ACTIVITY_OWN: &str = activity!("pid = ANY($1)");

/// What each lock waiter waits for, and who blocks it.
const WAITERS: &str = "SELECT w.pid, w.mode, pg_blocking_pids(w.pid) FROM pg_locks w \
     WHERE NOT w.granted AND w.pid = ANY($1)";

/// The modes the blockers hold on what their waiters want.
const HELD: &str = "SELECT DISTINCT h.pid, h.mode FROM pg_locks w JOIN pg_locks h \
     ON h.granted AND h.pid <> w.pid AND h.locktype = w.locktype \
     AND h.database IS NOT DISTINCT FROM w.database AND h.relation IS NOT DISTINCT FROM w.relation \
     AND h.page IS NOT DISTINCT FROM w.page AND h.tuple IS NOT DISTINCT FROM w.tuple \
     AND h.virtualxid IS NOT DISTINCT FROM w.virtualxid \
     AND h.transactionid IS NOT DISTINCT FROM w.transactionid \
     AND h.classid IS NOT DISTINCT FROM w.classid AND h.objid IS NOT DISTINCT FROM w.objid \
     AND h.objsubid IS NOT DISTINCT FROM w.objsubid \
     WHERE NOT w.granted AND w.pid = ANY($1)";

const EXTENSION: &str = "SELECT count(*) FROM pg_extension WHERE extname = 'pg_stat_statements'";

/// The top statements of this database and role, without their texts.
const TOP: &str = "SELECT queryid, calls, rows, total_exec_time, mean_exec_time \
     FROM pg_stat_statements($2) \
     WHERE queryid IS NOT NULL \
     AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
     AND userid = (SELECT oid FROM pg_roles WHERE rolname = current_user) \
     ORDER BY total_exec_time DESC LIMIT $1";

/// The texts of statements not seen before.
const TEXTS: &str = "SELECT queryid, query FROM pg_stat_statements($2) WHERE queryid = ANY($1)";

/// The `wait_event_type` of a backend waiting on a heavyweight lock.
const LOCK: &str = "Lock";

/// The application of another backend, unless
/// [`ServerView::application_names`] asks for it.
pub(crate) const NOT_SHOWN: &str = "(not shown)";

/// What `pg_stat_activity` shows of a backend the role may not read.
const HIDDEN: &str = "<insufficient privilege>";

/// The normalized texts of the `queryid`s seen so far (bounded: cleared
/// when full), so that `pg_stat_statements`' text file is read only for
/// new ones.
#[derive(Default)]
pub(crate) struct Texts {
    known: HashMap<i64, (String, u64)>,
}

const MAX_TEXTS: usize = 4096;

/// The fingerprints of the monitor's own statements (the poller's and the
/// backend-pid query), left out of the statements part.
fn own_fingerprints() -> HashSet<u64> {
    [
        ACTIVITY,
        ACTIVITY_OWN,
        WAITERS,
        HELD,
        EXTENSION,
        TOP,
        TEXTS,
        super::election::TRY_LOCK,
        super::election::HOLDER,
        super::budget::LIMITS,
        super::budget::BACKENDS,
        super::plans::TABLE_ROWS,
        super::plans::VERSION,
    ]
    .iter()
    .map(|sql| sql::fingerprint(sql))
    .chain(
        [
            crate::pool::BACKEND_QUERY,
            crate::pool::SHOW_TRACE,
            crate::pool::SAVE_NAME,
            crate::pool::RESTORE_NAME,
        ]
        .iter()
        .map(|sql| sql::fingerprint(sql)),
    )
    .collect()
}

/// One row of `pg_stat_activity`.
pub(crate) struct Row {
    pub(crate) pid: i32,
    pub(crate) started: Option<i64>,
    pub(crate) application: String,
    pub(crate) state: Option<String>,
    pub(crate) wait_type: Option<String>,
    pub(crate) wait_event: Option<String>,
    pub(crate) xact_ms: Option<f64>,
    pub(crate) query_ms: Option<f64>,
    pub(crate) state_ms: Option<f64>,
    pub(crate) query: Option<String>,
}

/// One cycle: the sample, and the failure of its statements part if that
/// part could not be read (the rest of the sample stands). The elected
/// poller (or every poller, without an election) reads the server-wide
/// parts; the others read their own backends only.
pub(crate) async fn run(
    client: &Client,
    pool: &PoolShared,
    view: &ServerView,
    texts: &mut Texts,
    election: &mut super::election::Election,
) -> Result<(ServerSample, Option<Error>), Error> {
    let began = Instant::now();
    let at_unix_ms = crate::units::unix_ms(std::time::SystemTime::now());
    let mut queries = 0;
    let poller = election.role(client, pool.name(), view, &mut queries).await?;
    let conns: Vec<Arc<ConnStats>> = pool.live_connections();
    let ours = Ours::of(&conns);
    if !poller.leader {
        queries += 1;
        let rows = own_activity(client, &conns).await?;
        let (backends, _) = join(&rows, &ours, view);
        let sample = ServerSample {
            at_unix_ms,
            took_ms: began.elapsed().as_secs_f64() * 1000.0,
            queries,
            backends,
            statements: StatementsPart {
                missing: Some(format!(
                    "read by the elected poller{} (ServerView::elect)",
                    poller.leader_pid.map(|p| format!(", pid {p}")).unwrap_or_default()
                )),
                top: Vec::new(),
            },
            poller,
            ..ServerSample::default()
        };
        return Ok((sample, None));
    }
    queries += 1;
    let rows = activity(client, ACTIVITY, &[]).await?;
    let mut unreadable = Vec::new();
    if rows.iter().any(|r| r.query.as_deref() == Some(HIDDEN)) {
        unreadable.push("pg_stat_activity: the backends of other roles (pg_read_all_stats)".to_owned());
    }
    let (backends, others) = join(&rows, &ours, view);

    // The lock tree, only when someone waits on a lock.
    let waiting: Vec<i32> = rows
        .iter()
        .filter(|r| r.wait_type.as_deref() == Some(LOCK))
        .map(|r| r.pid)
        .collect();
    let mut locks = Vec::new();
    if !waiting.is_empty() {
        queries += 2;
        locks = lock_tree(client, &waiting, &rows, &ours, view).await?;
    }

    queries += 2;
    let budget = super::budget::read(client, view).await?;
    let (statements, failed, no_text) = statements(client, view, texts, &mut queries).await;
    if no_text > 0 {
        unreadable.push(format!(
            "pg_stat_statements: {no_text} of the top statements have no text (the server could not read its texts file)"
        ));
    }
    let sample = ServerSample {
        at_unix_ms,
        took_ms: began.elapsed().as_secs_f64() * 1000.0,
        queries,
        unreadable,
        backends,
        others,
        locks,
        waiting: waiting.len() as u64,
        statements,
        poller,
        budget: Some(budget),
    };
    Ok((sample, failed))
}

/// The rows of the pool's own backends (none asked for without one).
pub(crate) async fn own_activity(client: &Client, conns: &[Arc<ConnStats>]) -> Result<Vec<Row>, Error> {
    let pids: Vec<i32> = conns.iter().filter_map(|c| c.backend.get().map(|b| b.pid)).collect();
    if pids.is_empty() {
        return Ok(Vec::new());
    }
    activity(client, ACTIVITY_OWN, &[&pids]).await
}

/// The rows of `pg_stat_activity`. Every column is read as what it may be
/// (a NULL where the server can send one, a row skipped if a type is not
/// the one asked for): no row of the server's stops the cycle.
async fn activity(
    client: &Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<Vec<Row>, Error> {
    Ok(client
        .query(sql, params)
        .await?
        .iter()
        .filter_map(|r| {
            Some(Row {
                pid: r.try_get(0).ok()?,
                started: nullable(r, 1),
                application: nullable(r, 2).unwrap_or_default(),
                state: nullable(r, 3),
                wait_type: nullable(r, 4),
                wait_event: nullable(r, 5),
                xact_ms: nullable(r, 6),
                query_ms: nullable(r, 7),
                state_ms: nullable(r, 8),
                query: nullable(r, 9),
            })
        })
        .collect())
}

/// The pool's connections by backend: a row is ours when its pid and
/// start are those of one of the pool's live connections (a pid alone is
/// reused).
pub(crate) struct Ours<'a> {
    by_backend: HashMap<(i32, i64), &'a ConnStats>,
}

impl<'a> Ours<'a> {
    pub(crate) fn of(conns: &'a [Arc<ConnStats>]) -> Self {
        let by_backend = conns
            .iter()
            .filter_map(|c| c.backend.get().map(|b| ((b.pid, b.started_unix_ms), c.as_ref())))
            .collect();
        Ours { by_backend }
    }

    pub(crate) fn get(&self, row: &Row) -> Option<&'a ConnStats> {
        self.by_backend.get(&(row.pid, row.started?)).copied()
    }
}

/// The pool's backends, joined to their connections, by connection id; and
/// the database's other backends counted by application and state.
fn join(rows: &[Row], ours: &Ours<'_>, view: &ServerView) -> (Vec<ServerBackend>, Vec<OtherBackends>) {
    let mut backends = Vec::new();
    let mut others: BTreeMap<(String, String), u64> = BTreeMap::new();
    for row in rows {
        match ours.get(row) {
            Some(conn) => {
                let holder = conn.holder();
                let analysis = row.query.as_deref().filter(|q| !q.is_empty()).map(sql::analyze);
                backends.push(ServerBackend {
                    pid: row.pid,
                    backend_start_unix_ms: row.started.unwrap_or(0),
                    connection: conn.id,
                    state: row.state.clone(),
                    wait_event_type: row.wait_type.clone(),
                    wait_event: row.wait_event.clone(),
                    transaction_age_ms: row.xact_ms,
                    statement_age_ms: row.query_ms,
                    state_age_ms: row.state_ms,
                    fingerprint: analysis.as_ref().map(|a| a.fingerprint),
                    statement: analysis.map(|a| a.normalized),
                    route: holder.route,
                    checkout_site: holder.site,
                    trace_id: trace_id(&row.application),
                });
            }
            None => {
                // Other instances' trace contexts are one group, not one
                // group per trace; other names only when asked for.
                let application: String = match trace_id(&row.application) {
                    Some(_) => "(traceparent)".to_owned(),
                    None if !view.application_names => NOT_SHOWN.to_owned(),
                    None => row.application.chars().take(64).collect(),
                };
                let state = row.state.clone().unwrap_or_else(|| "unknown".to_owned());
                *others.entry((application, state)).or_insert(0) += 1;
            }
        }
    }
    backends.sort_by_key(|b| b.connection);
    let others = others
        .into_iter()
        .map(|((application_name, state), count)| OtherBackends {
            application_name,
            state,
            count,
        })
        .collect();
    (backends, others)
}

/// The lock tree of the backends `waiting` on a lock: what each waits for
/// and who blocks it, the modes the blockers hold, each node joined to the
/// pool's connection when it is ours.
async fn lock_tree(
    client: &Client,
    waiting: &[i32],
    rows: &[Row],
    ours: &Ours<'_>,
    view: &ServerView,
) -> Result<Vec<LockNode>, Error> {
    let mut blocked_by: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut wants: HashMap<i32, String> = HashMap::new();
    for r in client.query(WAITERS, &[&waiting]).await? {
        let Ok(pid) = r.try_get::<_, i32>(0) else { continue };
        if let Some(mode) = nullable(&r, 1) {
            wants.insert(pid, mode);
        }
        blocked_by.insert(
            pid,
            nullable::<Vec<Option<i32>>>(&r, 2)
                .into_iter()
                .flatten()
                .flatten()
                .collect(),
        );
    }
    let mut holds: HashMap<i32, String> = HashMap::new();
    for r in client.query(HELD, &[&waiting]).await? {
        let (Ok(pid), Some(mode)) = (r.try_get::<_, i32>(0), nullable::<String>(&r, 1)) else {
            continue;
        };
        holds
            .entry(pid)
            .and_modify(|m: &mut String| {
                if !m.split(", ").any(|x| x == mode) {
                    m.push_str(", ");
                    m.push_str(&mode);
                }
            })
            .or_insert(mode);
    }
    let row_of: HashMap<i32, &Row> = rows.iter().map(|r| (r.pid, r)).collect();
    let node = |pid: i32| -> LockNode {
        let row = row_of.get(&pid);
        let conn = row.and_then(|r| ours.get(r));
        let holder = conn.map(|c| c.holder()).unwrap_or_default();
        LockNode {
            pid,
            application_name: row
                .filter(|_| view.application_names)
                .map(|r| r.application.chars().take(64).collect()),
            state: row.and_then(|r| r.state.clone()),
            transaction_age_ms: row.and_then(|r| r.xact_ms),
            waiting_for: wants.get(&pid).cloned(),
            holding: holds.get(&pid).cloned(),
            ours: conn.is_some(),
            connection: conn.map(|c| c.id),
            route: holder.route,
            checkout_site: holder.site,
            blocking: Vec::new(),
        }
    };
    Ok(tree(&blocked_by, node))
}

/// The trace id in a backend's `application_name`, when it holds a
/// `traceparent` (see [`MonitorConfig::trace_context`](crate::MonitorConfig::trace_context)).
fn trace_id(application: &str) -> Option<String> {
    let parent: crate::config::TraceParent = application.parse().ok()?;
    Some(parent.trace_id().iter().map(|b| format!("{b:02x}")).collect())
}

/// The blocking tree: blockers that wait on no one first (the roots), each
/// with the backends it blocks. A cycle (a deadlock the server has not
/// broken yet) hangs from its lowest pid.
fn tree(blocked_by: &HashMap<i32, Vec<i32>>, node: impl Fn(i32) -> LockNode) -> Vec<LockNode> {
    let mut blocks: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for (&waiter, blockers) in blocked_by {
        for &blocker in blockers {
            blocks.entry(blocker).or_default().push(waiter);
        }
    }
    for waiters in blocks.values_mut() {
        waiters.sort_unstable();
        waiters.dedup();
    }
    let waits = |pid: i32| blocked_by.get(&pid).is_some_and(|b| !b.is_empty());
    let roots: Vec<i32> = blocks.keys().copied().filter(|&pid| !waits(pid)).collect();
    let mut seen: HashSet<i32> = HashSet::new();
    fn grow(
        pid: i32,
        blocks: &BTreeMap<i32, Vec<i32>>,
        seen: &mut HashSet<i32>,
        node: &dyn Fn(i32) -> LockNode,
    ) -> LockNode {
        seen.insert(pid);
        let mut this = node(pid);
        for &waiter in blocks.get(&pid).into_iter().flatten() {
            if !seen.contains(&waiter) {
                this.blocking.push(grow(waiter, blocks, seen, node));
            }
        }
        this
    }
    let mut out = Vec::new();
    for &root in &roots {
        out.push(grow(root, &blocks, &mut seen, &node));
    }
    // Blockers left unseen wait in a cycle.
    let cycle: Vec<i32> = blocks.keys().copied().filter(|pid| !seen.contains(pid)).collect();
    for pid in cycle {
        if !seen.contains(&pid) {
            out.push(grow(pid, &blocks, &mut seen, &node));
        }
    }
    out
}

/// Column `i` of `row`, `None` when it is NULL or not a `T`.
fn nullable<'a, T: tokio_postgres::types::FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize) -> Option<T> {
    row.try_get::<_, Option<T>>(i).ok().flatten()
}

/// The statements part: missing (and why) or the top statements; the
/// error when a query failed (a missing extension is no failure); and how
/// many top statements had no text (`query` is NULL when
/// `pg_stat_statements` cannot read its texts file).
async fn statements(
    client: &Client,
    view: &ServerView,
    texts: &mut Texts,
    queries: &mut u32,
) -> (StatementsPart, Option<Error>, usize) {
    *queries += 1;
    match client.query_one(EXTENSION, &[]).await {
        Ok(row) if nullable::<i64>(&row, 0).unwrap_or(0) == 0 => {
            let missing = "pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements)";
            return (
                StatementsPart {
                    missing: Some(missing.to_owned()),
                    top: Vec::new(),
                },
                None,
                0,
            );
        }
        Ok(_) => {}
        Err(e) => return missing(e),
    }
    *queries += 1;
    let limit = i64::try_from(view.top_statements).unwrap_or(i64::MAX);
    let top = match client.query(TOP, &[&limit, &false]).await {
        Ok(rows) => rows,
        Err(e) => return missing(e),
    };
    if let Err(e) = texts.learn(client, &top, queries).await {
        return missing(e);
    }
    let own = own_fingerprints();
    let mut no_text = 0;
    let top = top
        .iter()
        .filter_map(|r| {
            let queryid: i64 = nullable(r, 0)?;
            let Some((statement, fingerprint)) = texts.known.get(&queryid).cloned() else {
                no_text += 1;
                return None;
            };
            if own.contains(&fingerprint) {
                return None;
            }
            Some(ServerStatement {
                queryid,
                statement,
                fingerprint,
                calls: nullable(r, 1).unwrap_or(0),
                rows: nullable(r, 2).unwrap_or(0),
                total_exec_time_ms: nullable(r, 3).unwrap_or(0.0),
                server_mean_ms: nullable(r, 4).unwrap_or(0.0),
                client_calls: None,
                client_mean_ms: None,
                client_split: None,
                difference_ms: None,
                rows_sharing_fingerprint: 1,
            })
        })
        .collect();
    (StatementsPart { missing: None, top }, None, no_text)
}

impl Texts {
    /// Reads the normalized texts of the `top` rows' statements not yet
    /// known (one query, only when there are any). A NULL text is not kept:
    /// it is asked for again next cycle.
    async fn learn(&mut self, client: &Client, top: &[tokio_postgres::Row], queries: &mut u32) -> Result<(), Error> {
        let unknown: Vec<i64> = top
            .iter()
            .filter_map(|r| nullable::<i64>(r, 0))
            .filter(|id| !self.known.contains_key(id))
            .collect();
        if unknown.is_empty() {
            return Ok(());
        }
        *queries += 1;
        let rows = client.query(TEXTS, &[&unknown, &true]).await?;
        if self.known.len() + rows.len() > MAX_TEXTS {
            self.known.clear();
        }
        for r in rows {
            let (Some(queryid), Some(text)) = (nullable::<i64>(&r, 0), nullable::<String>(&r, 1)) else {
                continue;
            };
            let analysis = sql::analyze(&text);
            self.known.insert(queryid, (analysis.normalized, analysis.fingerprint));
        }
        Ok(())
    }
}

/// A failure of the poller's, in the server's words masked, with the
/// SQLSTATE.
pub(crate) fn masked(error: &Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", crate::classify::server_message(db, false), db.code().code()),
        None => crate::classify::error_chain(error, false),
    }
}

/// The statements part when `pg_stat_statements` could not be read: why,
/// in the server's words masked, with the SQLSTATE.
fn missing(error: Error) -> (StatementsPart, Option<Error>, usize) {
    let why = masked(&error);
    let part = StatementsPart {
        missing: Some(format!("pg_stat_statements could not be read: {why}")),
        top: Vec::new(),
    };
    (part, Some(error), 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(pid: i32) -> LockNode {
        LockNode {
            pid,
            application_name: None,
            state: None,
            transaction_age_ms: None,
            waiting_for: None,
            holding: None,
            ours: false,
            connection: None,
            route: None,
            checkout_site: None,
            blocking: Vec::new(),
        }
    }

    fn shape(n: &LockNode) -> String {
        if n.blocking.is_empty() {
            n.pid.to_string()
        } else {
            let children: Vec<String> = n.blocking.iter().map(shape).collect();
            format!("{}[{}]", n.pid, children.join(" "))
        }
    }

    #[test]
    fn a_chain_hangs_from_its_root_blocker() {
        // 10 blocks 20, 20 blocks 30; 10 also blocks 40.
        let blocked_by = HashMap::from([(20, vec![10]), (30, vec![20]), (40, vec![10])]);
        let t = tree(&blocked_by, node);
        let shapes: Vec<String> = t.iter().map(shape).collect();
        assert_eq!(shapes, ["10[20[30] 40]"]);
    }

    #[test]
    fn a_cycle_still_shows_every_backend_once() {
        let blocked_by = HashMap::from([(1, vec![2]), (2, vec![1]), (3, vec![2])]);
        let t = tree(&blocked_by, node);
        let shapes: Vec<String> = t.iter().map(shape).collect();
        assert_eq!(shapes, ["1[2[3]]"]);
    }

    #[test]
    fn the_monitor_s_own_statements_are_known() {
        let own = own_fingerprints();
        // As pg_stat_statements shows them: constants numbered after the
        // parameters.
        assert!(own.contains(&sql::fingerprint("SELECT set_config($3, $1, $2)")));
        assert!(own.contains(&sql::fingerprint(TOP)));
        assert!(!own.contains(&sql::fingerprint("SELECT * FROM orders WHERE id = $1")));
    }
}
