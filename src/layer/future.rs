//! [`ResponseFuture`]: the inner service's future inside the request's
//! scope, or one of the layer's routes.

use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::Response;
use pin_project_lite::pin_project;

use super::body::ResponseBody;
use super::layer::LayerConfig;
use crate::funnel::scope::{within, Scope};

/// A route's answer, being computed.
pub(crate) type Routed = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// The response future of [`DbMonitorService`](super::DbMonitorService).
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: Kind<F>,
        _body: PhantomData<fn() -> B>,
    }

    impl<F, B> PinnedDrop for ResponseFuture<F, B> {
        fn drop(this: Pin<&mut Self>) {
            // Dropped before its answer: a client that gave up, or a
            // timeout around the service. The inner future is dropped in
            // the request's scope (the statements it abandons are the
            // request's), and the request still counts.
            if let KindProj::Passthrough { mut future, scope, config, done, .. } = this.project().kind.project() {
                if !*done {
                    within(scope, || future.set(None));
                    if let Some(scope) = scope.as_deref() {
                        dropped(scope, config);
                    }
                }
            }
        }
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Passthrough {
            // `None` once dropped early.
            #[pin]
            future: Option<F>,
            // The request's scope: current on the thread while `future` is
            // polled (and `None` here then).
            scope: Option<Arc<Scope>>,
            config: Arc<LayerConfig>,
            server_timing: bool,
            // Read only when a route has an objective.
            start: Option<quanta::Instant>,
            done: bool,
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
        future: F,
        scope: Option<Arc<Scope>>,
        config: Arc<LayerConfig>,
        server_timing: bool,
    ) -> Self {
        let start = config.pool.times_requests().then(crate::units::now);
        ResponseFuture {
            kind: Kind::Passthrough {
                future: Some(future),
                scope,
                config,
                start,
                server_timing,
                done: false,
            },
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
            KindProj::Passthrough {
                future,
                scope,
                config,
                server_timing,
                start,
                done,
            } => {
                let Some(future) = future.as_pin_mut() else {
                    // Never: it is dropped only with the response future.
                    return Poll::Pending;
                };
                let result = ready!(within(scope, || future.poll(cx)));
                *done = true;
                let Some(scope) = scope.as_deref() else {
                    // Never: the scope is moved back after each poll.
                    return Poll::Ready(result.map(|response| response.map(ResponseBody::inner)));
                };
                let elapsed = start.map_or(Duration::ZERO, |start| {
                    crate::units::now().saturating_duration_since(start)
                });
                let mut response = match result {
                    Ok(response) => response,
                    Err(error) => {
                        // The service failed: no answer, a bad request.
                        request_done(scope, config, elapsed, true);
                        return Poll::Ready(Err(error));
                    }
                };
                finish(scope, config, *server_timing, elapsed, &mut response);
                Poll::Ready(Ok(response.map(ResponseBody::inner)))
            }
            KindProj::Routed { future } => {
                let response = ready!(future.as_mut().poll(cx));
                Poll::Ready(Ok(response.map(ResponseBody::json)))
            }
        }
    }
}

/// What a finished request leaves behind: its `Server-Timing` entry, its
/// route's figures and objectives, and its N+1 patterns.
fn finish<B>(scope: &Scope, config: &LayerConfig, server_timing: bool, elapsed: Duration, response: &mut Response<B>) {
    if server_timing {
        let (statements, time) = scope.totals();
        if let Some(value) = server_timing_value(statements, time) {
            response.headers_mut().append(SERVER_TIMING, value);
        }
    }
    let bad = response.status().is_server_error();
    request_done(scope, config, elapsed, bad);
    for (fingerprint, runs) in scope.repeated_over(config.n_plus_one) {
        config
            .pool
            .n_plus_one(scope.origin(), fingerprint, runs, config.n_plus_one);
    }
    for (fingerprint, runs) in scope.redundant() {
        config.pool.redundant(scope.origin(), fingerprint, runs);
    }
    if let Some(run) = scope.serial_run() {
        let saving = run.saving_ns();
        if saving >= crate::units::saturating_nanos(config.serial_saving) && saving.saturating_mul(10) >= run.summed_ns
        {
            config.pool.serial_reads(scope.origin(), &run);
        }
    }
}

