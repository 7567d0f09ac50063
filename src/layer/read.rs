//! The routes by path, the documents they read and their parameters.

use super::answer::{invalid, Reject};
use super::dashboard::Asset;
use crate::stats::MAX_WINDOW_MINUTES;

/// The largest `limit` a route accepts.
pub const MAX_LIMIT: usize = 1000;

/// A reading route and its parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Read {
    Comprehensive { minutes: u32, limit: usize },
    QueryPerformance { minutes: u32, limit: usize },
    PoolTrends { minutes: Option<u32> },
    SlowQueries { minutes: Option<u32>, limit: usize },
    Errors { minutes: Option<u32>, limit: usize },
    Alerts,
    AlertHistory { limit: usize },
    Performance { minutes: u32 },
    ServerActivity,
    ServerLocks,
    ServerStatements { limit: usize },
    ServerLoad { minutes: usize },
    ServerConnections,
    Running,
    Holders { limit: usize },
    Series { minutes: u32 },
    Objectives,
}

/// The routes, by path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Route<'a> {
    Health,
    Ready,
    Comprehensive,
    ResetAll,
    QueryPerformance,
    PoolTrends,
    SlowQueries,
    Errors,
    ResetErrors,
    Alerts,
    AlertHistory,
    Resolve(&'a str),
    Performance,
    ServerActivity,
    ServerLocks,
    ServerStatements,
    ServerLoad,
    ServerConnections,
    Running,
    Holders,
    Series,
    Objectives,
    Replicas,
    Dashboard(Asset),
}

impl<'a> Route<'a> {
    pub(super) fn of(segments: &[&'a str]) -> Option<Self> {
        Some(match *segments {
            [] => Route::Health,
            ["ready"] => Route::Ready,
            ["metrics", "comprehensive"] => Route::Comprehensive,
            ["metrics", "comprehensive", "reset"] => Route::ResetAll,
            ["metrics", "query-performance"] => Route::QueryPerformance,
            ["metrics", "pool-trends"] => Route::PoolTrends,
            ["metrics", "slow-queries"] => Route::SlowQueries,
            ["errors"] => Route::Errors,
            ["errors", "reset"] => Route::ResetErrors,
            ["alerts"] => Route::Alerts,
            ["alerts", "history"] => Route::AlertHistory,
            ["alerts", id, "resolve"] => Route::Resolve(id),
            ["performance"] => Route::Performance,
            ["server", "activity"] => Route::ServerActivity,
            ["server", "locks"] => Route::ServerLocks,
            ["server", "statements"] => Route::ServerStatements,
            ["server", "load"] => Route::ServerLoad,
            ["server", "connections"] => Route::ServerConnections,
            ["metrics", "running"] => Route::Running,
            ["metrics", "holders"] => Route::Holders,
            ["metrics", "series"] => Route::Series,
            ["objectives"] => Route::Objectives,
            ["replicas"] => Route::Replicas,
            ["dashboard"] => Route::Dashboard(Asset::Page),
            ["dashboard", "app.css"] => Route::Dashboard(Asset::Style),
            ["dashboard", "app.js"] => Route::Dashboard(Asset::Script),
            ["dashboard", "favicon.svg"] => Route::Dashboard(Asset::Icon),
            _ => return None,
        })
    }

    pub(super) fn mutates(self) -> bool {
        matches!(self, Route::ResetAll | Route::ResetErrors | Route::Resolve(_))
    }

    /// The reading route with its parameters.
    pub(super) fn read(self, q: &Query<'_>) -> Result<Option<Read>, Reject> {
        Ok(Some(match self {
            Route::Comprehensive => Read::Comprehensive {
                minutes: q.minutes()?.unwrap_or(60),
                limit: q.limit()?.unwrap_or(20),
            },
            Route::QueryPerformance => Read::QueryPerformance {
                minutes: q.minutes()?.unwrap_or(60),
                limit: q.limit()?.unwrap_or(20),
            },
            Route::PoolTrends => Read::PoolTrends { minutes: q.minutes()? },
            Route::SlowQueries => Read::SlowQueries {
                minutes: q.minutes()?,
                limit: q.limit()?.unwrap_or(20),
            },
            Route::Errors => Read::Errors {
                minutes: q.minutes()?,
                limit: q.limit()?.unwrap_or(100),
            },
            Route::Alerts => Read::Alerts,
            Route::AlertHistory => Read::AlertHistory {
                limit: q.limit()?.unwrap_or(50),
            },
            Route::Performance => Read::Performance {
                minutes: q.minutes()?.unwrap_or(60),
            },
            Route::ServerActivity => Read::ServerActivity,
            Route::ServerLocks => Read::ServerLocks,
            Route::ServerStatements => Read::ServerStatements {
                limit: q.limit()?.unwrap_or(20),
            },
            Route::ServerLoad => Read::ServerLoad {
                minutes: bounded(q.minutes, "minutes", crate::stats::db_load::MINUTES)?.unwrap_or(15),
            },
            Route::ServerConnections => Read::ServerConnections,
            Route::Running => Read::Running,
            Route::Holders => Read::Holders {
                limit: q.limit()?.unwrap_or(20),
            },
            Route::Series => Read::Series {
                minutes: bounded(q.minutes, "minutes", 60)?.unwrap_or(60) as u32,
            },
            Route::Objectives => Read::Objectives,
            Route::Health
            | Route::Ready
            | Route::Replicas
            | Route::ResetAll
            | Route::ResetErrors
            | Route::Resolve(_)
            | Route::Dashboard(_) => return Ok(None),
        }))
    }
}

/// The query string's `minutes` and `limit`.
pub(super) struct Query<'q> {
    minutes: Option<&'q str>,
    limit: Option<&'q str>,
}

