//! A producer whose deliveries are futures, like rdkafka's `FutureProducer`, without its idle
//! cost.
//!
//! rdkafka's `FutureProducer` (0.39) polls its librdkafka queue from a thread, 100 ms at a
//! time, and `BaseProducer::poll` truncates what is left of each wait to whole milliseconds:
//! librdkafka wakes up to 1 ms before the deadline and the loop spins on `poll(0)` until it
//! passes. Measured on an idle region node: each such thread used 0.8 % of a core, three per
//! node (the relay's producer and two state publishers) most of an idle node's CPU. Here the
//! thread polls one second at a time (librdkafka still wakes it at once for every delivery
//! report, so nothing waits longer), so the spin costs at most a millisecond a second.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::thread;
use std::time::Duration;

use futures::channel::oneshot;
use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::client::Client;
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::future_producer::{Delivery, OwnedDeliveryResult};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, FutureRecord, Producer, ProducerContext, PurgeConfig,
};

/// How long the polling thread waits for an event per call. Events (delivery reports, errors,
/// logs) wake it at once; this only bounds how late it notices that the producer was dropped.
/// The extra 200 µs absorb the sub-millisecond remainder `BaseProducer::poll` would spin on.
const POLL_SLICE: Duration = Duration::from_micros(1_000_200);

/// Delivery reports go to the future of their message.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deliveries;

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<oneshot::Sender<OwnedDeliveryResult>>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Self::DeliveryOpaque) {
        let owned = match result {
            Ok(message) => Ok(Delivery {
                partition: message.partition(),
                offset: message.offset(),
                timestamp: message.timestamp(),
            }),
            Err((error, message)) => Err((error.clone(), message.detach())),
        };
        // The caller may have stopped waiting; nothing to do then.
        let _ = tx.send(owned);
    }
}

/// Resolves with the delivery report of one message (`Err(Canceled)` if the producer was
/// dropped first), like rdkafka's `DeliveryFuture`.
#[derive(Debug)]
#[must_use = "a delivery future does nothing unless awaited"]
pub struct DeliveryFuture {
    rx: oneshot::Receiver<OwnedDeliveryResult>,
}

impl Future for DeliveryFuture {
    type Output = Result<OwnedDeliveryResult, oneshot::Canceled>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx)
    }
}

/// A cloneable producer; the last clone dropped purges what is still queued or in flight and
/// lets its polling thread end (within [`POLL_SLICE`]).
#[derive(Clone)]
pub struct QuietProducer {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for QuietProducer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuietProducer").finish_non_exhaustive()
    }
}

struct Shared {
    producer: Arc<BaseProducer<Deliveries>>,
    stop: Arc<AtomicBool>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // At once, as rdkafka's producers do when dropped: nothing of this producer may
        // still be delivered after its owner moved on (e.g. to a fresh producer).
        self.producer
            .purge(PurgeConfig::default().queue().inflight());
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl QuietProducer {
    /// Creates the producer and its polling thread.
    pub fn create(config: &ClientConfig) -> KafkaResult<Self> {
        let producer: Arc<BaseProducer<Deliveries>> =
            Arc::new(config.create_with_context(Deliveries)?);
        let stop = Arc::new(AtomicBool::new(false));
        {
            let (producer, stop) = (Arc::clone(&producer), Arc::clone(&stop));
            thread::Builder::new()
                .name("kafka-producer-poll".to_owned())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        producer.poll(POLL_SLICE);
                    }
                })
                .map_err(|error| {
                    KafkaError::ClientCreation(format!("producer polling thread: {error}"))
                })?;
        }
        Ok(Self {
            shared: Arc::new(Shared { producer, stop }),
        })
    }

    /// Enqueues `record`; the future resolves with its delivery report. Fails at once if the
    /// record cannot be enqueued (e.g. the queue is full), handing it back.
    #[expect(
        clippy::result_large_err,
        reason = "the record is handed back, as rdkafka does"
    )]
    pub fn send_result<'a, K, P>(
        &self,
        record: FutureRecord<'a, K, P>,
    ) -> Result<DeliveryFuture, (KafkaError, FutureRecord<'a, K, P>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        let (tx, rx) = oneshot::channel();
        let base = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: record.headers,
            delivery_opaque: Box::new(tx),
        };
        self.shared
            .producer
            .send(base)
            .map(|()| DeliveryFuture { rx })
            .map_err(|(error, base)| {
                let record = FutureRecord {
                    topic: base.topic,
                    partition: base.partition,
                    payload: base.payload,
                    key: base.key,
                    timestamp: base.timestamp,
                    headers: base.headers,
                };
                (error, record)
            })
    }

    /// Waits until everything queued is delivered or failed, at most `timeout`.
    pub fn flush(&self, timeout: Duration) -> KafkaResult<()> {
        self.shared.producer.flush(timeout)
    }

    /// The underlying client (metadata, watermarks, fatal errors).
    pub fn client(&self) -> &Client<Deliveries> {
        self.shared.producer.client()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_that_cannot_be_enqueued_is_handed_back() {
        // No broker is needed to refuse a message larger than message.max.bytes.
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", "127.0.0.1:1")
            .set("message.max.bytes", "1000");
        let producer = QuietProducer::create(&config).unwrap();
        let payload = vec![0_u8; 10_000];
        let record = FutureRecord::<(), [u8]>::to("t").payload(payload.as_slice());
        let (error, record) = producer.send_result(record).unwrap_err();
        assert!(matches!(error, KafkaError::MessageProduction(_)), "{error}");
        assert_eq!(record.topic, "t");
        assert_eq!(record.payload.map(<[u8]>::len), Some(10_000));
    }
}
