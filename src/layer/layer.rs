//! [`DbMonitorLayer`]: the cheap-to-clone configuration.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::caches::Caches;
use super::source::RoutePool;
use crate::pool::PoolMonitor;

/// A predicate over a request's head (method, URI, headers, extensions).
pub(crate) type Guard = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;
/// Finds a request's route label.
pub(crate) type RouteOf = Arc<dyn Fn(&http::Extensions, &http::Uri) -> Option<String> + Send + Sync>;

/// Serves the database health routes of a pool and gives every other
/// request its own database statistics. See the [module docs](crate::layer).
///
/// Cheap to clone; the builder methods take and return it by value.
#[derive(Clone)]
#[must_use]
pub struct DbMonitorLayer {
    pub(crate) config: Arc<LayerConfig>,
}

/// The layer's settings, and the answers it shares once it serves.
#[derive(Clone)]
pub(crate) struct LayerConfig {
    pub(crate) pool: Arc<dyn RoutePool>,
    /// The prefix, without a trailing slash (`/health/database`).
    pub(crate) prefix: String,
    pub(crate) admin_token: Option<String>,
    pub(crate) server_timing: bool,
    /// Whether each passing request gets its `RequestDbStats` in its
    /// extensions.
    pub(crate) request_extension: bool,
    pub(crate) n_plus_one: u64,
    /// The serial-reads floors: each read, and the saving.
    pub(crate) serial_each: Duration,
    pub(crate) serial_saving: Duration,
    /// Whether statements sent twice with the same parameters are looked for.
    pub(crate) redundant: bool,
    /// Whether statements carry their request's route as a SQL comment.
    pub(crate) sql_comments: bool,
    pub(crate) read_guard: Option<Guard>,
    /// Whether the reading routes need the admin token.
    pub(crate) reads_need_token: bool,
    /// Whether `GET …/dashboard` is served.
    pub(crate) dashboard: bool,
    pub(crate) route_of: Option<RouteOf>,
    /// The replica set whose report `…/replicas` serves.
    pub(crate) replicas: Option<Arc<dyn Fn() -> crate::pool::ReplicaReport + Send + Sync>>,
    /// What the layer keeps alive while any clone of it lives (the
    /// background task's handle, from [`DbMonitor::layer`](crate::DbMonitor::layer)),
    /// started on the first request when the layer was made outside a
    /// runtime.
    pub(crate) keep: Option<Arc<Deferred>>,
    pub(crate) health_timeout: Duration,
    /// How long shared answers are reused.
    pub(crate) cache_for: Duration,
    /// The bytes per second documents and the exposition may send.
    pub(crate) max_bytes_per_second: Option<u64>,
    /// The shared answers, made on the first request.
    pub(crate) caches: Answers,
    /// The exposition route: its path and the recorder's handle.
    #[cfg(feature = "prometheus")]
    pub(crate) prometheus: Option<(String, metrics_exporter_prometheus::PrometheusHandle)>,
}

impl fmt::Debug for DbMonitorLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        f.debug_struct("DbMonitorLayer")
            .field("pool", &c.pool.name())
            .field("prefix", &c.prefix)
            .field("admin_token", &c.admin_token.as_ref().map(|_| "<set>"))
            .field("server_timing", &c.server_timing)
            .field("request_extension", &c.request_extension)
            .field("n_plus_one", &c.n_plus_one)
            .field("serial_reads", &(c.serial_each, c.serial_saving))
            .field("redundant_statements", &c.redundant)
            .field("sql_comments", &c.sql_comments)
            .field("read_guard", &c.read_guard.is_some())
            .field("reads_need_token", &c.reads_need_token)
            .field("dashboard", &c.dashboard)
            .field("route_of", &c.route_of.is_some())
            .field("keeps_background", &c.keep.is_some())
            .field("health_timeout", &c.health_timeout)
            .field("cache_for", &c.cache_for)
            .field("max_bytes_per_second", &c.max_bytes_per_second)
            .finish()
    }
}

