"""Real outages during a run: the broker or the store stops and comes back on the same port with
the same data, and a worker joins and leaves the group. Nothing is lost, nothing queued twice, and
nobody has to restart anything by hand."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import post_bytes, wait_for
from tests.pipeline_runs import (
    Deployment,
    committed,
    group_members,
    ids_where,
    service,
    stored,
)

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.faults, pytest.mark.slow]


@pytest.fixture
def deployment(kafka_bootstrap: str, mongo_uri: str, unique: str) -> Iterator[Deployment]:
    d = Deployment(kafka_bootstrap, mongo_uri, unique, batch_size=200)
    yield d
    for out in d.stop_all():  # shown by pytest when the test failed: what the workers said
        print(out[-4000:])
    d.drop()


def assert_each_post_once(deployment: Deployment, n: int) -> None:
    store = deployment.store()
    try:
        post_ids = store.post_ids()
        assert len(post_ids) == n and set(post_ids) == {f"test:{i}" for i in range(n)}
        queue_ids = store.queue_ids()
        assert len(queue_ids) == len(set(queue_ids))
        assert set(queue_ids) == set(ids_where(store, "posts", {"is_spam": False}))
    finally:
        store.close()


class Feeder(threading.Thread):
    """Keeps posts coming, so a run lasts as long as the test needs whatever the machine's load."""

    def __init__(self, deployment: Deployment, chunk: int = 100, every_s: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.deployment, self.chunk, self.every_s = deployment, chunk, every_s
        self.sent = 0
        self.done = threading.Event()

    def run(self) -> None:
        bus = self.deployment.bus()
        producer = bus.producer()
        while not self.done.is_set():
            for i in range(self.sent, self.sent + self.chunk):
                producer.send(f"raw.{self.deployment.name}", post_bytes(i))
            producer.flush()
            self.sent += self.chunk
            self.done.wait(self.every_s)
        producer.close()

    def finish(self) -> int:
        self.done.set()
        self.join(120)
        return self.sent


def test_kafka_outage_of_30s_loses_nothing(deployment: Deployment, tmp_path: Path) -> None:
    """A replay connector and a worker run through a 30 s broker outage and resume by
    themselves; every post lands once."""
    n = 2400
    feed = tmp_path / "posts.jsonl"
    feed.write_bytes(b"\n".join(post_bytes(i) for i in range(n)) + b"\n")
    worker = deployment.start_worker()
    # 40 posts a second (the posts are a second apart): the replay spans the whole outage.
    replay = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "connect", "replay", str(feed), "--speed", "40"],
        env=deployment.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for(lambda: stored(deployment) >= 200, 180, "the first posts stored")
        service("stop", "kafka")
        time.sleep(30)
        assert replay.poll() is None, "the connector gave up during the outage"
        assert worker.poll() is None, "the worker gave up during the outage"
        service("start", "kafka")
        out, _ = replay.communicate(timeout=240)
        assert replay.returncode == 0, out[-2000:]
        wait_for(lambda: stored(deployment) >= n, 240, f"{n} posts stored after the outage")
    finally:
        if replay.poll() is None:
            replay.kill()
            print(replay.communicate()[0][-4000:])  # shown by pytest when the test failed
    deployment.stop(worker)
    assert_each_post_once(deployment, n)


def test_store_outage_pauses_without_committing_and_resumes(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posts keep arriving through a 28 s store outage, so the worker has work it cannot write
    whatever its speed: it must hold its offsets, pause, and replay once the store is back."""
    # Two retries (about 11 s against a dead server) are fewer than the outage lasts, so the
    # worker must also give the batch back, pause and replay it.
    monkeypatch.setenv("TRIAGE_WRITE_RETRIES", "2")
    deployment.produce([])
    worker = deployment.start_worker()
    feeder = Feeder(deployment)
    feeder.start()
    try:
        wait_for(lambda: stored(deployment) >= 400, 180, "the first posts stored")
        service("stop", "ferretdb")
        try:
            time.sleep(8)  # a batch in flight when the store went may still commit
            before, sent = committed(deployment), feeder.sent
            time.sleep(20)
            assert committed(deployment) == before, "offsets moved while the store was down"
            assert worker.poll() is None, "the worker gave up during the outage"
            assert feeder.sent > sent, "no posts arrived during the outage"
        finally:
            service("start", "ferretdb")
    finally:
        n = feeder.finish()
    wait_for(lambda: stored(deployment) >= n, 240, f"{n} posts stored after the outage")
    out = deployment.stop(worker)
    assert "store write failed" in out and "pausing" in out, out[-2000:]
    assert sum(committed(deployment).values()) == n
    assert_each_post_once(deployment, n)


def test_a_worker_joining_and_leaving_loses_and_doubles_nothing(deployment: Deployment) -> None:
    deployment.produce([])
    first = deployment.start_worker()
    feeder = Feeder(deployment)
    feeder.start()
    wait_for(lambda: stored(deployment) >= 300, 180, "the first posts stored")
    second = deployment.start_worker()
    wait_for(lambda: group_members(deployment) == 2, 180, "the second worker in the group")
    at_join = stored(deployment)
    wait_for(lambda: stored(deployment) >= at_join + 600, 180, "progress with two workers")
    out = deployment.stop(second)
    triaged = re.search(r"worker: (\d+) posts triaged", out)
    assert triaged and int(triaged.group(1)) > 0, "the newcomer never worked a partition"
    wait_for(lambda: group_members(deployment) == 1, 60, "the second worker gone")
    at_leave = stored(deployment)
    wait_for(lambda: stored(deployment) >= at_leave + 300, 180, "progress after it left")
    n = feeder.finish()
    wait_for(lambda: stored(deployment) >= n, 240, f"{n} posts stored")
    deployment.stop(first)
    assert sum(committed(deployment).values()) == n
    assert_each_post_once(deployment, n)
