"""The two pipelines ours is compared with, driving the same models over the same Kafka topic.

* ``per-message``: the straightforward consumer loop. One record at a time: parse it, triage it,
  write it to the store, publish it, flush, commit. Same guarantees as our worker (commit after the
  write), same classifiers and store, no batching.
* ``quix``: Quix Streams, the Python stream-processing library a team would otherwise pick. A
  ``StreamingDataFrame`` applies the triage to each record (its processing model is per record),
  publishes the result to a topic, and writes to the store through a ``BatchingSink``, which Quix
  flushes in bulk at every checkpoint before it commits: the idiomatic and fastest way to land a
  Quix stream in a database.

Run as ``python -m bench.peers MODE --topic T --group G --database D --out-topic O --seconds S``
with the services' ``TRIAGE_KAFKA_BOOTSTRAP`` and ``TRIAGE_MONGO_URI`` in the environment. The
harness measures both by their committed offsets, exactly as it measures our workers.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any

from classifiers.registry import PACKAGED, Registry
from classifiers.triager import Triager
from pipeline.records import Post, TriagedPost, utcnow
from pipeline.store.mongo import MongoStore


def per_message(args: argparse.Namespace, triager: Triager, store: MongoStore) -> int:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    bootstrap = os.environ["TRIAGE_KAFKA_BOOTSTRAP"]
    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    deadline = time.monotonic() + args.seconds
    done = 0
    try:
        while time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for record in records:
                    post = Post.model_validate_json(record.value)
                    triaged = triager.triage([post], utcnow())
                    store.write_batch(triaged)
                    for t in triaged:
                        producer.send(
                            args.out_topic, t.model_dump_json().encode(), key=t.id.encode()
                        )
                    producer.flush()
                    tpo = TopicPartition(tp.topic, tp.partition)
                    consumer.commit({tpo: OffsetAndMetadata(record.offset + 1, "", -1)})
                    done += 1
                    if time.monotonic() >= deadline:
                        break
    finally:
        producer.close()
        consumer.close(autocommit=False)
    return done


def quix(args: argparse.Namespace, triager: Triager, store: MongoStore) -> int:
    from quixstreams import Application
    from quixstreams.models.serializers import Serializer
    from quixstreams.sinks import BatchingSink, SinkBatch

    class TriagedJSON(Serializer):
        def __call__(self, value: TriagedPost, ctx: Any) -> bytes:
            return value.model_dump_json().encode()

    class StoreSink(BatchingSink):
        """Lands a checkpoint's records in the store in one bulk write per collection."""

        written = 0

        def write(self, batch: SinkBatch) -> None:
            items = [item.value for item in batch]
            store.write_batch(items)
            StoreSink.written += len(items)

    def triage_one(value: bytes) -> TriagedPost:
        return triager.triage([Post.model_validate_json(value)], utcnow())[0]

    app = Application(
        broker_address=os.environ["TRIAGE_KAFKA_BOOTSTRAP"],
        consumer_group=args.group,
        auto_offset_reset="earliest",
        loglevel="WARNING",
        use_changelog_topics=False,
        state_dir=f"/tmp/quix-state-{args.group}",
    )
    raw = app.topic(args.topic, value_deserializer="bytes")
    out = app.topic(args.out_topic, key_serializer="str", value_serializer=TriagedJSON())
    sdf = app.dataframe(raw).apply(triage_one)
    sdf = sdf.to_topic(out, key=lambda t: t.id)
    sdf.sink(StoreSink())
    threading.Timer(args.seconds, app.stop).start()
    app.run()
    return StoreSink.written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["per-message", "quix"])
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out-topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args()
    triager = Triager.from_registry(Registry(PACKAGED))
    store = MongoStore(os.environ["TRIAGE_MONGO_URI"], args.database)
    store.ensure_schema()
    try:
        done = (per_message if args.mode == "per-message" else quix)(args, triager, store)
    finally:
        store.close()
    print(f"{args.mode}: {done} posts")


if __name__ == "__main__":
    main()
