//! Property (a): any sequence of arbitrary commands, where the accepted ones' events are applied
//! with `evolve_*`, keeps the state machine legal.
//!
//! Each step is checked against the rules of the product brief, written out independently of
//! `decide_*` below (`rules_allow`): the model must accept exactly what the rules allow, reject
//! everything else with the right reason, and its folded state must match what the rules say.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::gwt::SERVING_REGION;
use common::strategies::{event_payload, lifecycle, operational_status, withdraw_reason};
use common::{ELSEWHERE, HOME, description, gpt5, name, provider, region};
use domain::{
    AvailabilityCommand, AvailabilityState, CatalogueFacts, DomainError, EventPayload, Lifecycle,
    LocalizedText, ModelCommand, ModelState, OperationalStatus, RegionId, RegisterModel,
    UpdateMetadata, decide_availability, decide_model, evolve_availability, evolve_model,
};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

const CASES: u32 = 10_000;
const MAX_STEPS: usize = 40;

// --- strategies ------------------------------------------------------------------------------

/// Mostly the home region, sometimes a region that does not own the stream.
fn acting(home: &'static str) -> impl Strategy<Value = RegionId> {
    prop_oneof![4 => Just(region(home)), 1 => Just(region(ELSEWHERE))]
}

/// A small pool, so that updates which change nothing come up often.
fn some_name() -> impl Strategy<Value = LocalizedText> {
    prop::sample::select(vec![
        name(&[("en", "GPT-5")]),
        name(&[("en", "GPT-5 Turbo")]),
        name(&[("en", "GPT-5"), ("ko", "지피티-5")]),
    ])
}

fn some_description() -> impl Strategy<Value = LocalizedText> {
    prop::sample::select(vec![
        description(&[("en", "Frontier model")]),
        description(&[("en", "Frontier model"), ("ja", "フロンティア")]),
    ])
}

fn model_command() -> impl Strategy<Value = ModelCommand> {
    prop_oneof![
        (acting(HOME), some_name(), option::of(some_description())).prop_map(
            |(home_region, name, description)| {
                ModelCommand::Register(RegisterModel {
                    id: gpt5(),
                    provider: provider("openai"),
                    name,
                    description,
                    home_region,
                })
            }
        ),
        Just(ModelCommand::Activate),
        Just(ModelCommand::Deactivate),
        operational_status().prop_map(ModelCommand::SetStatus),
        (option::of(some_name()), option::of(some_description())).prop_map(
            |(name, description)| ModelCommand::UpdateMetadata(UpdateMetadata {
                name,
                description
            })
        ),
        Just(ModelCommand::Retire),
    ]
}

fn model_steps() -> impl Strategy<Value = Vec<(RegionId, ModelCommand)>> {
    vec((acting(HOME), model_command()), 0..MAX_STEPS)
}

// --- the rules, written out from the brief ---------------------------------------------------

/// What a registered model looks like according to the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    home: RegionId,
    lifecycle: Lifecycle,
    status: OperationalStatus,
    name: LocalizedText,
    description: Option<LocalizedText>,
}

impl Expected {
    fn of(state: &ModelState) -> Option<Expected> {
        state.record.as_ref().map(|record| Expected {
            home: record.home_region.clone(),
            lifecycle: record.lifecycle,
            status: record.status,
            name: record.name.clone(),
            description: record.description.clone(),
        })
    }
}