impl<'q> Query<'q> {
    pub(super) fn parse(query: Option<&'q str>) -> Result<Self, Reject> {
        let mut q = Query {
            minutes: None,
            limit: None,
        };
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match key {
                "minutes" => &mut q.minutes,
                "limit" => &mut q.limit,
                _ => continue,
            };
            if slot.replace(value).is_some() {
                return Err(invalid(key, "is given more than once"));
            }
        }
        Ok(q)
    }

    pub(super) fn minutes(&self) -> Result<Option<u32>, Reject> {
        bounded(self.minutes, "minutes", MAX_WINDOW_MINUTES as usize).map(|m| m.map(|m| m as u32))
    }

    pub(super) fn limit(&self) -> Result<Option<usize>, Reject> {
        bounded(self.limit, "limit", MAX_LIMIT)
    }
}

/// A whole number from 1 to `max`, or nothing when absent.
pub(super) fn bounded(value: Option<&str>, name: &str, max: usize) -> Result<Option<usize>, Reject> {
    let Some(value) = value else { return Ok(None) };
    let why = format!("must be a whole number from 1 to {max}");
    if value.is_empty() || value.len() > 20 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(name, &why));
    }
    match value.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(Some(n)),
        _ => Err(invalid(name, &why)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::Route;

    /// The method and path of each row of the routes table in the layer's
    /// docs (`GET /metrics/series`, `POST /alerts/{id}/resolve`, …).
    fn documented() -> BTreeSet<(String, String)> {
        let docs = include_str!("mod.rs");
        let mut rows = BTreeSet::new();
        for line in docs.lines().filter(|l| l.starts_with("//! | `")) {
            let first = line.split('|').nth(1).expect("a first cell");
            for route in first.split(", ") {
                let route = route.trim().trim_matches('`');
                let (method, path) = route.split_once(' ').expect("`METHOD /path`");
                let path = path.split('?').next().unwrap_or(path);
                rows.insert((method.to_owned(), path.to_owned()));
            }
        }
        rows
    }

    fn method(route: Route<'_>) -> &'static str {
        if route.mutates() {
            "POST"
        } else {
            "GET"
        }
    }

    #[test]
    fn every_route_is_in_the_routes_table_and_every_row_is_a_route() {
        let documented = documented();
        assert!(documented.len() >= 20, "{documented:?}");
        for (method_of_row, path) in &documented {
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            let route = Route::of(&segments).unwrap_or_else(|| panic!("{path} is in the table but is no route"));
            assert_eq!(method(route), method_of_row, "{path}");
        }
        // Every pattern `Route::of` matches, read from its source.
        let source = include_str!("read.rs");
        let arms = source
            .split("pub(super) fn of(")
            .nth(1)
            .and_then(|rest| rest.split("_ => return None").next())
            .expect("Route::of's match");
        let mut known = 0;
        for (pattern, _) in arms
            .lines()
            .filter_map(|l| l.trim().strip_prefix('['))
            .filter_map(|l| l.split_once("] =>"))
        {
            let segments: Vec<&str> = pattern
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with('"') {
                        s.trim_matches('"')
                    } else {
                        "{id}"
                    }
                })
                .collect();
            let route = Route::of(&segments).expect("its own pattern");
            let path = format!("/{}", segments.join("/"));
            assert!(
                documented.contains(&(method(route).to_owned(), path.clone())),
                "{} {path} is a route missing from the table in layer/mod.rs",
                method(route)
            );
            known += 1;
        }
        assert_eq!(known, documented.len(), "rows and routes are one to one");
    }
}
