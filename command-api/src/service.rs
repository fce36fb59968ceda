//! Running a command: idempotent replay, registry ownership, decide on the current state, append with optimistic concurrency.

use std::sync::Arc;

use domain::{
    AvailabilityCommand, ConsistencyToken, DomainError, EventEnvelope, ModelCommand, ModelId,
    Ownership, RegionId, StreamId, decide_availability, decide_model,
};
use event_store::{
    AppendError, AppendQueue, AppendRequest, CommandMeta, EventStore, IdempotencyClaim, NewEvents,
    RecordedAnswer, StoredResponse, StreamState,
};
use uuid::Uuid;

use crate::command_error::CommandError;
use crate::dto::CommandAccepted;

/// What a command is about.
#[derive(Debug, Clone)]
pub enum Target {
    Model {
        id: ModelId,
        command: ModelCommand,
    },
    Availability {
        region: RegionId,
        model: ModelId,
        command: AvailabilityCommand,
    },
}

impl Target {
    /// The model the command is about (an availability command's model included).
    pub fn model(&self) -> &ModelId {
        match self {
            Target::Model { id, .. } => id,
            Target::Availability { model, .. } => model,
        }
    }
}

/// A validated, authenticated command with its HTTP-level preconditions.
#[derive(Debug, Clone)]
pub struct CommandRequest {
    pub target: Target,
    pub if_match: Option<u64>,
    pub idempotency: Option<IdempotencyClaim>,
    pub actor: String,
    pub correlation_id: Uuid,
}

/// A command carried out (or the recorded answer to its earlier identical request).
#[derive(Debug, Clone)]
pub struct Accepted {
    /// The command created the model (a registration): the edge answers 201 with `Location`.
    pub created: bool,
    pub answer: CommandAccepted,
}

impl Accepted {
    /// The answer as recorded for idempotent retries.
    fn from_recorded(recorded: StoredResponse) -> Result<Self, CommandError> {
        let answer = serde_json::from_value(recorded.body).map_err(|error| {
            tracing::error!(%error, "a recorded idempotent answer does not decode");
            CommandError::Corrupt
        })?;
        Ok(Self {
            created: recorded.status == 201,
            answer,
        })
    }
}

/// A conflicting concurrent writer makes us re-read and re-decide, a bounded number of times.
const MAX_ATTEMPTS: usize = 5;

/// Runs commands: load, check preconditions, decide, append; no HTTP in sight.
#[derive(Debug, Clone)]
pub struct CommandService {
    store: EventStore,
    appends: AppendQueue,
    ownership: Ownership,
}

impl CommandService {
    /// `ownership` decides which region may register each id (the same on every node); at
    /// most `group_commit_max` concurrent commands share a transaction. Starts the node's
    /// append queue, so it must be called within the Tokio runtime.
    pub fn new(store: EventStore, ownership: Ownership, group_commit_max: usize) -> Self {
        let appends = AppendQueue::start(store.clone(), group_commit_max);
        Self {
            store,
            appends,
            ownership,
        }
    }

