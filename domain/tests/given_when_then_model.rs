//! Every `ModelCommand` in every lifecycle state (unregistered, inactive, active, retired),
//! written as given/when/then scenarios against `decide_model` / `evolve_model`.

mod common;

use common::gwt::{given, given_no_previous_events};
use common::{
    ELSEWHERE, HOME, MODEL, description, gpt5, gpt5_registered, name, provider, region,
    register_gpt5,
};
use domain::{
    DomainError, EventPayload, Lifecycle, LocalizedText, ModelCommand, ModelRecord, ModelState,
    OperationalStatus, RegisterModel, UpdateMetadata,
};

// --- histories -------------------------------------------------------------------------------

fn inactive() -> Vec<EventPayload> {
    vec![gpt5_registered()]
}

fn active() -> Vec<EventPayload> {
    vec![gpt5_registered(), EventPayload::ModelActivated]
}

fn retired() -> Vec<EventPayload> {
    vec![
        gpt5_registered(),
        EventPayload::ModelActivated,
        EventPayload::ModelDeactivated,
        EventPayload::ModelRetired,
    ]
}

// --- commands --------------------------------------------------------------------------------

fn register() -> ModelCommand {
    ModelCommand::Register(register_gpt5())
}

fn rename(pairs: &[(&str, &str)]) -> ModelCommand {
    ModelCommand::UpdateMetadata(UpdateMetadata {
        name: Some(name(pairs)),
        description: None,
    })
}

fn describe(pairs: &[(&str, &str)]) -> ModelCommand {
    ModelCommand::UpdateMetadata(UpdateMetadata {
        name: None,
        description: Some(description(pairs)),
    })
}

/// One of each command, all of which the home region could legitimately send in some state.
fn every_command() -> Vec<ModelCommand> {
    vec![
        register(),
        ModelCommand::Activate,
        ModelCommand::Deactivate,
        ModelCommand::SetStatus(OperationalStatus::Degraded),
        rename(&[("en", "GPT-5 Turbo")]),
        ModelCommand::Retire,
    ]
}

fn not_owner() -> DomainError {
    DomainError::NotOwner {
        owner: region(HOME),
        acting: region(ELSEWHERE),
    }
}

fn illegal(command: &'static str, state: Lifecycle) -> DomainError {
    DomainError::IllegalTransition { command, state }
}

fn lifecycle_of(state: &ModelState) -> Option<Lifecycle> {
    state.record.as_ref().map(|record| record.lifecycle)
}

// --- unregistered ----------------------------------------------------------------------------

#[test]
fn register_creates_an_inactive_operational_model() {
    let state = given_no_previous_events()
        .when(register())
        .then_expect_events(vec![gpt5_registered()]);

    assert_eq!(state.version, 1);
    assert_eq!(
        state.record,
        Some(ModelRecord {
            id: gpt5(),
            provider: provider("openai"),
            home_region: region(HOME),
            name: name(&[("en", "GPT-5")]),
            description: None,
            lifecycle: Lifecycle::Inactive,
            status: OperationalStatus::Operational,
        })
    );
}

#[test]
fn register_carries_localized_name_and_description() {
    let command = RegisterModel {
        name: name(&[("en", "GPT-5"), ("ko", "지피티-5")]),
        description: Some(description(&[
            ("en", "Frontier model"),
            ("pt-BR", "Modelo"),
        ])),
        ..register_gpt5()
    };
    given_no_previous_events()
        .when(ModelCommand::Register(command))
        .then_expect_events(vec![EventPayload::ModelRegistered {
            id: gpt5(),
            provider: provider("openai"),
            home_region: region(HOME),
            name: name(&[("en", "GPT-5"), ("ko", "지피티-5")]),
            description: Some(description(&[
                ("en", "Frontier model"),
                ("pt-BR", "Modelo"),
            ])),
            status: OperationalStatus::Operational,
        }]);
}

