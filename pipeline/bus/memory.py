"""The in-process bus: Kafka's semantics in memory, for the demo and single-machine runs."""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pipeline.bus.interface import Consumer, Headers, Message, first_offsets, next_offsets
from pipeline.errors import TransientError


def partition_for(key: bytes | None, partitions: int, counter: itertools.count) -> int:
    if key is None:
        return next(counter) % partitions
    return zlib.crc32(key) % partitions




@dataclass
class _Group:
    members: list[InProcessConsumer] = field(default_factory=list)
    committed: dict[tuple[str, int], int] = field(default_factory=dict)


class InProcessBus:
    """Partitioned, offset-tracking topics in memory, with consumer groups that share partitions.

    It behaves like Kafka where the worker can tell: per-partition order, committed offsets per
    group, redelivery of what was not committed, and partitions split among a group's members.
    """

    def __init__(self, partitions: int = 2) -> None:
        self.partitions = partitions
        self._cond = threading.Condition()
        self._topics: dict[str, list[list[Message]]] = {}
        self._groups: dict[str, _Group] = {}
        self._rr = itertools.count()

    def ensure_topics(self, names: Iterable[str]) -> None:
        with self._cond:
            for name in names:
                self._topics.setdefault(name, [[] for _ in range(self.partitions)])

    def producer(self, transactional_id: str | None = None) -> InProcessProducer:
        """Transactions are meaningless in memory (see InProcessProducer.commit_transaction)."""
        return InProcessProducer(self)

    def consumer(self, group: str, topics: Sequence[str]) -> InProcessConsumer:
        self.ensure_topics(topics)
        consumer = InProcessConsumer(self, group, tuple(topics))
        with self._cond:
            self._groups.setdefault(group, _Group()).members.append(consumer)
            self._rebalance(group)
        return consumer

    def read_all(self, topic: str, timeout_s: float = 5.0) -> list[Message]:
        with self._cond:
            return [m for part in self._topics.get(topic, []) for m in part]

    def lag(self, group: str, topic: str) -> dict[int, int]:
        with self._cond:
            committed = self._groups[group].committed if group in self._groups else {}
            parts = self._topics.get(topic, [])
            return {p: len(part) - committed.get((topic, p), 0) for p, part in enumerate(parts)}

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- used by the producer and consumers, always under the lock
    def _append(self, topic: str, value: bytes, key: bytes | None, headers: Headers) -> None:
        with self._cond:
            parts = self._topics.setdefault(topic, [[] for _ in range(self.partitions)])
            p = partition_for(key, len(parts), self._rr)
            now_ms = int(time.time() * 1000)
            parts[p].append(Message(topic, p, len(parts[p]), key, value, now_ms, headers))
            self._cond.notify_all()

    def _rebalance(self, group: str) -> None:
        g = self._groups[group]
        for i, member in enumerate(g.members):
            member._assignment = {
                (t, p)
                for t in member.topics
                for p in range(len(self._topics[t]))
                if p % len(g.members) == i
            }
            member._positions = {tp: g.committed.get(tp, 0) for tp in member._assignment}

    def _leave(self, consumer: InProcessConsumer) -> None:
        with self._cond:
            g = self._groups[consumer.group]
            if consumer in g.members:
                g.members.remove(consumer)
                self._rebalance(consumer.group)


class InProcessProducer:
    transactional = False

    def __init__(self, bus: InProcessBus) -> None:
        self._bus = bus

    def send(
        self, topic: str, value: bytes, key: bytes | None = None, headers: Headers = ()
    ) -> None:
        self._bus._append(topic, value, key, headers)

    def flush(self) -> None:
        """Sends are synchronous in memory: nothing is ever outstanding."""

    def commit_transaction(self, consumer: Consumer, messages: Sequence[Message]) -> None:
        """No transactions in memory: the bus dies with the process that reads it, so a batch's
        sends and its offsets cannot be seen apart by anyone else."""
        consumer.commit(messages)

    def abort(self) -> None:
        """Nothing to undo: see commit_transaction."""

    def close(self) -> None:
        """Nothing to release."""


class InProcessConsumer:
    def __init__(self, bus: InProcessBus, group: str, topics: tuple[str, ...]) -> None:
        self._bus = bus
        self.group = group
        self.topics = topics
        self._assignment: set[tuple[str, int]] = set()
        self._positions: dict[tuple[str, int], int] = {}
        self._closed = False

    def poll(self, max_records: int, timeout_s: float) -> list[Message]:
        deadline = time.monotonic() + timeout_s
        with self._bus._cond:
            while True:
                if self._closed:
                    raise TransientError("consumer is closed")
                out: list[Message] = []
                for tp in sorted(self._assignment):
                    log = self._bus._topics[tp[0]][tp[1]]
                    pos = self._positions[tp]
                    take = log[pos : pos + max_records - len(out)]
                    out.extend(take)
                    self._positions[tp] = pos + len(take)
                    if len(out) >= max_records:
                        break
                left = deadline - time.monotonic()
                if out or left <= 0:
                    return out
                self._bus._cond.wait(left)

    def commit(self, messages: Sequence[Message]) -> None:
        with self._bus._cond:
            group = self._bus._groups[self.group]
            for tp, offset in next_offsets(messages).items():
                if tp not in self._assignment:
                    raise TransientError(f"partition {tp} was reassigned before commit")
                group.committed[tp] = max(group.committed.get(tp, 0), offset)

    def rewind(self, messages: Sequence[Message]) -> None:
        with self._bus._cond:
            for tp, offset in first_offsets(messages).items():
                if tp in self._assignment:
                    self._positions[tp] = min(self._positions[tp], offset)

    def behind(self) -> int | None:
        with self._bus._cond:
            return sum(
                len(self._bus._topics[t][p]) - pos for (t, p), pos in self._positions.items()
            )

    def assignment(self) -> frozenset[tuple[str, int]] | None:
        """Never None: a group in memory rebalances at once, under the lock."""
        with self._bus._cond:
            return frozenset(self._assignment)

    def close(self) -> None:
        self._closed = True
        self._bus._leave(self)
