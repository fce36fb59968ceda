//! Retiring a model withdraws it from every region: each region's node appends its own
//! withdrawal when its catalogue shows a model it serves as retired.
//!
//! The catalogue is the durable to-do list ("served here and retired"), so a withdrawal missed
//! by a crash is found again at the next whole pass; the idempotency key makes it happen once.
//! After a batch of the catalogue follower only the models it retired are checked: a whole
//! pass searches every retired model, which a catch-up would otherwise do after nearly every
//! batch.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use command_api::{CommandError, CommandRequest, CommandService, Target};
use domain::ModelId;
use domain::{AvailabilityCommand, DomainError, WithdrawReason};
use event_store::IdempotencyClaim;
use projector_runtime::retired::{RetiredModels, ToCheck};
use uuid::Uuid;

/// The actor recorded on withdrawals this node makes by itself.
pub const SYSTEM_ACTOR: &str = "system:retirement";

/// A pass over the models the catalogue follower retired runs when it retires some, and a
/// whole pass every `interval` (and after a failed pass) regardless.
pub async fn run(
    service: CommandService,
    retirements: Arc<RetiredModels>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let mut whole_pass_due = true;
    loop {
        let to_check = if whole_pass_due {
            ToCheck::Everything
        } else {
            tokio::select! {
                () = shutdown.as_mut() => return,
                () = retirements.added() => retirements.take(),
                () = tokio::time::sleep(interval) => ToCheck::Everything,
            }
        };
        let passed = match to_check {
            ToCheck::Everything => withdraw_retired(&service).await,
            ToCheck::Models(models) if models.is_empty() => Ok(0),
            ToCheck::Models(models) => withdraw_retired_among(&service, &models).await,
        };
        whole_pass_due = false;
        if let Err(error) = passed {
            tracing::warn!(%error, "retirement withdrawals will be retried");
            // What this pass missed is found by a whole one.
            tokio::select! {
                () = shutdown.as_mut() => return,
                () = tokio::time::sleep(interval.min(Duration::from_secs(1))) => {}
            }
            whole_pass_due = true;
        }
    }
}

/// One whole pass: appends a withdrawal for every retired model this region still serves.
pub async fn withdraw_retired(service: &CommandService) -> Result<usize, CommandError> {
    let models = service.store().served_but_retired(service.region()).await?;
    withdraw(service, models).await
}

/// A pass over `models` only (those the catalogue follower just saw retired).
async fn withdraw_retired_among(
    service: &CommandService,
    models: &[String],
) -> Result<usize, CommandError> {
    let models = service
        .store()
        .served_but_retired_among(service.region(), models)
        .await?;
    withdraw(service, models).await
}

async fn withdraw(service: &CommandService, models: Vec<ModelId>) -> Result<usize, CommandError> {
    let region = service.region().clone();
    let mut withdrawn = 0;
    for model in models {
        let key = format!("retirement-withdrawal:{model}");
        let request = CommandRequest {
            target: Target::Availability {
                region: region.clone(),
                model: model.clone(),
                command: AvailabilityCommand::Withdraw(WithdrawReason::ModelRetired),
            },
            if_match: None,
            idempotency: Some(IdempotencyClaim {
                principal: SYSTEM_ACTOR.into(),
                fingerprint: key.clone(),
                key,
            }),
            actor: SYSTEM_ACTOR.into(),
            correlation_id: Uuid::now_v7(),
        };
        match service.execute(request).await {
            Ok(_) => {
                withdrawn += 1;
                tracing::info!(%model, %region, "withdrawn: the model was retired");
            }
            // Someone withdrew it meanwhile: nothing left to do.
            Err(CommandError::Refused(DomainError::NotServed { .. })) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(withdrawn)
}
