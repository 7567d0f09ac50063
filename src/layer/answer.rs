//! The answers of the layer's routes: JSON bodies, JSON errors, and the
//! rejections a route returns early with.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{Response, StatusCode};
use serde::Serialize;

use super::budget::Budget;

pub(super) type Answer = Result<Response<Bytes>, Reject>;

/// An error answer, boxed to keep `Result`s small.
pub(crate) struct Reject(pub(super) Box<Response<Bytes>>);

impl From<Response<Bytes>> for Reject {
    fn from(response: Response<Bytes>) -> Self {
        Reject(Box::new(response))
    }
}

pub(super) fn reject(status: StatusCode, code: &str, message: &str, parameter: Option<&str>) -> Reject {
    error(status, code, message, parameter).into()
}

/// 429: the documents have sent their share of bytes for now.
pub(super) fn over_budget(budget: &Budget) -> Response<Bytes> {
    let mut response = error(
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        "the monitor's routes have sent their share of bytes for now (max_bytes_per_second)",
        None,
    );
    let seconds = budget.retry_after().as_secs().max(1);
    if let Ok(value) = HeaderValue::try_from(seconds.to_string()) {
        response.headers_mut().insert(RETRY_AFTER, value);
    }
    response
}

pub(super) fn invalid(parameter: &str, why: &str) -> Reject {
    reject(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        &format!("{parameter} {why}"),
        Some(parameter),
    )
}

/// The JSON of every error answer.
#[derive(Serialize)]
struct ErrorBody<'a> {
    status: u16,
    error: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameter: Option<&'a str>,
}

pub(super) fn error(status: StatusCode, code: &str, message: &str, parameter: Option<&str>) -> Response<Bytes> {
    json(
        status,
        &ErrorBody {
            status: status.as_u16(),
            error: code,
            message,
            parameter,
        },
    )
}

pub(super) fn json(status: StatusCode, value: &impl Serialize) -> Response<Bytes> {
    let body = serde_json::to_vec(value).unwrap_or_else(|e| {
        format!(
            "{{\"status\":500,\"error\":\"serialization\",\"message\":{:?}}}",
            e.to_string()
        )
        .into_bytes()
    });
    json_bytes(status, body)
}

pub(super) fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Response<Bytes> {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A handler's database error as an answer: its status and
/// `{"error":"<class>"}`, nothing of its message.
#[cfg(feature = "axum")]
impl axum::response::IntoResponse for crate::classify::DbError {
    fn into_response(self) -> axum::response::Response {
        let body = format!("{{\"error\":\"{}\"}}", self.kind().as_str());
        let mut response = axum::response::Response::new(axum::body::Body::from(body));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        response
    }
}
