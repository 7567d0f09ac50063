//! `GET {prefix}/dashboard`: one HTML page, its stylesheet and its script,
//! compiled into the crate. The script draws SVG charts from the JSON
//! routes; nothing comes from anywhere else, and the
//! `Content-Security-Policy` says so to the browser.

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS};
use http::{Response, StatusCode};

/// One of the dashboard's files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Asset {
    Page,
    Style,
    Script,
    Icon,
}

const PAGE: &str = include_str!("dashboard/index.html");
const STYLE: &str = include_str!("dashboard/app.css");
const SCRIPT: &str = include_str!("dashboard/app.js");
const ICON: &str = include_str!("dashboard/favicon.svg");

/// Everything but this origin's scripts, styles and fetches is refused:
/// no inline script or style, no other origin, no frame, no form, no
/// plugin. Images only as inline SVG (part of the DOM, not a fetch).
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                      img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The answer for `asset`.
pub(crate) fn serve(asset: Asset) -> Response<Bytes> {
    let (body, content_type) = match asset {
        Asset::Page => (PAGE, "text/html; charset=utf-8"),
        Asset::Style => (STYLE, "text/css; charset=utf-8"),
        Asset::Script => (SCRIPT, "text/javascript; charset=utf-8"),
        Asset::Icon => (ICON, "image/svg+xml"),
    };
    let mut response = Response::new(Bytes::from_static(body.as_bytes()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // Revalidated on each load: an upgrade of the crate shows at once.
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_refers_to_its_assets_and_nothing_else() {
        assert!(PAGE.contains(r#"href="dashboard/app.css""#));
        assert!(PAGE.contains(r#"src="dashboard/app.js""#));
        for text in [PAGE, STYLE, SCRIPT, ICON] {
            // The SVG namespace is a name, not an address to fetch.
            let text = text
                .replace("'http://www.w3.org/2000/svg'", "")
                .replace(r#""http://www.w3.org/2000/svg""#, "");
            assert!(
                !text.contains("http://") && !text.contains("https://"),
                "no other origin"
            );
        }
        assert!(
            !PAGE.contains("<script>") && !PAGE.contains("style="),
            "no inline script or style"
        );
        let total = PAGE.len() + STYLE.len() + SCRIPT.len() + ICON.len();
        assert!(total < 100 * 1024, "{total} bytes");
    }
}
