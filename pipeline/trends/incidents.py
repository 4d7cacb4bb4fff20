"""Spike to incident: the open queue items that belong to an active spike become one incident.

Agents get one incident with a count and a suggested bulk reply instead of two hundred separate
posts. An item belongs to a spike when its text carries the spike's term, hashtag, mention or
phrase (or, for a topic spike, it has that topic) and it was posted after the spike began.
Resolving the incident resolves each item exactly as a single resolution would
(``AgentQueue.reply_and_close``): the reply goes to the item's author on the channel they wrote
on (record-only sources just record it), once per item however the request is retried or raced,
then the item closes with its audit record naming the reply. Items another agent holds under a
live lease are left to that agent; an item whose reply could not be sent stays open, and so does
the incident, so resolving it again answers the rest. Both are listed as skipped, with why.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any, Literal, NamedTuple

from pydantic import Field

from classifiers.evidence import HAN
from pipeline.errors import TriageError
from pipeline.queue.agent_queue import AgentQueue, QueueError
from pipeline.records import AuditEntry, AwareDatetime, QueueItem, Record, TriagedPost
from pipeline.store.interface import Store
from pipeline.trends.detector import Trend, parse_key, tokenise, word_keys

SCAN_ITEMS = 10_000  # a spike's items read from the store, newest first
MIN_ITEMS = 2
CAS_ATTEMPTS = 3
GROUPED_KINDS = ("term", "hashtag", "mention", "phrase", "product", "topic")
REPLIES = {
    "delivery": "Thanks for letting us know, and sorry for the wait. We know deliveries about "
    "{what} are delayed and the team is working on it; we will update you here as soon as it "
    "moves. If you send us your order number by DM we will check yours personally.",
    "billing": "Sorry about this. We are aware of the billing issue with {what} and are fixing "
    "it; any wrong charge will be refunded automatically. We will confirm here when it is done.",
    "account": "Sorry for the trouble. We know some accounts are affected by {what} and the team "
    "is on it. Please don't share passwords here; we will post an update as soon as it is fixed.",
    "product_defect": "Thank you for reporting this, and sorry. We are aware of the problem with "
    "{what}, our engineers are investigating, and we will share a fix or a workaround here soon.",
    "praise": "Thank you so much for the kind words about {what}! We have passed them on to the "
    "team.",
}
DEFAULT_REPLY = (
    "Thanks for reaching out. We are aware of {what} and the team is looking into it; we will "
    "post an update here as soon as we know more."
)
# The same replies for a spike of Chinese posts: its customers are answered in their language.
ZH_REPLIES = {
    "delivery": "感谢您的反馈，很抱歉让您久等了。我们已经知道{what}相关的配送"
    "出现延误，团队正在处理，有进展会第一时间在这里通知您。您也可以私信"
    "发送订单号，我们会专门为您查询。",
    "billing": "非常抱歉给您带来不便。我们已经注意到{what}的扣费问题，正在"
    "修复；如有错误扣款，将自动退还。处理完成后会在这里告知您。",
    "account": "抱歉给您添麻烦了。我们知道部分账户受到{what}的影响，团队正在"
    "处理。请不要在这里透露密码，修复后我们会第一时间发布更新。",
    "product_defect": "感谢您反馈这个问题，非常抱歉。我们已经注意到{what}的"
    "问题，工程师正在排查，很快会在这里提供解决办法或临时方案。",
    "praise": "非常感谢您对{what}的肯定！我们已经转达给团队。",
}
ZH_DEFAULT_REPLY = (
    "感谢您的联系。我们已经注意到{what}的情况，团队正在跟进，有新消息会"
    "第一时间在这里更新。"
)


class IncidentError(TriageError):
    """No such incident."""

    status = 404


class IncidentRefused(IncidentError):
    """The incident is already resolved."""

    status = 409


class BadReply(IncidentError):
    status = 422


class Skip(NamedTuple):
    """Why an item of the incident was not answered, and whether resolving again may."""

    reason: str
    retry: bool


# An item whose reply failed goes back to the queue, open, as it was before the incident took it.
RELEASE: dict[str, Any] = {"status": "open", "agent": None, "lease_until": None}


class Incident(Record):
    id: str
    trend_id: str
    what: str
    item_ids: list[str]
    count: int
    topics: dict[str, int] = Field(default_factory=dict)
    suggested_reply: str
    status: Literal["open", "resolved"] = "open"
    created_at: AwareDatetime
    updated_at: AwareDatetime
    resolved_by: str | None = None
    resolved_at: AwareDatetime | None = None
    resolved_items: list[str] = Field(default_factory=list)
    skipped_items: list[str] = Field(default_factory=list)
    skip_reasons: dict[str, str] = Field(
        default_factory=dict, description="why each skipped item was not answered"
    )


@dataclass(frozen=True, slots=True)
class Candidate:
    """What matching a post to a spike reads: a worker keeps thousands of these, where whole
    triaged posts would cost it about 70 MB."""

    id: str
    post_created_at: datetime
    topic: str
    text: str

    @classmethod
    def of(cls, item: QueueItem | TriagedPost) -> Candidate:
        if isinstance(item, QueueItem):
            return cls(item.id, item.post_created_at, item.topic, item.text)
        return cls(item.id, item.post.created_at, item.topic.label, item.redacted_text)


def belongs(item: Candidate, trend: Trend) -> bool:
    """Whether a queue item carries one of the spike's keys and came after it began."""
    if item.post_created_at < trend.started_at - timedelta(minutes=15):
        return False
    if trend.kind == "topic":
        return item.topic == trend.what.split("=", 1)[1]
    tokens = tokenise([item.text])[0]
    words = word_keys(tokens)
    pairs = set(pairwise(tokens))
    for name in (trend.what, *trend.related):
        key = parse_key(name)
        if (isinstance(key, tuple) and key in pairs) or key in words:
            return True
        if isinstance(key, str) and key.startswith("product=") and key[8:] in item.text.lower():
            return True
    return False


