//! Folds a replay's records on worker threads, one share of the actors each, while the reading
//! thread keeps fetching: decoding and folding are most of a replay's work, and actors
//! (region × partition) fold independently, so they spread over the cores.
//!
//! Each actor belongs to one worker and its records reach it in the order they were read, so
//! every actor's fold is exactly the single-threaded one; the folds are joined at the end.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use anyhow::{Context, anyhow};
use chrono::{DateTime, Utc};
use domain::RegionId;
use projector::{ActorId, Replay};

use crate::replay::{Cut, fold};

/// Records handed to a worker at once: large enough that the channel is no cost per record.
const BATCH_RECORDS: usize = 2048;
/// Batches queued per worker before the reader waits (bounds memory to a few MB per worker).
const QUEUED_BATCHES: usize = 4;

/// Records bound for one worker: their payloads back to back, and for each its actor (an
/// index into `actors`, the actors known when the batch was sent), offset and bytes.
#[derive(Default)]
struct Batch {
    actors: Vec<ActorId>,
    bytes: Vec<u8>,
    records: Vec<(usize, i64, std::ops::Range<usize>)>,
}

/// The workers, the batch being filled for each, and every actor seen so far: an actor's
/// index there picks its worker, so all its records go to the same one.
pub(crate) struct FoldWorkers {
    senders: Vec<SyncSender<Batch>>,
    filling: Vec<Batch>,
    handles: Vec<JoinHandle<anyhow::Result<Replay>>>,
    actors: Vec<ActorId>,
}

impl FoldWorkers {
    /// Starts `count` workers (at least one), each folding up to `until` when given.
    pub(crate) fn start(count: usize, until: Option<DateTime<Utc>>) -> anyhow::Result<Self> {
        let count = count.max(1);
        let mut senders = Vec::with_capacity(count);
        let mut handles = Vec::with_capacity(count);
        for index in 0..count {
            let (sender, receiver) = sync_channel(QUEUED_BATCHES);
            let handle = std::thread::Builder::new()
                .name(format!("replay-fold-{index}"))
                .spawn(move || fold_batches(&receiver, until))
                .context("starting a replay fold thread")?;
            senders.push(sender);
            handles.push(handle);
        }
        Ok(Self {
            filling: (0..count).map(|_| Batch::default()).collect(),
            senders,
            handles,
            actors: Vec::new(),
        })
    }

    /// Queues one record of actor (`region`, `partition`), read at `offset`. An `Err` means
    /// its worker stopped (its fold failed): [`FoldWorkers::finish`] says why.
    pub(crate) fn push(
        &mut self,
        region: &RegionId,
        partition: i32,
        offset: i64,
        payload: &[u8],
    ) -> Result<(), WorkerStopped> {
        let known = self
            .actors
            .iter()
            .position(|a| a.partition == partition && a.region == *region);
        let slot = known.unwrap_or_else(|| {
            self.actors.push(ActorId::new(region.clone(), partition));
            self.actors.len() - 1
        });
        let index = slot % self.senders.len();
        let Some(batch) = self.filling.get_mut(index) else {
            return Err(WorkerStopped);
        };
        let start = batch.bytes.len();
        batch.bytes.extend_from_slice(payload);
        batch.records.push((slot, offset, start..batch.bytes.len()));
        if batch.records.len() >= BATCH_RECORDS {
            self.send(index)?;
        }
        Ok(())
    }

    fn send(&mut self, index: usize) -> Result<(), WorkerStopped> {
        let (Some(batch), Some(sender)) = (self.filling.get_mut(index), self.senders.get(index))
        else {
            return Err(WorkerStopped);
        };
        let mut batch = std::mem::take(batch);
        batch.actors.clone_from(&self.actors);
        sender.send(batch).map_err(|_| WorkerStopped)
    }

    /// Hands over what is queued, waits for every worker and joins their folds; the first
    /// failed fold's error if any.
    pub(crate) fn finish(mut self) -> anyhow::Result<Replay> {
        let mut sent = Ok(());
        for index in 0..self.senders.len() {
            sent = sent.and(self.send(index));
        }
        // Closing the channels ends the workers once they have folded everything sent.
        self.senders.clear();
        let mut joined = Replay::new();
        for handle in self.handles {
            let folded = handle
                .join()
                .map_err(|_| anyhow!("a replay fold thread panicked"))??;
            joined.absorb(folded);
        }
        sent.map_err(|_| anyhow!("a replay fold thread stopped early"))?;
        Ok(joined)
    }
}

/// A worker's channel is closed: it stopped on an error, which [`FoldWorkers::finish`] returns.
#[derive(Debug)]
pub(crate) struct WorkerStopped;

fn fold_batches(batches: &Receiver<Batch>, until: Option<DateTime<Utc>>) -> anyhow::Result<Replay> {
    let mut replay = Replay::new();
    let mut cut = until.map(Cut::new);
    for batch in batches {
        for (slot, offset, range) in &batch.records {
            let (Some(actor), Some(payload)) =
                (batch.actors.get(*slot), batch.bytes.get(range.clone()))
            else {
                anyhow::bail!("a replay batch lost track of a record");
            };
            fold(&mut replay, actor, *offset, payload, cut.as_mut())?;
        }
    }
    Ok(replay)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use std::collections::BTreeSet;

    use super::*;
    use crate::test_events::registration;

    /// Records of six actors, interleaved as a reader sees them; some models are registered
    /// twice on the same actor (the second is dropped by that actor's fold, by sequence).
    fn records() -> Vec<(ActorId, i64, Vec<u8>)> {
        let mut records = Vec::new();
        for (r, region) in ["eu-west", "us-east"].into_iter().enumerate() {
            let region = RegionId::parse(region).unwrap();
            for n in 0..3000_i64 {
                let partition = i32::try_from(n % 3).unwrap();
                let provider = ["acme", "globex", "initech"][usize::try_from(n % 3).unwrap()];
                let model = format!("{provider}/m{r}-{}", n % 2499);
                let payload = registration(&region, &model, provider, 1).encode();
                records.push((ActorId::new(region.clone(), partition), n / 3, payload));
            }
        }
        records
    }

    #[test]
    fn workers_fold_every_actor_as_one_thread_does() {
        let records = records();
        let mut alone = Replay::new();
        for (actor, offset, payload) in &records {
            fold(&mut alone, actor, *offset, payload, None).unwrap();
        }
        assert_eq!(alone.totals().total, 2 * 2499, "duplicates dropped");
        let actors: BTreeSet<&ActorId> = records.iter().map(|(actor, _, _)| actor).collect();
        for threads in [1, 2, 5] {
            let mut workers = FoldWorkers::start(threads, None).unwrap();
            for (actor, offset, payload) in &records {
                workers
                    .push(&actor.region, actor.partition, *offset, payload)
                    .unwrap();
            }
            let parallel = workers.finish().unwrap();
            assert_eq!(parallel.events(), alone.events(), "{threads} threads");
            assert_eq!(parallel.totals(), alone.totals(), "{threads} threads");
            for actor in &actors {
                assert_eq!(
                    parallel.fold(actor).map(|f| f.counters().clone()),
                    alone.fold(actor).map(|f| f.counters().clone()),
                    "{actor} with {threads} threads"
                );
            }
        }
    }
}
