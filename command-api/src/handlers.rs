//! The write routes' handlers: HTTP request in, `CommandService` call, HTTP answer out.

use std::convert::Infallible;

use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use domain::{AvailabilityCommand, ModelId, RegionId, WithdrawReason};
use event_store::IdempotencyClaim;
use uuid::Uuid;

use crate::auth::Principal;
use crate::body::{accept_bytes, parse_json};
use crate::dto::{CommandAccepted, MetadataBody, RegisterBody, StatusBody};
use crate::headers;
use crate::openapi::{
    BadRequest, CommandHeaders, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed,
    TooManyRequests, Unauthorized, Unavailable, Unprocessable, UnsupportedMediaType,
};
use crate::problem::ApiError;
use crate::routes::CommandState;
use crate::service::{Accepted, CommandRequest, Target};
use crate::targets;
use http_problem::PathParams;

/// The parts of a request every command handler needs; extracted last, as it takes the body.
pub(crate) struct Incoming {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
}

impl<S: Send + Sync> FromRequest<S> for Incoming {
    type Rejection = Infallible;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let headers = request.headers().clone();
        // A body over the limit is kept as its rejection and answered as a 413 problem.
        let body = Bytes::from_request(request, state).await;
        Ok(Self {
            method,
            uri,
            headers,
            body,
        })
    }
}