impl DbMonitorLayer {
    /// A layer for `pool` (a [`MonitoredPool`](crate::MonitoredPool), or
    /// its [`PoolMonitor`]), serving its routes under `/health/database`.
    pub fn new(pool: impl Into<PoolMonitor>) -> Self {
        crate::funnel::scope::layer_created();
        let pool: PoolMonitor = pool.into();
        DbMonitorLayer {
            config: Arc::new(LayerConfig {
                pool: Arc::new(pool),
                prefix: "/health/database".to_owned(),
                admin_token: None,
                server_timing: false,
                request_extension: false,
                n_plus_one: 10,
                serial_each: Duration::from_millis(30),
                serial_saving: Duration::from_millis(50),
                redundant: false,
                sql_comments: false,
                read_guard: None,
                reads_need_token: false,
                dashboard: true,
                route_of: None,
                replicas: None,
                keep: None,
                health_timeout: Duration::from_millis(800),
                cache_for: Duration::from_secs(1),
                max_bytes_per_second: Some(4 << 20),
                caches: Answers::default(),
                #[cfg(feature = "prometheus")]
                prometheus: None,
            }),
        }
    }

    fn with(self, f: impl FnOnce(&mut LayerConfig)) -> Self {
        let mut config = Arc::unwrap_or_clone(self.config);
        f(&mut config);
        // Answers made under the old settings are not the new layer's.
        config.caches = Answers::default();
        DbMonitorLayer {
            config: Arc::new(config),
        }
    }

    /// Keeps `value` alive for as long as the layer or a service made from
    /// it lives.
    pub(crate) fn keeping(self, value: Deferred) -> Self {
        self.with(|c| c.keep = Some(Arc::new(value)))
    }

