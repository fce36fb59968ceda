//! `region-node replay`: rebuilds the counters from every region's events topic, from offset
//! zero, in memory, with the projector's own fold (one per actor: region, partition).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use domain::{EventEnvelope, RegionId};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use kafka_client::KafkaClient;
use projector::{ActorId, RegionCounts, Replay, Totals};
use serde::Serialize;

use crate::config::Settings;
use crate::replay_workers::FoldWorkers;
use crate::topic_reader::TopicReader;

/// What to replay.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// The `?at=` cut: each actor's log up to its first event that occurred after this instant.
    pub until: Option<DateTime<Utc>>,
    /// Only these regions' topics (default: every region of the deployment).
    pub regions: Option<Vec<RegionId>>,
    /// Draw a progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

/// A finished replay.
#[derive(Debug)]
pub struct ReplayRun {
    pub replay: Replay,
    pub regions: Vec<RegionId>,
    /// Records read from the topics, cut ones included.
    pub records: u64,
    pub elapsed: Duration,
}

/// The printed result: the same shape as `GET /v1/counts?at=`, plus throughput.
#[derive(Debug, Serialize)]
pub struct ReplaySummary {
    pub at: Option<String>,
    #[serde(flatten)]
    pub totals: Totals,
    pub regions: BTreeMap<RegionId, RegionCounts>,
    pub events_replayed: u64,
    pub records_read: u64,
    pub elapsed_ms: u128,
    pub events_per_second: f64,
}

impl ReplayRun {
    pub fn summary(&self, until: Option<DateTime<Utc>>) -> ReplaySummary {
        let (totals, counted) = self.replay.totals().split();
        let mut regions: BTreeMap<RegionId, RegionCounts> = self
            .regions
            .iter()
            .map(|r| (r.clone(), RegionCounts::default()))
            .collect();
        regions.extend(counted);
        ReplaySummary {
            at: until.map(|at| at.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
            totals,
            regions,
            events_replayed: self.replay.events(),
            records_read: self.records,
            elapsed_ms: self.elapsed.as_millis(),
            events_per_second: self.records as f64 / self.elapsed.as_secs_f64().max(1e-9),
        }
    }
}

/// Replays every configured region's topic (blocking Kafka reads on a worker thread).
pub async fn run(settings: &Settings, options: ReplayOptions) -> anyhow::Result<ReplayRun> {
    let regions = match &options.regions {
        Some(regions) => regions.clone(),
        None => settings.all_regions(),
    };
    let topics: Vec<(RegionId, String)> = regions
        .iter()
        .map(|r| (r.clone(), settings.events_topic(r)))
        .collect();
    let kafka = settings.kafka.client();
    let until = options.until;
    let progress = options.progress;
    tokio::task::spawn_blocking(move || replay_topics(&kafka, &topics, until, progress, regions))
        .await
        .context("the replay thread failed")?
}

fn replay_topics(
    kafka: &KafkaClient,
    topics: &[(RegionId, String)],
    until: Option<DateTime<Utc>>,
    progress: bool,
    regions: Vec<RegionId>,
) -> anyhow::Result<ReplayRun> {
    let started = Instant::now();
    let readers = topics
        .iter()
        .map(|(region, topic)| Ok((region, TopicReader::open(kafka, topic)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let estimate: i64 = readers
        .iter()
        .flat_map(|(_, reader)| reader.estimated.values())
        .sum();
    let bar = progress_bar(u64::try_from(estimate).unwrap_or(0), progress)?;
    let mut workers = FoldWorkers::start(fold_threads(), until)?;
    let mut records = 0_u64;
    let mut read = Ok(());
    for (region, reader) in &readers {
        let ends = reader.partitions().map(|p| (p, None)).collect();
        read = reader
            .read(&ends, |record| {
                records += 1;
                if records.is_multiple_of(4096) {
                    bar.set_position(records);
                    if records > bar.length().unwrap_or(0) {
                        bar.set_length(records);
                    }
                }
                workers
                    .push(region, record.partition, record.offset, record.payload)
                    .map_err(|_| anyhow::anyhow!("a fold stopped the replay"))
            })
            .map(|_| ());
        if read.is_err() {
            break;
        }
    }
    // A failed fold's own error says more than the reader's "stopped".
    let replay = workers.finish()?;
    read?;
    bar.set_length(records);
    bar.finish();
    Ok(ReplayRun {
        replay,
        regions,
        records,
        elapsed: started.elapsed(),
    })
}

/// Fold threads: one per core, the reading thread and the broker's client share them.
fn fold_threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// Where an `--until` replay stops: each actor (partition) is read in its log order, and its
/// first event after the instant ends it, whatever later records carry; the event time only
/// decides where the cut falls, never the order (a writer's clock may have stepped back).
#[derive(Debug)]
pub(crate) struct Cut {
    until: DateTime<Utc>,
    ended: BTreeSet<ActorId>,
}

impl Cut {
    pub(crate) fn new(until: DateTime<Utc>) -> Self {
        Self {
            until,
            ended: BTreeSet::new(),
        }
    }
}

/// Folds one record, unless `cut` ended its actor. An event of a newer schema stops the
/// replay: skipping it would under-count.
pub(crate) fn fold(
    replay: &mut Replay,
    actor: &ActorId,
    offset: i64,
    payload: &[u8],
    cut: Option<&mut Cut>,
) -> anyhow::Result<()> {
    let Some(cut) = cut else {
        replay
            .apply_bytes(actor, offset, payload)
            .with_context(|| format!("{actor} offset {offset}"))?;
        return Ok(());
    };
    if cut.ended.contains(actor) {
        return Ok(());
    }
    match EventEnvelope::decode(payload) {
        Ok(envelope) if envelope.occurred_at > cut.until => {
            cut.ended.insert(actor.clone());
        }
        Ok(envelope) => {
            replay.apply(actor, offset, &envelope);
        }
        // Not an event (or too new): the fold decides, as the live projector does.
        Err(_) => {
            replay
                .apply_bytes(actor, offset, payload)
                .with_context(|| format!("{actor} offset {offset}"))?;
        }
    }
    Ok(())
}

/// events/s and ETA on stderr; hidden when asked or when stderr is not a terminal.
pub(crate) fn progress_bar(length: u64, visible: bool) -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::with_draw_target(
        Some(length),
        if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        },
    );
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:40} {human_pos}/{human_len} events  {per_sec}  elapsed {elapsed}  eta {eta}",
        )
        .context("progress template")?,
    );
    Ok(bar)
}
