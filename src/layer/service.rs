//! [`DbMonitorService`]: answers the routes under the prefix, passes every
//! other request to the inner service inside a request scope.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_layer::Layer;
use tower_service::Service;

use super::body::ResponseBody;
use super::future::ResponseFuture;
use super::labels::Labels;
use super::layer::{DbMonitorLayer, LayerConfig};
use crate::funnel::scope::{within, RequestDbStats, Scope};

/// The service [`DbMonitorLayer`](super::DbMonitorLayer) wraps around
/// `S`. Its error type is `S::Error`: monitoring never changes an outcome.
#[derive(Clone)]
pub struct DbMonitorService<S> {
    pub(crate) inner: S,
    pub(crate) config: Arc<LayerConfig>,
    /// The route labels this service's requests have had.
    labels: Arc<Labels>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for DbMonitorService<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbMonitorService")
            .field("inner", &self.inner)
            .field("prefix", &self.config.prefix)
            .finish_non_exhaustive()
    }
}

impl<S> DbMonitorService<S> {
    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S> Layer<S> for DbMonitorLayer {
    type Service = DbMonitorService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DbMonitorService {
            inner,
            config: self.config.clone(),
            labels: Arc::default(),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DbMonitorService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        if let Some(keep) = &self.config.keep {
            keep.ensure();
        }
        #[cfg(feature = "prometheus")]
        if let Some((path, handle)) = &self.config.prometheus {
            if request.uri().path() == path {
                let (parts, _body) = request.into_parts();
                return ResponseFuture::routed(super::routes::exposition(self.config.clone(), parts, handle.clone()));
            }
        }
        if let Some(rest) = self.config.ours(request.uri().path()) {
            let rest = rest.to_owned();
            // The routes read no body; it is dropped unread.
            let (parts, _body) = request.into_parts();
            return ResponseFuture::routed(super::routes::respond(self.config.clone(), parts, rest));
        }
        let route = match &self.config.route_of {
            Some(route_of) => {
                Route::Made(route_of(request.extensions(), request.uri()).map(super::layer::bounded_label))
            }
            None => default_route(&self.labels, &request),
        };
        // `Server-Timing` tells a client how long its request spent in the
        // database and how many statements it ran: only to clients that
        // may read the monitor's routes.
        let config = &self.config;
        let server_timing = config.server_timing
            && ((config.read_guard.is_none() && !config.reads_need_token) || {
                let (parts, body) = request.into_parts();
                let allowed = super::auth::may_read(config, &parts);
                request = Request::from_parts(parts, body);
                allowed
            });
        let scope = Arc::new(
            match route {
                Route::Made(route) => Scope::new(route.map(Arc::from)),
                Route::Known(route, id) => Scope::interned(Some(route), id),
            }
            .serial_reads_over(config.serial_each)
            .redundant_statements(config.redundant)
            .sql_comments(config.sql_comments),
        );
        if config.request_extension {
            request.extensions_mut().insert(RequestDbStats(scope.clone()));
        }
        // Statements run while the inner service builds its future count too.
        let mut scope = Some(scope);
        let future = within(&mut scope, || self.inner.call(request));
        ResponseFuture::passthrough(future, scope, self.config.clone(), server_timing)
    }
}

/// A request's route label: made for it, or known with its id.
enum Route {
    Made(Option<String>),
    #[cfg_attr(not(feature = "axum"), allow(dead_code))]
    Known(Arc<str>, u32),
}

/// The route of a request with no `route_label`: axum's matched route
/// after the method, from this service's labels; otherwise as
/// [`default_route`](super::layer::default_route) makes it.
#[inline]
fn default_route<B>(labels: &Labels, request: &Request<B>) -> Route {
    #[cfg(feature = "axum")]
    if let Some(matched) = request.extensions().get::<axum::extract::MatchedPath>() {
        let method = request.method();
        let made = || Some(super::layer::bounded_label(format!("{method} {}", matched.as_str())));
        return match labels.get(method, matched.as_str(), made) {
            Some((label, id)) => Route::Known(label, id),
            None => Route::Made(None),
        };
    }
    #[cfg(not(feature = "axum"))]
    let _ = labels;
    Route::Made(super::layer::default_route(request))
}

/// `RequestDbStats` as an axum extractor: the statistics of the request
/// whose handler takes it (from the request's scope, or its extensions).
/// A handler outside [`DbMonitorLayer`] gets 500 with the reason as text;
/// take `Option<RequestDbStats>` where that can happen.
#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::FromRequestParts<S> for RequestDbStats {
    type Rejection = (http::StatusCode, &'static str);

    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Self, Self::Rejection> {
        of_request(parts).ok_or((
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "RequestDbStats: this request did not pass through DbMonitorLayer",
        ))
    }
}

/// `Option<RequestDbStats>` as an axum extractor: `None` outside
/// [`DbMonitorLayer`].
#[cfg(feature = "axum")]
impl<S: Send + Sync> axum::extract::OptionalFromRequestParts<S> for RequestDbStats {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut http::request::Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(of_request(parts))
    }
}

#[cfg(feature = "axum")]
fn of_request(parts: &http::request::Parts) -> Option<RequestDbStats> {
    RequestDbStats::current().or_else(|| parts.extensions.get::<RequestDbStats>().cloned())
}