def stored_candidates(store: Store, trend: Trend) -> list[Candidate]:
    """The unresolved items that may belong to ``trend``, from the store: those posted from 15
    minutes before it began that hold one of its words (or have its topic)."""
    since = trend.started_at - timedelta(minutes=15)
    if trend.kind == "topic":
        items = store.queue_mentioning(since, [], [trend.what.split("=", 1)[1]], SCAN_ITEMS)
    else:
        words = [search_word(n) for n in (trend.what, *trend.related) if "=" not in n]
        words += [n[8:] for n in (trend.what, *trend.related) if n.startswith("product=")]
        items = store.queue_mentioning(since, words, (), SCAN_ITEMS)
    return [Candidate.of(i) for i in items]


def search_word(name: str) -> str:
    """What a key's posts hold in their text: a phrase's longer word (its two words may stand
    apart by punctuation, or, in Chinese, by nothing), any other key's name."""
    return max(name.split(" "), key=len)


def suggested_reply(what: str, topics: Counter[str], chinese: bool = False) -> str:
    """The bulk reply for the spike's most common topic, in Chinese for a Chinese spike."""
    topic = topics.most_common(1)[0][0] if topics else ""
    if chinese:
        return ZH_REPLIES.get(topic, ZH_DEFAULT_REPLY).format(what=what)
    return REPLIES.get(topic, DEFAULT_REPLY).format(what=what)


def is_chinese(what: str, texts: Sequence[str]) -> bool:
    """A spike is Chinese when its key is a Chinese word or most of its posts are Chinese."""
    if HAN.search(what):
        return True
    return 2 * sum(HAN.search(t) is not None for t in texts) > len(texts) > 0


def incidents(store: Store, status: str | None = None) -> list[Incident]:
    where = {"status": status} if status is not None else None
    return [
        Incident.model_validate({k: v for k, v in d.items() if k != "at"})
        for d in store.find_records("incidents", where, limit=100_000)
    ]


def get_incident(store: Store, incident_id: str) -> Incident:
    for incident in incidents(store):
        if incident.id == incident_id:
            return incident
    raise IncidentError(f"no incident {incident_id!r}")


def save(store: Store, incident: Incident) -> None:
    store.put_record(
        "incidents", incident.id, {**incident.model_dump(mode="python"), "at": incident.created_at}
    )


def link_incidents(
    store: Store,
    trends: Sequence[Trend],
    now: datetime,
    candidates: Sequence[Candidate] | None = None,
) -> list[Incident]:
    """Group the open items of each active spike into its incident (created or grown).

    A single worker passes ``candidates``, the posts it queued in the last minutes, and reads
    nothing: it has seen every post. A deployment of several workers passes none: each spike's
    items are read from the store, every worker's (``Store.queue_mentioning``: a range of the
    indexed creation time from 15 minutes before the spike began, matched by its words, then
    checked here by the tokeniser). One an agent claimed since it was queued may join;
    resolving the incident leaves it to that agent. Idempotent: an incident's id is its
    trend's, and its items only ever grow, so the worker may retry it after a transient
    failure."""
    live = [t for t in trends if t.status != "ended" and t.kind in GROUPED_KINDS]
    if not live:
        return []
    existing = {i.id: i for i in incidents(store, status="open")}
    changed = []
    for trend in live:
        iid = f"incident:{trend.id}"
        old = existing.get(iid)
        known = set(old.item_ids) if old else set()
        pool = candidates if candidates is not None else stored_candidates(store, trend)
        members = [c for c in pool if belongs(c, trend)]
        ids = sorted(known | {m.id for m in members})
        if len(ids) < MIN_ITEMS or (old is not None and ids == old.item_ids):
            continue
        topics = Counter({**(old.topics if old else {})})
        topics.update(m.topic for m in members if m.id not in known)
        incident = Incident(
            id=iid,
            trend_id=trend.id,
            what=trend.what,
            item_ids=ids,
            count=len(ids),
            topics=dict(topics),
            suggested_reply=suggested_reply(
                trend.what, topics, is_chinese(trend.what, [m.text for m in members])
            ),
            created_at=old.created_at if old else now,
            updated_at=now,
        )
        save(store, incident)
        changed.append(incident)
    return changed


