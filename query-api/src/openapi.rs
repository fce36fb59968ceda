//! The read side's OpenAPI document: schemas, the headers reads take and the problem responses,
//! shared by the `#[utoipa::path]` annotations on the handlers.

use http_problem::ProblemDocument as Problem;
use utoipa::{IntoParams, IntoResponses, OpenApi, ToSchema};

use crate::counts::{CountsBody, FreshnessBody};
use crate::models::{ModelDetail, ModelPage};
use crate::{changes, counts, dashboard, health, history, models, routes, stream};

/// `GET /healthz`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // built with `json!`; here for the schema only
pub(crate) struct Health {
    #[schema(example = "ok")]
    status: String,
}

/// `GET /readyz` when ready.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // built with `json!`; here for the schema only
pub(crate) struct Readiness {
    #[schema(example = "ready")]
    status: String,
    /// Latest migration applied.
    schema_version: i64,
}

/// `GET /readyz` when not ready: a problem document (`not-ready`) whose `reasons` name every
/// part that keeps the node from being ready, `detail` joins them.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // rendered by the readiness route; here for the schema only
pub(crate) struct NotReady {
    #[schema(example = "/problems/not-ready")]
    r#type: String,
    #[schema(example = "Service Unavailable")]
    title: String,
    #[schema(example = 503)]
    status: u16,
    #[schema(
        example = "projector: undecodable record at aigo.events.eu-west partition 1 offset 17: \
            event schema version 99 is newer than this build understands (1)"
    )]
    detail: String,
    #[schema(example = "not-ready")]
    code: String,
    /// `<part>: <why>`, one per part: `database`, `projector` (also while catching up),
    /// `catalogue follower`, `state exchange`, `outbox relay`, ... A failed task stays listed
    /// until its restart is healthy again.
    #[schema(example = json!([
        "projector: undecodable record at aigo.events.eu-west partition 1 offset 17: event \
            schema version 99 is newer than this build understands (1)"
    ]))]
    reasons: Vec<String>,
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
    /// An `ETag` of an earlier answer: 304 if the answer has not changed since.
    #[param(rename = "If-None-Match", value_type = String, required = false, example = "W/\"counts-42\"")]
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

/// The read model is unreachable, a read ran past the statement timeout, every slot is taken
/// (the stream's, or the history reads'), or the history index is catching up on a log too
/// large to replay for one read; retry (`unavailable`, `read-timeout`, `too-many-streams`,
/// `busy`, `index-catching-up`).
#[derive(IntoResponses)]
#[response(
    status = 503,
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "Seconds"))
)]
pub(crate) struct Unavailable(#[allow(dead_code)] Problem);

/// This client's address holds as many live streams as one address may
/// (`too-many-streams-from-host`); close one, then retry.
#[derive(IntoResponses)]
#[response(
    status = 429,
    content_type = "application/problem+json",
    headers(("Retry-After" = String, description = "Seconds"))
)]
pub(crate) struct TooManyRequests(#[allow(dead_code)] Problem);

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
        changes::changes,
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
        (name = "stream", description = "Live push over Server-Sent Events, and the same \
            changes by cursor for clients that poll."),
        (name = "history", description = "Counts over time and every event of a model, by \
            replaying the event log."),
        (name = "dashboard", description = "The live dashboard page and its assets."),
        (name = "operations", description = "Health, readiness, metrics, this document."),
    ),
)]
#[derive(Debug)]
pub struct ApiDoc;
