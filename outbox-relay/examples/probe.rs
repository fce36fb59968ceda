//! Temporary: probe Nisshi watermark/offset behaviour.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
use outbox_relay::{TopicSpec, ensure_topics};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use std::time::Duration;

#[tokio::main]
async fn main() {
    let brokers = "127.0.0.1:19092";
    let topic = format!("probe-{}", std::process::id());
    ensure_topics(
        brokers,
        &[TopicSpec::new(&topic, 1)],
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for round in 0..3 {
        let futs: Vec<_> = (0..10)
            .map(|i| {
                let key = format!("k{i}");
                let payload = format!("r{round}-{i}");
                producer
                    .send_result(
                        FutureRecord::to(&topic)
                            .partition(0)
                            .key(&key)
                            .payload(&payload),
                    )
                    .map_err(|(e, _)| e)
                    .unwrap()
            })
            .collect();
        for f in futs {
            let d = f.await.unwrap().unwrap();
            print!("{}@{} ", d.partition, d.offset);
        }
        println!();
        let wm = producer
            .client()
            .fetch_watermarks(&topic, 0, Duration::from_secs(5))
            .unwrap();
        println!("round {round}: watermarks {wm:?}");
    }
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "probe")
        .set("enable.partition.eof", "true")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    for start in [0_i64, 5, 29, 19, 20] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Offset(start))
            .unwrap();
        consumer.assign(&tpl).unwrap();
        let mut got = vec![];
        while let Ok(r) = tokio::time::timeout(Duration::from_millis(1500), consumer.recv()).await {
            match r {
                Ok(m) => got.push((
                    m.offset(),
                    String::from_utf8_lossy(m.payload().unwrap()).to_string(),
                )),
                Err(e) => {
                    println!("  after {} msgs: {e:?}", got.len());
                }
            }
        }
        let (lo, hi) = (0, 0);
        println!(
            "  cached watermarks {lo} {hi}; position {:?}",
            consumer
                .position()
                .unwrap()
                .elements()
                .iter()
                .map(|e| e.offset())
                .collect::<Vec<_>>()
        );
        println!(
            "from {start}: {} msgs, first {:?}, last {:?}",
            got.len(),
            got.first(),
            got.last()
        );
    }
}