/// Register a model; it starts `inactive`. Only its home region's node accepts it.
#[utoipa::path(
    post, path = "/v1/models", tag = "commands", operation_id = "register",
    security(("bearer" = [])),
    params(CommandHeaders),
    request_body = RegisterBody,
    responses(
        (status = 201, description = "The recorded event", body = CommandAccepted,
            headers(("Location" = String, description = "`/v1/models/{id}`")),
            links(
                ("activate" = (operation_id = "activate", parameters(("id" = "$response.body#/model_id")))),
                ("deactivate" = (operation_id = "deactivate", parameters(("id" = "$response.body#/model_id")))),
                ("retire" = (operation_id = "retire", parameters(("id" = "$response.body#/model_id")))),
                ("set_status" = (operation_id = "set_status", parameters(("id" = "$response.body#/model_id")))),
                ("update_metadata" = (operation_id = "update_metadata", parameters(("id" = "$response.body#/model_id")))),
                ("serve" = (operation_id = "serve", parameters(
                    ("id" = "$response.body#/model_id"),
                    ("region" = "$response.body#/events/0/origin_region"),
                ))),
                ("get_model" = (operation_id = "get_model", parameters(("id" = "$response.body#/model_id")))),
            )),
        BadRequest, Unauthorized, Forbidden, Conflict, PreconditionFailed, PayloadTooLarge,
        UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
pub(crate) async fn register(
    State(state): State<CommandState>,
    principal: Principal,
    incoming: Incoming,
) -> Response {
    let home = state.service.region().clone();
    respond(&state, principal, incoming, "register", |headers, body| {
        targets::register(parse_json(headers, body)?, &home)
    })
    .await
}

pub(crate) async fn lifecycle(
    State(state): State<CommandState>,
    principal: Principal,
    PathParams(rest, _): PathParams<String, ApiError>,
    incoming: Incoming,
) -> Response {
    let Some(route) = targets::lifecycle(&rest) else {
        return ApiError::NoRoute(format!("POST {}", incoming.uri)).into_response();
    };
    let name = route.name();
    let home = state.service.region().clone();
    respond(&state, principal, incoming, name, move |_, body| {
        route.target(body, &home)
    })
    .await
}

/// Set a model's operational status (from status probes).
#[utoipa::path(
    put, path = "/v1/models/{id}/status", tag = "commands", operation_id = "set_status",
    security(("bearer" = [])),
    params(("id" = ModelId, Path), CommandHeaders),
    request_body = StatusBody,
    responses(
        (status = 200, description = "The recorded event", body = CommandAccepted),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
pub(crate) async fn set_status(
    State(state): State<CommandState>,
    principal: Principal,
    PathParams(rest, _): PathParams<String, ApiError>,
    incoming: Incoming,
) -> Response {
    let Some(id) = rest.strip_suffix("/status").map(str::to_owned) else {
        return ApiError::NoRoute(format!("PUT {}", incoming.uri)).into_response();
    };
    respond(
        &state,
        principal,
        incoming,
        "set_status",
        move |headers, body| targets::set_status(&id, parse_json(headers, body)?),
    )
    .await
}

/// Change a model's localized name and/or description.
#[utoipa::path(
    patch, path = "/v1/models/{id}", tag = "commands", operation_id = "update_metadata",
    security(("bearer" = [])),
    params(("id" = ModelId, Path), CommandHeaders),
    request_body = MetadataBody,
    responses(
        (status = 200, description = "The recorded event", body = CommandAccepted),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
        PayloadTooLarge, UnsupportedMediaType, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
pub(crate) async fn update_metadata(
    State(state): State<CommandState>,
    principal: Principal,
    PathParams(id, _): PathParams<String, ApiError>,
    incoming: Incoming,
) -> Response {
    respond(
        &state,
        principal,
        incoming,
        "update_metadata",
        move |headers, body| targets::update_metadata(&id, parse_json(headers, body)?),
    )
    .await
}

/// `PUT` serves the model in the region, `DELETE` withdraws it.
pub(crate) async fn availability(
    State(state): State<CommandState>,
    principal: Principal,
    PathParams((region, model), _): PathParams<(String, String), ApiError>,
    incoming: Incoming,
) -> Response {
    let command = if incoming.method == Method::DELETE {
        AvailabilityCommand::Withdraw(WithdrawReason::Manual)
    } else {
        AvailabilityCommand::Serve
    };
    let name = match command {
        AvailabilityCommand::Serve => "serve",
        AvailabilityCommand::Withdraw(_) => "withdraw",
    };
    respond(&state, principal, incoming, name, move |_, _| {
        Ok(Target::Availability {
            region: RegionId::parse(&region)?,
            model: ModelId::parse(&model)?,
            command,
        })
    })
    .await
}

/// Authorizes, reads headers and body, builds the target, runs it and renders the answer.
async fn respond(
    state: &CommandState,
    principal: Principal,
    incoming: Incoming,
    command: &'static str,
    build: impl FnOnce(&HeaderMap, &[u8]) -> Result<Target, ApiError>,
) -> Response {
    let result = run(state, principal, incoming, build).await;
    let outcome = match &result {
        Ok(_) => "accepted",
        Err(error) => error.code(),
    };
    metrics::counter!("commands_total", "command" => command, "outcome" => outcome).increment(1);
    match result {
        Ok(answer) => render(answer),
        Err(error) => error.into_response(),
    }
}

async fn run(
    state: &CommandState,
    principal: Principal,
    incoming: Incoming,
    build: impl FnOnce(&HeaderMap, &[u8]) -> Result<Target, ApiError>,
) -> Result<Accepted, ApiError> {
    let region = state.service.region();
    if !principal.may_write_as(region) {
        return Err(ApiError::Forbidden(region.to_string()));
    }
    let body = accept_bytes(incoming.body)?;
    let if_match = headers::if_match(&incoming.headers)?;
    let key = headers::idempotency_key(&incoming.headers)?;
    let target = build(&incoming.headers, &body)?;
    let idempotency = key.map(|key| IdempotencyClaim {
        principal: principal.name.clone(),
        key,
        fingerprint: headers::fingerprint(incoming.method.as_str(), incoming.uri.path(), &body),
    });
    let request = CommandRequest {
        target,
        if_match,
        idempotency,
        actor: principal.name,
        correlation_id: correlation_id(&incoming.headers),
    };
    Ok(state.service.execute(request).await?)
}

/// The caller's `Correlation-Id` if it is a UUID, else a fresh one.
fn correlation_id(headers: &HeaderMap) -> Uuid {
    headers
        .get("correlation-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::now_v7)
}

fn render(accepted: Accepted) -> Response {
    let Accepted { created, answer } = accepted;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let etag = HeaderValue::from_str(&format!("\"{}\"", answer.version)).ok();
    let location = HeaderValue::from_str(&format!("/v1/models/{}", answer.model_id)).ok();
    let mut response = (status, axum::Json(answer)).into_response();
    let headers = response.headers_mut();
    if let Some(etag) = etag {
        headers.insert(header::ETAG, etag);
    }
    if created && let Some(location) = location {
        headers.insert(header::LOCATION, location);
    }
    response
}
