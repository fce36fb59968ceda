#!/usr/bin/env python3
"""Fill a topic, then time reading it back: bench-sqlite-broker.py BROKERS TOPIC RECORDS WAIT_MS.

Run by scripts/bench-sqlite-broker.sh (which starts the brokers). Records are shaped like the
relay's: ~300-byte values, keys spread over 3 partitions, the two headers every event carries
(aigo-position, content-type). Reads all partitions from their middle, then from offset 0,
each bounded to BENCH_READ_LIMIT seconds (default 60), and prints records/s and the time to the first record.
"""

import os
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

PARTITIONS = 3
READ_LIMIT_SECONDS = int(os.environ.get("BENCH_READ_LIMIT", "60"))
QUIET = {"log_level": 0}  # a killed or slow broker must not flood the report


def fill(brokers: str, topic: str, records: int) -> None:
    admin = AdminClient({"bootstrap.servers": brokers, **QUIET})
    admin.create_topics([NewTopic(topic, PARTITIONS, 1)])[topic].result()
    producer = Producer(
        {"bootstrap.servers": brokers, "linger.ms": 20, "enable.idempotence": True, **QUIET}
    )
    started = time.monotonic()
    value = b"x" * 300
    for i in range(records):
        headers = [("aigo-position", str(i + 1).encode()), ("content-type", b"application/json")]
        while True:
            try:
                producer.produce(topic, key=str(i).encode(), value=value,
                                 partition=i % PARTITIONS, headers=headers)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(120)
    print(f"  produced {records - left} records in {time.monotonic() - started:.1f} s", flush=True)


def read(brokers: str, topic: str, records: int, wait_ms: int, from_fraction: float) -> None:
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"bench-{time.time_ns()}",
        "enable.auto.commit": False,
        "fetch.wait.max.ms": wait_ms,
        **QUIET,
    })
    per_partition = records // PARTITIONS
    start = int(per_partition * from_fraction)
    consumer.assign([TopicPartition(topic, p, start) for p in range(PARTITIONS)])
    wanted = (per_partition - start) * PARTITIONS
    got, first, started = 0, None, time.monotonic()
    while got < wanted and time.monotonic() - started < READ_LIMIT_SECONDS:
        for message in consumer.consume(1000, 1.0):
            if message.error() is None:
                got += 1
                first = first or time.monotonic() - started
    elapsed = time.monotonic() - started
    first_text = f"{first:.2f} s" if first else "never"
    print(f"  from offset {start} of each partition: {got}/{wanted} records in {elapsed:.1f} s "
          f"({got / elapsed:,.0f}/s), first after {first_text}", flush=True)
    consumer.close()


def main() -> int:
    brokers, topic, records, wait_ms = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fill(brokers, topic, records)
    read(brokers, topic, records, wait_ms, 0.5)
    read(brokers, topic, records, wait_ms, 0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
