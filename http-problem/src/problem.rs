//! The one builder of `application/problem+json` answers: `type` `/problems/<code>`, `title`,
//! `status`, `detail`, `code`, plus extension members of the caller's.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

/// The `type` URI of a problem code.
pub fn problem_type(code: &str) -> String {
    format!("/problems/{code}")
}

/// A problem document and the headers that go with its status.
#[derive(Debug, Clone)]
pub struct Problem {
    status: StatusCode,
    code: &'static str,
    detail: String,
    extensions: Map<String, Value>,
    retry_after: Option<u64>,
}

impl Problem {
    /// `code` is the stable machine-readable name, also the last segment of `type`.
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            extensions: Map::new(),
            retry_after: None,
        }
    }

    /// Adds an extension member (`field`, `owner_region`, `reasons`, ...).
    #[must_use]
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.extensions.insert(name.to_owned(), value.into());
        self
    }

    /// Sends `Retry-After: seconds` with the answer.
    #[must_use]
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The document itself.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "type": problem_type(self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
            "code": self.code,
        });
        if let Some(fields) = body.as_object_mut() {
            fields.extend(self.extensions.clone());
        }
        body
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.status, self.body().to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_document_carries_type_title_status_detail_code_and_extensions() {
        let problem = Problem::new(StatusCode::CONFLICT, "wrong-owner", "ask us-east")
            .with("owner_region", "us-east");
        assert_eq!(
            problem.body(),
            json!({
                "type": "/problems/wrong-owner",
                "title": "Conflict",
                "status": 409,
                "detail": "ask us-east",
                "code": "wrong-owner",
                "owner_region": "us-east",
            })
        );
    }

    #[test]
    fn headers_follow_the_status() {
        let response =
            Problem::new(StatusCode::UNAUTHORIZED, "unauthorized", "no token").into_response();
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let response = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "later")
            .retry_after(2)
            .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
