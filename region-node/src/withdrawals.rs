//! Retiring a model withdraws it from every region: each region's node appends its own
//! withdrawal when its catalogue shows a model it serves as retired.
//!
//! The catalogue is the durable to-do list ("served here and retired"), so a withdrawal missed
//! by a crash is found again at the next pass; the idempotency key makes it happen once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use command_api::{CommandError, CommandRequest, CommandService, Target};
use domain::{AvailabilityCommand, DomainError, WithdrawReason};
use event_store::IdempotencyClaim;
use tokio::sync::Notify;
use uuid::Uuid;

/// The actor recorded on withdrawals this node makes by itself.
pub const SYSTEM_ACTOR: &str = "system:retirement";

/// A pass runs when the catalogue follower saw a retirement, and every `interval` regardless.
pub async fn run(
    service: CommandService,
    retirements: Arc<Notify>,
    interval: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            () = shutdown.as_mut() => return,
            () = retirements.notified() => {}
            () = tokio::time::sleep(interval) => {}
        }
        if let Err(error) = withdraw_retired(&service).await {
            tracing::warn!(%error, "retirement withdrawals will be retried");
        }
    }
}

/// One pass: appends a withdrawal for every retired model this region still serves.
pub async fn withdraw_retired(service: &CommandService) -> Result<usize, CommandError> {
    let region = service.region().clone();
    let models = service.store().served_but_retired(&region).await?;
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
