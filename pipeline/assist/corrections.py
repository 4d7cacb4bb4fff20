"""Agents' corrections: an agent relabels the topic, urgency, sentiment, emotion or spam of a
queued post.

Each correction is kept (never edited) with the post's text and the labels the model gave, so the
retrain flow (``flows/retrain.py``) can learn from it without joining collections, and the audit
log says who relabelled what and when. The web console's relabel button writes through
``record_correction``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from classifiers.seed import EMOTIONS, TOPICS
from pipeline.errors import TriageError
from pipeline.queue.agent_queue import UnknownItem
from pipeline.records import URGENCY_LEVELS, AuditEntry, Correction, utcnow
from pipeline.store.interface import Store

LABELS: dict[str, tuple[str, ...]] = {
    "spam": ("ham", "spam"),
    "topic": TOPICS,
    "urgency": URGENCY_LEVELS,
    "sentiment": ("negative", "neutral", "positive"),
    "emotion": EMOTIONS,
}


class BadCorrection(TriageError):
    """A relabel naming a task or label the models do not have."""

    status = 422


def record_correction(
    store: Store,
    item_id: str,
    task: str,
    label: str,
    agent: str,
    clock: Callable[[], datetime] = utcnow,
) -> Correction:
    """Keep an agent's relabel of one task of a queued post, and audit it."""
    if task not in LABELS:
        raise BadCorrection(f"cannot relabel {task!r}; tasks are {', '.join(LABELS)}")
    if label not in LABELS[task]:
        allowed = ", ".join(LABELS[task])
        raise BadCorrection(f"{label!r} is not a {task} label; use one of {allowed}")
    if not agent.strip():
        raise BadCorrection("a correction needs the agent who made it")
    item = store.get_item(item_id)
    if item is None:
        raise UnknownItem(f"no queue item {item_id!r}")
    post = store.get_post(item_id)
    text = post["post"]["text"] if post is not None else item.text
    predicted = {
        "spam": "spam" if post is not None and post.get("is_spam") else "ham",
        "topic": item.topic,
        "urgency": item.urgency,
        "sentiment": item.sentiment,
    }
    if item.emotion is not None:  # items triaged before the emotion head have none
        predicted["emotion"] = item.emotion
    correction = Correction(
        item_id=item_id,
        task=task,
        label=label,
        agent=agent,
        at=clock(),
        text=text,
        language=item.language,
        predicted=predicted,
    )
    store.add_correction(correction)
    store.record_audit(
        [
            AuditEntry(
                at=correction.at,
                actor=agent,
                action="relabel",
                item_id=item_id,
                detail={"task": task, "label": label, "was": predicted.get(task)},
            )
        ]
    )
    return correction


def corrected_labels(corrections: Sequence[Correction]) -> dict[str, list[tuple[str, str]]]:
    """Per task, (text, label) for every post an agent relabelled on that task, the latest
    relabel winning. Only what agents said: the labels the model gave a post's other tasks are
    the model's own opinion, and learning them back would teach it nothing."""
    latest: dict[str, dict[str, tuple[str, str]]] = {}
    for c in corrections:  # in time order: a later relabel of a post's task replaces the earlier
        latest.setdefault(c.task, {})[c.item_id] = (c.text, c.label)
    return {task: list(rows.values()) for task, rows in latest.items()}