def resolve_incident(
    queue: AgentQueue, incident_id: str, agent: str, reply: str, now: datetime
) -> Incident:
    """Answer every item of the incident that nobody else holds, each through the queue's own
    resolution (its reply on the item's channel, then its close and audit record).

    The incident stays open while a reply could not be sent, so resolving it again answers only
    the items still unanswered: the queue sends one reply per item version, however often or
    concurrently this runs."""
    if not reply.strip():
        raise BadReply("a resolution needs the reply that was sent")
    incident = get_incident(queue.store, incident_id)
    if incident.status == "resolved":
        raise IncidentRefused(f"incident {incident_id} is already resolved")
    answered = set(incident.resolved_items)  # by an earlier attempt: never answered twice
    skipped: dict[str, Skip] = {}
    for item_id in incident.item_ids:
        if item_id not in answered:
            outcome = resolve_item(queue, item_id, incident_id, agent, reply, now)
            if outcome is not None:
                skipped[item_id] = outcome
    # Read back what the items are now: a concurrent resolution of this incident may have
    # failed on an item this one skipped as "being resolved", and whichever finishes last
    # writes the incident, so its status must come from the items, not from this attempt.
    status = {i.id: i.status for i in queue.store.get_items(incident.item_ids)}
    resolved = [i for i in incident.item_ids if status.get(i) == "resolved"]
    waiting = [i for i in skipped if status.get(i) == "open"]
    reasons = {i: s.reason for i, s in skipped.items()}
    queue.store.record_audit(
        [
            AuditEntry(
                at=now,
                actor=agent,
                action="resolve_incident",
                detail={"incident": incident_id, "resolved": len(resolved), "skipped": reasons},
            )
        ]
    )
    done = not waiting and not any(s.retry for s in skipped.values())
    finished = incident.model_copy(
        update={
            "status": "resolved" if done else "open",
            "updated_at": now,
            "resolved_by": agent if done else None,
            "resolved_at": now if done else None,
            "resolved_items": resolved,
            "skipped_items": list(skipped),
            "skip_reasons": reasons,
        }
    )
    save(queue.store, finished)
    return finished


def resolve_item(
    queue: AgentQueue, item_id: str, incident_id: str, agent: str, reply: str, now: datetime
) -> Skip | None:
    """Take the item under the queue's lease (so no one claims it while its reply goes out),
    then reply and close it; None when done, else why it was skipped."""
    held = hold(queue, item_id, incident_id, agent, now)
    if isinstance(held, Skip):
        return held
    try:
        queue.reply_and_close(held, agent, reply, now, {"incident": incident_id}, RELEASE)
    except QueueError as exc:  # another request is resolving it
        return Skip(str(exc), retry=False)
    except Exception as exc:  # any connector's failure: this item waits, the others go on
        return Skip(f"reply not sent: {exc}", retry=True)
    return None


def hold(
    queue: AgentQueue, item_id: str, incident_id: str, agent: str, now: datetime
) -> QueueItem | Skip:
    """The item held by ``agent``, or why it cannot be: resolved already, or another agent
    holds it under a live lease (theirs to answer)."""
    for _ in range(CAS_ATTEMPTS):
        item = queue.store.get_item(item_id)
        if item is None:
            return Skip("no such item", retry=False)
        if item.status == "resolved":
            return Skip(f"already resolved by {item.agent}", retry=False)
        live = item.status == "claimed" and item.lease_until is not None and item.lease_until >= now
        if live and item.agent == agent:
            return item
        if live:
            return Skip(f"held by {item.agent}", retry=False)
        taken = queue.take(item, agent, now, {"incident": incident_id})
        if taken is not None:
            return taken
    return Skip("it kept changing; resolve the incident again", retry=True)
