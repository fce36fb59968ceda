//! The fold's checkpoint in parts whose cost follows what changed, not the catalogue's size: a
//! small head (actor, counters, watermark, held events, how many streams it knows) rewritten
//! at every commit, and one row per stream's facts, written only when that stream moved.

use std::collections::BTreeSet;

use domain::{ModelId, RegionId, StreamId};
use serde::{Deserialize, Serialize};

use crate::actor::ActorId;
use crate::counters::Counters;
use crate::error::CodecError;
use crate::facts::{AvailabilityFacts, ModelFacts, PartitionFacts};
use crate::fold::PartitionFold;
use crate::held::HeldEvents;
use crate::state::ActorState;
use crate::state_codec::{self, AVAILABILITY_FACTS, FOLD_HEAD, FOLD_SNAPSHOT, MODEL_FACTS};
use crate::watermark::Watermark;

/// One stream's facts as stored: the stream's text form and its versioned facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactsRow {
    pub stream: String,
    pub facts: Vec<u8>,
}

/// What a commit writes: the head, and the rows of the streams changed since the last commit
/// (sorted by stream, so equal folds give equal parts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointParts {
    pub head: Vec<u8>,
    pub changed: Vec<FactsRow>,
}

/// Streams whose facts changed since the last [`PartitionFold::mark_checkpointed`].
#[derive(Debug, Clone, Default)]
pub(crate) struct ChangedStreams {
    pub(crate) models: BTreeSet<ModelId>,
    pub(crate) availability: BTreeSet<(RegionId, ModelId)>,
}

#[derive(Serialize)]
struct HeadRef<'a> {
    actor: &'a ActorId,
    counters: &'a Counters,
    watermark: &'a Watermark,
    held: &'a HeldEvents,
    /// Model and availability streams known: a load that finds another number of rows is
    /// refused instead of resuming with facts missing (which would count their events again).
    streams: u64,
}

/// A checkpoint's head, decoded without its facts rows.
#[derive(Debug, Clone, Deserialize)]
pub struct FoldHead {
    actor: ActorId,
    counters: Counters,
    watermark: Watermark,
    held: HeldEvents,
    streams: u64,
}

impl FoldHead {
    pub fn decode(bytes: &[u8]) -> Result<Self, CodecError> {
        let head: Self = state_codec::decode(FOLD_HEAD, bytes)?;
        head.counters.check_owned_by(&head.actor)?;
        Ok(head)
    }

    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// How many facts rows belong to this head.
    pub fn streams(&self) -> u64 {
        self.streams
    }

    /// The state the fold had when this head was written.
    pub fn state(&self) -> ActorState {
        ActorState::from_fold(self.actor.clone(), self.counters.clone(), self.watermark)
    }
}

/// Whether `bytes` are a whole [`PartitionFold::snapshot`] (as checkpoints were stored before
/// they came in parts) rather than a [`FoldHead`].
pub fn is_whole_snapshot(bytes: &[u8]) -> bool {
    bytes.first() == Some(&FOLD_SNAPSHOT.kind)
}

/// The state in a stored checkpoint head, or in a whole snapshot stored before parts.
pub fn checkpointed_state(bytes: &[u8]) -> Result<ActorState, CodecError> {
    if is_whole_snapshot(bytes) {
        Ok(PartitionFold::restore(bytes)?.state())
    } else {
        Ok(FoldHead::decode(bytes)?.state())
    }
}

impl PartitionFold {
    /// From now on, remembers which streams' facts change, for [`PartitionFold::checkpoint_parts`].
    /// With `everything`, every stream known so far counts as changed (a fold restored from a
    /// whole snapshot writes all its rows once).
    pub fn track_changes(&mut self, everything: bool) {
        let mut changed = ChangedStreams::default();
        if everything {
            // Ids held by the fold were valid when they were folded or restored.
            changed.models = self
                .facts
                .models()
                .filter_map(|(model, _)| ModelId::parse(model).ok())
                .collect();
            changed.availability = self
                .facts
                .availabilities()
                .into_iter()
                .filter_map(|(region, model, _)| {
                    Some((region.clone(), ModelId::parse(model).ok()?))
                })
                .collect();
        }
        self.changed = Some(changed);
    }

