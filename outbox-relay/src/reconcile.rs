//! Reconcile: after a crash or a failed batch some rows may be on the topic but not marked
//! published. Mark exactly those, so the next publish sends only what Kafka does not have.
//!
//! Rows are sent in position order and each partition's log is in send order, so the rows that
//! made it are found at the end of their partition. The end is read back (its `aigo-position`
//! headers) and a row is marked only if its position is actually there: membership, not "position <= last on the partition",
//! because librdkafka's idempotent producer can leave a gap when a queued message times out
//! (it bumps the epoch and carries on), and a gap must be re-sent, not assumed delivered.
//!
//! Only a prefix is marked per partition: rows up to the first one missing. Rows after a gap
//! are on the topic but ahead of the missing one; they are sent again after it, so every
//! stream's events follow the gap in order (early copies are held or dropped by sequence).
//!
//! Records of other producers (no `aigo-position` header) are ignored; when a partition's end
//! holds only such records, it is read further back until one of the relay's own is found.
//!
//! A topic no partition of which ever held a record, while the outbox has rows published to
//! it, was lost and created again (a broker that keeps topics in memory restarted; region
//! topics never expire records): if the relay is told to, every row of it is marked
//! unpublished, so the whole history is sent again in position order before anything newer,
//! as `region-node republish` does by hand.

use std::collections::{BTreeMap, HashMap, HashSet};

use sqlx::PgPool;
use tracing::{Instrument, info, info_span, warn};

use crate::error::RelayError;
use crate::outbox::{
    has_published, mark_published, mark_unpublished, unpublished_keys, unpublished_topics,
};
use crate::partition_reader::PartitionReader;
use crate::producer::Publisher;
use domain::partition_for;

/// What was read at the end of a non-empty partition.
#[derive(Debug, Clone)]
struct Tail {
    /// Log start offset.
    low: i64,
    /// Offset the read started at.
    from: i64,
    /// `(offset, position)` from `from` to the end.
    read: Vec<(i64, i64)>,
}

/// Marks as published every unpublished row that is already on its topic. Returns how many.
pub async fn reconcile(pool: &PgPool, publisher: &Publisher) -> Result<u64, RelayError> {
    reconcile_with(pool, publisher, &[], false).await
}

/// [`reconcile`], also checking `owned` topics with nothing unpublished: a topic holding
/// positions this store never wrote fails with [`RelayError::TopicAheadOfStore`] before
/// anything new is published there. With `republish_lost`, a topic lost and created again
/// gets its whole history sent again.
pub async fn reconcile_with(
    pool: &PgPool,
    publisher: &Publisher,
    owned: &[String],
    republish_lost: bool,
) -> Result<u64, RelayError> {
    let mut topics = unpublished_topics(pool).await?;
    for topic in owned {
        if !topics.contains(topic) {
            topics.push(topic.clone());
        }
    }
    if topics.is_empty() {
        return Ok(0);
    }
    // Fresh metadata: a failure that led here may have been a metadata change.
    publisher.forget_partition_counts();
    let reader = PartitionReader::new(publisher.kafka(), publisher.request_timeout());
    let mut marked = 0;
    for topic in &topics {
        marked += reconcile_topic(pool, publisher, &reader, topic, republish_lost)
            .instrument(info_span!("outbox_reconcile", topic = %topic))
            .await?;
    }
    metrics::counter!("outbox_reconciled_total").increment(marked);
    Ok(marked)
}

