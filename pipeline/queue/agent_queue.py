"""The agent queue's rules: exclusive claims under a lease, and what a holder may do with one.

Every change of state is a compare-and-set on the item's version (``Store.update_item``), so two
agents acting on one item at once cannot both succeed, and every change is written to the audit
log with who, what, when and why. Items whose lease ran out go back to the queue with their SLA
clock intact (the clock runs from the post's creation, not from the claim).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pipeline import priority
from pipeline.errors import TriageError
from pipeline.outbound.replies import Repliers
from pipeline.queue.agents import Agents
from pipeline.queue.sla import FIRST_RESPONSE, SlaPolicy
from pipeline.records import URGENCY_VALUE, AuditEntry, QueueItem, Resolution, utcnow
from pipeline.store.interface import Store

DEFAULT_LEASE = timedelta(minutes=10)
# claimable items whose customers a claim looks up for affinity before it takes one
LOOKAHEAD = 20
WATCHDOG = "sla-watchdog"
CUSTOMER = "customer"
SLA_EVENT = "sla_event"


class QueueError(TriageError):
    """A request the queue refuses; ``status`` is the HTTP status that says why."""

    status = 409


class UnknownItem(QueueError):
    status = 404


class NotHolder(QueueError):
    status = 409


class LeaseExpired(QueueError):
    status = 409


class UnknownAgent(QueueError):
    status = 404


class AgentBusy(QueueError):
    """Unavailable, or holding as many items as their capacity allows."""

    status = 409


@dataclass
class SweepReport:
    """What one SLA sweep did: for the watchdog's log and its tests."""

    released: list[str] = field(default_factory=list)
    reopened: list[str] = field(default_factory=list)
    rescored: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    breaches: list[tuple[str, str]] = field(default_factory=list)


