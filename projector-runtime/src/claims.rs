//! Which process of a region reads which partitions: one PostgreSQL advisory lock per
//! (reader, topic, partition), held on a session of the process's own, shared out evenly among
//! the processes present.
//!
//! This replaces the broker's group coordinator. Nisshi 0.7 can keep a group of two members
//! rebalancing forever after a burst of restarts (docs/BROKER.md), and the region's database
//! already holds every reader's position, so it is the natural place to hold ownership too. A
//! process that dies takes its session with it and its partitions are free at once; one that
//! loses its session (a database restart) finds out at its next review and lets go of
//! everything. Two readers of one partition for a moment are harmless: folds are deterministic,
//! checkpoints never move backwards and the catalogue applies each event once.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{PgConnection, PgPool};
use tracing::{info, warn};

/// A partition of a topic.
pub type PartitionKey = (String, i32);

/// The second key of the lock every present process holds shared: partitions are numbered from
/// zero, so it cannot collide with a partition's lock.
const MEMBER_KEY: i32 = -1;

/// How long a review may wait for the session to answer before this process treats it as
/// lost (a network that swallows packets would otherwise hold the reader forever).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);

/// Keepalives on the session, so that PostgreSQL ends the session of a process that vanished
/// without closing it (power loss, a partition) within about 25 s instead of the system's two
/// hours, and its partitions become free.
const KEEPALIVES: &str = "SELECT set_config('tcp_keepalives_idle', '10', false),
        set_config('tcp_keepalives_interval', '5', false),
        set_config('tcp_keepalives_count', '3', false)";

/// What a review asks of the reader.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Review {
    /// The session holding the locks is gone: every partition may have another reader now.
    /// Stop reading all of them (nothing is released: the locks went with the session).
    pub lost: Vec<PartitionKey>,
    /// More than this process's share: finish with these, then [`PartitionClaims::release`].
    pub surplus: Vec<PartitionKey>,
}

/// The partitions this process holds for one reader (a consumer name such as the projector's
/// group), and the session that holds them.
#[derive(Debug)]
pub struct PartitionClaims {
    pool: PgPool,
    reader: String,
    session: Option<PgConnection>,
    held: BTreeSet<PartitionKey>,
    members: usize,
}

impl PartitionClaims {
    pub fn new(pool: PgPool, reader: impl Into<String>) -> Self {
        Self {
            pool,
            reader: reader.into(),
            session: None,
            held: BTreeSet::new(),
            members: 0,
        }
    }

    pub fn held(&self) -> &BTreeSet<PartitionKey> {
        &self.held
    }

    /// True while this process has a session and knows how many processes are present.
    pub fn joined(&self) -> bool {
        self.session.is_some() && self.members > 0
    }

    /// Checks the session and counts the processes present; says what to stop reading.
    pub async fn review(&mut self, partitions: &BTreeSet<PartitionKey>) -> Review {
        let mut review = Review::default();
        if self.session.is_none() {
            self.session = self.open_session().await;
        }
        let Some(session) = self.session.as_mut() else {
            return review;
        };
        let counted = match tokio::time::timeout(
            REVIEW_TIMEOUT,
            count_members(session, &self.reader),
        )
        .await
        {
            Ok(counted) => counted.map_err(|error| error.to_string()),
            Err(_) => Err(format!("no answer within {REVIEW_TIMEOUT:?}")),
        };
        match counted {
            Ok(members) => self.members = members.max(1),
            Err(error) => {
                warn!(%error, reader = %self.reader, partitions = self.held.len(), "partition claims: session lost; letting go of every partition");
                metrics::counter!("partition_claims_lost_total", "reader" => self.reader.clone())
                    .increment(1);
                self.session = None;
                self.members = 0;
                review.lost = std::mem::take(&mut self.held).into_iter().collect();
                self.report();
                return review;
            }
        }
        let share = fair_share(partitions.len(), self.members);
        // Partitions that disappeared from the topic's metadata are surplus too.
        review.surplus = self
            .held
            .iter()
            .filter(|key| !partitions.contains(*key))
            .cloned()
            .collect();
        let kept = self.held.len() - review.surplus.len();
        review.surplus.extend(
            self.held
                .iter()
                .filter(|key| partitions.contains(*key))
                .rev()
                .take(kept.saturating_sub(share))
                .cloned(),
        );
        review
    }

