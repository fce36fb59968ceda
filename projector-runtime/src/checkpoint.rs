//! Partition checkpoints: a fold's head, the facts of the streams that changed and the next
//! offset to consume, written together.
//! Also the region's source of truth for its own actors' states (see [`actor_states`]).

use std::collections::HashMap;

use domain::RegionId;
use event_store::ReadPoint;
use sqlx::{PgConnection, PgExecutor, PgPool, Postgres, Transaction};

use projector::{ActorId, ActorState, PartitionFold};
use projector::{CheckpointParts, CodecError, FactsRow, checkpointed_state, is_whole_snapshot};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored checkpoint of {topic}/{partition} is unreadable: {source}")]
    Corrupt {
        topic: String,
        partition: i32,
        #[source]
        source: CodecError,
    },
    #[error(
        "stored checkpoint of {topic}/{partition} is the fold of actor {found}, not of {expected}: \
         it belongs to another partition or region (a copied row or database?)"
    )]
    WrongActor {
        topic: String,
        partition: i32,
        expected: ActorId,
        found: ActorId,
    },
}

/// The fold of `topic`/`partition` as last committed and the read point to resume from. The
/// snapshot must be the fold of actor (`region`, `partition`): resuming another actor's fold
/// would count its events as this partition's. The returned fold tracks its changes, for
/// [`save`].
pub async fn load(
    pool: &PgPool,
    region: &RegionId,
    topic: &str,
    partition: i32,
) -> Result<Option<(PartitionFold, ReadPoint)>, CheckpointError> {
    let mut tx = begin_snapshot(pool).await?;
    let row: Option<(i64, i32, Option<i64>, Vec<u8>)> = sqlx::query_as(
        "SELECT next_offset, incarnation, last_record_ms, state FROM projector_checkpoints
          WHERE topic = $1 AND partition = $2",
    )
    .bind(topic)
    .bind(partition)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((next_offset, incarnation, last_record_ms, head)) = row else {
        return Ok(None);
    };
    let next = ReadPoint {
        incarnation,
        next_offset,
        last_record_ms,
    };
    let rows = if is_whole_snapshot(&head) {
        Vec::new()
    } else {
        facts_rows(&mut tx, topic, Some(partition)).await?
    };
    tx.commit().await?;
    let expected = ActorId::new(region.clone(), partition);
    let mut fold = restore(topic, &expected, &head, rows)?;
    // A whole snapshot (stored before checkpoints came in parts) writes all its rows once.
    fold.track_changes(is_whole_snapshot(&head));
    Ok(Some((fold, next)))
}

/// A read-only transaction that sees one snapshot: a head and its facts rows as one commit
/// left them, whatever commits meanwhile.
async fn begin_snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// The facts rows of `topic` (of one partition, or all), by partition then stream.
async fn facts_rows(
    conn: &mut PgConnection,
    topic: &str,
    partition: Option<i32>,
) -> Result<Vec<(i32, FactsRow)>, sqlx::Error> {
    let rows: Vec<(i32, String, Vec<u8>)> = sqlx::query_as(
        "SELECT partition, stream, facts FROM projector_checkpoint_facts
          WHERE topic = $1 AND ($2::int IS NULL OR partition = $2)
          ORDER BY partition, stream",
    )
    .bind(topic)
    .bind(partition)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(partition, stream, facts)| (partition, FactsRow { stream, facts }))
        .collect())
}

/// Decodes a stored checkpoint (a head and its rows, or a whole snapshot) and checks it is
/// `expected`'s.
fn restore(
    topic: &str,
    expected: &ActorId,
    head: &[u8],
    rows: Vec<(i32, FactsRow)>,
) -> Result<PartitionFold, CheckpointError> {
    let corrupt = |source| CheckpointError::Corrupt {
        topic: topic.to_owned(),
        partition: expected.partition,
        source,
    };
    let fold = if is_whole_snapshot(head) {
        PartitionFold::restore(head).map_err(corrupt)?
    } else {
        PartitionFold::restore_parts(head, rows.into_iter().map(|(_, row)| row)).map_err(corrupt)?
    };
    check_actor(topic, expected, fold.actor())?;
    Ok(fold)
}