    /// The head and the rows changed since the last [`PartitionFold::mark_checkpointed`] (all
    /// rows if changes are not tracked). Changes stay pending until marked, so a commit that
    /// fails or is refused writes them next time.
    pub fn checkpoint_parts(&self) -> Result<CheckpointParts, CodecError> {
        let facts = &self.facts;
        let streams = facts.model_count() + facts.availability_count();
        let head = state_codec::encode(
            FOLD_HEAD,
            &HeadRef {
                actor: &self.actor,
                counters: &self.counters,
                watermark: &self.watermark,
                held: &self.held,
                streams: u64::try_from(streams).unwrap_or(u64::MAX),
            },
        )?;
        let mut changed = Vec::new();
        match &self.changed {
            Some(pending) => {
                for model in &pending.models {
                    if let Some(model_facts) = facts.model(model.as_str()) {
                        changed.push(model_row(model.as_str(), &model_facts)?);
                    }
                }
                for (region, model) in &pending.availability {
                    if let Some(availability) = facts.availability(region, model.as_str()) {
                        changed.push(availability_row(region, model.as_str(), &availability)?);
                    }
                }
            }
            None => {
                for (model, model_facts) in facts.models() {
                    changed.push(model_row(model, &model_facts)?);
                }
                for (region, model, availability) in facts.availabilities() {
                    changed.push(availability_row(region, model, &availability)?);
                }
            }
        }
        changed.sort_by(|a, b| a.stream.cmp(&b.stream));
        Ok(CheckpointParts { head, changed })
    }

    /// The parts last taken are durable: forget the changes they carried.
    pub fn mark_checkpointed(&mut self) {
        if let Some(changed) = &mut self.changed {
            changed.models.clear();
            changed.availability.clear();
        }
    }

    /// Resumes from a head and every facts row stored with it. Refuses a row that is not a
    /// stream of this fold's kind, a stream twice, and a number of rows other than the head's.
    pub fn restore_parts(
        head: &[u8],
        rows: impl IntoIterator<Item = FactsRow>,
    ) -> Result<Self, CodecError> {
        let FoldHead {
            actor,
            counters,
            watermark,
            held,
            streams,
        } = FoldHead::decode(head)?;
        let mut facts = PartitionFacts::default();
        let mut found: u64 = 0;
        for row in rows {
            found += 1;
            let stream = StreamId::parse(&row.stream).map_err(|e| CodecError::FactsRow {
                stream: row.stream.clone(),
                reason: e.to_string(),
            })?;
            let twice = match stream {
                StreamId::Model(model) => {
                    let value: ModelFacts = state_codec::decode(MODEL_FACTS, &row.facts)?;
                    let known = facts.model(model.as_str()).is_some();
                    facts.set_model(&model, &value);
                    known
                }
                StreamId::Availability { region, model } => {
                    let value: AvailabilityFacts =
                        state_codec::decode(AVAILABILITY_FACTS, &row.facts)?;
                    let known = facts.availability(&region, model.as_str()).is_some();
                    facts.set_availability(&region, &model, value);
                    known
                }
            };
            if twice {
                return Err(CodecError::FactsRow {
                    stream: row.stream,
                    reason: "stored twice".to_owned(),
                });
            }
        }
        if found != streams {
            return Err(CodecError::FactsCount {
                expected: streams,
                found,
            });
        }
        Ok(Self::resumed(actor, counters, watermark, facts, held))
    }
}

fn model_row(model: &str, facts: &ModelFacts) -> Result<FactsRow, CodecError> {
    Ok(FactsRow {
        stream: format!("model:{model}"),
        facts: state_codec::encode(MODEL_FACTS, facts)?,
    })
}

fn availability_row(
    region: &RegionId,
    model: &str,
    facts: &AvailabilityFacts,
) -> Result<FactsRow, CodecError> {
    Ok(FactsRow {
        stream: format!("availability:{region}:{model}"),
        facts: state_codec::encode(AVAILABILITY_FACTS, facts)?,
    })
}