#[test]
fn register_is_only_accepted_by_the_home_region_it_names() {
    given_no_previous_events()
        .acting_elsewhere()
        .when(register())
        .then_expect_error(not_owner());
}

#[test]
fn register_for_another_home_region_is_refused_naming_that_region() {
    let command = RegisterModel {
        home_region: region("ap-south"),
        ..register_gpt5()
    };
    given_no_previous_events()
        .when(ModelCommand::Register(command))
        .then_expect_error(DomainError::NotOwner {
            owner: region("ap-south"),
            acting: region(HOME),
        });
}

#[test]
fn register_from_the_named_home_region_is_accepted_anywhere() {
    let command = RegisterModel {
        home_region: region(ELSEWHERE),
        ..register_gpt5()
    };
    let state = given_no_previous_events()
        .acting_elsewhere()
        .when(ModelCommand::Register(command.clone()))
        .then_expect_events(vec![EventPayload::ModelRegistered {
            id: gpt5(),
            provider: provider("openai"),
            home_region: region(ELSEWHERE),
            name: command.name,
            description: None,
            status: OperationalStatus::Operational,
        }]);
    assert_eq!(
        state.record.map(|record| record.home_region),
        Some(region(ELSEWHERE))
    );
}

#[test]
fn every_other_command_on_an_unregistered_model_is_unknown_model() {
    for command in every_command().into_iter().skip(1) {
        given_no_previous_events()
            .when(command)
            .then_expect_error(DomainError::UnknownModel(gpt5()));
    }
}

#[test]
fn unknown_model_error_names_the_model() {
    given_no_previous_events()
        .when(ModelCommand::Activate)
        .then_expect_error_message(&format!("model {MODEL} is not registered"));
}

// --- inactive --------------------------------------------------------------------------------

#[test]
fn register_twice_is_already_registered() {
    given(inactive())
        .when(register())
        .then_expect_error(DomainError::AlreadyRegistered(gpt5()));
}

#[test]
fn register_twice_with_different_details_is_still_already_registered() {
    let command = RegisterModel {
        provider: provider("someone-else"),
        name: name(&[("en", "Other")]),
        ..register_gpt5()
    };
    given(inactive())
        .when(ModelCommand::Register(command))
        .then_expect_error(DomainError::AlreadyRegistered(gpt5()));
}

#[test]
fn activate_an_inactive_model() {
    let state = given(inactive())
        .when(ModelCommand::Activate)
        .then_expect_events(vec![EventPayload::ModelActivated]);
    assert_eq!(lifecycle_of(&state), Some(Lifecycle::Active));
    assert_eq!(state.version, 2);
}

#[test]
fn deactivate_an_inactive_model_is_illegal() {
    given(inactive())
        .when(ModelCommand::Deactivate)
        .then_expect_error(illegal("deactivate", Lifecycle::Inactive));
}

#[test]
fn illegal_transition_message_names_command_and_state() {
    given(inactive())
        .when(ModelCommand::Deactivate)
        .then_expect_error_message("cannot deactivate a model that is inactive");
}

#[test]
fn set_status_of_an_inactive_model() {
    let state = given(inactive())
        .when(ModelCommand::SetStatus(OperationalStatus::Outage))
        .then_expect_events(vec![EventPayload::ModelStatusChanged {
            status: OperationalStatus::Outage,
        }]);
    let record = state.record.expect("still registered");
    assert_eq!(record.status, OperationalStatus::Outage);
    assert_eq!(
        record.lifecycle,
        Lifecycle::Inactive,
        "status is independent"
    );
}

#[test]
fn set_status_to_the_initial_status_is_status_unchanged() {
    given(inactive())
        .when(ModelCommand::SetStatus(OperationalStatus::Operational))
        .then_expect_error(DomainError::StatusUnchanged(OperationalStatus::Operational));
}