/// The header's name, made once (`from_static` checks its bytes at every
/// call).
const SERVER_TIMING: HeaderName = HeaderName::from_static("server-timing");

/// `db;dur=4.378;desc="13 queries"` (milliseconds with three decimals),
/// written into a buffer on the stack: no `core::fmt`, one allocation (the
/// header's own).
fn server_timing_value(statements: u64, time: Duration) -> Option<HeaderValue> {
    let mut out = Buf::default();
    let micros = crate::units::saturating_nanos(time) / 1000;
    out.push(b"db;dur=");
    out.number(micros / 1000);
    let fraction = micros % 1000;
    out.push(&[
        b'.',
        b'0' + (fraction / 100) as u8,
        b'0' + (fraction / 10 % 10) as u8,
        b'0' + (fraction % 10) as u8,
    ]);
    out.push(b";desc=\"");
    out.number(statements);
    out.push(if statements == 1 { b" query\"" } else { b" queries\"" });
    HeaderValue::from_bytes(out.bytes()).ok()
}

/// A small buffer on the stack (a `Server-Timing` value is under 64 bytes:
/// two numbers of at most 20 digits and 29 fixed bytes).
struct Buf {
    bytes: [u8; 80],
    len: usize,
}

impl Default for Buf {
    fn default() -> Self {
        Buf { bytes: [0; 80], len: 0 }
    }
}

impl Buf {
    fn push(&mut self, bytes: &[u8]) {
        let end = (self.len + bytes.len()).min(self.bytes.len());
        self.bytes[self.len..end].copy_from_slice(&bytes[..end - self.len]);
        self.len = end;
    }

    fn number(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push(&digits[at..]);
    }

    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Records the request with its route: its statements, and whether it
/// went bad (`bad`, or a statement failed).
fn request_done(scope: &Scope, config: &LayerConfig, elapsed: Duration, bad: bool) {
    let (statements, time) = scope.totals();
    let failed = scope.failed();
    match scope.route() {
        Some(route) => config
            .pool
            .request_done(route, (statements, time, failed), elapsed, bad || failed),
        None if statements > 0 => unrouted(),
        None => {}
    }
}

/// A request dropped before its answer: bad, and as slow as can be for
/// its latency objective (it never got an answer).
#[cold]
fn dropped(scope: &Scope, config: &LayerConfig) {
    request_done(scope, config, Duration::MAX, true);
}

/// Says once per process that requests run statements with no route to
/// label them by (axum 0.7, or a framework the layer does not know), and
/// how to give them one.
fn unrouted() {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.load(std::sync::atomic::Ordering::Relaxed) && !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            "requests run database statements but carry no route: their statistics, N+1 patterns and \
             errors are not joined to a route. The layer reads axum 0.8's MatchedPath and gRPC paths; \
             on axum 0.7 or another framework set DbMonitorLayer::route_label (see its docs)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_timing_value_is_written_by_hand_as_by_format() {
        for (statements, time) in [
            (0, Duration::ZERO),
            (1, Duration::from_micros(4_378)),
            (13, Duration::from_micros(4_378)),
            (2, Duration::from_nanos(999)),
            (u64::MAX, Duration::from_secs(u64::MAX / 1_000_000_000)),
            (7, Duration::from_micros(123_456_007)),
        ] {
            let micros = crate::units::saturating_nanos(time) / 1000;
            let expected = format!(
                "db;dur={}.{:03};desc=\"{statements} {}\"",
                micros / 1000,
                micros % 1000,
                if statements == 1 { "query" } else { "queries" }
            );
            let value = server_timing_value(statements, time).unwrap();
            assert_eq!(value.to_str().unwrap(), expected);
        }
    }
}