/// The model after `command`, if the rules accept it from `acting`; `None` if they reject it.
fn rules_allow(
    model: Option<&Expected>,
    acting: &RegionId,
    command: &ModelCommand,
) -> Option<Expected> {
    use Lifecycle::{Active, Inactive, Retired};
    let Some(model) = model else {
        return match command {
            ModelCommand::Register(register) if register.home_region == *acting => Some(Expected {
                home: register.home_region.clone(),
                lifecycle: Inactive,
                status: OperationalStatus::Operational,
                name: register.name.clone(),
                description: register.description.clone(),
            }),
            _ => None,
        };
    };
    if model.home != *acting || model.lifecycle == Retired {
        return None;
    }
    let mut next = model.clone();
    match command {
        ModelCommand::Register(_) => return None,
        ModelCommand::Activate if model.lifecycle == Inactive => next.lifecycle = Active,
        ModelCommand::Deactivate if model.lifecycle == Active => next.lifecycle = Inactive,
        ModelCommand::Retire if model.lifecycle == Inactive => next.lifecycle = Retired,
        ModelCommand::Activate | ModelCommand::Deactivate | ModelCommand::Retire => return None,
        ModelCommand::SetStatus(status) => next.status = *status,
        ModelCommand::UpdateMetadata(update) => {
            if let Some(name) = &update.name {
                next.name = name.clone();
            }
            if let Some(description) = &update.description {
                next.description = Some(description.clone());
            }
        }
    }
    // Commands that would change nothing are rejected, never silently accepted.
    (next != *model).then_some(next)
}

/// `registered → active ⇄ inactive → retired`, a registered model starting inactive; or no
/// lifecycle change at all for a live model (status and metadata updates).
fn is_legal_edge(before: Option<Lifecycle>, after: Option<Lifecycle>) -> bool {
    use Lifecycle::{Active, Inactive, Retired};
    matches!(
        (before, after),
        (None, Some(Inactive))
            | (Some(Inactive), Some(Active))
            | (Some(Active), Some(Inactive))
            | (Some(Inactive), Some(Retired))
            | (Some(Inactive), Some(Inactive))
            | (Some(Active), Some(Active))
    )
}

/// The event an accepted command must produce (field values are checked via the fold).
fn event_fits_command(event: &EventPayload, command: &ModelCommand) -> bool {
    matches!(
        (command, event),
        (
            ModelCommand::Register(_),
            EventPayload::ModelRegistered { .. }
        ) | (ModelCommand::Activate, EventPayload::ModelActivated)
            | (ModelCommand::Deactivate, EventPayload::ModelDeactivated)
            | (
                ModelCommand::SetStatus(_),
                EventPayload::ModelStatusChanged { .. }
            )
            | (
                ModelCommand::UpdateMetadata(_),
                EventPayload::ModelMetadataUpdated { .. }
            )
            | (ModelCommand::Retire, EventPayload::ModelRetired)
    )
}

fn lifecycle_of(state: &ModelState) -> Option<Lifecycle> {
    state.record.as_ref().map(|record| record.lifecycle)
}

