"""The pipeline's topics as it creates them, and the check that existing ones still fit.

Each topic has a cleanup policy, a message limit of its own (so nothing rests on a broker-wide
setting: on a stock broker's 1 MB the dead letter of an 800 KB bad record would be refused and its
batch retried for ever), and the replication factor and ``min.insync.replicas`` of the settings
(``TRIAGE_KAFKA_REPLICATION_FACTOR``, ``TRIAGE_KAFKA_MIN_INSYNC_REPLICAS``; unset, the broker's
own defaults). A topic that exists already is checked against its spec at start, and a mismatch
is a one-line ``ConfigError`` saying what differs and how to fix it: a worker that publishes
triaged posts onto a topic that deletes them by age instead of compacting them by post id
would break the contract in ``docs/kafka.md`` silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pipeline.bus.kafka_records import MAX_DEAD_ORIGINAL_BYTES

if TYPE_CHECKING:
    from pipeline.settings import Settings

MIB = 1024 * 1024
# posts.raw takes more than the worker parses (MAX_POST_BYTES), so an oversized post becomes a
# dead letter the operator sees rather than a producer error nobody reads
RAW_MAX_BYTES = MAX_DEAD_ORIGINAL_BYTES
# a dead letter: its original, base64-encoded (4/3), and the reason
DLQ_MAX_BYTES = 4 * MIB
TRIAGED_MAX_BYTES = 2 * MIB
ALERTS_MAX_BYTES = 1 * MIB


@dataclass(frozen=True)
class TopicSpec:
    name: str
    compacted: bool
    max_message_bytes: int
    replication_factor: int | None = None  # None: the broker's default.replication.factor
    min_insync_replicas: int | None = None  # None: the broker's min.insync.replicas

    @property
    def configs(self) -> dict[str, str]:
        """The topic-level configs the pipeline sets when it creates the topic."""
        out = {
            "cleanup.policy": "compact" if self.compacted else "delete",
            "max.message.bytes": str(self.max_message_bytes),
        }
        if self.min_insync_replicas is not None:
            out["min.insync.replicas"] = str(self.min_insync_replicas)
        return out

    def mismatch(self, configs: dict[str, str], replicas: int) -> str | None:
        """Why an existing topic does not fit this spec, or None if it does."""
        policy = configs.get("cleanup.policy", "delete")
        wanted = self.configs
        if set(policy.split(",")) != set(wanted["cleanup.policy"].split(",")):
            return f"cleanup.policy is {policy}, the pipeline needs {wanted['cleanup.policy']}"
        limit = int(configs.get("max.message.bytes", "0") or 0)
        if limit < self.max_message_bytes:
            need = self.max_message_bytes
            return f"max.message.bytes is {limit}, the pipeline needs at least {need}"
        isr = configs.get("min.insync.replicas")
        if self.min_insync_replicas is not None and isr != str(self.min_insync_replicas):
            return f"min.insync.replicas is {isr}, the settings say {self.min_insync_replicas}"
        if self.replication_factor is not None and replicas != self.replication_factor:
            return f"replication factor is {replicas}, the settings say {self.replication_factor}"
        return None


def pipeline_topics(settings: Settings) -> dict[str, TopicSpec]:
    """Every topic the pipeline writes, by name, as ``docs/kafka.md`` describes them."""
    rf, isr = settings.kafka_replication_factor, settings.kafka_min_insync_replicas
    specs = [
        TopicSpec(settings.topic_raw, False, RAW_MAX_BYTES, rf, isr),
        TopicSpec(settings.topic_triaged, True, TRIAGED_MAX_BYTES, rf, isr),
        TopicSpec(settings.topic_spam, True, TRIAGED_MAX_BYTES, rf, isr),
        TopicSpec(settings.topic_dlq, False, DLQ_MAX_BYTES, rf, isr),
        TopicSpec(settings.topic_alerts, False, ALERTS_MAX_BYTES, rf, isr),
    ]
    return {s.name: s for s in specs}
