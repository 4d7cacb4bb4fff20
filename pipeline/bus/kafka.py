"""Apache Kafka behind the bus interface, with kafka-python.

Producers wait for all in-sync replicas (``acks=all``) and retry; consumers never auto-commit:
the worker commits explicit offsets only after its writes are durable.

A broker outage loses nothing on the producing side: every record stays in the producer's
hands until the broker acknowledged it. The client retries on its own until
``delivery_timeout_ms``; records it gave up on (or refused at ``send``) are sent again at the
next ``flush``, a bounded number of times with backoff, and a flush that still fails raises
``TransientError`` with the records kept for the flush after it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import Any

from kafka import (
    ConsumerRebalanceListener,
    KafkaAdminClient,
    KafkaConsumer,
    KafkaProducer,
    TopicPartition,
)
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import (
    InvalidConfigurationError,
    InvalidReplicationFactorError,
    KafkaError,
    ProducerFencedError,
    TopicAlreadyExistsError,
)
from kafka.structs import OffsetAndMetadata

from pipeline.bus.interface import Consumer, Headers, Message, first_offsets, next_offsets
from pipeline.bus.topics import TopicSpec
from pipeline.errors import ConfigError, TransientError

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
BOOTSTRAP_TIMEOUT_MS = 10_000
FLUSH_ATTEMPTS = 3
FLUSH_BACKOFF_S = 1.0
STALL_S = 20.0
# how long the coordinator keeps a dead worker's open transaction before aborting it (and so
# how long read_committed consumers of a partition may wait) unless a worker with the same
# transactional id starts first and aborts it at once
TRANSACTION_TIMEOUT_MS = 30_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupView:
    state: str  # Stable, PreparingRebalance, CompletingRebalance, Empty, Dead
    members: dict[str, frozenset[TopicPartition]]


def idle_reason(
    view: GroupView,
    partitions: Set[TopicPartition],
    unsettled_before: bool,
    share_overdue: bool = False,
) -> str | None:
    """Why a member that holds no partition and got nothing for a while should join its group
    again, or None if that is fine: a rebalance just begun, or every partition of ``partitions``
    read by a member holding no more than one (more members than partitions).

    ``unsettled_before``: the previous check also found the group rebalancing. A rebalance
    that outlasts two checks is one a member's client is stuck in (a leader that never sent its
    assignment was seen here), and a new member restarts it.

    ``share_overdue``: this member's own client began a rebalance longer ago than the stall
    time and has not been given its share yet. If the group is stable meanwhile, the broker
    finished that rebalance without the client noticing: seen here under load, the broker
    counting the member as the holder of a partition while its client held nothing, read
    nothing and stopped heartbeating, until the group dropped it ten seconds later.
    """
    if view.state in ("Empty", "Dead"):
        return "the group has no live member, so it is not one"
    if view.state == "Stable" and share_overdue:
        return "the group settled but this member's client never took its share"
    if view.state != "Stable":
        if unsettled_before:
            return f"the group has been rebalancing ({view.state}) since the last check"
        return None
    owned = frozenset().union(*view.members.values())
    if unowned := partitions - owned:
        return f"nobody in the group reads {_partitions(unowned)}"
    heaviest = max((len(tps) for tps in view.members.values()), default=0)
    if heaviest > 1:
        return f"it holds no partition while another member holds {heaviest}"
    return None


def _unreachable(bootstrap: str, exc: Exception) -> TransientError:
    return TransientError(f"Kafka at {bootstrap} is unreachable ({type(exc).__name__})")


class KafkaBus:
    def __init__(
        self,
        bootstrap: str,
        partitions: int = 2,
        client_id: str = "triage",
        stall_s: float = STALL_S,
        topics: Mapping[str, TopicSpec] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.specs = dict(topics or {})  # how the pipeline's own topics must be (topics.py)
        self.client_id = client_id
        self.stall_s = stall_s  # empty polls before a consumer checks it is not stuck

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
        """Create the topics that are missing, as their spec says; check the pipeline's topics
        that exist against theirs (a one-line ConfigError on a mismatch)."""
        names = list(dict.fromkeys(names))
        admin = self._admin()
        try:
            existing = set(admin.list_topics())
            wanted = [self._new_topic(name) for name in names if name not in existing]
            if wanted:
                # another worker may create them first: exactly what we wanted
                with contextlib.suppress(TopicAlreadyExistsError):
                    try:
                        admin.create_topics(wanted)
                    except (InvalidReplicationFactorError, InvalidConfigurationError) as exc:
                        raise ConfigError(
                            f"Kafka refused to create {', '.join(t.name for t in wanted)}: "
                            f"{type(exc).__name__} (check TRIAGE_KAFKA_REPLICATION_FACTOR and "
                            "TRIAGE_KAFKA_MIN_INSYNC_REPLICAS against the brokers)"
                        ) from None
            self._check(admin, [n for n in names if n in existing and n in self.specs])
        except KafkaError as exc:
            raise _unreachable(self.bootstrap, exc) from exc
        finally:
            admin.close()

    def _new_topic(self, name: str) -> NewTopic:
        spec = self.specs.get(name)
        if spec is None:  # not one of the pipeline's: the broker's defaults
            return NewTopic(name, num_partitions=self.partitions, replication_factor=-1)
        return NewTopic(
            name,
            num_partitions=self.partitions,
            replication_factor=spec.replication_factor or -1,  # -1: the broker's default
            topic_configs=spec.configs,
        )

    def _check(self, admin: KafkaAdminClient, names: list[str]) -> None:
        if not names:
            return
        described = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, n) for n in names], config_filter="all"
        )["topic"]
        replicas = {
            t["name"]: len(t["partitions"][0]["replica_nodes"]) if t["partitions"] else 0
            for t in admin.describe_topics(names)
        }
        for name in names:
            configs = {k: str(v["value"]) for k, v in described.get(name, {}).items()}
            why = self.specs[name].mismatch(configs, replicas.get(name, 0))
            if why is not None:
                raise ConfigError(
                    f"topic {name} does not fit the pipeline: {why} (see docs/kafka.md; "
                    "change it with scripts/kafka-cli configs --alter, or recreate it)"
                )

    def producer(self, transactional_id: str | None = None) -> KafkaBusProducer | KafkaTxnProducer:
        """``transactional_id``: a producer that publishes in transactions (the worker's, with
        TRIAGE_KAFKA_TRANSACTIONS; docs/kafka.md)."""
        if transactional_id is not None:
            return KafkaTxnProducer(self._client(transactional_id=transactional_id))
        return KafkaBusProducer(self._client())

    def _client(self, **extra: Any) -> KafkaProducer:
        try:
            return KafkaProducer(
                bootstrap_servers=self.bootstrap,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                client_id=self.client_id,
                acks="all",
                linger_ms=5,
                batch_size=256 * 1024,
                compression_type="lz4",
                max_request_size=MAX_MESSAGE_BYTES,
                delivery_timeout_ms=120_000,
                retry_backoff_ms=200,
                max_block_ms=10_000,
                transaction_timeout_ms=TRANSACTION_TIMEOUT_MS,
                **extra,
            )
        except (KafkaError, OSError, ValueError) as exc:
            raise _unreachable(self.bootstrap, exc) from exc

    def consumer(self, group: str, topics: Sequence[str]) -> KafkaBusConsumer:
        return KafkaBusConsumer(self, group, topics)

    def group(self, group: str) -> GroupView:
        """The group's state and who holds which partitions, as its coordinator sees them."""
        admin = self._admin()
        try:
            described = admin.describe_groups([group])[group]
        except KafkaError as exc:
            raise _unreachable(self.bootstrap, exc) from exc
        finally:
            admin.close()
        members = {}
        for m in described["members"]:
            held = (m["member_assignment"] or {}).get("assigned_partitions", [])
            members[m["member_id"]] = frozenset(
                TopicPartition(t["topic"], p) for t in held for p in t["partitions"]
            )
        return GroupView(described["group_state"], members)

    def read_all(
        self, topic: str, timeout_s: float = 5.0, committed_only: bool = True
    ) -> list[Message]:
        """``committed_only=False`` also returns the records of aborted and open transactions
        (read_uncommitted), as a consumer that does not ask for read_committed would see them."""
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap,
                isolation_level="read_committed" if committed_only else "read_uncommitted",
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
        record.topic,
        record.partition,
        record.offset,
        record.key,
        record.value,
        record.timestamp,
        tuple(record.headers or ()),
    )


