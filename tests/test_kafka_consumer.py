"""The Kafka consumer notices when it reads nothing while records wait for it, and rejoins."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.protocol.consumer.metadata import ConsumerProtocolAssignment

from pipeline.bus.kafka import GroupView, KafkaBus, idle_reason
from tests.helpers import poll_until, wait_for

T0, T1 = TopicPartition("raw", 0), TopicPartition("raw", 1)
BOTH = frozenset({T0, T1})


SPARE = GroupView("Stable", {"a": frozenset(), "b": frozenset({T0}), "c": frozenset({T1})})


@pytest.mark.parametrize(
    ("view", "unsettled_before", "overdue", "why"),
    [
        (GroupView("Stable", {"a": frozenset(), "b": BOTH}), False, False, "member holds 2"),
        (GroupView("Stable", {"a": frozenset(), "b": frozenset({T0})}), False, False, "nobody"),
        (GroupView("Stable", {"a": frozenset(), "b": frozenset()}), False, False, "nobody"),
        (SPARE, True, False, None),
        (SPARE, False, True, "never took its share"),
        (GroupView("PreparingRebalance", {"a": frozenset(), "b": BOTH}), False, False, None),
        (GroupView("PreparingRebalance", {"a": frozenset(), "b": BOTH}), False, True, None),
        (GroupView("CompletingRebalance", {"a": frozenset()}), True, False, "rebalancing"),
        (GroupView("Empty", {}), False, False, "no live member"),
    ],
)
def test_an_idle_member_rejoins_only_when_the_group_leaves_work_unread(
    view: GroupView, unsettled_before: bool, overdue: bool, why: str | None
) -> None:
    reason = idle_reason(view, BOTH, unsettled_before, overdue)
    assert reason is None if why is None else (reason is not None and why in reason)


def produce(bus: KafkaBus, topic: str, n: int) -> None:
    producer = bus.producer()
    for i in range(n):
        producer.send(topic, f"m{i}".encode())
    producer.flush()
    producer.close()


@pytest.fixture
def bus(kafka_bootstrap: str) -> KafkaBus:
    return KafkaBus(kafka_bootstrap, partitions=2, stall_s=2)


@pytest.fixture
def names(bus: KafkaBus, unique: str) -> tuple[str, str]:
    """A fresh two-partition topic and a group name for it."""
    bus.ensure_topics([f"t-{unique}"])
    return f"t-{unique}", f"g-{unique}"


@pytest.mark.kafka
def test_a_member_whose_partitions_stopped_fetching_rejoins_and_reads_what_waits(
    bus: KafkaBus, names: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    topic, group = names
    produce(bus, topic, 10)
    consumer = bus.consumer(group, [topic])
    try:
        first = poll_until(consumer, 10)
        assert len(first) == 10
        consumer.commit(first)
        # A paused partition is one the client never fetches again: the stuck state, made here.
        stuck = consumer._consumer
        stuck.pause(*stuck.assignment())
        produce(bus, topic, 10)
        with caplog.at_level(logging.WARNING, logger="pipeline.bus.kafka"):
            later = poll_until(consumer, 10, timeout_s=60)
        assert len(later) == 10, caplog.text
        assert "10 records wait in" in caplog.text
        assert consumer._consumer is not stuck
    finally:
        consumer.close()


class Greedy(RangePartitionAssignor):
    """A leader that gives every partition to the member whose id sorts first, as one assigning
    from stale metadata might starve the others; it keeps the range protocol's name, so the
    broker lets the group use it."""

    @classmethod
    def assign(cls, cluster, members):  # type: ignore[no-untyped-def]
        topics = sorted({t for m in members for t in m.metadata.topics})
        everything = [(t, sorted(cluster.partitions_for_topic(t) or ())) for t in topics]
        first = min(m.member_id for m in members)
        return {
            m.member_id: ConsumerProtocolAssignment(
                cls.version, everything if m.member_id == first else [], b""
            )
            for m in members
        }


@pytest.mark.kafka
def test_a_member_the_group_gives_nothing_while_another_holds_all_says_so_and_rejoins(
    bus: KafkaBus, names: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    topic, group = names
    with caplog.at_level(logging.WARNING, logger="pipeline.bus.kafka"):
        # The greedy member is a plain kafka-python client, and such a client was seen to stall
        # as leader under load and drop out of the group: then it is started again, as that is
        # not what is tested here.
        outcomes = []
        for _ in range(3):
            outcomes.append(starved_member_speaks_up(bus, topic, group, caplog))
            if outcomes[-1] != "greedy member dropped out":
                break
    assert outcomes[-1] == "said so and rejoined", outcomes
    assert "it holds no partition while another member holds 2" in caplog.text


@pytest.mark.kafka
def test_a_member_whose_client_missed_the_share_the_broker_gave_it_rejoins(
    bus: KafkaBus, names: tuple[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    topic, group = names
    # Two plain members take a partition each (their client ids sort before the worker's, so
    # the range assignor gives them the partitions); the worker's consumer is the spare third.
    members = [PlainMember(bus, topic, group, name) for name in ("a-first", "b-second")]
    consumer = None
    try:
        wait_for(lambda: _held(bus, group) == {"a-first": 1, "b-second": 1}, 60, "two members")
        consumer = bus.consumer(group, [topic])
        wait_for(
            lambda: consumer.poll(10, 0.2) == [] and consumer.assignment() == frozenset(),
            60,
            "the spare member settled with nothing",
        )
        joined = consumer._consumer
        with caplog.at_level(logging.WARNING, logger="pipeline.bus.kafka"):
            # A spare member in a settled group has nothing to say for two stall times.
            deadline = time.monotonic() + 2.5 * bus.stall_s
            while time.monotonic() < deadline:
                consumer.poll(10, 0.2)
            assert consumer._consumer is joined, caplog.text
            # The stuck client, made here: its listener heard a rebalance begin and never end,
            # as that of the worker seen here whose client missed its SyncGroup answer.
            consumer._rebalances.on_partitions_revoked(set())
            deadline = time.monotonic() + 30
            while consumer._consumer is joined and time.monotonic() < deadline:
                consumer.poll(10, 0.2)
        assert consumer._consumer is not joined, caplog.text
        assert "never took its share" in caplog.text
    finally:
        if consumer is not None:
            consumer.close()
        for member in members:
            member.stop()


def starved_member_speaks_up(
    bus: KafkaBus, topic: str, group: str, caplog: pytest.LogCaptureFixture
) -> str:
    member = PlainMember(bus, topic, group, "a-greedy", Greedy)
    consumer = None
    try:
        wait_for(lambda: _held(bus, group) == {"a-greedy": 2}, 60, "the greedy member holding all")
        consumer = bus.consumer(group, [topic])
        starved = consumer._consumer
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            consumer.poll(10, 0.5)
            if "holds no partition" in caplog.text and consumer._consumer is not starved:
                return "said so and rejoined"
            if "a-greedy" not in _held(bus, group, stable_only=False):
                return "greedy member dropped out"
        return "silent"
    finally:
        if consumer is not None:
            consumer.close()
        member.stop()


class PlainMember:
    """A plain kafka-python group member polling in a thread. Its member id begins with its
    client id, so ``client_id`` decides where it sorts among the members (the worker's begin
    with "triage-")."""

    def __init__(
        self,
        bus: KafkaBus,
        topic: str,
        group: str,
        client_id: str,
        assignor: type[RangePartitionAssignor] = RangePartitionAssignor,
    ) -> None:
        self.consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bus.bootstrap,
            client_id=client_id,
            group_id=group,
            enable_auto_commit=False,
            partition_assignment_strategy=[assignor],
            heartbeat_interval_ms=1_000,
        )
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.done.is_set():
            self.consumer.poll(timeout_ms=200)

    def stop(self) -> None:
        self.done.set()
        self.thread.join(10)
        self.consumer.close(autocommit=False)


def _held(bus: KafkaBus, group: str, stable_only: bool = True) -> dict[str, int]:
    """How many partitions each member holds, by client id ('a-greedy', 'triage')."""
    view = bus.group(group)
    if stable_only and view.state != "Stable":
        return {}
    return {member.rsplit("-", 5)[0]: len(tps) for member, tps in view.members.items()}