    /// Sets the path under which the routes are served (a leading `/` is
    /// added and trailing ones are dropped: `"db/"` is `/db`). The root
    /// (`""` or `"/"`) would put every request of the application under the
    /// layer's routes, so it is refused: the prefix stays as it was and the
    /// refusal is logged. Defaults to `/health/database`.
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        let mut prefix = prefix.into();
        while prefix.ends_with('/') {
            prefix.pop();
        }
        if prefix.is_empty() {
            tracing::warn!(
                prefix = %self.config.prefix,
                "DbMonitorLayer::prefix: the root would take every request of the application; the prefix is unchanged"
            );
            return self;
        }
        if !prefix.starts_with('/') {
            prefix.insert(0, '/');
        }
        self.with(|c| c.prefix = prefix)
    }

    /// Sets the token the mutating routes (`POST`) require as
    /// `Authorization: Bearer <token>` (the scheme in any case; the token
    /// without surrounding whitespace, compared in a time that tells
    /// neither its bytes nor its length). After ten wrong tokens in a
    /// second, token checks answer 429 for a second, so that guessing is
    /// slowed. Without a token the mutating routes are refused with 403; an
    /// empty or blank token counts as none (and is logged), so that no
    /// empty `Authorization` header can pass. Unset by default.
    pub fn admin_token(self, token: impl Into<String>) -> Self {
        let token = token.into().trim().to_owned();
        if token.is_empty() {
            tracing::warn!("an empty admin token was given to DbMonitorLayer: the mutating routes stay refused");
            return self.with(|c| c.admin_token = None);
        }
        self.with(|c| c.admin_token = Some(token))
    }

    /// Whether passing responses get a `Server-Timing: db;dur=…;desc="N
    /// queries"` header. It tells the client how long its request spent in
    /// the database and how many statements it ran, which can tell apart,
    /// for example, an account that exists from one that does not; so it
    /// is added only for requests that may read the monitor's routes (the
    /// [`read_guard`](Self::read_guard) and
    /// [`reads_need_token`](Self::reads_need_token) decide). Defaults to
    /// `false`: the header costs about 770 instructions a request (its
    /// value, an allocation, and its insert into the response's headers;
    /// benches/README.md), and what it tells is the application's to give.
    pub fn server_timing(self, on: bool) -> Self {
        self.with(|c| c.server_timing = on)
    }

    /// Whether each passing request also carries its [`RequestDbStats`]
    /// in its extensions (`request.extensions().get::<RequestDbStats>()`,
    /// or axum's `Extension<RequestDbStats>`). Defaults to `false`:
    /// handlers get it without that from [`RequestDbStats::current`] or, in
    /// axum, by taking `RequestDbStats` as an extractor; the insert costs
    /// about 1,000 instructions a request (a boxed value and, as often as
    /// not, the extensions' map grown).
    ///
    /// [`RequestDbStats`]: crate::RequestDbStats
    /// [`RequestDbStats::current`]: crate::RequestDbStats::current
    pub fn request_extension(self, on: bool) -> Self {
        self.with(|c| c.request_extension = on)
    }

    /// Sets how many runs of one statement in one request make an N+1
    /// pattern (more than this many). Defaults to 10.
    pub fn n_plus_one_threshold(self, runs: u64) -> Self {
        self.with(|c| c.n_plus_one = runs)
    }

    /// Sets the floors of serial-reads detection: reads of one request
    /// that ran one after another (each began after the one before ended,
    /// no write between them), each taking `each` or longer, are flagged
    /// when running them together would have saved `saving` or more (their
    /// durations summed less the longest) and at least a tenth of their
    /// time: Sentry's "consecutive DB queries" rule, with a lower saving
    /// floor (Sentry's is 100 ms: three 40 ms reads that could take 40 ms
    /// take 120). Counted by route and statements
    /// ([`PoolMonitor::serial_reads`](crate::PoolMonitor::serial_reads)),
    /// and logged once per pattern. Defaults to 30 ms and 50 ms;
    /// `Duration::MAX` for `each` looks at no read. A statement under the
    /// floor costs the check one compare.
    pub fn serial_reads(self, each: Duration, saving: Duration) -> Self {
        self.with(|c| {
            c.serial_each = each;
            c.serial_saving = saving;
        })
    }

    /// Whether to look for redundant statements: one statement sent twice
    /// or more with the same parameters within one request (its answer
    /// could have been kept). `query`, `query_one`, `query_opt` and
    /// `execute` hash their parameters' `Debug` forms for it; the hashes
    /// are compared within the request and never kept or shown. Counted by
    /// route and statement
    /// ([`PoolMonitor::redundant_statements`](crate::PoolMonitor::redundant_statements))
    /// and logged once per pattern. Defaults to `false`: formatting and
    /// hashing the parameters costs about 600 instructions a statement
    /// (the statement's table lookup included), past the cost budget of a
    /// request (benches/README.md). Off, a statement pays one load.
    pub fn redundant_statements(self, on: bool) -> Self {
        if on {
            crate::funnel::scope::params_wanted_somewhere();
        }
        self.with(|c| c.redundant = on)
    }

    /// Whether the statements of a request carry its route as a SQL
    /// comment in the [sqlcommenter](https://google.github.io/sqlcommenter/spec/)
    /// format, `SELECT … /*route='GET%20%2Fusers%2F%7Bid%7D'*/`, so that
    /// what reads the server's statement texts (`pg_stat_activity`, the
    /// server's log, pganalyze, Datadog DBM, `pg_stat_monitor`, Cloud SQL
    /// Query Insights) can tell which route sent them.
    ///
    /// - **What is tagged**: statements given as text to `query`,
    ///   `query_one`, `query_opt` and `execute`, and `prepare` and
    ///   `prepare_cached` (a prepared statement keeps the route it was
    ///   prepared in; `prepare_cached` keeps one variant per route and
    ///   statement on each connection, so the cache holds more entries).
    ///   Statements with a comment of their own are left alone, as are the
    ///   stream, `_typed`, `execute_raw`, `simple_query` and
    ///   `batch_execute` methods, and statements outside a request or
    ///   without a route.
    /// - **What it says**: the route label, percent-encoded (no parameter
    ///   or literal); the same label the route's metrics carry. With a
    ///   [`MonitorConfig::trace_context`](crate::MonitorConfig::trace_context),
    ///   a statement sent as text also carries its `traceparent`
    ///   (`/*route='…',traceparent='00-…-01'*/`), so that a trace and the
    ///   server's view of its statement meet; a prepared one does not (it
    ///   would be prepared again for every trace).
    ///   `pg_stat_statements` ignores comments: a statement from two
    ///   routes is still one row there, and the monitor records it as
    ///   written.
    /// - **Cost**: off (the default), one load a statement. On, the text is
    ///   copied with its comment and the statement's future boxed (an
    ///   allocation each), and the server parses the longer text.
    pub fn sql_comments(self, on: bool) -> Self {
        if on {
            crate::funnel::scope::comments_wanted_somewhere();
        }
        self.with(|c| c.sql_comments = on)
    }

    /// Guards the reading routes (`GET`): a request for which `allow`
    /// returns `false` gets 403. Everyone may read by default.
    pub fn read_guard(self, allow: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static) -> Self {
        self.with(|c| c.read_guard = Some(Arc::new(allow)))
    }

    /// Whether the reading routes (every `GET` under the prefix but the
    /// health check on the prefix itself, and `/metrics`) need the admin
    /// token, like the mutating routes: 401 without it, 403 when no token
    /// is configured. The health check stays open for load balancers, and
    /// the dashboard's page and assets, which hold no data, load without
    /// it (a browser sends no `Authorization` when it opens a page; the
    /// page asks for the token and sends it with each read).
    /// Defaults to `false`: see [Who may read and change](crate::layer#who-may-read-and-change) for why.
    pub fn reads_need_token(self, on: bool) -> Self {
        self.with(|c| c.reads_need_token = on)
    }

    /// Whether `GET {prefix}/dashboard` serves the dashboard page (and its
    /// stylesheet and script at `…/dashboard/app.css` and `app.js`).
    /// Defaults to `true`. The page shows what the reading routes show and
    /// fetches them from the browser, so the same guard protects it: the
    /// [`read_guard`](Self::read_guard) refuses the page and its assets
    /// like any reading route, and with
    /// [`reads_need_token`](Self::reads_need_token) they need the token
    /// (the page then asks for it and sends it as a bearer).
    pub fn dashboard(self, on: bool) -> Self {
        self.with(|c| c.dashboard = on)
    }

    /// Sets how a request's route label is found: from its extensions and
    /// URI. Never return a raw path that carries ids: it becomes a label.
    ///
    /// By default, with the `axum` feature (on by default), a request axum
    /// 0.8 routed is labelled with its method and matched route
    /// (`GET /stories/{id}`); a gRPC request (`content-type:
    /// application/grpc…`, as tonic sends) with its path
    /// (`/package.Service/Method`); any other request has no route. On axum
    /// 0.7, whose `MatchedPath` is another type, read it here:
    /// `|ext, _| ext.get::<axum07::extract::MatchedPath>().map(|m| m.as_str().to_owned())`.
    ///
    /// A label longer than 256 bytes is cut there (ending in `…`). A label
    /// should come from a fixed set (the routes, not the paths): each
    /// distinct one takes a row of the route table (at most 200, and
    /// 64 KiB of labels) and of the metric-free interning table.
    pub fn route_label(
        self,
        route_of: impl Fn(&http::Extensions, &http::Uri) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.with(|c| c.route_of = Some(Arc::new(route_of)))
    }

    /// Serves `set`'s [`ReplicaReport`](crate::ReplicaReport) at
    /// `GET {prefix}/replicas` (`null` without a set), and shows it on the
    /// dashboard: each replica's health, load and reads.
    pub fn replicas<Tls: crate::MakeTls>(self, set: &crate::ReplicaSet<Tls>) -> Self {
        let set = set.clone();
        self.with(|c| c.replicas = Some(Arc::new(move || set.report())))
    }

    /// Serves the Prometheus exposition of `handle` at `GET /metrics`
    /// (outside the prefix; `HEAD` too, and the read guard applies). Not
    /// served by default. See [`crate::prometheus`].
    #[cfg(feature = "prometheus")]
    pub fn prometheus(self, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        self.prometheus_at("/metrics", handle)
    }

    /// Like [`prometheus`](Self::prometheus), at `path` instead of `/metrics`.
    #[cfg(feature = "prometheus")]
    pub fn prometheus_at(self, path: impl Into<String>, handle: metrics_exporter_prometheus::PrometheusHandle) -> Self {
        let path = path.into();
        self.with(|c| c.prometheus = Some((path, handle)))
    }

    /// Sets how long `GET /health/database` waits for a connection and
    /// `SELECT 1` before answering 503. Defaults to 800 ms, so that the
    /// verdict comes within Kubernetes' default probe timeout of 1 s (a
    /// probe that times out is a failure too, but says nothing of why).
    ///
    /// The check is the monitor's own work: its checkout and `SELECT 1`
    /// are not counted among the application's statements and checkouts,
    /// nor in the forecast's demand. One check runs at a time, on at most
    /// one of the pool's connections, whoever asks meanwhile (the callers
    /// share its verdict); a client that gives up does not stop it, so the
    /// next caller gets its verdict. A connection whose `SELECT 1` got no
    /// answer in time is retired, not handed to the application with the
    /// statement in flight.
    pub fn health_timeout(self, timeout: Duration) -> Self {
        self.with(|c| c.health_timeout = timeout)
    }

    /// Sets how long an answer of the reading routes, of the health route
    /// and of `/metrics` is reused before it is computed again. Whatever
    /// it is, each answer is computed once at a time and shared by the
    /// requests that wait for it, reports and the exposition are computed
    /// on Tokio's blocking pool (one at a time), and a mutating route
    /// forgets every answer; so a flood of monitor requests costs the
    /// application about what one request does. `Duration::ZERO` shares
    /// only among requests that wait together. Defaults to 1 s.
    pub fn cache_for(self, fresh_for: Duration) -> Self {
        self.with(|c| c.cache_for = fresh_for)
    }

    /// Sets how many bytes per second, on average, the reading routes'
    /// documents and `/metrics` may send; past it they answer 429 with
    /// `Retry-After` until the average is back under it (an answer larger
    /// than a second's worth is still sent, and paid for afterwards). The
    /// health check and error answers are not counted. So a flood of large
    /// documents, even cached ones, cannot take the application's
    /// bandwidth and cores; a scraper or a person never meets the limit.
    /// A document is paid for when it is computed, even if the client
    /// that asked for it has gone, and concurrent requests are checked one
    /// after the other, so neither dropped nor parallel requests get past
    /// the limit. `None` removes it; `Some(0)` is taken as one byte per
    /// second. Defaults to 4 MiB/s.
    pub fn max_bytes_per_second(self, limit: Option<u64>) -> Self {
        self.with(|c| c.max_bytes_per_second = limit)
    }
}