    pub fn region(&self) -> &RegionId {
        self.store.region()
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub async fn execute(&self, request: CommandRequest) -> Result<Accepted, CommandError> {
        if let Some(claim) = &request.idempotency
            && let Some(answer) = self.replay(claim).await?
        {
            return Ok(answer);
        }
        self.execute_unrecorded(request).await
    }

    /// [`CommandService::execute`] for a request whose key the caller has just looked up and
    /// found unused (an import checks a whole batch's keys in one query). Should a twin commit
    /// the key meanwhile, the append refuses it and its recorded answer is returned as ever.
    pub(crate) async fn execute_unrecorded(
        &self,
        request: CommandRequest,
    ) -> Result<Accepted, CommandError> {
        let meta = CommandMeta {
            correlation_id: request.correlation_id,
            causation_id: None,
            idempotency_key: request.idempotency.as_ref().map(|c| c.key.clone()),
            actor: Some(request.actor.clone()),
        };
        let created = matches!(
            request.target,
            Target::Model {
                command: ModelCommand::Register(_),
                ..
            }
        );
        for _ in 0..MAX_ATTEMPTS {
            let new = match self.decide(&request).await {
                Ok(new) => new,
                Err(refusal) => return self.unless_already_answered(&request, refusal).await,
            };
            let stream = new.stream.clone();
            let expected = new.expected_version();
            let answer_stream = stream.clone();
            let appended = self
                .appends
                .append(AppendRequest {
                    new,
                    meta: meta.clone(),
                    claim: request.idempotency.clone(),
                    answer: Arc::new(move |recorded| {
                        stored(created, &accepted(&answer_stream, expected, recorded))
                    }),
                })
                .await;
            match appended {
                Ok(recorded) => {
                    return Ok(Accepted {
                        created,
                        answer: accepted(&stream, expected, &recorded),
                    });
                }
                Err(AppendError::Conflict { .. }) if request.if_match.is_some() => {
                    let actual = self.current_version(&request.target).await?;
                    return Err(CommandError::VersionMismatch { expected, actual });
                }
                Err(AppendError::Conflict { .. }) => continue,
                Err(AppendError::IdempotencyKeyTaken) => {
                    // The key's row exists, so its answer does: gone only if the store lost it.
                    let claim = request.idempotency.as_ref().ok_or(CommandError::Corrupt)?;
                    return self.replay(claim).await?.ok_or(CommandError::Corrupt);
                }
                Err(AppendError::Store(error)) => return Err(error.into()),
            }
        }
        Err(CommandError::Unavailable)
    }

    /// A concurrent twin of this request (same idempotency key) may have committed while we
    /// decided, and its effect is why we were refused: then its answer is ours too.
    async fn unless_already_answered(
        &self,
        request: &CommandRequest,
        refusal: CommandError,
    ) -> Result<Accepted, CommandError> {
        if let (CommandError::Refused(_), Some(claim)) = (&refusal, &request.idempotency)
            && let Some(answer) = self.replay(claim).await?
        {
            return Ok(answer);
        }
        Err(refusal)
    }

    /// The recorded answer for a retried key, or 422 if the key came with another request.
    async fn replay(&self, claim: &IdempotencyClaim) -> Result<Option<Accepted>, CommandError> {
        let recorded = self
            .store
            .recorded_answer(&claim.principal, &claim.key)
            .await?;
        recorded
            .map(|recorded| answer_recorded(claim, recorded))
            .transpose()
    }

    async fn decide(&self, request: &CommandRequest) -> Result<NewEvents, CommandError> {
        let acting = self.store.region();
        match &request.target {
            Target::Model { id, command } => {
                if let ModelCommand::Register(register) = command {
                    self.check_registry_owner(register)?;
                }
                let state = self.store.load_model(id).await?;
                check_if_match(request.if_match, state.version)?;
                if state.record.is_none() {
                    self.check_known_elsewhere(id, command).await?;
                }
                let events = decide_model(&state, id, acting, command)?;
                Ok(NewEvents {
                    stream: StreamId::Model(id.clone()),
                    prior: StreamState::Model(state),
                    events,
                })
            }
            Target::Availability {
                region,
                model,
                command,
            } => {
                let state = self.store.load_availability(region, model).await?;
                check_if_match(request.if_match, state.version)?;
                let facts = self.store.catalogue_facts(model).await?;
                let events = decide_availability(&state, region, model, acting, facts, *command)?;
                Ok(NewEvents {
                    stream: StreamId::Availability {
                        region: region.clone(),
                        model: model.clone(),
                    },
                    prior: StreamState::Availability(state),
                    events,
                })
            }
        }
    }

    /// Only the id's registry owner registers it, as its home region: two regions can never
    /// both accept one id, not even at the same instant or while they cannot see each other.
    fn check_registry_owner(&self, register: &domain::RegisterModel) -> Result<(), CommandError> {
        let owner = self.ownership.owner(&register.id, &register.provider);
        let acting = self.store.region();
        if owner == acting && owner == &register.home_region {
            return Ok(());
        }
        Err(DomainError::NotOwner {
            owner: owner.clone(),
            acting: acting.clone(),
        }
        .into())
    }

    /// A model this node has no stream for may still be known, homed in another region.
    async fn check_known_elsewhere(
        &self,
        id: &ModelId,
        command: &ModelCommand,
    ) -> Result<(), CommandError> {
        let Some(home) = self.store.catalogue_home_region(id).await? else {
            return Ok(());
        };
        Err(match command {
            ModelCommand::Register(_) => DomainError::AlreadyRegistered(id.clone()),
            _ => DomainError::NotOwner {
                owner: home,
                acting: self.store.region().clone(),
            },
        }
        .into())
    }

    async fn current_version(&self, target: &Target) -> Result<u64, CommandError> {
        Ok(match target {
            Target::Model { id, .. } => self.store.load_model(id).await?.version,
            Target::Availability { region, model, .. } => {
                self.store.load_availability(region, model).await?.version
            }
        })
    }
}

/// A key's recorded answer, if it was recorded for this very request; 422 if for another.
pub(crate) fn answer_recorded(
    claim: &IdempotencyClaim,
    recorded: RecordedAnswer,
) -> Result<Accepted, CommandError> {
    if recorded.fingerprint != claim.fingerprint {
        return Err(CommandError::IdempotencyKeyReused);
    }
    Accepted::from_recorded(recorded.response)
}

fn check_if_match(expected: Option<u64>, actual: u64) -> Result<(), CommandError> {
    match expected {
        Some(expected) if expected != actual => {
            Err(CommandError::VersionMismatch { expected, actual })
        }
        _ => Ok(()),
    }
}

/// What a command answers: the events it recorded and how to read them back.
fn accepted(stream: &StreamId, expected: u64, recorded: &[EventEnvelope]) -> CommandAccepted {
    let last = recorded.last();
    CommandAccepted {
        model_id: stream.model_id().to_string(),
        stream: stream.to_string(),
        version: last.map_or(expected, |e| e.sequence),
        events: recorded.to_vec(),
        consistency_token: last.map(|e| ConsistencyToken {
            region: e.origin_region.clone(),
            position: e.position,
            sequence: e.sequence,
            stream: e.stream.clone(),
        }),
    }
}

/// The answer as recorded for idempotent retries (decoded again by `Accepted::from_recorded`).
fn stored(created: bool, accepted: &CommandAccepted) -> StoredResponse {
    StoredResponse {
        status: if created { 201 } else { 200 },
        body: serde_json::to_value(accepted).unwrap_or_default(),
    }
}
