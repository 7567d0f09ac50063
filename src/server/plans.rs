//! Generic plans of the pool's slow statements, read by the poller after
//! its cycle: `EXPLAIN (GENERIC_PLAN, FORMAT JSON, VERBOSE)` (PostgreSQL
//! 16 and later) of the statement's text with `$n` for each literal, over
//! the simple protocol (so that nothing is bound to the placeholders).
//! The text holds no value by construction ([`crate::sql::generic_text`]);
//! a text that cannot be made so is skipped. At most one plan per
//! statement an hour and [`PER_MINUTE`] a minute; each under the poller's
//! `statement_timeout`.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio_postgres::{Client, Error, SimpleQueryMessage};

use crate::config::ServerView;
use crate::funnel::Event;
use crate::pool::shared::PoolShared;
use crate::sql::Operation;
use crate::stats::plans::{nodes, SeqScan, StatementPlan, LARGE_TABLE_ROWS};

/// Plans read a minute at most, for every statement together.
pub(crate) const PER_MINUTE: usize = 6;

/// How long a statement's plan stands before it is read again.
const AGAIN_AFTER: Duration = Duration::from_secs(3600);

/// Statements whose plan time is remembered (the oldest forgotten first).
const REMEMBERED: usize = 4096;

/// The rows the planner knows of the tables scanned sequentially
/// (`schema.table` names in `$1`).
pub(crate) const TABLE_ROWS: &str = "SELECT n.nspname || '.' || c.relname, c.reltuples::int8 \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE n.nspname || '.' || c.relname = ANY($1)";

/// The server's version, read once a connection.
pub(crate) const VERSION: &str = "SELECT current_setting('server_version_num')::int4";

/// The planner's state for the life of the poller's connection.
#[derive(Default)]
pub(crate) struct Planner {
    /// `server_version_num` of the poller's connection (read once).
    version: Option<i32>,
    /// When each statement's plan was last read (or tried).
    planned: HashMap<u64, Instant>,
    /// When the plans of the last minute were read.
    recent: VecDeque<Instant>,
}

impl Planner {
    /// Reads the plans due; the queries it ran.
    pub(crate) async fn run(&mut self, client: &Client, pool: &PoolShared, view: &ServerView) -> Result<u32, Error> {
        let store = &pool.sink.stores.plans;
        if !view.plans {
            store.unavailable(Some("plans are off (ServerView::plans)".to_owned()));
            return Ok(0);
        }
        let mut queries = 0;
        let version = match self.version {
            Some(v) => v,
            None => {
                queries += 1;
                let v = client.query_one(VERSION, &[]).await?.try_get(0).unwrap_or(0);
                self.version = Some(v);
                v
            }
        };
        if version < 160_000 {
            store.unavailable(Some(format!(
                "generic plans need PostgreSQL 16 or later (EXPLAIN GENERIC_PLAN); the server is {}",
                version / 10_000
            )));
            return Ok(queries);
        }
        store.unavailable(None);
        let now = Instant::now();
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            self.recent.pop_front();
        }
        // The slowest statements first.
        let mut slow: Vec<_> = pool
            .sink
            .queries
            .entries()
            .into_iter()
            .filter(|e| e.stats.totals().slow > 0)
            .filter(|e| {
                self.planned
                    .get(&e.fingerprint)
                    .is_none_or(|at| now.duration_since(*at) >= AGAIN_AFTER)
            })
            .collect();
        slow.sort_by_key(|e| std::cmp::Reverse(e.stats.totals().slow));
        for entry in slow {
            if self.recent.len() >= PER_MINUTE {
                break;
            }
            if self.planned.len() >= REMEMBERED {
                let oldest = self.planned.iter().min_by_key(|(_, at)| **at).map(|(fp, _)| *fp);
                if let Some(oldest) = oldest {
                    self.planned.remove(&oldest);
                }
            }
            self.planned.insert(entry.fingerprint, now);
            let plannable = matches!(
                entry.operation,
                Operation::Select | Operation::Insert | Operation::Update | Operation::Delete | Operation::Merge
            );
            let Some(text) = crate::sql::generic_text(&entry.text).filter(|_| plannable) else {
                continue;
            };
            self.recent.push_back(now);
            queries += 1;
            let plan = match explain(client, &text).await {
                Ok(explained) => {
                    let read = nodes(&explained);
                    let failed = read.is_none().then(|| "the server's plan could not be read".to_owned());
                    let nodes = read.unwrap_or_default();
                    let scanned: Vec<String> = nodes
                        .iter()
                        .filter(|n| n.node_type == "Seq Scan")
                        .filter_map(|n| n.relation.clone())
                        .collect();
                    let mut large_seq_scans = Vec::new();
                    if !scanned.is_empty() {
                        queries += 1;
                        for row in client.query(TABLE_ROWS, &[&scanned]).await? {
                            let (Ok(relation), Ok(rows)) = (row.try_get::<_, String>(0), row.try_get::<_, i64>(1))
                            else {
                                continue;
                            };
                            if rows >= LARGE_TABLE_ROWS {
                                large_seq_scans.push(SeqScan {
                                    relation,
                                    table_rows: rows,
                                });
                            }
                        }
                    }
                    StatementPlan {
                        at_unix_ms: crate::units::unix_ms(std::time::SystemTime::now()),
                        explained: text,
                        estimated_rows: nodes.first().map(|n| n.estimated_rows),
                        total_cost: nodes.first().map(|n| n.total_cost),
                        nodes,
                        large_seq_scans,
                        failed,
                    }
                }
                Err(error) if error.as_db_error().is_some() => StatementPlan {
                    at_unix_ms: crate::units::unix_ms(std::time::SystemTime::now()),
                    explained: text,
                    nodes: Vec::new(),
                    estimated_rows: None,
                    total_cost: None,
                    large_seq_scans: Vec::new(),
                    failed: Some(super::cycle::masked(&error)),
                },
                Err(error) => return Err(error),
            };
            pool.record(Event::Plan {
                fingerprint: entry.fingerprint,
                plan,
            });
        }
        Ok(queries)
    }
}

/// The plan of `text` as JSON.
async fn explain(client: &Client, text: &str) -> Result<serde_json::Value, Error> {
    let sql = format!("EXPLAIN (GENERIC_PLAN, FORMAT JSON, VERBOSE) {text}");
    let json = client
        .simple_query(&sql)
        .await?
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        })
        .unwrap_or_default();
    Ok(serde_json::from_str(&json).unwrap_or(serde_json::Value::Null))
}
