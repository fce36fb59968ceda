//! The command headers: `If-Match`, `Idempotency-Key` and the request fingerprint that guards key reuse.

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::problem::ApiError;

pub(crate) const IDEMPOTENCY_KEY: &str = "idempotency-key";
const MAX_IDEMPOTENCY_KEY_LEN: usize = 255;

/// `If-Match: "<version>"`: the stream version the client last saw.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(axum::http::header::IF_MATCH) else {
        return Ok(None);
    };
    let bad = || ApiError::BadHeader("If-Match must be a quoted version such as \"3\"".into());
    let text = value.to_str().map_err(|_| bad())?.trim();
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .ok_or_else(bad)?;
    inner.parse().map(Some).map_err(|_| bad())
}

/// `Idempotency-Key`: 1–255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or_default();
    checked_key(key).map(Some).map_err(ApiError::BadHeader)
}

/// An idempotency key as given, or why it is not one (the header's rules, also an import line's).
pub(crate) fn checked_key(key: &str) -> Result<String, String> {
    if !key.is_empty()
        && key.len() <= MAX_IDEMPOTENCY_KEY_LEN
        && key.bytes().all(|b| b.is_ascii_graphic())
    {
        return Ok(key.to_owned());
    }
    Err(format!(
        "Idempotency-Key must be 1–{MAX_IDEMPOTENCY_KEY_LEN} visible ASCII characters"
    ))
}

/// Identifies a request so that a reused idempotency key with a different request is caught.
pub(crate) fn fingerprint(method: &str, path: &str, body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b" ");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(body);
    format!("{:x}", hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(name, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn if_match_takes_quoted_versions_only() {
        assert_eq!(if_match(&with("if-match", "\"3\"")).unwrap(), Some(3));
        assert!(if_match(&with("if-match", "3")).is_err());
        assert!(if_match(&with("if-match", "\"x\"")).is_err());
        assert_eq!(if_match(&HeaderMap::new()).unwrap(), None);
    }

    #[test]
    fn idempotency_keys_are_bounded() {
        assert!(
            idempotency_key(&with(IDEMPOTENCY_KEY, "abc-123"))
                .unwrap()
                .is_some()
        );
        assert!(idempotency_key(&with(IDEMPOTENCY_KEY, &"k".repeat(256))).is_err());
        assert!(idempotency_key(&with(IDEMPOTENCY_KEY, "a b")).is_err());
    }

    #[test]
    fn fingerprints_differ_by_body_and_path() {
        let a = fingerprint("POST", "/v1/models", b"{}");
        assert_ne!(a, fingerprint("POST", "/v1/models", b"{ }"));
        assert_ne!(a, fingerprint("POST", "/v1/other", b"{}"));
        assert_eq!(a, fingerprint("POST", "/v1/models", b"{}"));
    }
}
