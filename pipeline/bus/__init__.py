"""The message bus: its interface, Apache Kafka, an in-process bus, offsets for operators.

``open_bus`` picks the implementation from the settings: Kafka when
``TRIAGE_KAFKA_BOOTSTRAP`` is set, the in-process bus otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.bus.interface import Bus
    from pipeline.settings import Settings


def open_bus(settings: Settings) -> Bus:
    if settings.kafka_bootstrap:
        from pipeline.bus.kafka import KafkaBus
        from pipeline.bus.topics import pipeline_topics

        return KafkaBus(
            settings.kafka_bootstrap,
            partitions=settings.partitions,
            stall_s=settings.kafka_stall_s,
            topics=pipeline_topics(settings),
        )
    from pipeline.bus.memory import InProcessBus

    return InProcessBus(partitions=settings.partitions)