class _AssignmentLog(ConsumerRebalanceListener):
    """Says which partitions this worker holds after every rebalance: an operator reading a
    worker that triages nothing sees at once whether the group gave it anything to read.

    It also knows whether the member's share is settled, which the client does not say: with
    eager rebalancing (the client's default, used here) a rebalance begins with a revocation,
    even of nothing (a first join), and ends with an assignment, even of nothing."""

    def __init__(self, group: str) -> None:
        self.group = group
        self.unsettled_since: float | None = time.monotonic()  # None: the share is settled

    @property
    def settled(self) -> bool:
        return self.unsettled_since is None

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.unsettled_since = time.monotonic()
        log.info("group %s: gave back %s", self.group, _partitions(revoked))

    def waiting_s(self) -> float:
        """How long the member has waited for its share: 0 once the group gave it."""
        since = self.unsettled_since
        return 0.0 if since is None else time.monotonic() - since

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.unsettled_since = None
        log.info("group %s: reading %s", self.group, _partitions(assigned))


def _partitions(tps: Any) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)) or "nothing"


@dataclass
class _Unacked:
    """A record the broker has not acknowledged yet, kept so that it can be sent again."""

    topic: str
    value: bytes
    key: bytes | None
    headers: Headers = ()
    future: Any = None  # None: the client refused it; send it again at the next flush

    @property
    def failed(self) -> bool:
        return self.future is None or (self.future.is_done and self.future.failed())


