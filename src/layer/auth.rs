//! Who may use the routes: the admin token (its scheme, a comparison that
//! tells nothing, the slowing of guesses) and the application's read guard.

use http::header::{HeaderValue, AUTHORIZATION, RETRY_AFTER, WWW_AUTHENTICATE};
use http::StatusCode;

use super::answer::{error, reject, Reject};
use super::layer::LayerConfig;

/// Whether a reading route may answer this request: with the admin token
/// when reads need it, and as the read guard says.
pub(super) fn guard_read(config: &LayerConfig, parts: &http::request::Parts) -> Result<(), Reject> {
    if config.reads_need_token {
        authorize(config, parts, "reading routes")?;
    }
    read_guard(config, parts)
}

/// What the application's read guard says of this request.
pub(super) fn read_guard(config: &LayerConfig, parts: &http::request::Parts) -> Result<(), Reject> {
    if config.read_guard.as_ref().is_some_and(|allow| !allow(parts)) {
        return Err(reject(
            StatusCode::FORBIDDEN,
            "forbidden",
            "reading these routes is not allowed for this request",
            None,
        ));
    }
    Ok(())
}

/// The admin-token check: the mutating routes, and the reading ones when
/// they need it (`what` names them, for the answer when no token is
/// configured).
pub(super) fn authorize(config: &LayerConfig, parts: &http::request::Parts, what: &str) -> Result<(), Reject> {
    if config.admin_token.is_none() {
        return Err(reject(
            StatusCode::FORBIDDEN,
            "forbidden",
            &format!("{what} are disabled: no admin token is configured"),
            None,
        ));
    }
    let failures = &config.caches().failed_tokens;
    if !failures.open() {
        // Guessing is slowed for everyone: the admin waits a second.
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "too many wrong admin tokens: try again in a second",
            None,
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from_static("1"));
        return Err(response.into());
    }
    if token_matches(config, parts) {
        return Ok(());
    }
    failures.spend(1);
    let mut response = error(
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "this route needs Authorization: Bearer <admin token>",
        None,
    );
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    Err(response.into())
}

/// Whether the request carries the admin token: `Authorization: Bearer
/// <token>`, the scheme in any case (RFC 9110), the token compared in a
/// time that depends on neither the given token's length nor its bytes.
fn token_matches(config: &LayerConfig, parts: &http::request::Parts) -> bool {
    let Some(token) = &config.admin_token else { return false };
    let given = parts
        .headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim_start().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, given)| given.trim());
    given.is_some_and(|given| same_secret(given.as_bytes(), token.as_bytes()))
}

/// Whether `given` is `secret`, looking at every byte of `secret` and at
/// `given` only through it: the time taken is the same for every `given`.
/// (`subtle`'s slice comparison returns at once on a length mismatch,
/// which tells the secret's length.)
fn same_secret(given: &[u8], secret: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    let mut same = given.len().ct_eq(&secret.len());
    for (i, &s) in secret.iter().enumerate() {
        // Past its end, `given` is compared as zeros: the lengths differ,
        // so the answer is already no.
        let g = given.get(i).copied().unwrap_or(0);
        same &= g.ct_eq(&s);
    }
    bool::from(same)
}

/// Whether this request could read the reading routes (for what a passing
/// response may tell: `Server-Timing`).
pub(crate) fn may_read(config: &LayerConfig, parts: &http::request::Parts) -> bool {
    (!config.reads_need_token || token_matches(config, parts))
        && config.read_guard.as_ref().is_none_or(|allow| allow(parts))
}

#[cfg(test)]
mod tests {
    use super::same_secret;

    #[test]
    fn only_the_secret_itself_matches() {
        let secret = b"s3cret-token";
        assert!(same_secret(b"s3cret-token", secret));
        for given in [
            &b""[..],
            b"s3cret-toke",
            b"s3cret-token!",
            b"S3cret-token",
            b"s3cret-token\0",
        ] {
            assert!(!same_secret(given, secret), "{given:?}");
        }
    }
}