impl LayerConfig {
    /// The part of `path` after the prefix, if `path` is under it.
    pub(crate) fn ours<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// The shared answers, made on first use with the layer's `cache_for`.
    pub(crate) fn caches(&self) -> &Caches {
        self.caches
            .0
            .get_or_init(|| Caches::new(self.cache_for, self.max_bytes_per_second))
    }
}

/// The answers a layer shares, made on its first request. A copy of the
/// settings starts without them: they belong to the layer they were made
/// for (its freshness and byte budget).
#[derive(Default)]
pub(crate) struct Answers(OnceLock<Caches>);

impl Clone for Answers {
    fn clone(&self) -> Self {
        Answers::default()
    }
}

/// The route label of a request with no [`route_label`](DbMonitorLayer::route_label):
/// axum's matched route after the method (`GET /stories/{id}`), or the path
/// of a gRPC request (`/package.Service/Method`, a fixed set), or none.
pub(crate) fn default_route<B>(request: &http::Request<B>) -> Option<String> {
    #[cfg(feature = "axum")]
    if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
        return Some(format!("{} {}", request.method(), matched.as_str()));
    }
    let grpc = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
    let path = request.uri().path();
    // No service names a method longer than this; a longer path is not a
    // method but a client's invention, and no label.
    (grpc && path.len() <= MAX_GRPC_PATH).then(|| path.to_owned())
}

