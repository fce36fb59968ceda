//! The read side's router: counts, models, history, stream, health and metrics.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use axum::routing::get;
use http_problem::PathParams;

use crate::health::{healthz, metrics, readyz};
use crate::history::model::HistoryPage;
use crate::models::{self, ModelDetail, OneQuery};
use crate::openapi::{
    CacheHeaders, ConsistencyHeader, GatewayTimeout, LanguageHeader, NotFound, NotModified,
    Unavailable, Unprocessable,
};
use crate::params::{self, Params};
use crate::problem::QueryError;
use crate::state::QueryState;
use crate::{changes, counts, history, stream};

/// Every read route. Model ids contain `/`, so `GET /v1/models/{id}` is matched by a trailing
/// wildcard, as the command routes are.
pub fn router(state: QueryState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/v1/counts", get(counts::global_counts))
        .route("/v1/counts/series", get(history::counts_series))
        .route("/v1/regions/{region}/counts", get(counts::region_counts))
        .route("/v1/models", get(models::list))
        .route("/v1/models/{*rest}", get(model_route))
        .route("/v1/stream", get(stream::sse::stream))
        .route("/v1/changes", get(changes::changes))
        .merge(crate::dashboard::router())
        .with_state(state)
}

/// One model with its availability in every region of the deployment.
#[utoipa::path(
    get, path = "/v1/models/{id}", tag = "models", operation_id = "get_model",
    params(("id" = domain::ModelId, Path), OneQuery, ConsistencyHeader, LanguageHeader, CacheHeaders),
    responses(
        (status = 200, description = "The model", body = ModelDetail, headers(
            ("ETag" = String, description = "Changes with any change of the answer"),
            ("Content-Language" = String, description = "The language of the name"),
            ("Vary" = String),
        )),
        NotModified, NotFound, Unprocessable, Unavailable, GatewayTimeout,
    ),
)]
pub(crate) async fn model_route(
    State(state): State<QueryState>,
    PathParams(rest, _): PathParams<String, QueryError>,
    Params(query): Params<OneQuery>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, QueryError> {
    // `<id>/history` is the model's audit trail; ids never end in `/history` (`history` alone
    // is not a model id's last segment by convention: the route takes precedence).
    if let Some(id) = rest.strip_suffix("/history") {
        let page: HistoryPage = params::from_uri(&uri)?;
        return history::model_history(&state, id, page).await;
    }
    models::one(&state, &rest, query, &headers).await
}
