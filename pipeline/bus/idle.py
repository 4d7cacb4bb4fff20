"""How long a consumer has had nothing to read, for the worker's and the notifier's idle exit.

The clock runs only while the group has settled this member's share of the partitions
(``Consumer.assignment``), from that moment or from the last batch, whichever is later. Joining
the group and rebalances stop it and a new share restarts it: a member started before its
messages, on a machine where the group takes a minute to form, waits for them. A member the
group gives no partition (more members than partitions) has a settled, empty share and its
clock runs like that of one whose partitions are quiet: it has nothing to read, and the members
that stay hold every partition. A rebalance that begins and ends within one poll and gives back
the same share goes unseen (it lasted no longer than that poll), and a member whose group never
settles never leaves by this clock: ``stop`` is what ends it then.
"""

from __future__ import annotations

import time

from pipeline.bus.interface import Consumer


class IdleClock:
    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.since = time.monotonic()
        self.share = consumer.assignment()

    def busy(self) -> None:
        """A batch arrived: idle from now."""
        self.since = time.monotonic()

    def idle_s(self) -> float:
        """Seconds without a batch since the group last settled this member's share."""
        now, held = time.monotonic(), self.consumer.assignment()
        if held is None or held != self.share:
            self.since, self.share = now, held
        return now - self.since
