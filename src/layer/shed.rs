//! [`ShedLayer`]: answers 503 at once, before the handler runs, when the
//! pool's expected checkout wait is over the request's budget.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::body::ResponseBody;
use crate::pool::PoolMonitor;

/// Sheds requests instead of queueing them for a connection: while
/// checkouts wait, a request whose expected wait
/// ([`PoolMonitor::expected_wait`]: the checkouts ahead of it over the rate
/// at which the pool has served them in the last ten seconds, or the time
/// since it last served one if that is longer) is over its budget is answered `503 Service Unavailable`, with
/// `Retry-After` and a JSON body, before its handler runs. A request that
/// would wait anyway for a connection it cannot get in time is cheaper
/// refused at once than after the pool's 30 s timeout, and the requests
/// already queued are served sooner. Nothing is shed while no checkout
/// waits: the check is then one atomic read.
///
/// Opt-in, and placed where you choose: on the whole router, or on the
/// routes that use the database. Put [`DbMonitorLayer`](crate::DbMonitorLayer)
/// outside it (added after it, in axum) so that the monitor's own routes
/// (`…/ready` among them) are never shed. Shed requests are counted in
/// `db_monitor_requests_shed_total`, in the `…/ready` document's load,
/// and on the dashboard.
///
/// ```no_run
/// # use std::time::Duration;
/// # use axum::{routing::get, Router};
/// # use db_monitor::{DbMonitorLayer, MonitoredPool, ShedLayer, tokio_postgres::NoTls};
/// # fn app(pool: MonitoredPool<NoTls>) -> Router {
/// Router::new()
///     .route("/orders", get(|| async { "…" }))
///     .layer(ShedLayer::new(&pool).budget(Duration::from_millis(500)))
///     .layer(DbMonitorLayer::new(pool))
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct ShedLayer {
    pool: PoolMonitor,
    budget: Duration,
    retry_after: Duration,
}

impl ShedLayer {
    /// Sheds for `pool` (a [`MonitoredPool`](crate::MonitoredPool),
    /// [`MonitoredDeadpool`](crate::MonitoredDeadpool) or their
    /// [`PoolMonitor`]), with a budget of 1 s.
    pub fn new(pool: impl Into<PoolMonitor>) -> Self {
        ShedLayer {
            pool: pool.into(),
            budget: Duration::from_secs(1),
            retry_after: Duration::from_secs(1),
        }
    }

    /// Sets the longest a request may expect to wait for a connection
    /// before it is shed. Defaults to 1 s.
    pub fn budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// Sets the `Retry-After` of a shed answer, in whole seconds (at least
    /// one). Defaults to 1 s.
    pub fn retry_after(mut self, d: Duration) -> Self {
        self.retry_after = d;
        self
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = ShedService<S>;

    fn layer(&self, inner: S) -> ShedService<S> {
        ShedService {
            inner,
            config: self.clone(),
        }
    }
}

/// The service a [`ShedLayer`] wraps around `S`. Its error type is
/// `S::Error`; a shed request is an answer, not an error.
#[derive(Clone, Debug)]
pub struct ShedService<S> {
    inner: S,
    config: ShedLayer,
}

impl<S> ShedService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ShedService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ShedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let budget = self.config.budget;
        match self.config.pool.expected_wait() {
            Some(expected) if expected <= budget => ShedFuture {
                kind: Kind::Inner {
                    future: self.inner.call(request),
                },
            },
            expected => {
                self.config.pool.shed();
                ShedFuture {
                    kind: Kind::Shed {
                        response: Some(shed(expected, budget, self.config.retry_after)),
                    },
                }
            }
        }
    }
}

/// The 503 of a shed request.
#[cold]
fn shed(expected: Option<Duration>, budget: Duration, retry_after: Duration) -> Response<bytes::Bytes> {
    let message = match expected {
        Some(wait) => format!("the database pool is saturated: expected wait {wait:.1?}, budget {budget:?}"),
        None => {
            format!("the database pool is saturated: checkouts wait and none was served lately (budget {budget:?})")
        }
    };
    let mut response = super::answer::error(StatusCode::SERVICE_UNAVAILABLE, "overloaded", &message, None);
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(retry_after.as_secs().max(1)));
    response
}

pin_project! {
    /// The response future of [`ShedService`]: the inner service's, or the
    /// shed answer.
    #[derive(Debug)]
    pub struct ShedFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    #[derive(Debug)]
    enum Kind<F> {
        Inner {
            #[pin]
            future: F,
        },
        Shed {
            response: Option<Response<bytes::Bytes>>,
        },
    }
}

impl<F, B, E> Future for ShedFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_ok(|response| response.map(ResponseBody::inner)),
            KindProj::Shed { response } => {
                let response = response.take().expect("a shed answer is polled after it finished");
                Poll::Ready(Ok(response.map(ResponseBody::json)))
            }
        }
    }
}
