//! Folding one partition of a region's events topic into that actor's counters.

use domain::{EventEnvelope, StreamId};

use crate::actor::ActorId;
use crate::checkpoint_parts::ChangedStreams;
use crate::counters::Counters;
use crate::error::FoldError;
use crate::facts::PartitionFacts;
use crate::held::HeldEvents;
use crate::metric::MetricKey;
use crate::outcome::{FoldOutcome, FoldStats, SkipReason};
use crate::rules::{self, Deltas};
use crate::state::ActorState;
use crate::watermark::{EventMark, Watermark};

/// The fold of one actor: partition `actor.partition` of region `actor.region`'s topic.
///
/// The topic is keyed by model id, so a model's lifecycle stream and every availability stream
/// that region writes for it arrive here, in order. Each event is checked against its stream's
/// last applied sequence: at or below it is a re-delivery ([`FoldOutcome::Duplicate`]), the next
/// one is applied if it fits (then any held successors after it), a later one is held until
/// its predecessors arrive ([`FoldOutcome::Held`]), anything else is [`FoldOutcome::Skipped`].
/// Nothing but the watermark and the held events changes unless an event is applied, so
/// folding is idempotent, the order a stream's events arrive in does not change the result,
/// and a replay from offset zero rebuilds the same state byte for byte.
#[derive(Debug, Clone)]
pub struct PartitionFold {
    pub(crate) actor: ActorId,
    pub(crate) counters: Counters,
    pub(crate) watermark: Watermark,
    pub(crate) facts: PartitionFacts,
    pub(crate) held: HeldEvents,
    pub(crate) stats: FoldStats,
    /// While [`PartitionFold::apply_recording`] runs: every counter change made.
    pub(crate) recording: Option<Vec<(MetricKey, i32)>>,
    /// Once [`PartitionFold::track_changes`] is called: streams changed since the last
    /// checkpoint.
    pub(crate) changed: Option<ChangedStreams>,
}

impl PartitionFold {
    pub fn new(actor: ActorId) -> Self {
        Self {
            actor,
            counters: Counters::new(),
            watermark: Watermark::default(),
            facts: PartitionFacts::default(),
            held: HeldEvents::default(),
            stats: FoldStats::default(),
            recording: None,
            changed: None,
        }
    }

    /// Folds the event found at Kafka `offset`.
    pub fn apply(&mut self, offset: i64, envelope: &EventEnvelope) -> FoldOutcome {
        let outcome = self.fold_in_order(envelope);
        let mark = EventMark {
            position: envelope.position,
            occurred_at: envelope.occurred_at,
        };
        self.finish(offset, Some(mark), outcome)
    }

    /// [`PartitionFold::apply`], appending to `changes` every counter change the event made
    /// (those of held successors it released included): what the history index stores.
    pub fn apply_recording(
        &mut self,
        offset: i64,
        envelope: &EventEnvelope,
        changes: &mut Vec<(MetricKey, i32)>,
    ) -> FoldOutcome {
        self.recording = Some(std::mem::take(changes));
        let outcome = self.apply(offset, envelope);
        *changes = self.recording.take().unwrap_or_default();
        outcome
    }

    /// Folds the raw Kafka payload at `offset`. A record that is not an event is skipped (and
    /// its offset consumed); an event of a newer schema is an error and changes nothing, since
    /// skipping it would under-count: the caller stops until it is upgraded.
    pub fn apply_bytes(&mut self, offset: i64, payload: &[u8]) -> Result<FoldOutcome, FoldError> {
        match EventEnvelope::decode(payload) {
            Ok(envelope) => Ok(self.apply(offset, &envelope)),
            Err(domain::DecodeError::UnsupportedVersion(version)) => {
                Err(FoldError::UnsupportedSchema(version))
            }
            Err(domain::DecodeError::Malformed(error)) => {
                let outcome = FoldOutcome::Skipped(SkipReason::Malformed(error.to_string()));
                Ok(self.finish(offset, None, outcome))
            }
        }
    }

    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    pub fn watermark(&self) -> &Watermark {
        &self.watermark
    }

    pub fn facts(&self) -> &PartitionFacts {
        &self.facts
    }

    /// Events waiting for a predecessor that has not arrived yet.
    pub fn held(&self) -> &HeldEvents {
        &self.held
    }

    /// Outcomes since this fold was created or restored.
    pub fn stats(&self) -> FoldStats {
        self.stats
    }

    /// The last sequence of `stream` applied here (0: none, or not this partition's stream).
    pub fn stream_sequence(&self, stream: &StreamId) -> u64 {
        match stream {
            StreamId::Model(model) => self.facts.model_sequence(model.as_str()),
            StreamId::Availability { region, model } => self
                .facts
                .availability(region, model.as_str())
                .map_or(0, |f| f.sequence),
        }
    }

    /// The state to publish on the counter-state topic.
    pub fn state(&self) -> ActorState {
        ActorState::from_fold(self.actor.clone(), self.counters.clone(), self.watermark)
    }