    /// Unlocks partitions this process has finished with (after a review's `surplus`).
    pub async fn release(&mut self, keys: &[PartitionKey]) {
        let Some(session) = self.session.as_mut() else {
            return;
        };
        for key in keys {
            if !self.held.remove(key) {
                continue;
            }
            let unlocked = partition_lock(session, UNLOCK, &self.reader, key).await;
            match unlocked {
                Ok(_) => {
                    info!(reader = %self.reader, topic = %key.0, partition = key.1, "partition claims: released")
                }
                // The session is in doubt: the next review finds out.
                Err(error) => {
                    warn!(%error, reader = %self.reader, "partition claims: unlock failed")
                }
            }
        }
        self.report();
    }

    /// Takes free partitions up to this process's share; answers the ones taken.
    pub async fn claim(&mut self, partitions: &BTreeSet<PartitionKey>) -> Vec<PartitionKey> {
        let share = fair_share(partitions.len(), self.members);
        let Some(session) = self.session.as_mut() else {
            return Vec::new();
        };
        let free: Vec<&PartitionKey> = partitions
            .iter()
            .filter(|key| !self.held.contains(*key))
            .collect();
        if free.is_empty() || self.held.len() >= share {
            return Vec::new();
        }
        // Processes starting together try different partitions first.
        let start = rand::random_range(0..free.len());
        let mut gained = Vec::new();
        let (before, after) = free.split_at(start);
        for key in after.iter().chain(before) {
            if self.held.len() >= share {
                break;
            }
            let taken = partition_lock(session, TRY_LOCK, &self.reader, key).await;
            match taken {
                Ok(true) => {
                    info!(reader = %self.reader, topic = %key.0, partition = key.1, "partition claims: taken");
                    self.held.insert((*key).clone());
                    gained.push((*key).clone());
                }
                Ok(false) => {}
                Err(error) => {
                    warn!(%error, reader = %self.reader, "partition claims: lock attempt failed");
                    break;
                }
            }
        }
        self.report();
        gained
    }

    fn report(&self) {
        metrics::gauge!("partition_claims_held", "reader" => self.reader.clone())
            .set(self.held.len() as f64);
    }

    /// A session of its own (detached from the pool, so dropping it releases every lock),
    /// announced as a member of the reader.
    async fn open_session(&self) -> Option<PgConnection> {
        let mut session = match self.pool.acquire().await {
            Ok(connection) => connection.detach(),
            Err(error) => {
                warn!(%error, reader = %self.reader, "partition claims: no session");
                return None;
            }
        };
        if let Err(error) = sqlx::query(KEEPALIVES).execute(&mut session).await {
            warn!(%error, reader = %self.reader, "partition claims: keepalives not set");
        }
        let joined =
            sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock_shared(hashtext($1), $2)")
                .bind(&self.reader)
                .bind(MEMBER_KEY)
                .fetch_one(&mut session)
                .await;
        match joined {
            Ok(true) => Some(session),
            Ok(false) => None,
            Err(error) => {
                warn!(%error, reader = %self.reader, "partition claims: cannot join");
                None
            }
        }
    }
}

/// Takes a partition's lock if it is free (true when taken).
const TRY_LOCK: &str = "SELECT pg_try_advisory_lock(hashtext($1 || '/' || $2), $3)";
/// Releases a partition's lock held by this session.
const UNLOCK: &str = "SELECT pg_advisory_unlock(hashtext($1 || '/' || $2), $3)";

/// Runs `statement` ([`TRY_LOCK`] or [`UNLOCK`]) on the lock of `reader`'s partition `key`.
async fn partition_lock(
    session: &mut PgConnection,
    statement: &'static str,
    reader: &str,
    key: &PartitionKey,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(statement)
        .bind(reader)
        .bind(&key.0)
        .bind(key.1)
        .fetch_one(session)
        .await
}

/// How many processes hold the reader's member lock: those present, this one included.
async fn count_members(session: &mut PgConnection, reader: &str) -> Result<usize, sqlx::Error> {
    let members: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks
          WHERE locktype = 'advisory' AND granted
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND classid = hashtext($1)::oid AND objid = ($2::int4)::oid AND objsubid = 2",
    )
    .bind(reader)
    .bind(MEMBER_KEY)
    .fetch_one(session)
    .await?;
    Ok(usize::try_from(members).unwrap_or(0))
}

/// Each process's share: the partitions divided among the members, rounded up so that every
/// partition has room somewhere.
fn fair_share(partitions: usize, members: usize) -> usize {
    partitions.div_ceil(members.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_partition_has_room_and_no_process_takes_more_than_its_share() {
        assert_eq!(fair_share(3, 1), 3);
        assert_eq!(fair_share(3, 2), 2);
        assert_eq!(fair_share(3, 3), 1);
        assert_eq!(fair_share(3, 5), 1);
        assert_eq!(fair_share(9, 2), 5);
        assert_eq!(fair_share(0, 2), 0);
        assert_eq!(fair_share(4, 0), 4);
    }
}
