//! [`ResponseFuture`]: the inner service's future inside the request's
//! scope, or one of the layer's routes.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Response;
use pin_project_lite::pin_project;
use tokio::task::futures::TaskLocalFuture;

use super::body::ResponseBody;
use super::layer::LayerConfig;
use super::scope::Scope;

/// A route's answer, being computed.
pub(crate) type Routed = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// The response future of [`DbMonitorService`](super::DbMonitorService).
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F>,
        _body: PhantomData<fn() -> B>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Passthrough {
            #[pin]
            future: TaskLocalFuture<Arc<Scope>, F>,
            scope: Arc<Scope>,
            config: Arc<LayerConfig>,
        },
        Routed {
            future: Routed,
        },
    }
}

impl<F, B> std::fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.kind {
            Kind::Passthrough { .. } => "ResponseFuture::Passthrough",
            Kind::Routed { .. } => "ResponseFuture::Routed",
        })
    }
}

impl<F, B> ResponseFuture<F, B> {
    pub(crate) fn passthrough(
        future: TaskLocalFuture<Arc<Scope>, F>,
        scope: Arc<Scope>,
        config: Arc<LayerConfig>,
    ) -> Self {
        ResponseFuture {
            kind: Kind::Passthrough { future, scope, config },
            _body: PhantomData,
        }
    }

    pub(crate) fn routed(future: Routed) -> Self {
        ResponseFuture {
            kind: Kind::Routed { future },
            _body: PhantomData,
        }
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough { future, scope, config } => {
                let mut response = ready!(future.poll(cx))?;
                finish(scope, config, &mut response);
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Routed { future } => {
                let response = ready!(future.as_mut().poll(cx));
                Poll::Ready(Ok(response.map(ResponseBody::json)))
            }
        }
    }
}

/// What a finished request leaves behind: its `Server-Timing` entry and
/// its N+1 patterns.
fn finish<B>(scope: &Scope, config: &LayerConfig, response: &mut Response<B>) {
    let stats = scope.snapshot();
    if config.server_timing {
        let value = format!(
            "db;dur={:.3};desc=\"{} {}\"",
            stats.database_time.as_secs_f64() * 1e3,
            stats.statements,
            if stats.statements == 1 { "query" } else { "queries" }
        );
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .append(HeaderName::from_static("server-timing"), value);
        }
    }
    for repeated in stats.repeated.iter().filter(|r| r.runs > config.n_plus_one) {
        config
            .pool
            .n_plus_one(scope.route(), repeated.fingerprint, repeated.runs, config.n_plus_one);
    }
}
