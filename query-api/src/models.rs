//! `GET /v1/models` and `GET /v1/models/{id}`: the catalogue, filtered, paginated by a stable
//! cursor, with names in the client's language.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use domain::{Lifecycle, ModelId, OperationalStatus, ProviderId, RegionId};
use event_store::catalogue::{self, CatalogueRow, ModelFilter};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::consistency;
use crate::cursor;
use crate::dashboard::fnv1a;
use crate::locale::{self, Preference};
use crate::openapi::{
    ConsistencyHeader, GatewayTimeout, LanguageHeader, Unavailable, Unprocessable,
};
use crate::params::Params;
use crate::problem::QueryError;
use crate::state::QueryState;

pub const DEFAULT_LIMIT: i64 = 50;
pub const MAX_LIMIT: i64 = 500;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this provider's models.
    #[param(value_type = ProviderId, required = false)]
    pub provider: Option<String>,
    /// Only models this region serves.
    #[param(value_type = RegionId, required = false)]
    pub region: Option<String>,
    /// Lifecycle state: `inactive`, `active` or `retired`.
    #[param(value_type = Lifecycle, required = false)]
    pub state: Option<String>,
    /// Operational status.
    #[param(value_type = OperationalStatus, required = false)]
    pub status: Option<String>,
    /// Language of names and descriptions (wins over `Accept-Language`); falls back to `en`.
    #[param(value_type = String, required = false, example = "ko-KR")]
    pub locale: Option<String>,
    /// Page size.
    #[param(value_type = i64, required = false, minimum = 1, maximum = 500, default = 50)]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    #[param(value_type = String, required = false, pattern = "^([0-9a-fA-F]{2}){1,128}$")]
    pub cursor: Option<String>,
    /// A consistency token: answer only once the catalogue includes that event.
    #[param(value_type = domain::ConsistencyToken, required = false)]
    pub after: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct OneQuery {
    /// Language of the name and description (wins over `Accept-Language`); falls back to `en`.
    #[param(value_type = String, required = false, example = "ko-KR")]
    pub locale: Option<String>,
    /// A consistency token: answer only once the catalogue includes that event.
    #[param(value_type = domain::ConsistencyToken, required = false)]
    pub after: Option<String>,
}

/// One model as a client sees it in one language.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelView {
    #[schema(value_type = ModelId)]
    pub id: String,
    #[schema(value_type = ProviderId)]
    pub provider: String,
    #[schema(value_type = RegionId)]
    pub home_region: String,
    /// In the answer's locale, else its base language, else English.
    pub name: String,
    pub description: Option<String>,
    /// Every language the model is named in.
    pub names: BTreeMap<String, String>,
    #[schema(value_type = Lifecycle)]
    pub lifecycle: String,
    #[schema(value_type = OperationalStatus)]
    pub status: String,
    /// The model stream's sequence: the value for `If-Match`.
    pub version: i64,
    pub updated_at: DateTime<Utc>,
    /// Regions that serve it now.
    pub available_in: Vec<String>,
}

/// One page of a listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelPage {
    pub items: Vec<ModelView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    pub next_cursor: Option<String>,
    pub limit: i64,
    pub locale: String,
}

/// A model and, for every region of the deployment, whether it serves it.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelDetail {
    #[serde(flatten)]
    pub model: ModelView,
    pub locale: String,
    pub regions: BTreeMap<String, RegionAvailability>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegionAvailability {
    pub served: bool,
    /// When it last started or stopped serving it; absent if it never did.
    pub since: Option<DateTime<Utc>>,
}

