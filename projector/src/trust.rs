//! Which actor states read from the exchange topic a node may merge: the exchange's trust
//! rules. Pure; the runtime (`projector-runtime/src/exchange.rs`) applies them and counts every refusal.
//!
//! - A node never takes a state of its own region's actors from the topic: it learns them from
//!   its own projector and its region's checkpoints, the region's source of truth.
//! - Nor one of an actor of a region outside the deployment, or of a partition its region
//!   topics do not have (which also keeps the actors a node tracks, and their metric labels,
//!   bounded by regions × partitions).
//! - Every applied event moves each counter by at most one, so a counter's steps (increments
//!   plus decrements) can never exceed the records its actor consumed (`offset + 1`); and the
//!   actor cannot have consumed beyond its region topic's end.
//! - States of an older epoch are void; an epoch far ahead of the current one is implausible.
//! - Within an epoch, an actor's watermark never goes back, and two different states at the
//!   same offset cannot both come from the (deterministic) fold.

use std::collections::BTreeSet;

use domain::RegionId;

use crate::global::GlobalView;
use crate::metric::MetricKey;
use crate::state::ActorState;

/// Offsets a claimed watermark may lie beyond the region topic's high watermark as last
/// fetched. Kafka's high watermark is the last offset + 1, so no slack is needed there; Nisshi
/// answers the last record *batch's* base offset + 1 (docs/BROKER.md), and a relay batch holds
/// at most 500 records.
pub const LOG_END_SLACK: i64 = 1024;

/// How far past its current epoch a node follows a new one at once. `reset-states` moves the
/// epoch by one; the bound keeps a forged epoch from exhausting the epoch space (every forged
/// step still forces a rebuild, never a wrong count).
pub const MAX_EPOCH_STEP: u64 = 1000;

/// The largest epoch (stored in a PostgreSQL `BIGINT`).
pub const MAX_EPOCH: u64 = i64::MAX.unsigned_abs();

/// Why a state was not merged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the actor is of this node's own region, whose states come from its checkpoints")]
    OwnRegion,
    #[error("region {0} is not part of the deployment")]
    UnknownRegion(RegionId),
    #[error("partition {partition} does not exist: region topics have {partitions} partitions")]
    UnknownPartition { partition: i32, partitions: i32 },
    #[error("epoch {found} is older than the current epoch {current}")]
    OldEpoch { found: u64, current: u64 },
    #[error("watermark offset {found:?} is behind the merged offset {merged:?}")]
    Backwards {
        found: Option<i64>,
        merged: Option<i64>,
    },
    #[error("implausible: {0}")]
    Implausible(Implausible),
    #[error("the region topic's end could not be fetched to check offset {offset}")]
    Unverified { offset: i64 },
}

/// What makes a state implausible.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Implausible {
    #[error("counter {key} took {steps} steps, but the actor consumed only {records} records")]
    CountersBeyondOffset {
        key: MetricKey,
        steps: u64,
        records: u64,
    },
    #[error("offset {offset} is beyond the region topic's end ({log_end})")]
    BeyondLogEnd { offset: i64, log_end: i64 },
    #[error("epoch {found} jumps too far ahead of the current epoch {current}")]
    EpochJump { found: u64, current: u64 },
    #[error("a different state at the merged offset {offset:?}")]
    ConflictAtOffset { offset: Option<i64> },
}

impl Refusal {
    /// The metric label (`exchange_states_refused_total{reason=...}`).
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::OwnRegion => "own_region",
            Refusal::UnknownRegion(_) => "unknown_region",
            Refusal::UnknownPartition { .. } => "unknown_partition",
            Refusal::OldEpoch { .. } => "old_epoch",
            Refusal::Backwards { .. } => "backwards",
            Refusal::Implausible(_) => "implausible",
            Refusal::Unverified { .. } => "unverified",
        }
    }
}

/// What to do with one state read from the exchange topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Merge it.
    Take,
    /// The node's own region's state, already included (its own publication coming back, or
    /// a sibling process's that the checkpoints already showed): ignore it, no refusal.
    Echo,
    Refuse(Refusal),
}

/// The deployment as one node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustRules {
    own_region: RegionId,
    regions: BTreeSet<RegionId>,
    partitions: i32,
}

impl TrustRules {
    /// `regions`: every region of the deployment (the own region is added if missing), whose
    /// event topics have `partitions` partitions each.
    pub fn new(
        own_region: RegionId,
        regions: impl IntoIterator<Item = RegionId>,
        partitions: i32,
    ) -> Self {
        let mut regions: BTreeSet<RegionId> = regions.into_iter().collect();
        regions.insert(own_region.clone());
        Self {
            own_region,
            regions,
            partitions,
        }
    }

    pub fn own_region(&self) -> &RegionId {
        &self.own_region
    }

    /// A region of the deployment other than this node's.
    pub fn is_foreign_member(&self, region: &RegionId) -> bool {
        region != &self.own_region && self.regions.contains(region)
    }

