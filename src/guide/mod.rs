//! The guide: how the monitor works, chapter by chapter.
//!
//! The chapters here explain what has no type of its own to hang on. The
//! rest of the guide sits in the modules it is about:
//!
//! | to learn | read |
//! |---|---|
//! | what is recorded, from where, and the error classes | [`recording`] |
//! | what text leaves the process (and what never does) | [`privacy`] |
//! | the metrics, their names, units, labels and buckets | [`names`](crate::names) |
//! | Prometheus, Grafana and Alertmanager; native histograms | [`prometheus`](crate::prometheus) |
//! | metrics over OTLP | [`otlp`](crate::otlp) (feature `otlp`) |
//! | the stores and the reports read from them | [`stats`](crate::stats), [`report`](crate::report) (the score) |
//! | alerts: the 15 rules, their lifecycle, notifiers | [`alerts`](crate::alerts) |
//! | the tower layer, its routes, who may read them, the dashboard | [`layer`](crate::layer) |
//! | liveness and readiness; shedding load | [`layer`](crate::layer#liveness-and-readiness), [`Readiness`](crate::Readiness), [`ShedLayer`](crate::ShedLayer) |
//! | failing fast while the database is out of reach | [`MonitorConfig::fail_fast`](crate::MonitorConfig::fail_fast) |
//! | objectives per route and their burn-rate alerts | [`Objective`](crate::Objective), [`prometheus::objective_rules`](crate::prometheus::objective_rules) |
//! | reads balanced over replicas | [`ReplicaSet`](crate::ReplicaSet) |
//! | abandoned statements and streams read in part | [`abandoned`] |
//! | the server view (`pg_stat_activity`, locks, `pg_stat_statements`) | [`server_view`] |
//! | spans and the trace context shown to the server | [`spans`] |
//! | the pool exhaustion forecast and statement anomalies | [`forecasts`] |
//! | every setting, its default and its variable | [`MonitorConfig::from_env`](crate::MonitorConfig::from_env), [`MonitorConfig`](crate::MonitorConfig) (pool sizing) |
//! | moving a bb8-postgres application | [`migrating`](crate::migrating) |
//! | the background task | [`background`](crate::background) |

pub mod abandoned;
pub mod forecasts;
pub mod privacy;
pub mod recording;
pub mod server_view;
pub mod spans;
