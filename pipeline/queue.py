"""The agent queue's rules: exclusive claims under a lease, and what a holder may do with one.

Every change of state is a compare-and-set on the item's version (``Store.update_item``), so two
agents acting on one item at once cannot both succeed, and every change is written to the audit
log with who, what, when and why. Items whose lease ran out go back to the queue with their SLA
clock intact (the clock runs from the post's creation, not from the claim).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from pipeline.errors import TriageError
from pipeline.records import AuditEntry, QueueItem, Resolution, utcnow
from pipeline.store import Store

DEFAULT_LEASE = timedelta(minutes=10)


class QueueError(TriageError):
    """A request the queue refuses; ``status`` is the HTTP status that says why."""

    status = 409


class UnknownItem(QueueError):
    status = 404


class NotHolder(QueueError):
    status = 409


class LeaseExpired(QueueError):
    status = 409


class AgentQueue:
    def __init__(
        self,
        store: Store,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.lease = lease
        self.clock = clock

    def claim_next(
        self,
        agent: str,
        topics: Sequence[str] | None = None,
        languages: Sequence[str] | None = None,
    ) -> QueueItem | None:
        now = self.clock()
        item = self.store.claim_next(agent, now + self.lease, now, topics, languages)
        if item is not None:
            self._audit(agent, "claim", item, now, {"lease_until": item.lease_until})
        return item

    def extend(self, item_id: str, agent: str) -> QueueItem:
        """The holder is active: the lease runs again from now."""
        now = self.clock()
        return self._change(
            self._held(item_id, agent, now), agent, "extend", now, {"lease_until": now + self.lease}
        )

    def release(self, item_id: str, agent: str, reason: str = "") -> QueueItem:
        now = self.clock()
        return self._change(
            self._held(item_id, agent, now),
            agent,
            "release",
            now,
            {"status": "open", "agent": None, "lease_until": None},
            {"reason": reason},
        )

    def resolve(self, item_id: str, agent: str, reply: str) -> QueueItem:
        now = self.clock()
        if not reply.strip():
            raise QueueError("a resolution needs the reply that was sent")
        resolution = Resolution(reply=reply, by=agent, at=now)
        return self._change(
            self._held(item_id, agent, now),
            agent,
            "resolve",
            now,
            {"status": "resolved", "lease_until": None, "resolution": resolution.model_dump()},
            {"reply": reply},
        )

    def snooze(self, item_id: str, agent: str, until: datetime) -> QueueItem:
        now = self.clock()
        if until <= now:
            raise QueueError("snooze until a time in the future")
        return self._change(
            self._held(item_id, agent, now),
            agent,
            "snooze",
            now,
            {"status": "snoozed", "agent": None, "lease_until": None, "snooze_until": until},
            {"until": until},
        )

    def _held(self, item_id: str, agent: str, now: datetime) -> QueueItem:
        item = self.store.get_item(item_id)
        if item is None:
            raise UnknownItem(f"no queue item {item_id!r}")
        if item.status != "claimed" or item.agent != agent:
            holder = f"held by {item.agent}" if item.status == "claimed" else item.status
            raise NotHolder(f"{agent} does not hold {item_id} ({holder})")
        if item.lease_until is None or item.lease_until < now:
            raise LeaseExpired(f"the lease of {agent} on {item_id} has expired; claim it again")
        return item

    def _change(
        self,
        item: QueueItem,
        agent: str,
        action: str,
        now: datetime,
        changes: dict[str, Any],
        detail: dict[str, Any] | None = None,
    ) -> QueueItem:
        updated = self.store.update_item(item.id, item.version, changes)
        if updated is None:
            raise NotHolder(f"{item.id} changed while {agent} was acting on it; reload it")
        self._audit(agent, action, updated, now, detail or {})
        return updated

    def _audit(
        self, agent: str, action: str, item: QueueItem, now: datetime, detail: dict[str, Any]
    ) -> None:
        self.store.record_audit(
            [
                AuditEntry(
                    at=now,
                    actor=agent,
                    action=action,
                    item_id=item.id,
                    detail={**detail, "status": item.status, "version": item.version},
                )
            ]
        )
