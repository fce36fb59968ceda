//! `region-node audit`: rebuilds this region's actors from its events topic and compares them,
//! actor by actor and counter by counter, with the live projection's stored checkpoints.
//!
//! Each actor is rebuilt only up to its checkpoint's `next_offset`, so a projection that keeps
//! folding while the audit runs is compared with exactly the events its checkpoint covers.
//!
//! Then the catalogue is recounted and compared with the fold's merged counts and with history
//! as of now ([`crate::recount`]): a model counted twice, an event the fold skipped but the
//! catalogue applied, or history that disagrees with the live counts is reported number by
//! number.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use anyhow::Context;
use domain::RegionId;
use kafka_client::KafkaClient;
use projector::{ActorId, MetricKey, PartitionFold, Replay};
use projector_runtime::checkpoint::{self, CheckpointError, StoredFold};
use sqlx::PgPool;

use crate::config::Settings;
use crate::recount::{self, CountDifference, CountsAudit};
use crate::replay::{fold, progress_bar};
use crate::topic_reader::TopicReader;

/// One way the live projection and the replay disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// A counter's value differs.
    Counter {
        actor: ActorId,
        key: MetricKey,
        live: i64,
        replayed: i64,
    },
    /// The stored checkpoint cannot be decoded or belongs to another actor.
    Unreadable { actor: ActorId, reason: String },
    /// The topic ends before the offset the checkpoint says it consumed.
    ShortTopic {
        actor: ActorId,
        checkpoint_next: i64,
        topic_next: i64,
    },
    /// Every counter agrees, but the state (per-stream facts, dots or watermark) does not.
    State { actor: ActorId, detail: String },
    /// A number of the catalogue's recount differs from the fold's or from history's.
    Count(CountDifference),
    /// A row the count comparison could not read (catalogue, saved actor state).
    Row(String),
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Difference::Counter {
                actor,
                key,
                live,
                replayed,
            } => write!(
                f,
                "actor {actor}: counter {key}: live {live}, replay {replayed} (live - replay = {})",
                live - replayed
            ),
            Difference::Unreadable { actor, reason } => {
                write!(f, "actor {actor}: stored checkpoint unreadable: {reason}")
            }
            Difference::ShortTopic {
                actor,
                checkpoint_next,
                topic_next,
            } => write!(
                f,
                "actor {actor}: the checkpoint consumed up to offset {checkpoint_next}, but the topic ends at {topic_next}"
            ),
            Difference::State { actor, detail } => write!(f, "actor {actor}: {detail}"),
            Difference::Count(difference) => write!(f, "{difference}"),
            Difference::Row(detail) => write!(f, "unreadable row: {detail}"),
        }
    }
}

/// What the audit compared and found.
#[derive(Debug)]
pub struct AuditReport {
    pub region: RegionId,
    pub topic: String,
    /// Actors compared, with the offset each was compared up to.
    pub actors: BTreeMap<ActorId, i64>,
    /// Partitions with no checkpoint yet (nothing folded there to compare).
    pub uncheckpointed: Vec<i32>,
    pub events: u64,
    pub elapsed: Duration,
    /// The catalogue's recount against the fold and history.
    pub counts: CountsAudit,
    /// Every difference: the actors' and the counts'.
    pub differences: Vec<Difference>,
}

