"""Trends over the whole stream on real Kafka: two worker processes, each reading one partition,
detect a spike spread over both once, at the minute one worker reading every post (one
partition, so in time order, as one process seeing the whole stream) detects it."""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from kafka import KafkaConsumer
from kafka.partitioner import murmur2

from pipeline.records import Author, Post
from pipeline.trends.detector import Trend
from tests.helpers import wait_for
from tests.pipeline_runs import Deployment, agreed_shares
from tests.test_trends import WORDS

pytestmark = [pytest.mark.kafka, pytest.mark.mongo, pytest.mark.slow]

START = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=7)
SPIKE_AT = 4 * 60  # minutes after START


def post(n: int, minute: int, text: str, rng: random.Random) -> Post:
    return Post(
        source="test",
        native_id=str(n),
        author=Author(id=f"u{rng.randrange(400)}"),
        text=text,
        created_at=START + timedelta(minutes=minute, seconds=rng.randrange(60)),
    )


def stream() -> list[Post]:
    """Four and a half quiet hours (four posts a minute), a 16-minute spike of one hashtag
    (six more a minute), and the quiet going on for half an hour after it."""
    rng = random.Random(11)
    posts: list[Post] = []
    for m in range(SPIKE_AT + 46):
        for _ in range(4):
            posts.append(post(len(posts), m, " ".join(rng.choice(WORDS) for _ in range(8)), rng))
        if SPIKE_AT <= m < SPIKE_AT + 16:
            for _ in range(6):
                text = f"the acme app is down again #acmeblackout cannot pay {rng.choice(WORDS)}"
                posts.append(post(len(posts), m, text, rng))
    return posts


class Steady(Deployment):
    """A deployment whose workers keep their partitions on a loaded machine: a worker slow to
    poll rejoins the group only after two minutes (the default test deployment: 5 s), so each
    reads one partition, in time order, from start to end."""

    @property
    def env(self) -> dict[str, str]:
        return {**super().env, "TRIAGE_KAFKA_STALL_S": "120"}


def partition_of(post_id: str, partitions: int = 2) -> int:
    """The partition Kafka's default partitioner gives the key (murmur2)."""
    return (murmur2(post_id.encode()) & 0x7FFFFFFF) % partitions


@pytest.fixture
def deployments(kafka_bootstrap: str, mongo_uri: str) -> Iterator[list[Deployment]]:
    made: list[Deployment] = []
    yield made
    for d in made:
        d.stop_all()
        d.drop()


def run(
    made: list[Deployment], kafka: str, mongo: str, workers: int, monkeypatch: pytest.MonkeyPatch
) -> list[Trend]:
    """Every alert published for the stream by ``workers`` workers, one partition each (the
    workers make the topics, with ``TRIAGE_PARTITIONS``), in order."""
    monkeypatch.setenv("TRIAGE_PARTITIONS", str(workers))
    d = Steady(kafka, mongo, uuid.uuid4().hex[:10], batch_size=200)
    made.append(d)
    for _ in range(workers):
        # A worker's idle clock runs only while it holds its share of the partitions: start-up
        # and the group's forming (over a minute on a machine busy with the rest of the suite)
        # do not count. So the idle exit need only outlast the pauses in the stream, the
        # longest being the wait for the first batches before the rest is sent; each run
        # waits this long after its last post.
        d.start_worker("--idle-exit", "30")
    want = [[k] for k in range(workers)]
    wait_for(lambda: agreed_shares(d) == want, 180, f"{workers} workers sharing the partitions")
    posts = stream()
    producer = d.bus().producer()
    # One post for each partition first: a worker is waited for from its first batch on, so
    # the first to start does not close minutes before the other has counted them.
    firsts = [next(p for p in posts if partition_of(p.id, workers) == k) for k in range(workers)]
    for p in firsts:
        producer.send(f"raw.{d.name}", p.model_dump_json().encode(), key=p.id.encode())
    producer.flush()
    store = d.store()
    try:
        wait_for(
            lambda: len(store.find_records("trend_progress")) == workers, 120, "first batches"
        )
    except AssertionError as exc:  # what the workers said is the finding
        logs = "\n".join(d.output(w)[-3000:] for w in d.workers)
        raise AssertionError(f"{exc}; progress {store.find_records('trend_progress')}; "
                             f"workers' logs:\n{logs}") from exc
    finally:
        store.close()
    for p in posts:
        if p not in firsts:
            producer.send(f"raw.{d.name}", p.model_dump_json().encode(), key=p.id.encode())
    producer.flush()
    producer.close()
    outputs = d.wait_for_exit(timeout_s=420)
    assert all("Traceback" not in o for o in outputs), outputs
    triaged = sum(int(n) for o in outputs for n in re.findall(r"worker: (\d+) posts triaged", o))
    assert triaged == len(posts), outputs  # every post read before the workers went idle
    consumer = KafkaConsumer(
        f"alerts.{d.name}",
        bootstrap_servers=kafka,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    try:
        alerts = [Trend.model_validate_json(m.value) for m in consumer]
    finally:
        consumer.close()
    return sorted(alerts, key=lambda t: (t.updated_at, t.id))


def opened(alerts: list[Trend]) -> list[tuple[str, str, datetime]]:
    """The alerts that announced a new trend (a trend's later versions grow or change it)."""
    return [(a.id, a.what, a.detected_at) for a in alerts if a.updated_at == a.detected_at
            and not a.related]


def test_a_spike_over_two_partitions_is_detected_once_at_the_minute_one_worker_does(
    deployments: list[Deployment],
    kafka_bootstrap: str,
    mongo_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spike = [p for p in stream() if "#acmeblackout" in p.text]
    assert {partition_of(p.id) for p in spike} == {0, 1}  # spread over both partitions
    one = opened(run(deployments, kafka_bootstrap, mongo_uri, 1, monkeypatch))
    two = opened(run(deployments, kafka_bootstrap, mongo_uri, 2, monkeypatch))
    assert len(one) == 1, one  # the spike, and nothing else
    # Two workers open the same trend at the same minute, once. (They may also alert on a
    # facet of the spike that one worker joins to it, a phrase of its posts: the lease
    # holder's post samples, which decide joins, are of its own partition; docs/trends.md.)
    assert two[0] == one[0], two
    assert [t for t in two if t[1] == one[0][1]] == one[:1]
    (_, what, detected), = one
    assert what in {"#acmeblackout", "acmeblackout"}, what
    assert START + timedelta(minutes=SPIKE_AT) < detected <= START + timedelta(
        minutes=SPIKE_AT + 16
    )
