//! A tiny given/when/then harness in the style of the `cqrs-es` test framework:
//! `given(events).when(command).then_expect_events(..)` / `.then_expect_error(..)`.
//!
//! `given` folds the history with the domain's own `evolve_*`, `when` calls `decide_*`, and
//! `then_expect_events` also applies the produced events and hands back the new state, so a
//! scenario checks both halves of the aggregate.

use domain::{
    AvailabilityCommand, AvailabilityState, CatalogueFacts, DomainError, EventPayload, Lifecycle,
    ModelCommand, ModelId, ModelState, RegionId, decide_availability, decide_model,
    evolve_availability, evolve_model,
};

use super::{ELSEWHERE, HOME, gpt5, region};

// ---------------------------------------------------------------------------------------------
// Model lifecycle stream (`model:<id>`)
// ---------------------------------------------------------------------------------------------

/// A model stream with some history, about to receive a command.
#[derive(Debug)]
pub struct ModelGiven {
    state: ModelState,
    id: ModelId,
    acting: RegionId,
}

/// A model stream that has never seen an event. The acting region defaults to [`HOME`].
pub fn given_no_previous_events() -> ModelGiven {
    given([])
}

/// A model stream ([`super::MODEL`]) whose history is `events`, folded with `evolve_model`.
/// The acting region defaults to [`HOME`].
pub fn given(events: impl IntoIterator<Item = EventPayload>) -> ModelGiven {
    let state = events
        .into_iter()
        .fold(ModelState::default(), |state, event| {
            evolve_model(state, &event)
        });
    ModelGiven {
        state,
        id: gpt5(),
        acting: region(HOME),
    }
}

impl ModelGiven {
    /// The command arrives at the node of `acting` instead of [`HOME`].
    pub fn acting_as(mut self, acting: &str) -> Self {
        self.acting = region(acting);
        self
    }

    /// Shortcut for `acting_as(ELSEWHERE)`.
    pub fn acting_elsewhere(self) -> Self {
        self.acting_as(ELSEWHERE)
    }

    pub fn when(self, command: ModelCommand) -> ModelThen {
        let result = decide_model(&self.state, &self.id, &self.acting, &command);
        Then {
            before: self.state,
            command,
            result,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Availability stream (`availability:<region>:<model>`)
// ---------------------------------------------------------------------------------------------

/// The region whose availability stream the availability scenarios write.
pub const SERVING_REGION: &str = "ap-south";

/// One region's availability stream for one model, about to receive a command.
#[derive(Debug)]
pub struct AvailabilityGiven {
    state: AvailabilityState,
    region: RegionId,
    model: ModelId,
    acting: RegionId,
    facts: Option<CatalogueFacts>,
}

/// The availability stream of [`super::MODEL`] in [`SERVING_REGION`], whose history is
/// `events`. The command arrives at [`SERVING_REGION`]'s own node, and the catalogue does not
/// know the model until [`AvailabilityGiven::model_is`] says otherwise.
pub fn given_availability(events: impl IntoIterator<Item = EventPayload>) -> AvailabilityGiven {
    let state = events
        .into_iter()
        .fold(AvailabilityState::default(), |state, event| {
            evolve_availability(state, &event)
        });
    AvailabilityGiven {
        state,
        region: region(SERVING_REGION),
        model: gpt5(),
        acting: region(SERVING_REGION),
        facts: None,
    }
}

impl AvailabilityGiven {
    /// The region's catalogue knows the model, in `lifecycle`.
    pub fn model_is(mut self, lifecycle: Lifecycle) -> Self {
        self.facts = Some(CatalogueFacts { lifecycle });
        self
    }

    /// The command arrives at the node of `acting` instead of [`SERVING_REGION`].
    pub fn acting_as(mut self, acting: &str) -> Self {
        self.acting = region(acting);
        self
    }

    pub fn when(self, command: AvailabilityCommand) -> AvailabilityThen {
        let result = decide_availability(
            &self.state,
            &self.region,
            &self.model,
            &self.acting,
            self.facts,
            command,
        );
        Then {
            before: self.state,
            command,
            result,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Then: one set of checks for both streams
// ---------------------------------------------------------------------------------------------

/// A stream's state as the `then_*` checks need it: its version and how an event evolves it.
pub trait StreamState: Sized {
    fn version(&self) -> u64;
    fn evolve(self, event: &EventPayload) -> Self;
}

impl StreamState for ModelState {
    fn version(&self) -> u64 {
        self.version
    }
    fn evolve(self, event: &EventPayload) -> Self {
        evolve_model(self, event)
    }
}

impl StreamState for AvailabilityState {
    fn version(&self) -> u64 {
        self.version
    }
    fn evolve(self, event: &EventPayload) -> Self {
        evolve_availability(self, event)
    }
}

/// What a `decide_*` answered; check it with one of the `then_*` methods.
#[derive(Debug)]
#[must_use = "a scenario checks nothing until one of its then_* methods is called"]
pub struct Then<S, C> {
    before: S,
    command: C,
    result: Result<Vec<EventPayload>, DomainError>,
}

pub type ModelThen = Then<ModelState, ModelCommand>;
pub type AvailabilityThen = Then<AvailabilityState, AvailabilityCommand>;

impl<S: StreamState, C: std::fmt::Debug> Then<S, C> {
    /// Asserts the command was accepted with exactly `expected`; returns the state after
    /// applying them, for further assertions.
    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<EventPayload>) -> S {
        match self.result {
            Ok(events) => {
                assert_eq!(
                    events, expected,
                    "{:?} produced unexpected events",
                    self.command
                );
                let applied = events.len() as u64;
                let before_version = self.before.version();
                let after = events.iter().fold(self.before, StreamState::evolve);
                assert_eq!(after.version(), before_version + applied);
                after
            }
            Err(error) => panic!(
                "expected {:?} to produce {expected:?}, but it was rejected: {error:?}",
                self.command
            ),
        }
    }

    /// Asserts the command was rejected with exactly `expected`.
    #[track_caller]
    pub fn then_expect_error(self, expected: DomainError) {
        match self.result {
            Err(error) => assert_eq!(error, expected, "{:?} failed differently", self.command),
            Ok(events) => panic!(
                "expected {:?} to be rejected with {expected:?}, but it produced {events:?}",
                self.command
            ),
        }
    }

    /// Asserts the command was rejected with an error whose message is exactly `expected`.
    #[track_caller]
    pub fn then_expect_error_message(self, expected: &str) {
        match self.result {
            Err(error) => assert_eq!(error.to_string(), expected),
            Ok(events) => panic!(
                "expected {:?} to be rejected with {expected:?}, but it produced {events:?}",
                self.command
            ),
        }
    }
}
