//! The node's HTTP edge: both sides' routes merged, with request ids, an access log, tracing,
//! compression, optional CORS, limits and fallbacks.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use command_api::{ApiError, CommandState};
use query_api::QueryState;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultMakeSpan, TraceLayer};
use tracing::Level;

use crate::access_log;

/// Why the HTTP edge could not be built from the settings.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(
        "http.cors_allow_origins: {0:?} is not an origin (scheme://host[:port], no path, or \"*\")"
    )]
    Origin(String),
}

/// How long browsers may cache a CORS preflight answer.
const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// The node's whole HTTP surface: command and query routes, the OpenAPI document, problem
/// documents for unknown routes, a request id (`x-request-id`, kept if the client sent one),
/// a span and an access-log line per request, gzip/brotli for what is worth compressing (not
/// live streams), CORS for `cors_allow_origins` (none: no CORS headers), and a panic turned
/// into a 500 problem instead of a dropped connection.
pub fn router(
    commands: CommandState,
    queries: QueryState,
    cors_allow_origins: &[String],
) -> Result<Router, EdgeError> {
    let mut router = command_api::router(commands)
        .merge(query_api::router(queries))
        .merge(crate::openapi::router())
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal.into_response()
        }))
        // The default predicate leaves `text/event-stream` and tiny bodies alone.
        .layer(CompressionLayer::new());
    if let Some(cors) = cors_layer(cors_allow_origins)? {
        router = router.layer(cors);
    }
    let request_id = HeaderName::from_static("x-request-id");
    Ok(router
        .layer(axum::middleware::from_fn(access_log::record))
        // A span per request at info, so it is kept (and exported) under the default filter;
        // the access log reports every status, so no second line per failed response.
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_failure(()),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid)))
}

/// CORS for the listed origins, with the headers the API reads and the ones a client reads
/// back; `None` when no origin is listed.
fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, EdgeError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let parsed = origins
            .iter()
            .map(|origin| parse_origin(origin).ok_or_else(|| EdgeError::Origin(origin.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(parsed)
    };
    let header = HeaderName::from_static;
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::IF_MATCH,
                header::IF_NONE_MATCH,
                header::ACCEPT_LANGUAGE,
                header("idempotency-key"),
                header("consistency-token"),
                header("last-event-id"),
            ])
            .expose_headers([
                header::ETAG,
                header::LOCATION,
                header::RETRY_AFTER,
                header::CONTENT_LANGUAGE,
                header("consistency-token"),
                header("x-request-id"),
            ])
            .max_age(CORS_MAX_AGE),
    ))
}

/// `https://dash.example.com` or `http://127.0.0.1:5173`: a scheme, a host, maybe a port.
fn parse_origin(origin: &str) -> Option<HeaderValue> {
    let (scheme, rest) = origin.split_once("://")?;
    let host_ok = !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !matches!(scheme, "http" | "https") || !host_ok {
        return None;
    }
    HeaderValue::from_str(origin).ok()
}

async fn no_route(uri: Uri) -> Response {
    ApiError::NoRoute(uri.path().to_owned()).into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::MethodNotAllowed.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert!(parse_origin("https://dash.example.com").is_some());
        assert!(parse_origin("http://127.0.0.1:5173").is_some());
        assert!(parse_origin("https://dash.example.com/path").is_none());
        assert!(parse_origin("ftp://x").is_none());
        assert!(parse_origin("dash.example.com").is_none());
        assert!(matches!(
            cors_layer(&["nope".to_owned()]),
            Err(EdgeError::Origin(_))
        ));
        assert!(cors_layer(&[]).unwrap().is_none());
    }
}