    /// Judges a state read from the topic against the view it would be merged into. Does not
    /// check the region topic's end (see [`check_log_end`]), which needs the broker.
    pub fn judge(&self, view: &GlobalView, state: &ActorState) -> Verdict {
        let actor = state.actor();
        if !self.regions.contains(&actor.region) {
            return Verdict::Refuse(Refusal::UnknownRegion(actor.region.clone()));
        }
        if !(0..self.partitions).contains(&actor.partition) {
            return Verdict::Refuse(Refusal::UnknownPartition {
                partition: actor.partition,
                partitions: self.partitions,
            });
        }
        let current = view.epoch();
        let ours = view.actor(actor);
        if actor.region == self.own_region {
            let included = state.epoch() < current || ours.is_some_and(|ours| ours.includes(state));
            return if included {
                Verdict::Echo
            } else {
                Verdict::Refuse(Refusal::OwnRegion)
            };
        }
        if let Err(refusal) = check_counters(state) {
            return Verdict::Refuse(refusal);
        }
        let found = state.epoch();
        if found < current {
            return Verdict::Refuse(Refusal::OldEpoch { found, current });
        }
        if let Err(refusal) = check_epoch_step(current, found) {
            return Verdict::Refuse(refusal);
        }
        if found > current {
            return Verdict::Take;
        }
        let Some(ours) = ours else {
            return Verdict::Take;
        };
        let (theirs_offset, merged) = (state.watermark().offset, ours.watermark().offset);
        if theirs_offset < merged {
            return Verdict::Refuse(Refusal::Backwards {
                found: theirs_offset,
                merged,
            });
        }
        if theirs_offset == merged && !ours.includes(state) {
            return Verdict::Refuse(Refusal::Implausible(Implausible::ConflictAtOffset {
                offset: merged,
            }));
        }
        Verdict::Take
    }
}

/// Every counter within the records the actor consumed: `offset + 1` (none before the first).
pub fn check_counters(state: &ActorState) -> Result<(), Refusal> {
    let records = state
        .watermark()
        .offset
        .map_or(0, |offset| offset.saturating_add(1).unsigned_abs());
    let worst = state
        .counters()
        .steps(state.actor())
        .max_by_key(|(_, steps)| *steps);
    match worst {
        Some((key, steps)) if steps > records => {
            Err(Refusal::Implausible(Implausible::CountersBeyondOffset {
                key: key.clone(),
                steps,
                records,
            }))
        }
        _ => Ok(()),
    }
}

/// The watermark within the region topic's end `log_end` (its high watermark as fetched),
/// give or take [`LOG_END_SLACK`].
pub fn check_log_end(state: &ActorState, log_end: i64) -> Result<(), Refusal> {
    match state.watermark().offset {
        Some(offset) if offset >= log_end.saturating_add(LOG_END_SLACK) => {
            Err(Refusal::Implausible(Implausible::BeyondLogEnd {
                offset,
                log_end,
            }))
        }
        _ => Ok(()),
    }
}