impl fmt::Display for AuditReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "audit of region {} ({}): {} actors compared, {} events replayed in {:.2?}",
            self.region,
            self.topic,
            self.actors.len(),
            self.events,
            self.elapsed
        )?;
        for (actor, next) in &self.actors {
            writeln!(f, "  actor {actor}: compared up to offset {next}")?;
        }
        if !self.uncheckpointed.is_empty() {
            writeln!(
                f,
                "  partitions without a checkpoint yet: {:?}",
                self.uncheckpointed
            )?;
        }
        let counts = &self.counts;
        writeln!(
            f,
            "  catalogue recount: total {}, active {}, retired {}; compared with the fold and with history as of {} ({} reading(s))",
            counts.catalogue.total,
            counts.catalogue.active,
            counts.catalogue.retired,
            counts
                .at
                .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
            counts.readings
        )?;
        if !counts.agrees() {
            for lag in &counts.lagging {
                writeln!(
                    f,
                    "  actor {}: the fold stood at offset {}, the catalogue at {}",
                    lag.actor, lag.fold_next, lag.catalogue_next
                )?;
            }
        }
        for difference in &self.differences {
            writeln!(f, "DIFFERENCE {difference}")?;
        }
        if self.differences.is_empty() {
            write!(
                f,
                "OK: the live projection equals the replay, actor by actor; the catalogue, the fold and history agree"
            )
        } else {
            write!(
                f,
                "FAILED: {} difference(s) between the live projection and the replay",
                self.differences.len()
            )
        }
    }
}

/// Audits the node's own region.
pub async fn run(
    settings: &Settings,
    pool: &PgPool,
    progress: bool,
) -> anyhow::Result<AuditReport> {
    let region = settings.region.clone();
    let topic = settings.events_topic(&region);
    let rows = checkpoint::stored(pool, &region, &topic)
        .await
        .context("reading the projector checkpoints")?;
    let kafka = settings.kafka.client();
    let (region_for_thread, topic_for_thread) = (region.clone(), topic.clone());
    let (actors, started) = tokio::task::spawn_blocking(move || {
        audit_topic(&kafka, region_for_thread, topic_for_thread, rows, progress)
    })
    .await
    .context("the audit thread failed")??;
    let counts = recount::run(settings, pool)
        .await
        .context("recounting the catalogue")?;
    let mut differences = actors.differences;
    differences.extend(counts.unreadable.iter().cloned().map(Difference::Row));
    differences.extend(counts.differences.iter().cloned().map(Difference::Count));
    Ok(AuditReport {
        region,
        topic,
        actors: actors.actors,
        uncheckpointed: actors.uncheckpointed,
        events: actors.events,
        elapsed: started.elapsed(),
        counts,
        differences,
    })
}

/// The actor-by-actor half of the report.
struct ActorsAudit {
    actors: BTreeMap<ActorId, i64>,
    uncheckpointed: Vec<i32>,
    events: u64,
    differences: Vec<Difference>,
}

fn audit_topic(
    kafka: &KafkaClient,
    region: RegionId,
    topic: String,
    rows: Vec<StoredFold>,
    progress: bool,
) -> anyhow::Result<(ActorsAudit, Instant)> {
    let started = Instant::now();
    let mut differences = Vec::new();
    let mut live: BTreeMap<i32, (PartitionFold, i64)> = BTreeMap::new();
    for StoredFold {
        partition,
        next_offset: next,
        fold,
    } in rows
    {
        let actor = ActorId::new(region.clone(), partition);
        match fold {
            Ok(fold) => {
                live.insert(partition, (fold, next));
            }
            Err(CheckpointError::WrongActor { found, .. }) => {
                differences.push(Difference::Unreadable {
                    reason: format!("it holds the state of actor {found}"),
                    actor,
                });
            }
            Err(error) => differences.push(Difference::Unreadable {
                actor,
                reason: error.to_string(),
            }),
        }
    }
    let reader = TopicReader::open(kafka, &topic)?;
    let ends: BTreeMap<i32, Option<i64>> = live
        .iter()
        .map(|(partition, (_, next))| (*partition, Some(*next)))
        .collect();
    let uncheckpointed: Vec<i32> = reader
        .partitions()
        .filter(|p| !live.contains_key(p) && !differences.iter().any(|d| names_partition(d, *p)))
        .collect();
    let length: i64 = live.values().map(|(_, next)| *next).sum();
    let bar = progress_bar(u64::try_from(length).unwrap_or(0), progress)?;
    let mut replay = Replay::new();
    let reached = reader.read(&ends, |record| {
        bar.inc(1);
        let actor = ActorId::new(region.clone(), record.partition);
        fold(&mut replay, &actor, record.offset, record.payload, None)
    })?;
    bar.finish_and_clear();
    let mut actors = BTreeMap::new();
    for (partition, (live_fold, next)) in &live {
        let actor = live_fold.actor().clone();
        actors.insert(actor.clone(), *next);
        let topic_next = reached.get(partition).copied().unwrap_or(0);
        if topic_next < *next {
            differences.push(Difference::ShortTopic {
                actor: actor.clone(),
                checkpoint_next: *next,
                topic_next,
            });
        }
        let rebuilt = replay
            .fold(&actor)
            .cloned()
            .unwrap_or_else(|| PartitionFold::new(actor.clone()));
        differences.extend(compare(live_fold, &rebuilt));
    }
    Ok((
        ActorsAudit {
            actors,
            uncheckpointed,
            events: replay.events(),
            differences,
        },
        started,
    ))
}