#[test]
fn set_status_to_the_last_changed_status_is_status_unchanged() {
    let mut history = inactive();
    history.push(EventPayload::ModelStatusChanged {
        status: OperationalStatus::Degraded,
    });
    given(history)
        .when(ModelCommand::SetStatus(OperationalStatus::Degraded))
        .then_expect_error(DomainError::StatusUnchanged(OperationalStatus::Degraded));
}

#[test]
fn rename_an_inactive_model() {
    let state = given(inactive())
        .when(rename(&[("en", "GPT-5"), ("ko", "지피티-5")]))
        .then_expect_events(vec![EventPayload::ModelMetadataUpdated {
            name: Some(name(&[("en", "GPT-5"), ("ko", "지피티-5")])),
            description: None,
        }]);
    let record = state.record.expect("still registered");
    assert_eq!(record.name.resolve("ko"), "지피티-5");
    assert_eq!(record.description, None);
}

#[test]
fn describe_an_inactive_model() {
    let state = given(inactive())
        .when(describe(&[("en", "Frontier model")]))
        .then_expect_events(vec![EventPayload::ModelMetadataUpdated {
            name: None,
            description: Some(description(&[("en", "Frontier model")])),
        }]);
    let record = state.record.expect("still registered");
    assert_eq!(
        record.description,
        Some(description(&[("en", "Frontier model")]))
    );
    assert_eq!(record.name, name(&[("en", "GPT-5")]), "name is kept");
}

#[test]
fn metadata_event_carries_only_the_fields_that_change() {
    given(inactive())
        .when(ModelCommand::UpdateMetadata(UpdateMetadata {
            name: Some(name(&[("en", "GPT-5")])),
            description: Some(description(&[("en", "New")])),
        }))
        .then_expect_events(vec![EventPayload::ModelMetadataUpdated {
            name: None,
            description: Some(description(&[("en", "New")])),
        }]);
}

#[test]
fn metadata_with_the_current_name_is_nothing_changed() {
    given(inactive())
        .when(rename(&[("en", "GPT-5")]))
        .then_expect_error(DomainError::NothingChanged);
}

#[test]
fn metadata_with_neither_field_is_nothing_changed() {
    given(inactive())
        .when(ModelCommand::UpdateMetadata(UpdateMetadata {
            name: None,
            description: None,
        }))
        .then_expect_error(DomainError::NothingChanged);
}

#[test]
fn metadata_repeating_an_earlier_update_is_nothing_changed() {
    let mut history = inactive();
    history.push(EventPayload::ModelMetadataUpdated {
        name: Some(name(&[("en", "GPT-5 Turbo")])),
        description: Some(description(&[("en", "Fast")])),
    });
    given(history)
        .when(ModelCommand::UpdateMetadata(UpdateMetadata {
            name: Some(name(&[("en", "GPT-5 Turbo")])),
            description: Some(description(&[("en", "Fast")])),
        }))
        .then_expect_error(DomainError::NothingChanged);
}

#[test]
fn metadata_adding_a_locale_is_a_change() {
    given(inactive())
        .when(rename(&[("en", "GPT-5"), ("ja", "ジーピーティー5")]))
        .then_expect_events(vec![EventPayload::ModelMetadataUpdated {
            name: Some(name(&[("en", "GPT-5"), ("ja", "ジーピーティー5")])),
            description: None,
        }]);
}

#[test]
fn retire_an_inactive_model() {
    let state = given(inactive())
        .when(ModelCommand::Retire)
        .then_expect_events(vec![EventPayload::ModelRetired]);
    assert_eq!(lifecycle_of(&state), Some(Lifecycle::Retired));
}

#[test]
fn every_command_on_an_inactive_model_acting_elsewhere_is_not_owner() {
    for command in every_command() {
        given(inactive())
            .acting_elsewhere()
            .when(command)
            .then_expect_error(not_owner());
    }
}

