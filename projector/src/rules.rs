//! The counting rules: how one event moves the counters, given what the partition knows.
//!
//! Pure functions; the fold checks sequences and origin first and applies the result.

use domain::{EventPayload, Lifecycle, ModelId, RegionId};

use crate::facts::{AvailabilityFacts, ModelFacts};
use crate::metric::MetricKey;
use crate::outcome::SkipReason;

/// Counter moves of one event: a handful at most.
pub(crate) type Deltas = Vec<(MetricKey, i32)>;

/// An event of the lifecycle stream `model:<stream_model>`, written by region `origin`.
pub(crate) fn lifecycle(
    current: Option<&ModelFacts>,
    stream_model: &ModelId,
    origin: &RegionId,
    event: &EventPayload,
) -> Result<(ModelFacts, Deltas), SkipReason> {
    if matches!(
        event,
        EventPayload::ModelServed { .. } | EventPayload::ModelWithdrawn { .. }
    ) {
        return Err(SkipReason::Inconsistent(
            "an availability event on a lifecycle stream",
        ));
    }
    let Some(facts) = current else {
        return register(stream_model, origin, event);
    };
    let illegal = || SkipReason::IllegalTransition {
        event: event.type_name(),
        lifecycle: facts.lifecycle,
    };
    if facts.lifecycle == Lifecycle::Retired {
        return Err(illegal());
    }
    let provider = &facts.provider;
    let mut next = facts.clone();
    let deltas = match (event, facts.lifecycle) {
        (EventPayload::ModelActivated, Lifecycle::Inactive) => {
            next.lifecycle = Lifecycle::Active;
            vec![
                (MetricKey::Active, 1),
                (MetricKey::Inactive, -1),
                (MetricKey::ProviderActive(provider.clone()), 1),
            ]
        }
        (EventPayload::ModelDeactivated, Lifecycle::Active) => {
            next.lifecycle = Lifecycle::Inactive;
            vec![
                (MetricKey::Active, -1),
                (MetricKey::Inactive, 1),
                (MetricKey::ProviderActive(provider.clone()), -1),
            ]
        }
        (EventPayload::ModelRetired, Lifecycle::Inactive) => {
            next.lifecycle = Lifecycle::Retired;
            vec![
                (MetricKey::Total, -1),
                (MetricKey::Inactive, -1),
                (MetricKey::Retired, 1),
                (MetricKey::Status(facts.status), -1),
                (MetricKey::ProviderTotal(provider.clone()), -1),
            ]
        }
        (EventPayload::ModelStatusChanged { status }, _) => {
            next.status = *status;
            if *status == facts.status {
                Vec::new()
            } else {
                vec![
                    (MetricKey::Status(facts.status), -1),
                    (MetricKey::Status(*status), 1),
                ]
            }
        }
        (EventPayload::ModelMetadataUpdated { .. }, _) => Vec::new(),
        _ => return Err(illegal()),
    };
    Ok((next, deltas))
}

fn register(
    stream_model: &ModelId,
    origin: &RegionId,
    event: &EventPayload,
) -> Result<(ModelFacts, Deltas), SkipReason> {
    let EventPayload::ModelRegistered {
        id,
        provider,
        home_region,
        status,
        ..
    } = event
    else {
        return Err(SkipReason::UnknownModel {
            event: event.type_name(),
        });
    };
    if id != stream_model {
        return Err(SkipReason::Inconsistent(
            "the registered id differs from the stream's model",
        ));
    }
    if home_region != origin {
        return Err(SkipReason::Inconsistent(
            "the model was registered by a region other than its home",
        ));
    }
    let facts = ModelFacts {
        provider: provider.clone(),
        lifecycle: Lifecycle::Inactive,
        status: *status,
        sequence: 0,
    };
    let deltas = vec![
        (MetricKey::Total, 1),
        (MetricKey::Inactive, 1),
        (MetricKey::Status(*status), 1),
        (MetricKey::ProviderTotal(provider.clone()), 1),
    ];
    Ok((facts, deltas))
}

/// An event of the availability stream `availability:<stream_region>:<model>`.
pub(crate) fn availability(
    current: AvailabilityFacts,
    stream_region: &RegionId,
    event: &EventPayload,
) -> Result<(AvailabilityFacts, Deltas), SkipReason> {
    let (region, serve) = match event {
        EventPayload::ModelServed { region } => (region, true),
        EventPayload::ModelWithdrawn { region, .. } => (region, false),
        _ => {
            return Err(SkipReason::Inconsistent(
                "a lifecycle event on an availability stream",
            ));
        }
    };
    if region != stream_region {
        return Err(SkipReason::Inconsistent(
            "the event names another region than its stream",
        ));
    }
    if current.served == serve {
        return Err(SkipReason::IllegalAvailability {
            event: event.type_name(),
            served: current.served,
        });
    }
    let next = AvailabilityFacts {
        served: serve,
        sequence: current.sequence,
    };
    let delta = if serve { 1 } else { -1 };
    Ok((next, vec![(MetricKey::Available(region.clone()), delta)]))
}
