//! Which stream and sequence a change notice stands for (what read-your-writes waits on).
#![allow(clippy::unwrap_used)]

mod common;

use chrono::DateTime;
use common::{model, region};
use domain::{CURRENT_SCHEMA_VERSION, EventEnvelope, EventPayload, StreamId};
use projector::ChangeNotice;
use uuid::Uuid;

fn notice(stream: StreamId, sequence: u64) -> ChangeNotice {
    ChangeNotice::new(&EventEnvelope {
        event_id: Uuid::from_u128(1),
        schema_version: CURRENT_SCHEMA_VERSION,
        model_id: stream.model_id().clone(),
        stream,
        sequence,
        position: 7,
        origin_region: region("eu-west"),
        occurred_at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        correlation_id: Uuid::nil(),
        causation_id: None,
        idempotency_key: None,
        actor: None,
        event: EventPayload::ModelActivated,
    })
}

fn lifecycle(id: &str) -> StreamId {
    StreamId::Model(model(id))
}

fn served(serving: &str, id: &str) -> StreamId {
    StreamId::Availability {
        region: region(serving),
        model: model(id),
    }
}

#[test]
fn a_notice_reaches_its_own_stream_up_to_its_sequence() {
    let n = notice(lifecycle("acme/a"), 3);
    assert!(n.reaches(&lifecycle("acme/a"), 1));
    assert!(n.reaches(&lifecycle("acme/a"), 3));
    assert!(!n.reaches(&lifecycle("acme/a"), 4));
}

#[test]
fn a_notice_never_reaches_another_stream() {
    let n = notice(lifecycle("acme/a"), 3);
    assert!(!n.reaches(&lifecycle("acme/b"), 1));
    assert!(!n.reaches(&served("eu-west", "acme/a"), 1));
    let s = notice(served("eu-west", "acme/a"), 2);
    assert!(s.reaches(&served("eu-west", "acme/a"), 2));
    assert!(!s.reaches(&served("us-east", "acme/a"), 1));
    assert!(!s.reaches(&lifecycle("acme/a"), 1));
}
