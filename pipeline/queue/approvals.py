"""Goodwill with bounds: an agent grants a credit or refund up to a limit on their own; above it,
or past their daily cumulative cap, it waits for a supervisor's approval.

An agent asks while holding the item (``AgentQueue.held``). A request within the limit and
within the agent's cap for the day (UTC) is granted at once; anything else is ``pending`` until a
``supervisor`` (or an admin) approves or denies it, with a reason. A decision is taken once: the
first supervisor to decide inserts a decision token (``Store.add_record`` is atomic on every
backend), and a second one is told it was already decided. Every step (requested, granted,
approved, denied) is an audit entry on the item. Requests are the store's generic records of
kind ``approval``, found by agent, item or status and by the time they were asked (``at``).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Literal

from pydantic import Field

from pipeline.queue.agent_queue import AgentQueue, QueueError, UnknownItem
from pipeline.records import AuditEntry, AwareDatetime, Record

APPROVAL = "approval"
DECISION = "approval_decision"
GRANTED = ("granted", "approved")  # what counts against the agent's daily cap


class GoodwillRequest(Record):
    kind: Literal["credit", "refund"] = "credit"
    amount: float = Field(gt=0, le=1_000_000)
    note: str = Field(default="", max_length=1000)


class Approval(Record):
    id: str
    item_id: str
    agent: str
    kind: Literal["credit", "refund"]
    amount: float
    currency: str
    note: str = ""
    why: str = Field(default="", description="why it needs approval; empty if granted at once")
    status: Literal["granted", "pending", "approved", "denied"]
    at: AwareDatetime
    decided_by: str | None = None
    decided_at: AwareDatetime | None = None
    decision_reason: str | None = None


class AlreadyDecided(QueueError):
    status = 409


class NotASupervisor(QueueError):
    status = 403


class Approvals:
    def __init__(
        self, queue: AgentQueue, limit: float = 250.0, daily_cap: float = 1000.0,
        currency: str = "EUR",
    ) -> None:
        self.queue = queue
        self.store = queue.store
        self.limit = limit
        self.daily_cap = daily_cap
        self.currency = currency

    def request(self, item_id: str, agent: str, ask: GoodwillRequest) -> Approval:
        """Grant at once within the limit and the day's cap; otherwise a pending approval."""
        self.queue.held(item_id, agent)
        now = self.queue.clock()
        so_far = self.granted_today(agent, now)
        why = ""
        if ask.amount > self.limit:
            why = f"over the {self.limit:g} {self.currency} limit"
        elif so_far + ask.amount > self.daily_cap:
            why = (
                f"over the daily cap of {self.daily_cap:g} {self.currency}"
                f" ({so_far:g} granted today)"
            )
        approval = Approval(
            id=uuid.uuid4().hex[:12],
            item_id=item_id,
            agent=agent,
            kind=ask.kind,
            amount=ask.amount,
            currency=self.currency,
            note=ask.note,
            why=why,
            status="pending" if why else "granted",
            at=now,
        )
        self._save(approval)
        self._audit(agent, f"goodwill_{approval.status}", approval, now, {"why": why})
        return approval

    def decide(self, approval_id: str, by: str, approve: bool, reason: str) -> Approval:
        """A supervisor's decision, taken once; nobody decides on their own request."""
        found = self.get(approval_id)
        if found is None:
            raise UnknownItem(f"no approval {approval_id}")
        if found.agent == by:
            raise NotASupervisor(f"{by} cannot decide on their own request")
        if found.status != "pending" or not self.store.add_record(
            DECISION, approval_id, {"by": by, "at": self.queue.clock()}
        ):
            current = self.get(approval_id) or found
            raise AlreadyDecided(
                f"approval {approval_id} was already {current.status}"
                + (f" by {current.decided_by}" if current.decided_by else "")
            )
        now = self.queue.clock()
        decided = found.model_copy(
            update={
                "status": "approved" if approve else "denied",
                "decided_by": by,
                "decided_at": now,
                "decision_reason": reason,
            }
        )
        self._save(decided)
        self._audit(by, f"goodwill_{decided.status}", decided, now, {"reason": reason})
        return decided

    def get(self, approval_id: str) -> Approval | None:
        doc = self.store.get_record(APPROVAL, approval_id)
        return Approval.model_validate(doc) if doc is not None else None

    def find(
        self,
        status: str | None = None,
        agent: str | None = None,
        item_id: str | None = None,
        since: datetime | None = None,
    ) -> list[Approval]:
        """Requests, newest first."""
        where = {
            k: v for k, v in (("status", status), ("agent", agent), ("item_id", item_id)) if v
        }
        found = [Approval.model_validate(d) for d in self.store.find_records(
            APPROVAL, where, since=since
        )]
        return sorted(found, key=lambda a: a.at, reverse=True)

    def granted_today(self, agent: str, now: datetime) -> float:
        """Goodwill the agent granted, or had approved, since midnight UTC."""
        midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
        found = self.store.find_records(
            APPROVAL, {"agent": agent, "status": list(GRANTED)}, since=midnight,
            until=midnight + timedelta(days=1),
        )
        return sum(float(d["amount"]) for d in found)

    def _save(self, approval: Approval) -> None:
        self.store.put_record(APPROVAL, approval.id, approval.model_dump(mode="python"))

    def _audit(
        self, actor: str, action: str, approval: Approval, now: datetime, extra: dict[str, str]
    ) -> None:
        detail = {
            "approval": approval.id,
            "kind": approval.kind,
            "amount": approval.amount,
            "currency": approval.currency,
            **extra,
        }
        self.store.record_audit(
            [AuditEntry(at=now, actor=actor, action=action, item_id=approval.item_id,
                        detail=detail)]
        )