/// Runs `steps` against the model, checking every step; returns the final state and how many
/// events were applied to it.
fn run_model_steps(
    mut state: ModelState,
    steps: &[(RegionId, ModelCommand)],
) -> Result<(ModelState, u64), TestCaseError> {
    let id = gpt5();
    let initial_version = state.version;
    let mut applied = 0u64;
    for (acting, command) in steps {
        let before = lifecycle_of(&state);
        let expected_before = Expected::of(&state);
        let allowed = rules_allow(expected_before.as_ref(), acting, command);
        let owner = match (&expected_before, command) {
            (Some(model), _) => Some(model.home.clone()),
            (None, ModelCommand::Register(register)) => Some(register.home_region.clone()),
            (None, _) => None,
        };

        match decide_model(&state, &id, acting, command) {
            Ok(events) => {
                prop_assert!(
                    before != Some(Lifecycle::Retired),
                    "{command:?} was accepted on a retired model: {events:?}"
                );
                prop_assert!(
                    allowed.is_some(),
                    "{command:?} from {acting} was accepted against the rules in {expected_before:?}"
                );
                prop_assert_eq!(events.len(), 1, "one command, one event: {:?}", events);
                prop_assert!(
                    event_fits_command(&events[0], command),
                    "{command:?} -> {events:?}"
                );
                state = events.iter().fold(state, evolve_model);
                applied += events.len() as u64;
                let after = lifecycle_of(&state);
                prop_assert!(
                    is_legal_edge(before, after),
                    "{command:?} moved the lifecycle {before:?} -> {after:?}"
                );
                prop_assert_eq!(Expected::of(&state), allowed);
                let record = state.record.as_ref().unwrap();
                prop_assert_eq!(&record.id, &id);
                prop_assert_eq!(&record.provider, &provider("openai"));
            }
            Err(error) => {
                prop_assert!(
                    allowed.is_none(),
                    "{command:?} from {acting} was rejected with {error:?}, but the rules allow it in {expected_before:?}"
                );
                // Why it was rejected, in the order the brief gives the reasons.
                match (&owner, &expected_before) {
                    (Some(owner), _) if owner != acting => prop_assert_eq!(
                        error,
                        DomainError::NotOwner {
                            owner: owner.clone(),
                            acting: acting.clone(),
                        }
                    ),
                    (None, _) => prop_assert_eq!(error, DomainError::UnknownModel(id.clone())),
                    (Some(_), Some(_)) if matches!(command, ModelCommand::Register(_)) => {
                        prop_assert_eq!(error, DomainError::AlreadyRegistered(id.clone()));
                    }
                    (Some(_), Some(model)) if model.lifecycle == Lifecycle::Retired => {
                        prop_assert_eq!(error, DomainError::Retired(id.clone()));
                    }
                    (Some(_), Some(model)) => prop_assert!(
                        matches!(
                            (&error, command),
                            (
                                DomainError::IllegalTransition { .. },
                                ModelCommand::Activate
                                    | ModelCommand::Deactivate
                                    | ModelCommand::Retire
                            ) | (DomainError::StatusUnchanged(_), ModelCommand::SetStatus(_))
                                | (DomainError::NothingChanged, ModelCommand::UpdateMetadata(_))
                        ),
                        "{command:?} in {model:?} was rejected with {error:?}"
                    ),
                    (Some(_), None) => prop_assert!(false, "unreachable: {error:?}"),
                }
            }
        }
        prop_assert_eq!(
            state.version,
            initial_version + applied,
            "after {:?}",
            command
        );
    }
    Ok((state, applied))
}

// --- properties ------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Arbitrary command sequences from arbitrary regions: the model accepts exactly what the
    /// rules allow, lifecycle moves only along legal edges, retired is final, and `version`
    /// counts the events applied.
    #[test]
    fn arbitrary_command_sequences_keep_the_lifecycle_legal(steps in model_steps()) {
        let (state, applied) = run_model_steps(ModelState::default(), &steps)?;
        prop_assert_eq!(state.version, applied);
    }

    /// Once retired, nothing (from any region) is accepted any more and the state never moves.
    #[test]
    fn retired_is_final(prefix in model_steps(), suffix in model_steps()) {
        let (state, _) = run_model_steps(ModelState::default(), &prefix)?;
        // Drive whatever the prefix left to retirement, along legal commands only.
        let home = state
            .record
            .as_ref()
            .map_or_else(|| region(HOME), |record| record.home_region.clone());
        let to_retirement = match lifecycle_of(&state) {
            None => vec![
                ModelCommand::Register(RegisterModel {
                    id: gpt5(),
                    provider: provider("openai"),
                    name: name(&[("en", "GPT-5")]),
                    description: None,
                    home_region: home.clone(),
                }),
                ModelCommand::Retire,
            ],
            Some(Lifecycle::Active) => vec![ModelCommand::Deactivate, ModelCommand::Retire],
            Some(Lifecycle::Inactive) => vec![ModelCommand::Retire],
            Some(Lifecycle::Retired) => vec![],
        };
        let mut state = state;
        for command in &to_retirement {
            let events = decide_model(&state, &gpt5(), &home, command)
                .map_err(|error| TestCaseError::fail(format!("{command:?}: {error}")))?;
            state = events.iter().fold(state, evolve_model);
        }
        prop_assert_eq!(lifecycle_of(&state), Some(Lifecycle::Retired));

        let retired = state.clone();
        for (acting, command) in &suffix {
            let result = decide_model(&retired, &gpt5(), acting, command);
            prop_assert!(result.is_err(), "{:?} from {} accepted after retirement: {:?}", command, acting, result);
        }
        // The same suffix through the checked runner leaves the state exactly as it was.
        let (after, applied) = run_model_steps(retired.clone(), &suffix)?;
        prop_assert_eq!(applied, 0);
        prop_assert_eq!(after, retired);
    }

    /// `evolve_model` counts every event it is given, whatever the event and order, and never
    /// panics, even on histories `decide_model` would never produce.
    #[test]
    fn evolve_counts_every_event(events in vec(event_payload(), 0..20)) {
        let state = events.iter().fold(ModelState::default(), evolve_model);
        prop_assert_eq!(state.version, events.len() as u64);
        let availability = events.iter().fold(AvailabilityState::default(), evolve_availability);
        prop_assert_eq!(availability.version, events.len() as u64);
    }
}

