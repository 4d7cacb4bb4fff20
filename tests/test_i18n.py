"""Complete Chinese: every interface text, every label the models and the queue produce, and every
priority reason the code writes has a Chinese form."""

from __future__ import annotations

import re

from classifiers.seed import EMOTIONS, TOPICS
from dashboards.i18n import TEXT, label, reason
from pipeline.queue.approvals import Approval
from pipeline.queue.kpis import AGES
from pipeline.records import QueueItem

CJK = re.compile(r"[\u4e00-\u9fff]")


def test_every_text_has_chinese() -> None:
    missing = [k for k, v in TEXT.items() if not v.get("zh")]
    assert missing == []


def test_every_label_of_the_models_and_the_queue_is_translated() -> None:
    statuses = QueueItem.model_fields["status"].annotation.__args__  # type: ignore[union-attr]
    approvals = Approval.model_fields["status"].annotation.__args__  # type: ignore[union-attr]
    wanted = [("topic", t) for t in TOPICS] + [
        ("urgency", u) for u in ("low", "medium", "high", "critical")
    ] + [("sentiment", s) for s in ("negative", "neutral", "positive")] + [
        ("status", s) for s in (*statuses, *approvals) if s != "granted"
    ] + [("kind", k) for k in ("credit", "refund")] + [("sla", s) for s in (
        "overdue", "due_soon", "on_track")] + [("age", a) for a, _ in AGES]
    untranslated = [(k, v) for k, v in wanted if not CJK.search(label("zh", k, v))]
    assert untranslated == []
    assert all(f"emotion_{e}" in TEXT for e in EMOTIONS)
    assert label("zh", "topic", "a_new_topic") == "a_new_topic"  # shown, never a crash


def test_every_reason_the_code_writes_reads_in_chinese() -> None:
    written = [
        "urgency critical (84%) from 'caught fire', 'now'",
        "urgency high (expected 2.31)",
        "negative sentiment (93%)",
        "reach 250,000 followers, verified",
        "reach 12,000 followers",
        "waiting 26.0 h",
        "customer tier gold",
        "first-response SLA breached 12 min ago",
        "first-response SLA: 4 min left",
        "part of a spike",
        "topic billing from 'charged', 'twice'",
        "over the 250 EUR limit",
        "over the daily cap of 1000 EUR (900 granted today)",
    ]
    for text in written:
        zh = reason("zh", text)
        assert CJK.search(zh) and not re.search(r"\b(urgency|followers|waiting|over the)\b", zh), zh
        assert reason("en", text) == text
    assert reason("zh", "urgency critical (84%) from 'caught fire'").endswith("“caught fire”）")
