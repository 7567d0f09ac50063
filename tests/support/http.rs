//! Calling a `DbMonitorLayer` service in-process (tower `oneshot`).

use std::convert::Infallible;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::ServiceExt;

/// What an in-process service behind a `DbMonitorLayer` looks like.
pub trait LayerService:
    tower::Service<
        Request<Full<Bytes>>,
        Response = Response<db_monitor::layer::ResponseBody<Full<Bytes>>>,
        Error = Infallible,
    > + Clone
{
}

impl<S> LayerService for S where
    S: tower::Service<
            Request<Full<Bytes>>,
            Response = Response<db_monitor::layer::ResponseBody<Full<Bytes>>>,
            Error = Infallible,
        > + Clone
{
}

/// One request, with the admin token as a bearer when given: its status,
/// headers and body.
pub async fn call<S: LayerService>(
    service: &S,
    method: Method,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let authorization = token.map(|token| format!("Bearer {token}"));
    call_with(service, method, uri, authorization.as_deref()).await
}

/// `method uri` with `authorization` as the header, as written.
pub async fn call_with<S: LayerService>(
    service: &S,
    method: Method,
    uri: &str,
    authorization: Option<&str>,
) -> (StatusCode, http::HeaderMap, Bytes) {
    let mut request = Request::builder().method(method).uri(uri);
    if let Some(authorization) = authorization {
        request = request.header("authorization", authorization);
    }
    let response = service
        .clone()
        .oneshot(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

/// `GET uri`, which must answer 200 with a JSON document.
pub async fn get_json<S: LayerService>(service: &S, uri: &str) -> Value {
    let (status, headers, body) = call(service, Method::GET, uri, None).await;
    assert_eq!(status, StatusCode::OK, "{uri}: {}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json", "{uri}");
    serde_json::from_slice(&body).unwrap()
}

/// A client for servers the tests start on loopback ports.
pub type TcpClient =
    hyper_util::client::legacy::Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

pub fn tcp_client() -> TcpClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// One request over TCP to a running server (`url` absolute): its status,
/// headers and body.
pub async fn over_tcp(client: &TcpClient, method: Method, url: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let request = Request::builder()
        .method(method)
        .uri(url)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(request).await.expect("request");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}
