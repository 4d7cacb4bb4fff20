"""kafka-python against librdkafka (confluent-kafka), doing the worker's Kafka work alone.

The worker profile shows kafka-python's ``send`` and ``poll`` as a share of a worker's time; this
measures what the alternative client would save before anything is changed: produce N triaged-size
messages with lz4 and acks=all, flush, then consume them back in batches, with each client.
confluent-kafka is installed by the bench extra (Quix Streams depends on it).

    . .services/env && .venv/bin/python -m bench.kafka_clients [--messages N]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime
from pathlib import Path

from kafka import KafkaConsumer, KafkaProducer

from pipeline.bus.kafka import KafkaBus

SIZE = 1700  # bytes of one triaged post as the worker publishes it


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def kafka_python(bootstrap: str, topic: str, values: list[bytes]) -> tuple[float, float]:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=5, batch_size=256 * 1024,
        compression_type="lz4",
    )
    c0 = cpu()
    for v in values:
        producer.send(topic, v)
    producer.flush()
    produce = (cpu() - c0) / len(values)
    producer.close()
    consumer = KafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"{topic}-kp", auto_offset_reset="earliest",
        enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    c0, got = cpu(), 0
    while got < len(values):
        got += sum(len(r) for r in consumer.poll(timeout_ms=1000, max_records=1000).values())
    consume = (cpu() - c0) / len(values)
    consumer.close()
    return produce, consume


def librdkafka(bootstrap: str, topic: str, values: list[bytes]) -> tuple[float, float]:
    from confluent_kafka import Consumer, Producer

    producer = Producer(
        {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
         "compression.type": "lz4", "batch.size": 256 * 1024}
    )
    c0 = cpu()
    for v in values:
        while True:
            try:
                producer.produce(topic, v)
                break
            except BufferError:
                producer.poll(0.01)
    producer.flush()
    produce = (cpu() - c0) / len(values)
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"{topic}-rd",
         "auto.offset.reset": "earliest", "enable.auto.commit": False}
    )
    consumer.subscribe([topic])
    c0, got = cpu(), 0
    while got < len(values):
        got += len(consumer.consume(num_messages=1000, timeout=1.0))
    consume = (cpu() - c0) / len(values)
    consumer.close()
    return produce, consume


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    bootstrap = os.environ["TRIAGE_KAFKA_BOOTSTRAP"]
    stamp = datetime.now(UTC).strftime("%H%M%S")
    body = (b'{"post":{"text":"my order is late"},"topic":"delivery"} ' * 40)[:SIZE]
    values = [b"%d" % i + body for i in range(args.messages)]
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    for name, run in (("kafka-python", kafka_python), ("confluent-kafka", librdkafka)):
        topic = f"bench.{stamp}.{name}"
        KafkaBus(bootstrap).ensure_topics([topic])
        started = time.perf_counter()
        produce, consume = run(bootstrap, topic, values)
        print(
            f"{name}: {args.messages} x {SIZE} B: produce {produce * 1e6:.0f} us CPU/msg, "
            f"consume {consume * 1e6:.0f} us CPU/msg, {time.perf_counter() - started:.1f}s wall "
            f"(load {load})"
        )


if __name__ == "__main__":
    main()