fn check_actor(topic: &str, expected: &ActorId, found: &ActorId) -> Result<(), CheckpointError> {
    if found != expected {
        return Err(CheckpointError::WrongActor {
            topic: topic.to_owned(),
            partition: expected.partition,
            expected: expected.clone(),
            found: found.clone(),
        });
    }
    Ok(())
}

/// Writes one checkpoint inside the caller's transaction: the head and the facts rows that
/// changed. Never moves a partition backwards (read points order by incarnation, then offset):
/// a consumer that lost the partition in a rebalance and commits late cannot undo the newer
/// owner's progress; its rows are then not written either. Answers whether the checkpoint was
/// written (the caller keeps its changes pending otherwise).
pub async fn save(
    conn: &mut PgConnection,
    region: &RegionId,
    topic: &str,
    partition: i32,
    next: ReadPoint,
    parts: &CheckpointParts,
) -> Result<bool, sqlx::Error> {
    // ON CONFLICT locks the row even when the guard refuses: commits of one partition queue.
    let written: Option<(i32,)> = sqlx::query_as(
        "INSERT INTO projector_checkpoints
                (region, topic, partition, next_offset, incarnation, last_record_ms, state, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, now())
         ON CONFLICT (topic, partition) DO UPDATE
            SET next_offset = excluded.next_offset, incarnation = excluded.incarnation,
                last_record_ms = excluded.last_record_ms, state = excluded.state,
                updated_at = excluded.updated_at
          WHERE (projector_checkpoints.incarnation, projector_checkpoints.next_offset)
             <= (excluded.incarnation, excluded.next_offset)
         RETURNING partition",
    )
    .bind(region.as_str())
    .bind(topic)
    .bind(partition)
    .bind(next.next_offset)
    .bind(next.incarnation)
    .bind(next.last_record_ms)
    .bind(&parts.head)
    .fetch_optional(&mut *conn)
    .await?;
    if written.is_none() {
        return Ok(false);
    }
    if !parts.changed.is_empty() {
        let (streams, facts): (Vec<&str>, Vec<&[u8]>) = parts
            .changed
            .iter()
            .map(|row| (row.stream.as_str(), row.facts.as_slice()))
            .unzip();
        sqlx::query(
            "INSERT INTO projector_checkpoint_facts (topic, partition, stream, facts)
             SELECT $1, $2, stream, facts FROM UNNEST($3::text[], $4::bytea[]) AS r(stream, facts)
             ON CONFLICT (topic, partition, stream) DO UPDATE SET facts = excluded.facts",
        )
        .bind(topic)
        .bind(partition)
        .bind(&streams)
        .bind(&facts)
        .execute(&mut *conn)
        .await?;
    }
    Ok(true)
}

/// A partition's stored checkpoint, decoded whole (audits report unreadable ones).
#[derive(Debug)]
pub struct StoredFold {
    pub partition: i32,
    pub next_offset: i64,
    pub fold: Result<PartitionFold, CheckpointError>,
}

/// Every checkpoint of region `region`'s `topic`, by partition, read from one snapshot.
pub async fn stored(
    pool: &PgPool,
    region: &RegionId,
    topic: &str,
) -> Result<Vec<StoredFold>, sqlx::Error> {
    let mut tx = begin_snapshot(pool).await?;
    let heads: Vec<(i32, i64, Vec<u8>)> = sqlx::query_as(
        "SELECT partition, next_offset, state FROM projector_checkpoints WHERE topic = $1
          ORDER BY partition",
    )
    .bind(topic)
    .fetch_all(&mut *tx)
    .await?;
    let mut rows: HashMap<i32, Vec<(i32, FactsRow)>> = HashMap::new();
    for (partition, row) in facts_rows(&mut tx, topic, None).await? {
        rows.entry(partition).or_default().push((partition, row));
    }
    tx.commit().await?;
    let mut folds = Vec::with_capacity(heads.len());
    for (partition, next_offset, head) in heads {
        let own = rows.remove(&partition).unwrap_or_default();
        let expected = ActorId::new(region.clone(), partition);
        folds.push(StoredFold {
            partition,
            next_offset,
            fold: restore(topic, &expected, &head, own),
        });
    }
    Ok(folds)
}

