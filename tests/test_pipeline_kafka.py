"""End to end on the real services: Kafka (2 partitions, 2 workers in one group) into FerretDB."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from pipeline.records import DeadLetter
from tests.helpers import post_bytes, wait_for
from tests.pipeline_runs import (
    Deployment,
    agreed_shares,
    committed,
    describe_group,
    ids_where,
    stored,
)

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.slow]

MALFORMED = [
    b"{not json",
    b'{"source": "x", "native_id": "1"}',
    b"\xc3\x28 bad utf-8",
    b'{"source": "test", "native_id": "n", "author": {"id": "a"}, "text": "",'
    b' "created_at": "2026-11-01T00:00:00Z"}',
]


@pytest.fixture
def deployment(kafka_bootstrap: str, mongo_uri: str, unique: str) -> Iterator[Deployment]:
    d = Deployment(kafka_bootstrap, mongo_uri, unique)
    yield d
    d.stop_all()
    d.drop()


def test_ten_thousand_posts_through_two_workers_land_exactly_once(deployment: Deployment) -> None:
    n = 10_000
    values = [post_bytes(i) for i in range(n)]
    for k, bad in enumerate(MALFORMED * 5):
        values.insert(k * 1999 % len(values), bad)
    # Each worker holds a partition before the first post: a worker that starts faster could
    # otherwise triage all 10,000 alone before the other has joined. A worker the group left
    # with nothing while the other held both (seen in runs here) rejoins after 5 s of it. Both
    # the broker and each worker's own client are asked (``agreed_shares``): under load the
    # broker once counted a worker as the holder of a partition its client never took, and the
    # other worker had triaged everything by the time the group dropped it.
    deployment.produce([])
    workers = [deployment.start_worker(), deployment.start_worker()]
    wait_for(lambda: agreed_shares(deployment) == [[0], [1]], 180, "each worker on a partition")
    at_start = describe_group(deployment)
    deployment.produce(values)
    wait_for(lambda: stored(deployment) >= n, 420, f"{n} posts stored")
    at_end = describe_group(deployment)
    outputs = [deployment.stop(w) for w in workers]
    store = deployment.store()
    bus = deployment.bus()

    post_ids = store.post_ids()
    assert len(post_ids) == n and set(post_ids) == {f"test:{i}" for i in range(n)}
    queue_ids = store.queue_ids()
    non_spam = set(ids_where(store, "posts", {"is_spam": False}))
    assert len(queue_ids) == len(set(queue_ids)) and set(queue_ids) == non_spam
    assert 0 < len(non_spam) < n
    letters = [
        DeadLetter.model_validate_json(m.value) for m in bus.read_all(f"dlq.{deployment.name}")
    ]
    assert len(letters) == 20
    assert all(d.reason.startswith(("invalid post", "not UTF-8")) for d in letters), letters
    # both workers took a share of the partitions
    triaged = [
        int(m.group(1))
        for out in outputs
        for m in [re.search(r"worker: (\d+) posts triaged", out)]
        if m
    ]
    # why not, if not: the group before and after (member ids and partitions), and how the
    # posts were spread over the partitions
    why = (outputs, at_start, at_end, committed(deployment))
    assert len(triaged) == 2 and all(t > 0 for t in triaged), why
    assert sum(triaged) >= n
    store.close()