class KafkaBusProducer:
    transactional = False

    def __init__(
        self,
        producer: KafkaProducer,
        attempts: int = FLUSH_ATTEMPTS,
        backoff_s: float = FLUSH_BACKOFF_S,
    ) -> None:
        self._producer = producer
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._unacked: list[_Unacked] = []

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        record = _Unacked(topic, value, key, headers)
        self._unacked.append(record)
        self._submit(record)

    def _submit(self, record: _Unacked) -> None:
        try:
            record.future = self._producer.send(
                record.topic, value=record.value, key=record.key, headers=list(record.headers)
            )
        except KafkaError as exc:  # no metadata or a full buffer while the broker is away
            record.future = None
            log.debug("send to %s refused for now (%s); kept for the next flush", record.topic, exc)

    def flush(self) -> None:
        delay = self._backoff_s
        for attempt in range(1, self._attempts + 1):
            with contextlib.suppress(KafkaError):
                self._producer.flush()
            self._unacked = [r for r in self._unacked if not r.future or not r.future.succeeded()]
            failed = [r for r in self._unacked if r.failed]
            if not self._unacked:
                return
            if attempt == self._attempts:
                break
            first = failed[0].future.exception if failed and failed[0].future else "refused"
            log.warning(
                "%d records not acknowledged (%s); sending them again in %.1fs",
                len(failed),
                first,
                delay,
            )
            time.sleep(delay)
            delay *= 2
            for record in failed:
                self._submit(record)
        raise TransientError(
            f"{len(self._unacked)} records not acknowledged by Kafka at {self._attempts} tries; "
            "kept for the next flush"
        )

    def commit_transaction(self, consumer: Consumer, messages: Sequence[Message]) -> None:
        """Without transactions: flush, then commit the offsets (at least once)."""
        self.flush()
        consumer.commit(messages)

    def abort(self) -> None:
        """Records already handed to the client stay sent: at least once, never less."""

    def close(self) -> None:
        self._producer.close(timeout=10)