/// One own-region actor's committed state, as read by [`actor_states`].
#[derive(Debug)]
pub struct CommittedState {
    pub partition: i32,
    pub next: ReadPoint,
    /// `Err` for a checkpoint that cannot be read or is another actor's: never merged.
    pub state: Result<ActorState, CheckpointError>,
}

/// A checkpoint's head with where it stands.
#[derive(sqlx::FromRow)]
struct CheckpointRow {
    partition: i32,
    next_offset: i64,
    incarnation: i32,
    last_record_ms: Option<i64>,
    state: Vec<u8>,
}

/// The committed state of every partition of region `region`'s `topic` whose checkpoint moved
/// past `seen` (partition → read point already read; pass an empty map for all): how a node
/// learns the actors its region's other projector processes fold. Only checkpoints that moved
/// are fetched, and only their heads decoded.
pub async fn actor_states<'e>(
    db: impl PgExecutor<'e>,
    region: &RegionId,
    topic: &str,
    seen: &HashMap<i32, ReadPoint>,
) -> Result<Vec<CommittedState>, sqlx::Error> {
    let mut partitions = Vec::with_capacity(seen.len());
    let mut incarnations = Vec::with_capacity(seen.len());
    let mut offsets = Vec::with_capacity(seen.len());
    for (partition, point) in seen {
        partitions.push(*partition);
        incarnations.push(point.incarnation);
        offsets.push(point.next_offset);
    }
    let rows: Vec<CheckpointRow> = sqlx::query_as(
        "SELECT c.partition, c.next_offset, c.incarnation, c.last_record_ms, c.state
           FROM projector_checkpoints c
           LEFT JOIN unnest($2::int[], $3::int[], $4::bigint[])
                  AS seen(partition, incarnation, next_offset)
                  ON seen.partition = c.partition
          WHERE c.topic = $1
            AND (seen.next_offset IS NULL
                 OR (c.incarnation, c.next_offset) > (seen.incarnation, seen.next_offset))",
    )
    .bind(topic)
    .bind(&partitions)
    .bind(&incarnations)
    .bind(&offsets)
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |CheckpointRow {
                 partition,
                 next_offset,
                 incarnation,
                 last_record_ms,
                 state: bytes,
             }| {
                let next = ReadPoint {
                    incarnation,
                    next_offset,
                    last_record_ms,
                };
                let expected = ActorId::new(region.clone(), partition);
                let state = checkpointed_state(&bytes)
                    .map_err(|source| CheckpointError::Corrupt {
                        topic: topic.to_owned(),
                        partition,
                        source,
                    })
                    .and_then(|state| {
                        check_actor(topic, &expected, state.actor())?;
                        Ok(state)
                    });
                CommittedState {
                    partition,
                    next,
                    state,
                }
            },
        )
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_of_another_actor_is_refused() {
        let eu = RegionId::parse("eu-west").unwrap();
        let us = RegionId::parse("us-east").unwrap();
        let fold = PartitionFold::new(ActorId::new(eu.clone(), 1));
        let whole = fold.snapshot().unwrap();
        let head = fold.checkpoint_parts().unwrap().head;
        for stored in [&whole, &head] {
            assert!(restore("t", &ActorId::new(eu.clone(), 1), stored, Vec::new()).is_ok());
            let other_partition =
                restore("t", &ActorId::new(eu.clone(), 2), stored, Vec::new()).unwrap_err();
            assert!(
                matches!(
                    other_partition,
                    CheckpointError::WrongActor { partition: 2, .. }
                ),
                "{other_partition}"
            );
            assert!(
                other_partition
                    .to_string()
                    .contains("actor eu-west:1, not of eu-west:2")
            );
            let other_region =
                restore("t", &ActorId::new(us.clone(), 1), stored, Vec::new()).unwrap_err();
            assert!(matches!(other_region, CheckpointError::WrongActor { .. }));
        }
        assert!(matches!(
            restore("t", &ActorId::new(eu, 1), b"junk", Vec::new()),
            Err(CheckpointError::Corrupt { .. })
        ));
    }
}
