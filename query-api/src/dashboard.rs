//! The live dashboard: `GET /` and its static assets, embedded in the binary (no build step,
//! nothing fetched from elsewhere). The page reads the public read API from the same origin.

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

/// One embedded file and how to serve it.
#[derive(Debug)]
struct Asset {
    body: &'static str,
    content_type: &'static str,
    /// A hash of the content, the strong validator: a changed page gets a new ETag.
    hash: u64,
}

macro_rules! asset {
    ($file:literal, $content_type:literal) => {{
        const BODY: &str = include_str!(concat!("../assets/", $file));
        Asset {
            body: BODY,
            content_type: $content_type,
            hash: fnv1a(BODY.as_bytes()),
        }
    }};
}

static INDEX: Asset = asset!("index.html", "text/html; charset=utf-8");
static SCRIPT: Asset = asset!("dashboard.js", "text/javascript; charset=utf-8");
static STYLE: Asset = asset!("dashboard.css", "text/css; charset=utf-8");
static ICON: Asset = asset!("favicon.svg", "image/svg+xml");

/// Only this origin: no inline script or style, no third-party anything, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// The dashboard's routes; merged into the query router, whatever its state type.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route(
            "/assets/dashboard.js",
            get(|h: HeaderMap| async move { serve(&SCRIPT, &h) }),
        )
        .route(
            "/assets/dashboard.css",
            get(|h: HeaderMap| async move { serve(&STYLE, &h) }),
        )
        .route(
            "/assets/favicon.svg",
            get(|h: HeaderMap| async move { serve(&ICON, &h) }),
        )
}

fn serve(asset: &'static Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.body.into_response()
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, etag);
    }
    // Revalidate every time (a 304 is cheap): an upgraded node serves its new page at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// FNV-1a, 64 bit: a stable content hash computable at compile time.
pub(crate) const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut rest = bytes;
    while let [byte, tail @ ..] = rest {
        hash ^= *byte as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        rest = tail;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    /// Every asset the page names is one this router serves, and nothing comes from elsewhere.
    #[test]
    fn the_page_references_only_embedded_assets() {
        for path in [
            "/assets/dashboard.js",
            "/assets/dashboard.css",
            "/assets/favicon.svg",
        ] {
            assert!(INDEX.body.contains(path), "index.html does not load {path}");
        }
        for asset in [&INDEX, &SCRIPT, &STYLE, &ICON] {
            // The SVG namespace is an identifier, not a fetch.
            let body = asset.body.replace("http://www.w3.org/2000/svg", "");
            assert!(
                !body.contains("http://"),
                "an absolute http URL in an asset"
            );
            assert!(
                !body.contains("https://"),
                "an absolute https URL in an asset"
            );
        }
    }
}

/// Documentation of the page's routes (served by the closures above; utoipa documents
/// functions).
pub(crate) mod operations {
    /// The live dashboard page.
    #[utoipa::path(
        get, path = "/", tag = "dashboard", operation_id = "dashboard",
        responses(
            (status = 200, description = "The page", content_type = "text/html", body = String),
            (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        ),
    )]
    #[expect(dead_code, reason = "documents a route, never called")]
    pub(crate) fn dashboard() {}

    /// The page's script.
    #[utoipa::path(
        get, path = "/assets/dashboard.js", tag = "dashboard", operation_id = "dashboard_script",
        responses(
            (status = 200, description = "The script", content_type = "text/javascript", body = String),
            (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        ),
    )]
    #[expect(dead_code, reason = "documents a route, never called")]
    pub(crate) fn script() {}

    /// The page's style sheet.
    #[utoipa::path(
        get, path = "/assets/dashboard.css", tag = "dashboard", operation_id = "dashboard_style",
        responses(
            (status = 200, description = "The style sheet", content_type = "text/css", body = String),
            (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        ),
    )]
    #[expect(dead_code, reason = "documents a route, never called")]
    pub(crate) fn style() {}

    /// The page's icon.
    #[utoipa::path(
        get, path = "/assets/favicon.svg", tag = "dashboard", operation_id = "dashboard_icon",
        responses(
            (status = 200, description = "The icon", content_type = "image/svg+xml", body = String),
            (status = 304, description = "Unchanged since the `If-None-Match` tag"),
        ),
    )]
    #[expect(dead_code, reason = "documents a route, never called")]
    pub(crate) fn icon() {}
}
