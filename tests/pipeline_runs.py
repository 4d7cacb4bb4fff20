"""Run real worker processes against the real services, as an operator would."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from pipeline.bus.kafka import KafkaBus
from pipeline.bus.topics import pipeline_topics
from pipeline.errors import TransientError
from pipeline.settings import Settings
from pipeline.store.mongo import MongoStore


@dataclass
class Deployment:
    """One isolated deployment: its own topics, consumer group and database."""

    kafka: str
    mongo: str
    name: str
    batch_size: int = 500
    workers: list[subprocess.Popen[str]] = field(default_factory=list)
    # Each worker writes to a file, not a pipe: a pipe nobody reads until the end fills up after
    # 64 KiB, and a worker blocked on a log line looks exactly like one that gets no posts.
    logs: dict[subprocess.Popen[str], Path] = field(default_factory=dict)
    log_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="workers-")))

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "TRIAGE_KAFKA_BOOTSTRAP": self.kafka,
                "TRIAGE_MONGO_URI": self.mongo,
                "TRIAGE_MONGO_DATABASE": f"db_{self.name}",
                "TRIAGE_TOPIC_RAW": f"raw.{self.name}",
                "TRIAGE_TOPIC_TRIAGED": f"triaged.{self.name}",
                "TRIAGE_TOPIC_DLQ": f"dlq.{self.name}",
                "TRIAGE_TOPIC_ALERTS": f"alerts.{self.name}",
                "TRIAGE_TOPIC_SPAM": f"spam.{self.name}",
                "TRIAGE_CONSUMER_GROUP": f"workers.{self.name}",
                "TRIAGE_BATCH_SIZE": str(self.batch_size),
                "TRIAGE_BATCH_WAIT_MS": "100",
                "TRIAGE_PAUSE_S": "1",
                "TRIAGE_RETRY_BACKOFF_S": "0.2",
                "TRIAGE_KAFKA_STALL_S": "5",
            }
        )
        # what the Kafka client saw goes into the output a failed test shows
        env.setdefault("TRIAGE_KAFKA_LOG_LEVEL", "WARNING")
        return env

    def bus(self) -> KafkaBus:
        """A bus that makes the deployment's topics as its workers do (pipeline/bus/topics.py)."""
        names = {k: v for k, v in self.env.items() if k.startswith("TRIAGE_TOPIC_")}
        settings = Settings(**{k.removeprefix("TRIAGE_").lower(): v for k, v in names.items()})
        return KafkaBus(self.kafka, partitions=2, topics=pipeline_topics(settings))

    def store(self) -> MongoStore:
        return MongoStore(self.mongo, f"db_{self.name}")

    def produce(self, values: list[bytes]) -> None:
        bus = self.bus()
        bus.ensure_topics(
            [f"raw.{self.name}", f"dlq.{self.name}", f"triaged.{self.name}", f"spam.{self.name}"]
        )
        producer = bus.producer()
        for v in values:
            producer.send(f"raw.{self.name}", v)
        producer.flush()
        producer.close()

    def start_worker(self, *args: str) -> subprocess.Popen[str]:
        log = self.log_dir / f"worker-{len(self.logs)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pipeline", "worker", *args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.logs[proc] = log
        self.workers.append(proc)
        return proc

    def output(self, proc: subprocess.Popen[str]) -> str:
        """What the worker has written so far."""
        return self.logs[proc].read_text(errors="replace")

    def reading(self, proc: subprocess.Popen[str]) -> list[int]:
        """The raw-topic partitions the worker's own client last said it reads (none while a
        rebalance it has begun is not over): the broker's view (``shares``) can count a member
        as holding a partition its client never took."""
        said = re.findall(r"group \S+: (reading|gave back) (.*)", self.output(proc))
        if not said or said[-1][0] != "reading":
            return []
        raw = re.escape(f"raw.{self.name}")
        return [int(p) for p in re.findall(rf"{raw}\[(\d+)\]", said[-1][1])]

    def triaged_count(self) -> int:
        """Posts published to the triaged and spam topics so far: a cheap progress signal."""
        consumer = KafkaConsumer(bootstrap_servers=self.kafka, request_timeout_ms=10_000)
        try:
            # The topic has the deployment's two partitions; naming them avoids waiting for a
            # metadata refresh that a fresh client may not have done yet.
            tps = [
                TopicPartition(f"{kind}.{self.name}", p)
                for kind in ("triaged", "spam")
                for p in range(2)
            ]
            return sum(consumer.end_offsets(tps).values())
        finally:
            consumer.close()

    def wait_for_exit(self, timeout_s: float) -> list[str]:
        """Wait for every worker to stop by itself (``--idle-exit``); their outputs."""
        outputs = []
        for proc in self.workers:
            proc.wait(timeout=timeout_s)
            outputs.append(self.output(proc))
        self.workers.clear()
        return outputs

    def stop(self, proc: subprocess.Popen[str]) -> str:
        """Stop one worker as an operator would (SIGTERM), expect a clean exit; its output."""
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)  # if it never stops, the fixture's stop_all still has it
        self.workers.remove(proc)
        out = self.output(proc)
        assert proc.returncode == 0, out[-2000:]
        return out

    def stop_all(self) -> list[str]:
        outputs = []
        for proc in self.workers:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=60)
            outputs.append(self.output(proc))
        self.workers.clear()
        return outputs

    def drop(self) -> None:
        store = self.store()
        store._client.drop_database(f"db_{self.name}")
        store.close()
        shutil.rmtree(self.log_dir, ignore_errors=True)


