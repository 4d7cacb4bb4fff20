"""Apache Kafka behind the bus interface, with kafka-python.

Producers wait for all in-sync replicas (``acks=all``) and retry; consumers never auto-commit:
the worker commits explicit offsets only after its writes are durable.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Sequence
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata

from pipeline.bus import Message, first_offsets, next_offsets
from pipeline.errors import TransientError

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
BOOTSTRAP_TIMEOUT_MS = 10_000


def _unreachable(bootstrap: str, exc: Exception) -> TransientError:
    return TransientError(f"Kafka at {bootstrap} is unreachable ({type(exc).__name__})")


class KafkaBus:
    def __init__(self, bootstrap: str, partitions: int = 2, client_id: str = "triage") -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.client_id = client_id

    def _admin(self) -> KafkaAdminClient:
        try:
            return KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id=self.client_id,
                request_timeout_ms=10_000,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            )
        except (KafkaError, OSError, ValueError) as exc:
            raise _unreachable(self.bootstrap, exc) from exc

    def ensure_topics(self, names: Iterable[str]) -> None:
        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            wanted = [
                NewTopic(name, num_partitions=self.partitions, replication_factor=1)
                for name in names
                if name not in existing
            ]
            if wanted:
                # another worker may create them first: exactly what we wanted
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics(wanted)
        except KafkaError as exc:
            raise _unreachable(self.bootstrap, exc) from exc
        finally:
            admin.close()

    def producer(self) -> KafkaBusProducer:
        try:
            return KafkaBusProducer(
                KafkaProducer(
                    bootstrap_servers=self.bootstrap,
                    bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                    client_id=self.client_id,
                    acks="all",
                    retries=10,
                    linger_ms=5,
                    batch_size=256 * 1024,
                    compression_type="lz4",
                    max_request_size=MAX_MESSAGE_BYTES,
                    delivery_timeout_ms=120_000,
                    retry_backoff_ms=200,
                )
            )
        except (KafkaError, OSError, ValueError) as exc:
            raise _unreachable(self.bootstrap, exc) from exc

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaBusConsumer:
        try:
            return KafkaBusConsumer(
                KafkaConsumer(
                    *topics,
                    bootstrap_servers=self.bootstrap,
                    bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                    client_id=self.client_id,
                    group_id=group,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_partition_fetch_bytes=4 * 1024 * 1024,
                    fetch_max_bytes=MAX_MESSAGE_BYTES * 2,
                    max_poll_interval_ms=300_000,
                    session_timeout_ms=10_000,
                    heartbeat_interval_ms=1_000,
                )
            )
        except (KafkaError, OSError, ValueError) as exc:
            raise _unreachable(self.bootstrap, exc) from exc

    def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Message]:
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                enable_auto_commit=False,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                fetch_max_bytes=MAX_MESSAGE_BYTES * 2,
            )
        except (KafkaError, OSError, ValueError) as exc:
            raise _unreachable(self.bootstrap, exc) from exc
        try:
            parts = consumer.partitions_for_topic(topic) or set()
            tps = [TopicPartition(topic, p) for p in sorted(parts)]
            if not tps:
                return []
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            out: list[Message] = []
            deadline = time.monotonic() + timeout_s
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise TransientError(f"reading {topic} took longer than {timeout_s}s")
                for records in consumer.poll(timeout_ms=200).values():
                    out.extend(_message(r) for r in records)
            return out
        finally:
            consumer.close()

    def lag(self, group: str, topic: str) -> dict[int, int]:
        # committed() reads the group's offsets without joining the group, so workers never
        # see a rebalance because an operator looked at the dashboard.
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                group_id=group,
                enable_auto_commit=False,
            )
        except (KafkaError, OSError, ValueError) as exc:
            raise _unreachable(self.bootstrap, exc) from exc
        try:
            parts = sorted(consumer.partitions_for_topic(topic) or ())
            tps = [TopicPartition(topic, p) for p in parts]
            end = consumer.end_offsets(tps) if tps else {}
            return {tp.partition: end[tp] - (consumer.committed(tp) or 0) for tp in tps}
        except KafkaError as exc:
            raise _unreachable(self.bootstrap, exc) from exc
        finally:
            consumer.close()

    def close(self) -> None:
        """Clients are owned by the producers and consumers handed out."""


def _message(record: Any) -> Message:
    return Message(
        record.topic, record.partition, record.offset, record.key, record.value, record.timestamp
    )


class KafkaBusProducer:
    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer
        self._pending: list[Any] = []

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        try:
            self._pending.append(self._producer.send(topic, value=value, key=key))
        except KafkaError as exc:
            raise TransientError(f"send to {topic} failed: {exc}") from exc

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        try:
            self._producer.flush()
        except KafkaError as exc:
            raise TransientError(f"producer flush failed: {exc}") from exc
        failed = [f.exception for f in pending if f.failed()]
        if failed:
            raise TransientError(f"{len(failed)} sends failed, first: {failed[0]}")

    def close(self) -> None:
        self._producer.close(timeout=10)


class KafkaBusConsumer:
    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise TransientError(f"poll failed: {exc}") from exc
        return [_message(r) for records in batches.values() for r in records]

    def commit(self, messages: Sequence[Message]) -> None:
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
            for (t, p), o in next_offsets(messages).items()
        }
        if not offsets:
            return
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:
            raise TransientError(f"commit failed: {exc}") from exc

    def rewind(self, messages: Sequence[Message]) -> None:
        assigned = self._consumer.assignment()
        for (t, p), offset in first_offsets(messages).items():
            tp = TopicPartition(t, p)
            if tp in assigned:
                self._consumer.seek(tp, offset)

    def close(self) -> None:
        self._consumer.close(autocommit=False)