/// The catalogue, filtered, in pages ordered by id; names in the negotiated language.
#[utoipa::path(
    get, path = "/v1/models", tag = "models", operation_id = "list_models",
    params(ListQuery, ConsistencyHeader, LanguageHeader),
    responses(
        (status = 200, description = "One page", body = ModelPage),
        Unprocessable, Unavailable, GatewayTimeout,
    ),
)]
#[tracing::instrument(skip_all)]
pub async fn list(
    State(state): State<QueryState>,
    Params(query): Params<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, QueryError> {
    let filter = Filter::parse(&state, &query)?;
    let locale = locale::negotiate(query.locale.as_deref(), &headers)?;
    if let Some(token) = consistency::requested(&headers, query.after.as_deref())? {
        consistency::until_catalogued(&state, &token).await?;
    }
    let rows = catalogue::list(&state.pool, &filter.rows, filter.limit + 1).await?;
    let more = rows.len() as i64 > filter.limit;
    let items: Vec<ModelView> = rows
        .into_iter()
        .take(usize::try_from(filter.limit).unwrap_or(0))
        .map(|row| view(row, &locale).0)
        .collect();
    let next_cursor = more
        .then(|| items.last().map(|last| cursor::encode(&last.id)))
        .flatten();
    let mut response = axum::Json(ModelPage {
        items,
        next_cursor,
        limit: filter.limit,
        locale: locale.tag().to_owned(),
    })
    .into_response();
    // Each item is in the best language it has: no one Content-Language for the page.
    locale::mark(&mut response, None);
    Ok(response)
}

/// `GET /v1/models/{id}`; `raw` is the id as matched by the route's wildcard.
#[tracing::instrument(skip_all, fields(model = raw))]
pub async fn one(
    state: &QueryState,
    raw: &str,
    query: OneQuery,
    headers: &HeaderMap,
) -> Result<Response, QueryError> {
    let model = ModelId::parse(raw).map_err(|_| QueryError::UnknownModel(raw.to_owned()))?;
    let locale = locale::negotiate(query.locale.as_deref(), headers)?;
    if let Some(token) = consistency::requested(headers, query.after.as_deref())? {
        consistency::until_catalogued(state, &token).await?;
    }
    let row = catalogue::get(&state.pool, &model)
        .await?
        .ok_or_else(|| QueryError::UnknownModel(raw.to_owned()))?;
    let changes = catalogue::availability_of(&state.pool, &model).await?;
    let mut regions: BTreeMap<String, RegionAvailability> = state
        .regions
        .iter()
        .map(|region| {
            let availability = RegionAvailability {
                served: false,
                since: None,
            };
            (region.to_string(), availability)
        })
        .collect();
    for change in changes {
        let availability = RegionAvailability {
            served: change.served,
            since: Some(change.updated_at),
        };
        regions.insert(change.region, availability);
    }
    let (model, language) = view(row, &locale);
    let detail = ModelDetail {
        model,
        locale: locale.tag().to_owned(),
        regions,
    };
    Ok(with_validator(&detail, headers, &language))
}

/// The detail with a strong ETag of its bytes (any change of the model, its availability or
/// the negotiated language changes it); 304 when `If-None-Match` already has them.
fn with_validator(detail: &ModelDetail, headers: &HeaderMap, language: &str) -> Response {
    let body = match serde_json::to_vec(detail) {
        Ok(body) => body,
        Err(_) => return axum::Json(detail).into_response(),
    };
    let tag = format!("\"{:016x}\"", fnv1a(&body));
    let matched = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag || t.trim() == "*"));
    let mut response = if matched {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response()
    };
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        response.headers_mut().insert(header::ETAG, tag);
    }
    locale::mark(&mut response, Some(language));
    response
}

/// The row as the client sees it, and the language its name is in.
fn view(row: CatalogueRow, locale: &Preference) -> (ModelView, String) {
    let names = row.name.0.entries();
    let language = locale
        .pick(names.keys())
        .cloned()
        .unwrap_or_else(|| locale::FALLBACK.to_owned());
    let description = row.description.as_ref().map(|d| {
        let entries = d.0.entries();
        locale
            .pick(entries.keys())
            .and_then(|l| entries.get(l))
            .cloned()
            .unwrap_or_default()
    });
    let view = ModelView {
        name: names.get(&language).cloned().unwrap_or_default(),
        description,
        names: row.name.0.entries().clone(),
        id: row.model_id,
        provider: row.provider,
        home_region: row.home_region,
        lifecycle: row.lifecycle,
        status: row.status,
        version: row.version,
        updated_at: row.updated_at,
        available_in: row.available_in,
    };
    (view, language)
}

/// A listing's filters, validated.
struct Filter {
    rows: ModelFilter,
    limit: i64,
}

impl Filter {
    fn parse(state: &QueryState, query: &ListQuery) -> Result<Self, QueryError> {
        let provider = query
            .provider
            .as_deref()
            .map(|raw| {
                ProviderId::parse(raw).map_err(|_| {
                    QueryError::invalid("provider", format!("{raw:?} is not a provider id"))
                })
            })
            .transpose()?;
        let region = query
            .region
            .as_deref()
            .map(|raw| match RegionId::parse(raw) {
                Ok(region) if state.regions.contains(&region) => Ok(region),
                _ => Err(QueryError::invalid(
                    "region",
                    format!("{raw:?} is not a region of this deployment"),
                )),
            })
            .transpose()?;
        let lifecycle = query
            .state
            .as_deref()
            .map(|raw| {
                Lifecycle::parse(raw).map_err(|_| {
                    QueryError::invalid("state", "must be one of inactive, active, retired")
                })
            })
            .transpose()?;
        let status = query
            .status
            .as_deref()
            .map(|raw| {
                OperationalStatus::parse(raw).map_err(|_| {
                    QueryError::invalid("status", "must be one of operational, degraded, outage")
                })
            })
            .transpose()?;
        let after = query.cursor.as_deref().map(decode_cursor).transpose()?;
        let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(QueryError::invalid(
                "limit",
                format!("must be between 1 and {MAX_LIMIT}"),
            ));
        }
        Ok(Self {
            rows: ModelFilter {
                provider,
                lifecycle,
                status,
                region,
                after,
            },
            limit,
        })
    }
}

/// A listing's cursor: the last id of the page before.
fn decode_cursor(raw: &str) -> Result<ModelId, QueryError> {
    let id = cursor::decode(raw)?;
    ModelId::parse(&id)
        .map_err(|_| QueryError::invalid("cursor", "is not a cursor this API issued"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_cursor_must_hold_a_model_id() {
        let page = cursor::encode("openai/gpt-5");
        assert_eq!(decode_cursor(&page).unwrap().as_str(), "openai/gpt-5");
        assert!(decode_cursor(&cursor::encode("Not An Id")).is_err());
    }
}