class KafkaTxnProducer:
    """A producer whose records become visible to read_committed consumers only together with
    the consumer offsets of the batch they came from: one Kafka transaction a batch.

    A transaction opens at the first send after the last commit. ``commit_transaction`` adds the
    batch's offsets and commits; if anything fails the transaction is aborted (its records stay
    in the log, marked aborted, invisible to read_committed readers) and TransientError makes
    the worker replay the batch. No record is sent twice inside one transaction, so the
    non-transactional producer's resend-at-flush does not apply here.
    """

    transactional = True

    def __init__(self, producer: KafkaProducer) -> None:
        self._producer = producer
        self._open = False
        try:
            # aborts what an earlier worker with the same transactional id left open
            producer.init_transactions()
        except KafkaError as exc:
            producer.close(timeout=0)
            raise TransientError(f"Kafka refused to start transactions ({exc})") from exc

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        try:
            if not self._open:
                self._producer.begin_transaction()
                self._open = True
            self._producer.send(topic, value=value, key=key, headers=list(headers))
        except ProducerFencedError as exc:
            raise _fenced(exc) from exc
        except KafkaError as exc:  # the commit finds the transaction failed and aborts it
            log.debug("send to %s failed in the transaction (%s)", topic, exc)

    def commit_transaction(self, consumer: Consumer, messages: Sequence[Message]) -> None:
        """Commit what was sent since the last commit together with ``consumer``'s offsets for
        ``messages``; on failure abort it and raise TransientError (the batch is replayed)."""
        if not isinstance(consumer, KafkaBusConsumer):
            raise TypeError("a Kafka transaction commits a Kafka consumer's offsets")
        offsets = {
            TopicPartition(t, p): OffsetAndMetadata(o, "", -1)
            for (t, p), o in next_offsets(messages).items()
        }
        try:
            if not self._open:
                self._producer.begin_transaction()
                self._open = True
            if offsets:
                self._producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            self._producer.commit_transaction()
            self._open = False
        except ProducerFencedError as exc:
            raise _fenced(exc) from exc
        except KafkaError as exc:
            self.abort()
            raise TransientError(f"transaction aborted ({type(exc).__name__}: {exc})") from exc

    def abort(self) -> None:
        if self._open:
            with contextlib.suppress(KafkaError):
                self._producer.abort_transaction()
            self._open = False

    def flush(self) -> None:
        """Commit what was sent outside a batch (a graceful stop's last trend writes)."""
        if not self._open:
            return
        try:
            self._producer.commit_transaction()
            self._open = False
        except KafkaError as exc:
            self.abort()
            raise TransientError(f"transaction aborted ({type(exc).__name__}: {exc})") from exc

    def close(self) -> None:
        self.abort()
        self._producer.close(timeout=10)


def _fenced(exc: Exception) -> ConfigError:
    return ConfigError(
        f"another worker took this worker's transactional id ({exc}); this one stops "
        "(give each worker replica its own TRIAGE_KAFKA_TRANSACTIONAL_ID)"
    )


