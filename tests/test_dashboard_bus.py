"""The bus method the operator dashboard adds (consumer lag), on both buses."""

from __future__ import annotations

from pipeline.bus.interface import Bus
from tests.helpers import poll_until
from tests.test_bus_contract import bus, produce

__all__ = ["bus"]


def test_lag_counts_what_a_group_has_not_committed(bus: Bus, unique: str) -> None:
    topic, group = f"t-{unique}", f"g-{unique}"
    bus.ensure_topics([topic])
    produce(bus, topic, 30)
    assert sum(bus.lag(group, topic).values()) == 30  # a group that never committed
    consumer = bus.consumer(group, [topic])
    got = poll_until(consumer, 30)
    consumer.commit(got[:20])
    lag = bus.lag(group, topic)
    assert set(lag) == {0, 1} and sum(lag.values()) == 10
    consumer.commit(got)
    assert bus.lag(group, topic) == {0: 0, 1: 0}
    consumer.close()