    fn finish(
        &mut self,
        offset: i64,
        mark: Option<EventMark>,
        outcome: FoldOutcome,
    ) -> FoldOutcome {
        self.watermark.advance(offset, mark);
        self.stats.record(&outcome);
        outcome
    }

    /// Folds `envelope`, holding it if it is early, and then every held successor it unblocks.
    fn fold_in_order(&mut self, envelope: &EventEnvelope) -> FoldOutcome {
        let outcome = self.fold_event(envelope);
        match outcome {
            FoldOutcome::Skipped(SkipReason::SequenceGap { expected, found }) => {
                self.held.hold(envelope);
                FoldOutcome::Held { expected, found }
            }
            FoldOutcome::Applied => {
                self.release_after(&envelope.stream);
                FoldOutcome::Applied
            }
            other => other,
        }
    }

    /// Applies the held events that now follow `stream`'s last applied sequence, in order.
    fn release_after(&mut self, stream: &StreamId) {
        // The common case, per applied event: nothing held, nothing to look up or allocate.
        if self.held.is_empty() {
            return;
        }
        loop {
            let last = self.stream_sequence(stream);
            self.held.forget_through(stream, last);
            let Some(next) = self.held.take(stream, last.saturating_add(1)) else {
                return;
            };
            let outcome = self.fold_event(&next);
            self.stats.record(&outcome);
            if outcome != FoldOutcome::Applied {
                return;
            }
        }
    }

    fn fold_event(&mut self, envelope: &EventEnvelope) -> FoldOutcome {
        if envelope.origin_region != self.actor.region {
            return FoldOutcome::Skipped(SkipReason::ForeignOrigin {
                origin: envelope.origin_region.clone(),
                actor_region: self.actor.region.clone(),
            });
        }
        if &envelope.model_id != envelope.stream.model_id() {
            return FoldOutcome::Skipped(SkipReason::Inconsistent(
                "the envelope's model differs from its stream's",
            ));
        }
        // One map search per event (for a model seen before): the stream's facts found are
        // checked, then updated in place.
        let sequence = envelope.sequence;
        let decided = match &envelope.stream {
            StreamId::Model(model) => self.facts.update_model(model, |current| {
                let last = current.as_ref().map_or(0, |f| f.sequence);
                if let Some(outcome) = check_sequence(sequence, last) {
                    return Err(outcome);
                }
                let (mut next, deltas) = rules::lifecycle(
                    current.as_ref(),
                    model,
                    &envelope.origin_region,
                    &envelope.event,
                )
                .map_err(FoldOutcome::Skipped)?;
                next.sequence = sequence;
                Ok((next, deltas))
            }),
            StreamId::Availability { region, model } => {
                self.facts.update_availability(region, model, |current| {
                    if let Some(outcome) = check_sequence(sequence, current.sequence) {
                        return Err(outcome);
                    }
                    let (mut next, deltas) = rules::availability(current, region, &envelope.event)
                        .map_err(FoldOutcome::Skipped)?;
                    next.sequence = sequence;
                    Ok((next, deltas))
                })
            }
        };
        let deltas = match decided {
            Ok(deltas) => deltas,
            Err(outcome) => return outcome,
        };
        if let Some(changed) = &mut self.changed {
            match &envelope.stream {
                StreamId::Model(model) => {
                    changed.models.insert(model.clone());
                }
                StreamId::Availability { region, model } => {
                    changed.availability.insert((region.clone(), model.clone()));
                }
            }
        }
        self.apply_deltas(deltas);
        FoldOutcome::Applied
    }

    fn apply_deltas(&mut self, deltas: Deltas) {
        if let Some(recording) = &mut self.recording {
            recording.extend(deltas.iter().filter(|(_, d)| *d != 0).cloned());
        }
        for (key, delta) in deltas {
            self.counters.add(&self.actor, key, delta);
        }
    }

    /// Starts over on a new incarnation of the partition's topic (one deleted and created
    /// again numbers its records from zero): the watermark forgets its offset, while the
    /// counters, facts and held events stay, so the records read again are duplicates and only
    /// what this fold lacks is applied.
    pub fn start_new_incarnation(&mut self) {
        self.watermark.offset = None;
    }

    /// Consumes the record at `offset` without an event (one the runtime dead-lettered): only
    /// the watermark moves.
    pub fn skip(&mut self, offset: i64, reason: SkipReason) -> FoldOutcome {
        self.finish(offset, None, FoldOutcome::Skipped(reason))
    }
}

/// `None` when `found` is the stream's next sequence after `last`.
fn check_sequence(found: u64, last: u64) -> Option<FoldOutcome> {
    if found == 0 {
        return Some(FoldOutcome::Skipped(SkipReason::Inconsistent(
            "sequence 0 (sequences start at 1)",
        )));
    }
    if found <= last {
        return Some(FoldOutcome::Duplicate {
            sequence: found,
            last_applied: last,
        });
    }
    let expected = last.saturating_add(1);
    (found != expected).then_some(FoldOutcome::Skipped(SkipReason::SequenceGap {
        expected,
        found,
    }))
}
