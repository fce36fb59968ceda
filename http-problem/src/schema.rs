//! The problem document's OpenAPI schema, one for both sides (they merge into one document).

use utoipa::ToSchema;

/// An error, as every route answers it (RFC 9457, `application/problem+json`). Built by
/// [`crate::Problem`]; here for the schema only.
#[derive(Debug, ToSchema)]
#[schema(as = Problem)]
#[allow(dead_code)]
pub struct ProblemDocument {
    /// `/problems/<code>`, relative to the API's origin.
    #[schema(example = "/problems/unknown-model")]
    r#type: String,
    /// The HTTP status's reason phrase.
    #[schema(example = "Not Found")]
    title: String,
    #[schema(example = 404, minimum = 400, maximum = 599)]
    status: u16,
    /// What went wrong, for a human.
    detail: String,
    /// Stable machine-readable name of the failure.
    #[schema(example = "unknown-model")]
    code: String,
    /// The request field or parameter at fault (`invalid-field`, `invalid-parameter`).
    field: Option<String>,
    /// The region that owns this write (`wrong-owner`).
    owner_region: Option<String>,
    /// The stream's version now (`version-mismatch`).
    current_version: Option<u64>,
}
