//! Path parameters, with a rejection (a percent-encoded byte that is not UTF-8) answered by a
//! problem document like every other bad input; axum's own rejection is plain text.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use domain::ValidationError;
use serde::de::DeserializeOwned;

use crate::problem::ApiError;

#[derive(Debug)]
pub(crate) struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::from_request_parts(parts, state)
            .await
            .map(|Path(params)| Self(params))
            .map_err(|rejection| {
                ApiError::Invalid(ValidationError::new("path", rejection.body_text()))
            })
    }
}
