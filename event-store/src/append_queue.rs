//! The node's append queue: concurrent commands' appends wait here and are committed together
//! (group commit), one transaction at a time, so the append lock is taken once per batch.

use domain::EventEnvelope;
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use crate::append::AppendRequest;
use crate::error::{AppendError, StoreError};
use crate::store::EventStore;
use crate::table_stats::GrowthAnalyzer;

/// How many appends wait before the next one is told to back off: about a second of work.
const QUEUE_CAPACITY: usize = 4096;

type Reply = oneshot::Sender<Result<Vec<EventEnvelope>, AppendError>>;

/// Handle on the task that commits queued appends. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppendQueue {
    sender: mpsc::Sender<(AppendRequest, Reply)>,
}

impl AppendQueue {
    /// Starts the committing task; it runs until every handle is dropped. A batch takes at most
    /// `max_batch` appends: whatever queued while the previous batch committed, so a lone command
    /// is committed at once and a crowd shares one transaction.
    pub fn start(store: EventStore, max_batch: usize) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
        tokio::spawn(commit_batches(store, receiver, max_batch.max(1)));
        Self { sender }
    }

    /// Appends `request` with the batch it lands in; answers as [`EventStore::append`] would.
    pub async fn append(&self, request: AppendRequest) -> Result<Vec<EventEnvelope>, AppendError> {
        let (reply, answer) = oneshot::channel();
        self.sender
            .send((request, reply))
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> AppendError {
    // Only at shutdown: answered as an unavailable store (503), as a closed pool would be.
    AppendError::Store(StoreError::Database(sqlx::Error::PoolClosed))
}

async fn commit_batches(
    store: EventStore,
    mut receiver: mpsc::Receiver<(AppendRequest, Reply)>,
    max_batch: usize,
) {
    let mut batch = Vec::with_capacity(max_batch);
    let mut analyzer = GrowthAnalyzer::event_store();
    while receiver.recv_many(&mut batch, max_batch).await > 0 {
        let (requests, replies): (Vec<_>, Vec<_>) = std::mem::take(&mut batch).into_iter().unzip();
        metrics::histogram!("append_batch_commands").record(requests.len() as f64);
        let mut appended = 0;
        if requests.len() == 1 {
            for (request, reply) in requests.into_iter().zip(replies) {
                appended += commit_alone(&store, request, reply).await;
            }
            analyzer.wrote(store.pool(), appended as u64).await;
            continue;
        }
        // The requests are kept for a retry one by one should the shared transaction fail:
        // a failure is then confined to the request that causes it.
        let retry = requests.clone();
        match store.append_batch(requests).await {
            Ok(outcomes) => {
                appended = outcomes
                    .iter()
                    .map(|outcome| outcome.as_ref().map_or(0, Vec::len))
                    .sum();
                for (outcome, reply) in outcomes.into_iter().zip(replies) {
                    let _ = reply.send(outcome);
                }
            }
            Err(error) => {
                warn!(%error, commands = replies.len(), "group commit failed: committing its commands one by one");
                for (request, reply) in retry.into_iter().zip(replies) {
                    appended += commit_alone(&store, request, reply).await;
                }
            }
        }
        analyzer.wrote(store.pool(), appended as u64).await;
    }
}

/// Commits one request on its own; how many events it appended.
async fn commit_alone(store: &EventStore, request: AppendRequest, reply: Reply) -> usize {
    let outcome = store.append_one(request).await;
    let appended = outcome.as_ref().map_or(0, Vec::len);
    let _ = reply.send(outcome);
    appended
}