#[test]
fn not_owner_message_names_the_owner() {
    given(inactive())
        .acting_elsewhere()
        .when(ModelCommand::Activate)
        .then_expect_error_message(&format!(
            "only region {HOME} may write this; this node is region {ELSEWHERE}"
        ));
}

// --- active ----------------------------------------------------------------------------------

#[test]
fn register_an_active_model_is_already_registered() {
    given(active())
        .when(register())
        .then_expect_error(DomainError::AlreadyRegistered(gpt5()));
}

#[test]
fn activate_an_active_model_is_illegal() {
    given(active())
        .when(ModelCommand::Activate)
        .then_expect_error(illegal("activate", Lifecycle::Active));
}

#[test]
fn deactivate_an_active_model() {
    let state = given(active())
        .when(ModelCommand::Deactivate)
        .then_expect_events(vec![EventPayload::ModelDeactivated]);
    assert_eq!(lifecycle_of(&state), Some(Lifecycle::Inactive));
    assert_eq!(state.version, 3);
}

#[test]
fn reactivate_after_deactivation() {
    let mut history = active();
    history.push(EventPayload::ModelDeactivated);
    given(history)
        .when(ModelCommand::Activate)
        .then_expect_events(vec![EventPayload::ModelActivated]);
}

#[test]
fn set_status_of_an_active_model() {
    let state = given(active())
        .when(ModelCommand::SetStatus(OperationalStatus::Degraded))
        .then_expect_events(vec![EventPayload::ModelStatusChanged {
            status: OperationalStatus::Degraded,
        }]);
    let record = state.record.expect("still registered");
    assert_eq!(record.status, OperationalStatus::Degraded);
    assert_eq!(record.lifecycle, Lifecycle::Active, "status is independent");
}

#[test]
fn set_status_of_an_active_model_to_its_status_is_status_unchanged() {
    given(active())
        .when(ModelCommand::SetStatus(OperationalStatus::Operational))
        .then_expect_error(DomainError::StatusUnchanged(OperationalStatus::Operational));
}

#[test]
fn status_unchanged_message_names_the_status() {
    given(active())
        .when(ModelCommand::SetStatus(OperationalStatus::Operational))
        .then_expect_error_message("status is already operational");
}

#[test]
fn update_metadata_of_an_active_model() {
    let state = given(active())
        .when(rename(&[("en", "GPT-5.1")]))
        .then_expect_events(vec![EventPayload::ModelMetadataUpdated {
            name: Some(name(&[("en", "GPT-5.1")])),
            description: None,
        }]);
    let record = state.record.expect("still registered");
    assert_eq!(record.name.resolve("en"), "GPT-5.1");
    assert_eq!(record.lifecycle, Lifecycle::Active);
}

#[test]
fn update_metadata_of_an_active_model_that_changes_nothing() {
    given(active())
        .when(rename(&[("en", "GPT-5")]))
        .then_expect_error(DomainError::NothingChanged);
}

#[test]
fn retire_an_active_model_is_illegal() {
    given(active())
        .when(ModelCommand::Retire)
        .then_expect_error(illegal("retire", Lifecycle::Active));
}

#[test]
fn every_command_on_an_active_model_acting_elsewhere_is_not_owner() {
    for command in every_command() {
        given(active())
            .acting_elsewhere()
            .when(command)
            .then_expect_error(not_owner());
    }
}

// --- retired ---------------------------------------------------------------------------------

#[test]
fn the_whole_lifecycle_walks_register_activate_deactivate_retire() {
    let steps = [
        (register(), gpt5_registered(), Lifecycle::Inactive),
        (
            ModelCommand::Activate,
            EventPayload::ModelActivated,
            Lifecycle::Active,
        ),
        (
            ModelCommand::Deactivate,
            EventPayload::ModelDeactivated,
            Lifecycle::Inactive,
        ),
        (
            ModelCommand::Retire,
            EventPayload::ModelRetired,
            Lifecycle::Retired,
        ),
    ];
    let mut history = Vec::new();
    for (command, event, lifecycle) in steps {
        let state = given(history.clone())
            .when(command)
            .then_expect_events(vec![event.clone()]);
        history.push(event);
        assert_eq!(lifecycle_of(&state), Some(lifecycle));
        assert_eq!(state.version, history.len() as u64);
    }
    assert_eq!(history, retired());
}