class KafkaBusConsumer:
    """A group member that commits only what it is told to.

    It also watches its own progress. In this project's CI a worker once read nothing for three
    minutes while records waited, without an error. Likely causes, each reported against
    kafka-python 3 or seen here: partitions assigned but never fetched; a member given nothing
    while another holds them all (a leader assigning from stale metadata); a leader that never
    finished its assignment, leaving the group rebalancing; a client that never took the share
    the broker gave it. After the bus's ``stall_s`` of empty
    polls the consumer looks (``idle_reason``); if it should be reading, it leaves the group and
    joins again: one rebalance, nothing lost (offsets are committed only after the writes).
    """

    def __init__(self, bus: KafkaBus, group: str, topics: Sequence[str]) -> None:
        self._bus = bus
        self._group = group
        self._topics = list(topics)
        self._consumer = self._join()
        self._quiet_since = time.monotonic()
        self._unsettled = False  # the last check found the group rebalancing

    def _join(self) -> KafkaConsumer:
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self._bus.bootstrap,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
                client_id=self._bus.client_id,
                group_id=self._group,
                # records of a transaction upstream that was aborted are never triaged
                isolation_level="read_committed",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_partition_fetch_bytes=4 * 1024 * 1024,
                fetch_max_bytes=MAX_MESSAGE_BYTES * 2,
                max_poll_interval_ms=300_000,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=1_000,
            )
        except (KafkaError, OSError, ValueError) as exc:
            raise _unreachable(self._bus.bootstrap, exc) from exc
        self._rebalances = _AssignmentLog(self._group)
        consumer.subscribe(self._topics, listener=self._rebalances)
        return consumer

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        try:
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        except KafkaError as exc:
            raise TransientError(f"poll failed: {exc}") from exc
        messages = [_message(r) for records in batches.values() for r in records]
        now = time.monotonic()
        if messages:
            self._quiet_since, self._unsettled = now, False
        elif now - self._quiet_since > self._bus.stall_s:
            self._quiet_since = now
            self._rejoin_if_stalled()
        return messages

    def _rejoin_if_stalled(self) -> None:
        try:
            why = self._stalled()
        except (KafkaError, TransientError) as exc:  # the broker is away; the client reconnects
            log.debug("group %s: progress check skipped (%s)", self._group, exc)
            return
        if why is not None:
            log.warning(
                "group %s: no records for %.0fs and %s; leaving and joining again",
                self._group,
                self._bus.stall_s,
                why,
            )
            self._consumer.close(autocommit=False)
            self._consumer = self._join()

    def _stalled(self) -> str | None:
        held = self._consumer.assignment()
        if held:
            self._unsettled = False
            tps = sorted(held)
            end = self._consumer.end_offsets(tps, timeout_ms=5_000)
            waiting = 0
            for tp in tps:
                position = self._consumer.position(tp, timeout_ms=5_000)
                if position is not None:
                    waiting += max(end[tp] - position, 0)
            return f"{waiting} records wait in {_partitions(held)}" if waiting else None
        partitions = {
            TopicPartition(t, p)
            for t in self._topics
            for p in self._consumer.partitions_for_topic(t) or ()
        }
        view = self._bus.group(self._group)
        unsettled_before, self._unsettled = self._unsettled, view.state != "Stable"
        overdue = self._rebalances.waiting_s() > self._bus.stall_s
        return idle_reason(view, partitions, unsettled_before, overdue)

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

    def group_metadata(self) -> Any:
        """This member's group generation, which a transaction's offsets carry so that the
        coordinator refuses them from a member the group has since replaced (KIP-447)."""
        return self._consumer.group_metadata()

    def rewind(self, messages: Sequence[Message]) -> None:
        assigned = self._consumer.assignment()
        for (t, p), offset in first_offsets(messages).items():
            tp = TopicPartition(t, p)
            if tp in assigned:
                self._consumer.seek(tp, offset)

    def behind(self) -> int | None:
        total = 0
        try:
            for tp in self._consumer.assignment():
                high = self._consumer.highwater(tp)  # from the last fetch response: no request
                position = self._consumer.position(tp, timeout_ms=0)
                if high is None or position is None:
                    return None
                total += max(high - position, 0)
        except (KafkaError, AssertionError):  # a partition taken away meanwhile: not known
            return None
        return total

    def assignment(self) -> frozenset[tuple[str, int]] | None:
        if not self._rebalances.settled:
            return None
        return frozenset((tp.topic, tp.partition) for tp in self._consumer.assignment())

    def close(self) -> None:
        self._consumer.close(autocommit=False)