/// The longest gRPC path taken as a route label.
const MAX_GRPC_PATH: usize = 256;

/// The longest route label kept, in bytes: a longer one (a raw path from a
/// `route_label`) is cut on a character boundary and ends in `…`, so that
/// no client's path can grow the route tables.
pub(crate) const MAX_ROUTE_LABEL: usize = 256;

/// `label`, at most [`MAX_ROUTE_LABEL`] bytes.
pub(crate) fn bounded_label(mut label: String) -> String {
    if label.len() > MAX_ROUTE_LABEL {
        let mut end = MAX_ROUTE_LABEL - '…'.len_utf8();
        while !label.is_char_boundary(end) {
            end -= 1;
        }
        label.truncate(end);
        label.push('…');
    }
    label
}

/// A value made once, inside a Tokio runtime: at once when there is one,
/// else by the first request (which always runs in one). The background
/// task cannot be spawned outside a runtime, and a router is often built
/// before one starts.
pub(crate) struct Deferred {
    made: std::sync::OnceLock<Box<dyn std::any::Any + Send + Sync>>,
    #[allow(clippy::type_complexity)]
    make: Box<dyn Fn() -> Box<dyn std::any::Any + Send + Sync> + Send + Sync>,
}

impl Deferred {
    /// Makes the value now if a runtime is running here, else on the first
    /// [`ensure`](Self::ensure) called inside one.
    pub(crate) fn new(make: impl Fn() -> Box<dyn std::any::Any + Send + Sync> + Send + Sync + 'static) -> Self {
        let deferred = Deferred {
            made: std::sync::OnceLock::new(),
            make: Box::new(make),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            deferred.ensure();
        }
        deferred
    }

    /// Makes the value unless it is made (one atomic load once it is).
    #[inline]
    pub(crate) fn ensure(&self) {
        if self.made.get().is_none() {
            self.made.get_or_init(|| (self.make)());
        }
    }
}
