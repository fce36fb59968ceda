//! Serve / withdraw on one region's availability stream, as given/when/then scenarios against
//! `decide_availability` / `evolve_availability`: known, unknown and retired models, already
//! served, not served, and the wrong region.

mod common;

use common::gwt::{SERVING_REGION, given_availability};
use common::{ELSEWHERE, MODEL, gpt5, region};
use domain::{AvailabilityCommand, DomainError, EventPayload, Lifecycle, WithdrawReason};

const SERVE: AvailabilityCommand = AvailabilityCommand::Serve;
const WITHDRAW: AvailabilityCommand = AvailabilityCommand::Withdraw(WithdrawReason::Manual);
const WITHDRAW_RETIRED: AvailabilityCommand =
    AvailabilityCommand::Withdraw(WithdrawReason::ModelRetired);

fn served() -> EventPayload {
    EventPayload::ModelServed {
        region: region(SERVING_REGION),
    }
}

fn withdrawn(reason: WithdrawReason) -> EventPayload {
    EventPayload::ModelWithdrawn {
        region: region(SERVING_REGION),
        reason,
    }
}

fn not_owner() -> DomainError {
    DomainError::NotOwner {
        owner: region(SERVING_REGION),
        acting: region(ELSEWHERE),
    }
}

// --- serve -----------------------------------------------------------------------------------

#[test]
fn serve_an_active_model() {
    let state = given_availability([])
        .model_is(Lifecycle::Active)
        .when(SERVE)
        .then_expect_events(vec![served()]);
    assert!(state.served);
    assert_eq!(state.version, 1);
}

#[test]
fn serve_an_inactive_model() {
    // Whether a region serves a model is independent of whether it is active.
    given_availability([])
        .model_is(Lifecycle::Inactive)
        .when(SERVE)
        .then_expect_events(vec![served()]);
}

#[test]
fn serve_an_unknown_model_is_unknown_model() {
    given_availability([])
        .when(SERVE)
        .then_expect_error(DomainError::UnknownModel(gpt5()));
}

#[test]
fn serve_a_retired_model_is_retired() {
    given_availability([])
        .model_is(Lifecycle::Retired)
        .when(SERVE)
        .then_expect_error(DomainError::Retired(gpt5()));
}

#[test]
fn serve_a_served_model_is_already_served() {
    given_availability([served()])
        .model_is(Lifecycle::Active)
        .when(SERVE)
        .then_expect_error(DomainError::AlreadyServed {
            region: region(SERVING_REGION),
            model: gpt5(),
        });
}

#[test]
fn already_served_message_names_region_and_model() {
    given_availability([served()])
        .model_is(Lifecycle::Active)
        .when(SERVE)
        .then_expect_error_message(&format!(
            "region {SERVING_REGION} already serves model {MODEL}"
        ));
}

#[test]
fn serve_again_after_a_withdrawal() {
    let state = given_availability([served(), withdrawn(WithdrawReason::Manual)])
        .model_is(Lifecycle::Active)
        .when(SERVE)
        .then_expect_events(vec![served()]);
    assert!(state.served);
    assert_eq!(state.version, 3);
}

#[test]
fn serve_acting_elsewhere_is_not_owner() {
    given_availability([])
        .model_is(Lifecycle::Active)
        .acting_as(ELSEWHERE)
        .when(SERVE)
        .then_expect_error(not_owner());
}

#[test]
fn ownership_is_checked_before_anything_else() {
    // Unknown model, retired model, already served: the wrong node hears only "not yours".
    given_availability([])
        .acting_as(ELSEWHERE)
        .when(SERVE)
        .then_expect_error(not_owner());
    given_availability([])
        .model_is(Lifecycle::Retired)
        .acting_as(ELSEWHERE)
        .when(SERVE)
        .then_expect_error(not_owner());
    given_availability([served()])
        .model_is(Lifecycle::Active)
        .acting_as(ELSEWHERE)
        .when(SERVE)
        .then_expect_error(not_owner());
}

#[test]
fn not_owner_message_names_the_serving_region() {
    given_availability([])
        .model_is(Lifecycle::Active)
        .acting_as(ELSEWHERE)
        .when(SERVE)
        .then_expect_error_message(&format!(
            "only region {SERVING_REGION} may write this; this node is region {ELSEWHERE}"
        ));
}

// --- withdraw --------------------------------------------------------------------------------

#[test]
fn withdraw_a_served_model() {
    let state = given_availability([served()])
        .model_is(Lifecycle::Active)
        .when(WITHDRAW)
        .then_expect_events(vec![withdrawn(WithdrawReason::Manual)]);
    assert!(!state.served);
    assert_eq!(state.version, 2);
}

#[test]
fn withdraw_a_served_model_because_it_was_retired() {
    // Each region withdraws a retired model itself: this must be accepted even though the
    // catalogue already says "retired".
    let state = given_availability([served()])
        .model_is(Lifecycle::Retired)
        .when(WITHDRAW_RETIRED)
        .then_expect_events(vec![withdrawn(WithdrawReason::ModelRetired)]);
    assert!(!state.served);
}

#[test]
fn withdraw_a_served_model_the_catalogue_does_not_know_yet() {
    // Withdrawing only needs the region's own stream, not the catalogue.
    given_availability([served()])
        .when(WITHDRAW)
        .then_expect_events(vec![withdrawn(WithdrawReason::Manual)]);
}

#[test]
fn withdraw_a_model_never_served_is_not_served() {
    given_availability([])
        .model_is(Lifecycle::Active)
        .when(WITHDRAW)
        .then_expect_error(DomainError::NotServed {
            region: region(SERVING_REGION),
            model: gpt5(),
        });
}

#[test]
fn withdraw_twice_is_not_served() {
    given_availability([served(), withdrawn(WithdrawReason::Manual)])
        .model_is(Lifecycle::Active)
        .when(WITHDRAW)
        .then_expect_error(DomainError::NotServed {
            region: region(SERVING_REGION),
            model: gpt5(),
        });
}

#[test]
fn withdraw_an_unknown_model_is_not_served() {
    given_availability([])
        .when(WITHDRAW)
        .then_expect_error(DomainError::NotServed {
            region: region(SERVING_REGION),
            model: gpt5(),
        });
}

#[test]
fn withdraw_a_retired_model_that_is_not_served_is_not_served() {
    // A retirement withdrawal that already happened is not repeated.
    given_availability([served(), withdrawn(WithdrawReason::ModelRetired)])
        .model_is(Lifecycle::Retired)
        .when(WITHDRAW_RETIRED)
        .then_expect_error(DomainError::NotServed {
            region: region(SERVING_REGION),
            model: gpt5(),
        });
}

#[test]
fn not_served_message_names_region_and_model() {
    given_availability([])
        .model_is(Lifecycle::Active)
        .when(WITHDRAW)
        .then_expect_error_message(&format!(
            "region {SERVING_REGION} does not serve model {MODEL}"
        ));
}

#[test]
fn withdraw_acting_elsewhere_is_not_owner() {
    given_availability([served()])
        .model_is(Lifecycle::Active)
        .acting_as(ELSEWHERE)
        .when(WITHDRAW)
        .then_expect_error(not_owner());
    given_availability([served()])
        .model_is(Lifecycle::Retired)
        .acting_as(ELSEWHERE)
        .when(WITHDRAW_RETIRED)
        .then_expect_error(not_owner());
}
