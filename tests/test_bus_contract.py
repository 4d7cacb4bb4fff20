"""One contract, two buses: the in-process bus must behave like Kafka where the worker can tell."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from pipeline.bus.interface import Bus
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.memory import InProcessBus
from tests.helpers import poll_until


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request: pytest.FixtureRequest) -> Iterator[Bus]:
    if request.param == "memory":
        yield InProcessBus(partitions=2)
    else:
        yield KafkaBus(request.getfixturevalue("kafka_bootstrap"), partitions=2)


def produce(bus: Bus, topic: str, n: int, prefix: str = "m") -> None:
    producer = bus.producer()
    for i in range(n):
        producer.send(topic, f"{prefix}{i}".encode(), key=f"k{i}".encode())
    producer.flush()
    producer.close()


def test_everything_sent_is_received_once_in_partition_order(bus: Bus, unique: str) -> None:
    topic = f"t-{unique}"
    bus.ensure_topics([topic])
    produce(bus, topic, 200)
    consumer = bus.consumer(f"g-{unique}", [topic])
    got = poll_until(consumer, 200)
    consumer.close()
    assert sorted(m.value for m in got) == sorted(f"m{i}".encode() for i in range(200))
    assert {m.partition for m in got} == {0, 1}
    for p in (0, 1):
        offsets = [m.offset for m in got if m.partition == p]
        assert offsets == sorted(offsets)


def test_same_key_always_lands_on_the_same_partition(bus: Bus, unique: str) -> None:
    topic = f"t-{unique}"
    bus.ensure_topics([topic])
    producer = bus.producer()
    for i in range(20):
        producer.send(topic, f"v{i}".encode(), key=b"same-post")
    producer.flush()
    got = poll_until(bus.consumer(f"g-{unique}", [topic]), 20)
    assert len({m.partition for m in got}) == 1


def test_a_group_resumes_after_its_committed_offsets(bus: Bus, unique: str) -> None:
    topic, group = f"t-{unique}", f"g-{unique}"
    bus.ensure_topics([topic])
    produce(bus, topic, 50)
    first = bus.consumer(group, [topic])
    got = poll_until(first, 50)
    assert len(got) == 50
    first.commit(got)
    first.close()
    produce(bus, topic, 10, prefix="late")
    second = bus.consumer(group, [topic])
    later = poll_until(second, 10)
    assert sorted(m.value for m in later) == sorted(f"late{i}".encode() for i in range(10))
    assert poll_until(second, 1, timeout_s=2) == []
    second.close()


def test_uncommitted_messages_are_delivered_again(bus: Bus, unique: str) -> None:
    topic, group = f"t-{unique}", f"g-{unique}"
    bus.ensure_topics([topic])
    produce(bus, topic, 30)
    first = bus.consumer(group, [topic])
    assert len(poll_until(first, 30)) == 30
    first.close()  # crashed before committing
    again = poll_until(bus.consumer(group, [topic]), 30)
    assert sorted(m.value for m in again) == sorted(f"m{i}".encode() for i in range(30))


def test_rewind_replays_a_batch(bus: Bus, unique: str) -> None:
    topic = f"t-{unique}"
    bus.ensure_topics([topic])
    produce(bus, topic, 40)
    consumer = bus.consumer(f"g-{unique}", [topic])
    batch = poll_until(consumer, 40)
    consumer.rewind(batch)
    replay = poll_until(consumer, 40)
    assert sorted(m.value for m in replay) == sorted(m.value for m in batch)


def test_read_all_returns_the_whole_topic(bus: Bus, unique: str) -> None:
    topic = f"t-{unique}"
    bus.ensure_topics([topic])
    produce(bus, topic, 25)
    assert sorted(m.value for m in bus.read_all(topic)) == sorted(
        f"m{i}".encode() for i in range(25)
    )


def test_each_member_knows_its_settled_share_even_when_it_is_none(bus: Bus, unique: str) -> None:
    """Three members, two partitions: once the group settles, the partitions are split between
    two of them and the third holds an empty share, which is not the None of a member still
    joining (the worker's idle clock runs on the one, not the other)."""
    topic, group = f"t-{unique}", f"g-{unique}"
    bus.ensure_topics([topic])
    members = [bus.consumer(group, [topic]) for _ in range(3)]
    everything = {(topic, 0), (topic, 1)}
    settled: list[frozenset[tuple[str, int]]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for m in members:  # a Kafka member joins and rebalances in its polls
            m.poll(10, timeout_s=0.2)
        settled = [s for s in (m.assignment() for m in members) if s is not None]
        if len(settled) == 3 and frozenset().union(*settled) == everything:
            break
    for m in members:
        m.close()
    assert len(settled) == 3 and frozenset().union(*settled) == everything, settled
    assert sorted(map(len, settled)) == [0, 1, 1], settled
