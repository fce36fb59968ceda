//! Reading a command's JSON body: size limit, content type and malformed-JSON problems.

use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

/// The raw body, with the size limit's rejection turned into a 413 problem.
pub(crate) fn accept_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(rejection.body_text())
        } else {
            ApiError::MalformedBody(rejection.body_text())
        }
    })
}

/// Parses a JSON body: syntax errors are 400, well-formed JSON of the wrong shape is 422.
pub(crate) fn parse_json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, ApiError> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim())
        .is_some_and(|mime| mime.eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::UnsupportedMediaType("application/json"));
    }
    crate::targets::json(body)
}
