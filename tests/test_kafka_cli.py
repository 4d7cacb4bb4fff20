"""Kafka's own tools, from the cached Kafka, through scripts/kafka-cli: what an operator of
`make services-up` runs to look at topics, groups and dead letters."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pipeline.bus.interface import Message
from pipeline.bus.kafka import KafkaBus
from pipeline.bus.kafka_records import dead_letter, dead_letter_record
from pipeline.records import utcnow

pytestmark = [pytest.mark.kafka]
CLI = Path(__file__).resolve().parent.parent / "scripts" / "kafka-cli"


def kafka_cli(bootstrap: str, *args: str) -> str:
    env = {**os.environ, "TRIAGE_KAFKA_BOOTSTRAP": bootstrap}
    done = subprocess.run(
        [str(CLI), *args], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_topics_and_dead_letters_are_readable_with_kafka_s_own_tools(
    kafka_bootstrap: str, unique: str
) -> None:
    topic = f"dlq.{unique}"
    bus = KafkaBus(kafka_bootstrap, partitions=2)
    bus.ensure_topics([topic])
    letter = dead_letter(
        Message(f"raw.{unique}", 1, 7, None, b'{"source": "x", "native_id": "9"}', 0),
        "parse",
        "invalid post: author: Field required",
        utcnow(),
        "x:9",
    )
    value, key, headers = dead_letter_record(letter)
    producer = bus.producer()
    producer.send(topic, value, key=key, headers=headers)
    producer.flush()
    producer.close()

    described = kafka_cli(kafka_bootstrap, "topics", "--describe", "--topic", topic)
    assert f"Topic: {topic}" in described and "PartitionCount: 2" in described
    shown = kafka_cli(
        kafka_bootstrap, "console-consumer", "--topic", topic, "--from-beginning",
        "--max-messages", "1", "--timeout-ms", "30000",
        "--property", "print.key=true", "--property", "print.headers=true",
    )
    assert "triage.stage:parse" in shown and "triage.source.offset:7" in shown
    assert "x:9" in shown and "invalid post: author: Field required" in shown