def ids_where(store: MongoStore, collection: str, query: dict[str, Any]) -> list[str]:
    return [d["_id"] for d in store._db[collection].find(query, {"_id": 1})]


SERVICES = Path(__file__).resolve().parent.parent / "scripts" / "services"


def service(action: str, name: str) -> None:
    """Stop one real service, or start it again on its port with its data (scripts/services)."""
    done = subprocess.run(
        [sys.executable, str(SERVICES), action, name], capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, f"services {action} {name}: {done.stderr.strip()}"


def committed(deployment: Deployment) -> dict[int, int]:
    """The worker group's committed offset per partition of the raw topic."""
    admin = KafkaAdminClient(bootstrap_servers=deployment.kafka, request_timeout_ms=10_000)
    try:
        group = f"workers.{deployment.name}"
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {
        tp.partition: meta.offset
        for tp, meta in offsets.items()
        if tp.topic == f"raw.{deployment.name}" and meta.offset >= 0
    }


def group_members(deployment: Deployment) -> int:
    """How many workers the broker counts in the deployment's consumer group once it is stable;
    0 while it has no coordinator for the group yet (a fresh broker makes its offsets topic on
    the first join) or a rebalance is under way."""
    state, members = describe_group(deployment)
    return len(members) if state == "Stable" else 0


def shares(deployment: Deployment) -> list[list[int]]:
    """The raw-topic partitions each worker holds once the group is stable, smallest first."""
    state, members = describe_group(deployment)
    return sorted(parts for _, parts in members) if state == "Stable" else []


def agreed_shares(deployment: Deployment) -> list[list[int]]:
    """``shares`` once every running worker's own client says it reads the same: under load
    the broker once counted a worker as the holder of a partition its client never took."""
    held = shares(deployment)
    said = sorted(deployment.reading(w) for w in deployment.workers)
    return held if held == said else []


def describe_group(deployment: Deployment) -> tuple[str, list[tuple[str, list[int]]]]:
    """The worker group's state and each member's id with the raw-topic partitions it holds."""
    try:
        view = deployment.bus().group(f"workers.{deployment.name}")
    except TransientError:  # no coordinator for the group yet
        return "NoCoordinator", []
    raw = f"raw.{deployment.name}"
    members = [
        (member, sorted(tp.partition for tp in held if tp.topic == raw))
        for member, held in view.members.items()
    ]
    return view.state, members


def stored(deployment: Deployment) -> int:
    """Posts in the store now; -1 while the store is away or too busy to answer (an observer's
    read, not what is under test)."""
    store = deployment.store()
    try:
        return store.count("posts")
    except TransientError:
        return -1
    finally:
        store.close()
