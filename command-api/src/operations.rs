//! Operations that share a handler: `handlers::lifecycle` serves activate, deactivate and
//! retire through one wildcard route, `handlers::availability` serves PUT and DELETE. utoipa
//! documents one operation per function, so each is described by a bodiless function here.

use domain::{ModelId, RegionId};

use crate::dto::CommandAccepted;
use crate::openapi::{
    BadRequest, CommandHeaders, Conflict, Forbidden, NotFound, PayloadTooLarge, PreconditionFailed,
    TooManyRequests, Unauthorized, Unavailable, Unprocessable,
};

/// Activate a model: `inactive → active`.
#[utoipa::path(
    post, path = "/v1/models/{id}/activate", tag = "commands", operation_id = "activate",
    security(("bearer" = [])),
    params(("id" = ModelId, Path), CommandHeaders),
    responses(
        (status = 200, description = "The recorded event", body = CommandAccepted),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
        PayloadTooLarge, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
#[allow(dead_code)]
pub(crate) fn activate() {}

/// Deactivate a model: `active → inactive`.
#[utoipa::path(
    post, path = "/v1/models/{id}/deactivate", tag = "commands", operation_id = "deactivate",
    security(("bearer" = [])),
    params(("id" = ModelId, Path), CommandHeaders),
    responses(
        (status = 200, description = "The recorded event", body = CommandAccepted),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
        PayloadTooLarge, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
#[allow(dead_code)]
pub(crate) fn deactivate() {}

/// Retire a model, from `inactive`; final. Every region then withdraws it.
#[utoipa::path(
    post, path = "/v1/models/{id}/retire", tag = "commands", operation_id = "retire",
    security(("bearer" = [])),
    params(("id" = ModelId, Path), CommandHeaders),
    responses(
        (status = 200, description = "The recorded event", body = CommandAccepted),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
        PayloadTooLarge, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
#[allow(dead_code)]
pub(crate) fn retire() {}

/// Region `region` starts serving the model; only that region's node accepts it.
#[utoipa::path(
    put, path = "/v1/regions/{region}/models/{id}", tag = "commands", operation_id = "serve",
    security(("bearer" = [])),
    params(("region" = RegionId, Path), ("id" = ModelId, Path), CommandHeaders),
    responses(
        (status = 200, description = "The recorded event", body = CommandAccepted,
            links(("withdraw" = (operation_id = "withdraw", parameters(
                ("id" = "$response.body#/model_id"),
                ("region" = "$response.body#/events/0/origin_region"),
            ))))),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
        PayloadTooLarge, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
#[allow(dead_code)]
pub(crate) fn serve() {}

/// Region `region` stops serving the model; only that region's node accepts it.
#[utoipa::path(
    delete, path = "/v1/regions/{region}/models/{id}", tag = "commands", operation_id = "withdraw",
    security(("bearer" = [])),
    params(("region" = RegionId, Path), ("id" = ModelId, Path), CommandHeaders),
    responses(
        (status = 200, description = "The recorded event", body = CommandAccepted),
        BadRequest, Unauthorized, Forbidden, NotFound, Conflict, PreconditionFailed,
        PayloadTooLarge, Unprocessable, TooManyRequests, Unavailable,
    ),
)]
#[allow(dead_code)]
pub(crate) fn withdraw() {}