class AgentQueue:
    def __init__(
        self,
        store: Store,
        lease: timedelta = DEFAULT_LEASE,
        clock: Callable[[], datetime] = utcnow,
        sla: SlaPolicy | None = None,
        agents: Agents | None = None,
        repliers: Repliers | None = None,
    ) -> None:
        self.store = store
        self.lease = lease
        self.clock = clock
        self.sla = sla or SlaPolicy()
        self.agents = agents or Agents(store)
        self.repliers = repliers or Repliers(store)

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
        """Answer the customer on their channel, then close the item; the author's next post
        comes back to this agent (affinity)."""
        now = self.clock()
        if not reply.strip():
            raise QueueError("a resolution needs the reply that was sent")
        return self.reply_and_close(self._held(item_id, agent, now), agent, reply, now)

    def reply_and_close(
        self,
        item: QueueItem,
        agent: str,
        reply: str,
        now: datetime,
        detail: dict[str, Any] | None = None,
        if_unsent: dict[str, Any] | None = None,
    ) -> QueueItem:
        """Send ``reply`` on the channel of ``item`` (held by ``agent``), then close it.

        Shared by single and incident resolutions. One reply per version of the item, however
        many requests race to resolve it. When the send fails nothing was said: the item moves
        to a new version (``if_unsent``, by default a fresh lease) so that a retry may reply,
        and the error propagates."""
        if not self.store.add_record("resolve_once", f"{item.id}#{item.version}", {"by": agent}):
            raise NotHolder(f"{item.id} is already being resolved; reload it")
        try:
            sent = self.repliers.send(item, reply, agent, now, "resolve")
        except Exception as exc:
            moved = self.store.update_item(
                item.id, item.version, if_unsent or {"lease_until": now + self.lease}
            )
            if moved is not None:
                self._audit(agent, "reply_failed", moved, now, {"error": str(exc)})
            raise
        resolution = Resolution(reply=reply, by=agent, at=now)
        late = [k for k in self.sla.pending(item) if now > self.sla.due(item, k)]
        updated = self._change(
            item,
            agent,
            "resolve",
            now,
            {
                "status": "resolved",
                "lease_until": None,
                "resolution": resolution.model_dump(),
                "first_response_at": item.first_response_at or now,
                "sla_breaches": sorted({*item.sla_breaches, *late}),
            },
            {**(detail or {}), "reply": reply, "reply_id": sent.id, "delivery": sent.delivery},
        )
        for kind in late:
            if kind not in item.sla_breaches:
                self._sla_event(updated, "breach", kind, now)
        self.agents.remember(item.author_id, agent, now)
        return updated

    def next_for(self, agent: str) -> QueueItem | None:
        """The highest-priority item this agent may take, under a lease.

        Skills (topics, languages) filter; an author this agent helped last comes to them first;
        an author another agent helped last is left for that agent while they have room."""
        now = self.clock()
        profiles = {p.name: p for p in self.agents.all()}  # one read serves both checks below
        profile = profiles.get(agent)
        if profile is None:
            raise UnknownAgent(f"no agent profile {agent!r}: an admin creates it first")
        if not profile.available:
            raise AgentBusy(f"{agent} is marked unavailable")
        load = self.agents.load(now)
        if load[agent] >= profile.capacity:
            raise AgentBusy(
                f"{agent} holds {load[agent]} of {profile.capacity} items:"
                " resolve or release one first"
            )
        others_with_room = {
            p.name
            for p in profiles.values()
            if p.name != agent and p.available and load[p.name] < p.capacity
        }
        mine = self.agents.helped_by(agent, now)
        topics, languages = profile.topics or None, profile.languages or None
        until = now + self.lease
        item, routing = None, "priority"
        if mine:
            item = self.store.claim_next(agent, until, now, topics, languages, authors=mine)
            routing = "affinity"
        if item is None:
            theirs = self._left_for_others(now, topics, languages, others_with_room)
            item = self.store.claim_next(
                agent, until, now, topics, languages, exclude_authors=theirs
            )
            routing = "priority"
        if item is not None:
            self._audit(agent, "claim", item, now, {"lease_until": until, "routing": routing})
        return item

    def _left_for_others(
        self,
        now: datetime,
        topics: list[str] | None,
        languages: list[str] | None,
        others_with_room: set[str],
    ) -> list[str]:
        """Customers among those a claim would reach first whom another agent with room helped
        last: the claim leaves them for that agent.

        Only the authors of the most urgent claimable items are looked up (``LOOKAHEAD``, more
        while every one of them is someone else's), so the exclusion stays short and a claim
        costs the same however many customers were ever helped: a list of every helped customer
        made each claim read thousands of records and filter by them (0.4 s a claim at 2,000
        customers, docs/performance.md). Under racing claims the item taken may lie beyond
        those looked up; affinity is a preference, never a lock."""
        limit = LOOKAHEAD
        while True:
            authors = self.store.open_authors(now, topics, languages, limit)
            owners = self.agents.owners(authors, now)
            theirs = sorted({a for a, owner in owners.items() if owner in others_with_room})
            if len(authors) < limit or set(authors) - set(theirs):
                return theirs
            limit *= 4

    def reassign(self, item_id: str, agent: str, to: str, reason: str = "") -> QueueItem:
        """Hand a held item to another agent, who gets a fresh lease."""
        now = self.clock()
        item = self._held(item_id, agent, now)
        target = self.agents.get(to)
        if target is None:
            raise UnknownAgent(f"no agent profile {to!r}")
        if not target.available:
            raise AgentBusy(f"{to} is marked unavailable")
        if not target.may_take(item):
            raise AgentBusy(f"{to} lacks the skills for {item.topic}/{item.language}")
        return self._change(
            item,
            agent,
            "reassign",
            now,
            {"agent": to, "lease_until": now + self.lease},
            {"from": agent, "to": to, "reason": reason},
        )

    def take(
        self, item: QueueItem, agent: str, now: datetime, detail: dict[str, Any]
    ) -> QueueItem | None:
        """Claim this item (not the next by priority) for ``agent`` under a lease: None when it
        changed meanwhile. The caller checks that nobody else holds it."""
        taken = self.store.update_item(
            item.id,
            item.version,
            {
                "status": "claimed",
                "agent": agent,
                "lease_until": now + self.lease,
                "snooze_until": None,
            },
        )
        if taken is not None:
            self._audit(agent, "claim", taken, now, {**detail, "lease_until": taken.lease_until})
        return taken

    def held(self, item_id: str, agent: str) -> QueueItem:
        """The item, if ``agent`` holds it under a live lease (for escalations)."""
        return self._held(item_id, agent, self.clock())

    def touch(
        self, item: QueueItem, agent: str, action: str, detail: dict[str, Any]
    ) -> QueueItem:
        """Record an action on a held item: it counts as activity (the lease runs again) and,
        since the customer was answered, as the first response."""
        now = self.clock()
        changes = {
            "lease_until": now + self.lease,
            "first_response_at": item.first_response_at or now,
        }
        return self._change(item, agent, action, now, changes, detail)

    # ---- the SLA watchdog's operations

    def set_tier(self, author_id: str, tier: str | None, by: str) -> None:
        """Customer value: a tier on the author's record that the queue's score reads."""
        if tier is not None and tier not in priority.TIER_VALUE:
            raise QueueError(f"unknown tier {tier!r}; one of {', '.join(priority.TIER_VALUE)}")
        doc = self.store.get_record(CUSTOMER, author_id) or {"author_id": author_id, "links": []}
        self.store.put_record(CUSTOMER, author_id, {**doc, "tier": tier})
        now = self.clock()
        self.store.record_audit(
            [AuditEntry(at=now, actor=by, action="set_tier", detail={"author": author_id,
                                                                       "tier": tier})]
        )

    def tiers(self, author_ids: Sequence[str]) -> dict[str, str | None]:
        found = self.store.find_records(CUSTOMER, {"author_id": list(author_ids)})
        return {d["author_id"]: d.get("tier") for d in found}

    def rescore(
        self, now: datetime | None = None, spikes: Collection[str] = ()
    ) -> list[QueueItem]:
        """Re-score open items from their triage factors, the author's tier, the SLA time left
        and whether their topic is in a spike. Only items whose score moved are written."""
        now = now or self.clock()
        items = self.store.list_queue("open", limit=100_000)
        tiers = self.tiers(sorted({i.author_id for i in items}))
        changed = []
        for item in items:
            scored = self.score(item, now, tiers.get(item.author_id), item.topic in spikes)
            if abs(scored.score - item.priority) < 0.01 and scored.reasons == item.reasons:
                continue
            updated = self.store.update_item(
                item.id,
                item.version,
                {
                    "priority": scored.score,
                    "band": scored.band,
                    "reasons": scored.reasons,
                    "model_versions": {
                        **item.model_versions,
                        "priority": priority.PRIORITY_VERSION,
                    },
                },
            )
            if updated is None:
                continue  # somebody claimed it meanwhile; the next sweep sees it again
            if updated.band != item.band:
                self._audit(
                    WATCHDOG, "rescore", updated, now, {"from": item.band, "to": updated.band}
                )
            changed.append(updated)
        return changed

    def score(
        self, item: QueueItem, now: datetime, tier: str | None, spike: bool
    ) -> priority.Priority:
        factors = item.factors or self._factors_from_post(item)
        kind = FIRST_RESPONSE if FIRST_RESPONSE in self.sla.pending(item) else "resolution"
        return priority.rescore(
            priority.Inputs(
                urgency=factors.get("urgency", 0.0),
                negative=factors.get("negative", 0.0),
                followers=int(factors.get("followers", 0)),
                verified=bool(factors.get("verified", 0)),
                urgency_label=item.urgency,
                tier=tier,
                sla_left_s=(self.sla.due(item, kind) - now).total_seconds(),
                sla_window_s=self.sla.window(item, kind).total_seconds(),
                spike=spike,
            )
        )

    def _factors_from_post(self, item: QueueItem) -> dict[str, float]:
        """Items queued before factors were kept: read them from the stored post."""
        post = self.store.get_post(item.id)
        if post is None:
            return {"urgency": URGENCY_VALUE.get(item.urgency, 0.0)}
        probs = post["urgency"].get("probabilities") or {item.urgency: 1.0}
        author = post["post"]["author"]
        return {
            "urgency": sum(URGENCY_VALUE.get(k, 0.0) * p for k, p in probs.items()),
            "negative": post["sentiment"].get("probabilities", {}).get("negative", 0.0),
            "followers": float(author.get("followers", 0)),
            "verified": float(author.get("verified", False)),
        }

    def sla_sweep(
        self, now: datetime | None = None, spikes: Collection[str] = ()
    ) -> SweepReport:
        """One pass of the SLA watchdog: return expired leases and finished snoozes to the
        queue, re-score what is open, warn before deadlines and record breaches (once each)."""
        now = now or self.clock()
        report = SweepReport()
        for item in self.store.list_queue("claimed", limit=100_000):
            if item.lease_until is not None and item.lease_until < now:
                back = self.store.update_item(
                    item.id, item.version, {"status": "open", "agent": None, "lease_until": None}
                )
                if back is not None:
                    self._audit(WATCHDOG, "lease_expired", back, now, {"holder": item.agent})
                    report.released.append(item.id)
        for item in self.store.list_queue("snoozed", limit=100_000):
            if item.snooze_until is not None and item.snooze_until <= now:
                back = self.store.update_item(
                    item.id, item.version, {"status": "open", "snooze_until": None}
                )
                if back is not None:
                    self._audit(WATCHDOG, "snooze_over", back, now, {})
                    report.reopened.append(item.id)
        report.rescored = [i.id for i in self.rescore(now, spikes)]
        for status in ("open", "claimed", "snoozed"):
            for item in self.store.list_queue(status, limit=100_000):
                self._check_deadlines(item, now, report)
        return report

    def _check_deadlines(self, item: QueueItem, now: datetime, report: SweepReport) -> None:
        for kind in self.sla.pending(item):
            if now > self.sla.due(item, kind):
                event, flags, seen = "breach", "sla_breaches", item.sla_breaches
            elif now >= self.sla.warn_at(item, kind):
                event, flags, seen = "warning", "sla_warnings", item.sla_warnings
            else:
                continue
            if kind in seen:
                continue
            updated = self.store.update_item(item.id, item.version, {flags: [*seen, kind]})
            if updated is None:
                return  # it changed meanwhile; the next sweep looks again
            item = updated
            self._sla_event(item, event, kind, now)
            (report.breaches if event == "breach" else report.warnings).append((item.id, kind))

    def _sla_event(self, item: QueueItem, event: str, kind: str, now: datetime) -> None:
        due = self.sla.due(item, kind)
        doc = {
            "item_id": item.id,
            "event": event,
            "kind": kind,
            "band": item.sla_band or item.band,
            "due": due.isoformat(),
            "at": now.isoformat(),
            "agent": item.agent,
        }
        if self.store.add_record(SLA_EVENT, f"{item.id}:{event}:{kind}", doc):
            self._audit(WATCHDOG, f"sla_{event}", item, now, {"kind": kind, "due": due})

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
