//! Batching a consumer's messages: after the first one (waited for by the caller, next to its
//! own shutdown and timers), whatever else arrives within a short linger, up to a maximum.

use std::time::Duration;

use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::message::BorrowedMessage;

/// `first`, then more messages while each arrives within `linger`, `max` in all. A consumer
/// error ends the batch; the caller's next receive sees it again.
pub async fn fill<'c, C: ConsumerContext + 'static>(
    consumer: &'c StreamConsumer<C>,
    first: BorrowedMessage<'c>,
    max: usize,
    linger: Duration,
) -> Vec<BorrowedMessage<'c>> {
    let mut batch = vec![first];
    while batch.len() < max {
        match tokio::time::timeout(linger, consumer.recv()).await {
            Ok(Ok(message)) => batch.push(message),
            _ => break,
        }
    }
    batch
}
