"""The queue's rules on both stores: only the holder acts, leases expire, everything is audited."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from classifiers.triager import Triager
from pipeline.queue.agent_queue import AgentQueue, LeaseExpired, NotHolder, QueueError, UnknownItem
from pipeline.store.interface import Store
from tests.helpers import make_post

START = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(store: Store, triager: Triager, clock: Clock) -> AgentQueue:
    store.write_batch(triager.triage([make_post(i) for i in range(12)], START))
    return AgentQueue(store, lease=timedelta(minutes=10), clock=clock)


def test_claim_extend_resolve_is_audited(queue: AgentQueue, store: Store, clock: Clock) -> None:
    item = queue.claim_next("ann")
    assert item is not None and item.agent == "ann"
    clock.now += timedelta(minutes=8)
    extended = queue.extend(item.id, "ann")
    assert extended.lease_until == clock.now + timedelta(minutes=10)
    clock.now += timedelta(minutes=8)  # past the first lease, inside the extended one
    done = queue.resolve(item.id, "ann", "Sorry about that: a replacement ships today.")
    assert done.status == "resolved" and done.resolution is not None
    assert done.resolution.by == "ann" and done.version == item.version + 2
    # claim, extend, resolve, and the two SLA targets missed (the post is a day old)
    assert store.count("audit") == 5
    assert done.sla_breaches == ["first_response", "resolution"]
    following = queue.claim_next("bob")
    assert following is not None and following.id != item.id


def test_only_the_holder_acts_and_unknown_items_are_404(queue: AgentQueue) -> None:
    item = queue.claim_next("ann")
    assert item is not None
    with pytest.raises(NotHolder, match=r"bob does not hold .*held by ann"):
        queue.resolve(item.id, "bob", "hi")
    with pytest.raises(UnknownItem) as exc:
        queue.release("test:nope", "ann")
    assert exc.value.status == 404
    with pytest.raises(QueueError, match="needs the reply"):
        queue.resolve(item.id, "ann", "   ")


def test_an_expired_lease_returns_the_item_and_refuses_the_old_holder(
    queue: AgentQueue, clock: Clock
) -> None:
    item = queue.claim_next("ann")
    assert item is not None
    clock.now += timedelta(minutes=11)
    with pytest.raises(LeaseExpired):
        queue.resolve(item.id, "ann", "too late")
    again = queue.claim_next("bob")
    assert again is not None and again.id == item.id and again.agent == "bob"
    assert again.post_created_at == item.post_created_at  # the SLA clock is intact


def test_release_and_snooze(queue: AgentQueue, clock: Clock) -> None:
    item = queue.claim_next("ann")
    assert item is not None
    released = queue.release(item.id, "ann", "wrong language for me")
    assert released.status == "open" and released.agent is None
    again = queue.claim_next("bob")
    assert again is not None and again.id == item.id
    queue.snooze(item.id, "bob", clock.now + timedelta(hours=1))
    others = [queue.claim_next(f"a{i}") for i in range(20)]
    assert item.id not in {o.id for o in others if o is not None}
    clock.now += timedelta(hours=2)
    back = queue.claim_next("cy")
    assert back is not None and back.id == item.id  # the snooze is over


def test_concurrent_actions_on_one_item_have_one_winner(queue: AgentQueue, clock: Clock) -> None:
    item = queue.claim_next("ann")
    assert item is not None
    clock.now += timedelta(minutes=9)
    results: list[str] = []

    def act(name: str, action: str) -> None:
        try:
            if action == "resolve":
                queue.resolve(item.id, "ann", "done")
            else:
                queue.release(item.id, "ann")
            results.append(action)
        except NotHolder:
            results.append("refused")

    threads = [
        threading.Thread(target=act, args=(f"t{i}", ("resolve", "release")[i % 2]))
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("refused") == 7
