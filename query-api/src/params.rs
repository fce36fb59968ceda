//! Query-string parameters, with a malformed one answered by a problem document (axum's own
//! rejections are plain text); path parameters use `http_problem::PathParams`.

use axum::extract::{FromRequestParts, Query};
use axum::http::Uri;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::problem::QueryError;

#[derive(Debug)]
pub struct Params<T>(pub T);

impl<T, S> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = QueryError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        from_uri(&parts.uri).map(Self)
    }
}

/// The query string of `uri` as `T`; a malformed one is a 422 naming `query`.
pub fn from_uri<T: DeserializeOwned>(uri: &Uri) -> Result<T, QueryError> {
    Query::try_from_uri(uri)
        .map(|Query(params)| params)
        .map_err(|rejection| QueryError::invalid("query", rejection.body_text()))
}