// --- availability ----------------------------------------------------------------------------

fn availability_command() -> impl Strategy<Value = AvailabilityCommand> {
    prop_oneof![
        Just(AvailabilityCommand::Serve),
        withdraw_reason().prop_map(AvailabilityCommand::Withdraw),
    ]
}

fn availability_steps()
-> impl Strategy<Value = Vec<(RegionId, Option<Lifecycle>, AvailabilityCommand)>> {
    vec(
        (
            acting(SERVING_REGION),
            option::weighted(0.9, lifecycle()),
            availability_command(),
        ),
        0..MAX_STEPS,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// Arbitrary serve/withdraw sequences, whatever the catalogue says about the model: only the
    /// region itself writes, a retired or unknown model is never served, serving is a toggle,
    /// and `version` counts the events applied.
    #[test]
    fn arbitrary_availability_sequences_keep_served_consistent(steps in availability_steps()) {
        let serving = region(SERVING_REGION);
        let model = gpt5();
        let mut state = AvailabilityState::default();
        let mut served = false;
        let mut applied = 0u64;
        for (acting, facts, command) in &steps {
            let result = decide_availability(
                &state,
                &serving,
                &model,
                acting,
                facts.map(|lifecycle| CatalogueFacts { lifecycle }),
                *command,
            );
            let expected = if *acting != serving {
                Err(DomainError::NotOwner { owner: serving.clone(), acting: acting.clone() })
            } else {
                match (command, facts, served) {
                    (AvailabilityCommand::Serve, None, _) => {
                        Err(DomainError::UnknownModel(model.clone()))
                    }
                    (AvailabilityCommand::Serve, Some(Lifecycle::Retired), _) => {
                        Err(DomainError::Retired(model.clone()))
                    }
                    (AvailabilityCommand::Serve, Some(_), true) => Err(DomainError::AlreadyServed {
                        region: serving.clone(),
                        model: model.clone(),
                    }),
                    (AvailabilityCommand::Serve, Some(_), false) => {
                        Ok(vec![EventPayload::ModelServed { region: serving.clone() }])
                    }
                    (AvailabilityCommand::Withdraw(_), _, false) => Err(DomainError::NotServed {
                        region: serving.clone(),
                        model: model.clone(),
                    }),
                    (AvailabilityCommand::Withdraw(reason), _, true) => {
                        Ok(vec![EventPayload::ModelWithdrawn { region: serving.clone(), reason: *reason }])
                    }
                }
            };
            prop_assert_eq!(&result, &expected, "{:?} from {} with {:?}", command, acting, facts);
            if let Ok(events) = result {
                state = events.iter().fold(state, evolve_availability);
                applied += events.len() as u64;
                served = matches!(command, AvailabilityCommand::Serve);
            }
            prop_assert_eq!(state.served, served);
            prop_assert_eq!(state.version, applied);
        }
    }
}
