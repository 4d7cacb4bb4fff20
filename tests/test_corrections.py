"""Agents' corrections, kept by both stores and validated before they are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from classifiers.triager import Triager
from pipeline.assist.corrections import BadCorrection, corrected_labels, record_correction
from pipeline.queue.agent_queue import UnknownItem
from pipeline.store.interface import Store
from tests.helpers import make_post

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def test_corrections_are_kept_in_order_with_text_and_audit(store: Store, triager: Triager) -> None:
    batch = [t for t in triager.triage([make_post(i) for i in range(8)], NOW) if not t.is_spam]
    store.write_batch(batch)
    first, second = batch[0], batch[1]
    ticks = iter([NOW, NOW + timedelta(seconds=1), NOW + timedelta(seconds=2)])
    record_correction(store, first.id, "topic", "billing", "ann", clock=lambda: next(ticks))
    record_correction(store, second.id, "urgency", "critical", "bob", clock=lambda: next(ticks))
    record_correction(store, first.id, "sentiment", "negative", "ann", clock=lambda: next(ticks))

    kept = store.list_corrections()
    assert [(c.item_id, c.task, c.label, c.agent) for c in kept] == [
        (first.id, "topic", "billing", "ann"),
        (second.id, "urgency", "critical", "bob"),
        (first.id, "sentiment", "negative", "ann"),
    ]
    assert kept[0].text == first.post.text  # the original text, not the redacted one
    assert kept[0].predicted["topic"] == first.topic.label
    assert store.count("corrections") == 3
    assert store.count("audit") == 3

    later = NOW + timedelta(seconds=3)
    record_correction(store, first.id, "topic", "account", "bob", clock=lambda: later)
    labels = corrected_labels(store.list_corrections())
    # what agents said, per task, the latest relabel of a post winning; nothing the model said
    assert labels == {
        "topic": [(first.post.text, "account")],
        "urgency": [(second.post.text, "critical")],
        "sentiment": [(first.post.text, "negative")],
    }


def test_emotion_can_be_relabelled_and_feeds_the_next_bundle(
    store: Store, triager: Triager
) -> None:
    item = next(t for t in triager.triage([make_post(i) for i in range(4)], NOW) if not t.is_spam)
    store.write_batch([item])
    assert store.get_item(item.id).emotion == item.emotion.label  # type: ignore[union-attr]
    record_correction(store, item.id, "emotion", "fear", "ann")
    assert corrected_labels(store.list_corrections()) == {"emotion": [(item.post.text, "fear")]}
    with pytest.raises(BadCorrection, match="'worry' is not a emotion label"):
        record_correction(store, item.id, "emotion", "worry", "ann")


@pytest.mark.parametrize(
    ("task", "label", "message"),
    [
        ("colour", "red", "cannot relabel 'colour'"),
        ("urgency", "urgent", "'urgent' is not a urgency label"),
        ("spam", "maybe", "'maybe' is not a spam label"),
    ],
)
def test_bad_relabels_are_refused_and_nothing_is_kept(
    store: Store, triager: Triager, task: str, label: str, message: str
) -> None:
    item = next(t for t in triager.triage([make_post(i) for i in range(4)], NOW) if not t.is_spam)
    store.write_batch([item])
    with pytest.raises(BadCorrection, match=message):
        record_correction(store, item.id, task, label, "ann")
    with pytest.raises(UnknownItem):
        record_correction(store, "test:no-such-item", "topic", "billing", "ann")
    assert store.list_corrections() == []