async fn reconcile_topic(
    pool: &PgPool,
    publisher: &Publisher,
    reader: &PartitionReader,
    topic: &str,
    republish_lost: bool,
) -> Result<u64, RelayError> {
    let count = publisher.partition_count(topic).await?;
    let mut lows = HashMap::new();
    let mut starts = Vec::new();
    for partition in 0..count {
        let (low, high) = publisher.watermarks(topic, partition).await?;
        if high > low {
            lows.insert(partition, low);
            // On Kafka this reads the last message; on Nisshi the last record batch (see
            // partition_reader).
            starts.push((partition, (high - 1).max(low)));
        }
    }
    if republish_lost && starts.is_empty() && never_written(publisher, topic, count).await? {
        republish_if_published(pool, topic).await?;
        return Ok(0);
    }
    let mut tails: HashMap<i32, Tail> = HashMap::new();
    let mut reads = reader.read_all_to_end(topic, &starts).await?;
    for (partition, from) in starts {
        let (Some(&low), Some(read)) = (lows.get(&partition), reads.remove(&partition)) else {
            continue;
        };
        let tail = back_to_own_record(reader, topic, partition, Tail { low, from, read }).await?;
        tails.insert(partition, tail);
    }
    // Rows above every position seen at the partitions' ends were never delivered.
    let Some(max_position) = tails
        .values()
        .flat_map(|t| t.read.iter().map(|&(_, p)| p))
        .max()
    else {
        return Ok(0);
    };
    let in_store = highest_position(pool).await?;
    if max_position > in_store {
        return Err(RelayError::TopicAheadOfStore {
            topic: topic.to_owned(),
            on_topic: max_position,
            in_store,
        });
    }

    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (position, key) in unpublished_keys(pool, topic, max_position).await? {
        by_partition
            .entry(partition_for(key.as_bytes(), count))
            .or_default()
            .push(position);
    }

    let mut delivered = Vec::new();
    for (partition, candidates) in by_partition {
        // An empty partition holds none of them.
        let Some(tail) = tails.remove(&partition) else {
            continue;
        };
        let present = positions_on_tail(reader, topic, partition, tail, &candidates).await?;
        delivered.extend(candidates.into_iter().take_while(|p| present.contains(p)));
    }
    let marked = mark_published(pool, &delivered).await?;
    if marked > 0 {
        info!(marked, "rows already on the topic marked published");
    }
    Ok(marked)
}

/// The highest position this event store ever handed to the outbox (rows are never deleted).
/// True if no partition of `topic` ever held a record (all high watermarks 0).
async fn never_written(publisher: &Publisher, topic: &str, count: i32) -> Result<bool, RelayError> {
    for partition in 0..count {
        if publisher.watermarks(topic, partition).await?.1 > 0 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Marks every row of `topic` to be sent again, if any was published: the topic lost them.
async fn republish_if_published(pool: &PgPool, topic: &str) -> Result<(), RelayError> {
    if !has_published(pool, topic).await? {
        return Ok(());
    }
    let rows = mark_unpublished(pool, topic).await?;
    warn!(
        topic,
        rows,
        "outbox relay: the topic is empty although rows were published to it (lost and created \
         again): sending its whole history again"
    );
    metrics::counter!("outbox_topics_republished_total").increment(1);
    Ok(())
}

async fn highest_position(pool: &PgPool) -> Result<i64, RelayError> {
    let highest: Option<i64> = sqlx::query_scalar("SELECT max(position) FROM outbox")
        .fetch_one(pool)
        .await?;
    Ok(highest.unwrap_or(0))
}

/// The tail, read further back (growing window) while it holds only foreign records, so the
/// partition's last position is known; stops at the log start.
async fn back_to_own_record(
    reader: &PartitionReader,
    topic: &str,
    partition: i32,
    mut tail: Tail,
) -> Result<Tail, RelayError> {
    let mut window: i64 = 16;
    while tail.read.is_empty() && tail.from > tail.low {
        tail.from = tail.from.saturating_sub(window).max(tail.low);
        tail.read = reader.read_to_end(topic, partition, tail.from).await?;
        window = window.saturating_mul(2);
    }
    Ok(tail)
}

/// Positions found at the end of the partition, reading from further back each time (growing
/// window) until a message older than every candidate, or the log start, has been read.
async fn positions_on_tail(
    reader: &PartitionReader,
    topic: &str,
    partition: i32,
    tail: Tail,
    candidates: &[i64],
) -> Result<HashSet<i64>, RelayError> {
    let Some(&oldest_candidate) = candidates.first() else {
        return Ok(HashSet::new());
    };
    let Tail {
        low,
        mut from,
        mut read,
    } = tail;
    // Enough for every candidate plus one older message in the common case.
    let mut window = i64::try_from(candidates.len())
        .unwrap_or(i64::MAX)
        .saturating_add(1);
    loop {
        let reached_older = read.iter().any(|&(_, p)| p < oldest_candidate);
        if reached_older || from <= low {
            return Ok(read.into_iter().map(|(_, p)| p).collect());
        }
        from = from.saturating_sub(window).max(low);
        read = reader.read_to_end(topic, partition, from).await?;
        window = window.saturating_mul(2);
    }
}
