//! Path parameters whose rejection (a percent-encoded byte that is not UTF-8) becomes the
//! caller's own error type, answered as a problem document; axum's own is plain text.

use std::marker::PhantomData;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::IntoResponse;
use serde::de::DeserializeOwned;

/// Why the path did not deserialize, for the side's error type to word as its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathRejected(pub String);

/// `Path<T>` rejecting with `E` (each side has its own vocabulary of problem codes).
#[derive(Debug)]
pub struct PathParams<T, E>(pub T, pub PhantomData<fn() -> E>);

impl<T, E, S> FromRequestParts<S> for PathParams<T, E>
where
    T: DeserializeOwned + Send,
    E: From<PathRejected> + IntoResponse,
    S: Send + Sync,
{
    type Rejection = E;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::from_request_parts(parts, state)
            .await
            .map(|Path(params)| Self(params, PhantomData))
            .map_err(|rejection| E::from(PathRejected(rejection.body_text())))
    }
}