/// An epoch (of a state or a mark) the node may follow from `current`.
pub fn check_epoch_step(current: u64, found: u64) -> Result<(), Refusal> {
    if found > MAX_EPOCH || found.saturating_sub(current) > MAX_EPOCH_STEP {
        return Err(Refusal::Implausible(Implausible::EpochJump {
            found,
            current,
        }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ActorId, Counters, Watermark};

    fn region(name: &str) -> RegionId {
        RegionId::parse(name).unwrap()
    }

    fn rules() -> TrustRules {
        TrustRules::new(
            region("eu-west"),
            [region("us-east"), region("ap-south")],
            3,
        )
    }

    /// `total` registrations folded by `region`:0, having consumed offsets 0..=`offset`.
    fn state(region_name: &str, total: i32, offset: Option<i64>) -> ActorState {
        let actor = ActorId::new(region(region_name), 0);
        let mut counters = Counters::new();
        counters.add(&actor, MetricKey::Total, total);
        let watermark = Watermark {
            offset,
            last_event: None,
        };
        ActorState::new(actor, counters, watermark).unwrap()
    }

    fn refused(verdict: Verdict) -> &'static str {
        match verdict {
            Verdict::Refuse(refusal) => refusal.reason(),
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn own_region_states_are_never_taken_from_the_topic() {
        let rules = rules();
        let mut view = GlobalView::new();
        let forged = state("eu-west", 1, Some(5));
        assert_eq!(refused(rules.judge(&view, &forged)), "own_region");
        // Once the region's own checkpoints showed it, the same state is only an echo.
        view.observe(forged.clone());
        assert_eq!(rules.judge(&view, &forged), Verdict::Echo);
        assert_eq!(
            rules.judge(&view, &state("eu-west", 0, Some(3))),
            Verdict::Echo
        );
        assert_eq!(
            refused(rules.judge(&view, &state("eu-west", 2, Some(6)))),
            "own_region"
        );
    }

    #[test]
    fn partitions_the_region_topics_do_not_have_are_refused() {
        let view = GlobalView::new();
        // Offset-less and zero-valued, so every other rule would let it in: without this one a
        // forger could make a node track (and label metrics with) any number of actors.
        for partition in [3, -1, i32::MAX] {
            let actor = ActorId::new(region("us-east"), partition);
            let empty = Watermark {
                offset: None,
                last_event: None,
            };
            let forged = ActorState::new(actor, Counters::new(), empty).unwrap();
            assert_eq!(refused(rules().judge(&view, &forged)), "unknown_partition");
        }
    }

    #[test]
    fn regions_outside_the_deployment_are_refused() {
        let view = GlobalView::new();
        assert_eq!(
            refused(rules().judge(&view, &state("zz-north", 1, Some(5)))),
            "unknown_region"
        );
        assert_eq!(
            rules().judge(&view, &state("us-east", 1, Some(5))),
            Verdict::Take
        );
    }

    #[test]
    fn counters_cannot_outrun_the_records_consumed() {
        let view = GlobalView::new();
        // Six records (offsets 0..=5) can register at most six models.
        assert_eq!(
            rules().judge(&view, &state("us-east", 6, Some(5))),
            Verdict::Take
        );
        assert_eq!(
            refused(rules().judge(&view, &state("us-east", 7, Some(5)))),
            "implausible"
        );
        assert_eq!(
            refused(rules().judge(&view, &state("us-east", 1, None))),
            "implausible"
        );
        assert_eq!(
            refused(rules().judge(&view, &state("us-east", 1_000_000, Some(10)))),
            "implausible"
        );
        // Steps count both ways: +1 -1 +1 is three events.
        let actor = ActorId::new(region("us-east"), 0);
        let mut counters = Counters::new();
        for delta in [1, -1, 1] {
            counters.add(&actor, MetricKey::Total, delta);
        }
        let watermark = Watermark {
            offset: Some(1),
            last_event: None,
        };
        let churned = ActorState::new(actor, counters, watermark).unwrap();
        assert!(matches!(
            check_counters(&churned),
            Err(Refusal::Implausible(Implausible::CountersBeyondOffset {
                steps: 3,
                records: 2,
                ..
            }))
        ));
    }

    #[test]
    fn offsets_cannot_outrun_the_region_topic() {
        let huge = state("us-east", 1_000_000, Some(999_999));
        assert!(check_counters(&huge).is_ok(), "plausible by itself");
        assert!(check_log_end(&huge, 40).is_err());
        assert!(check_log_end(&state("us-east", 1, Some(40)), 40).is_ok());
        assert!(check_log_end(&state("us-east", 1, Some(40 + LOG_END_SLACK - 1)), 40).is_ok());
        assert!(check_log_end(&state("us-east", 1, Some(40 + LOG_END_SLACK)), 40).is_err());
        assert!(check_log_end(&state("us-east", 0, None), 0).is_ok());
    }

    #[test]
    fn states_never_go_backwards_within_an_epoch() {
        let rules = rules();
        let mut view = GlobalView::new();
        view.observe(state("us-east", 3, Some(9)));
        assert_eq!(
            refused(rules.judge(&view, &state("us-east", 2, Some(8)))),
            "backwards"
        );
        assert_eq!(
            rules.judge(&view, &state("us-east", 3, Some(9))),
            Verdict::Take,
            "a repeat"
        );
        assert_eq!(
            rules.judge(&view, &state("us-east", 4, Some(10))),
            Verdict::Take
        );
        assert_eq!(
            refused(rules.judge(&view, &state("us-east", 4, Some(9)))),
            "implausible",
            "two different states at one offset"
        );
        // A new epoch starts over: an older offset is fine there.
        assert_eq!(
            rules.judge(&view, &state("us-east", 2, Some(8)).with_epoch(1)),
            Verdict::Take
        );
    }

    #[test]
    fn old_epochs_are_void_and_far_epochs_implausible() {
        let rules = rules();
        let mut view = GlobalView::new();
        view.enter_epoch(3);
        assert_eq!(
            refused(rules.judge(&view, &state("us-east", 1, Some(5)).with_epoch(2))),
            "old_epoch"
        );
        assert_eq!(
            rules.judge(&view, &state("us-east", 1, Some(5)).with_epoch(4)),
            Verdict::Take
        );
        let far = state("us-east", 1, Some(5)).with_epoch(3 + MAX_EPOCH_STEP + 1);
        assert_eq!(refused(rules.judge(&view, &far)), "implausible");
        assert!(check_epoch_step(0, MAX_EPOCH_STEP).is_ok());
        assert!(
            check_epoch_step(u64::MAX - 1, u64::MAX).is_err(),
            "beyond what can be stored"
        );
        // An own-region state of an older epoch is an echo, not a refusal.
        assert_eq!(
            rules.judge(&view, &state("eu-west", 1, Some(5))),
            Verdict::Echo
        );
    }
}
