//! The write side's OpenAPI document: schemas, the bearer scheme, the headers every command
//! takes and the problem responses, shared by the `#[utoipa::path]` annotations.

use http_problem::ProblemDocument as Problem;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi};

use crate::bulk::{self, ImportLine, ImportOutcome};
use crate::dto::{CommandAccepted, MetadataBody, RegisterBody, StatusBody};
use crate::handlers;
use crate::operations;

/// Headers every command takes.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read by the handlers from the raw header map; here for the schema only
pub(crate) struct CommandHeaders {
    /// Makes a retry answer the first result instead of acting twice: 1–255 visible ASCII
    /// characters, scoped to the token.
    #[param(rename = "Idempotency-Key", value_type = String, required = false, pattern = "^[!-~]{1,255}$", example = "reg-acme-new")]
    idempotency_key: Option<String>,
    /// Optimistic concurrency: the stream version the client last saw, quoted.
    #[param(rename = "If-Match", value_type = String, required = false, pattern = "^\"[0-9]+\"$", example = "\"3\"")]
    if_match: Option<String>,
}

// One response type per failure status, so each operation lists exactly those it can answer.

/// JSON syntax error, or a malformed `If-Match` or `Idempotency-Key` header
/// (`malformed-body`, `bad-header`).
#[derive(IntoResponses)]
#[response(status = 400, content_type = "application/problem+json")]
pub(crate) struct BadRequest(#[allow(dead_code)] Problem);

/// Missing or unknown bearer token (`unauthorized`).
#[derive(IntoResponses)]
#[response(status = 401, content_type = "application/problem+json", headers(("WWW-Authenticate" = String)))]
pub(crate) struct Unauthorized(#[allow(dead_code)] Problem);

/// The token may not write as this node's region (`forbidden`).
#[derive(IntoResponses)]
#[response(status = 403, content_type = "application/problem+json")]
pub(crate) struct Forbidden(#[allow(dead_code)] Problem);

/// No such model (`unknown-model`), or no such route (`not-found`).
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
pub(crate) struct NotFound(#[allow(dead_code)] Problem);

/// The command makes no sense in the model's current state, or another region owns this write
/// (`wrong-owner`, with `owner_region`).
#[derive(IntoResponses)]
#[response(status = 409, content_type = "application/problem+json")]
pub(crate) struct Conflict(#[allow(dead_code)] Problem);

/// `If-Match` is not the stream's current version (`version-mismatch`, with
/// `current_version`).
#[derive(IntoResponses)]
#[response(status = 412, content_type = "application/problem+json")]
pub(crate) struct PreconditionFailed(#[allow(dead_code)] Problem);

/// The body is over its limit: 16 KiB for a command, 64 MiB for an import (`payload-too-large`).
#[derive(IntoResponses)]
#[response(status = 413, content_type = "application/problem+json")]
pub(crate) struct PayloadTooLarge(#[allow(dead_code)] Problem);

/// The body is not `application/json` (`application/x-ndjson` for an import)
/// (`unsupported-media-type`).
#[derive(IntoResponses)]
#[response(status = 415, content_type = "application/problem+json")]
pub(crate) struct UnsupportedMediaType(#[allow(dead_code)] Problem);

/// A field breaks its rules, the body has the wrong shape or an unknown field, or the
/// `Idempotency-Key` was used for another request (`invalid-field`, `unprocessable-body`,
/// `idempotency-key-reused`).
#[derive(IntoResponses)]
#[response(status = 422, content_type = "application/problem+json")]
pub(crate) struct Unprocessable(#[allow(dead_code)] Problem);

/// The caller spent its command budget; retry after `Retry-After` seconds
/// (`too-many-requests`).
#[derive(IntoResponses)]
#[response(status = 429, content_type = "application/problem+json", headers(("Retry-After" = u64)))]
pub(crate) struct TooManyRequests(#[allow(dead_code)] Problem);

/// The event store is unreachable; retry (`unavailable`).
#[derive(IntoResponses)]
#[response(status = 503, content_type = "application/problem+json")]
pub(crate) struct Unavailable(#[allow(dead_code)] Problem);

/// Declares the bearer scheme the command operations refer to.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every write route.
#[derive(OpenApi)]
#[openapi(
    paths(
        handlers::register,
        operations::activate,
        operations::deactivate,
        operations::retire,
        handlers::set_status,
        handlers::update_metadata,
        operations::serve,
        operations::withdraw,
        bulk::import::import,
        bulk::export::export,
    ),
    components(schemas(Problem, RegisterBody, StatusBody, MetadataBody, CommandAccepted, ImportLine, ImportOutcome)),
    modifiers(&BearerAuth),
    tags((name = "commands", description = "Model lifecycle and region availability; \
        each success answers the events it recorded and a consistency token.")),
)]
#[derive(Debug)]
pub struct ApiDoc;
