"""The pipeline's topics on the real broker: created as docs/kafka.md says, and an existing topic
that does not fit is a one-line error at start, never a silent change of the contract."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from pipeline.bus.kafka import KafkaBus
from pipeline.bus.topics import DLQ_MAX_BYTES, pipeline_topics
from pipeline.errors import ConfigError
from pipeline.settings import Settings

pytestmark = [pytest.mark.kafka]


def settings_for(unique: str, **extra: object) -> Settings:
    return Settings(
        topic_raw=f"raw.{unique}",
        topic_triaged=f"triaged.{unique}",
        topic_spam=f"spam.{unique}",
        topic_dlq=f"dlq.{unique}",
        topic_alerts=f"alerts.{unique}",
        **extra,  # type: ignore[arg-type]
    )


def configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        got = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all"
        )["topic"][topic]
    finally:
        admin.close()
    return {k: str(v["value"]) for k, v in got.items()}


def test_topics_are_created_with_their_policy_limit_and_replication_settings(
    kafka_bootstrap: str, unique: str
) -> None:
    settings = settings_for(unique, kafka_replication_factor=1, kafka_min_insync_replicas=1)
    specs = pipeline_topics(settings)
    bus = KafkaBus(kafka_bootstrap, partitions=2, topics=specs)
    bus.ensure_topics(specs)
    triaged = configs(kafka_bootstrap, settings.topic_triaged)
    assert triaged["cleanup.policy"] == "compact" and triaged["min.insync.replicas"] == "1"
    dlq = configs(kafka_bootstrap, settings.topic_dlq)
    assert dlq["cleanup.policy"] == "delete" and dlq["max.message.bytes"] == str(DLQ_MAX_BYTES)
    bus.ensure_topics(specs)  # a second start finds them fit


def test_an_existing_topic_that_does_not_fit_is_a_one_line_error(
    kafka_bootstrap: str, unique: str
) -> None:
    settings = settings_for(unique)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:  # made by hand with the broker's defaults: deleted by age, not compacted by post id
        admin.create_topics([NewTopic(settings.topic_triaged, 2, 1)])
        admin.create_topics([NewTopic(settings.topic_raw, 2, 1)])
        admin.create_topics(
            [NewTopic(settings.topic_dlq, 2, 1, topic_configs={"max.message.bytes": "1000000"})]
        )
    finally:
        admin.close()
    bus = KafkaBus(kafka_bootstrap, partitions=2, topics=pipeline_topics(settings))
    with pytest.raises(ConfigError) as triaged:
        bus.ensure_topics([settings.topic_triaged])
    assert "cleanup.policy is delete, the pipeline needs compact" in str(triaged.value)
    assert "\n" not in str(triaged.value)
    with pytest.raises(ConfigError, match=r"max\.message\.bytes is 1000000, the pipeline needs"):
        bus.ensure_topics([settings.topic_dlq])
    three = pipeline_topics(settings_for(unique, kafka_replication_factor=3))
    with pytest.raises(ConfigError, match="replication factor is 1, the settings say 3"):
        KafkaBus(kafka_bootstrap, topics=three).ensure_topics([settings.topic_raw])


def test_a_replication_factor_the_brokers_cannot_meet_is_a_one_line_error(
    kafka_bootstrap: str, unique: str
) -> None:
    settings = settings_for(unique, kafka_replication_factor=3)
    bus = KafkaBus(kafka_bootstrap, topics=pipeline_topics(settings))
    with pytest.raises(ConfigError, match="InvalidReplicationFactorError"):
        bus.ensure_topics([settings.topic_raw])
