//! From a command's route and JSON body to what it targets: one set of rules for the HTTP
//! routes and for the lines of a bulk import, so both validate alike.

use domain::{
    AvailabilityCommand, LocalizedText, ModelCommand, ModelId, OperationalStatus, ProviderId,
    RegionId, RegisterModel, TextLimit, UpdateMetadata, WithdrawReason,
};
use serde::Deserialize;
use serde_json::error::Category;

use crate::dto::{MetadataBody, RegisterBody, StatusBody};
use crate::problem::ApiError;
use crate::service::Target;

/// A command route without its body: which handler-level operation a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Register,
    Lifecycle {
        id: String,
        action: ModelCommand,
    },
    SetStatus {
        id: String,
    },
    UpdateMetadata {
        id: String,
    },
    Availability {
        region: String,
        model: String,
        command: AvailabilityCommand,
    },
}

impl Route {
    /// The operation's name, as counted in `commands_total`.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Route::Register => "register",
            Route::Lifecycle { action, .. } => action.verb(),
            Route::SetStatus { .. } => "set_status",
            Route::UpdateMetadata { .. } => "update_metadata",
            Route::Availability {
                command: AvailabilityCommand::Serve,
                ..
            } => "serve",
            Route::Availability { .. } => "withdraw",
        }
    }

    /// The route of `method` and `path` (already percent-decoded), as the router matches it.
    pub(crate) fn of(method: &str, path: &str) -> Result<Self, ApiError> {
        let no_route = || ApiError::NoRoute(format!("{method} {path}"));
        if path == "/v1/models" {
            return match method {
                "POST" => Ok(Route::Register),
                _ => Err(ApiError::MethodNotAllowed),
            };
        }
        if let Some(rest) = path.strip_prefix("/v1/models/") {
            return match method {
                "POST" => lifecycle(rest).ok_or_else(no_route),
                "PUT" => rest
                    .strip_suffix("/status")
                    .map(|id| Route::SetStatus { id: id.to_owned() })
                    .ok_or_else(no_route),
                "PATCH" => Ok(Route::UpdateMetadata {
                    id: rest.to_owned(),
                }),
                _ => Err(ApiError::MethodNotAllowed),
            };
        }
        if let Some(rest) = path.strip_prefix("/v1/regions/") {
            let (region, model) = rest.split_once("/models/").ok_or_else(no_route)?;
            let command = match method {
                "PUT" => AvailabilityCommand::Serve,
                "DELETE" => AvailabilityCommand::Withdraw(WithdrawReason::Manual),
                _ => return Err(ApiError::MethodNotAllowed),
            };
            return Ok(Route::Availability {
                region: region.to_owned(),
                model: model.to_owned(),
                command,
            });
        }
        Err(no_route())
    }

    /// What the command targets, given its JSON body (ignored by routes without one).
    pub(crate) fn target(self, body: &[u8], home: &RegionId) -> Result<Target, ApiError> {
        match self {
            Route::Register => register(json(body)?, home),
            Route::Lifecycle { id, action } => Ok(Target::Model {
                id: ModelId::parse(&id)?,
                command: action,
            }),
            Route::SetStatus { id } => set_status(&id, json(body)?),
            Route::UpdateMetadata { id } => update_metadata(&id, json(body)?),
            Route::Availability {
                region,
                model,
                command,
            } => Ok(Target::Availability {
                region: RegionId::parse(&region)?,
                model: ModelId::parse(&model)?,
                command,
            }),
        }
    }
}

/// `…/activate`, `…/deactivate`, `…/retire` after `/v1/models/`.
pub(crate) fn lifecycle(rest: &str) -> Option<Route> {
    let (id, action) = match rest.rsplit_once('/')? {
        (id, "activate") => (id, ModelCommand::Activate),
        (id, "deactivate") => (id, ModelCommand::Deactivate),
        (id, "retire") => (id, ModelCommand::Retire),
        _ => return None,
    };
    Some(Route::Lifecycle {
        id: id.to_owned(),
        action,
    })
}

/// Parses a JSON body already known to be JSON: syntax errors are 400, the wrong shape 422.
pub(crate) fn json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|error| match error.classify() {
        Category::Data => ApiError::UnprocessableBody(error.to_string()),
        Category::Syntax | Category::Eof | Category::Io => {
            ApiError::MalformedBody(format!("malformed JSON: {error}"))
        }
    })
}

pub(crate) fn register(body: RegisterBody, home: &RegionId) -> Result<Target, ApiError> {
    let home_region = match body.home_region {
        Some(raw) => RegionId::parse(&raw).map_err(with_field("home_region"))?,
        None => home.clone(),
    };
    let id = ModelId::parse(&body.id)?;
    Ok(Target::Model {
        id: id.clone(),
        command: ModelCommand::Register(RegisterModel {
            id,
            provider: ProviderId::parse(&body.provider)?,
            name: LocalizedText::parse(body.name, TextLimit::NAME)?,
            description: body
                .description
                .map(|d| LocalizedText::parse(d, TextLimit::DESCRIPTION))
                .transpose()?,
            home_region,
        }),
    })
}

pub(crate) fn set_status(id: &str, body: StatusBody) -> Result<Target, ApiError> {
    Ok(Target::Model {
        id: ModelId::parse(id)?,
        command: ModelCommand::SetStatus(OperationalStatus::parse(&body.status)?),
    })
}

pub(crate) fn update_metadata(id: &str, body: MetadataBody) -> Result<Target, ApiError> {
    if body.name.is_none() && body.description.is_none() {
        return Err(ApiError::UnprocessableBody(
            "give at least one of name, description".into(),
        ));
    }
    Ok(Target::Model {
        id: ModelId::parse(id)?,
        command: ModelCommand::UpdateMetadata(UpdateMetadata {
            name: body
                .name
                .map(|n| LocalizedText::parse(n, TextLimit::NAME))
                .transpose()?,
            description: body
                .description
                .map(|d| LocalizedText::parse(d, TextLimit::DESCRIPTION))
                .transpose()?,
        }),
    })
}

fn with_field(field: &'static str) -> impl Fn(domain::ValidationError) -> ApiError {
    move |error| ApiError::Invalid(domain::ValidationError::new(field, error.reason))
}
