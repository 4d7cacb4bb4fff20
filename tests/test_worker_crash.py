"""A worker killed with SIGKILL mid-batch, again and again through a 20,000-post run, loses
nothing and queues nothing twice."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.helpers import post_bytes, wait_for
from tests.pipeline_runs import Deployment, ids_where

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.faults, pytest.mark.slow]


@pytest.fixture
def deployment(kafka_bootstrap: str, mongo_uri: str, unique: str) -> Iterator[Deployment]:
    d = Deployment(kafka_bootstrap, mongo_uri, unique, batch_size=500)
    yield d
    d.stop_all()
    d.drop()


def test_sigkill_mid_run_then_restart_stores_every_post_once(deployment: Deployment) -> None:
    n = 20_000
    deployment.produce([post_bytes(i) for i in range(n)])
    for threshold in (1_000, 6_000, 11_000):
        worker = deployment.start_worker()
        wait_for(lambda t=threshold: deployment.triaged_count() >= t, 300, f"{threshold} triaged")
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert worker.returncode == -signal.SIGKILL
        assert deployment.triaged_count() < n, "the worker finished before it could be killed"
    deployment.workers.clear()
    deployment.start_worker("--idle-exit", "15")
    deployment.wait_for_exit(timeout_s=300)
    store = deployment.store()

    post_ids = store.post_ids()
    assert len(post_ids) == n and set(post_ids) == {f"test:{i}" for i in range(n)}
    queue_ids = store.queue_ids()
    assert len(queue_ids) == len(set(queue_ids))
    assert set(queue_ids) == set(ids_where(store, "posts", {"is_spam": False}))
    store.close()
