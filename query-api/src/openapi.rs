//! The read side's OpenAPI document: schemas, the headers reads take and the problem responses,
//! shared by the `#[utoipa::path]` annotations on the handlers.

use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};

use crate::counts::{CountsBody, FreshnessBody};
use crate::models::{ModelDetail, ModelPage};
use crate::{counts, dashboard, health, history, models, routes, stream};

/// An error, in the same shape as the command side's (RFC 9457,
/// `application/problem+json`).
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // rendered by `QueryError`; here for the schema only
pub struct Problem {
    /// `/problems/<code>`, relative to the API's origin.
    #[schema(example = "/problems/unknown-region")]
    r#type: String,
    #[schema(example = "Not Found")]
    title: String,
    #[schema(example = 404, minimum = 400, maximum = 599)]
    status: u16,
    detail: String,
    /// Stable machine-readable name of the failure.
    #[schema(example = "unknown-region")]
    code: String,
    /// The query parameter at fault (`invalid-parameter`).
    field: Option<String>,
}

/// `GET /healthz`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // built with `json!`; here for the schema only
pub(crate) struct Health {
    #[schema(example = "ok")]
    status: String,
}

/// `GET /readyz`: `ready` with the schema version, or `not ready` with the reason.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // built with `json!`; here for the schema only
pub(crate) struct Readiness {
    #[schema(example = "ready")]
    status: String,
    /// Latest migration applied (when ready).
    schema_version: Option<i64>,
    /// Why not (when not ready).
    reason: Option<String>,
}

/// The read-your-writes header; `?after=` wins over it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the raw header map; here for the schema only
pub(crate) struct ConsistencyHeader {
    /// A command's consistency token: answer only once the read includes that event
    /// (waits a bounded time, then 504).
    #[param(rename = "Consistency-Token", value_type = domain::ConsistencyToken, required = false)]
    consistency_token: Option<String>,
}

/// Conditional count reads.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the raw header map; here for the schema only
pub(crate) struct CacheHeaders {
    /// An `ETag` of an earlier answer: 304 if the counts have not changed since.
    #[param(rename = "If-None-Match", value_type = String, required = false, example = "\"counts-42\"")]
    if_none_match: Option<String>,
}

/// Language negotiation for names.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the raw header map; here for the schema only
pub(crate) struct LanguageHeader {
    /// Used when `locale` is not given; the best-quality valid tag wins, else `en`.
    #[param(rename = "Accept-Language", value_type = String, required = false, example = "ko-KR, en;q=0.5")]
    accept_language: Option<String>,
}

/// Resuming a live stream.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // read from the raw header map; here for the schema only
pub(crate) struct ResumeHeader {
    /// The `id` of the last event received: the missed events follow, none twice, or a
    /// fresh `snapshot` if they are no longer kept.
    #[param(rename = "Last-Event-ID", value_type = String, required = false, example = "42")]
    last_event_id: Option<String>,
}

// One response type per failure status, so each operation lists exactly those it can answer.

/// The counts have not changed since the `If-None-Match` tag.
#[derive(IntoResponses)]
#[response(status = 304, headers(("ETag" = String)))]
pub(crate) struct NotModified;

/// No such region in this deployment (`unknown-region`), or no such model (`unknown-model`).
#[derive(IntoResponses)]
#[response(status = 404, content_type = "application/problem+json")]
pub(crate) struct NotFound(#[allow(dead_code)] Problem);

/// A malformed query parameter or consistency token (`invalid-parameter`,
/// `invalid-consistency-token`).
#[derive(IntoResponses)]
#[response(status = 422, content_type = "application/problem+json")]
pub(crate) struct Unprocessable(#[allow(dead_code)] Problem);

/// The read model is unreachable, or (for the stream) every slot is taken; retry
/// (`unavailable`, `too-many-streams`).
#[derive(IntoResponses)]
#[response(
    status = 503,
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "Seconds"))
)]
pub(crate) struct Unavailable(#[allow(dead_code)] Problem);

/// The projection did not include the consistency token's event in time; retry
/// (`consistency-timeout`).
#[derive(IntoResponses)]
#[response(status = 504, content_type = "application/problem+json")]
pub(crate) struct GatewayTimeout(#[allow(dead_code)] Problem);

/// Every read route.
#[derive(OpenApi)]
#[openapi(
    paths(
        counts::global_counts,
        counts::region_counts,
        history::series::counts_series,
        history::model::model_history,
        models::list,
        routes::model_route,
        stream::sse::stream,
        dashboard::operations::dashboard,
        dashboard::operations::script,
        dashboard::operations::style,
        dashboard::operations::icon,
        health::healthz,
        health::readyz,
        health::metrics,
    ),
    components(schemas(Problem, CountsBody, FreshnessBody, ModelPage, ModelDetail)),
    tags(
        (name = "counts", description = "Global and per-region counts from the merged CRDT \
            view, with freshness per region."),
        (name = "models", description = "The catalogue: filters, cursor pagination, locales."),
        (name = "stream", description = "Live push over Server-Sent Events."),
        (name = "history", description = "Counts over time and every event of a model, by \
            replaying the event log."),
        (name = "dashboard", description = "The live dashboard page and its assets."),
        (name = "operations", description = "Health, readiness, metrics, this document."),
    ),
)]
#[derive(Debug)]
pub struct ApiDoc;