fn names_partition(difference: &Difference, partition: i32) -> bool {
    matches!(difference, Difference::Unreadable { actor, .. } if actor.partition == partition)
}

/// Counter by counter; if every value agrees, the whole state (facts, dots, watermark).
pub fn compare(live: &PartitionFold, rebuilt: &PartitionFold) -> Vec<Difference> {
    let actor = live.actor().clone();
    let keys: BTreeSet<&MetricKey> = live
        .counters()
        .iter()
        .chain(rebuilt.counters().iter())
        .map(|(key, _)| key)
        .collect();
    let mut differences: Vec<Difference> = keys
        .into_iter()
        .filter_map(|key| {
            let (live_value, replayed) =
                (live.counters().value(key), rebuilt.counters().value(key));
            (live_value != replayed).then(|| Difference::Counter {
                actor: actor.clone(),
                key: key.clone(),
                live: live_value,
                replayed,
            })
        })
        .collect();
    if differences.is_empty() {
        if live.facts() != rebuilt.facts() {
            differences.push(Difference::State {
                actor: actor.clone(),
                detail: format!(
                    "per-stream facts differ: live knows {} models and {} availability streams, the replay {} and {}",
                    live.facts().model_count(),
                    live.facts().availability_count(),
                    rebuilt.facts().model_count(),
                    rebuilt.facts().availability_count()
                ),
            });
        } else if live.counters() != rebuilt.counters() {
            differences.push(Difference::State {
                actor: actor.clone(),
                detail: "counter values agree but their CRDT dots differ".to_owned(),
            });
        } else if live.watermark() != rebuilt.watermark() {
            differences.push(Difference::State {
                actor,
                detail: format!(
                    "watermark: live {:?}, replay {:?}",
                    live.watermark(),
                    rebuilt.watermark()
                ),
            });
        }
    }
    differences
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]
    use super::*;
    use crate::test_events::registration;

    #[test]
    fn equal_folds_have_no_difference_and_an_extra_event_names_each_counter() {
        let region = RegionId::parse("eu-west").unwrap();
        let actor = ActorId::new(region.clone(), 2);
        let mut live = PartitionFold::new(actor.clone());
        live.apply(0, &registration(&region, "acme/one", "acme", 1));
        let replayed = live.clone();
        assert!(compare(&live, &replayed).is_empty());

        live.apply(1, &registration(&region, "acme/two", "acme", 2));
        let differences = compare(&live, &replayed);
        let keys: Vec<String> = differences
            .iter()
            .map(|d| match d {
                Difference::Counter { key, .. } => key.to_string(),
                other => panic!("{other}"),
            })
            .collect();
        assert_eq!(
            keys,
            [
                "total",
                "inactive",
                "status:operational",
                "provider:acme:total"
            ]
        );
        assert_eq!(
            differences[0].to_string(),
            "actor eu-west:2: counter total: live 2, replay 1 (live - replay = 1)"
        );
    }
}
