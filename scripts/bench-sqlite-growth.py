#!/usr/bin/env python3
"""Does the sqlite broker's cost per record grow with its file? bench-sqlite-growth.py
BROKERS BROKER_PID PREFILL SECONDS RATE READERS.

Run by scripts/bench-sqlite-growth.sh (which starts a fresh broker per prefill). Three topics of
three partitions, shaped like the region event topics (relay-like records, two headers each):
PREFILL records are written as fast as the broker takes them, then RATE records/s are produced
for SECONDS while READERS consumers follow the tail with 50 ms fetch waits (the nodes' tail
readers; READER_CONFIG="key=value,..." adds librdkafka properties to them). Prints the broker's
CPU over the steady window (from /proc), what the readers got in how many fetches, the produce
acknowledgement latency and the first reader's produce-to-read lag, so runs with different
prefills or reader settings compare directly.
"""

import json
import os
import sys
import threading
import time

from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

TOPICS = ["grow-a", "grow-b", "grow-c"]
PARTITIONS = 3
QUIET = {"log_level": 0}
WARM_UP_SECONDS = 10
READ_LAGS = []  # the first reader's produce-to-read lag (ms) over the steady window
VALUE = b"x" * 300


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def producer(brokers: str) -> Producer:
    return Producer({"bootstrap.servers": brokers, "linger.ms": 5, "enable.idempotence": True,
                     **QUIET})


def send(p: Producer, i: int, on_delivery=None) -> None:
    topic = TOPICS[i % len(TOPICS)]
    headers = [("aigo-position", str(i + 1).encode()), ("content-type", b"application/json")]
    while True:
        try:
            p.produce(topic, key=str(i).encode(), value=VALUE,
                      partition=(i // len(TOPICS)) % PARTITIONS, headers=headers,
                      on_delivery=on_delivery)
            return
        except BufferError:
            p.poll(0.05)


def prefill(brokers: str, records: int) -> None:
    admin = AdminClient({"bootstrap.servers": brokers, **QUIET})
    config = {"retention.ms": "-1", "retention.bytes": "-1"}
    for future in admin.create_topics(
            [NewTopic(t, PARTITIONS, 1, config=config) for t in TOPICS]).values():
        future.result()
    p = producer(brokers)
    started = time.monotonic()
    for i in range(records):
        send(p, i)
        p.poll(0)
    left = p.flush(600)
    print(f"  prefilled {records - left} records in {time.monotonic() - started:.1f} s",
          flush=True)


def reader_tuning() -> dict:
    """Extra librdkafka properties for the readers: READER_CONFIG="key=value,key=value"."""
    text = os.environ.get("READER_CONFIG", "")
    return dict(pair.split("=", 1) for pair in text.split(",") if pair)


def follow(brokers: str, stop: threading.Event, got: list, slot: int, fetches: list) -> None:
    def statistics(text: str) -> None:
        stats = json.loads(text)
        fetches[slot] = sum(b.get("req", {}).get("Fetch", 0) for b in stats["brokers"].values())

    consumer = Consumer({"statistics.interval.ms": 1000, "stats_cb": statistics,"bootstrap.servers": brokers, "group.id": f"grow-{time.time_ns()}",
                         "enable.auto.commit": False, "fetch.wait.max.ms": 50,
                         **reader_tuning(), **QUIET})
    consumer.assign([TopicPartition(t, p, OFFSET_END) for t in TOPICS for p in range(PARTITIONS)])
    while not stop.is_set():
        for message in consumer.consume(500, 0.2):
            if message.error() is None:
                got[slot] += 1
                if slot == 0 and stop.counting:
                    READ_LAGS.append(time.time() * 1000 - message.timestamp()[1])
    consumer.close()


def quantile(values: list, q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q), len(ordered) - 1)] if ordered else float("nan")


def main() -> int:
    brokers, pid = sys.argv[1], int(sys.argv[2])
    records, seconds, rate, readers = (int(a) for a in sys.argv[3:7])
    prefill(brokers, records)

    stop = threading.Event()
    stop.counting = False
    got = [0] * readers
    fetches = [0] * readers
    threads = [threading.Thread(target=follow, args=(brokers, stop, got, n, fetches))
               for n in range(readers)]
    for thread in threads:
        thread.start()
    time.sleep(3)  # the readers assigned at the end before the steady load starts

    latencies = []
    p = producer(brokers)
    sent_at = {}

    def delivered(error, message):
        if error is None:
            latencies.append(time.monotonic() - sent_at.pop(message.key(), time.monotonic()))

    started = time.monotonic()
    window = None
    i, total = records, seconds + WARM_UP_SECONDS
    while (now := time.monotonic()) - started < total:
        if window is None and now - started >= WARM_UP_SECONDS:
            window = (now, cpu_seconds(pid), sum(fetches), sum(got))
            stop.counting = True
            latencies.clear()
        due = records + int((now - started) * rate)
        while i < due:
            sent_at[str(i).encode()] = time.monotonic()
            send(p, i, delivered)
            i += 1
        p.poll(0.01)
    ended, cpu_end, read_end, fetch_end = time.monotonic(), cpu_seconds(pid), sum(got), sum(fetches)
    stop.counting = False
    p.flush(60)
    stop.set()
    for thread in threads:
        thread.join()

    span = ended - window[0]
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000 if latencies else float("nan")
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    print(f"  prefill {records}: broker CPU {100 * (cpu_end - window[1]) / span:.1f} % of a core "
          f"over {span:.0f} s at {rate} records/s with {readers} tail readers; "
          f"readers got {(read_end - window[3]) / span / max(readers, 1):,.0f} records/s each "
          f"in {(fetch_end - window[2]) / span / max(readers, 1):,.0f} fetches/s; "
          f"produce ack p50 {p50:.0f} ms p99 {p99:.0f} ms; "
          f"produce to read p50 {quantile(READ_LAGS, 0.5):.0f} ms p99 {quantile(READ_LAGS, 0.99):.0f} ms",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
