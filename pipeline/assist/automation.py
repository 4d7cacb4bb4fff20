"""Automation of simple repeats: operators' templated replies sent without an agent, safely.

A post is answered automatically only when all of these hold: automation is switched on and under
its daily cap; a rule covers the post's topic and language; the topic model is at least the rule's
threshold sure; the post is at most the rule's ``max_negative`` negative and not urgent; its author
has no other item waiting; the template fills completely from the post; and its source has a reply
path. Everything else stays with the agents, untouched.

The item is claimed by ``automation`` (a compare-and-set, so an agent who got there first keeps
it), the reply goes out through the source's replier (``pipeline.outbound.replies``: the connector's
``reply``; record-only sources are never automated), is stored as an outbound reply,
and the item is resolved through the queue rules, so every automated reply is in the audit log.
``reopen`` reverses it: the item goes back to the queue, and the reopened report lists it.

The worker calls ``on_batch`` with every triaged batch right after the store write, so a simple
repeat is answered within its batch; ``run`` sweeps the open queue with the same rules (for items
queued before a rule was switched on).
"""

from __future__ import annotations

import time as clock_time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from pydantic import BaseModel

from pipeline.assist.assistant import Assistant, fill, post_fields
from pipeline.assist_records import (
    AUTOMATION_AGENT,
    AutomationRule,
    AutomationSettings,
    OutboundReply,
)
from pipeline.outbound.replies import REPLY, RecordOnly, Repliers, ReplyRecord
from pipeline.queue.agent_queue import AgentQueue, QueueError, UnknownItem
from pipeline.records import AuditEntry, QueueItem, TriagedPost, utcnow
from pipeline.store.interface import Store, author_key, post_document

AGENT = AUTOMATION_AGENT
SETTINGS = "automation_settings"
RULES = "automation_rule"
URGENT = ("high", "critical")
SCAN_LIMIT = 1000
CONFIG_TTL_S = 5.0  # how soon a worker sees settings and rules changed in another process


class AutomationError(QueueError):
    """A rule that cannot work (its template is for another topic or language)."""

    status = 422


@dataclass(frozen=True)
class Decision:
    item_id: str
    automated: bool
    reason: str


@dataclass(frozen=True)
class Known:
    """What ``on_batch`` read for the whole batch: the posts, and each author's open items."""

    posts: Mapping[str, dict[str, Any]]
    open_items: Mapping[str, list[str]]


class ReopenedReply(BaseModel):
    item_id: str
    reply: str
    sent_at: datetime
    template_id: str | None
    reopened_at: datetime
    reopened_by: str
    reason: str