#[test]
fn register_a_retired_model_is_already_registered() {
    // The id stays taken forever: a retired model cannot be registered again.
    given(retired())
        .when(register())
        .then_expect_error(DomainError::AlreadyRegistered(gpt5()));
}

#[test]
fn every_lifecycle_command_on_a_retired_model_is_retired() {
    let commands = vec![
        ModelCommand::Activate,
        ModelCommand::Deactivate,
        ModelCommand::Retire,
        ModelCommand::SetStatus(OperationalStatus::Outage),
        // Even the status it already has: "retired" wins over "unchanged".
        ModelCommand::SetStatus(OperationalStatus::Operational),
        rename(&[("en", "Legacy GPT-5")]),
        describe(&[("en", "Retired in 2031")]),
        // Even an update that changes nothing: "retired" wins over "nothing changed".
        rename(&[("en", "GPT-5")]),
    ];
    for command in commands {
        given(retired())
            .when(command)
            .then_expect_error(DomainError::Retired(gpt5()));
    }
}

#[test]
fn retired_message_names_the_model() {
    given(retired())
        .when(ModelCommand::Activate)
        .then_expect_error_message(&format!("model {MODEL} is retired"));
}

#[test]
fn every_command_on_a_retired_model_acting_elsewhere_is_not_owner() {
    for command in every_command() {
        given(retired())
            .acting_elsewhere()
            .when(command)
            .then_expect_error(not_owner());
    }
}

// --- ownership follows the record, not the acting node's guess -------------------------------

#[test]
fn a_model_homed_elsewhere_is_written_only_by_that_home() {
    let homed_elsewhere = EventPayload::ModelRegistered {
        id: gpt5(),
        provider: provider("openai"),
        home_region: region(ELSEWHERE),
        name: name(&[("en", "GPT-5")]),
        description: None,
        status: OperationalStatus::Operational,
    };
    given([homed_elsewhere.clone()])
        .when(ModelCommand::Activate)
        .then_expect_error(DomainError::NotOwner {
            owner: region(ELSEWHERE),
            acting: region(HOME),
        });
    given([homed_elsewhere])
        .acting_as(ELSEWHERE)
        .when(ModelCommand::Activate)
        .then_expect_events(vec![EventPayload::ModelActivated]);
}

#[test]
fn localized_text_is_compared_as_a_whole() {
    // A name with the same English text but a different set of locales is a different name.
    let bilingual: LocalizedText = name(&[("en", "GPT-5"), ("ko", "지피티-5")]);
    let mut history = inactive();
    history.push(EventPayload::ModelMetadataUpdated {
        name: Some(bilingual),
        description: None,
    });
    given(history)
        .when(rename(&[("en", "GPT-5")]))
        .then_expect_events(vec![EventPayload::ModelMetadataUpdated {
            name: Some(name(&[("en", "GPT-5")])),
            description: None,
        }]);
}

/// `decide_model` is told which stream it decides for (`id`), but never compares it with the
/// id inside `Register`, so stream `model:openai/gpt-5` can record the registration of
/// another model. (The command API passes the same id twice today, so this is latent.) Which
/// error a fix should return is its choice; this only asks for a rejection.
#[test]
fn register_for_a_different_id_than_the_stream_is_refused() {
    let command = ModelCommand::Register(RegisterModel {
        id: common::model_id("meta/llama-4"),
        ..register_gpt5()
    });
    let result = domain::decide_model(&ModelState::default(), &gpt5(), &region(HOME), &command);
    assert!(result.is_err(), "{result:?}");
}