class Automation:
    def __init__(
        self,
        store: Store,
        assistant: Assistant,
        repliers: Repliers,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.assistant = assistant
        self.repliers = repliers
        self.clock = clock
        self.queue = AgentQueue(store, lease=timedelta(minutes=2), clock=clock, repliers=repliers)
        self._config: tuple[AutomationSettings, list[AutomationRule]] | None = None
        self._config_read_at = 0.0

    # ---- what operators set

    def settings(self) -> AutomationSettings:
        doc = self.store.get_record(SETTINGS, "current")
        return AutomationSettings() if doc is None else AutomationSettings.model_validate(doc)

    def save_settings(self, settings: AutomationSettings, by: str) -> AutomationSettings:
        saved = settings.model_copy(update={"updated_by": by, "updated_at": self.clock()})
        value = saved.model_dump(mode="json")
        self.store.put_record(SETTINGS, "current", value)
        self._config = None
        self._audit(by, "automation_settings", None, value)
        return saved

    def rules(self) -> list[AutomationRule]:
        found = [AutomationRule.model_validate(d) for d in self.store.find_records(RULES)]
        return sorted(found, key=lambda r: r.id)

    def save_rule(self, rule: AutomationRule, by: str) -> AutomationRule:
        template = self.assistant.template(rule.template_id)
        if template is None:
            raise UnknownItem(f"no reply template {rule.template_id!r}")
        if (template.topic, template.language) != (rule.topic, rule.language):
            raise AutomationError(
                f"template {template.id} is for {template.topic}/{template.language},"
                f" not {rule.topic}/{rule.language}"
            )
        saved = rule.model_copy(update={"updated_by": by, "updated_at": self.clock()})
        value = saved.model_dump(mode="json")
        self.store.put_record(RULES, saved.id, value)
        self._config = None
        self._audit(by, "automation_rule", None, value)
        return saved

    def delete_rule(self, topic: str, language: str, by: str) -> bool:
        deleted = self.store.delete_record(RULES, f"{topic}.{language}")
        self._config = None
        if deleted:
            self._audit(by, "automation_rule_deleted", None, {"topic": topic, "language": language})
        return deleted

    def current(self) -> tuple[AutomationSettings, list[AutomationRule]]:
        """Settings and enabled rules, read at most every ``CONFIG_TTL_S``: the worker asks
        every batch, and most batches should cost the store nothing when automation is off."""
        now = clock_time.monotonic()
        if self._config is None or now - self._config_read_at > CONFIG_TTL_S:
            settings = self.settings()
            rules = [r for r in self.rules() if r.enabled] if settings.enabled else []
            self._config, self._config_read_at = (settings, rules), now
        return self._config

    # ---- deciding and sending

    def sent_today(self) -> int:
        now = self.clock()
        midnight = datetime.combine(now.date(), time(0), tzinfo=now.tzinfo)
        return sum(r.automated for r in self.store.outbound_since(midnight))

    def decide(
        self,
        item: QueueItem,
        settings: AutomationSettings | None = None,
        rules: Sequence[AutomationRule] | None = None,
        known: Known | None = None,
    ) -> tuple[Decision, AutomationRule | None, str]:
        """Whether this item may be answered automatically, why, and with what text
        (``settings``, ``rules`` and ``known`` as read once for a whole batch)."""

        def no(reason: str) -> tuple[Decision, AutomationRule | None, str]:
            return Decision(item.id, False, reason), None, ""

        settings = settings or self.settings()
        if not settings.enabled:
            return no("automation is switched off")
        if item.status != "open":
            return no(f"item is {item.status}")
        rule = next(
            (
                r
                for r in (self.rules() if rules is None else rules)
                if (r.topic, r.language) == (item.topic, item.language)
            ),
            None,
        )
        if rule is None or not rule.enabled:
            return no(f"no automation for {item.topic}/{item.language}")
        post = known.posts.get(item.id) if known else self.store.get_post(item.id)
        if post is None:
            return no("post not found")
        confidence = float(post["topic"]["confidence"])
        if confidence < rule.threshold:
            return no(f"topic confidence {confidence:.2f} below {rule.threshold:.2f}")
        negative = float(post["sentiment"].get("probabilities", {}).get("negative", 0.0))
        if negative > rule.max_negative:
            return no(f"negative {negative:.2f} above {rule.max_negative:.2f}")
        if item.urgency in URGENT:
            return no(f"urgency {item.urgency}")
        open_items = (
            known.open_items.get(item.author_id, [])
            if known
            else self.store.open_items_of_author(item.author_id)
        )
        others = [i for i in open_items if i != item.id]
        if others:
            return no(f"author has {len(others)} other open item(s)")
        replier = self.repliers.by_source.get(item.source)
        if replier is None or isinstance(replier, RecordOnly):
            return no(f"no reply path to {item.source}: it stays with the agents")
        template = self.assistant.template(rule.template_id)
        if template is None:
            return no(f"template {rule.template_id} is gone")
        text, missing = fill(template, post_fields(post))
        if missing:
            return no(f"post lacks {', '.join(missing)} for the template")
        if self.sent_today() >= settings.daily_cap:
            return no(f"daily cap of {settings.daily_cap} reached")
        return Decision(item.id, True, f"rule {rule.id} at {confidence:.2f}"), rule, text

    def handle(
        self,
        item: QueueItem,
        settings: AutomationSettings | None = None,
        rules: Sequence[AutomationRule] | None = None,
        known: Known | None = None,
    ) -> Decision:
        decision, rule, text = self.decide(item, settings, rules, known)
        if not decision.automated or rule is None:
            return decision
        now = self.clock()
        claimed = self.store.update_item(
            item.id,
            item.version,
            {"status": "claimed", "agent": AGENT, "lease_until": now + self.queue.lease},
        )
        if claimed is None:
            return Decision(item.id, False, "an agent took it first")
        self._audit(AGENT, "claim", claimed, {"status": claimed.status, "version": claimed.version})
        try:  # the queue's resolve sends the reply through the source's replier, then closes
            resolved = self.queue.resolve(item.id, AGENT, text)
        except Exception as exc:  # any failure of the network hands the item to an agent
            self.queue.release(item.id, AGENT, f"automated reply failed: {exc}")
            return Decision(item.id, False, f"reply failed: {type(exc).__name__}")
        sent = [
            ReplyRecord.model_validate(d)
            for d in self.store.find_records(REPLY, {"item_id": item.id, "by": AGENT})
        ][-1]
        external = sent.external_id
        self.store.record_outbound(
            OutboundReply(
                id=sent.id,
                item_id=item.id,
                source=item.source,
                text=text,
                by=AGENT,
                automated=True,
                at=now,
                template_id=rule.template_id,
                external_id=external,
            )
        )
        self._audit(
            AGENT,
            "auto_reply",
            resolved,
            {"rule": rule.id, "template": rule.template_id, "reason": decision.reason,
             "external_id": external},
        )
        return decision

    def on_batch(self, triaged: Sequence[TriagedPost]) -> list[Decision]:
        """The worker's stage: answer the batch's posts a rule covers, as stored just now.
        The covered posts' items and their authors' open items are read in one call each (a
        read per post would scan the queue per post on FerretDB); with automation off, or no
        post covered, the batch costs the store nothing."""
        settings, rules = self.current()
        if not settings.enabled:
            return []
        covered = {(r.topic, r.language) for r in rules}
        chosen = [t for t in triaged if not t.is_spam and (t.topic.label, t.language) in covered]
        if not chosen:
            return []
        items = self.store.get_items([t.id for t in chosen])
        open_items: dict[str, list[str]] = {}
        for i in self.store.author_items(sorted({author_key(t) for t in chosen})):
            if i.status != "resolved":
                open_items.setdefault(i.author_id, []).append(i.id)
        known = Known({t.id: post_document(t) for t in chosen}, open_items)
        order = {t.id: n for n, t in enumerate(chosen)}
        items.sort(key=lambda i: order[i.id])
        return [self.handle(item, settings, rules, known) for item in items]

    def run(self, limit: int = SCAN_LIMIT) -> list[Decision]:
        """Answer the open items automation may answer; the rest stay for agents."""
        settings = self.settings()
        if not settings.enabled:
            return []
        rules = [r for r in self.rules() if r.enabled]
        covered = {(r.topic, r.language) for r in rules}
        return [
            self.handle(item, settings, rules)
            for item in self.store.list_queue("open", limit)
            if (item.topic, item.language) in covered
        ]

    # ---- reversing

    def reopen(self, item_id: str, by: str, reason: str) -> QueueItem:
        """Send a resolved item back to the queue (an automated reply was wrong)."""
        item = self.store.get_item(item_id)
        if item is None:
            raise UnknownItem(f"no queue item {item_id!r}")
        if item.status != "resolved":
            raise QueueError(f"{item_id} is {item.status}, not resolved")
        reopened = self.store.update_item(
            item.id,
            item.version,
            {"status": "open", "agent": None, "lease_until": None, "resolution": None},
        )
        if reopened is None:
            raise QueueError(f"{item_id} changed while {by} was reopening it; reload it")
        automated = item.resolution is not None and item.resolution.by == AGENT
        self._audit(by, "reopen", reopened, {"reason": reason, "automated": automated})
        return reopened

    def reopened_report(self, since: datetime) -> list[ReopenedReply]:
        """Automated replies since ``since`` that a human later reopened."""
        sent = [r for r in self.store.outbound_since(since) if r.automated]
        reopens: dict[str, list[AuditEntry]] = {}
        for entry in self.store.audit_of_items([r.item_id for r in sent]):
            if entry.action == "reopen":
                reopens.setdefault(entry.item_id or "", []).append(entry)
        report = []
        for reply in sent:
            later = [e for e in reopens.get(reply.item_id, []) if e.at >= reply.at]
            if later:
                report.append(
                    ReopenedReply(
                        item_id=reply.item_id,
                        reply=reply.text,
                        sent_at=reply.at,
                        template_id=reply.template_id,
                        reopened_at=later[0].at,
                        reopened_by=later[0].actor,
                        reason=str(later[0].detail.get("reason", "")),
                    )
                )
        return report

    def _audit(
        self, actor: str, action: str, item: QueueItem | None, detail: dict[str, Any]
    ) -> None:
        self.store.record_audit(
            [
                AuditEntry(
                    at=self.clock(),
                    actor=actor,
                    action=action,
                    item_id=item.id if item else None,
                    detail=detail,
                )
            ]
        )
